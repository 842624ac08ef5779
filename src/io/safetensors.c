/* safetensors -- the safetensors format: any file's header and tensors, and GPT-2 weights in
 * the Hugging Face layout; see safetensors.h. */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_HEADER (100u << 20) /* 100 MiB of JSON is far beyond any real header */
#define MAX_EXACT 9007199254740992.0 /* 2^53: larger JSON numbers are not exact integers */

/* tensors are raw little-endian bytes: reading converts bytewise, writing copies memory */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors writing assumes a little-endian host");

typedef enum { DT_F32, DT_F16, DT_BF16, DT_F64, DT_OTHER } Dtype;

static const struct {
    const char *name;
    Dtype dt;
    int size;
} DTYPES[] = {{"F32", DT_F32, 4}, {"F16", DT_F16, 2}, {"BF16", DT_BF16, 2}, {"F64", DT_F64, 8}};

typedef struct {
    char *name;   /* GPT-2 reading: without a "transformer." prefix */
    Dtype dt;
    char dtype[16]; /* as the header spells it (for messages) */
    int size;     /* bytes per element */
    int ndim;
    int64_t shape[4];
    uint64_t begin, end; /* in the data buffer */
    int used;            /* matched to a model tensor */
} Entry;

typedef struct {
    const char *path;
    int fd;
    uint64_t data_off, data_len;
    Entry *e;
    int n;
    int gpt2; /* 1: strip "transformer.", GPT-2 hints */
} StFile;

static void st_close(StFile *f) {
    if (f->fd >= 0) close(f->fd);
    for (int i = 0; i < f->n; i++) free(f->e[i].name);
    free(f->e);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

static int read_full(int fd, void *buf, size_t n, uint64_t off) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

/* a header key for a one-line message: control characters shown as '?', at most 80 bytes */
static const char *shown(const char *s, char *buf, size_t n) {
    size_t k = 0;
    for (; *s && k + 1 < n && k < 80; s++) buf[k++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
    buf[k] = 0;
    return buf;
}

static int ignored(const char *name) {
    size_t n = strlen(name);
    static const char *suffix[] = {".attn.bias", ".attn.masked_bias"};
    for (size_t i = 0; i < 2; i++) {
        size_t k = strlen(suffix[i]);
        if (n > k && strcmp(name + n - k, suffix[i]) == 0 && strncmp(name, "h.", 2) == 0) return 1;
    }
    return strcmp(name, "lm_head.weight") == 0;
}

static int by_begin(const void *a, const void *b) {
    const Entry *x = *(const Entry *const *)a, *y = *(const Entry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

/* Phase 1: opens the file and reads its JSON header text into *hdr (malloc'd, NUL-terminated, *hl bytes). */
static int st_read_header(StFile *f, const char *path, char **hdr, uint64_t *hl, Err *e) {
    f->fd = open(path, O_RDONLY);
    if (f->fd < 0)
        return err_set(e, "%s: cannot open: %s%s", path, strerror(errno),
                       errno == ENOENT && f->gpt2
                           ? " (hint: copy the model.safetensors of a Hugging Face GPT-2 model there, "
                             "or set model.init_from to \"\" to start from random weights)"
                           : "");
    struct stat sb;
    if (fstat(f->fd, &sb) != 0 || !S_ISREG(sb.st_mode)) return err_set(e, "%s: not a regular file", path);
    uint64_t size = (uint64_t)sb.st_size;
    unsigned char lenb[8];
    if (size < 8 || read_full(f->fd, lenb, 8, 0) != 0)
        return err_set(e, "%s: not a safetensors file (shorter than its 8-byte header length)", path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | lenb[i];
    if (n < 2 || n > MAX_HEADER || n > size - 8)
        return err_set(e, "%s: not a safetensors file (header length %llu for a file of %llu bytes; truncated or "
                          "another format?)",
                       path, (unsigned long long)n, (unsigned long long)size);
    *hdr = xmalloc(n + 1);
    if (read_full(f->fd, *hdr, n, 8) != 0) {
        free(*hdr);
        *hdr = NULL;
        return err_set(e, "%s: cannot read the header", path);
    }
    (*hdr)[n] = 0;
    *hl = n;
    f->data_off = 8 + n;
    f->data_len = size - f->data_off;
    return 0;
}

/* Phase 2: the header as a JSON object (only spaces may pad it), or NULL with e set. */
static cJSON *st_parse_header(const char *path, const char *hdr, uint64_t hl, Err *e) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(hdr, hl, &end, 0);
    int trailing = 0;
    for (const char *q = end; j && q && q < hdr + hl; q++) trailing |= *q != ' ';
    if (trailing) {
        cJSON_Delete(j);
        j = NULL;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        err_set(e, "%s: the safetensors header is not a JSON object (corrupt file?)", path);
        return NULL;
    }
    return j;
}

/* Phase 3: one header entry into f->e[f->n++]: dtype, shape and byte range checked against each other
 * and against the data buffer. */
static int st_add_entry(StFile *f, const cJSON *it, Err *e) {
    const char *path = f->path, *nm = it->string;
    char nb[96];
    if (f->gpt2 && strncmp(nm, "transformer.", 12) == 0) nm += 12;
    cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
    cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
    cJSON *of = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 ||
        cJSON_GetArraySize(sh) > 4)
        return err_set(e, "%s: tensor %s: header entry without dtype/shape/data_offsets (corrupt file?)", path,
                       shown(it->string, nb, sizeof nb));
    Entry *en = &f->e[f->n++];
    en->name = xstrdup(nm);
    en->dt = DT_OTHER;
    en->size = 0;
    shown(dt->valuestring, en->dtype, sizeof en->dtype);
    for (size_t k = 0; k < sizeof DTYPES / sizeof DTYPES[0]; k++)
        if (strcmp(dt->valuestring, DTYPES[k].name) == 0) en->dt = DTYPES[k].dt, en->size = DTYPES[k].size;
    en->ndim = cJSON_GetArraySize(sh);
    double numel = 1;
    for (int d = 0; d < en->ndim; d++) {
        cJSON *x = cJSON_GetArrayItem(sh, d);
        if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > MAX_EXACT ||
            x->valuedouble != floor(x->valuedouble))
            return err_set(e, "%s: tensor %s: bad shape (corrupt file?)", path, shown(it->string, nb, sizeof nb));
        en->shape[d] = (int64_t)x->valuedouble;
        numel *= x->valuedouble;
    }
    cJSON *b = cJSON_GetArrayItem(of, 0), *x = cJSON_GetArrayItem(of, 1);
    if (!cJSON_IsNumber(b) || !cJSON_IsNumber(x) || b->valuedouble < 0 || x->valuedouble < b->valuedouble ||
        x->valuedouble > MAX_EXACT || b->valuedouble != floor(b->valuedouble) ||
        x->valuedouble != floor(x->valuedouble))
        return err_set(e, "%s: tensor %s: bad data_offsets (corrupt file?)", path, shown(it->string, nb, sizeof nb));
    en->begin = (uint64_t)b->valuedouble;
    en->end = (uint64_t)x->valuedouble;
    if (en->end > f->data_len)
        return err_set(e, "%s: tensor %s ends at byte %llu of a %llu-byte data buffer (truncated file?)", path,
                       shown(it->string, nb, sizeof nb), (unsigned long long)en->end, (unsigned long long)f->data_len);
    if (en->size && (double)(en->end - en->begin) != numel * en->size)
        return err_set(e, "%s: tensor %s: %llu bytes for %.0f %s values (corrupt file?)", path,
                       shown(it->string, nb, sizeof nb), (unsigned long long)(en->end - en->begin), numel,
                       dt->valuestring);
    return 0;
}

/* Phase 4, the format's rule: the tensors tile the data buffer, no overlaps, no holes. */
static int st_check_tiling(const StFile *f, Err *e) {
    Entry **o = xmalloc(sizeof(Entry *) * (size_t)(f->n + 1));
    for (int i = 0; i < f->n; i++) o[i] = &f->e[i];
    qsort(o, (size_t)f->n, sizeof *o, by_begin);
    uint64_t at = 0;
    int rc = 0;
    char nb[96];
    for (int i = 0; i < f->n && rc == 0; i++) {
        if (o[i]->begin != at)
            rc = err_set(e, "%s: tensor %s starts at byte %llu, expected %llu (overlapping or missing data: corrupt "
                            "file?)",
                         f->path, shown(o[i]->name, nb, sizeof nb), (unsigned long long)o[i]->begin,
                         (unsigned long long)at);
        at = o[i]->end;
    }
    if (rc == 0 && at != f->data_len)
        rc = err_set(e, "%s: %llu bytes after the last tensor (corrupt file?)", f->path,
                     (unsigned long long)(f->data_len - at));
    free(o);
    return rc;
}

/* Opens and validates the header: every entry's dtype size x shape equals its byte range, and the
 * ranges tile the data buffer.  gpt2: strip "transformer." from names, GPT-2 hints. */
static int st_open_as(StFile *f, const char *path, int gpt2, Err *e) {
    memset(f, 0, sizeof *f);
    f->path = path;
    f->gpt2 = gpt2;
    char *hdr = NULL;
    uint64_t hl = 0;
    if (st_read_header(f, path, &hdr, &hl, e) != 0) {
        st_close(f);
        return -1;
    }
    cJSON *j = st_parse_header(path, hdr, hl, e);
    free(hdr);
    if (!j) {
        st_close(f);
        return -1;
    }
    f->e = xcalloc((size_t)cJSON_GetArraySize(j) + 1, sizeof(Entry));
    int rc = 0;
    for (cJSON *it = j->child; it && rc == 0; it = it->next)
        if (strcmp(it->string, "__metadata__") != 0) rc = st_add_entry(f, it, e);
    cJSON_Delete(j);
    if (rc == 0) rc = st_check_tiling(f, e);
    if (rc) st_close(f);
    return rc;
}

static int st_open(StFile *f, const char *path, Err *e) { return st_open_as(f, path, 1, e); }

static const Entry *find(const StFile *f, const char *ours) {
    char want[64];
    if (!strcmp(ours, "wte") || !strcmp(ours, "wpe")) snprintf(want, sizeof want, "%s.weight", ours);
    else snprintf(want, sizeof want, "%s", ours);
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->e[i].name, want) == 0) return &f->e[i];
    return NULL;
}

static int is_conv1d(const ModelTensor *t) { return t->ndim == 2 && strcmp(t->name, "wte") && strcmp(t->name, "wpe"); }

static void shape_str(const int64_t *s, int nd, char *buf, size_t n) {
    int k = snprintf(buf, n, "[");
    for (int d = 0; d < nd && (size_t)k < n; d++) k += snprintf(buf + k, n - (size_t)k, "%s%lld", d ? ", " : "", (long long)s[d]);
    if ((size_t)k < n) snprintf(buf + k, n - (size_t)k, "]");
}

/* Checks f against the layout of c: every tensor present with the right shape, nothing unexpected. */
static int check(const StFile *f, const ModelConfig *c, Err *e) {
    ModelTensor *t;
    int nt = model_tensor_layout(c, &t);
    int rc = 0;
    const char *hint = "hint: model.n_layer/d_model (or model.preset: GPT-2 small is gpt2-124m, medium gpt2-350m) "
                       "must match the weights";
    for (int i = 0; i < nt && rc == 0; i++) {
        Entry *en = (Entry *)find(f, t[i].name);
        if (en) en->used = 1;
        if (!en) {
            rc = err_set(e, "%s: no tensor %s%s (hint: GPT-2 weights in the Hugging Face layout are expected)", f->path,
                         t[i].name, t[i].ndim == 2 && !is_conv1d(&t[i]) ? ".weight" : "");
            break;
        }
        if (en->dt == DT_OTHER) {
            rc = err_set(e, "%s: tensor %s has an unsupported dtype (F32, F16, BF16 and F64 are read)", f->path, en->name);
            break;
        }
        int64_t want[2] = {t[i].shape[0], t[i].shape[1]};
        if (is_conv1d(&t[i])) want[0] = t[i].shape[1], want[1] = t[i].shape[0]; /* Conv1D: [in, out] */
        int ok = en->ndim == t[i].ndim;
        if (ok && t[i].ndim == 1) ok = en->shape[0] == want[0];
        else if (ok && !strcmp(t[i].name, "wte")) ok = en->shape[1] == want[1] && en->shape[0] >= 1 && (c->vocab_size <= 0 || en->shape[0] <= want[0]);
        else if (ok && !strcmp(t[i].name, "wpe")) ok = en->shape[1] == want[1] && en->shape[0] >= want[0];
        else if (ok) ok = en->shape[0] == want[0] && en->shape[1] == want[1];
        if (!ok) {
            char got[96], need[96];
            shape_str(en->shape, en->ndim, got, sizeof got);
            shape_str(want, t[i].ndim, need, sizeof need);
            if (!strcmp(t[i].name, "wte") && en->ndim == 2 && en->shape[1] == want[1])
                rc = err_set(e, "%s: wte.weight has %lld token embeddings, more than the tokenizer's %lld (hint: the "
                                "weights need their own tokenizer: tokenizer.type=gpt2 for GPT-2)",
                             f->path, (long long)en->shape[0], (long long)want[0]);
            else if (!strcmp(t[i].name, "wpe") && en->ndim == 2 && en->shape[1] == want[1])
                rc = err_set(e, "%s: wpe.weight has %lld positions, the model needs %lld (hint: lower model.max_seq_len)",
                             f->path, (long long)en->shape[0], (long long)want[0]);
            else
                rc = err_set(e, "%s: tensor %s has shape %s, the model needs %s (%s)", f->path, en->name, got, need,
                             hint);
        }
    }
    /* nothing unexpected (more layers, another architecture) */
    for (int k = 0; k < f->n && rc == 0; k++) {
        const char *nm = f->e[k].name;
        if (ignored(nm) || f->e[k].used) continue;
        int l;
        char nb[96];
        nm = shown(nm, nb, sizeof nb);
        if (sscanf(nm, "h.%d.", &l) == 1 && l >= c->n_layer)
            rc = err_set(e, "%s: tensor %s: the weights have more layers than the model's %d (%s)", f->path, nm,
                         c->n_layer, hint);
        else
            rc = err_set(e, "%s: unexpected tensor %s (hint: GPT-2 weights in the Hugging Face layout are expected)",
                         f->path, nm);
    }
    free(t);
    return rc;
}

int safetensors_check_gpt2(const char *path, const ModelConfig *c, Err *e) {
    StFile f;
    if (st_open(&f, path, e) != 0) return -1;
    int rc = check(&f, c, e);
    st_close(&f);
    return rc;
}

static float half_to_float(uint16_t h) {
    uint32_t s = (uint32_t)(h >> 15) << 31, ex = (h >> 10) & 31, m = h & 1023;
    float v;
    if (ex == 0) v = ldexpf((float)m, -24); /* zero and subnormals */
    else if (ex == 31) v = m ? NAN : INFINITY;
    else v = ldexpf((float)(m | 1024), (int)ex - 25);
    return s ? -v : v;
}

static void convert(const unsigned char *src, Dtype dt, size_t n, float *dst) {
    for (size_t i = 0; i < n; i++) {
        switch (dt) {
        case DT_F32: {
            uint32_t u = (uint32_t)src[4 * i] | (uint32_t)src[4 * i + 1] << 8 | (uint32_t)src[4 * i + 2] << 16 |
                         (uint32_t)src[4 * i + 3] << 24;
            memcpy(&dst[i], &u, 4);
            break;
        }
        case DT_F16:
            dst[i] = half_to_float((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
            break;
        case DT_BF16: {
            uint32_t u = ((uint32_t)src[2 * i] | (uint32_t)src[2 * i + 1] << 8) << 16;
            memcpy(&dst[i], &u, 4);
            break;
        }
        case DT_F64: {
            uint64_t u = 0;
            for (int b = 7; b >= 0; b--) u = u << 8 | src[8 * i + (size_t)b];
            double d;
            memcpy(&d, &u, 8);
            dst[i] = (float)d;
            break;
        }
        default:
            dst[i] = NAN;
        }
    }
}

int safetensors_read_gpt2(const char *path, Model *m, char *info, size_t ninfo, Err *e) {
    StFile f;
    if (st_open(&f, path, e) != 0) return -1;
    int rc = check(&f, &m->cfg, e);
    int64_t rows = 0, pos = 0;
    const char *dtn = "";
    for (int i = 0; i < m->n_tensors && rc == 0; i++) {
        const ModelTensor *t = &m->tensors[i];
        const Entry *en = find(&f, t->name);
        size_t n = (size_t)((en->end - en->begin) / (uint64_t)en->size);
        unsigned char *raw = xmalloc(en->end - en->begin + 1);
        float *v = xmalloc(sizeof(float) * (n + 1));
        if (read_full(f.fd, raw, en->end - en->begin, f.data_off + en->begin) != 0) {
            rc = err_set(e, "%s: cannot read tensor %s (truncated file?)", path, en->name);
        } else {
            convert(raw, en->dt, n, v);
            for (size_t k = 0; k < n && rc == 0; k++)
                if (!isfinite(v[k])) rc = err_set(e, "%s: tensor %s holds non-finite values (corrupt file?)", path, en->name);
        }
        for (size_t k = 0; k < sizeof DTYPES / sizeof DTYPES[0]; k++)
            if (DTYPES[k].dt == en->dt) dtn = DTYPES[k].name;
        float *dst = m->params + t->offset;
        if (rc == 0) {
            if (is_conv1d(t)) { /* file [in][out] -> ours [out][in] */
                long out = t->shape[0], in = t->shape[1];
                for (long o = 0; o < out; o++)
                    for (long k = 0; k < in; k++) dst[o * in + k] = v[k * out + o];
            } else if (!strcmp(t->name, "wte")) {
                rows = en->shape[0];
                memcpy(dst, v, sizeof(float) * (size_t)(rows * t->shape[1]));
            } else if (!strcmp(t->name, "wpe")) {
                pos = en->shape[0];
                memcpy(dst, v, sizeof(float) * t->numel); /* the first max_seq_len positions */
            } else {
                memcpy(dst, v, sizeof(float) * t->numel);
            }
        }
        free(raw);
        free(v);
    }
    if (rc == 0 && info)
        snprintf(info, ninfo, "%d tensors (%s), %lld of %d token embeddings, %d of %lld positions", m->n_tensors, dtn,
                 (long long)rows, m->cfg.vocab_size, m->cfg.max_seq_len, (long long)pos);
    st_close(&f);
    return rc;
}

/* flush, fsync and close fp (written as tmp), then rename it to path; tmp is removed on failure */
static int close_durable(FILE *fp, const char *tmp, const char *path, Err *e) {
    int rc = 0;
    if (fflush(fp) != 0 || ferror(fp) || fsync(fileno(fp)) != 0)
        rc = err_set(e, "%s: write failed: %s (disk full?)", tmp, strerror(errno));
    if (fclose(fp) != 0 && rc == 0) rc = err_set(e, "%s: close failed: %s", tmp, strerror(errno));
    if (rc == 0) rc = util_rename_durable(tmp, path, e);
    if (rc != 0) unlink(tmp);
    return rc;
}

static int hf_name(const ModelTensor *t, char *buf, size_t n) {
    if (!strcmp(t->name, "wte") || !strcmp(t->name, "wpe")) return snprintf(buf, n, "transformer.%s.weight", t->name);
    return snprintf(buf, n, "transformer.%s", t->name);
}

int safetensors_write_gpt2(const char *path, const Model *m, Err *e) {
    cJSON *h = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(h, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    cJSON_AddStringToObject(meta, "producer", "hdistill");
    uint64_t off = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const ModelTensor *t = &m->tensors[i];
        char nm[96];
        hf_name(t, nm, sizeof nm);
        cJSON *o = cJSON_AddObjectToObject(h, nm);
        cJSON_AddStringToObject(o, "dtype", "F32");
        double sh[2] = {(double)t->shape[0], (double)t->shape[1]};
        if (is_conv1d(t)) sh[0] = (double)t->shape[1], sh[1] = (double)t->shape[0];
        cJSON *s = cJSON_AddArrayToObject(o, "shape");
        for (int d = 0; d < t->ndim; d++) cJSON_AddItemToArray(s, cJSON_CreateNumber(sh[d]));
        cJSON *of = cJSON_AddArrayToObject(o, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        off += 4 * (uint64_t)t->numel;
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
    }
    char *js = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!js) return err_set(e, "%s: out of memory for the header", path);
    size_t jl = strlen(js), padded = (jl + 7) / 8 * 8;
    char *tmp = xasprintf("%s.tmp", path);
    FILE *fp = fopen(tmp, "wb");
    int rc = 0;
    if (!fp) rc = err_set(e, "%s: cannot create: %s", tmp, strerror(errno));
    if (rc == 0) {
        unsigned char lenb[8];
        for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)padded >> (8 * i));
        fwrite(lenb, 1, 8, fp);
        fwrite(js, 1, jl, fp);
        for (size_t i = jl; i < padded; i++) fputc(' ', fp);
        float *buf = NULL;
        for (int i = 0; i < m->n_tensors; i++) {
            const ModelTensor *t = &m->tensors[i];
            const float *src = m->params + t->offset;
            if (is_conv1d(t)) { /* ours [out][in] -> file [in][out] */
                long out = t->shape[0], in = t->shape[1];
                buf = xrealloc(buf, sizeof(float) * t->numel);
                for (long k = 0; k < in; k++)
                    for (long o = 0; o < out; o++) buf[k * out + o] = src[o * in + k];
                src = buf;
            }
            fwrite(src, sizeof(float), t->numel, fp); /* little-endian hosts (x86-64, aarch64) */
        }
        free(buf);
        rc = close_durable(fp, tmp, path, e);
    }
    free(js);
    free(tmp);
    return rc;
}

int safetensors_write_hf_config(const char *path, const ModelConfig *c, int eot_id, Err *e) {
    cJSON *j = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(j, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("GPT2LMHeadModel"));
    cJSON_AddStringToObject(j, "model_type", "gpt2");
    cJSON_AddNumberToObject(j, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(j, "n_positions", c->max_seq_len);
    cJSON_AddNumberToObject(j, "n_ctx", c->max_seq_len);
    cJSON_AddNumberToObject(j, "n_embd", c->d_model);
    cJSON_AddNumberToObject(j, "n_layer", c->n_layer);
    cJSON_AddNumberToObject(j, "n_head", c->n_head);
    cJSON_AddNullToObject(j, "n_inner");
    cJSON_AddStringToObject(j, "activation_function", "gelu_new");
    cJSON_AddNumberToObject(j, "layer_norm_epsilon", 1e-5);
    cJSON_AddNumberToObject(j, "initializer_range", 0.02);
    cJSON_AddNumberToObject(j, "resid_pdrop", 0.0);
    cJSON_AddNumberToObject(j, "embd_pdrop", 0.0);
    cJSON_AddNumberToObject(j, "attn_pdrop", 0.0);
    cJSON_AddBoolToObject(j, "tie_word_embeddings", 1);
    if (eot_id >= 0) {
        cJSON_AddNumberToObject(j, "bos_token_id", eot_id);
        cJSON_AddNumberToObject(j, "eos_token_id", eot_id);
    }
    cJSON_AddStringToObject(j, "torch_dtype", "float32");
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    char *tmp = xasprintf("%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    int rc = 0;
    if (!fp) rc = err_set(e, "%s: cannot create: %s", tmp, strerror(errno));
    else {
        fputs(s, fp);
        fputc('\n', fp);
        rc = close_durable(fp, tmp, path, e);
    }
    free(s);
    free(tmp);
    return rc;
}

/* ---- any safetensors file ------------------------------------------------------------ */

struct SafetensorsFile {
    StFile f;
    char *path;
};

SafetensorsFile *safetensors_open(const char *path, Err *e) {
    SafetensorsFile *sf = xcalloc(1, sizeof *sf);
    sf->path = xstrdup(path);
    if (st_open_as(&sf->f, sf->path, 0, e) != 0) {
        free(sf->path);
        free(sf);
        return NULL;
    }
    return sf;
}

void safetensors_close(SafetensorsFile *sf) {
    if (!sf) return;
    st_close(&sf->f);
    free(sf->path);
    free(sf);
}

const char *safetensors_path(const SafetensorsFile *sf) { return sf->path; }
int safetensors_count(const SafetensorsFile *sf) { return sf->f.n; }

int safetensors_find(const SafetensorsFile *sf, const char *name) {
    for (int i = 0; i < sf->f.n; i++)
        if (strcmp(sf->f.e[i].name, name) == 0) return i;
    return -1;
}

const char *safetensors_name(const SafetensorsFile *sf, int i) { return sf->f.e[i].name; }
const char *safetensors_dtype(const SafetensorsFile *sf, int i) { return sf->f.e[i].dtype; }
int safetensors_readable(const SafetensorsFile *sf, int i) { return sf->f.e[i].dt != DT_OTHER; }

int safetensors_shape(const SafetensorsFile *sf, int i, int64_t shape[4]) {
    const Entry *en = &sf->f.e[i];
    for (int d = 0; d < 4; d++) shape[d] = d < en->ndim ? en->shape[d] : 0;
    return en->ndim;
}

#define READ_CHUNK (16u << 20) /* bytes converted at a time: no second copy of a large tensor */

int safetensors_read_f32(const SafetensorsFile *sf, int i, float *dst, Err *e) {
    const Entry *en = &sf->f.e[i];
    if (en->dt == DT_OTHER)
        return err_set(e, "%s: tensor %s has dtype %s (hint: F32, BF16, F16 and F64 are read)", sf->path, en->name,
                       en->dtype);
    uint64_t total = en->end - en->begin, per = READ_CHUNK / (uint64_t)en->size * (uint64_t)en->size;
    unsigned char *raw = xmalloc((size_t)(total < per ? total : per) + 1);
    int rc = 0;
    for (uint64_t at = 0; at < total && rc == 0; at += per) {
        uint64_t n = total - at < per ? total - at : per;
        size_t k = (size_t)(n / (uint64_t)en->size), first = (size_t)(at / (uint64_t)en->size);
        if (read_full(sf->f.fd, raw, (size_t)n, sf->f.data_off + en->begin + at) != 0) {
            rc = err_set(e, "%s: cannot read tensor %s (truncated file?)", sf->path, en->name);
            break;
        }
        convert(raw, en->dt, k, dst + first);
        for (size_t j = 0; j < k && rc == 0; j++)
            if (!isfinite(dst[first + j]))
                rc = err_set(e, "%s: tensor %s holds non-finite values (corrupt file?)", sf->path, en->name);
    }
    free(raw);
    return rc;
}

/* the header of n float32 tensors in order, padded with spaces to 8 bytes; malloc'd */
static char *f32_header(const SafetensorsTensor *t, int n, size_t *padded) {
    cJSON *h = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(h, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    cJSON_AddStringToObject(meta, "producer", "hdistill");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_AddObjectToObject(h, t[i].name);
        cJSON_AddStringToObject(o, "dtype", "F32");
        cJSON *s = cJSON_AddArrayToObject(o, "shape");
        uint64_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++) {
            cJSON_AddItemToArray(s, cJSON_CreateNumber((double)t[i].shape[d]));
            numel *= (uint64_t)t[i].shape[d];
        }
        cJSON *of = cJSON_AddArrayToObject(o, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        off += 4 * numel;
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
    }
    char *js = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!js) return NULL;
    size_t jl = strlen(js);
    *padded = (jl + 7) / 8 * 8;
    js = xrealloc(js, *padded + 1);
    memset(js + jl, ' ', *padded - jl);
    js[*padded] = 0;
    return js;
}

int safetensors_write_f32(const char *path, const SafetensorsTensor *t, int n, Err *e) {
    size_t padded = 0;
    char *js = f32_header(t, n, &padded);
    if (!js) return err_set(e, "%s: out of memory for the header", path);
    char *tmp = xasprintf("%s.tmp", path);
    FILE *fp = fopen(tmp, "wb");
    int rc = 0;
    if (!fp) rc = err_set(e, "%s: cannot create: %s", tmp, strerror(errno));
    if (rc == 0) {
        unsigned char lenb[8];
        for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)((uint64_t)padded >> (8 * i));
        fwrite(lenb, 1, 8, fp);
        fwrite(js, 1, padded, fp);
        for (int i = 0; i < n; i++) {
            size_t numel = 1;
            for (int d = 0; d < t[i].ndim; d++) numel *= (size_t)t[i].shape[d];
            fwrite(t[i].data, sizeof(float), numel, fp); /* little-endian hosts */
        }
        rc = close_durable(fp, tmp, path, e);
    }
    free(js);
    free(tmp);
    return rc;
}

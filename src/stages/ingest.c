/* ingest -- literal inputs into data.h5; see include/stages/ingest.h. */
#include "stages/ingest.h"

#include <cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/text.h"
#include "io/lock.h"
#include "io/prov.h"
#include "base/sha256.h"
#include "io/store.h"

#define WORDNET_DIR "/usr/share/wordnet"

/* ---- sources ------------------------------------------------------------------- */

int ingest_read_wordnet(const char *path, StrVec *out, Err *e) {
    size_t len;
    char *text = util_read_file(path, &len, e);
    if (!text) return err_suffix(e, " (hint: apt-get install wordnet-base)");
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (line[0] != ' ') { /* data lines; the license header is indented */
            char *gloss = strstr(line, " | ");
            for (char *p = gloss; p && (p = strchr(p, '"'));) {
                char *q = strchr(p + 1, '"');
                if (!q) break;
                if (q - p - 1 > 0) strvec_push(out, p + 1, (size_t)(q - p - 1));
                p = q + 1;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return 0;
}

/* One CSV record starting at *p; fields appended to f; advances *p. */
static void csv_record(const char **p, const char *end, StrVec *f) {
    const char *s = *p;
    ByteBuf cell = {0};
    for (;;) {
        cell.n = 0;
        if (s < end && *s == '"') {
            s++;
            while (s < end) {
                if (*s == '"' && s + 1 < end && s[1] == '"') bytebuf_putc(&cell, '"'), s += 2;
                else if (*s == '"') {
                    s++;
                    break;
                } else bytebuf_putc(&cell, *s++);
            }
            while (s < end && *s != ',' && *s != '\n') s++; /* junk after a closing quote */
        } else {
            while (s < end && *s != ',' && *s != '\n') bytebuf_putc(&cell, *s++);
            if (cell.n && cell.a[cell.n - 1] == '\r') cell.n--;
        }
        strvec_push(f, cell.a ? cell.a : "", cell.n);
        if (s < end && *s == ',') {
            s++;
            continue;
        }
        if (s < end && *s == '\n') s++;
        break;
    }
    bytebuf_free(&cell);
    *p = s;
}

int ingest_read_file(const char *path, const char *format, const char *field, StrVec *out, Err *e) {
    size_t len;
    char *text = util_read_file(path, &len, e);
    if (!text) return err_suffix(e, " (hint: ingest.source must name an existing file, or be \"wordnet\")");
    const char *fmt = format;
    if (!strcmp(fmt, "auto"))
        fmt = util_ends_with(path, ".jsonl") ? "jsonl" : util_ends_with(path, ".csv") ? "csv" : "text";
    int rc = 0;
    if (!strcmp(fmt, "jsonl")) {
        long lineno = 0;
        for (char *line = text; line && *line && rc == 0;) {
            char *nl = strchr(line, '\n');
            size_t ll = nl ? (size_t)(nl - line) : strlen(line);
            lineno++;
            size_t k = 0;
            while (k < ll && isspace((unsigned char)line[k])) k++;
            if (k < ll) {
                cJSON *j = cJSON_ParseWithLength(line, ll);
                cJSON *v = j ? cJSON_GetObjectItemCaseSensitive(j, field) : NULL;
                if (!j) rc = err_set(e, "%s:%ld: malformed JSON", path, lineno);
                else if (!cJSON_IsString(v))
                    rc = err_set(e, "%s:%ld: no string field \"%s\" (hint: ingest.field)", path, lineno, field);
                else strvec_push(out, v->valuestring, (size_t)-1);
                cJSON_Delete(j);
            }
            line = nl ? nl + 1 : NULL;
        }
    } else if (!strcmp(fmt, "csv")) {
        const char *p = text, *end = text + len;
        StrVec hdr = {0};
        csv_record(&p, end, &hdr);
        long col = -1;
        for (size_t i = 0; i < hdr.n; i++)
            if (!strcmp(hdr.a[i], field)) col = (long)i;
        if (col < 0) rc = err_set(e, "%s:1: no column \"%s\" in the header (hint: ingest.field)", path, field);
        long rec = 1;
        while (rc == 0 && p < end) {
            StrVec f = {0};
            csv_record(&p, end, &f);
            rec++;
            if (f.n == 1 && !f.a[0][0]) {
                strvec_free(&f);
                continue; /* blank line */
            }
            if ((long)f.n <= col) rc = err_set(e, "%s: record %ld has %zu fields, no column %ld", path, rec, f.n, col + 1);
            else strvec_push(out, f.a[col], (size_t)-1);
            strvec_free(&f);
        }
        strvec_free(&hdr);
    } else {
        for (char *line = text; line && *line;) {
            char *nl = strchr(line, '\n');
            size_t ll = nl ? (size_t)(nl - line) : strlen(line);
            strvec_push(out, line, ll);
            line = nl ? nl + 1 : NULL;
        }
    }
    free(text);
    return rc;
}

/* ---- the stage ----------------------------------------------------------------- */

typedef struct {
    char *text;
    uint64_t h;
} Item;

static int cmp_item(const void *a, const void *b) {
    const Item *x = a, *y = b;
    if (x->h != y->h) return x->h < y->h ? -1 : 1;
    return strcmp(x->text, y->text);
}

static uint64_t text_hash(uint64_t seed, const char *s) {
    uint8_t d[32];
    Sha256 h;
    sha256_init(&h);
    sha256_update(&h, &seed, sizeof seed);
    sha256_update(&h, s, strlen(s));
    sha256_final(&h, d);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | d[i];
    return v;
}

static char *lower_key(const char *s) {
    char *k = xstrdup(s);
    for (char *p = k; *p; p++) *p = (char)tolower((unsigned char)*p);
    return k;
}

/* Simple open-addressing map of strings to an index (SET_EARLIER: kept by an earlier source). */
enum { SET_EARLIER = -1 };
typedef struct {
    char **slot;
    int64_t *val;
    size_t cap, n;
} StrSet;

/* The value slot of key, added with value v if it is new (*fresh = 1). */
static int64_t *set_add(StrSet *s, const char *key, int64_t v, int *fresh) {
    if ((s->n + 1) * 2 > s->cap) {
        size_t oc = s->cap;
        char **old = s->slot;
        int64_t *oldv = s->val;
        s->cap = oc ? oc * 2 : 1024;
        s->slot = xcalloc(s->cap, sizeof(char *));
        s->val = xcalloc(s->cap, sizeof(int64_t));
        s->n = 0;
        int f;
        for (size_t i = 0; i < oc; i++)
            if (old[i]) set_add(s, old[i], oldv[i], &f), free(old[i]);
        free(old), free(oldv);
    }
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = key; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    size_t i = h & (s->cap - 1);
    *fresh = 0;
    while (s->slot[i]) {
        if (!strcmp(s->slot[i], key)) return &s->val[i];
        i = (i + 1) & (s->cap - 1);
    }
    s->slot[i] = xstrdup(key);
    s->val[i] = v;
    s->n++;
    *fresh = 1;
    return &s->val[i];
}

static void set_free(StrSet *s) {
    for (size_t i = 0; i < s->cap; i++) free(s->slot[i]);
    free(s->slot), free(s->val);
}

typedef struct {
    int64_t read, empty, too_short, too_long, duplicates;
} Counts;

/* Normalises, filters and de-duplicates raw into items (keys go into seen).
 * Of inputs equal up to case the smallest spelling (strcmp) is kept, so the
 * kept text -- and its hash, which orders and splits -- does not depend on
 * the order of the file; a key an earlier source kept is dropped. */
static size_t prepare(const Config *cfg, StrVec *raw, StrSet *seen, Item **items, Counts *ct) {
    *items = xmalloc(sizeof(Item) * (raw->n ? raw->n : 1));
    size_t n = 0;
    for (size_t i = 0; i < raw->n; i++) {
        ct->read++;
        char *t = text_normalize(raw->a[i], strlen(raw->a[i]));
        int w = text_word_count(t);
        if (!t[0]) ct->empty++;
        else if (w < cfg->ingest.min_words) ct->too_short++;
        else if (w > cfg->ingest.max_words) ct->too_long++;
        else {
            char *k = lower_key(t);
            int fresh;
            int64_t *at = set_add(seen, k, (int64_t)n, &fresh);
            free(k);
            if (fresh) {
                (*items)[n].text = t;
                (*items)[n].h = text_hash((uint64_t)cfg->ingest.seed, t);
                n++;
                continue;
            }
            ct->duplicates++;
            if (*at != SET_EARLIER && strcmp(t, (*items)[*at].text) < 0) { /* t replaces the kept spelling */
                Item *it = &(*items)[*at];
                char *was = it->text;
                it->text = t, it->h = text_hash((uint64_t)cfg->ingest.seed, t);
                t = was;
            }
        }
        free(t);
    }
    for (size_t i = 0; i < seen->cap; i++) seen->val[i] = SET_EARLIER;
    qsort(*items, n, sizeof(Item), cmp_item);
    return n;
}

static char *signature(const Config *cfg) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "source", cfg->ingest.source);
    cJSON_AddStringToObject(o, "format", config_enum_name("ingest.format", cfg->ingest.format));
    cJSON_AddStringToObject(o, "field", cfg->ingest.field);
    cJSON_AddNumberToObject(o, "limit", (double)cfg->ingest.limit);
    cJSON_AddNumberToObject(o, "eval_fraction", cfg->ingest.eval_fraction);
    cJSON_AddStringToObject(o, "ood_source", cfg->ingest.ood_source);
    cJSON_AddNumberToObject(o, "ood_limit", (double)cfg->ingest.ood_limit);
    cJSON_AddNumberToObject(o, "min_words", cfg->ingest.min_words);
    cJSON_AddNumberToObject(o, "max_words", cfg->ingest.max_words);
    cJSON_AddNumberToObject(o, "seed", (double)cfg->ingest.seed);
    char *s = cJSON_PrintUnformatted(o);
    char *r = xstrdup(s);
    cJSON_free(s);
    cJSON_Delete(o);
    return r;
}

static int write_split(StoreFile *f, const char *name, Item *it, size_t n, const char *desc, Err *e) {
    const char **s = xmalloc(sizeof(char *) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) s[i] = it[i].text;
    int64_t d = (int64_t)n;
    int rc = store_write_strings(f, name, s, 1, &d, desc, e);
    free(s);
    return rc;
}

/* Rank 0: the whole stage (world_size: the job's ranks, for the provenance).  -1 with e set. */
static int do_ingest(const Config *cfg, int argc, char **argv, int world_size, int dry_run, Err *e) {
    const char *out = cfg->data.path;
    char *sig = signature(cfg);
    if (util_file_exists(out)) {
        StoreFile *f = store_open(out, 0, e);
        if (!f) {
            free(sig);
            return err_suffix(e, " (hint: remove it or choose another data.path)");
        }
        char *old = store_exists(f, "/inputs") ? store_get_attr_str(f, "/inputs", "ingest_signature", e) : NULL;
        store_close(f, NULL);
        int same = old && !strcmp(old, sig);
        free(old);
        if (same) {
            log_info("ingest: %s already holds these inputs (same ingest settings); nothing to do", out);
            free(sig);
            return 0;
        }
        free(sig);
        return err_set(e, "%s exists with other inputs or none (hint: remove it, or choose another data.path; "
                          "it may hold paid teacher answers)", out);
    }
    StrVec raw = {0}, raw_ood = {0};
    int rc = 0;
    int wordnet = !strcmp(cfg->ingest.source, "wordnet");
    if (wordnet) {
        rc = ingest_read_wordnet(WORDNET_DIR "/data.noun", &raw, e);
        if (rc == 0) rc = ingest_read_wordnet(WORDNET_DIR "/data.verb", &raw, e);
        if (rc == 0 && !cfg->ingest.ood_source[0]) {
            rc = ingest_read_wordnet(WORDNET_DIR "/data.adj", &raw_ood, e);
            if (rc == 0) rc = ingest_read_wordnet(WORDNET_DIR "/data.adv", &raw_ood, e);
        }
    } else {
        rc = ingest_read_file(cfg->ingest.source, config_enum_name("ingest.format", cfg->ingest.format), cfg->ingest.field, &raw, e);
    }
    if (rc == 0 && cfg->ingest.ood_source[0])
        rc = ingest_read_file(cfg->ingest.ood_source, config_enum_name("ingest.format", cfg->ingest.format), cfg->ingest.field, &raw_ood, e);
    if (rc != 0) {
        strvec_free(&raw), strvec_free(&raw_ood), free(sig);
        return -1;
    }
    StrSet seen = {0};
    Counts ct = {0}, cto = {0};
    Item *items, *ood;
    size_t n = prepare(cfg, &raw, &seen, &items, &ct);
    if (cfg->ingest.limit > 0 && n > (size_t)cfg->ingest.limit) {
        for (size_t i = (size_t)cfg->ingest.limit; i < n; i++) free(items[i].text);
        n = (size_t)cfg->ingest.limit;
    }
    size_t no = prepare(cfg, &raw_ood, &seen, &ood, &cto);
    if (cfg->ingest.ood_limit >= 0 && no > (size_t)cfg->ingest.ood_limit) {
        for (size_t i = (size_t)cfg->ingest.ood_limit; i < no; i++) free(ood[i].text);
        no = (size_t)cfg->ingest.ood_limit;
    }
    strvec_free(&raw), strvec_free(&raw_ood);
    set_free(&seen);
    /* split by the hash value itself: eval iff h / 2^64 < eval_fraction */
    Item *tr = xmalloc(sizeof(Item) * (n ? n : 1)), *ev = xmalloc(sizeof(Item) * (n ? n : 1));
    size_t ntr = 0, nev = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t hh = rng_derive(items[i].h, 0xe7a1, 0);
        double u = (double)(hh >> 11) * (1.0 / 9007199254740992.0);
        if (u < cfg->ingest.eval_fraction) ev[nev++] = items[i];
        else tr[ntr++] = items[i];
    }
    log_info("ingest: %lld inputs read from %s: %lld empty, %lld shorter than %d words, %lld longer than %d, "
             "%lld duplicates -> %zu kept (limit %lld): %zu train, %zu eval; %zu ood",
             (long long)ct.read, cfg->ingest.source, (long long)ct.empty, (long long)ct.too_short,
             cfg->ingest.min_words, (long long)ct.too_long, cfg->ingest.max_words, (long long)ct.duplicates,
             n, (long long)cfg->ingest.limit, ntr, nev, no);
    if (ntr == 0) rc = err_set(e, "%s: no training inputs left after filtering (hint: check ingest.min_words/max_words and the file)",
                               cfg->ingest.source);
    if (rc == 0 && !dry_run) {
        char *tmp = xasprintf("%s.tmp", out);
        char *dir = xstrdup(out);
        char *slash = strrchr(dir, '/');
        if (slash) {
            *slash = 0;
            if (dir[0]) rc = util_mkdir_p(dir, e);
        }
        free(dir);
        StoreFile *f = rc == 0 ? store_create(tmp, e) : NULL;
        if (!f) rc = -1;
        Provenance prov;
        prov_collect(&prov, argc, argv, world_size);
        char *json = config_to_json(cfg);
        if (rc == 0)
            rc = write_split(f, "/inputs/train", tr, ntr, "literal inputs for training (UTF-8)", e) ||
                 write_split(f, "/inputs/eval", ev, nev, "literal inputs held out for evaluation", e) ||
                 write_split(f, "/inputs/ood", ood, no, "out-of-distribution literal inputs for evaluation", e) ||
                 store_set_attr_str(f, "/inputs", "ingest_signature", sig, e) ||
                 store_set_attr_str(f, "/inputs", "source", cfg->ingest.source, e) ||
                 store_set_attr_i64(f, "/inputs", "read", ct.read, e) ||
                 store_set_attr_i64(f, "/inputs", "duplicates", ct.duplicates + cto.duplicates, e) ||
                 store_set_attr_i64(f, "/inputs", "too_short", ct.too_short, e) ||
                 store_set_attr_i64(f, "/inputs", "too_long", ct.too_long, e) ||
                 store_set_attr_str(f, "/", "format", "hdistill-data", e) ||
                 store_set_attr_i64(f, "/", "format_version", 1, e) ||
                 store_write_string(f, "/config", json, "resolved configuration of ingest (JSON)", e) ||
                 prov_write(f, "/provenance", &prov, e);
        if (f && store_close(f, rc ? NULL : e) != 0) rc = -1;
        if (rc == 0) rc = util_rename_durable(tmp, out, e);
        if (rc != 0) unlink(tmp);
        else log_info("ingest: wrote %s", out);
        prov_free(&prov);
        free(json);
        free(tmp);
    }
    for (size_t i = 0; i < n; i++) free(items[i].text);
    for (size_t i = 0; i < no; i++) free(ood[i].text);
    free(items), free(ood), free(tr), free(ev), free(sig);
    return rc;
}

int ingest_main(const Config *cfg, const Comm *comm, int argc, char **argv, int dry_run) {
    Err e = {{0}};
    int rc = 0;
    /* a data.h5 that exists is only read (same inputs: nothing to do; others: an error); one to be
     * written has one writer, which checks again under the lock */
    int lock = comm->rank == 0 && !dry_run && !util_file_exists(cfg->data.path);
    if (lock) rc = lock_acquire(cfg->data.path, LOCK_DATA_FILE, cfg->run.lock_wait, &e);
    if (comm->rank == 0 && rc == 0) rc = do_ingest(cfg, argc, argv, comm->size, dry_run, &e);
    if (lock) lock_release(cfg->data.path, LOCK_DATA_FILE);
    comm_check(rc, e.msg, EXIT_USAGE);
    return EXIT_OK;
}

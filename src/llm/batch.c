/* batch -- the OpenAI Batch API through an LlmClient; see include/llm/batch.h.
 *
 * llm_batch_run: lookups in the cache, then rounds of batch_resume (the
 * journal's unfinished batches), batch_submit (new chunks for what no batch
 * covers), batch_poll (until every batch ended or a stop signal); failed
 * lines are retried as the options say; duplicates get their
 * representative's answer. */
#include "llm/batch.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "base/text.h"

#define BATCH_MAX_LINES 50000

/* snprintf for messages: a message longer than its buffer is cut, on purpose */
static int msgf(char *dst, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int msgf(char *dst, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(dst, n, fmt, ap);
    va_end(ap);
    return k;
}
#define BATCH_MAX_BYTES (200u * 1000u * 1000u)

void llm_batch_options_init(LlmBatchOptions *o) {
    memset(o, 0, sizeof *o);
    o->poll = 30;
    o->max_lines = BATCH_MAX_LINES;
    o->max_bytes = BATCH_MAX_BYTES;
    o->completion_window = "24h";
    o->price_factor = 1;
}

void llm_batch_options_for(LlmBatchOptions *o, const EndpointConfig *ec) {
    llm_batch_options_init(o);
    if (ec && ec->batch_poll > 0) o->poll = ec->batch_poll;
    o->price_factor = 0.5;             /* OpenAI and Azure bill batch requests at half the list price */
    o->retry = LLM_BATCH_RETRY_SYNC;   /* the few lines that fail are asked again at once */
}

/* ---- the journal -------------------------------------------------------------- */

typedef struct {
    char *file_id, *batch_id; /* batch_id NULL until submitted */
    char **keys;
    size_t n_keys;
    int done;                 /* results are in the cache (or it is gone) */
    int active;               /* this run polls it */
    int failed_create;        /* this run could not create it */
} JBatch;

typedef struct {
    char *path;
    int fd;
    JBatch *b;
    size_t n;
} Journal;

static JBatch *journal_find(Journal *j, const char *file_id, const char *batch_id) {
    for (size_t i = 0; i < j->n; i++) {
        if (file_id && !strcmp(j->b[i].file_id, file_id)) return &j->b[i];
        if (batch_id && j->b[i].batch_id && !strcmp(j->b[i].batch_id, batch_id)) return &j->b[i];
    }
    return NULL;
}

static JBatch *journal_add(Journal *j, const char *file_id, char *keys_csv) {
    j->b = xrealloc(j->b, sizeof(JBatch) * (j->n + 1));
    JBatch *b = &j->b[j->n++];
    memset(b, 0, sizeof *b);
    b->file_id = xstrdup(file_id);
    for (char *k = strtok(keys_csv, ","); k; k = strtok(NULL, ",")) {
        b->keys = xrealloc(b->keys, sizeof(char *) * (b->n_keys + 1));
        b->keys[b->n_keys++] = xstrdup(k);
    }
    return b;
}

/* Applies one record ("HDBJ1 kind ..." without its checksum); 0 or -1. */
static int journal_apply(Journal *j, char *rec) {
    char kind[16], a[128], bb[128];
    long n = 0;
    if (sscanf(rec, "HDBJ1 %15s %127s", kind, a) != 2) return -1;
    if (!strcmp(kind, "upload")) {
        char *keys = strrchr(rec, ' ');
        if (!keys || sscanf(rec, "HDBJ1 upload %127s %ld", a, &n) != 2) return -1;
        JBatch *b = journal_add(j, a, keys + 1);
        return (long)b->n_keys == n ? 0 : -1;
    }
    if (!strcmp(kind, "submit")) {
        if (sscanf(rec, "HDBJ1 submit %127s %127s", a, bb) != 2) return -1;
        JBatch *b = journal_find(j, bb, NULL);
        if (!b) return -1;
        free(b->batch_id);
        b->batch_id = xstrdup(a);
        return 0;
    }
    if (!strcmp(kind, "done")) {
        JBatch *b = journal_find(j, NULL, a);
        if (b) b->done = 1;
        return b ? 0 : -1;
    }
    return -1;
}

/* Reads every whole, valid record; cuts a torn or bad tail off. */
static int journal_load(Journal *j, Err *e) {
    size_t len = 0;
    char *buf = util_read_file(j->path, &len, e);
    if (!buf) return -1;
    size_t off = 0;
    while (off < len) {
        char *nl = memchr(buf + off, '\n', len - off);
        if (!nl) break;
        *nl = 0;
        char *line = buf + off, *sum = strrchr(line, ' ');
        if (!sum || strlen(sum + 1) != 16) break;
        *sum = 0;
        if (strtoull(sum + 1, NULL, 16) != text_fnv1a64(line, strlen(line)) || journal_apply(j, line) != 0) break;
        off = (size_t)(nl - buf) + 1;
    }
    free(buf);
    if (off < len) {
        log_warn("%s: dropping %zu bytes of an incomplete record at the end (killed mid-write?)", j->path, len - off);
        if (ftruncate(j->fd, (off_t)off) != 0) return err_set(e, "%s: cannot cut the torn tail: %s", j->path, strerror(errno));
    }
    return 0;
}

static void journal_close(Journal *j) {
    for (size_t i = 0; i < j->n; i++) {
        for (size_t k = 0; k < j->b[i].n_keys; k++) free(j->b[i].keys[k]);
        free(j->b[i].keys);
        free(j->b[i].file_id);
        free(j->b[i].batch_id);
    }
    free(j->b);
    if (j->fd >= 0) close(j->fd);
    free(j->path);
    memset(j, 0, sizeof *j);
    j->fd = -1;
}

static int journal_open(Journal *j, const char *path, Err *e) {
    memset(j, 0, sizeof *j);
    j->path = xstrdup(path);
    j->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (j->fd < 0) return err_set(e, "%s: cannot open the batch journal: %s", path, strerror(errno));
    if (flock(j->fd, LOCK_EX | LOCK_NB) != 0)
        return err_set(e, "%s: the batch journal is in use by another process (hint: one stage per cache file)", path);
    return journal_load(j, e);
}

/* Appends "rec <fnv16>\n" with one write(2), then fsyncs. */
static int journal_append(Journal *j, const char *rec, Err *e) {
    char *line = xasprintf("%s %016llx\n", rec, (unsigned long long)text_fnv1a64(rec, strlen(rec)));
    size_t n = strlen(line), done = 0;
    int rc = 0;
    while (done < n && rc == 0) {
        ssize_t w = write(j->fd, line + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) rc = err_set(e, "%s: cannot append to the batch journal: %s (disk full?)", j->path, strerror(errno));
        else done += (size_t)w;
    }
    if (rc == 0 && fsync(j->fd) != 0) rc = err_set(e, "%s: fsync failed: %s", j->path, strerror(errno));
    free(line);
    return rc;
}

/* ---- the run ------------------------------------------------------------------- */

typedef struct {
    const char *key;
    long idx;
} KeyIdx;

typedef struct {
    LlmClient *c;
    const ChatRequest *reqs;
    LlmResult *res;
    size_t n;
    const LlmBatchOptions *o;
    LlmBatchStats st;
    Journal j;
    char (*key)[65];
    long *rep;           /* the first request with the same key */
    int *pending;        /* representative still needs an answer */
    int *cached;         /* served from the cache */
    int *resynced;       /* asked again through llm_run (which counted it) */
    double *held_usd;    /* budget held by representative i */
    int64_t *held_tok;
    KeyIdx *ki;          /* representatives by key, sorted */
    size_t nki;
    double factor;
    const char *progress;
    double last_progress, t0;
    int stopped;
} Batch;

static int cmp_ki(const void *a, const void *b) {
    return strcmp(((const KeyIdx *)a)->key, ((const KeyIdx *)b)->key);
}

static long rep_of_key(const Batch *B, const char *key) {
    KeyIdx k = {key, -1};
    KeyIdx *f = bsearch(&k, B->ki, B->nki, sizeof *B->ki, cmp_ki);
    return f ? f->idx : -1;
}

/* Sets a final-for-this-round result of representative i. */
static void line_result(Batch *B, long i, LlmStatus st, const char *msg) {
    LlmResult *r = &B->res[i];
    llm_result_free(r);
    r->status = st;
    msgf(r->error, sizeof r->error, "%.250s", msg);
    B->pending[i] = 0;
}

static void settle_line(Batch *B, long i, double usd, int64_t tok) {
    LlmBudget *bud = llm_client_budget(B->c);
    if (!bud || (B->held_usd[i] <= 0 && B->held_tok[i] <= 0 && tok <= 0)) return;
    Err e;
    if (budget_settle(bud, B->held_usd[i], B->held_tok[i], usd, tok, &e) != 0) log_warn("%s", e.msg);
    B->held_usd[i] = 0;
    B->held_tok[i] = 0;
}

/* Keys, representatives and cache lookups; returns the number pending. */
static size_t batch_begin(Batch *B) {
    size_t n = B->n, pend = 0;
    B->key = xcalloc(n ? n : 1, sizeof *B->key);
    B->rep = xcalloc(n ? n : 1, sizeof(long));
    B->pending = xcalloc(n ? n : 1, sizeof(int));
    B->cached = xcalloc(n ? n : 1, sizeof(int));
    B->resynced = xcalloc(n ? n : 1, sizeof(int));
    B->held_usd = xcalloc(n ? n : 1, sizeof(double));
    B->held_tok = xcalloc(n ? n : 1, sizeof(int64_t));
    B->ki = xcalloc(n ? n : 1, sizeof(KeyIdx));
    for (size_t i = 0; i < n; i++) chat_request_key(&B->reqs[i], B->key[i]);
    for (size_t i = 0; i < n; i++) B->ki[i] = (KeyIdx){B->key[i], (long)i};
    qsort(B->ki, n, sizeof *B->ki, cmp_ki); /* equal keys: the lowest index first after the pass below */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && !strcmp(B->ki[m - 1].key, B->ki[i].key)) {
            if (B->ki[i].idx < B->ki[m - 1].idx) B->ki[m - 1].idx = B->ki[i].idx;
            continue;
        }
        B->ki[m++] = B->ki[i];
    }
    B->nki = m;
    LlmUsage *u = llm_client_usage(B->c);
    u->requests += (int64_t)n;
    for (size_t i = 0; i < n; i++) {
        B->rep[i] = rep_of_key(B, B->key[i]);
        if (B->rep[i] != (long)i) {
            B->st.duplicates++;
            continue;
        }
        if (llm_cached_result(B->c, &B->reqs[i], &B->res[i])) {
            B->cached[i] = 1;
            u->cache_hits++;
        } else {
            B->pending[i] = 1;
            pend++;
        }
    }
    return pend;
}

/* ---- HTTP helpers ------------------------------------------------------------------ */

/* GET/POST path; the parsed JSON object of a 200, or NULL with msg set
 * (*http the status, 0 on a transport error). */
static cJSON *call_json(Batch *B, const char *method, const char *path, const char *body, long *http, char *msg,
                        size_t n) {
    LlmHttp h;
    Err e;
    *http = 0;
    if (llm_http(B->c, method, path, body, &h, &e) != 0) {
        msgf(msg, n, "%.300s", e.msg);
        return NULL;
    }
    *http = h.status;
    cJSON *o = NULL;
    if (h.status != 200) llm_http_error(&h, msg, n);
    else if (!(o = cJSON_ParseWithLength(h.body, h.len)) || !cJSON_IsObject(o))
        msgf(msg, n, "%s %s: the answer is not a JSON object", method, path);
    if (o && !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = NULL;
    }
    llm_http_free(&h);
    return o;
}

static const char *str_of(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* POST /batches for file_id; the new batch id (malloc'd) or NULL with msg. */
static char *create_batch(Batch *B, const char *file_id, size_t lines, char *msg, size_t n) {
    cJSON *req = cJSON_CreateObject();
    CHECK(req, "cJSON alloc");
    cJSON_AddStringToObject(req, "input_file_id", file_id);
    cJSON_AddStringToObject(req, "endpoint", "/v1/chat/completions");
    cJSON_AddStringToObject(req, "completion_window", B->o->completion_window ? B->o->completion_window : "24h");
    cJSON *meta = cJSON_AddObjectToObject(req, "metadata");
    char lines_s[32];
    msgf(lines_s, sizeof lines_s, "%zu", lines);
    cJSON_AddStringToObject(meta, "hdistill_lines", lines_s);
    char *body = cJSON_PrintUnformatted(req);
    CHECK(body, "cJSON print");
    cJSON_Delete(req);
    long http;
    cJSON *o = call_json(B, "POST", "/batches", body, &http, msg, n);
    cJSON_free(body);
    const char *id = o ? str_of(o, "id") : NULL;
    char *out = id ? xstrdup(id) : NULL;
    if (o && !id) msgf(msg, n, "POST /batches: no id in the answer");
    cJSON_Delete(o);
    if (out) B->st.batches_created++;
    return out;
}

/* The batch whose input_file_id is file_id, from GET /batches (all pages);
 * its id (malloc'd) or NULL. */
static char *find_batch_by_file(Batch *B, const char *file_id) {
    char *after = NULL, *found = NULL, msg[300];
    for (int page = 0; page < 1000 && !found; page++) {
        char *path = after ? xasprintf("/batches?limit=100&after=%s", after) : xstrdup("/batches?limit=100");
        long http;
        cJSON *o = call_json(B, "GET", path, NULL, &http, msg, sizeof msg);
        free(path);
        if (!o) {
            log_warn("%s: cannot list batches: %s", llm_client_endpoint(B->c)->name, msg);
            break;
        }
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(o, "data"), *b;
        const char *last = NULL;
        cJSON_ArrayForEach(b, data) {
            const char *f = str_of(b, "input_file_id");
            last = str_of(b, "id");
            if (f && last && !strcmp(f, file_id) && !found) found = xstrdup(last);
        }
        int more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "has_more")) && last;
        free(after);
        after = more ? xstrdup(last) : NULL;
        cJSON_Delete(o);
        if (!more) break;
    }
    free(after);
    return found;
}

/* ---- resume and submit ---------------------------------------------------------------- */

/* Makes every unfinished journal batch active: submitted ones are polled
 * again; uploaded-but-unsubmitted ones are adopted from the server's list
 * or created now. */
static void batch_resume(Batch *B) {
    for (size_t k = 0; k < B->j.n; k++) {
        JBatch *b = &B->j.b[k];
        if (b->done || b->active || b->failed_create) continue;
        if (b->batch_id) {
            b->active = 1;
            B->st.batches_resumed++;
            continue;
        }
        char msg[300] = "";
        char *id = find_batch_by_file(B, b->file_id);
        if (id) B->st.batches_adopted++;
        else id = create_batch(B, b->file_id, b->n_keys, msg, sizeof msg);
        if (!id) {
            log_warn("%s: cannot create the batch of uploaded file %s: %s", llm_client_endpoint(B->c)->name,
                     b->file_id, msg);
            b->failed_create = 1;
            continue;
        }
        char *rec = xasprintf("HDBJ1 submit %s %s", id, b->file_id);
        Err e;
        if (journal_append(&B->j, rec, &e) != 0) DIE("%s (batch %s was created: poll it by hand)", e.msg, id);
        free(rec);
        b->batch_id = id;
        b->active = 1;
    }
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The keys of every active batch of the journal, sorted (free the array only). */
static char **covered_keys(const Batch *B, size_t *n) {
    size_t m = 0;
    for (size_t k = 0; k < B->j.n; k++)
        if (B->j.b[k].active) m += B->j.b[k].n_keys;
    char **keys = xmalloc(sizeof(char *) * (m ? m : 1));
    m = 0;
    for (size_t k = 0; k < B->j.n; k++)
        if (B->j.b[k].active)
            for (size_t i = 0; i < B->j.b[k].n_keys; i++) keys[m++] = B->j.b[k].keys[i];
    qsort(keys, m, sizeof *keys, cmp_str);
    *n = m;
    return keys;
}

/* Reserves the budget of representative i; 0, or -1 when it was refused. */
static int reserve_line(Batch *B, long i) {
    LlmBudget *bud = llm_client_budget(B->c);
    if (!bud) return 0;
    double usd;
    int64_t tok;
    llm_request_bound(B->c, &B->reqs[i], &usd, &tok);
    usd *= B->factor;
    Err e;
    int v = budget_reserve(bud, usd, tok, &e);
    if (v == BUDGET_OK) {
        B->held_usd[i] = usd;
        B->held_tok[i] = tok;
        return 0;
    }
    char m[300];
    if (v < 0) msgf(m, sizeof m, "not sent: the budget cannot be checked: %.200s", e.msg);
    else msgf(m, sizeof m, "not sent: with the lines already reserved it could cost more than the budget "
                               "(up to $%.4f / %lld tokens for this line)", usd, (long long)tok);
    line_result(B, i, LLM_E_BUDGET, m);
    return -1;
}

/* Uploads one chunk (lines of JSONL for representatives idx[0..m)),
 * journals it, creates its batch and journals that. */
static void submit_chunk(Batch *B, const ByteBuf *jsonl, const long *idx, size_t m) {
    const char *name = llm_client_endpoint(B->c)->name;
    char fname[64], msg[300];
    msgf(fname, sizeof fname, "hdistill-batch-%.12s.jsonl", B->key[idx[0]]);
    LlmHttp h;
    Err e;
    cJSON *f = NULL;
    if (llm_http_upload(B->c, "/files", "batch", fname, jsonl->a, jsonl->n, &h, &e) != 0) {
        msgf(msg, sizeof msg, "upload of a batch file failed: %.250s", e.msg);
    } else {
        if (h.status != 200) llm_http_error(&h, msg, sizeof msg);
        else if (!(f = cJSON_ParseWithLength(h.body, h.len)) || !str_of(f, "id"))
            msgf(msg, sizeof msg, "POST /files: no file id in the answer");
        llm_http_free(&h);
    }
    const char *file_id = f ? str_of(f, "id") : NULL;
    if (!file_id) {
        for (size_t k = 0; k < m; k++) {
            settle_line(B, idx[k], 0, 0);
            line_result(B, idx[k], LLM_E_BATCH, msg);
        }
        cJSON_Delete(f);
        return;
    }
    ByteBuf rec = {0};
    bytebuf_printf(&rec, "HDBJ1 upload %s %zu ", file_id, m);
    for (size_t k = 0; k < m; k++) bytebuf_printf(&rec, "%s%s", k ? "," : "", B->key[idx[k]]);
    if (journal_append(&B->j, rec.a, &e) != 0) DIE("%s", e.msg);
    char *keys = xstrdup(rec.a + strlen("HDBJ1 upload ") + strlen(file_id) + 1);
    char *csv = strchr(keys, ' ') + 1;
    JBatch *b = journal_add(&B->j, file_id, csv);
    free(keys);
    bytebuf_free(&rec);
    B->st.lines_submitted += (int64_t)m;
    llm_client_usage(B->c)->sent += (int64_t)m;
    char *id = create_batch(B, file_id, m, msg, sizeof msg);
    if (id && B->o->fault_exit_after_create && B->st.batches_created == B->o->fault_exit_after_create) _exit(99);
    if (id) {
        char *r2 = xasprintf("HDBJ1 submit %s %s", id, file_id);
        if (journal_append(&B->j, r2, &e) != 0) DIE("%s (batch %s was created: poll it by hand)", e.msg, id);
        free(r2);
        b->batch_id = id;
        b->active = 1;
    } else {
        log_warn("%s: cannot create a batch for %s: %s", name, file_id, msg);
        b->failed_create = 1;
        for (size_t k = 0; k < m; k++) {
            settle_line(B, idx[k], 0, 0);
            line_result(B, idx[k], LLM_E_BATCH, msg);
        }
    }
    cJSON_Delete(f);
}

/* Chunks of at most max_lines / max_bytes for every pending representative
 * no active batch covers. */
static void batch_submit(Batch *B) {
    size_t max_lines = B->o->max_lines ? B->o->max_lines : BATCH_MAX_LINES;
    size_t max_bytes = B->o->max_bytes ? B->o->max_bytes : BATCH_MAX_BYTES;
    ByteBuf jsonl = {0};
    long *idx = xmalloc(sizeof(long) * (B->n ? B->n : 1));
    size_t m = 0, n_cov;
    char **cov = covered_keys(B, &n_cov);
    for (size_t i = 0; i <= B->n && !util_stop_signal(); i++) {
        char *line = NULL;
        if (i < B->n) {
            const char *k = B->key[i];
            if (!B->pending[i] || bsearch(&k, cov, n_cov, sizeof *cov, cmp_str)) continue;
            char *body = chat_request_body(&B->reqs[i]);
            line = xasprintf("{\"custom_id\":\"%s\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":%s}\n",
                             B->key[i], body);
            free(body);
            if (strlen(line) > max_bytes) {
                line_result(B, (long)i, LLM_E_BATCH, "the request is larger than a batch input file may be");
                free(line);
                continue;
            }
        }
        int full = m && (!line || m == max_lines || jsonl.n + strlen(line) > max_bytes);
        if (full) {
            submit_chunk(B, &jsonl, idx, m);
            m = 0;
            jsonl.n = 0;
        }
        if (!line) continue;
        if (reserve_line(B, (long)i) == 0) {
            bytebuf_put(&jsonl, line, strlen(line));
            idx[m++] = (long)i;
        }
        free(line);
    }
    for (size_t k = 0; k < m; k++) settle_line(B, idx[k], 0, 0); /* stopped before this chunk went up */
    free(cov);
    bytebuf_free(&jsonl);
    free(idx);
}

/* ---- results ------------------------------------------------------------------------------ */

/* One line of an output or error file. */
static void handle_line(Batch *B, const JBatch *jb, const char *text, size_t len) {
    cJSON *o = cJSON_ParseWithLength(text, len);
    const char *key = o ? str_of(o, "custom_id") : NULL;
    if (!key || strlen(key) != 64) {
        log_warn("batch %s: an output line without a custom_id was ignored", jb->batch_id);
        cJSON_Delete(o);
        return;
    }
    const cJSON *resp = cJSON_GetObjectItemCaseSensitive(o, "response");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
    const cJSON *code = cJSON_IsObject(resp) ? cJSON_GetObjectItemCaseSensitive(resp, "status_code") : NULL;
    const cJSON *body = cJSON_IsObject(resp) ? cJSON_GetObjectItemCaseSensitive(resp, "body") : NULL;
    long http = cJSON_IsNumber(code) ? (long)code->valuedouble : 0;
    char *btext = body ? cJSON_PrintUnformatted(body) : NULL;
    long i = rep_of_key(B, key);
    LlmCache *cache = llm_client_cache(B->c);
    if (i < 0 || !B->pending[i]) { /* another run's request (or answered): keep a good answer */
        if (i < 0 && http == 200 && btext && !cache_get(cache, key, NULL)) {
            Err e;
            if (cache_put(cache, key, btext, strlen(btext), &e) != 0) DIE("%s", e.msg);
        }
    } else if (http == 200 && btext) {
        LlmResult *r = &B->res[i];
        llm_result_free(r);
        LlmStatus st = llm_accept_body(B->c, &B->reqs[i], btext, strlen(btext), B->factor, r);
        const ChatResponse *p = &r->resp;
        int usage = r->body && p->prompt_tokens >= 0 && p->completion_tokens >= 0;
        const LlmEndpoint *ep = llm_client_endpoint(B->c);
        settle_line(B, i, usage ? B->factor * ((double)p->prompt_tokens * ep->price_in +
                                               (double)p->completion_tokens * ep->price_out) / 1e6 : 0,
                    usage ? p->prompt_tokens + p->completion_tokens : 0);
        B->pending[i] = 0;
        if (st == LLM_OK) B->st.answered++;
        else B->st.failed_lines++;
    } else {
        char m[300], d[260];
        ChatError er;
        LlmStatus st = LLM_E_BATCH;
        const char *code = cJSON_IsObject(err) ? str_of(err, "code") : NULL;
        if (http && btext && chat_error_parse(btext, strlen(btext), &er)) {
            chat_error_format(&er, d, sizeof d);
            st = llm_status_of_error(http, &er);
            msgf(m, sizeof m, "batch %s: HTTP %ld: %s", jb->batch_id, http, d);
        } else if (cJSON_IsObject(err)) {
            msgf(m, sizeof m, "batch %s: %s: %.200s", jb->batch_id, code ? code : "error",
                 str_of(err, "message") ? str_of(err, "message") : "");
        } else {
            msgf(m, sizeof m, "batch %s: a line with HTTP %ld and no body", jb->batch_id, http);
        }
        if (code && (!strcmp(code, "batch_expired") || !strcmp(code, "batch_cancelled"))) B->st.expired_lines++;
        else B->st.failed_lines++;
        settle_line(B, i, 0, 0);
        line_result(B, i, st, m);
    }
    cJSON_free(btext);
    cJSON_Delete(o);
}

/* Downloads file id and handles each line; -1 with msg set when it could not be read. */
static int read_file_lines(Batch *B, const JBatch *jb, const char *id, char *msg, size_t n) {
    char *path = xasprintf("/files/%s/content", id);
    LlmHttp h;
    Err e;
    int rc = llm_http(B->c, "GET", path, NULL, &h, &e);
    free(path);
    if (rc != 0) {
        msgf(msg, n, "%.280s", e.msg);
        return -1;
    }
    if (h.status != 200) {
        llm_http_error(&h, msg, n);
        llm_http_free(&h);
        return -1;
    }
    for (size_t off = 0; off < h.len;) {
        char *nl = memchr(h.body + off, '\n', h.len - off);
        size_t l = nl ? (size_t)(nl - (h.body + off)) : h.len - off;
        if (l) handle_line(B, jb, h.body + off, l);
        off += l + 1;
    }
    llm_http_free(&h);
    return 0;
}

/* A batch that ended: its files into the cache, the rest failed; journaled
 * as done.  -1 (still active) when a file could not be downloaded. */
static int batch_collect(Batch *B, JBatch *jb, const cJSON *o) {
    const char *status = str_of(o, "status");
    const char *files[2] = {str_of(o, "output_file_id"), str_of(o, "error_file_id")};
    char msg[300];
    for (int k = 0; k < 2; k++)
        if (files[k] && read_file_lines(B, jb, files[k], msg, sizeof msg) != 0) {
            log_warn("batch %s: cannot read file %s (will try again): %s", jb->batch_id, files[k], msg);
            return -1;
        }
    const cJSON *errs = cJSON_GetObjectItemCaseSensitive(o, "errors");
    const cJSON *d0 = cJSON_IsObject(errs) ? cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(errs, "data"), 0) : NULL;
    char why[300];
    msgf(why, sizeof why, "batch %s ended %s without an answer for this request%s%.200s", jb->batch_id,
             status ? status : "?", d0 ? ": " : "", d0 && str_of(d0, "message") ? str_of(d0, "message") : "");
    for (size_t k = 0; k < jb->n_keys; k++) {
        long i = rep_of_key(B, jb->keys[k]);
        if (i < 0 || !B->pending[i]) continue;
        B->st.expired_lines++;
        settle_line(B, i, 0, 0);
        line_result(B, i, LLM_E_BATCH, why);
    }
    char *rec = xasprintf("HDBJ1 done %s", jb->batch_id);
    Err e;
    if (journal_append(&B->j, rec, &e) != 0) DIE("%s", e.msg);
    free(rec);
    jb->done = 1;
    jb->active = 0;
    return 0;
}

/* A batch the server does not know (404) or refuses to show: its lines fail. */
static void batch_lost(Batch *B, JBatch *jb, long http, const char *msg) {
    char why[300];
    msgf(why, sizeof why, "batch %s: %.250s", jb->batch_id, msg);
    for (size_t k = 0; k < jb->n_keys; k++) {
        long i = rep_of_key(B, jb->keys[k]);
        if (i < 0 || !B->pending[i]) continue;
        settle_line(B, i, 0, 0);
        line_result(B, i, http == 404 ? LLM_E_BATCH : LLM_E_HTTP4XX, why);
    }
    jb->active = 0;
    if (http == 404) { /* gone for good: the keys are free for a new batch */
        char *rec = xasprintf("HDBJ1 done %s", jb->batch_id);
        Err e;
        if (journal_append(&B->j, rec, &e) != 0) DIE("%s", e.msg);
        free(rec);
        jb->done = 1;
    }
}

static int terminal(const char *s) {
    return s && (!strcmp(s, "completed") || !strcmp(s, "failed") || !strcmp(s, "expired") || !strcmp(s, "cancelled"));
}

/* Polls every active batch once; returns how many are still active. */
static size_t poll_round(Batch *B) {
    size_t active = 0;
    for (size_t k = 0; k < B->j.n && !util_stop_signal(); k++) {
        JBatch *jb = &B->j.b[k];
        if (!jb->active) continue;
        char *path = xasprintf("/batches/%s", jb->batch_id), msg[300];
        long http;
        cJSON *o = call_json(B, "GET", path, NULL, &http, msg, sizeof msg);
        free(path);
        B->st.polls++;
        if (!o && http >= 400 && http < 500 && http != 408 && http != 409 && http != 429) batch_lost(B, jb, http, msg);
        else if (!o) log_warn("batch %s: poll failed (will try again): %s", jb->batch_id, msg);
        else if (terminal(str_of(o, "status"))) batch_collect(B, jb, o);
        cJSON_Delete(o);
        active += jb->active;
    }
    return active;
}

static void batch_progress(Batch *B, size_t active, int final) {
    if (!B->progress || util_rank() != 0) return;
    double now = util_now();
    if (!final && now - B->last_progress < 10.0) return;
    B->last_progress = now;
    size_t pend = 0;
    for (size_t i = 0; i < B->n; i++) pend += B->pending[i];
    log_info("[%s] batch: %zu batches running, %zu requests waiting, %lld answered, %lld failed, %lld expired, "
             "%.0f s", B->progress, active, pend, (long long)B->st.answered, (long long)B->st.failed_lines,
             (long long)B->st.expired_lines, now - B->t0);
}

/* Polls until no batch is active or a stop signal; the interval grows
 * 1.5x per round up to poll_max.  Resumed batches are polled at once. */
static void batch_poll(Batch *B, int fresh) {
    double interval = B->o->poll > 0 ? B->o->poll : 30;
    double cap = B->o->poll_max > 0 ? B->o->poll_max : 10 * interval;
    double next = util_now() + (fresh ? interval : 0);
    for (;;) {
        while (util_now() < next && !util_stop_signal()) {
            double left = next - util_now();
            usleep((useconds_t)((left < 0.1 ? left : 0.1) * 1e6) + 1);
        }
        if (util_stop_signal()) {
            B->stopped = 1;
            return;
        }
        size_t active = poll_round(B);
        batch_progress(B, active, active == 0);
        if (!active) return;
        interval = interval * 1.5 < cap ? interval * 1.5 : cap;
        next = util_now() + interval;
    }
}

/* ---- the whole run -------------------------------------------------------------------------- */

static int retryable(LlmStatus s) {
    return s == LLM_E_BATCH || s == LLM_E_RATE || s == LLM_E_HTTP5XX || s == LLM_E_MALFORMED || s == LLM_E_SCHEMA ||
           s == LLM_E_EMPTY;
}

/* Failed lines asked again through llm_run; returns how many. */
static size_t retry_sync(Batch *B) {
    size_t m = 0;
    long *idx = xmalloc(sizeof(long) * (B->n ? B->n : 1));
    for (size_t i = 0; i < B->n; i++)
        if (B->rep[i] == (long)i && !B->cached[i] && !B->pending[i] && retryable(B->res[i].status)) idx[m++] = (long)i;
    if (m) {
        ChatRequest *rq = xcalloc(m, sizeof *rq);
        LlmResult *rs = xcalloc(m, sizeof *rs);
        for (size_t k = 0; k < m; k++) chat_request_copy(&rq[k], &B->reqs[idx[k]]);
        llm_run(B->c, rq, m, rs, B->progress);
        for (size_t k = 0; k < m; k++) {
            llm_result_free(&B->res[idx[k]]);
            B->res[idx[k]] = rs[k];
            B->resynced[idx[k]] = 1;
            chat_request_free(&rq[k]);
        }
        /* llm_run counted these requests and their outcomes already */
        LlmUsage *u = llm_client_usage(B->c);
        u->requests -= (int64_t)m;
        free(rq), free(rs);
    }
    free(idx);
    B->st.retried_sync += (int64_t)m;
    return m;
}

/* Marks failed lines pending again for a new batch; returns how many. */
static size_t retry_batch(Batch *B) {
    size_t m = 0;
    for (size_t i = 0; i < B->n; i++)
        if (B->rep[i] == (long)i && !B->cached[i] && !B->pending[i] && retryable(B->res[i].status)) {
            llm_result_free(&B->res[i]);
            B->pending[i] = 1;
            m++;
        }
    B->st.retried_batch += (int64_t)m;
    return m;
}

/* Every request's final result: stopped ones, duplicates from their
 * representative; the usage record.  Returns the number of LLM_OK. */
static size_t batch_finish(Batch *B) {
    LlmUsage *u = llm_client_usage(B->c);
    size_t ok = 0;
    for (size_t i = 0; i < B->n; i++) {
        long r = B->rep[i];
        if (r == (long)i && B->pending[i]) {
            settle_line(B, (long)i, 0, 0);
            line_result(B, (long)i, LLM_E_STOPPED, "stopped by a signal before its batch ended (the journal keeps the "
                                                   "batch: the next run polls it again)");
        }
        if (r != (long)i) {
            LlmResult *d = &B->res[i], *s = &B->res[r];
            memset(d, 0, sizeof *d);
            if (!llm_cached_result(B->c, &B->reqs[i], d)) {
                d->status = s->status;
                memcpy(d->error, s->error, sizeof d->error);
            }
        }
        ok += B->res[i].status == LLM_OK;
    }
    for (size_t i = 0; i < B->n; i++) {
        if (B->rep[i] != (long)i || B->cached[i]) continue;
        LlmStatus s = B->res[i].status;
        if (B->resynced[i]) continue; /* counted by llm_run */
        if (s == LLM_OK) u->ok++;
        else if (s == LLM_E_STOPPED) u->stopped++;
        else {
            u->failed += s != LLM_E_REFUSED && s != LLM_E_FILTERED; /* those are answers, as in llm_run */
            u->errors[s]++;
        }
    }
    return ok;
}

static void batch_free(Batch *B) {
    free(B->key), free(B->rep), free(B->pending), free(B->cached), free(B->resynced);
    free(B->held_usd), free(B->held_tok), free(B->ki);
    journal_close(&B->j);
}

size_t llm_batch_run(LlmClient *c, const ChatRequest *reqs, size_t n, LlmResult *results, const LlmBatchOptions *o,
                     const char *progress) {
    Batch B;
    memset(&B, 0, sizeof B);
    B.c = c, B.reqs = reqs, B.res = results, B.n = n, B.o = o, B.progress = progress;
    B.factor = o->price_factor > 0 ? o->price_factor : 1;
    B.t0 = util_now();
    B.j.fd = -1;
    for (size_t i = 0; i < n; i++) memset(&results[i], 0, sizeof results[i]);
    LlmCache *cache = llm_client_cache(c);
    Err e = {{0}};
    char *jpath = o->journal ? xstrdup(o->journal) : cache ? xasprintf("%s.batches", cache_path(cache)) : NULL;
    size_t pend = batch_begin(&B);
    int rc = !cache ? err_set(&e, "batch mode needs the LLM cache (answers and the batch journal live there)")
                    : journal_open(&B.j, jpath, &e);
    free(jpath);
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            if (B.pending[i]) line_result(&B, (long)i, LLM_E_BATCH, e.msg);
        pend = 0;
    }
    for (int round = 0; pend && !B.stopped; round++) {
        int64_t created = B.st.batches_created;
        batch_resume(&B);
        batch_submit(&B);
        if (util_stop_signal()) B.stopped = 1;
        else batch_poll(&B, B.st.batches_created > created);
        if (B.stopped) break;
        if (o->retry == LLM_BATCH_RETRY_BATCH && round < o->max_rounds) pend = retry_batch(&B);
        else if (o->retry == LLM_BATCH_RETRY_SYNC) pend = 0, retry_sync(&B);
        else pend = 0;
    }
    size_t ok = batch_finish(&B);
    if (o->stats) {
        LlmBatchStats *s = o->stats;
        s->batches_created += B.st.batches_created, s->batches_resumed += B.st.batches_resumed;
        s->batches_adopted += B.st.batches_adopted, s->lines_submitted += B.st.lines_submitted;
        s->duplicates += B.st.duplicates, s->answered += B.st.answered, s->failed_lines += B.st.failed_lines;
        s->expired_lines += B.st.expired_lines, s->retried_sync += B.st.retried_sync;
        s->retried_batch += B.st.retried_batch, s->polls += B.st.polls;
    }
    llm_client_usage(c)->seconds += util_now() - B.t0;
    batch_free(&B);
    return ok;
}

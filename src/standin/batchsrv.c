/* batchsrv -- the stand-in's Files and Batch API; see
 * include/standin/batchsrv.h. */
#include "standin/batchsrv.h"

#include <cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"
#include "standin/dialect.h"

#define MAX_LINES 50000

typedef struct {
    char id[40];
    char *purpose, *filename;
    char *data;
    size_t len;
    long long created;
} File;

typedef struct {
    char id[40], input[40], output[40], error[40];
    char *endpoint, *window, *metadata; /* metadata: JSON text or NULL */
    char *fail_code, *fail_msg;         /* validation failure */
    long long created, ended_at;
    double t0;                          /* monotonic creation time */
    int ended, cancelled, expired;
    int64_t total, done, failed;
} Batch;

struct BatchStore {
    BatchStoreOptions o;
    BatchAnswerFn answer;
    void *ctx;
    pthread_mutex_t mu;
    File *files;
    size_t n_files;
    Batch *batches;
    size_t n_batches;
    uint64_t counter;
    BatchStoreStats st;
};

BatchStore *batchstore_create(const BatchStoreOptions *o, BatchAnswerFn answer, void *ctx) {
    BatchStore *b = xcalloc(1, sizeof *b);
    b->o = *o;
    b->answer = answer;
    b->ctx = ctx;
    pthread_mutex_init(&b->mu, NULL);
    return b;
}

void batchstore_destroy(BatchStore *b) {
    if (!b) return;
    for (size_t i = 0; i < b->n_files; i++) free(b->files[i].purpose), free(b->files[i].filename), free(b->files[i].data);
    for (size_t i = 0; i < b->n_batches; i++) {
        Batch *x = &b->batches[i];
        free(x->endpoint), free(x->window), free(x->metadata), free(x->fail_code), free(x->fail_msg);
    }
    free(b->files);
    free(b->batches);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

void batchstore_stats(BatchStore *b, BatchStoreStats *out) {
    pthread_mutex_lock(&b->mu);
    *out = b->st;
    pthread_mutex_unlock(&b->mu);
}

int batchstore_path(const char *url) {
    return !strcmp(url, "/v1/files") || !strncmp(url, "/v1/files/", 10) || !strcmp(url, "/v1/batches") ||
           !strncmp(url, "/v1/batches/", 12);
}

static char *err_body(const char *param, const char *msg) {
    return dialect_error(DIALECT_OPENAI, 400, "invalid_request_error", param, NULL, msg);
}

static void new_id(BatchStore *b, const char *prefix, char out[40]) {
    uint64_t h = rng_derive(b->o.seed, 0xba7c, ++b->counter);
    snprintf(out, 40, "%s%016llx", prefix, (unsigned long long)h);
}

static File *find_file(BatchStore *b, const char *id) {
    for (size_t i = 0; i < b->n_files; i++)
        if (!strcmp(b->files[i].id, id)) return &b->files[i];
    return NULL;
}

static Batch *find_batch(BatchStore *b, const char *id) {
    for (size_t i = 0; i < b->n_batches; i++)
        if (!strcmp(b->batches[i].id, id)) return &b->batches[i];
    return NULL;
}

static File *add_file(BatchStore *b, const char *purpose, const char *filename, char *data, size_t len) {
    b->files = xrealloc(b->files, sizeof(File) * (b->n_files + 1));
    File *f = &b->files[b->n_files++];
    memset(f, 0, sizeof *f);
    new_id(b, "file-", f->id);
    f->purpose = xstrdup(purpose);
    f->filename = xstrdup(filename);
    f->data = data;
    f->len = len;
    f->created = (long long)time(NULL);
    b->st.files++;
    return f;
}

static char *file_json(const File *f) {
    ByteBuf o = {0};
    bytebuf_printf(&o, "{\"id\":\"%s\",\"object\":\"file\",\"bytes\":%zu,\"created_at\":%lld,\"filename\":", f->id, f->len,
                   f->created);
    bytebuf_put_json_string(&o, f->filename); /* the client's name: it may hold backslashes */
    bytebuf_printf(&o, ",\"purpose\":\"%s\",\"status\":\"processed\",\"status_details\":null}", f->purpose);
    return o.a;
}

/* ---- multipart/form-data (RFC 7578), just enough for purpose + file ------------------ */

static const char *mem_find(const char *h, size_t hn, const char *n, size_t nn) {
    if (nn == 0 || hn < nn) return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == n[0] && !memcmp(h + i, n, nn)) return h + i;
    return NULL;
}

/* Copies the quoted value of key="..." in header line h (n bytes). */
static int header_param(const char *h, size_t n, const char *key, char *out, size_t on) {
    char pat[32];
    snprintf(pat, sizeof pat, "%s=\"", key);
    const char *p = mem_find(h, n, pat, strlen(pat));
    if (!p) return 0;
    p += strlen(pat);
    const char *q = memchr(p, '"', (size_t)(h + n - p));
    if (!q) return 0;
    snprintf(out, on, "%.*s", (int)(q - p), p);
    return 1;
}

static int parse_multipart(const char *ctype, const char *body, size_t len, char *purpose, size_t pn, char *fname,
                           size_t fnn, const char **data, size_t *dlen) {
    const char *bd = ctype ? strstr(ctype, "boundary=") : NULL;
    if (!bd) return -1;
    char delim[200];
    snprintf(delim, sizeof delim, "--%s", bd + 9);
    if (delim[2] == '"') { /* quoted boundary */
        memmove(delim + 2, delim + 3, strlen(delim + 3) + 1);
        char *q = strchr(delim + 2, '"');
        if (q) *q = 0;
    }
    size_t dl = strlen(delim);
    purpose[0] = fname[0] = 0;
    *data = NULL;
    const char *p = mem_find(body, len, delim, dl);
    while (p) {
        p += dl;
        if ((size_t)(body + len - p) >= 2 && p[0] == '-' && p[1] == '-') break; /* the closing delimiter */
        const char *hdr_end = mem_find(p, (size_t)(body + len - p), "\r\n\r\n", 4);
        if (!hdr_end) return -1;
        const char *content = hdr_end + 4;
        const char *next = mem_find(content, (size_t)(body + len - content), delim, dl);
        if (!next) return -1;
        size_t clen = (size_t)(next - content);
        if (clen >= 2 && content[clen - 2] == '\r' && content[clen - 1] == '\n') clen -= 2;
        char name[64] = "";
        header_param(p, (size_t)(hdr_end - p), "name", name, sizeof name);
        if (!strcmp(name, "purpose")) snprintf(purpose, pn, "%.*s", (int)clen, content);
        if (!strcmp(name, "file")) {
            header_param(p, (size_t)(hdr_end - p), "filename", fname, fnn);
            *data = content;
            *dlen = clen;
        }
        p = next;
    }
    return purpose[0] && *data ? 0 : -1;
}

/* ---- batches ------------------------------------------------------------------------------- */

/* Checks the lines of an input file; a failure sets code/msg (malloc'd). */
static void validate_input(const File *f, const char *endpoint, Batch *x) {
    char msg[256];
    int64_t n = 0;
    char **ids = NULL;
    for (size_t off = 0; off < f->len && !x->fail_code;) {
        const char *nl = memchr(f->data + off, '\n', f->len - off);
        size_t l = nl ? (size_t)(nl - (f->data + off)) : f->len - off;
        if (l) {
            cJSON *o = cJSON_ParseWithLength(f->data + off, l);
            const cJSON *cid = o ? cJSON_GetObjectItemCaseSensitive(o, "custom_id") : NULL;
            const cJSON *m = o ? cJSON_GetObjectItemCaseSensitive(o, "method") : NULL;
            const cJSON *u = o ? cJSON_GetObjectItemCaseSensitive(o, "url") : NULL;
            const cJSON *body = o ? cJSON_GetObjectItemCaseSensitive(o, "body") : NULL;
            if (!cJSON_IsString(cid) || !cJSON_IsString(m) || strcmp(m->valuestring, "POST") || !cJSON_IsString(u) ||
                strcmp(u->valuestring, endpoint) || !cJSON_IsObject(body)) {
                snprintf(msg, sizeof msg, "Line %lld: needs custom_id, method POST, url %s and a body object",
                         (long long)n + 1, endpoint);
                x->fail_code = xstrdup("invalid_request"), x->fail_msg = xstrdup(msg);
            } else {
                for (int64_t k = 0; k < n && !x->fail_code; k++)
                    if (!strcmp(ids[k], cid->valuestring)) {
                        snprintf(msg, sizeof msg, "The custom_id for this request is a duplicate of another request. "
                                                  "The custom_id parameter must be unique for each request (line %lld)",
                                 (long long)n + 1);
                        x->fail_code = xstrdup("duplicate_custom_id"), x->fail_msg = xstrdup(msg);
                    }
                ids = xrealloc(ids, sizeof(char *) * (size_t)(n + 1));
                ids[n++] = xstrdup(cid->valuestring);
            }
            cJSON_Delete(o);
        }
        off += l + 1;
    }
    if (!x->fail_code && n > MAX_LINES) {
        snprintf(msg, sizeof msg, "The batch input file is larger than the %d maximum number of requests", MAX_LINES);
        x->fail_code = xstrdup("too_many_requests"), x->fail_msg = xstrdup(msg);
    }
    if (!x->fail_code && n == 0) x->fail_code = xstrdup("empty_file"), x->fail_msg = xstrdup("The input file is empty");
    x->total = x->fail_code ? 0 : n;
    for (int64_t k = 0; k < n; k++) free(ids[k]);
    free(ids);
}

static uint64_t fold(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* uniform in [0, 1) from (seed, batch, line): a line sent again in another batch draws afresh */
static double draw_unit(uint64_t seed, const char *batch, const char *key) {
    return (double)(rng_derive(seed ^ fold(key), fold(batch), 0) >> 11) * (1.0 / 9007199254740992.0);
}

/* One input line to its output or error line. */
static void run_line(BatchStore *b, Batch *x, const char *line, size_t l, ByteBuf *out, ByteBuf *err) {
    cJSON *o = cJSON_ParseWithLength(line, l);
    const char *cid = cJSON_GetObjectItemCaseSensitive(o, "custom_id")->valuestring;
    ByteBuf qcid = {0}; /* the custom_id as a JSON string: it may hold quotes and backslashes */
    bytebuf_put_json_string(&qcid, cid);
    char rid[40], qid[40];
    new_id(b, "batch_req_", rid);
    new_id(b, "req_", qid);
    double u = draw_unit(b->o.seed, x->id, cid);
    if (u < b->o.expire_rate || x->cancelled) {
        bytebuf_printf(err, "{\"id\":\"%s\",\"custom_id\":%s,\"response\":null,\"error\":{\"code\":\"%s\","
                            "\"message\":\"%s\"}}\n", rid, qcid.a, x->cancelled ? "batch_cancelled" : "batch_expired",
                       x->cancelled ? "This request was not executed because the batch was cancelled."
                                    : "This request could not be executed before the completion window expired.");
        x->expired |= !x->cancelled;
        x->failed++;
    } else if (u < b->o.expire_rate + b->o.fail_rate) {
        bytebuf_printf(err, "{\"id\":\"%s\",\"custom_id\":%s,\"response\":{\"status_code\":500,\"request_id\":"
                            "\"%s\",\"body\":{\"error\":{\"message\":\"The server had an error processing your request "
                            "(stand-in batch failure injection).\",\"type\":\"server_error\",\"param\":null,"
                            "\"code\":null}}},\"error\":null}\n", rid, qcid.a, qid);
        x->failed++;
    } else {
        char *body = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(o, "body"));
        CHECK(body, "cJSON print");
        int status = 0;
        char *resp = b->answer(b->ctx, body, strlen(body), &status);
        bytebuf_printf(status == 200 ? out : err, "{\"id\":\"%s\",\"custom_id\":%s,\"response\":{\"status_code\":%d,"
                                                  "\"request_id\":\"%s\",\"body\":%s},\"error\":null}\n",
                       rid, qcid.a, status, qid, resp);
        if (status != 200) x->failed++;
        free(resp);
        cJSON_free(body);
    }
    x->done++;
    bytebuf_free(&qcid);
    cJSON_Delete(o);
}

/* Ends batch x: output and error files (b->mu held). */
static void finalize(BatchStore *b, Batch *x) {
    File *in = find_file(b, x->input);
    ByteBuf out = {0}, err = {0};
    x->done = x->failed = 0;
    for (size_t off = 0; in && off < in->len;) {
        const char *nl = memchr(in->data + off, '\n', in->len - off);
        size_t l = nl ? (size_t)(nl - (in->data + off)) : in->len - off;
        if (l) run_line(b, x, in->data + off, l, &out, &err);
        off += l + 1;
    }
    x->done -= x->failed;
    if (out.n) snprintf(x->output, sizeof x->output, "%s", add_file(b, "batch_output", "output.jsonl", out.a, out.n)->id);
    else bytebuf_free(&out);
    if (err.n) snprintf(x->error, sizeof x->error, "%s", add_file(b, "batch_output", "errors.jsonl", err.a, err.n)->id);
    else bytebuf_free(&err);
    x->ended = 1;
    x->ended_at = (long long)time(NULL);
    b->st.lines += x->total;
}

static const char *status_of(BatchStore *b, Batch *x, int64_t *done) {
    *done = x->done;
    if (x->fail_code) return "failed";
    double el = util_now() - x->t0;
    if (!x->ended && !x->cancelled && el < b->o.delay_s) {
        *done = (int64_t)((double)x->total * el / (b->o.delay_s > 0 ? b->o.delay_s : 1));
        return el < 0.1 * b->o.delay_s ? "validating" : "in_progress";
    }
    if (!x->ended) finalize(b, x);
    *done = x->done;
    return x->cancelled ? "cancelled" : x->expired ? "expired" : "completed";
}

static void put_id_or_null(ByteBuf *o, const char *k, const char *v) {
    if (v && v[0]) bytebuf_printf(o, ",\"%s\":\"%s\"", k, v);
    else bytebuf_printf(o, ",\"%s\":null", k);
}

static char *batch_json(BatchStore *b, Batch *x) {
    int64_t done;
    const char *st = status_of(b, x, &done);
    ByteBuf o = {0};
    bytebuf_printf(&o, "{\"id\":\"%s\",\"object\":\"batch\",\"endpoint\":\"%s\",\"errors\":", x->id, x->endpoint);
    if (x->fail_code)
        bytebuf_printf(&o, "{\"object\":\"list\",\"data\":[{\"code\":\"%s\",\"message\":\"%s\",\"param\":null,"
                           "\"line\":null}]}", x->fail_code, x->fail_msg);
    else
        bytebuf_put(&o, "null", sizeof "null" - 1);
    bytebuf_printf(&o, ",\"input_file_id\":\"%s\",\"completion_window\":\"%s\",\"status\":\"%s\"", x->input, x->window, st);
    put_id_or_null(&o, "output_file_id", x->output);
    put_id_or_null(&o, "error_file_id", x->error);
    int ended = x->ended || x->fail_code;
    bytebuf_printf(&o, ",\"created_at\":%lld,\"in_progress_at\":%s,\"expires_at\":%lld", x->created,
                   strcmp(st, "validating") ? "1" : "null", x->created + 86400);
    bytebuf_printf(&o, ",\"finalizing_at\":%s,\"completed_at\":%s,\"failed_at\":%s,\"expired_at\":%s,"
                       "\"cancelling_at\":%s,\"cancelled_at\":%s",
                   ended ? "1" : "null", !strcmp(st, "completed") ? "1" : "null", x->fail_code ? "1" : "null",
                   x->expired ? "1" : "null", x->cancelled ? "1" : "null", x->cancelled && ended ? "1" : "null");
    bytebuf_printf(&o, ",\"request_counts\":{\"total\":%lld,\"completed\":%lld,\"failed\":%lld},\"metadata\":%s}",
                   (long long)x->total, (long long)done, (long long)(x->ended ? x->failed : 0),
                   x->metadata ? x->metadata : "null");
    return o.a;
}

/* ---- requests -------------------------------------------------------------------------------- */

static int create_batch(BatchStore *b, const char *body, size_t len, char **resp) {
    cJSON *o = cJSON_ParseWithLength(body, len);
    const char *fid = o ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "input_file_id")) : NULL;
    const char *ep = o ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "endpoint")) : NULL;
    const char *win = o ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "completion_window")) : NULL;
    const cJSON *meta = o ? cJSON_GetObjectItemCaseSensitive(o, "metadata") : NULL;
    File *f = fid ? find_file(b, fid) : NULL;
    int st = 400;
    char msg[200];
    if (!o) *resp = err_body(NULL, "We could not parse the JSON body of your request.");
    else if (!f) {
        snprintf(msg, sizeof msg, "No such File object: %.60s", fid ? fid : "(none)");
        *resp = err_body("input_file_id", msg);
    } else if (strcmp(f->purpose, "batch")) *resp = err_body("input_file_id", "The input file's purpose must be 'batch'.");
    else if (!ep || strcmp(ep, "/v1/chat/completions"))
        *resp = err_body("endpoint", "The stand-in batches only /v1/chat/completions.");
    else if (!win || strcmp(win, "24h")) *resp = err_body("completion_window", "Only '24h' is supported.");
    else {
        b->batches = xrealloc(b->batches, sizeof(Batch) * (b->n_batches + 1));
        Batch *x = &b->batches[b->n_batches++];
        memset(x, 0, sizeof *x);
        new_id(b, "batch_", x->id);
        snprintf(x->input, sizeof x->input, "%s", fid);
        x->endpoint = xstrdup(ep);
        x->window = xstrdup(win);
        if (cJSON_IsObject(meta)) {
            char *m = cJSON_PrintUnformatted(meta);
            x->metadata = xstrdup(m);
            cJSON_free(m);
        }
        x->created = (long long)time(NULL);
        x->t0 = util_now();
        validate_input(f, ep, x);
        b->st.batches++;
        *resp = batch_json(b, x);
        st = 200;
    }
    cJSON_Delete(o);
    return st;
}

static int list_batches(BatchStore *b, const char *after, int limit, char **resp) {
    if (limit <= 0 || limit > 100) limit = 20;
    ByteBuf o = {0};
    bytebuf_put(&o, "{\"object\":\"list\",\"data\":[", sizeof "{\"object\":\"list\",\"data\":[" - 1);
    long start = (long)b->n_batches - 1;
    if (after)
        for (long i = start; i >= 0; i--)
            if (!strcmp(b->batches[i].id, after)) start = i - 1;
    int k = 0;
    long i = start;
    const char *first = NULL, *last = NULL;
    for (; i >= 0 && k < limit; i--, k++) {
        char *j = batch_json(b, &b->batches[i]);
        bytebuf_printf(&o, "%s%s", k ? "," : "", j);
        free(j);
        if (!first) first = b->batches[i].id;
        last = b->batches[i].id;
    }
    bytebuf_printf(&o, "],\"first_id\":%s%s%s,\"last_id\":%s%s%s,\"has_more\":%s}", first ? "\"" : "",
                   first ? first : "null", first ? "\"" : "", last ? "\"" : "", last ? last : "null", last ? "\"" : "",
                   i >= 0 ? "true" : "false");
    *resp = o.a;
    return 200;
}

static int upload(BatchStore *b, const char *ctype, const char *body, size_t len, char **resp) {
    char purpose[64], fname[128];
    const char *data;
    size_t dlen = 0;
    if (!ctype || strncmp(ctype, "multipart/form-data", 19) ||
        parse_multipart(ctype, body, len, purpose, sizeof purpose, fname, sizeof fname, &data, &dlen) != 0) {
        *resp = err_body("file", "Expected multipart/form-data with fields 'purpose' and 'file'.");
        return 400;
    }
    if (strcmp(purpose, "batch") && strcmp(purpose, "fine-tune") && strcmp(purpose, "assistants")) {
        *resp = err_body("purpose", "Invalid purpose.");
        return 400;
    }
    File *f = add_file(b, purpose, fname[0] ? fname : "upload.jsonl", xstrndup(data, dlen), dlen);
    *resp = file_json(f);
    return 200;
}

static int not_found(const char *what, const char *id, char **resp) {
    char msg[160];
    snprintf(msg, sizeof msg, "No such %s object: %.80s", what, id);
    *resp = dialect_error(DIALECT_OPENAI, 404, "invalid_request_error", "id", NULL, msg);
    return 404;
}

/* Requests under /v1/files and /v1/batches (b->mu held). */
static int route(BatchStore *b, const char *method, const char *url, const char *ctype, const char *body, size_t len,
                 const char *after, int limit, char **resp, size_t *rlen) {
    int post = !strcmp(method, "POST"), get = !strcmp(method, "GET");
    char id[64] = "", rest[32] = "";
    if (!strcmp(url, "/v1/files")) {
        if (post) return upload(b, ctype, body, len, resp);
    } else if (sscanf(url, "/v1/files/%63[^/]/%31s", id, rest) >= 1 && get) {
        File *f = find_file(b, id);
        if (!f) return not_found("File", id, resp);
        if (!strcmp(rest, "content")) {
            *resp = xstrndup(f->data, f->len);
            *rlen = f->len;
            return 200;
        }
        if (!rest[0]) {
            *resp = file_json(f);
            return 200;
        }
    } else if (!strcmp(url, "/v1/batches")) {
        if (post) return create_batch(b, body, len, resp);
        if (get) return list_batches(b, after, limit, resp);
    } else if (sscanf(url, "/v1/batches/%63[^/]/%31s", id, rest) >= 1) {
        Batch *x = find_batch(b, id);
        if (!x) return not_found("Batch", id, resp);
        if (post && !strcmp(rest, "cancel")) {
            if (!x->ended && !x->fail_code) {
                x->cancelled = 1;
                b->st.cancelled++;
                finalize(b, x);
            }
            *resp = batch_json(b, x);
            return 200;
        }
        if (get && !rest[0]) {
            *resp = batch_json(b, x);
            return 200;
        }
    }
    *resp = dialect_error(DIALECT_OPENAI, 404, "invalid_request_error", NULL, "unknown_url", "Unknown request URL.");
    return 404;
}

int batchstore_handle(BatchStore *b, const char *method, const char *url, const char *content_type, const char *body,
                      size_t len, const char *after, int limit, char **resp, size_t *resp_len) {
    *resp = NULL;
    *resp_len = (size_t)-1;
    pthread_mutex_lock(&b->mu);
    int st = route(b, method, url, content_type, body ? body : "", len, after, limit, resp, resp_len);
    pthread_mutex_unlock(&b->mu);
    if (*resp_len == (size_t)-1) *resp_len = strlen(*resp);
    return st;
}

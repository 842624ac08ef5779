/* test_batchsrv -- the stand-in's Files and Batch API (standin/batchsrv.h)
 * called directly (batchstore_handle, no HTTP), with an answer function of
 * the test's own, against OpenAI's documented shapes as docs/standin.md
 * quotes them:
 *  - batchstore_path for the documented paths only;
 *  - uploads: multipart/form-data by hand (RFC 7578; a quoted boundary;
 *    the file's bytes kept exactly, a NUL included), the file object, GET of
 *    the object and of its content; a body that is not multipart, without
 *    purpose or file, or with another purpose: 400 naming the field;
 *  - batches: the batch object (validating, request_counts, metadata,
 *    expires_at), 400s naming input_file_id (unknown, not purpose batch),
 *    endpoint and completion_window; validating for the first tenth of
 *    delay_s, then in_progress, then completed with an output file of one
 *    documented line per input line whose body is the answer function's
 *    reply to that line's body (called only then), non-200 answers in the
 *    error file and counted failed;
 *  - failures and expiries: fail_rate 1 (500 lines), expire_rate 1 (the
 *    documented batch_expired line, status expired), rate 0.5 (about half,
 *    the same for the same seed and sequence, drawn afresh in another
 *    batch);
 *  - failed validation: a bad line, a duplicate custom_id, a wrong method
 *    or url, an empty file: status failed with errors.data[0].code, the
 *    answer never called;
 *  - cancel: status cancelled, every line batch_cancelled, nothing answered;
 *    twice the same; after the end nothing changes; unknown ids 404;
 *  - list: newest first, limit, after, first_id, last_id, has_more;
 *  - unknown routes 404 unknown_url; custom_ids and file names that need
 *    JSON escaping (both were written raw: fixed);
 *  - four threads at once: distinct ids, every batch answered, the stats.
 * Not checked: the 50,000-line limit (validating 50,001 lines takes 2.7 s:
 * the duplicate check compares every pair). */
#include <cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "standin/batchsrv.h"
#include "test.h"

/* ---- the answer function ------------------------------------------------------------------ */

static atomic_int CALLS;

/* 200 {"echo":<the body>} -- or 400 when the last message says "fail" */
static char *answer(void *ctx, const char *body, size_t len, int *status) {
    (void)ctx;
    atomic_fetch_add(&CALLS, 1);
    cJSON *j = cJSON_ParseWithLength(body, len);
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    const cJSON *last = cJSON_GetArrayItem(msgs, cJSON_GetArraySize(msgs) - 1);
    const char *content = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(last, "content"));
    char *r;
    if (content && !strcmp(content, "fail")) {
        *status = 400;
        r = xstrdup("{\"error\":{\"message\":\"no\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}");
    } else {
        *status = 200;
        r = xasprintf("{\"echo\":%.*s}", (int)len, body);
    }
    cJSON_Delete(j);
    return r;
}

/* ---- requests -------------------------------------------------------------------------------- */

typedef struct {
    int status;
    char *body;
    size_t len;
    cJSON *j;
} Resp;

static Resp call(BatchStore *b, const char *method, const char *url, const char *ctype, const char *body, size_t len,
                 const char *after, int limit) {
    Resp r = {0};
    r.status = batchstore_handle(b, method, url, ctype, body, len, after, limit, &r.body, &r.len);
    r.j = cJSON_ParseWithLength(r.body, r.len);
    return r;
}

static void resp_free(Resp *r) {
    free(r->body);
    cJSON_Delete(r->j);
}

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }
static const char *str(const cJSON *o, const char *k) {
    const cJSON *x = get(o, k);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}
static double num(const cJSON *o, const char *k) { return cJSON_GetNumberValue(get(o, k)); }
static int is(const char *a, const char *b) { return a && b && !strcmp(a, b); }

static int bad_request(const Resp *r, int status, const char *param) {
    const cJSON *e = get(r->j, "error");
    return r->status == status && cJSON_IsObject(e) && str(e, "message") &&
           (param ? is(str(e, "param"), param) : cJSON_IsNull(get(e, "param")));
}

#define BOUNDARY "----hdistill-test-7MA4YWxkTrZu0gW"

/* A multipart/form-data body (RFC 7578) with the fields given (NULL: left out). */
static char *multipart(const char *purpose, const char *filename, const char *data, size_t dlen, size_t *len) {
    ByteBuf b = {0};
    if (purpose)
        bytebuf_printf(&b, "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n%s\r\n", purpose);
    if (data) {
        bytebuf_printf(&b, "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"%s\"\r\n"
                           "Content-Type: application/jsonl\r\n\r\n", filename);
        bytebuf_put(&b, data, dlen);
        bytebuf_put(&b, "\r\n", 2);
    }
    bytebuf_printf(&b, "--" BOUNDARY "--\r\n");
    *len = b.n;
    return b.a;
}

static const char *CTYPE = "multipart/form-data; boundary=" BOUNDARY;

/* Uploads data as purpose; the file id (malloc'd) or NULL. */
static char *upload(BatchStore *b, const char *purpose, const char *data, size_t dlen) {
    size_t len;
    char *body = multipart(purpose, "in.jsonl", data, dlen, &len);
    Resp r = call(b, "POST", "/v1/files", CTYPE, body, len, NULL, 0);
    char *id = r.status == 200 && str(r.j, "id") ? xstrdup(str(r.j, "id")) : NULL;
    resp_free(&r);
    free(body);
    return id;
}

/* n request lines custom_id "<prefix><i>" asking "q<i>" (and "fail" for i in fail_every) */
static char *lines_of(int n, const char *prefix, int fail_every) {
    ByteBuf b = {0};
    for (int i = 0; i < n; i++)
        bytebuf_printf(&b, "{\"custom_id\":\"%s%d\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":"
                           "\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],\"seed\":%d}}\n",
                       prefix, i, fail_every && i % fail_every == 0 ? "fail" : "q", i);
    bytebuf_put(&b, "", 0);
    return b.a;
}

static Resp create(BatchStore *b, const char *fid, const char *extra) {
    char *body = xasprintf("{\"input_file_id\":\"%s\",\"endpoint\":\"/v1/chat/completions\",\"completion_window\":\"24h\"%s}",
                           fid, extra ? extra : "");
    Resp r = call(b, "POST", "/v1/batches", "application/json", body, strlen(body), NULL, 0);
    free(body);
    return r;
}

static Resp batch_get(BatchStore *b, const char *id) {
    char *url = xasprintf("/v1/batches/%s", id);
    Resp r = call(b, "GET", url, NULL, NULL, 0, NULL, 0);
    free(url);
    return r;
}

static Resp content(BatchStore *b, const char *fid) {
    char *url = xasprintf("/v1/files/%s/content", fid);
    Resp r = call(b, "GET", url, NULL, NULL, 0, NULL, 0);
    free(url);
    return r;
}

/* Polls until the batch leaves validating/in_progress (at most 5 s); returns the last object. */
static Resp wait_end(BatchStore *b, const char *id) {
    for (int i = 0;; i++) {
        Resp r = batch_get(b, id);
        const char *st = str(r.j, "status");
        if (i > 500 || !(is(st, "validating") || is(st, "in_progress"))) return r;
        resp_free(&r);
        usleep(10000);
    }
}

/* The lines of a JSONL text as parsed objects (NULL for a line that is not JSON). */
static int jsonl(const char *text, size_t len, cJSON **out, int max) {
    int n = 0;
    for (size_t off = 0; off < len && n < max;) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t l = nl ? (size_t)(nl - text - off) : len - off;
        if (l) out[n++] = cJSON_ParseWithLength(text + off, l);
        off += l + 1;
    }
    return n;
}

static BatchStore *store(double delay, double fail, double expire, uint64_t seed) {
    BatchStoreOptions o = {delay, fail, expire, seed};
    return batchstore_create(&o, answer, NULL);
}

/* ---- paths and files ----------------------------------------------------------------------------- */

static void paths(void) {
    const char *yes[] = {"/v1/files", "/v1/files/file-1", "/v1/files/file-1/content", "/v1/batches", "/v1/batches/b",
                         "/v1/batches/b/cancel"};
    const char *no[] = {"/v1/filesx", "/v1/batch", "/v1/chat/completions", "/v1/models", "/v2/files", "v1/files", ""};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) EXPECT(batchstore_path(yes[i]), "%s is the Batch API's", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) EXPECT(!batchstore_path(no[i]), "'%s' is not", no[i]);
}

static void files(void) {
    BatchStore *b = store(1, 0, 0, 1);
    const char data[] = "line one\nline \"two\"\r\n\x00 and a NUL\n";
    size_t dlen = sizeof data - 1, len;
    char *body = multipart("batch", "my file.jsonl", data, dlen, &len);
    Resp r = call(b, "POST", "/v1/files", CTYPE, body, len, NULL, 0);
    const char *id = str(r.j, "id");
    EXPECT(r.status == 200 && id && !strncmp(id, "file-", 5) && is(str(r.j, "object"), "file") && num(r.j, "bytes") == dlen &&
               is(str(r.j, "filename"), "my file.jsonl") && is(str(r.j, "purpose"), "batch") &&
               is(str(r.j, "status"), "processed") && num(r.j, "created_at") > 1.7e9,
           "upload: the file object: %d %s", r.status, r.body);
    char *fid = xstrdup(id ? id : "x");
    resp_free(&r), free(body);
    char *url = xasprintf("/v1/files/%s", fid);
    r = call(b, "GET", url, NULL, NULL, 0, NULL, 0);
    EXPECT(r.status == 200 && is(str(r.j, "id"), fid) && num(r.j, "bytes") == dlen, "GET the file object");
    resp_free(&r);
    r = content(b, fid);
    EXPECT(r.status == 200 && r.len == dlen && !memcmp(r.body, data, dlen), "GET its content: the bytes exactly (%zu of %zu)",
           r.len, dlen);
    resp_free(&r);
    free(url);
    /* a quoted boundary; other purposes */
    body = multipart("fine-tune", "x.jsonl", "abc", 3, &len);
    r = call(b, "POST", "/v1/files", "multipart/form-data; boundary=\"" BOUNDARY "\"", body, len, NULL, 0);
    EXPECT(r.status == 200 && is(str(r.j, "purpose"), "fine-tune") && num(r.j, "bytes") == 3, "quoted boundary, fine-tune: %s",
           r.body);
    resp_free(&r), free(body);
    /* a file name with a backslash (a Windows path) stays JSON */
    body = multipart("batch", "C:\\data\\in.jsonl", "abc", 3, &len);
    r = call(b, "POST", "/v1/files", CTYPE, body, len, NULL, 0);
    EXPECT(r.status == 200 && is(str(r.j, "filename"), "C:\\data\\in.jsonl"), "a backslash in the file name: %s", r.body);
    resp_free(&r), free(body);
    char *a = upload(b, "assistants", "z", 1);
    EXPECT(a != NULL, "purpose assistants accepted");
    free(a);
    /* errors */
    body = multipart("batch", "x.jsonl", "abc", 3, &len);
    r = call(b, "POST", "/v1/files", "application/json", body, len, NULL, 0);
    EXPECT(bad_request(&r, 400, "file"), "not multipart: %s", r.body);
    resp_free(&r);
    r = call(b, "POST", "/v1/files", "multipart/form-data", body, len, NULL, 0);
    EXPECT(bad_request(&r, 400, "file"), "no boundary: %s", r.body);
    resp_free(&r);
    r = call(b, "POST", "/v1/files", NULL, body, len, NULL, 0);
    EXPECT(bad_request(&r, 400, "file"), "no content type: %s", r.body);
    resp_free(&r);
    r = call(b, "POST", "/v1/files", CTYPE, body, len / 2, NULL, 0);
    EXPECT(bad_request(&r, 400, "file"), "cut in the middle: %s", r.body);
    resp_free(&r), free(body);
    body = multipart(NULL, "x.jsonl", "abc", 3, &len);
    r = call(b, "POST", "/v1/files", CTYPE, body, len, NULL, 0);
    EXPECT(bad_request(&r, 400, "file"), "no purpose: %s", r.body);
    resp_free(&r), free(body);
    body = multipart("batch", NULL, NULL, 0, &len);
    r = call(b, "POST", "/v1/files", CTYPE, body, len, NULL, 0);
    EXPECT(bad_request(&r, 400, "file"), "no file: %s", r.body);
    resp_free(&r), free(body);
    body = multipart("vision", "x.jsonl", "abc", 3, &len);
    r = call(b, "POST", "/v1/files", CTYPE, body, len, NULL, 0);
    EXPECT(bad_request(&r, 400, "purpose"), "purpose vision: %s", r.body);
    resp_free(&r), free(body);
    r = call(b, "GET", "/v1/files/file-nope", NULL, NULL, 0, NULL, 0);
    EXPECT(bad_request(&r, 404, "id") && strstr(r.body, "file-nope"), "unknown file: %s", r.body);
    resp_free(&r);
    r = call(b, "GET", "/v1/files/file-nope/content", NULL, NULL, 0, NULL, 0);
    EXPECT(r.status == 404, "unknown file's content: %d", r.status);
    resp_free(&r);
    url = xasprintf("/v1/files/%s/bytes", fid);
    r = call(b, "GET", url, NULL, NULL, 0, NULL, 0);
    EXPECT(r.status == 404 && is(str(get(r.j, "error"), "code"), "unknown_url"), "an unknown file route: %s", r.body);
    resp_free(&r), free(url);
    struct { const char *m, *u; } unknown[] = {{"DELETE", "/v1/files"}, {"GET", "/v1/files"}, {"PUT", "/v1/batches"},
                                               {"POST", "/v1/files/x"}};
    for (size_t i = 0; i < sizeof unknown / sizeof *unknown; i++) {
        r = call(b, unknown[i].m, unknown[i].u, NULL, NULL, 0, NULL, 0);
        EXPECT(r.status == 404 && is(str(get(r.j, "error"), "code"), "unknown_url"), "%s %s: %d %s", unknown[i].m,
               unknown[i].u, r.status, r.body);
        resp_free(&r);
    }
    free(fid);
    batchstore_destroy(b);
    batchstore_destroy(NULL);
}

/* ---- batches ------------------------------------------------------------------------------------------ */

static void creation_errors(BatchStore *b) {
    char *lines = lines_of(2, "c", 0);
    char *fid = upload(b, "batch", lines, strlen(lines)), *ft = upload(b, "fine-tune", lines, strlen(lines));
    Resp r = call(b, "POST", "/v1/batches", "application/json", "{nope", 5, NULL, 0);
    EXPECT(bad_request(&r, 400, NULL), "not JSON: %s", r.body);
    resp_free(&r);
    r = create(b, "file-nope", NULL);
    EXPECT(bad_request(&r, 400, "input_file_id") && strstr(r.body, "file-nope"), "unknown file: %s", r.body);
    resp_free(&r);
    r = create(b, ft, NULL);
    EXPECT(bad_request(&r, 400, "input_file_id") && strstr(r.body, "'batch'"), "purpose fine-tune: %s", r.body);
    resp_free(&r);
    char *body = xasprintf("{\"input_file_id\":\"%s\",\"endpoint\":\"/v1/embeddings\",\"completion_window\":\"24h\"}", fid);
    r = call(b, "POST", "/v1/batches", NULL, body, strlen(body), NULL, 0);
    EXPECT(bad_request(&r, 400, "endpoint"), "endpoint /v1/embeddings: %s", r.body);
    resp_free(&r), free(body);
    body = xasprintf("{\"input_file_id\":\"%s\",\"endpoint\":\"/v1/chat/completions\",\"completion_window\":\"48h\"}", fid);
    r = call(b, "POST", "/v1/batches", NULL, body, strlen(body), NULL, 0);
    EXPECT(bad_request(&r, 400, "completion_window"), "window 48h: %s", r.body);
    resp_free(&r), free(body);
    body = xasprintf("{\"input_file_id\":\"%s\",\"endpoint\":\"/v1/chat/completions\"}", fid);
    r = call(b, "POST", "/v1/batches", NULL, body, strlen(body), NULL, 0);
    EXPECT(bad_request(&r, 400, "completion_window"), "no window: %s", r.body);
    resp_free(&r), free(body);
    r = call(b, "GET", "/v1/batches/batch_nope", NULL, NULL, 0, NULL, 0);
    EXPECT(bad_request(&r, 404, "id") && strstr(r.body, "batch_nope"), "unknown batch: %s", r.body);
    resp_free(&r);
    r = call(b, "POST", "/v1/batches/batch_nope/cancel", NULL, NULL, 0, NULL, 0);
    EXPECT(r.status == 404, "cancel an unknown batch: %d", r.status);
    resp_free(&r);
    free(lines), free(fid), free(ft);
}

static void lifecycle(void) {
    BatchStore *b = store(0.5, 0, 0, 7);
    creation_errors(b);
    enum { N = 5 };
    char *lines = lines_of(N, "req-", 3); /* lines 0 and 3 ask "fail": the answer's 400 */
    char *fid = upload(b, "batch", lines, strlen(lines));
    atomic_store(&CALLS, 0);
    double t0 = util_now();
    Resp r = create(b, fid, ",\"metadata\":{\"run\":\"r1\",\"n\":\"5\"}");
    cJSON *meta = cJSON_Parse("{\"run\":\"r1\",\"n\":\"5\"}");
    const cJSON *rc = get(r.j, "request_counts");
    const char *id = str(r.j, "id");
    EXPECT(r.status == 200 && id && !strncmp(id, "batch_", 6) && is(str(r.j, "object"), "batch") &&
               is(str(r.j, "endpoint"), "/v1/chat/completions") && cJSON_IsNull(get(r.j, "errors")) &&
               is(str(r.j, "input_file_id"), fid) && is(str(r.j, "completion_window"), "24h") &&
               is(str(r.j, "status"), "validating") && cJSON_IsNull(get(r.j, "output_file_id")) &&
               cJSON_IsNull(get(r.j, "error_file_id")) && num(rc, "total") == N && num(rc, "completed") == 0 &&
               num(rc, "failed") == 0 && cJSON_Compare(get(r.j, "metadata"), meta, 1) &&
               num(r.j, "expires_at") == num(r.j, "created_at") + 86400 && cJSON_IsNull(get(r.j, "completed_at")),
           "a new batch: %s", r.body);
    cJSON_Delete(meta);
    char *bid = xstrdup(id ? id : "x");
    resp_free(&r);
    /* in progress after the first tenth of the delay */
    while (util_now() - t0 < 0.15) usleep(5000);
    r = batch_get(b, bid);
    EXPECT(is(str(r.j, "status"), "in_progress") && num(get(r.j, "request_counts"), "completed") <= N &&
               num(get(r.j, "request_counts"), "completed") >= 0 && atomic_load(&CALLS) == 0,
           "in progress, nothing answered yet: %s", r.body);
    resp_free(&r);
    r = wait_end(b, bid);
    double took = util_now() - t0;
    rc = get(r.j, "request_counts");
    EXPECT(is(str(r.j, "status"), "completed") && took >= 0.5 && took < 2 && num(rc, "total") == N &&
               num(rc, "completed") == N - 2 && num(rc, "failed") == 2 && str(r.j, "output_file_id") &&
               str(r.j, "error_file_id") && !cJSON_IsNull(get(r.j, "completed_at")) && atomic_load(&CALLS) == N,
           "completed after %.2f s (delay 0.5): %s", took, r.body);
    /* the output file: one documented line per answered line, the answer's body as it replied */
    Resp o = content(b, str(r.j, "output_file_id") ? str(r.j, "output_file_id") : "x");
    Resp e = content(b, str(r.j, "error_file_id") ? str(r.j, "error_file_id") : "x");
    cJSON *ol[16] = {0}, *el[16] = {0}, *in[16] = {0};
    int no = jsonl(o.body, o.len, ol, 16), ne = jsonl(e.body, e.len, el, 16), ni = jsonl(lines, strlen(lines), in, 16);
    EXPECT(no == N - 2 && ne == 2 && ni == N, "%d output lines, %d error lines", no, ne);
    int good = 1;
    for (int i = 0; i < no; i++) {
        const char *cid = str(ol[i], "custom_id");
        int k = cid ? atoi(cid + 4) : -1;
        const cJSON *resp = get(ol[i], "response");
        good &= ol[i] && is(str(ol[i], "id") ? (strncmp(str(ol[i], "id"), "batch_req_", 10) ? "" : "ok") : NULL, "ok") &&
                k >= 0 && k < N && k % 3 != 0 && num(resp, "status_code") == 200 && str(resp, "request_id") &&
                cJSON_IsNull(get(ol[i], "error")) && cJSON_Compare(get(get(resp, "body"), "echo"), get(in[k], "body"), 1);
    }
    EXPECT(good, "output lines {id, custom_id, response{status_code 200, request_id, body = the answer to the line's body}, "
                 "error null}:\n%s", o.body);
    good = 1;
    for (int i = 0; i < ne; i++) {
        const cJSON *resp = get(el[i], "response");
        const char *cid = str(el[i], "custom_id");
        good &= el[i] && cid && atoi(cid + 4) % 3 == 0 && num(resp, "status_code") == 400 &&
                is(str(get(get(resp, "body"), "error"), "message"), "no") && cJSON_IsNull(get(el[i], "error"));
    }
    EXPECT(good, "error lines: the answer's 400 with its body:\n%s", e.body);
    for (int i = 0; i < 16; i++) cJSON_Delete(ol[i]), cJSON_Delete(el[i]), cJSON_Delete(in[i]);
    resp_free(&o), resp_free(&e);
    resp_free(&r);
    /* asking again changes nothing and answers nothing again */
    r = batch_get(b, bid);
    EXPECT(is(str(r.j, "status"), "completed") && atomic_load(&CALLS) == N, "polled again: the same, no new answers");
    resp_free(&r);
    /* cancelling an ended batch changes nothing */
    char *cu = xasprintf("/v1/batches/%s/cancel", bid);
    r = call(b, "POST", cu, NULL, NULL, 0, NULL, 0);
    EXPECT(r.status == 200 && is(str(r.j, "status"), "completed") && cJSON_IsNull(get(r.j, "cancelled_at")),
           "cancel after the end: still completed");
    resp_free(&r);
    char *u = xasprintf("/v1/batches/%s/retry", bid);
    r = call(b, "POST", u, NULL, NULL, 0, NULL, 0);
    EXPECT(r.status == 404 && is(str(get(r.j, "error"), "code"), "unknown_url"), "an unknown batch route: %s", r.body);
    resp_free(&r), free(u);
    free(cu), free(bid), free(fid), free(lines);
    batchstore_destroy(b);
}

/* error lines per kind: fail_rate 1, expire_rate 1 */
static void failures(void) {
    char *lines = lines_of(6, "f", 0);
    for (int kind = 0; kind < 2; kind++) {
        BatchStore *b = store(0, kind == 0 ? 1.0 : 0, kind == 1 ? 1.0 : 0, 3);
        char *fid = upload(b, "batch", lines, strlen(lines));
        atomic_store(&CALLS, 0);
        Resp c = create(b, fid, NULL);
        Resp r = wait_end(b, str(c.j, "id") ? str(c.j, "id") : "x");
        const cJSON *rc = get(r.j, "request_counts");
        EXPECT(is(str(r.j, "status"), kind == 0 ? "completed" : "expired") && num(rc, "completed") == 0 &&
                   num(rc, "failed") == 6 && cJSON_IsNull(get(r.j, "output_file_id")) && str(r.j, "error_file_id") &&
                   atomic_load(&CALLS) == 0 && (kind == 0 || !cJSON_IsNull(get(r.j, "expired_at"))),
               "%s rate 1: %s", kind == 0 ? "fail" : "expire", r.body);
        Resp e = content(b, str(r.j, "error_file_id") ? str(r.j, "error_file_id") : "x");
        cJSON *el[8] = {0};
        int n = jsonl(e.body, e.len, el, 8), good = n == 6;
        for (int i = 0; i < n; i++) {
            const cJSON *resp = get(el[i], "response"), *err = get(el[i], "error");
            if (kind == 0)
                good &= num(resp, "status_code") == 500 && str(resp, "request_id") &&
                        is(str(get(get(resp, "body"), "error"), "type"), "server_error") && cJSON_IsNull(err);
            else
                good &= cJSON_IsNull(resp) && is(str(err, "code"), "batch_expired") &&
                        is(str(err, "message"), "This request could not be executed before the completion window expired.");
            good &= str(el[i], "custom_id") != NULL;
            cJSON_Delete(el[i]);
        }
        EXPECT(good, "%s rate 1: the documented error lines:\n%s", kind == 0 ? "fail" : "expire", e.body);
        resp_free(&e), resp_free(&r), resp_free(&c);
        free(fid);
        batchstore_destroy(b);
    }
    free(lines);

    /* rate 0.5: about half; the same for the same seed and sequence; afresh in another batch */
    lines = lines_of(200, "h", 0);
    char *fails[3] = {0};
    for (int run = 0; run < 3; run++) {
        BatchStore *b = store(0, 0.5, 0, 11);
        char *fid = upload(b, "batch", lines, strlen(lines));
        if (run == 2) { /* a first batch of the same lines moves the ids on: another batch id */
            Resp c = create(b, fid, NULL);
            Resp r = wait_end(b, str(c.j, "id"));
            resp_free(&r), resp_free(&c);
        }
        Resp c = create(b, fid, NULL);
        Resp r = wait_end(b, str(c.j, "id"));
        Resp e = content(b, str(r.j, "error_file_id") ? str(r.j, "error_file_id") : "x");
        ByteBuf ids = {0};
        cJSON *el[256] = {0};
        int n = jsonl(e.body, e.len, el, 256);
        for (int i = 0; i < n; i++) bytebuf_printf(&ids, "%s,", str(el[i], "custom_id") ? str(el[i], "custom_id") : "?"), cJSON_Delete(el[i]);
        bytebuf_put(&ids, "", 0);
        fails[run] = ids.a;
        EXPECT(n >= 70 && n <= 130 && num(get(r.j, "request_counts"), "failed") == n &&
                   num(get(r.j, "request_counts"), "completed") == 200 - n,
               "rate 0.5: %d of 200 failed", n);
        resp_free(&e), resp_free(&r), resp_free(&c);
        free(fid);
        batchstore_destroy(b);
    }
    EXPECT(!strcmp(fails[0], fails[1]), "the same seed and sequence: the same lines fail");
    EXPECT(strcmp(fails[0], fails[2]) != 0, "the same lines in another batch: drawn afresh");
    for (int i = 0; i < 3; i++) free(fails[i]);
    free(lines);
}

static void validation(void) {
    BatchStore *b = store(0, 0, 0, 5);
    const char *ok = "{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"messages\":[]}}\n";
    struct { const char *what, *text, *code; } cases[] = {
        {"a line that is not JSON", "{\"custom_id\":\"a\",\"method\":\"POST\"\n", "invalid_request"},
        {"a duplicate custom_id", NULL, "duplicate_custom_id"},
        {"method GET", "{\"custom_id\":\"a\",\"method\":\"GET\",\"url\":\"/v1/chat/completions\",\"body\":{}}\n", "invalid_request"},
        {"another url", "{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/embeddings\",\"body\":{}}\n", "invalid_request"},
        {"no body", "{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\"}\n", "invalid_request"},
        {"a numeric custom_id", "{\"custom_id\":7,\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{}}\n",
         "invalid_request"},
        {"an empty file", "\n\n", "empty_file"},
    };
    char *dup = xasprintf("%s%s", ok, ok);
    cases[1].text = dup;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *fid = upload(b, "batch", cases[i].text, strlen(cases[i].text));
        atomic_store(&CALLS, 0);
        Resp r = create(b, fid ? fid : "x", NULL);
        const cJSON *d0 = cJSON_GetArrayItem(get(get(r.j, "errors"), "data"), 0);
        EXPECT(r.status == 200 && is(str(r.j, "status"), "failed") && is(str(d0, "code"), cases[i].code) && str(d0, "message") &&
                   num(get(r.j, "request_counts"), "total") == 0 && !cJSON_IsNull(get(r.j, "failed_at")),
               "%s: failed with %s: %s", cases[i].what, cases[i].code, r.body);
        Resp g = batch_get(b, str(r.j, "id") ? str(r.j, "id") : "x");
        EXPECT(is(str(g.j, "status"), "failed") && cJSON_IsNull(get(g.j, "output_file_id")) && atomic_load(&CALLS) == 0,
               "%s: stays failed, nothing answered", cases[i].what);
        resp_free(&g), resp_free(&r), free(fid);
    }
    free(dup);
    batchstore_destroy(b);
}

static void cancel(void) {
    BatchStore *b = store(30, 0, 0, 9);
    char *lines = lines_of(4, "k", 0);
    char *fid = upload(b, "batch", lines, strlen(lines));
    atomic_store(&CALLS, 0);
    Resp c = create(b, fid, NULL);
    char *u = xasprintf("/v1/batches/%s/cancel", str(c.j, "id"));
    Resp r = call(b, "POST", u, NULL, NULL, 0, NULL, 0);
    const cJSON *rc = get(r.j, "request_counts");
    EXPECT(r.status == 200 && is(str(r.j, "status"), "cancelled") && !cJSON_IsNull(get(r.j, "cancelled_at")) &&
               num(rc, "completed") == 0 && num(rc, "failed") == 4 && cJSON_IsNull(get(r.j, "output_file_id")) &&
               str(r.j, "error_file_id") && atomic_load(&CALLS) == 0,
           "cancelled: %s", r.body);
    Resp e = content(b, str(r.j, "error_file_id") ? str(r.j, "error_file_id") : "x");
    cJSON *el[8] = {0};
    int n = jsonl(e.body, e.len, el, 8), good = n == 4;
    for (int i = 0; i < n; i++) {
        good &= cJSON_IsNull(get(el[i], "response")) && is(str(get(el[i], "error"), "code"), "batch_cancelled");
        cJSON_Delete(el[i]);
    }
    EXPECT(good, "every line batch_cancelled:\n%s", e.body);
    resp_free(&e);
    Resp again = call(b, "POST", u, NULL, NULL, 0, NULL, 0);
    EXPECT(again.status == 200 && is(str(again.j, "status"), "cancelled") &&
               is(str(again.j, "error_file_id"), str(r.j, "error_file_id")),
           "cancelled twice: the same");
    BatchStoreStats st;
    batchstore_stats(b, &st);
    EXPECT(st.cancelled == 1 && st.batches == 1 && st.files == 2 && st.lines == 4,
           "stats: %lld cancelled, %lld batches, %lld files, %lld lines", (long long)st.cancelled, (long long)st.batches,
           (long long)st.files, (long long)st.lines);
    resp_free(&again), resp_free(&r), resp_free(&c);
    free(u), free(fid), free(lines);
    batchstore_destroy(b);
}

static void listing(void) {
    BatchStore *b = store(0, 0, 0, 4);
    char *lines = lines_of(1, "l", 0);
    char *fid = upload(b, "batch", lines, strlen(lines));
    char *ids[5];
    for (int i = 0; i < 5; i++) {
        Resp r = create(b, fid, NULL);
        ids[i] = xstrdup(str(r.j, "id") ? str(r.j, "id") : "?");
        resp_free(&r);
    }
    Resp r = call(b, "GET", "/v1/batches", NULL, NULL, 0, NULL, 2);
    const cJSON *d = get(r.j, "data");
    EXPECT(r.status == 200 && is(str(r.j, "object"), "list") && cJSON_GetArraySize(d) == 2 &&
               is(str(cJSON_GetArrayItem(d, 0), "id"), ids[4]) && is(str(cJSON_GetArrayItem(d, 1), "id"), ids[3]) &&
               is(str(r.j, "first_id"), ids[4]) && is(str(r.j, "last_id"), ids[3]) && cJSON_IsTrue(get(r.j, "has_more")),
           "limit 2: the newest two, has_more: %s", r.body);
    resp_free(&r);
    r = call(b, "GET", "/v1/batches", NULL, NULL, 0, ids[3], 2);
    d = get(r.j, "data");
    EXPECT(cJSON_GetArraySize(d) == 2 && is(str(cJSON_GetArrayItem(d, 0), "id"), ids[2]) &&
               is(str(cJSON_GetArrayItem(d, 1), "id"), ids[1]) && cJSON_IsTrue(get(r.j, "has_more")),
           "after the 4th: the 3rd and 2nd: %s", r.body);
    resp_free(&r);
    r = call(b, "GET", "/v1/batches", NULL, NULL, 0, ids[1], 2);
    d = get(r.j, "data");
    EXPECT(cJSON_GetArraySize(d) == 1 && is(str(cJSON_GetArrayItem(d, 0), "id"), ids[0]) && cJSON_IsFalse(get(r.j, "has_more")),
           "after the 2nd: the first, no more: %s", r.body);
    resp_free(&r);
    r = call(b, "GET", "/v1/batches", NULL, NULL, 0, ids[0], 0);
    EXPECT(cJSON_GetArraySize(get(r.j, "data")) == 0 && cJSON_IsNull(get(r.j, "first_id")) &&
               cJSON_IsNull(get(r.j, "last_id")) && cJSON_IsFalse(get(r.j, "has_more")),
           "after the oldest: an empty page: %s", r.body);
    resp_free(&r);
    r = call(b, "GET", "/v1/batches", NULL, NULL, 0, NULL, 0);
    EXPECT(cJSON_GetArraySize(get(r.j, "data")) == 5 && cJSON_IsFalse(get(r.j, "has_more")), "no limit: 20 at most, all 5");
    resp_free(&r);
    for (int i = 0; i < 5; i++) free(ids[i]);
    free(fid), free(lines);
    batchstore_destroy(b);
}

/* custom_ids with quotes and backslashes: every output and error line stays JSON */
static void escapes(void) {
    BatchStore *b = store(0, 0.5, 0, 2);
    ByteBuf l = {0};
    for (int i = 0; i < 8; i++)
        bytebuf_printf(&l, "{\"custom_id\":\"say \\\"%d\\\" \\\\ ok\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\","
                           "\"body\":{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}}\n", i);
    bytebuf_put(&l, "", 0);
    char *fid = upload(b, "batch", l.a, l.n);
    Resp c = create(b, fid, NULL);
    Resp r = wait_end(b, str(c.j, "id"));
    int seen = 0, good = 1;
    const char *files[2] = {str(r.j, "output_file_id"), str(r.j, "error_file_id")};
    for (int k = 0; k < 2; k++) {
        if (!files[k]) continue;
        Resp f = content(b, files[k]);
        cJSON *ls[16] = {0};
        int n = jsonl(f.body, f.len, ls, 16);
        for (int i = 0; i < n; i++) {
            const char *cid = str(ls[i], "custom_id");
            int d = -1;
            good &= cid && sscanf(cid, "say \"%d\" \\ ok", &d) == 1 && d >= 0 && d < 8;
            seen++;
            cJSON_Delete(ls[i]);
        }
        resp_free(&f);
    }
    EXPECT(good && seen == 8, "custom_ids with quotes and backslashes come back as they were sent (%d lines)", seen);
    resp_free(&r), resp_free(&c), free(fid), bytebuf_free(&l);
    batchstore_destroy(b);
}

/* ---- threads ------------------------------------------------------------------------------------------ */

typedef struct {
    BatchStore *b;
    int t;
    char *bid[5];
    int ok;
} Worker;

static void *worker(void *v) {
    Worker *w = v;
    w->ok = 1;
    for (int i = 0; i < 5; i++) {
        char prefix[16];
        snprintf(prefix, sizeof prefix, "t%d-%d-", w->t, i);
        char *lines = lines_of(3, prefix, 0);
        char *fid = upload(w->b, "batch", lines, strlen(lines));
        Resp c = create(w->b, fid ? fid : "x", NULL);
        w->ok &= c.status == 200;
        w->bid[i] = xstrdup(str(c.j, "id") ? str(c.j, "id") : "?");
        Resp r = wait_end(w->b, w->bid[i]);
        w->ok &= is(str(r.j, "status"), "completed") && num(get(r.j, "request_counts"), "completed") == 3;
        resp_free(&r), resp_free(&c), free(fid), free(lines);
    }
    return NULL;
}

static void threads(void) {
    BatchStore *b = store(0.05, 0, 0, 8);
    atomic_store(&CALLS, 0);
    Worker w[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) w[t] = (Worker){.b = b, .t = t}, pthread_create(&th[t], NULL, worker, &w[t]);
    for (int t = 0; t < 4; t++) pthread_join(th[t], NULL);
    int ok = 1, distinct = 1;
    for (int t = 0; t < 4; t++) {
        ok &= w[t].ok;
        for (int i = 0; i < 5; i++)
            for (int u = 0; u < 4; u++)
                for (int k = 0; k < 5; k++)
                    if ((u != t || k != i) && !strcmp(w[t].bid[i], w[u].bid[k])) distinct = 0;
    }
    BatchStoreStats st;
    batchstore_stats(b, &st);
    EXPECT(ok && distinct && atomic_load(&CALLS) == 60 && st.batches == 20 && st.files == 40 && st.lines == 60,
           "four threads: every batch completed, distinct ids, %d answers, stats %lld batches %lld files %lld lines",
           atomic_load(&CALLS), (long long)st.batches, (long long)st.files, (long long)st.lines);
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < 5; i++) free(w[t].bid[i]);
    batchstore_destroy(b);
}

int main(void) {
    paths();
    files();
    lifecycle();
    failures();
    validation();
    cancel();
    listing();
    escapes();
    threads();
    return test_summary();
}

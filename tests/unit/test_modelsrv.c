/* test_modelsrv -- `hdistill serve --model` (stages/modelsrv.h):
 * modelsrv_main in forked children (it serves until SIGTERM), spoken to
 * over HTTP on 127.0.0.1 with libcurl; the student is a random 2-layer GPT-2
 * of 32 positions whose run stores eval.beam 3 and eval.max_new 8.
 * (modelsrv_answer's fields and errors one by one are unit infer's; here
 * the served endpoint.)
 *  - the command line: --help; every bad option exits 2 with one line on
 *    stderr (no --model, an unknown option, a stray argument, --port and
 *    --threads out of range or not integers, an empty --model-name, a
 *    missing value, an unreadable source); a port already in use exits 1;
 *    argv[1] "serve" is skipped;
 *  - the ready line "hdistill serve: student NAME listening on URL" on
 *    stdout, --port-file, SIGTERM -> exit 0 (a summary line unless --quiet);
 *  - GET /v1/models: exactly the documented list with the model id (the
 *    source's base name without .h5, or --model-name, also one that needs
 *    JSON escaping: it was written raw, fixed in standin/serve.c);
 *  - POST /v1/chat/completions: temperature 0 = beam search's best (the
 *    output of `generate`), OpenAI's chat.completion shape with usage =
 *    prompt ids + generated tokens (end token included); n = 2 with a seed,
 *    logprobs and top_logprobs and no max_tokens = the samples of
 *    `generate --sample` for the same settings with --max-new eval.max_new
 *    (the documented default; sampling used critique.max_new: fixed), one
 *    log-prob item per generated token but the end token, alternatives
 *    ordered, bytes in 0..255;
 *  - errors over HTTP in OpenAI's shape: a body that is not JSON (400,
 *    param null), another model (404 model_not_found), stream (400 naming
 *    it), an unknown path (404 unknown_url), a wrong method (405
 *    method_not_allowed), a body over 4 MiB (413);
 *  - the Batch API: a batch of two lines answered by the student (the same
 *    texts as the synchronous answers). */
#include <arpa/inet.h>
#include <cJSON.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/config.h"
#include "base/util.h"
#include "io/ckpt.h"
#include "stages/infer.h"
#include "stages/modelsrv.h"
#include "test.h"
#include "test_run.h"

static char *root, *run_dir, *ckpt_file;
static Infer REF;

/* ---- the run ------------------------------------------------------------------------------- */


static void write_run(void) {
    const char *kv[] = {"eval.beam=3", "eval.max_new=8", "run.threads=1", NULL};
    ckpt_file = test_write_run(run_dir, 5, 13, kv, "test_modelsrv");
}

/* ---- the server in a child ------------------------------------------------------------------- */

typedef struct {
    pid_t pid;
    int port;
    char out[600], err[600], port_file[600];
} Srv;

/* Starts `hdistill ARGS... --port-file F` (NULL-terminated; ARGS may start with "serve") in a child; port 0 when it
 * did not get ready. */
static void srv_start(Srv *s, const char *first, ...) {
    static int count;
    memset(s, 0, sizeof *s);
    snprintf(s->out, sizeof s->out, "%s/srv%d.out", root, count);
    snprintf(s->err, sizeof s->err, "%s/srv%d.err", root, count);
    snprintf(s->port_file, sizeof s->port_file, "%s/srv%d.port", root, count++);
    char *argv[40];
    int argc = 0;
    argv[argc++] = "hdistill";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && argc < 36; a = va_arg(ap, const char *)) argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc++] = "--port-file";
    argv[argc++] = s->port_file;
    argv[argc] = NULL;
    fflush(stdout), fflush(stderr);
    s->pid = fork();
    if (s->pid < 0) abort();
    if (s->pid == 0) {
        int o = open(s->out, O_WRONLY | O_CREAT | O_TRUNC, 0644), e = open(s->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(o, 1), dup2(e, 2), close(o), close(e);
        log_set_quiet(0); /* as the program runs it */
        int rc = modelsrv_main(argc, argv);
        fflush(stdout), fflush(stderr);
        _exit(rc);
    }
    for (int i = 0; i < 400; i++) { /* up to 20 s */
        char *t = test_read_file(s->port_file, NULL);
        if (t) {
            s->port = atoi(t);
            free(t);
            for (int k = 0; s->port > 0 && k < 100; k++) { /* the ready line follows the port file */
                char *o = test_read_file(s->out, NULL);
                int ready = o && strstr(o, "listening on");
                free(o);
                if (ready) break;
                usleep(20000);
            }
            if (s->port > 0) return;
        }
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) { /* ended early */
            s->pid = 0;
            return;
        }
        usleep(50000);
    }
    kill(s->pid, SIGKILL); /* never got ready */
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

/* SIGTERM; returns the exit status; out and err (may be NULL) get what it wrote. */
static int srv_stop(Srv *s, char **out, char **err) {
    int st = 0;
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR) {}
    }
    if (out) *out = test_read_file(s->out, NULL);
    if (err) *err = test_read_file(s->err, NULL);
    return test_status_(st);
}

/* Runs `hdistill serve ARGS...` expected to end by itself: exit status, stdout, stderr. */
static int srv_run(char **out, char **err, const char *first, ...) {
    char *argv[40];
    int argc = 0;
    argv[argc++] = "hdistill";
    va_list ap;
    va_start(ap, first);
    for (const char *a = first; a && argc < 38; a = va_arg(ap, const char *)) argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    char op[600], ep[600];
    snprintf(op, sizeof op, "%s/run.out", root), snprintf(ep, sizeof ep, "%s/run.err", root);
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) abort();
    if (pid == 0) {
        int o = open(op, O_WRONLY | O_CREAT | O_TRUNC, 0644), e = open(ep, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(o, 1), dup2(e, 2), close(o), close(e);
        alarm(20); /* one that serves by mistake ends */
        log_set_quiet(0);
        int rc = modelsrv_main(argc, argv);
        fflush(stdout), fflush(stderr);
        _exit(rc);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    *out = test_read_file(op, NULL), *err = test_read_file(ep, NULL);
    if (!*out) *out = strdup("");
    if (!*err) *err = strdup("");
    return test_status_(st);
}

/* ---- HTTP ---------------------------------------------------------------------------------- */

typedef struct {
    long status;
    ByteBuf body;
    CURLcode rc;
} Http;

static size_t on_data(char *p, size_t sz, size_t n, void *ud) {
    bytebuf_put(ud, p, sz * n);
    return sz * n;
}

/* method "GET"/"POST"/...; body NULL for none; mime (POST multipart) may be NULL */
static Http http(const Srv *s, const char *method, const char *path, const char *body, size_t len, curl_mime *mime) {
    Http h = {0};
    bytebuf_put(&h.body, "", 0);
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
    CURL *c = curl_easy_init();
    CHECK(c, "curl_easy_init");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &h.body);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    struct curl_slist *hdr = curl_slist_append(NULL, "Expect:");
    if (body) {
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    if (mime) curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    h.rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &h.status);
    curl_easy_cleanup(c);
    curl_slist_free_all(hdr);
    return h;
}

static cJSON *post_json(const Srv *s, const char *body, long *status) {
    Http h = http(s, "POST", "/v1/chat/completions", body, strlen(body), NULL);
    *status = h.rc == CURLE_OK ? h.status : -1;
    cJSON *j = cJSON_Parse(h.body.a);
    bytebuf_free(&h.body);
    return j;
}

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }
static const char *str(const cJSON *o, const char *k) {
    const cJSON *x = get(o, k);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}
static int is(const char *a, const char *b) { return a && b && !strcmp(a, b); }

/* An error body in OpenAI's shape with this param (NULL: null) and code (NULL: any). */
static int openai_error(const cJSON *j, const char *param, const char *code) {
    const cJSON *e = get(j, "error");
    if (!cJSON_IsObject(e) || !str(e, "message") || !cJSON_HasObjectItem(e, "type") || !cJSON_HasObjectItem(e, "code"))
        return 0;
    const cJSON *p = get(e, "param");
    if (param ? !is(str(e, "param"), param) : !cJSON_IsNull(p)) return 0;
    return !code || is(str(e, "code"), code);
}

/* ---- the command line ----------------------------------------------------------------------- */

static void command_line(void) {
    char *out, *err;
    int rc = srv_run(&out, &err, "serve", "--help", NULL);
    EXPECT(rc == 0 && !strncmp(out, "usage: hdistill serve --model", 29) && !err[0], "--help: %d\n%s", rc, out);
    free(out), free(err);
    rc = srv_run(&out, &err, "--model", run_dir, "-h", NULL);
    EXPECT(rc == 0 && !strncmp(out, "usage:", 6), "-h without the word serve: %d", rc);
    free(out), free(err);

    char *missing = xasprintf("%s/nothere", root);
    struct { const char *a[6]; const char *want; } bad[] = {
        {{"serve", NULL}, "--model RUN_DIR|CHECKPOINT.h5|HF_DIR is required"},
        {{"serve", "--model", run_dir, "--frob", "1", NULL}, "unknown option '--frob'"},
        {{"serve", "--model", run_dir, "extra", NULL}, "unexpected argument 'extra'"},
        {{"serve", "--model", run_dir, "--port", "70000", NULL}, "--port 70000"},
        {{"serve", "--model", run_dir, "--port", "-1", NULL}, "--port -1"},
        {{"serve", "--model", run_dir, "--port=80a", NULL}, "--port 80a"},
        {{"serve", "--model", run_dir, "--threads", "0", NULL}, "--threads 0"},
        {{"serve", "--model", run_dir, "--threads", "65", NULL}, "--threads 65"},
        {{"serve", "--model", run_dir, "--model-name", "", NULL}, "--model-name must not be empty"},
        {{"serve", "--model", run_dir, "--port", NULL}, "--port needs a value"},
        {{"serve", "--model", missing, NULL}, missing},
        {{"serve", "--model", run_dir, "--set", "eval.bogus=1", NULL}, "eval.bogus"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *const *a = bad[i].a;
        rc = srv_run(&out, &err, a[0], a[1], a[2], a[3], a[4], a[5]);
        const char *nl = strchr(err, '\n');
        EXPECT(rc == 2 && nl && !nl[1] && !strncmp(err, "hdistill serve: ", 16) && strstr(err, bad[i].want) &&
                   !strstr(out, "listening"),
               "case %zu: exit %d (want 2), stderr '%s' (want one line with '%s')", i, rc, err, bad[i].want);
        free(out), free(err);
    }
    free(missing);

    /* a port already in use: exit 1 with one line */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 1) == 0 &&
              getsockname(fd, (struct sockaddr *)&a, &al) == 0,
          "a listening socket");
    char port[16];
    snprintf(port, sizeof port, "%d", ntohs(a.sin_port));
    rc = srv_run(&out, &err, "serve", "--model", run_dir, "--port", port, "--quiet", NULL);
    const char *nl = strchr(err, '\n');
    EXPECT(rc == 1 && nl && !strchr(nl + 1, '\n') && !strstr(out, "listening"), "port %s in use: exit %d, '%s'", port,
           rc, err);
    free(out), free(err);
    close(fd);
}

/* ---- serving ------------------------------------------------------------------------------------ */

/* beam search's best output for input (generate's default) and the prompt's length */
static char *beam_best(const char *input, int *plen) {
    GenOptions o;
    infer_gen_options(&REF, GEN_BEAM, &o);
    char *texts[] = {(char *)input};
    GenSeq g;
    IntVec pr = {0};
    student_decode(&REF.s, &o, texts, 1, 0, &pr, &g);
    char *t = student_text(&REF.s, g.ids, g.n);
    *plen = (int)pr.n;
    gen_seq_free(&g), intvec_free(&pr);
    return t;
}

static void models_list(const Srv *s, const char *id) {
    Http h = http(s, "GET", "/v1/models", NULL, 0, NULL);
    cJSON *j = cJSON_Parse(h.body.a);
    cJSON *want = cJSON_CreateObject();
    cJSON_AddStringToObject(want, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(want, "data"), *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", 0);
    cJSON_AddStringToObject(m, "owned_by", "hdistill");
    cJSON_AddItemToArray(data, m);
    EXPECT(h.rc == CURLE_OK && h.status == 200 && j && cJSON_Compare(j, want, 1), "GET /v1/models for '%s': %ld %s", id,
           h.status, h.body.a);
    cJSON_Delete(j), cJSON_Delete(want);
    bytebuf_free(&h.body);
}

static void chat(const Srv *s) {
    long st;
    int plen;
    char *want = beam_best("the cat sat", &plen);
    cJSON *j = post_json(s, "{\"model\":\"stu\",\"messages\":[{\"role\":\"user\",\"content\":\"the cat sat\"}],\"temperature\":0}",
                         &st);
    const cJSON *c0 = cJSON_GetArrayItem(get(j, "choices"), 0), *msg = get(c0, "message"), *u = get(j, "usage");
    EXPECT(st == 200 && is(str(j, "object"), "chat.completion") && is(str(j, "model"), "stu") && str(j, "id") &&
               cJSON_GetArraySize(get(j, "choices")) == 1 && cJSON_IsNumber(get(c0, "index")) &&
               get(c0, "index")->valueint == 0,
           "temperature 0: a chat.completion of one choice (%ld)", st);
    EXPECT(is(str(msg, "role"), "assistant") && is(str(msg, "content"), want) && cJSON_IsNull(get(msg, "refusal")) &&
               cJSON_IsNull(get(c0, "logprobs")),
           "temperature 0: beam search's best '%s' (got '%s'), refusal and logprobs null", want, str(msg, "content"));
    const char *fr = str(c0, "finish_reason");
    double pt = cJSON_GetNumberValue(get(u, "prompt_tokens")), ct = cJSON_GetNumberValue(get(u, "completion_tokens")),
           tt = cJSON_GetNumberValue(get(u, "total_tokens"));
    EXPECT((is(fr, "stop") || (is(fr, "length") && ct == 8)) && pt == plen && ct >= 1 && ct <= 8 && tt == pt + ct,
           "usage: prompt %g (want %d), completion %g (finish %s), total %g", pt, plen, ct, fr ? fr : "?", tt);
    cJSON_Delete(j), free(want);

    /* n = 2 samples with a seed and log-probs: generate --sample --k 2 --temperature 0.8 --top-p 1 --seed 4 --max-new 8 */
    j = post_json(s, "{\"model\":\"stu\",\"messages\":[{\"role\":\"user\",\"content\":\"a dog on the log\"}],\"n\":2,"
                     "\"temperature\":0.8,\"seed\":4,\"logprobs\":true,\"top_logprobs\":2}", &st);
    GenOptions o;
    infer_gen_options(&REF, GEN_SAMPLE, &o);
    o.k = 2, o.temperature = 0.8, o.top_p = 1, o.seed = 4, o.max_new = 8;
    char *texts[] = {"a dog on the log"};
    GenSeq g[2];
    student_decode(&REF.s, &o, texts, 1, 0, NULL, g);
    int completion = 0;
    for (int i = 0; i < 2; i++) {
        const cJSON *c = cJSON_GetArrayItem(get(j, "choices"), i);
        char *t = student_text(&REF.s, g[i].ids, g[i].n);
        const cJSON *items = get(get(c, "logprobs"), "content");
        EXPECT(st == 200 && c && is(str(get(c, "message"), "content"), t) &&
                   is(str(c, "finish_reason"), g[i].finished ? "stop" : "length"),
               "sample %d: '%s' = generate --sample's '%s'", i, c ? str(get(c, "message"), "content") : "?", t);
        int ok = cJSON_GetArraySize(items) == g[i].n;
        double sum = 0;
        for (int k = 0; ok && k < g[i].n; k++) {
            const cJSON *it = cJSON_GetArrayItem(items, k), *top = get(it, "top_logprobs"), *bytes = get(it, "bytes");
            ok &= cJSON_IsString(get(it, "token")) && cJSON_IsNumber(get(it, "logprob")) && cJSON_GetArraySize(top) == 2 &&
                  cJSON_IsArray(bytes) && cJSON_GetArraySize(bytes) >= 1;
            if (!ok) break;
            sum += get(it, "logprob")->valuedouble;
            double t0 = get(cJSON_GetArrayItem(top, 0), "logprob")->valuedouble;
            double t1 = get(cJSON_GetArrayItem(top, 1), "logprob")->valuedouble;
            ok &= t0 >= t1 && t0 >= get(it, "logprob")->valuedouble - 1e-9 && t0 <= 0;
            for (int b = 0; b < cJSON_GetArraySize(bytes); b++) {
                int v = cJSON_GetArrayItem(bytes, b)->valueint;
                ok &= v >= 0 && v <= 255;
            }
        }
        /* the end token is not listed: the items sum to the decoder's logp minus the end token's share (two code
         * paths in float32 on a model of sharp distributions: 1e-3) */
        EXPECT(ok && (g[i].finished ? sum > g[i].logp - 1e-3 : fabs(sum - g[i].logp) < 1e-3),
               "sample %d: %d log-prob items (want %d: the end token not listed), sum %.6f vs decoder %.6f", i,
               cJSON_GetArraySize(items), g[i].n, sum, g[i].logp);
        completion += g[i].n + g[i].finished;
        free(t), gen_seq_free(&g[i]);
    }
    EXPECT(cJSON_GetNumberValue(get(get(j, "usage"), "completion_tokens")) == completion,
           "usage: the generated tokens of both choices, end tokens included (%d)", completion);
    cJSON_Delete(j);

    /* errors in OpenAI's shape, through HTTP */
    j = post_json(s, "{\"model\":", &st);
    EXPECT(st == 400 && openai_error(j, NULL, NULL), "not JSON: %ld", st);
    cJSON_Delete(j);
    j = post_json(s, "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &st);
    EXPECT(st == 404 && openai_error(j, "model", "model_not_found"), "another model: %ld", st);
    cJSON_Delete(j);
    j = post_json(s, "{\"model\":\"stu\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true}", &st);
    EXPECT(st == 400 && openai_error(j, "stream", NULL), "stream: %ld", st);
    cJSON_Delete(j);
    struct { const char *method, *path; long status; const char *code; } paths[] = {
        {"GET", "/v1/nothing", 404, "unknown_url"}, {"GET", "/v1/chat/completions", 405, "method_not_allowed"},
        {"POST", "/v1/models", 405, "method_not_allowed"}, {"DELETE", "/v1/models", 405, "method_not_allowed"}};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        Http h = http(s, paths[i].method, paths[i].path, NULL, 0, NULL);
        j = cJSON_Parse(h.body.a);
        EXPECT(h.status == paths[i].status && openai_error(j, NULL, paths[i].code), "%s %s: %ld %s", paths[i].method,
               paths[i].path, h.status, h.body.a);
        cJSON_Delete(j), bytebuf_free(&h.body);
    }
    size_t big = (4u << 20) + 100;
    char *huge = xmalloc(big + 1);
    memset(huge, ' ', big);
    memcpy(huge, "{\"model\":\"stu\",\"x\":\"", 20);
    huge[big - 2] = '"', huge[big - 1] = '}', huge[big] = 0;
    Http h = http(s, "POST", "/v1/chat/completions", huge, big, NULL);
    j = cJSON_Parse(h.body.a);
    EXPECT(h.status == 413 && openai_error(j, NULL, NULL), "a body over 4 MiB: %ld", h.status);
    cJSON_Delete(j), bytebuf_free(&h.body), free(huge);
}

/* The Batch API: two lines answered by the student as the synchronous endpoint answers them. */
static void batch(const Srv *s) {
    const char *lines = "{\"custom_id\":\"a\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"stu\","
                        "\"messages\":[{\"role\":\"user\",\"content\":\"the cat sat\"}],\"temperature\":0}}\n"
                        "{\"custom_id\":\"b\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"stu\","
                        "\"messages\":[{\"role\":\"user\",\"content\":\"a dog on the log\"}],\"temperature\":0}}\n";
    CURL *c = curl_easy_init();
    curl_mime *m = curl_mime_init(c);
    curl_mimepart *p = curl_mime_addpart(m);
    curl_mime_name(p, "purpose");
    curl_mime_data(p, "batch", CURL_ZERO_TERMINATED);
    p = curl_mime_addpart(m);
    curl_mime_name(p, "file");
    curl_mime_filename(p, "in.jsonl");
    curl_mime_data(p, lines, strlen(lines));
    Http h = http(s, "POST", "/v1/files", NULL, 0, m);
    curl_mime_free(m);
    curl_easy_cleanup(c);
    cJSON *f = cJSON_Parse(h.body.a);
    bytebuf_free(&h.body);
    const char *fid = str(f, "id");
    EXPECT(h.status == 200 && fid, "upload: %ld", h.status);
    if (!fid) {
        cJSON_Delete(f);
        return;
    }
    char *body = xasprintf("{\"input_file_id\":\"%s\",\"endpoint\":\"/v1/chat/completions\",\"completion_window\":\"24h\"}", fid);
    h = http(s, "POST", "/v1/batches", body, strlen(body), NULL);
    cJSON *b = cJSON_Parse(h.body.a);
    bytebuf_free(&h.body);
    char *path = xasprintf("/v1/batches/%s", str(b, "id") ? str(b, "id") : "none");
    char *out_id = NULL;
    for (int i = 0; i < 100 && !out_id; i++) { /* done after about 1 s (the default batch delay) */
        usleep(100000);
        h = http(s, "GET", path, NULL, 0, NULL);
        cJSON *x = cJSON_Parse(h.body.a);
        bytebuf_free(&h.body);
        if (is(str(x, "status"), "completed") && str(x, "output_file_id")) out_id = xstrdup(str(x, "output_file_id"));
        cJSON_Delete(x);
    }
    EXPECT(out_id != NULL, "the batch completed");
    char *cpath = xasprintf("/v1/files/%s/content", out_id ? out_id : "none");
    h = http(s, "GET", cpath, NULL, 0, NULL);
    int plen, found = 0;
    for (char *line = h.body.a; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        cJSON *o = cJSON_Parse(line);
        const cJSON *resp = get(o, "response");
        const char *cid = str(o, "custom_id");
        const char *content = str(get(cJSON_GetArrayItem(get(get(resp, "body"), "choices"), 0), "message"), "content");
        char *want = beam_best(is(cid, "a") ? "the cat sat" : "a dog on the log", &plen);
        EXPECT(cJSON_GetNumberValue(get(resp, "status_code")) == 200 && is(content, want),
               "batch line %s: '%s' = the student's '%s'", cid ? cid : "?", content ? content : "?", want);
        found++;
        free(want), cJSON_Delete(o);
        line = nl ? nl + 1 : NULL;
    }
    EXPECT(found == 2, "two output lines (%d)", found);
    bytebuf_free(&h.body);
    free(cpath), free(out_id), free(path), free(body);
    cJSON_Delete(b), cJSON_Delete(f);
}

static void serving(void) {
    Srv s;
    srv_start(&s, "serve", "--model", run_dir, "--model-name", "stu", "--threads", "2", NULL);
    EXPECT(s.port > 0, "the server got ready");
    if (s.port <= 0) {
        srv_stop(&s, NULL, NULL);
        return;
    }
    char *out = test_read_file(s.out, NULL), *want = xasprintf("hdistill serve: student stu listening on http://127.0.0.1:%d/v1\n", s.port);
    EXPECT(out && strstr(out, want), "the ready line '%s' in:\n%s", want, out ? out : "");
    free(out), free(want);
    models_list(&s, "stu");
    chat(&s);
    batch(&s);
    char *err;
    int rc = srv_stop(&s, &out, &err);
    const char *ready = out ? strstr(out, "listening on") : NULL;
    EXPECT(rc == 0 && ready && strstr(ready, "\nhdistill serve: SIGTERM received; served "), "SIGTERM: exit %d, a summary after the ready line:\n%s%s",
           rc, out ? out : "", err ? err : "");
    free(out), free(err);

    /* --quiet, a checkpoint file: the model id is its base name without .h5; only the ready line (argv[1] need not be
     * "serve") */
    srv_start(&s, "--model", ckpt_file, "--quiet", NULL);
    EXPECT(s.port > 0, "--quiet: ready");
    if (s.port > 0) models_list(&s, "step_00000005");
    rc = srv_stop(&s, &out, &err);
    want = xasprintf("hdistill serve: student step_00000005 listening on http://127.0.0.1:%d/v1\n", s.port);
    EXPECT(rc == 0 && out && !strcmp(out, want), "--quiet: exit %d, stdout only the ready line:\n%s", rc, out ? out : "");
    free(out), free(err), free(want);

    /* a model id that needs escaping in JSON */
    srv_start(&s, "--model", run_dir, "--model-name", "my \"best\" \\ run", "--quiet", NULL);
    if (s.port > 0) {
        models_list(&s, "my \"best\" \\ run");
        long st;
        cJSON *j = post_json(&s, "{\"model\":\"my \\\"best\\\" \\\\ run\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                                 "\"temperature\":0}", &st);
        EXPECT(st == 200 && is(str(j, "model"), "my \"best\" \\ run"), "a quoted model id answered: %ld", st);
        cJSON_Delete(j);
    }
    EXPECT(s.port > 0 && srv_stop(&s, NULL, NULL) == 0, "a quoted model id: served and stopped");
}

int main(void) {
    log_set_quiet(1);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    root = test_tmpdir("test_modelsrv");
    run_dir = xasprintf("%s/run", root);
    write_run();
    Err e;
    char *one[] = {"run.threads=1"};
    CHECK(infer_open(&REF, run_dir, one, 1, &e) == 0, "%s", e.msg);
    command_line();
    serving();
    infer_close(&REF);
    par_shutdown();
    curl_global_cleanup();
    test_rm_rf(root);
    free(root), free(run_dir), free(ckpt_file);
    return test_summary();
}

/* modelsrv -- the student behind the OpenAI chat-completions protocol; see
 * include/stages/modelsrv.h and docs/generate.md.  The HTTP side (routing,
 * 404/405/413, the worker threads, shutdown) is standin/serve.c's; this file
 * reads a request, decodes and writes the answer. */
#include "stages/modelsrv.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "standin/serve.h"

struct ModelSrv {
    Infer *m;
    char *name;
    pthread_mutex_t mu; /* one decoding at a time (the model, its activations, the thread pool) */
    long long served;
};

/* What a request asks, once checked. */
typedef struct {
    const char *input;  /* the last user message (points into the parsed body) */
    const char *system; /* the last system or developer message, or NULL */
    double temperature, top_p;
    int n, max_tokens, logprobs, top_logprobs, has_seed;
    uint64_t seed;
} SrvRequest;

ModelSrv *modelsrv_create(Infer *m, const char *name) {
    ModelSrv *ms = xcalloc(1, sizeof *ms);
    ms->m = m;
    ms->name = xstrdup(name);
    pthread_mutex_init(&ms->mu, NULL);
    return ms;
}

void modelsrv_destroy(ModelSrv *ms) {
    if (!ms) return;
    pthread_mutex_destroy(&ms->mu);
    free(ms->name);
    free(ms);
}

/* ---- errors ---------------------------------------------------------------------- */

/* *resp = OpenAI's error body; returns status.  param, code: NULL -> null. */
static int fail(char **resp, int status, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int fail(char **resp, int status, const char *param, const char *code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject(), *er = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(er, "message", msg);
    cJSON_AddStringToObject(er, "type", "invalid_request_error");
    if (param) cJSON_AddStringToObject(er, "param", param);
    else cJSON_AddNullToObject(er, "param");
    if (code) cJSON_AddStringToObject(er, "code", code);
    else cJSON_AddNullToObject(er, "code");
    *resp = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    CHECK(*resp, "cJSON_PrintUnformatted failed");
    return status;
}

/* ---- reading a request ----------------------------------------------------------- */

/* A number field: absent or null keeps *out; else it must be a number in
 * [lo, hi] (integral when integer).  0, or a 400 in *resp. */
static int num_field(const cJSON *o, const char *key, double lo, double hi, int integer, double *out, char **resp) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v))
        return fail(resp, 400, key, "invalid_type", "Invalid type for '%s': expected %s.", key,
                    integer ? "an integer" : "a number");
    double x = v->valuedouble;
    if (integer && x != floor(x))
        return fail(resp, 400, key, "invalid_type", "Invalid type for '%s': expected an integer, got %g.", key, x);
    if (!(x >= lo && x <= hi))
        return fail(resp, 400, key, "invalid_value", "Invalid value for '%s': %g is not in [%g, %g].", key, x, lo, hi);
    *out = x;
    return 0;
}

/* The text of a message's content: a string, or a list of text parts
 * (joined); NULL for null.  0, or a 400 naming messages[i].content. */
static int content_text(const cJSON *c, int i, ByteBuf *b, char **resp) {
    if (cJSON_IsString(c)) {
        bytebuf_put(b, c->valuestring, strlen(c->valuestring));
        return 0;
    }
    if (!cJSON_IsArray(c)) return fail(resp, 400, "messages", "invalid_type",
                                       "Invalid type for 'messages[%d].content': expected a string or an array of text parts.", i);
    const cJSON *p;
    cJSON_ArrayForEach(p, c) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "type"), *x = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (!cJSON_IsString(t) || strcmp(t->valuestring, "text") != 0 || !cJSON_IsString(x))
            return fail(resp, 400, "messages", "invalid_value",
                        "Invalid value for 'messages[%d].content': only text parts ({\"type\":\"text\",\"text\":...}) "
                        "are supported by this student.", i);
        bytebuf_put(b, x->valuestring, strlen(x->valuestring));
    }
    return 0;
}

/* messages: the last user message is the input, the last system (or
 * developer) message the instruction.  texts[] keep the joined contents. */
static int read_messages(const cJSON *o, SrvRequest *q, StrVec *texts, char **resp) {
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(o, "messages");
    if (!ms) return fail(resp, 400, "messages", "missing_required_parameter", "Missing required parameter: 'messages'.");
    if (!cJSON_IsArray(ms) || cJSON_GetArraySize(ms) == 0)
        return fail(resp, 400, "messages", "invalid_value", "Invalid value for 'messages': expected a non-empty array.");
    static const char *ROLES[] = {"system", "developer", "user", "assistant", "tool", "function"};
    int i = 0, user = -1, sys = -1;
    const cJSON *m;
    cJSON_ArrayForEach(m, ms) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role"), *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        int known = 0;
        for (size_t r = 0; cJSON_IsString(role) && r < sizeof ROLES / sizeof *ROLES; r++)
            known |= strcmp(role->valuestring, ROLES[r]) == 0;
        if (!known)
            return fail(resp, 400, "messages", "invalid_value",
                        "Invalid value for 'messages[%d].role': expected one of system, developer, user, assistant, "
                        "tool.", i);
        ByteBuf b = {0};
        if (c && !cJSON_IsNull(c) && content_text(c, i, &b, resp)) {
            bytebuf_free(&b);
            return 400;
        }
        strvec_push(texts, b.a ? b.a : "", b.n);
        bytebuf_free(&b);
        if (!strcmp(role->valuestring, "user")) user = i;
        if (!strcmp(role->valuestring, "system") || !strcmp(role->valuestring, "developer")) sys = i;
        i++;
    }
    if (user < 0) return fail(resp, 400, "messages", "invalid_value", "Invalid value for 'messages': no user message (its "
                                                                      "content is the input the student paraphrases).");
    q->input = texts->a[user];
    q->system = sys >= 0 ? texts->a[sys] : NULL;
    return 0;
}

/* Fields the student cannot honour: a 400 naming them rather than an answer that ignores them. */
static int unsupported(const cJSON *o, char **resp) {
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(o, "stream")) && cJSON_IsTrue(v))
        return fail(resp, 400, "stream", "unsupported_value", "Unsupported value: 'stream' must be false; this "
                                                              "endpoint answers whole completions only.");
    static const char *LISTS[] = {"stop", "tools", "functions", "logit_bias"};
    for (size_t i = 0; i < sizeof LISTS / sizeof *LISTS; i++) {
        v = cJSON_GetObjectItemCaseSensitive(o, LISTS[i]);
        if (v && !cJSON_IsNull(v) && !((cJSON_IsArray(v) || cJSON_IsObject(v)) && cJSON_GetArraySize(v) == 0))
            return fail(resp, 400, LISTS[i], "unsupported_parameter", "Unsupported parameter: '%s' is not supported "
                                                                      "by this student.", LISTS[i]);
    }
    static const char *ZERO[] = {"presence_penalty", "frequency_penalty"};
    for (size_t i = 0; i < 2; i++)
        if ((v = cJSON_GetObjectItemCaseSensitive(o, ZERO[i])) && !cJSON_IsNull(v) && !(cJSON_IsNumber(v) && v->valuedouble == 0))
            return fail(resp, 400, ZERO[i], "unsupported_parameter", "Unsupported parameter: '%s' must be 0 here.", ZERO[i]);
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(o, "response_format"), *t;
    if (rf && !cJSON_IsNull(rf) && !((t = cJSON_GetObjectItemCaseSensitive(rf, "type")) && cJSON_IsString(t) &&
                                     !strcmp(t->valuestring, "text")))
        return fail(resp, 400, "response_format", "unsupported_value", "Unsupported value: 'response_format' must be "
                                                                        "{\"type\": \"text\"}.");
    return 0;
}

/* The sampling fields. */
static int read_options(const cJSON *o, SrvRequest *q, char **resp) {
    double t = 1, p = 1, n = 1, mt = 0, mct = 0, top = 0, seed = 0;
    int st;
    if ((st = num_field(o, "temperature", 0, 2, 0, &t, resp)) || (st = num_field(o, "top_p", 0, 1, 0, &p, resp)) ||
        (st = num_field(o, "n", 1, MODELSRV_MAX_N, 1, &n, resp)) ||
        (st = num_field(o, "max_tokens", 1, 1e9, 1, &mt, resp)) ||
        (st = num_field(o, "max_completion_tokens", 1, 1e9, 1, &mct, resp)) ||
        (st = num_field(o, "top_logprobs", 0, INFER_MAX_TOP, 1, &top, resp)) ||
        (st = num_field(o, "seed", -9.2e18, 9.2e18, 1, &seed, resp)))
        return st;
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(o, "logprobs");
    if (lp && !cJSON_IsNull(lp) && !cJSON_IsBool(lp))
        return fail(resp, 400, "logprobs", "invalid_type", "Invalid type for 'logprobs': expected a boolean.");
    q->logprobs = cJSON_IsTrue(lp);
    if (top > 0 && !q->logprobs)
        return fail(resp, 400, "top_logprobs", "invalid_value",
                    "Invalid value for 'top_logprobs': 'logprobs' must be true when 'top_logprobs' is set.");
    const cJSON *sd = cJSON_GetObjectItemCaseSensitive(o, "seed");
    q->has_seed = sd && !cJSON_IsNull(sd);
    q->temperature = t, q->top_p = p > 0 ? p : 1e-12, q->n = (int)n, q->top_logprobs = (int)top;
    q->max_tokens = (int)(mct > 0 ? mct : mt);
    q->seed = (uint64_t)(int64_t)seed;
    return 0;
}

/* The whole request: 0 with q filled (pointing into *doc and texts), or an error status with *resp. */
static int read_request(const ModelSrv *ms, const char *body, size_t len, cJSON **doc, StrVec *texts, SrvRequest *q,
                        char **resp) {
    memset(q, 0, sizeof *q);
    cJSON *o = *doc = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(o))
        return fail(resp, 400, NULL, NULL, "We could not parse the JSON body of your request: expected a JSON object.");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(o, "model");
    if (!model) return fail(resp, 400, "model", "missing_required_parameter", "Missing required parameter: 'model'.");
    if (!cJSON_IsString(model)) return fail(resp, 400, "model", "invalid_type", "Invalid type for 'model': expected a string.");
    if (strcmp(model->valuestring, ms->name) != 0)
        return fail(resp, 404, "model", "model_not_found", "The model '%.200s' does not exist: this endpoint serves '%s'.",
                    model->valuestring, ms->name);
    int st;
    if ((st = unsupported(o, resp)) || (st = read_messages(o, q, texts, resp)) || (st = read_options(o, q, resp))) return st;
    return 0;
}

/* ---- answering ------------------------------------------------------------------- */

/* {"token","logprob","bytes"} of token id */
static cJSON *token_json(const Infer *m, int id, double logprob) {
    cJSON *t = cJSON_CreateObject(), *bytes;
    ByteBuf txt = {0}, raw = {0};
    infer_token_text(m, id, &txt, &raw);
    cJSON_AddStringToObject(t, "token", txt.a);
    cJSON_AddNumberToObject(t, "logprob", logprob);
    bytes = cJSON_AddArrayToObject(t, "bytes");
    for (size_t i = 0; i < raw.n; i++) cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)raw.a[i]));
    bytebuf_free(&txt), bytebuf_free(&raw);
    return t;
}

/* choices[].logprobs: the generated tokens (not the end token) scored again, with top alternatives */
static cJSON *logprobs_json(Infer *m, const IntVec *prompt, const GenSeq *g, int top) {
    cJSON *lp = cJSON_CreateObject(), *content = cJSON_AddArrayToObject(lp, "content");
    cJSON_AddNullToObject(lp, "refusal");
    if (g->n == 0) return lp;
    /* scored with the end token when it ended the output, as generate --json scores it (the same sums) */
    InferToken *tk = xcalloc((size_t)g->n + 1, sizeof *tk);
    infer_score(m, prompt->a, (int)prompt->n, g->ids, g->n, g->finished, top, tk);
    for (int j = 0; j < g->n; j++) {
        cJSON *t = token_json(m, tk[j].id, tk[j].logprob), *alts = cJSON_AddArrayToObject(t, "top_logprobs");
        for (int a = 0; a < tk[j].n_top; a++) cJSON_AddItemToArray(alts, token_json(m, tk[j].top_id[a], tk[j].top_logprob[a]));
        cJSON_AddItemToArray(content, t);
    }
    free(tk);
    return lp;
}

/* The decoding options of q for a prompt of plen ids. */
static void request_options(const ModelSrv *ms, const SrvRequest *q, int plen, GenOptions *o) {
    if (q->temperature == 0) {
        infer_gen_options(ms->m, GEN_BEAM, o);
        if (o->beam < q->n) o->beam = q->n;
    } else {
        infer_gen_options(ms->m, GEN_SAMPLE, o);
        o->temperature = q->temperature;
        o->top_p = q->top_p;
    }
    o->k = q->n;
    o->seed = q->seed;
    int room = ms->m->s.model.cfg.max_seq_len - plen;
    o->max_new = q->max_tokens > 0 ? q->max_tokens : ms->m->cfg.eval.max_new; /* the documented default, sampling too */
    if (o->max_new > room) o->max_new = room;
}

/* Decodes q (ms->mu held) into a chat.completion body. */
static int answer(ModelSrv *ms, const SrvRequest *q, char **resp) {
    Infer *m = ms->m;
    Student st = m->s; /* a shallow copy whose format may take the request's instruction */
    PromptFormat own = {0};
    Err e = {{0}};
    if (q->system && st.fmt.kind == PROMPT_CHAT) {
        if (prompt_format_init(&own, st.tok, PROMPT_CHAT, q->system, m->cfg.tokenizer.separator, &e) != 0)
            return fail(resp, 400, "messages", "invalid_value", "The system message cannot be used: %s", e.msg);
        st.fmt = own;
        st.eot = own.end;
    }
    IntVec pr = {0};
    student_prompt(&st, q->input, &pr);
    int P = m->s.model.cfg.max_seq_len, plen = (int)pr.n;
    intvec_free(&pr);
    if (plen >= P) {
        prompt_format_free(&own);
        return fail(resp, 400, "messages", "context_length_exceeded",
                    "This model's maximum context length is %d tokens. However, your messages resulted in %d tokens.", P, plen);
    }
    GenOptions o;
    request_options(ms, q, plen, &o);
    GenSeq *g = xcalloc((size_t)q->n, sizeof *g);
    char *input = (char *)q->input;
    student_decode(&st, &o, &input, 1, 0, &pr, g);
    cJSON *doc = cJSON_CreateObject(), *choices;
    char id[64];
    snprintf(id, sizeof id, "chatcmpl-hdistill-%lld-%lld", (long long)time(NULL), ++ms->served);
    cJSON_AddStringToObject(doc, "id", id);
    cJSON_AddStringToObject(doc, "object", "chat.completion");
    cJSON_AddNumberToObject(doc, "created", (double)time(NULL));
    cJSON_AddStringToObject(doc, "model", ms->name);
    cJSON_AddStringToObject(doc, "system_fingerprint", "hdistill-student");
    choices = cJSON_AddArrayToObject(doc, "choices");
    long long completion = 0;
    for (int i = 0; i < q->n; i++) {
        cJSON *c = cJSON_CreateObject(), *msg;
        cJSON_AddNumberToObject(c, "index", i);
        msg = cJSON_AddObjectToObject(c, "message");
        cJSON_AddStringToObject(msg, "role", "assistant");
        char *text = student_text(&st, g[i].ids, g[i].n);
        cJSON_AddStringToObject(msg, "content", text);
        free(text);
        cJSON_AddNullToObject(msg, "refusal");
        if (q->logprobs) cJSON_AddItemToObject(c, "logprobs", logprobs_json(m, &pr, &g[i], q->top_logprobs));
        else cJSON_AddNullToObject(c, "logprobs");
        cJSON_AddStringToObject(c, "finish_reason", g[i].finished ? "stop" : "length");
        cJSON_AddItemToArray(choices, c);
        completion += g[i].n + (g[i].finished ? 1 : 0);
        gen_seq_free(&g[i]);
    }
    cJSON *u = cJSON_AddObjectToObject(doc, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", plen);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)completion);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(plen + completion));
    *resp = cJSON_PrintUnformatted(doc);
    CHECK(*resp, "cJSON_PrintUnformatted failed");
    cJSON_Delete(doc);
    free(g);
    intvec_free(&pr);
    prompt_format_free(&own);
    return 200;
}

int modelsrv_answer(void *ctx, const char *body, size_t len, char **resp) {
    ModelSrv *ms = ctx;
    cJSON *doc = NULL;
    StrVec texts = {0};
    SrvRequest q;
    int st = read_request(ms, body, len, &doc, &texts, &q, resp);
    if (st == 0) {
        pthread_mutex_lock(&ms->mu);
        st = answer(ms, &q, resp);
        pthread_mutex_unlock(&ms->mu);
    }
    cJSON_Delete(doc);
    strvec_free(&texts);
    return st;
}

/* ---- the command line -------------------------------------------------------------- */

static const char MODELSRV_HELP[] =
    "usage: hdistill serve --model RUN_DIR|CHECKPOINT.h5|HF_DIR [--port P] [--host H]\n"
    "                      [--port-file FILE] [--model-name NAME] [--threads N]\n"
    "                      [--set section.key=value]... [--quiet]\n"
    "\n"
    "Serves the student (of RUN_DIR's newest readable checkpoint, of the checkpoint\n"
    "given, or of a Hugging Face model directory) as an OpenAI-compatible endpoint until\n"
    "SIGTERM or SIGINT: GET /v1/models and POST /v1/chat/completions, the last user message\n"
    "being the input, put to the student in the run's prompt format.  temperature 0: beam\n"
    "search (width max(eval.beam, n)), the n best; temperature > 0: n samples (temperature,\n"
    "top_p, seed; seed 0 when not given).  max_tokens / max_completion_tokens (default\n"
    "eval.max_new), logprobs and top_logprobs (<= 20), usage.  One request is decoded at\n"
    "a time.  Prints \"hdistill serve: student NAME listening on URL\" when ready.\n"
    "\n"
    "  --model SRC          the student (required)\n"
    "  --port P             port to listen on; 0 picks a free one (default 0)\n"
    "  --host H             listen address (default 127.0.0.1; --bind is the same)\n"
    "  --port-file FILE     write the port there (atomically) once listening\n"
    "  --model-name NAME    the model id of /v1/models and requests (default: SRC's base name)\n"
    "  --threads N          HTTP worker threads (default min(4, CPUs))\n"
    "  --set k=v            change the configuration read with the student (repeatable)\n"
    "  --quiet              only the ready line\n"
    "\n"
    "Limits, shapes and errors: docs/generate.md.\n";

typedef struct {
    const char *src, *name;
    StrVec sets;
    ServeOptions so;
} SrvArgs;

/* the options with a value (--bind is --host) */
enum { OPT_MODEL, OPT_MODEL_NAME, OPT_HOST, OPT_BIND, OPT_PORT_FILE, OPT_SET, OPT_PORT, OPT_THREADS };
static const char *const VALUED[] = {[OPT_MODEL] = "--model", [OPT_MODEL_NAME] = "--model-name", [OPT_HOST] = "--host",
                                     [OPT_BIND] = "--bind",   [OPT_PORT_FILE] = "--port-file",   [OPT_SET] = "--set",
                                     [OPT_PORT] = "--port",   [OPT_THREADS] = "--threads",       NULL};

/* 1 for --help, 0, or -1 with e set */
static int parse_args(int argc, char **argv, SrvArgs *a, Err *e) {
    int i = 1;
    if (i < argc && !strcmp(argv[i], "serve")) i++;
    for (; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) return 1;
        if (!strcmp(s, "--quiet")) { a->so.quiet = 1; continue; }
        if (strncmp(s, "--", 2) != 0) return err_set(e, "unexpected argument '%s'", s);
        const char *v;
        int opt = util_parse_option(argc, argv, &i, VALUED, &v, "", e);
        if (opt < 0) return -1;
        char *end;
        errno = 0;
        long x = strtol(v, &end, 10);
        int integer = *v && !*end && !errno;
        switch (opt) {
        case OPT_MODEL: a->src = v; break;
        case OPT_MODEL_NAME: a->name = v; break;
        case OPT_HOST:
        case OPT_BIND: a->so.bind = v; break;
        case OPT_PORT_FILE: a->so.port_file = v; break;
        case OPT_SET: strvec_push(&a->sets, v, (size_t)-1); break;
        case OPT_PORT:
            if (!integer || x < 0 || x > 65535) return err_set(e, "--port %s: not an integer in [0, 65535]", v);
            a->so.port = (int)x;
            break;
        case OPT_THREADS:
            if (!integer || x < 1 || x > 64) return err_set(e, "--threads %s: not an integer in [1, 64]", v);
            a->so.threads = (int)x;
            break;
        }
    }
    if (!a->src) return err_set(e, "--model RUN_DIR|CHECKPOINT.h5|HF_DIR is required");
    if (a->name && !a->name[0]) return err_set(e, "--model-name must not be empty");
    return 0;
}

int modelsrv_main(int argc, char **argv) {
    SrvArgs a;
    memset(&a, 0, sizeof a);
    serve_options_init(&a.so);
    Err e = {{0}};
    int rc = parse_args(argc, argv, &a, &e);
    if (rc) {
        if (rc == 1) fputs(MODELSRV_HELP, stdout);
        else fprintf(stderr, "hdistill serve: %s (see hdistill serve --model X --help)\n", e.msg);
        strvec_free(&a.sets);
        return rc == 1 ? EXIT_OK : EXIT_USAGE;
    }
    serve_block_stop_signals(); /* before the kernel threads start: serve_run's sigwait takes the signals */
    Infer m;
    if (infer_open(&m, a.src, a.sets.a, (int)a.sets.n, &e) != 0) {
        fprintf(stderr, "hdistill serve: %s\n", e.msg);
        strvec_free(&a.sets);
        return EXIT_USAGE;
    }
    const char *name = a.name ? a.name : m.name;
    const ModelConfig *mc = &m.s.model.cfg;
    if (!a.so.quiet)
        log_info("hdistill serve: student %s from %s (%s, %d layers, d %d, %d positions, %s prompts, %d threads)", name,
                 m.path, model_arch_name(mc->arch), mc->n_layer, mc->d_model, mc->max_seq_len,
                 m.s.fmt.kind == PROMPT_CHAT ? "chat" : "plain", m.threads);
    ModelSrv *ms = modelsrv_create(&m, name);
    a.so.served_model = name;
    a.so.chat = modelsrv_answer;
    a.so.chat_ctx = ms;
    char *what = xasprintf("student %s", name);
    int code = serve_run(&a.so, what);
    free(what);
    modelsrv_destroy(ms);
    infer_close(&m);
    strvec_free(&a.sets);
    par_shutdown();
    return code;
}

/* serve -- the stand-in endpoint over libmicrohttpd; see include/standin/serve.h
 * and docs/standin.md.  The humor world and the answers' text come from
 * standin.c; this file does HTTP, the OpenAI response format, latency,
 * fault injection, the request log and the command line. */
#include "standin/serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "llm/chat.h"
#include "standin/batchsrv.h"

#define BODY_MAX (4u << 20)  /* request bodies above this get 413 */
#define FILE_BODY_MAX (210u * 1000u * 1000u) /* uploads to /v1/files: 200 MB files + multipart overhead */
#define HUNG_POLL_S 0.1      /* how often hung connections are checked for a closed peer */
#define STOP_GRACE_S 0.5     /* serve_stop waits at most this long for released answers */

static const char *const FAULT_NAMES[SERVE_FAULT_KINDS] = {
    "none",     "429",      "500",        "503",      "hang",    "malformed",  "truncated", "empty", "schema",
    "quota",    "retry-date", "filter-400", "filtered", "refusal", "think", "lone-think", "parts", "length-empty",
};
static const char *const ROLE_NAMES[3] = {"unknown", "teacher", "critic"};

const char *serve_fault_name(int fault) {
    return fault >= 0 && fault < SERVE_FAULT_KINDS ? FAULT_NAMES[fault] : "?";
}

int serve_fault_parse(const char *name) {
    for (int i = 1; i < SERVE_FAULT_KINDS; i++)
        if (strcmp(name, FAULT_NAMES[i]) == 0) return i;
    return -1;
}

void serve_options_init(ServeOptions *o) {
    memset(o, 0, sizeof *o);
    o->bind = "127.0.0.1";
    o->retry_after_s = 1;
    o->max_hung = 512;
    o->tau = STANDIN_DEFAULT_TAU;
    o->batch_delay_s = 1;
}

int serve_options_check(const ServeOptions *o, Err *e) {
    if (o->port < 0 || o->port > 65535) return err_set(e, "port %d: not in [0, 65535]", o->port);
    if (!(o->latency_ms >= 0) || !(o->latency_jitter_ms >= 0) || o->latency_ms + o->latency_jitter_ms > 3.6e6)
        return err_set(e, "latency %g ms + jitter %g ms: must be >= 0 and at most an hour", o->latency_ms,
                       o->latency_jitter_ms);
    double sum = 0;
    for (int i = 1; i < SERVE_FAULT_KINDS; i++) {
        if (!(o->fault_rate[i] >= 0 && o->fault_rate[i] <= 1))
            return err_set(e, "fault %s rate %g: not in [0, 1]", FAULT_NAMES[i], o->fault_rate[i]);
        sum += o->fault_rate[i];
    }
    if (sum > 1 + 1e-9) return err_set(e, "fault rates add up to %g (must be <= 1)", sum);
    if (!(o->refusal_rate >= 0 && o->refusal_rate <= 1))
        return err_set(e, "refusal rate %g: not in [0, 1]", o->refusal_rate);
    if (o->retry_after_s < 0 || o->retry_after_s > 86400)
        return err_set(e, "retry-after %d s: not in [0, 86400]", o->retry_after_s);
    if (!(o->tau > 0) || !isfinite(o->tau)) return err_set(e, "tau %g: must be > 0", o->tau);
    if (!isfinite(o->position_bias) || !isfinite(o->length_bias))
        return err_set(e, "position/length bias must be finite");
    if (o->threads < 0 || o->threads > 64) return err_set(e, "threads %d: not in [0, 64]", o->threads);
    if (o->max_hung < 1) return err_set(e, "max hung connections %d: must be >= 1", o->max_hung);
    if (o->dialect < 0 || o->dialect >= DIALECT_N) return err_set(e, "dialect %d: unknown", o->dialect);
    if (o->ctx_words < 0) return err_set(e, "ctx words %d: must be >= 0", o->ctx_words);
    if (!(o->batch_delay_s >= 0 && o->batch_delay_s <= 86400))
        return err_set(e, "batch delay %g s: not in [0, 86400]", o->batch_delay_s);
    if (!(o->batch_fail_rate >= 0 && o->batch_expire_rate >= 0 && o->batch_fail_rate + o->batch_expire_rate <= 1))
        return err_set(e, "batch fail rate %g + expire rate %g: each >= 0, together <= 1", o->batch_fail_rate,
                       o->batch_expire_rate);
    return 0;
}

/* ---- per-request state ----------------------------------------------------- */

enum { REQ_RECEIVING, REQ_WAITING, REQ_READY, REQ_CLOSE };
enum { PATH_CHAT, PATH_MODELS, PATH_NOT_FOUND, PATH_BAD_METHOD, PATH_BATCH };

typedef struct {
    struct MHD_Connection *conn;
    int path, state;
    ByteBuf body;
    int too_large;
    char *url;
    char method[16];
    char *ctype, *after; /* batch paths: Content-Type, ?after= */
    int limit;           /* batch paths: ?limit= */
    /* decided once the body is in */
    int decided, status, fault, role, has_key;
    char key[65];
    int64_t repeat;
    double latency_ms, t_wall;
    char *resp;
    size_t resp_len, cut;
    int fd;
} Req;

typedef struct {
    double due;
    Req *r;
} Timed;

/* Repeat counts are kept per 64-bit key prefix (16 bytes a slot): a
 * collision among millions of keys is ~1e-6 likely and would only
 * miscount a repeat. */
typedef struct {
    uint64_t key;   /* first 16 hex digits of the key; 0 means empty */
    int64_t count;
} KeySlot;

struct Server {
    ServeOptions o;
    StandinCriticParams critic;
    char *bind, *log_path, *served_model;
    StandinWorld *own_world;
    const StandinWorld *world;
    struct MHD_Daemon *d;
    int port;
    char *base_url;
    char mhd_msg[256];      /* libmicrohttpd's last message while starting */
    _Atomic int mhd_started; /* later messages (one per truncated fault...) are dropped */
    /* timer: delayed answers and hung connections */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t timer;
    int timer_started, timer_quit, stopping;
    Timed *heap;
    size_t n_heap, cap_heap;
    Req **hung;
    size_t n_hung, cap_hung;
    double next_hung_check;
    /* how often each key was received */
    pthread_mutex_t keys_mu;
    KeySlot *keys;
    size_t n_keys, cap_keys;
    /* request log */
    pthread_mutex_t log_mu;
    FILE *log;
    BatchStore *batches;    /* /v1/files, /v1/batches */
    /* counters */
    _Atomic int64_t requests, chat, by_role[3], by_fault[SERVE_FAULT_KINDS], by_status[600];
    _Atomic int64_t repeats, refusals, ended, completed, pending, n_hung_now;
};

/* ---- small helpers -------------------------------------------------------------- */

static uint64_t key_fold(const char *key) {
    uint64_t h = 1469598103934665603ULL;
    for (; *key; key++) h = (h ^ (unsigned char)*key) * 1099511628211ULL;
    return h;
}

/* Deterministic draws: stream names what the draw decides. */
enum { DRAW_FAULT = 1, DRAW_LATENCY, DRAW_TEACH, DRAW_CRITIC, DRAW_LOGPROB };

static uint64_t draw_u64(const Server *s, int stream, const char *key, uint64_t index) {
    return rng_derive(s->o.seed ^ key_fold(key), (uint64_t)stream, index);
}

static double draw_unit(const Server *s, int stream, const char *key, uint64_t index) {
    return (double)(draw_u64(s, stream, key, index) >> 11) * (1.0 / 9007199254740992.0);
}

/* How many times key was received before this call (and counts this one). */
static int64_t keys_bump(Server *s, const char *hex) {
    uint64_t k = 0;
    for (int i = 0; i < 16; i++) {
        char c = hex[i];
        k = k << 4 | (uint64_t)(c >= 'a' ? c - 'a' + 10 : c - '0');
    }
    if (!k) k = 1;
    pthread_mutex_lock(&s->keys_mu);
    if ((s->n_keys + 1) * 10 > s->cap_keys * 7) {
        size_t cap = s->cap_keys ? 2 * s->cap_keys : 4096;
        KeySlot *t = xcalloc(cap, sizeof *t);
        for (size_t i = 0; i < s->cap_keys; i++) {
            if (!s->keys[i].key) continue;
            size_t j = (size_t)(s->keys[i].key * 0x9e3779b97f4a7c15ULL >> 20) & (cap - 1);
            while (t[j].key) j = (j + 1) & (cap - 1);
            t[j] = s->keys[i];
        }
        free(s->keys);
        s->keys = t;
        s->cap_keys = cap;
    }
    size_t j = (size_t)(k * 0x9e3779b97f4a7c15ULL >> 20) & (s->cap_keys - 1);
    while (s->keys[j].key && s->keys[j].key != k) j = (j + 1) & (s->cap_keys - 1);
    if (!s->keys[j].key) {
        s->keys[j].key = k;
        s->n_keys++;
    }
    int64_t before = s->keys[j].count++;
    pthread_mutex_unlock(&s->keys_mu);
    return before;
}

static int count_words_ws(const char *s) {
    int n = 0;
    for (const char *p = s; *p;) {
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
        if (!*p) break;
        n++;
        while (*p && *p != ' ' && *p != '\n' && *p != '\t' && *p != '\r') p++;
    }
    return n;
}

/* Cuts s after max words (whitespace-separated); returns 1 if it cut. */
static int cut_words(char *s, int max) {
    int n = 0;
    for (char *p = s; *p;) {
        while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
        if (!*p) break;
        if (n == max) {
            while (p > s && (p[-1] == ' ' || p[-1] == '\n' || p[-1] == '\t' || p[-1] == '\r')) p--;
            *p = 0;
            return 1;
        }
        n++;
        while (*p && *p != ' ' && *p != '\n' && *p != '\t' && *p != '\r') p++;
    }
    return 0;
}

/* An error body in the server's dialect (dialect.h). */
static char *error_body(const Server *s, int status, const char *type, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static char *error_body(const Server *s, int status, const char *type, const char *code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dialect_error(s->o.dialect, status, type, NULL, code, msg);
}

/* ---- answers ------------------------------------------------------------------------ */

typedef struct {
    char *answer;    /* the world's text (cut at the token limit) */
    char *reasoning; /* "" when none is shown */
    int digit;       /* critic: the verdict written (1/2), 0 when none or cut */
    long decoy_at;   /* the decoy verdict digit in reasoning, -1 */
    double logit;    /* critic: logit of answer 1 */
    int truncated;   /* cut at max_tokens */
    int shape;       /* SHAPE_* (dialect.h) */
    int completion_tokens, reasoning_tokens;
} Choice;

static const char *UNKNOWN_ANSWER =
    "This stand-in only answers hdistill's teacher and critic prompts (a line \"Sentence: ...\", "
    "optionally followed by lines \"1. ...\" and \"2. ...\").";

/* The message the prompt is read from: the last "user" message (else the
 * last message). */
static const char *prompt_message(const ChatRequest *q) {
    for (int i = q->n_messages - 1; i >= 0; i--)
        if (strcmp(q->messages[i].role, "user") == 0) return q->messages[i].content;
    return q->n_messages ? q->messages[q->n_messages - 1].content : "";
}

static int shape_of(int fault) {
    switch (fault) {
    case SERVE_FAULT_THINK: return SHAPE_THINK;
    case SERVE_FAULT_LONE_THINK: return SHAPE_LONE_THINK;
    case SERVE_FAULT_PARTS: return SHAPE_PARTS;
    case SERVE_FAULT_REFUSAL: return SHAPE_REFUSAL;
    case SERVE_FAULT_FILTERED: return SHAPE_FILTERED;
    case SERVE_FAULT_EXHAUSTED: return SHAPE_EXHAUSTED;
    default: return SHAPE_PLAIN;
    }
}

/* The token limit applied to a choice whose reasoning takes rt tokens:
 * the answer gets what is left; none left -> the answer is "" (exhausted). */
static void spend_tokens(Choice *c, int limit, int rt) {
    int aw = count_words_ws(c->answer);
    if (c->shape == SHAPE_EXHAUSTED || (limit > 0 && rt >= limit)) {
        c->answer[0] = 0;
        if (limit > 0 && rt > limit) cut_words(c->reasoning, limit);
        c->truncated = 1;
        c->completion_tokens = c->reasoning_tokens = limit > 0 ? limit : rt;
        c->shape = c->shape == SHAPE_PLAIN ? SHAPE_EXHAUSTED : c->shape;
        return;
    }
    if (limit > 0 && aw > limit - rt) c->truncated = cut_words(c->answer, limit - rt);
    c->completion_tokens = rt + count_words_ws(c->answer);
    c->reasoning_tokens = rt;
}

/* Choice i of a parsed request: the world's answer, its reasoning, the cut. */
static void make_choice(Server *s, const ChatRequest *q, const StandinPrompt *pr, const char *key, int i, int fault,
                        Choice *c) {
    memset(c, 0, sizeof *c);
    c->decoy_at = -1;
    c->shape = shape_of(fault);
    int d = s->o.dialect;
    if (pr->role == STANDIN_ROLE_TEACHER) {
        c->answer = standin_teach(s->world, pr->literal, pr->n, draw_u64(s, DRAW_TEACH, key, (uint64_t)i),
                                  s->o.refusal_rate);
        if (strcmp(c->answer, STANDIN_REFUSAL) == 0) atomic_fetch_add(&s->refusals, 1);
    } else if (pr->role == STANDIN_ROLE_CRITIC) {
        c->answer = standin_critique(s->world, &s->critic, pr->literal, pr->option_a, pr->option_b,
                                     draw_u64(s, DRAW_CRITIC, key, (uint64_t)i), &c->logit, &c->digit);
    } else {
        c->answer = xstrdup(UNKNOWN_ANSWER);
    }
    if (fault == SERVE_FAULT_EMPTY) {
        c->answer[0] = 0;
        c->digit = 0;
    }
    int shown = dialect_reasons(d) || (c->shape != SHAPE_PLAIN && c->shape != SHAPE_REFUSAL &&
                                       c->shape != SHAPE_FILTERED);
    c->reasoning = shown ? standin_reasoning((StandinRole)pr->role, pr->literal, pr->n, c->digit, &c->decoy_at)
                         : xstrdup("");
    int rt = shown ? count_words_ws(c->reasoning) : 0;
    if (d == DIALECT_OPENAI_REASONING) rt = dialect_reasoning_tokens(q->reasoning_effort); /* hidden */
    spend_tokens(c, q->max_tokens, rt);
    if (c->truncated) c->digit = 0;
    if (c->shape == SHAPE_REFUSAL || c->shape == SHAPE_FILTERED) c->digit = 0, c->completion_tokens = 0;
}

/* The 200 body for a parsed request, or a fault's variant of it. */
static char *chat_body(Server *s, const ChatRequest *q, const StandinPrompt *pr, const char *key, int64_t repeat,
                       int fault) {
    int n_choices = q->n < 1 ? 1 : q->n > STANDIN_MAX_N ? STANDIN_MAX_N : q->n;
    Choice ch[STANDIN_MAX_N];
    DialectChoice dc[STANDIN_MAX_N];
    int prompt_tokens = 0;
    for (int i = 0; i < q->n_messages; i++) prompt_tokens += count_words_ws(q->messages[i].content);
    for (int i = 0; i < n_choices; i++) {
        make_choice(s, q, pr, key, i, fault, &ch[i]);
        dc[i] = (DialectChoice){.answer = ch[i].answer, .reasoning = ch[i].reasoning,
                                .digit_at = ch[i].digit ? (long)strlen(ch[i].answer) - 1 : -1,
                                .decoy_at = ch[i].decoy_at, .logit = ch[i].logit, .answer_digit = ch[i].digit,
                                .truncated = ch[i].truncated, .shape = ch[i].shape,
                                .completion_tokens = ch[i].completion_tokens,
                                .reasoning_tokens = ch[i].reasoning_tokens};
    }
    char id[64];
    snprintf(id, sizeof id, "chatcmpl-standin-%.16s-%lld", key, (long long)repeat);
    char *body;
    if (fault == SERVE_FAULT_SCHEMA) {
        ByteBuf b = {0};
        bytebuf_printf(&b, "{\"id\":\"%s\",\"object\":\"text_completion\",\"created\":%lld,\"model\":", id,
                       (long long)time(NULL));
        bytebuf_put_json_string(&b, q->model[0] ? q->model : SERVE_MODEL_ID);
        bytebuf_printf(&b, ",\"system_fingerprint\":\"hdistill-standin\",\"output\":{\"text\":");
        bytebuf_put_json_string(&b, ch[0].answer);
        bytebuf_printf(&b, "},\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}}",
                       prompt_tokens, ch[0].completion_tokens, prompt_tokens + ch[0].completion_tokens);
        body = b.a;
    } else {
        DialectAnswer a = {.dialect = s->o.dialect, .id = id, .model = q->model[0] ? q->model : SERVE_MODEL_ID,
                           .created = (long long)time(NULL), .n_choices = n_choices, .choices = dc,
                           .prompt_tokens = prompt_tokens, .logprobs = q->logprobs, .top_logprobs = q->top_logprobs,
                           .lp_seed = s->o.seed ^ key_fold(key)};
        body = dialect_render(&a);
    }
    for (int i = 0; i < n_choices; i++) free(ch[i].answer), free(ch[i].reasoning);
    return body;
}

static int pick_fault(const Server *s, const char *key, int64_t repeat) {
    double u = draw_unit(s, DRAW_FAULT, key, (uint64_t)repeat), acc = 0;
    for (int f = 1; f < SERVE_FAULT_KINDS; f++) {
        acc += s->o.fault_rate[f];
        if (s->o.fault_rate[f] > 0 && u < acc) return f;
    }
    return SERVE_FAULT_NONE;
}

/* Azure OpenAI's answer when the prompt trips its content filter (as quoted
 * in openai/openai-dotnet#55 and stanford-crfm/helm#3327). */
static const char *AZURE_FILTER_400 =
    "{\"error\":{\"message\":\"The response was filtered due to the prompt triggering Azure OpenAI's content "
    "management policy. Please modify your prompt and retry. To learn more about our content filtering policies "
    "please read our documentation: https://go.microsoft.com/fwlink/?linkid=2198766\",\"type\":null,\"param\":"
    "\"prompt\",\"code\":\"content_filter\",\"status\":400,\"innererror\":{\"code\":\"ResponsibleAIPolicyViolation\","
    "\"content_filter_result\":{\"hate\":{\"filtered\":false,\"severity\":\"safe\"},\"self_harm\":{\"filtered\":false,"
    "\"severity\":\"safe\"},\"sexual\":{\"filtered\":false,\"severity\":\"safe\"},\"violence\":{\"filtered\":true,"
    "\"severity\":\"medium\"}}}}}";

/* OpenAI's 429 when the account is out of credit (docs/guides/error-codes). */
static const char *OPENAI_QUOTA_429 =
    "{\"error\":{\"message\":\"You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.\","
    "\"type\":\"insufficient_quota\",\"param\":null,\"code\":\"insufficient_quota\"}}";

/* The body of an error fault (429, 500, 503, quota, retry-date, filter-400);
 * 0 when fault is not one. */
static int fault_error(const Server *s, int fault, char **resp) {
    switch (fault) {
    case SERVE_FAULT_429:
    case SERVE_FAULT_RETRY_DATE:
        *resp = error_body(s, 429, "rate_limit_error", "rate_limit_exceeded",
                           "Rate limit reached for %s (stand-in fault injection). Please try again in %d s.",
                           SERVE_MODEL_ID, s->o.retry_after_s);
        return 429;
    case SERVE_FAULT_500:
        *resp = error_body(s, 500, "server_error", NULL,
                           "The server had an error while processing your request (stand-in fault injection).");
        return 500;
    case SERVE_FAULT_503:
        *resp = error_body(s, 503, "server_error", NULL, "The engine is currently overloaded (stand-in fault injection).");
        return 503;
    case SERVE_FAULT_QUOTA: *resp = xstrdup(OPENAI_QUOTA_429); return 429;
    case SERVE_FAULT_FILTER_400: *resp = xstrdup(AZURE_FILTER_400); return 400;
    default: return 0;
    }
}

/* A parsed chat request: key, repeat, the dialect's checks, fault, latency, body. */
static void decide_chat(Server *s, Req *r, const ChatRequest *q) {
    chat_request_key(q, r->key);
    r->has_key = 1;
    r->repeat = keys_bump(s, r->key);
    if (r->repeat) atomic_fetch_add(&s->repeats, 1);
    StandinPrompt pr;
    r->role = (int)standin_prompt_parse(prompt_message(q), &pr);
    int prompt_words = 0;
    for (int i = 0; i < q->n_messages; i++) prompt_words += count_words_ws(q->messages[i].content);
    int st = dialect_check_request(s->o.dialect, q, s->o.served_model, s->o.ctx_words, prompt_words, &r->resp);
    if (st) {
        r->status = st;
    } else {
        r->fault = pick_fault(s, r->key, r->repeat);
        r->latency_ms = s->o.latency_ms;
        if (s->o.latency_jitter_ms > 0)
            r->latency_ms += s->o.latency_jitter_ms * draw_unit(s, DRAW_LATENCY, r->key, (uint64_t)r->repeat);
        if (r->fault == SERVE_FAULT_HANG) r->status = 0;
        else if (!(r->status = fault_error(s, r->fault, &r->resp))) {
            r->status = 200;
            r->resp = chat_body(s, q, &pr, r->key, r->repeat, r->fault);
        }
    }
    standin_prompt_free(&pr);
    atomic_fetch_add(&s->by_role[r->role], 1);
}

/* Decides status, fault, latency and the body of a request whose body is in. */
static void req_decide(Server *s, Req *r) {
    r->decided = 1;
    r->t_wall = util_wall();
    r->fault = SERVE_FAULT_NONE;
    r->role = STANDIN_ROLE_UNKNOWN;
    atomic_fetch_add(&s->requests, 1);
    if (r->path == PATH_MODELS) {
        r->status = 200;
        ByteBuf m = {0}; /* the model id as a JSON string: a name given on the command line may hold quotes */
        bytebuf_put(&m, "{\"object\":\"list\",\"data\":[{\"id\":", sizeof "{\"object\":\"list\",\"data\":[{\"id\":" - 1);
        bytebuf_put_json_string(&m, s->o.served_model && s->o.served_model[0] ? s->o.served_model : SERVE_MODEL_ID);
        bytebuf_printf(&m, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"hdistill\"}]}");
        r->resp = m.a;
    } else if (r->path == PATH_NOT_FOUND) {
        r->status = 404;
        r->resp = error_body(s, 404, "invalid_request_error", "unknown_url", "Unknown request URL: %.200s", r->url);
    } else if (r->path == PATH_BAD_METHOD) {
        r->status = 405;
        r->resp = error_body(s, 405, "invalid_request_error", "method_not_allowed", "Method not allowed for %.200s", r->url);
    } else if (r->path == PATH_BATCH) {
        if (r->too_large) {
            r->status = 413;
            r->resp = error_body(s, 413, "invalid_request_error", NULL, "Request body larger than %u bytes", FILE_BODY_MAX);
        } else {
            r->status = batchstore_handle(s->batches, r->method, r->url, r->ctype, r->body.a, r->body.n, r->after,
                                          r->limit, &r->resp, &r->resp_len);
        }
    } else {
        atomic_fetch_add(&s->chat, 1);
        ChatRequest q;
        Err e = {{0}};
        if (r->too_large) {
            r->status = 413;
            r->resp = error_body(s, 413, "invalid_request_error", NULL, "Request body larger than %u bytes", BODY_MAX);
        } else if (s->o.chat) {
            r->status = s->o.chat(s->o.chat_ctx, r->body.a ? r->body.a : "", r->body.n, &r->resp);
            CHECK(r->status >= 200 && r->status < 600 && r->resp, "chat handler: status %d", r->status);
        } else if (chat_request_parse(r->body.a ? r->body.a : "", r->body.n, &q, &e) != 0) {
            r->status = 400;
            r->resp = error_body(s, 400, "invalid_request_error", NULL,
                                 "We could not parse the JSON body of your request: %s", e.msg);
        } else {
            decide_chat(s, r, &q);
            chat_request_free(&q);
        }
        atomic_fetch_add(&s->by_fault[r->fault], 1);
    }
    if (r->resp && r->path != PATH_BATCH) {
        r->resp_len = strlen(r->resp);
        if (r->fault == SERVE_FAULT_MALFORMED) r->resp_len /= 2; /* unterminated JSON */
        if (r->fault == SERVE_FAULT_TRUNCATED) r->cut = r->resp_len / 2;
    }
    atomic_fetch_add(&s->by_status[r->status], 1);
    bytebuf_free(&r->body);
}

/* A batch line's body answered like a chat request (no faults, no latency). */
static char *batch_answer(void *ctx, const char *body, size_t len, int *status) {
    Server *s = ctx;
    if (s->o.chat) {
        char *resp = NULL;
        *status = s->o.chat(s->o.chat_ctx, body, len, &resp);
        return resp;
    }
    ChatRequest q;
    Err e = {{0}};
    if (chat_request_parse(body, len, &q, &e) != 0) {
        *status = 400;
        return error_body(s, 400, "invalid_request_error", NULL, "We could not parse the JSON body of your request: %s",
                          e.msg);
    }
    char key[65];
    chat_request_key(&q, key);
    StandinPrompt pr;
    standin_prompt_parse(prompt_message(&q), &pr);
    int words = 0;
    for (int i = 0; i < q.n_messages; i++) words += count_words_ws(q.messages[i].content);
    char *resp = NULL;
    *status = dialect_check_request(s->o.dialect, &q, s->o.served_model, s->o.ctx_words, words, &resp);
    if (!*status) {
        *status = 200;
        resp = chat_body(s, &q, &pr, key, 0, SERVE_FAULT_NONE);
    }
    standin_prompt_free(&pr);
    chat_request_free(&q);
    return resp;
}

/* ---- sending ---------------------------------------------------------------------------- */

static ssize_t truncated_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    Req *r = cls;
    if (pos >= r->cut) return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = r->cut - (size_t)pos;
    if (n > max) n = max;
    memcpy(buf, r->resp + pos, n);
    return (ssize_t)n;
}

static enum MHD_Result req_send(Server *s, Req *r) {
    struct MHD_Response *resp;
    if (r->fault == SERVE_FAULT_TRUNCATED) {
        resp = MHD_create_response_from_callback(r->resp_len, 4096, truncated_reader, r, NULL);
    } else {
        resp = MHD_create_response_from_buffer(r->resp_len, r->resp, MHD_RESPMEM_PERSISTENT);
    }
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (r->status == 429 && r->fault == SERVE_FAULT_RETRY_DATE) { /* an HTTP date (RFC 9110 5.6.7) */
        char ra[64];
        time_t t = time(NULL) + s->o.retry_after_s;
        struct tm g;
        gmtime_r(&t, &g);
        strftime(ra, sizeof ra, "%a, %d %b %Y %H:%M:%S GMT", &g);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    } else if (r->status == 429 && r->fault != SERVE_FAULT_QUOTA) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", s->o.retry_after_s);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* ---- the timer: delayed answers and hung connections ---------------------------------- */

static void heap_push(Server *s, double due, Req *r) {
    if (s->n_heap == s->cap_heap) {
        s->cap_heap = s->cap_heap ? 2 * s->cap_heap : 256;
        s->heap = xrealloc(s->heap, s->cap_heap * sizeof *s->heap);
    }
    size_t i = s->n_heap++;
    while (i > 0 && s->heap[(i - 1) / 2].due > due) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = (Timed){due, r};
}

static Req *heap_pop(Server *s) {
    Req *top = s->heap[0].r;
    Timed last = s->heap[--s->n_heap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->n_heap) break;
        if (c + 1 < s->n_heap && s->heap[c + 1].due < s->heap[c].due) c++;
        if (s->heap[c].due >= last.due) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->n_heap) s->heap[i] = last;
    return top;
}

/* Resumes a hung connection so that it is closed (s->mu held). */
static void hung_close(Server *s, size_t i) {
    Req *r = s->hung[i];
    memmove(&s->hung[i], &s->hung[i + 1], (s->n_hung - i - 1) * sizeof *s->hung);
    s->n_hung--;
    atomic_fetch_sub(&s->n_hung_now, 1);
    r->state = REQ_CLOSE;
    MHD_resume_connection(r->conn);
}

/* Closes hung connections whose client went away (s->mu held). */
static void hung_check(Server *s) {
    struct pollfd *pf = xmalloc(s->n_hung * sizeof *pf);
    for (size_t i = 0; i < s->n_hung; i++) pf[i] = (struct pollfd){.fd = s->hung[i]->fd, .events = POLLIN | POLLRDHUP};
    int n = poll(pf, (nfds_t)s->n_hung, 0);
    if (n > 0) {
        for (size_t i = s->n_hung; i-- > 0;) {
            int gone = (pf[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0;
            if (!gone && (pf[i].revents & POLLIN)) {
                char c;
                gone = recv(pf[i].fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
            }
            if (gone) hung_close(s, i);
        }
    }
    free(pf);
}

static struct timespec mono_at(double t) {
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    return ts;
}

static void *timer_main(void *arg) {
    Server *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->timer_quit) {
        double now = util_now();
        while (s->n_heap && s->heap[0].due <= now) {
            Req *r = heap_pop(s);
            r->state = REQ_READY;
            atomic_fetch_sub(&s->pending, 1);
            MHD_resume_connection(r->conn);
        }
        if (s->n_hung && now >= s->next_hung_check) {
            hung_check(s);
            s->next_hung_check = now + HUNG_POLL_S;
        }
        double wake = s->n_heap ? s->heap[0].due : INFINITY;
        if (s->n_hung && s->next_hung_check < wake) wake = s->next_hung_check;
        if (isinf(wake)) {
            pthread_cond_wait(&s->cv, &s->mu);
        } else {
            struct timespec ts = mono_at(wake);
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- MHD callbacks ---------------------------------------------------------------------- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **ctx) {
    (void)version;
    Server *s = cls;
    Req *r = *ctx;
    if (!r) {
        r = xcalloc(1, sizeof *r);
        r->conn = conn;
        r->url = xstrdup(url);
        r->fd = -1;
        snprintf(r->method, sizeof r->method, "%s", method);
        int is_post = strcmp(method, MHD_HTTP_METHOD_POST) == 0, is_get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
        if (strcmp(url, "/v1/chat/completions") == 0) r->path = is_post ? PATH_CHAT : PATH_BAD_METHOD;
        else if (strcmp(url, "/v1/models") == 0) r->path = is_get ? PATH_MODELS : PATH_BAD_METHOD;
        else if (batchstore_path(url)) r->path = PATH_BATCH;
        else r->path = PATH_NOT_FOUND;
        if (r->path == PATH_BATCH) {
            const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
            const char *af = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "after");
            const char *li = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
            r->ctype = ct ? xstrdup(ct) : NULL;
            r->after = af ? xstrdup(af) : NULL;
            r->limit = li ? atoi(li) : 0;
        }
        *ctx = r;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t max = r->path == PATH_BATCH ? FILE_BODY_MAX : BODY_MAX;
        if ((r->path == PATH_CHAT || r->path == PATH_BATCH) && !r->too_large) {
            if (r->body.n + *upload_size > max) {
                r->too_large = 1;
                bytebuf_free(&r->body);
            } else {
                bytebuf_put(&r->body, upload, *upload_size);
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->state == REQ_CLOSE) return MHD_NO;
    if (r->state == REQ_READY) return req_send(s, r);
    if (r->state == REQ_WAITING) return MHD_YES; /* not expected: suspended until resumed */
    req_decide(s, r);
    int hang = r->fault == SERVE_FAULT_HANG;
    if (!hang && r->latency_ms <= 0) return req_send(s, r);
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        return hang ? MHD_NO : req_send(s, r);
    }
    MHD_suspend_connection(conn);
    r->state = REQ_WAITING;
    if (hang) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        r->fd = ci ? ci->connect_fd : -1;
        if (s->n_hung == s->cap_hung) {
            s->cap_hung = s->cap_hung ? 2 * s->cap_hung : 64;
            s->hung = xrealloc(s->hung, s->cap_hung * sizeof *s->hung);
        }
        s->hung[s->n_hung++] = r;
        atomic_fetch_add(&s->n_hung_now, 1);
        while (s->n_hung > (size_t)s->o.max_hung) hung_close(s, 0);
        if (s->n_hung == 1) {
            s->next_hung_check = util_now() + HUNG_POLL_S;
            pthread_cond_signal(&s->cv);
        }
    } else {
        heap_push(s, util_now() + r->latency_ms / 1000.0, r);
        atomic_fetch_add(&s->pending, 1);
        if (s->heap[0].r == r) pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return MHD_YES;
}

static void log_request(Server *s, const Req *r, int completed) {
    if (!s->log) return;
    ByteBuf b = {0};
    bytebuf_printf(&b, "{\"time\":%.6f,\"key\":", r->t_wall);
    if (r->has_key) bytebuf_printf(&b, "\"%s\"", r->key);
    else bytebuf_put(&b, "null", sizeof "null" - 1);
    bytebuf_printf(&b, ",\"role\":\"%s\",\"method\":\"%s\",\"path\":", ROLE_NAMES[r->role], r->method);
    bytebuf_put_json_string(&b, r->url);
    if (r->status) bytebuf_printf(&b, ",\"status\":%d", r->status);
    else bytebuf_put(&b, ",\"status\":null", sizeof ",\"status\":null" - 1);
    bytebuf_printf(&b, ",\"fault\":\"%s\",\"latency_ms\":%.3f,\"repeat\":%lld,\"completed\":%s}\n", FAULT_NAMES[r->fault],
                   r->latency_ms, (long long)r->repeat, completed ? "true" : "false");
    pthread_mutex_lock(&s->log_mu);
    fwrite(b.a, 1, b.n, s->log);
    fflush(s->log);
    pthread_mutex_unlock(&s->log_mu);
    bytebuf_free(&b);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **ctx, enum MHD_RequestTerminationCode toe) {
    (void)conn;
    Server *s = cls;
    Req *r = *ctx;
    if (!r) return;
    if (r->decided) {
        int ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && r->status != 0 && r->fault != SERVE_FAULT_TRUNCATED;
        atomic_fetch_add(&s->ended, 1);
        if (ok) atomic_fetch_add(&s->completed, 1);
        log_request(s, r, ok);
    }
    bytebuf_free(&r->body);
    free(r->resp);
    free(r->url);
    free(r->ctype);
    free(r->after);
    free(r);
    *ctx = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    Server *s = cls;
    if (atomic_load(&s->mhd_started)) return;
    vsnprintf(s->mhd_msg, sizeof s->mhd_msg, fmt, ap);
    size_t n = strlen(s->mhd_msg);
    while (n && (s->mhd_msg[n - 1] == '\n' || s->mhd_msg[n - 1] == '.')) s->mhd_msg[--n] = 0;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static int write_port_file(const char *path, int port, Err *e) {
    char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        err_set(e, "%s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    int bad = fprintf(f, "%d\n", port) < 0;
    bad |= fclose(f) != 0;
    if (bad) {
        err_set(e, "%s: write failed", tmp);
        unlink(tmp);
        free(tmp);
        return -1;
    }
    int rc = util_rename_durable(tmp, path, e);
    free(tmp);
    return rc;
}

static void standin_free(Server *s) {
    if (s->log) fclose(s->log);
    batchstore_destroy(s->batches);
    standin_world_destroy(s->own_world);
    free(s->heap);
    free(s->hung);
    free(s->keys);
    free(s->base_url);
    free(s->bind);
    free(s->log_path);
    free(s->served_model);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->keys_mu);
    pthread_mutex_destroy(&s->log_mu);
    free(s);
}

Server *serve_start(const ServeOptions *o, Err *e) {
    if (serve_options_check(o, e)) return NULL;
    Server *s = xcalloc(1, sizeof *s);
    s->o = *o;
    standin_critic_params_init(&s->critic);
    s->critic.tau = o->tau;
    s->critic.position_bias = o->position_bias;
    s->critic.length_bias = o->length_bias;
    s->critic.sample = o->critic_sample;
    s->bind = xstrdup(o->bind && o->bind[0] ? o->bind : "127.0.0.1");
    s->o.bind = s->bind;
    s->log_path = o->request_log ? xstrdup(o->request_log) : NULL;
    s->o.request_log = s->log_path;
    s->served_model = o->served_model ? xstrdup(o->served_model) : NULL;
    s->o.served_model = s->served_model;
    BatchStoreOptions bo = {.delay_s = o->batch_delay_s, .fail_rate = o->batch_fail_rate,
                            .expire_rate = o->batch_expire_rate, .seed = o->seed};
    s->batches = batchstore_create(&bo, batch_answer, s);
    s->o.port_file = NULL; /* used only below */
    s->o.fortunes_dir = s->o.wordnet_dir = NULL;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->keys_mu, NULL);
    pthread_mutex_init(&s->log_mu, NULL);

    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    int v6 = strchr(s->bind, ':') != NULL;
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)o->port);
        if (inet_pton(AF_INET6, s->bind, &a->sin6_addr) != 1) goto bad_addr;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)o->port);
        if (inet_pton(AF_INET, s->bind, &a->sin_addr) != 1) goto bad_addr;
    }

    if (o->world || o->chat) {
        s->world = o->world; /* a chat handler needs none */
    } else {
        double t0 = util_now();
        s->own_world = standin_world_create(o->fortunes_dir, o->wordnet_dir, e);
        if (!s->own_world) goto fail;
        s->world = s->own_world;
        if (!o->quiet)
            log_info("hdistill serve: stand-in world of %d fortunes, %d WordNet examples, %d tags built in %.2f s",
                     standin_world_n_jokes(s->world), standin_world_n_literals(s->world), standin_world_n_tags(s->world),
                     util_now() - t0);
    }
    if (s->log_path) {
        s->log = fopen(s->log_path, "a");
        if (!s->log) {
            err_set(e, "%s: cannot open the request log: %s", s->log_path, strerror(errno));
            goto fail;
        }
    }
    if (pthread_create(&s->timer, NULL, timer_main, s) != 0) {
        err_set(e, "cannot start the stand-in's timer thread");
        goto fail;
    }
    s->timer_started = 1;

    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned threads = (unsigned)(o->threads > 0 ? o->threads : cpus < 1 ? 1 : cpus > 4 ? 4 : cpus);
    struct rlimit rl;
    unsigned conn_limit = 4096;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < conn_limit + 64)
        conn_limit = rl.rlim_cur > 128 ? (unsigned)rl.rlim_cur - 64 : 64;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO |
                     MHD_USE_ERROR_LOG;
    if (v6) flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                            MHD_OPTION_THREAD_POOL_SIZE, threads,
                            MHD_OPTION_CONNECTION_LIMIT, conn_limit,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
                            MHD_OPTION_END);
    if (!s->d) {
        err_set(e, "cannot listen on %s port %d: %s", s->bind, o->port,
                s->mhd_msg[0] ? s->mhd_msg : "libmicrohttpd could not start (address in use?)");
        goto fail;
    }
    atomic_store(&s->mhd_started, 1);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : o->port;
    s->base_url = v6 ? xasprintf("http://[%s]:%d/v1", s->bind, s->port) : xasprintf("http://%s:%d/v1", s->bind, s->port);
    if (o->port_file && write_port_file(o->port_file, s->port, e)) {
        serve_stop(s);
        return NULL;
    }
    return s;
bad_addr:
    err_set(e, "bind address '%s': not an IPv4 or IPv6 address", s->bind);
fail:
    if (s->timer_started) {
        pthread_mutex_lock(&s->mu);
        s->timer_quit = 1;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->timer, NULL);
    }
    standin_free(s);
    return NULL;
}

int serve_port(const Server *s) { return s->port; }
const char *serve_base_url(const Server *s) { return s->base_url; }
const StandinWorld *serve_world(const Server *s) { return s->world; }

void serve_stop(Server *s) {
    if (!s) return;
    /* nothing may stay suspended when MHD stops: answer what is delayed, close what hangs */
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    while (s->n_heap) {
        Req *r = heap_pop(s);
        r->state = REQ_READY;
        atomic_fetch_sub(&s->pending, 1);
        MHD_resume_connection(r->conn);
    }
    while (s->n_hung) hung_close(s, s->n_hung - 1);
    s->timer_quit = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->timer, NULL);
    /* give the answers just released a moment to leave (new requests are
     * answered at once now), then stop */
    double t0 = util_now();
    while (atomic_load(&s->ended) < atomic_load(&s->requests) && util_now() - t0 < STOP_GRACE_S) usleep(1000);
    if (s->d) MHD_stop_daemon(s->d);
    standin_free(s);
}

void serve_stats(const Server *s, ServeStats *out) {
    memset(out, 0, sizeof *out);
    out->requests = atomic_load(&s->requests);
    out->chat = atomic_load(&s->chat);
    for (int i = 0; i < 3; i++) out->by_role[i] = atomic_load(&s->by_role[i]);
    for (int i = 0; i < SERVE_FAULT_KINDS; i++) out->by_fault[i] = atomic_load(&s->by_fault[i]);
    for (int i = 0; i < 600; i++) out->by_status[i] = atomic_load(&s->by_status[i]);
    out->repeats = atomic_load(&s->repeats);
    out->refusals = atomic_load(&s->refusals);
    out->ended = atomic_load(&s->ended);
    out->completed = atomic_load(&s->completed);
    out->pending = atomic_load(&s->pending);
    out->hung = atomic_load(&s->n_hung_now);
    BatchStoreStats bs;
    batchstore_stats(((Server *)s)->batches, &bs);
    out->files = bs.files, out->batches = bs.batches, out->batches_cancelled = bs.cancelled, out->batch_lines = bs.lines;
}

/* ---- command line ------------------------------------------------------------------------ */

static const char *SERVE_HELP =
    "usage: hdistill serve --standin [OPTIONS]\n"
    "\n"
    "Runs the stand-in OpenAI-compatible endpoint (POST /v1/chat/completions,\n"
    "GET /v1/models, the Files and Batch API) until SIGTERM or SIGINT.  It answers hdistill's teacher and\n"
    "critic prompts deterministically from a hidden humor score over Debian's\n"
    "fortunes and WordNet examples: a stand-in for tests and demos, not a model\n"
    "(docs/standin.md).  Prints \"hdistill serve: stand-in listening on URL\" when ready.\n"
    "\n"
    "  --standin               required: the only mode\n"
    "  --port P                port to listen on; 0 picks a free one (default 0)\n"
    "  --port-file FILE        write the port there (atomically) once listening\n"
    "  --bind ADDR             listen address (default 127.0.0.1; IPv6 literals work)\n"
    "  --seed S                seed of answers, faults and latencies (default 0)\n"
    "  --request-log FILE      append one JSON line per request (key, role, status, fault)\n"
    "  --latency-ms X          delay every chat answer by X ms (default 0)\n"
    "  --latency-jitter-ms J   plus uniform [0, J) ms, drawn per request (default 0)\n"
    "  --fault KIND=RATE       inject a fault with probability RATE (repeatable; rates\n"
    "                          add up to <= 1); KIND: 429 500 503 hang malformed\n"
    "                          truncated empty schema quota retry-date filter-400\n"
    "                          filtered refusal think lone-think parts length-empty\n"
    "  --retry-after S         Retry-After seconds of the 429 fault (default 1)\n"
    "  --refusal-rate R        share of teacher requests refused (default 0)\n"
    "  --position-bias B       critic: added to the logit of answer 1 (default 0)\n"
    "  --length-bias L         critic: L * (words(a) - words(b)) / words(literal) (default 0)\n"
    "  --tau T                 critic temperature on the humor scale (default 0.1)\n"
    "  --critic-sample         critic writes a sampled answer, not the likelier one\n"
    "  --threads N             HTTP worker threads (default min(4, CPUs))\n"
    "  --max-hung N            hung connections held at most, oldest closed first (default 512)\n"
    "  --dialect NAME          answer like: standin (default) openai openai-reasoning vllm\n"
    "                          vllm-reasoning llama-server ollama azure (docs/standin.md)\n"
    "  --model NAME            requests for another model get the dialect's 404\n"
    "  --ctx-words N           llama-server: prompts longer than N words get its 400\n"
    "  --batch-delay S         Batch API: seconds until a batch ends (default 1)\n"
    "  --batch-fail-rate R     Batch API: share of lines that fail (default 0)\n"
    "  --batch-expire-rate R   Batch API: share of lines that expire (default 0)\n"
    "  --fortunes DIR          fortunes directory (default " STANDIN_DEFAULT_FORTUNES ")\n"
    "  --wordnet DIR           WordNet directory (default " STANDIN_DEFAULT_WORDNET ")\n"
    "  --quiet                 no start-up and shutdown summaries\n"
    "\n"
    "The student of a run behind the same endpoints: hdistill serve --model RUN_DIR|HF_DIR\n"
    "(hdistill serve --model X --help).\n";

static int parse_double(const char *opt, const char *v, double *out, Err *e) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !isfinite(x)) return err_set(e, "%s %s: not a number", opt, v);
    *out = x;
    return 0;
}

static int parse_long(const char *opt, const char *v, long lo, long hi, long *out, Err *e) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi) return err_set(e, "%s %s: not an integer in [%ld, %ld]", opt, v, lo, hi);
    *out = x;
    return 0;
}

/* Stops s and prints what it served (unless quiet). */
static void serve_stop_summary(Server *s, int sig, int quiet) {
    ServeStats st;
    serve_stats(s, &st);
    int handler = s->o.chat != NULL;
    serve_stop(s);
    if (quiet) return;
    const char *name = sig == SIGINT ? "SIGINT" : "SIGTERM";
    if (handler)
        printf("hdistill serve: %s received; served %lld requests (%lld chat completions)\n", name,
               (long long)st.requests, (long long)st.chat);
    else
        printf("hdistill serve: %s received; served %lld requests (%lld chat, %lld repeated keys, %lld faults injected)\n",
               name, (long long)st.requests, (long long)st.chat, (long long)st.repeats,
               (long long)(st.chat - st.by_fault[SERVE_FAULT_NONE]));
    fflush(stdout);
}

/* the options with a value */
enum {
    OPT_PORT, OPT_PORT_FILE, OPT_BIND, OPT_SEED, OPT_REQUEST_LOG, OPT_LATENCY_MS, OPT_LATENCY_JITTER_MS, OPT_FAULT,
    OPT_RETRY_AFTER, OPT_REFUSAL_RATE, OPT_POSITION_BIAS, OPT_LENGTH_BIAS, OPT_TAU, OPT_THREADS, OPT_MAX_HUNG,
    OPT_DIALECT, OPT_MODEL, OPT_CTX_WORDS, OPT_BATCH_DELAY, OPT_BATCH_FAIL_RATE, OPT_BATCH_EXPIRE_RATE,
    OPT_FORTUNES, OPT_WORDNET
};
static const char *const VALUED[] = {
    [OPT_PORT] = "--port", [OPT_PORT_FILE] = "--port-file", [OPT_BIND] = "--bind", [OPT_SEED] = "--seed",
    [OPT_REQUEST_LOG] = "--request-log", [OPT_LATENCY_MS] = "--latency-ms",
    [OPT_LATENCY_JITTER_MS] = "--latency-jitter-ms", [OPT_FAULT] = "--fault", [OPT_RETRY_AFTER] = "--retry-after",
    [OPT_REFUSAL_RATE] = "--refusal-rate", [OPT_POSITION_BIAS] = "--position-bias",
    [OPT_LENGTH_BIAS] = "--length-bias", [OPT_TAU] = "--tau", [OPT_THREADS] = "--threads",
    [OPT_MAX_HUNG] = "--max-hung", [OPT_DIALECT] = "--dialect", [OPT_MODEL] = "--model",
    [OPT_CTX_WORDS] = "--ctx-words", [OPT_BATCH_DELAY] = "--batch-delay",
    [OPT_BATCH_FAIL_RATE] = "--batch-fail-rate", [OPT_BATCH_EXPIRE_RATE] = "--batch-expire-rate",
    [OPT_FORTUNES] = "--fortunes", [OPT_WORDNET] = "--wordnet",
    NULL};

/* Parses argv into o; returns 1 for --help, 0, or -1 with e set. */
static int serve_parse_args(int argc, char **argv, ServeOptions *o, Err *e) {
    int standin = 0;
    int i = 1;
    if (i < argc && strcmp(argv[i], "serve") == 0) i++;
    for (; i < argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return 1;
        if (strcmp(a, "--standin") == 0) { standin = 1; continue; }
        if (strcmp(a, "--quiet") == 0) { o->quiet = 1; continue; }
        if (strcmp(a, "--critic-sample") == 0) { o->critic_sample = 1; continue; }
        if (strncmp(a, "--", 2) != 0) return err_set(e, "unexpected argument '%s'", a);
        const char *v;
        int opt = util_parse_option(argc, argv, &i, VALUED, &v, "", e);
        if (opt < 0) return -1;
        const char *name = VALUED[opt];
        long l = 0;
        double d = 0;
        switch (opt) {
        case OPT_PORT:
            if (parse_long(name, v, 0, 65535, &l, e)) return -1;
            o->port = (int)l;
            break;
        case OPT_PORT_FILE: o->port_file = v; break;
        case OPT_BIND: o->bind = v; break;
        case OPT_SEED: {
            char *end;
            errno = 0;
            unsigned long long x = strtoull(v, &end, 10);
            if (!*v || *end || errno || v[0] == '-') return err_set(e, "--seed %s: not a non-negative integer", v);
            o->seed = x;
            break;
        }
        case OPT_REQUEST_LOG: o->request_log = v; break;
        case OPT_LATENCY_MS: if (parse_double(name, v, &o->latency_ms, e)) return -1; break;
        case OPT_LATENCY_JITTER_MS: if (parse_double(name, v, &o->latency_jitter_ms, e)) return -1; break;
        case OPT_FAULT: {
            const char *q = strchr(v, '=');
            char kind[32];
            if (!q || (size_t)(q - v) >= sizeof kind) return err_set(e, "--fault %s: expected KIND=RATE", v);
            snprintf(kind, sizeof kind, "%.*s", (int)(q - v), v);
            int f = serve_fault_parse(kind);
            if (f < 0)
                return err_set(e, "--fault %s: unknown kind '%s' (429 500 503 hang malformed truncated empty schema quota "
                                  "retry-date filter-400 filtered refusal think lone-think parts length-empty)", v, kind);
            if (parse_double("--fault", q + 1, &d, e)) return -1;
            o->fault_rate[f] = d;
            break;
        }
        case OPT_RETRY_AFTER:
            if (parse_long(name, v, 0, 86400, &l, e)) return -1;
            o->retry_after_s = (int)l;
            break;
        case OPT_REFUSAL_RATE: if (parse_double(name, v, &o->refusal_rate, e)) return -1; break;
        case OPT_POSITION_BIAS: if (parse_double(name, v, &o->position_bias, e)) return -1; break;
        case OPT_LENGTH_BIAS: if (parse_double(name, v, &o->length_bias, e)) return -1; break;
        case OPT_TAU: if (parse_double(name, v, &o->tau, e)) return -1; break;
        case OPT_THREADS:
            if (parse_long(name, v, 1, 64, &l, e)) return -1;
            o->threads = (int)l;
            break;
        case OPT_MAX_HUNG:
            if (parse_long(name, v, 1, 1000000, &l, e)) return -1;
            o->max_hung = (int)l;
            break;
        case OPT_DIALECT:
            if ((o->dialect = dialect_parse(v)) < 0)
                return err_set(e, "--dialect %s: unknown (standin openai openai-reasoning vllm vllm-reasoning "
                                  "llama-server ollama azure)", v);
            break;
        case OPT_MODEL: o->served_model = v; break;
        case OPT_CTX_WORDS:
            if (parse_long(name, v, 0, 100000000, &l, e)) return -1;
            o->ctx_words = (int)l;
            break;
        case OPT_BATCH_DELAY: if (parse_double(name, v, &o->batch_delay_s, e)) return -1; break;
        case OPT_BATCH_FAIL_RATE: if (parse_double(name, v, &o->batch_fail_rate, e)) return -1; break;
        case OPT_BATCH_EXPIRE_RATE: if (parse_double(name, v, &o->batch_expire_rate, e)) return -1; break;
        case OPT_FORTUNES: o->fortunes_dir = v; break;
        case OPT_WORDNET: o->wordnet_dir = v; break;
        }
    }
    if (!standin) return err_set(e, "--standin is required (or --model RUN_DIR|HF_DIR for the student: hdistill serve --model X --help)");
    return serve_options_check(o, e);
}

int serve_main(int argc, char **argv) {
    ServeOptions o;
    serve_options_init(&o);
    Err e = {{0}};
    int rc = serve_parse_args(argc, argv, &o, &e);
    if (rc == 1) {
        fputs(SERVE_HELP, stdout);
        return EXIT_OK;
    }
    if (rc) {
        fprintf(stderr, "hdistill serve: %s (see hdistill serve --help)\n", e.msg);
        return EXIT_USAGE;
    }
    return serve_run(&o, "stand-in");
}

static void stop_signal_set(sigset_t *set) {
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
}

void serve_block_stop_signals(void) {
    sigset_t stop;
    stop_signal_set(&stop);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int serve_run(const ServeOptions *o, const char *what) {
    /* every thread started from here on inherits the blocked stop signals,
     * so sigwait below is the only place they are delivered */
    serve_block_stop_signals();
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    Err e = {{0}};
    Server *s = serve_start(o, &e);
    if (!s) {
        fprintf(stderr, "hdistill serve: %s\n", e.msg);
        return EXIT_RUNTIME;
    }
    printf("hdistill serve: %s listening on %s\n", what, serve_base_url(s));
    fflush(stdout);
    sigset_t stop;
    stop_signal_set(&stop);
    int sig = 0;
    sigwait(&stop, &sig);
    serve_stop_summary(s, sig, o->quiet);
    return EXIT_OK;
}

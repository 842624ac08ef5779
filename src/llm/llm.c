/* llm -- curl-multi chat-completions client; see include/llm/llm.h.
 *
 * llm_run in phases: run_begin (cache lookups), then a loop of
 * run_stop_check, run_requeue (due retries), run_launch (concurrency, rate
 * limits, budget), run_transfer (curl_multi_perform, finished transfers to
 * complete()), run_wait (curl_multi_poll, progress line); run_end abandons
 * what is left after a stop and writes the totals. */
#include "llm/llm.h"

#include <curl/curl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const char *STATUS_NAMES[LLM_N_STATUS] = {
    "ok",        "http_4xx", "http_5xx",           "rate_limited",     "timeout", "connect",
    "transport", "malformed", "schema",            "empty",            "stopped", "insufficient_quota",
    "reasoning_length", "refused", "content_filter", "budget",          "batch"};

const char *llm_status_name(LlmStatus s) {
    return (s >= 0 && s < LLM_N_STATUS) ? STATUS_NAMES[s] : "unknown";
}

int llm_status_transient(LlmStatus s) {
    switch (s) {
    case LLM_OK:
    case LLM_E_HTTP4XX:
    case LLM_E_QUOTA:
    case LLM_E_REASONING:
    case LLM_E_REFUSED:
    case LLM_E_FILTERED:
    case LLM_E_BUDGET:
    case LLM_N_STATUS: return 0;
    default: return 1;
    }
}

void llm_result_free(LlmResult *r) {
    if (!r) return;
    free(r->body);
    chat_response_free(&r->resp);
    memset(r, 0, sizeof *r);
}

typedef struct {
    CURL *easy;
    ByteBuf body;
    long idx; /* request being served, -1 if idle */
    double retry_after; /* seconds asked by the server, -1 if none */
    int ra_ms;          /* retry-after-ms was given: it wins over Retry-After */
    char *post;
    double started;
} Slot;

struct LlmClient {
    char *name, *base, *url, *ca_bundle;
    char *auth; /* "Authorization: Bearer ..." (memory only) */
    LlmEndpoint ep;
    LlmCache *cache;
    LlmBudget *budget;
    CURLM *multi;
    Slot *slots;
    struct curl_slist *headers;
    LlmUsage usage;
    Rng rng; /* backoff jitter */
};

static int g_curl_inited = 0;

/* snprintf for messages: a message longer than its buffer is cut, on purpose */
static int msgf(char *dst, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int msgf(char *dst, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(dst, n, fmt, ap);
    va_end(ap);
    return k;
}

static int check_endpoint(const LlmEndpoint *ep, Err *e) {
    if (!ep->base_url || !*ep->base_url)
        return err_set(e, "%s.base_url is empty (hint: an OpenAI-compatible URL ending in /v1, or \"standin\")",
                       ep->name);
    if (strncmp(ep->base_url, "http://", 7) && strncmp(ep->base_url, "https://", 8))
        return err_set(e, "%s.base_url '%s' must start with http:// or https://", ep->name, ep->base_url);
    if (ep->concurrency < 1) return err_set(e, "%s.concurrency must be >= 1", ep->name);
    if (ep->ec && chat_endpoint_check(ep->ec, ep->name, e) != 0) return -1;
    if (!g_curl_inited) {
        CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (rc != CURLE_OK) return err_set(e, "curl_global_init failed: %s", curl_easy_strerror(rc));
        g_curl_inited = 1;
    }
    return 0;
}

/* Appends a header; -1 with e set when libcurl cannot. */
static int add_header(struct curl_slist **h, const char *line, Err *e) {
    struct curl_slist *n = curl_slist_append(*h, line);
    if (!n) return err_set(e, "curl_slist_append failed (out of memory?)");
    *h = n;
    return 0;
}

LlmClient *llm_client_create(const LlmEndpoint *ep, LlmCache *cache, Err *e) {
    if (check_endpoint(ep, e) != 0) return NULL;
    const char *key = NULL;
    if (ep->api_key_env && *ep->api_key_env) {
        key = getenv(ep->api_key_env);
        if (!key || !*key) {
            err_set(e, "%s.api_key_env names %s, which is not set in the environment (hint: export %s=...)",
                    ep->name, ep->api_key_env, ep->api_key_env);
            return NULL;
        }
    }
    LlmClient *c = xcalloc(1, sizeof *c);
    c->ep = *ep;
    c->name = xstrdup(ep->name ? ep->name : "llm");
    c->ep.name = c->name;
    size_t bl = strlen(ep->base_url);
    while (bl > 0 && ep->base_url[bl - 1] == '/') bl--;
    c->base = xstrndup(ep->base_url, bl);
    c->url = xasprintf("%s/chat/completions", c->base);
    c->ca_bundle = xstrdup(ep->ca_bundle ? ep->ca_bundle : "");
    c->cache = cache;
    c->multi = curl_multi_init();
    int rc = c->multi ? 0 : err_set(e, "curl_multi_init failed");
    if (rc == 0) rc = add_header(&c->headers, "Content-Type: application/json", e);
    if (rc == 0) rc = add_header(&c->headers, "Expect:", e);
    if (rc == 0 && key) {
        c->auth = xasprintf("Authorization: Bearer %s", key);
        rc = add_header(&c->headers, c->auth, e);
    }
    CURLMcode mc = CURLM_OK;
    if (rc == 0) mc = curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)ep->concurrency);
    if (rc == 0 && mc == CURLM_OK) mc = curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)ep->concurrency);
    if (rc == 0 && mc != CURLM_OK) rc = err_set(e, "curl_multi_setopt: %s", curl_multi_strerror(mc));
    c->slots = xcalloc((size_t)ep->concurrency, sizeof(Slot));
    for (int i = 0; i < ep->concurrency; i++) c->slots[i].idx = -1;
    rng_seed(&c->rng, (uint64_t)getpid() ^ (uint64_t)(util_wall() * 1e6));
    if (rc != 0) {
        llm_client_destroy(c);
        return NULL;
    }
    return c;
}

void llm_client_destroy(LlmClient *c) {
    if (!c) return;
    for (int i = 0; i < c->ep.concurrency; i++) {
        Slot *s = &c->slots[i];
        if (s->easy) {
            if (s->idx >= 0 && curl_multi_remove_handle(c->multi, s->easy) != CURLM_OK)
                log_warn("%s: curl_multi_remove_handle failed while closing", c->name);
            curl_easy_cleanup(s->easy);
        }
        bytebuf_free(&s->body);
        free(s->post);
    }
    free(c->slots);
    if (c->multi && curl_multi_cleanup(c->multi) != CURLM_OK) log_warn("%s: curl_multi_cleanup failed", c->name);
    curl_slist_free_all(c->headers);
    if (c->auth) {
        memset(c->auth, 0, strlen(c->auth)); /* do not leave the key in freed memory */
        free(c->auth);
    }
    free(c->url);
    free(c->base);
    free(c->ca_bundle);
    free(c->name);
    free(c);
}

int llm_client_set_budget(LlmClient *c, LlmBudget *b, Err *e) {
    if (b && c->ep.ec && c->ep.ec->max_tokens <= 0)
        return err_set(e, "%s.max_tokens is 0 (not sent): with a budget every request needs a token limit so "
                          "its cost is bounded (hint: set %s.max_tokens)", c->name, c->name);
    if (b && budget_limits_usd(b) && c->ep.price_in <= 0 && c->ep.price_out <= 0)
        return err_set(e, "llm.budget_usd is set but %s.price_in and %s.price_out are 0 (hint: set the prices in "
                          "USD per million tokens, or use llm.budget_tokens)", c->name, c->name);
    c->budget = b;
    return 0;
}

LlmBudget *llm_client_budget(const LlmClient *c) { return c->budget; }
LlmCache *llm_client_cache(const LlmClient *c) { return c->cache; }
const LlmEndpoint *llm_client_endpoint(const LlmClient *c) { return &c->ep; }
const LlmUsage *llm_usage(const LlmClient *c) { return &c->usage; }

void llm_usage_format(const LlmUsage *u, char *buf, size_t n) {
    int k = msgf(buf, n,
                     "requests %lld (cache %lld), sent %lld, retries %lld, ok %lld, failed %lld, "
                     "stopped %lld, tokens %lld prompt + %lld completion (%lld reasoning), $%.4f, %.1f s",
                     (long long)u->requests, (long long)u->cache_hits, (long long)u->sent,
                     (long long)u->retries, (long long)u->ok, (long long)u->failed, (long long)u->stopped,
                     (long long)u->prompt_tokens, (long long)u->completion_tokens,
                     (long long)(u->reasoning_tokens > 0 ? u->reasoning_tokens : 0), u->cost_usd, u->seconds);
    int first = 1;
    for (int s = 1; s < LLM_N_STATUS && k > 0 && (size_t)k < n; s++)
        if (u->errors[s]) {
            k += msgf(buf + k, n - (size_t)k, "%s%s %lld", first ? "; errors: " : ", ",
                          llm_status_name((LlmStatus)s), (long long)u->errors[s]);
            first = 0;
        }
}

/* ---- token estimates ------------------------------------------------------------ */

static size_t prompt_bytes(const ChatRequest *r) {
    size_t chars = 0;
    for (int i = 0; i < r->n_messages; i++) chars += strlen(r->messages[i].content);
    return chars;
}

/* for rate limits and dry runs: about 4 bytes a token */
static double est_prompt_tokens(const ChatRequest *r) {
    return (double)prompt_bytes(r) / 4.0 + 4.0 * r->n_messages;
}

static double est_tokens(const ChatRequest *r) {
    return est_prompt_tokens(r) + (r->max_tokens > 0 ? r->max_tokens : 256);
}

/* for the budget: an upper bound -- byte-level BPE tokenizers never give more
 * tokens than bytes -- plus the chat template's tokens, plus the limit */
static int64_t max_tokens_of(const ChatRequest *r) {
    return (int64_t)prompt_bytes(r) + 8 * (int64_t)r->n_messages + 16 + (r->max_tokens > 0 ? r->max_tokens : 0);
}

static double max_cost_of(const LlmClient *c, const ChatRequest *r) {
    int64_t prompt = (int64_t)prompt_bytes(r) + 8 * (int64_t)r->n_messages + 16;
    return ((double)prompt * c->ep.price_in + (double)(r->max_tokens > 0 ? r->max_tokens : 0) * c->ep.price_out) /
           1e6;
}

void llm_request_bound(const LlmClient *c, const ChatRequest *r, double *usd, int64_t *tokens) {
    *usd = max_cost_of(c, r);
    *tokens = max_tokens_of(r);
}

void llm_estimate(const LlmClient *c, const ChatRequest *reqs, size_t n, LlmEstimate *out) {
    memset(out, 0, sizeof *out);
    out->requests = n;
    for (size_t i = 0; i < n; i++) {
        char key[65];
        chat_request_key(&reqs[i], key);
        if (c->cache && cache_get(c->cache, key, NULL)) {
            out->cached++;
            continue;
        }
        out->to_send++;
        out->prompt_tokens += est_prompt_tokens(&reqs[i]);
        if (reqs[i].max_tokens > 0) out->completion_tokens += reqs[i].max_tokens;
        else out->unbounded++;
    }
    int priced = c->ep.price_in > 0 || c->ep.price_out > 0;
    out->cost_usd = priced ? (out->prompt_tokens * c->ep.price_in + out->completion_tokens * c->ep.price_out) / 1e6
                           : -1;
}

void llm_estimate_format(const LlmEstimate *est, char *buf, size_t n) {
    int k = msgf(buf, n, "%zu requests: %zu cached, %zu to send; ~%.0f prompt + <= %.0f completion tokens",
                     est->requests, est->cached, est->to_send, est->prompt_tokens, est->completion_tokens);
    if (k < 0 || (size_t)k >= n) return;
    if (est->unbounded)
        k += msgf(buf + k, n - (size_t)k, " (+ %d requests without a token limit: unbounded)", est->unbounded);
    if (k < 0 || (size_t)k >= n) return;
    if (est->cost_usd >= 0) msgf(buf + k, n - (size_t)k, "; <= $%.4f", est->cost_usd);
    else msgf(buf + k, n - (size_t)k, "; cost unknown (set price_in/price_out)");
}

/* ---- answers ------------------------------------------------------------------------ */

/* Classifies a parsed 200 answer; msg gets the reason for non-OK. */
static LlmStatus classify(const LlmClient *c, const ChatRequest *req, const ChatResponse *resp, char *msg,
                          size_t n) {
    if (chat_response_refused(resp)) {
        msgf(msg, n, "refused: %.300s", resp->refusal);
        return LLM_E_REFUSED;
    }
    if (chat_response_filtered(resp)) {
        msgf(msg, n, "the answer was stopped by a content filter (finish_reason content_filter)");
        return LLM_E_FILTERED;
    }
    if (!resp->content[0]) {
        if (chat_response_truncated(resp)) {
            const char *param = req->token_param == CHAT_TOKENS_MAX_COMPLETION_TOKENS ? "max_completion_tokens"
                                                                                     : "max_tokens";
            msgf(msg, n,
                     "no answer: all %d tokens of %s went to reasoning (finish_reason length, %lld reasoning "
                     "tokens) (hint: raise %s.max_tokens, lower %s.reasoning_effort, or turn thinking off with "
                     "%s.extra_body)",
                     req->max_tokens, param, (long long)resp->reasoning_tokens, c->name, c->name, c->name);
            return LLM_E_REASONING;
        }
        msgf(msg, n, "empty content (finish_reason '%s')", resp->finish_reason);
        return LLM_E_EMPTY;
    }
    return LLM_OK;
}

static void count_usage(LlmClient *c, const ChatResponse *resp, double price_factor) {
    if (resp->prompt_tokens > 0) c->usage.prompt_tokens += resp->prompt_tokens;
    if (resp->completion_tokens > 0) c->usage.completion_tokens += resp->completion_tokens;
    if (resp->reasoning_tokens > 0) c->usage.reasoning_tokens += resp->reasoning_tokens;
    double in = resp->prompt_tokens > 0 ? (double)resp->prompt_tokens : 0;
    double out = resp->completion_tokens > 0 ? (double)resp->completion_tokens : 0;
    c->usage.cost_usd += price_factor * (in * c->ep.price_in + out * c->ep.price_out) / 1e6;
}

LlmStatus llm_accept_body(LlmClient *c, const ChatRequest *req, const char *body, size_t len,
                          double price_factor, LlmResult *r) {
    Err e;
    ChatResponse resp;
    r->http_status = 200;
    if (chat_response_parse(body, len, &resp, &e) != 0) {
        msgf(r->error, sizeof r->error, "%s: %.400s", c->name, e.msg);
        r->status = strstr(e.msg, "malformed") ? LLM_E_MALFORMED : LLM_E_SCHEMA;
        return r->status;
    }
    count_usage(c, &resp, price_factor);
    char msg[400];
    LlmStatus st = classify(c, req, &resp, msg, sizeof msg);
    r->status = st;
    if (st != LLM_OK) msgf(r->error, sizeof r->error, "%s: %s", c->name, msg);
    if (st == LLM_E_EMPTY) {
        chat_response_free(&resp);
        return st;
    }
    r->resp = resp;
    r->body = xstrndup(body, len);
    if (c->cache) {
        char key[65];
        chat_request_key(req, key);
        Err e2;
        if (cache_put(c->cache, key, body, len, &e2) != 0)
            DIE("%s (the answer of a %s request could not be saved)", e2.msg, c->name);
    }
    return st;
}

int llm_cached_result(LlmClient *c, const ChatRequest *req, LlmResult *r) {
    memset(r, 0, sizeof *r);
    if (!c->cache) return 0;
    char key[65];
    chat_request_key(req, key);
    size_t len = 0;
    const char *body = cache_get(c->cache, key, &len);
    ChatResponse resp;
    Err e;
    char msg[400];
    if (!body || chat_response_parse(body, len, &resp, &e) != 0) return 0;
    LlmStatus st = classify(c, req, &resp, msg, sizeof msg);
    if (st == LLM_E_EMPTY) { /* never stored; ask again */
        chat_response_free(&resp);
        return 0;
    }
    r->status = st;
    if (st != LLM_OK) msgf(r->error, sizeof r->error, "%s (cached answer): %s", c->name, msg);
    r->from_cache = 1;
    r->http_status = 200;
    r->body = xstrndup(body, len);
    r->resp = resp;
    return 1;
}

LlmUsage *llm_client_usage(LlmClient *c) { return &c->usage; }

/* ---- curl callbacks --------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud) {
    ByteBuf *b = ud;
    bytebuf_put(b, p, size * nmemb);
    return size * nmemb;
}

/* Seconds to wait from a Retry-After value: delta-seconds or an HTTP date
 * (RFC 9110 10.2.3); -1 if it is neither. */
static double retry_after_value(const char *v) {
    while (*v == ' ' || *v == '\t') v++;
    char *end;
    double d = strtod(v, &end);
    if (end != v && (*end == 0 || *end == ' ')) return d >= 0 ? d : -1;
    time_t t = curl_getdate(v, NULL);
    if (t < 0) return -1;
    double w = difftime(t, time(NULL));
    return w > 0 ? w : 0;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud) {
    Slot *s = ud;
    size_t n = size * nmemb;
    char v[128];
    int ms = n > 15 && strncasecmp(p, "retry-after-ms:", 15) == 0;
    if (ms || (n > 12 && strncasecmp(p, "Retry-After:", 12) == 0)) {
        size_t skip = ms ? 15 : 12, k = n - skip < sizeof v - 1 ? n - skip : sizeof v - 1;
        memcpy(v, p + skip, k);
        v[k] = 0;
        for (char *q = v; *q; q++)
            if (*q == '\r' || *q == '\n') *q = 0;
        double w = retry_after_value(v);
        if (ms && w >= 0) {
            s->retry_after = w / 1000.0;
            s->ra_ms = 1;
        } else if (!ms && w >= 0 && !s->ra_ms) {
            s->retry_after = w;
        }
    }
    return n;
}

/* ---- the run ------------------------------------------------------------------- */

typedef struct {
    double due;
    long idx;
} Retry;

typedef struct {
    LlmClient *c;
    const ChatRequest *reqs;
    LlmResult *res;
    size_t n;
    long *ready; /* FIFO of request indices */
    size_t rhead, rtail;
    Retry *retry; /* unsorted list of delayed retries (small) */
    size_t nretry;
    int *tries;
    double *held_usd;   /* budget reserved for request i while in flight */
    int64_t *held_tok;
    double next_rps, tpm_budget, tpm_stamp, stop_at;
    size_t finished, ok, total_net, stopped, active;
    int64_t connect_fail_streak;
    int gave_up, quota, broken;
    char gave_up_msg[256], quota_msg[512], broken_msg[256];
    const char *progress;
    double t0, last_progress;
    int tty;
} Run;

/* Releases request i's budget reservation, counting spent_usd/tokens as spent
 * (the reservation itself when spent_tok < 0: a cost that cannot be known). */
static void settle(Run *R, long i, double spent_usd, int64_t spent_tok) {
    LlmClient *c = R->c;
    if (!c->budget || (R->held_usd[i] <= 0 && R->held_tok[i] <= 0)) return;
    if (spent_tok < 0) spent_usd = R->held_usd[i], spent_tok = R->held_tok[i];
    Err e;
    if (budget_settle(c->budget, R->held_usd[i], R->held_tok[i], spent_usd, spent_tok, &e) != 0)
        log_warn("%s: %s", c->name, e.msg);
    R->held_usd[i] = 0;
    R->held_tok[i] = 0;
}

static void finish(Run *R, long i, LlmStatus st, const char *msg) {
    LlmResult *r = &R->res[i];
    r->status = st;
    if (msg) msgf(r->error, sizeof r->error, "%s", msg);
    R->finished++;
    if (st == LLM_OK) {
        R->ok++;
        R->c->usage.ok++;
    } else if (st == LLM_E_STOPPED) { /* only a stop signal finishes a request so */
        R->c->usage.stopped++;
        R->stopped++;
    } else {
        R->c->usage.failed++;
    }
}

static void schedule_retry(Run *R, long i, LlmStatus kind, double retry_after, const char *msg) {
    LlmClient *c = R->c;
    c->usage.errors[kind]++;
    LlmResult *r = &R->res[i];
    msgf(r->error, sizeof r->error, "%s", msg);
    if (R->gave_up || R->quota) {
        finish(R, i, R->gave_up ? LLM_E_CONNECT : LLM_E_QUOTA, R->gave_up ? R->gave_up_msg : R->quota_msg);
        return;
    }
    if (R->tries[i] > c->ep.retries) {
        finish(R, i, kind, msg);
        return;
    }
    if (retry_after > c->ep.backoff_max) {
        char m[512];
        msgf(m, sizeof m,
                 "%.300s; the server asked to wait %.0f s (Retry-After), more than %s.backoff_max = %g s: not "
                 "retried (hint: raise %s.backoff_max, or lower %s.concurrency / %s.rate_rps)",
                 msg, retry_after, c->name, c->ep.backoff_max, c->name, c->name, c->name);
        finish(R, i, kind, m);
        return;
    }
    double d = c->ep.backoff * pow(2.0, R->tries[i] - 1);
    if (d > c->ep.backoff_max) d = c->ep.backoff_max;
    d *= 0.5 + 0.5 * rng_double(&c->rng); /* jitter */
    if (retry_after > d) d = retry_after;
    R->retry = xrealloc(R->retry, sizeof(Retry) * (R->nretry + 1));
    R->retry[R->nretry++] = (Retry){util_now() + d, i};
    c->usage.retries++;
}

#define SETOPT(h, opt, val)                                                                            \
    do {                                                                                               \
        CURLcode rc_ = curl_easy_setopt((h), (opt), (val));                                            \
        if (rc_ != CURLE_OK) return err_set(e, "curl_easy_setopt(%s): %s", #opt, curl_easy_strerror(rc_)); \
    } while (0)

/* The options every transfer of a slot shares. */
static int slot_setup(LlmClient *c, Slot *s, Err *e) {
    s->easy = curl_easy_init();
    if (!s->easy) return err_set(e, "curl_easy_init failed");
    SETOPT(s->easy, CURLOPT_URL, c->url);
    SETOPT(s->easy, CURLOPT_HTTPHEADER, c->headers);
    SETOPT(s->easy, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(s->easy, CURLOPT_WRITEDATA, &s->body);
    SETOPT(s->easy, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(s->easy, CURLOPT_HEADERDATA, s);
    SETOPT(s->easy, CURLOPT_NOSIGNAL, 1L);
    SETOPT(s->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->ep.connect_timeout * 1000));
    SETOPT(s->easy, CURLOPT_TIMEOUT_MS, (long)(c->ep.timeout * 1000));
    SETOPT(s->easy, CURLOPT_PRIVATE, s);
    SETOPT(s->easy, CURLOPT_USERAGENT, "hdistill/0.1");
    if (c->ca_bundle[0]) SETOPT(s->easy, CURLOPT_CAINFO, c->ca_bundle);
    return 0;
}

/* Starts request i on idle slot s; 0, or -1 with e set (nothing sent). */
static int slot_start(Run *R, Slot *s, long i, Err *e) {
    LlmClient *c = R->c;
    if (!s->easy && slot_setup(c, s, e) != 0) return -1;
    free(s->post);
    s->post = chat_request_body(&R->reqs[i]);
    SETOPT(s->easy, CURLOPT_POSTFIELDS, s->post);
    SETOPT(s->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(s->post));
    s->body.n = 0;
    s->retry_after = -1;
    s->ra_ms = 0;
    CURLMcode mc = curl_multi_add_handle(c->multi, s->easy);
    if (mc != CURLM_OK) return err_set(e, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
    s->idx = i;
    s->started = util_now();
    return 0;
}

/* Launches request i on idle slot s (a failure to start it is final). */
static void launch(Run *R, Slot *s, long i) {
    LlmClient *c = R->c;
    Err e;
    if (slot_start(R, s, i, &e) != 0) {
        char m[400];
        msgf(m, sizeof m, "%s request %ld: %s", c->name, i, e.msg);
        settle(R, i, 0, 0);
        c->usage.errors[LLM_E_TRANSPORT]++;
        finish(R, i, LLM_E_TRANSPORT, m);
        return;
    }
    R->tries[i]++;
    R->res[i].attempts++;
    c->usage.sent++;
    R->active++;
}

static LlmStatus curl_kind(CURLcode rc) {
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT: return LLM_E_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: return LLM_E_CONNECT;
    default: return LLM_E_TRANSPORT;
    }
}

static void complete_transport(Run *R, long i, CURLcode rc) {
    LlmClient *c = R->c;
    char msg[400];
    LlmStatus k = curl_kind(rc);
    msgf(msg, sizeof msg, "%s request %ld: %s (%s)", c->name, i, curl_easy_strerror(rc), c->url);
    settle(R, i, 0, -1); /* it may have been answered and billed: count the reservation */
    if (k == LLM_E_CONNECT && R->ok == 0) {
        if (++R->connect_fail_streak >= 10 && R->connect_fail_streak >= 3 * c->ep.concurrency) {
            R->gave_up = 1;
            msgf(R->gave_up_msg, sizeof R->gave_up_msg,
                     "%s endpoint %s unreachable: %s (hint: check %s.base_url and that the server runs)", c->name,
                     c->url, curl_easy_strerror(rc), c->name);
        }
    }
    schedule_retry(R, i, k, -1, msg);
}

/* r->error of llm_accept_body without its "name: " prefix */
static const char *after_name(const LlmClient *c, const char *err) {
    size_t k = strlen(c->name);
    return strncmp(err, c->name, k) == 0 && err[k] == ':' && err[k + 1] == ' ' ? err + k + 2 : err;
}

/* A 200: parsed and classified; unusable bodies are retried. */
static void complete_answer(Run *R, Slot *s, long i) {
    LlmClient *c = R->c;
    LlmResult *r = &R->res[i];
    LlmStatus st = llm_accept_body(c, &R->reqs[i], s->body.a ? s->body.a : "", s->body.n, 1.0, r);
    if (st == LLM_E_MALFORMED || st == LLM_E_SCHEMA || st == LLM_E_EMPTY) {
        char msg[600];
        msgf(msg, sizeof msg, "%s request %ld: %s", c->name, i, after_name(c, r->error));
        settle(R, i, 0, -1);
        schedule_retry(R, i, st, -1, msg);
        return;
    }
    const ChatResponse *p = &r->resp;
    if (p->prompt_tokens >= 0 && p->completion_tokens >= 0) {
        settle(R, i, ((double)p->prompt_tokens * c->ep.price_in + (double)p->completion_tokens * c->ep.price_out) / 1e6,
               p->prompt_tokens + p->completion_tokens);
        if (c->ep.rate_tpm > 0)
            R->tpm_budget += est_tokens(&R->reqs[i]) - (double)(p->prompt_tokens + p->completion_tokens);
    } else {
        settle(R, i, 0, -1);
    }
    if (st != LLM_OK) {
        char msg[600];
        msgf(msg, sizeof msg, "%s request %ld: %s", c->name, i, after_name(c, r->error));
        c->usage.errors[st]++;
        finish(R, i, st, msg);
        return;
    }
    finish(R, i, LLM_OK, NULL);
}

/* A short, one-line excerpt of a body that is not a known error shape. */
static void excerpt_of(const ByteBuf *b, char *out, size_t n) {
    size_t k = b->n < n - 1 ? b->n : n - 1;
    if (k > 160) k = 160;
    if (k) memcpy(out, b->a, k);
    out[k] = 0;
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
    if (!k) msgf(out, n, "(empty body)");
}

LlmStatus llm_status_of_error(long http, const ChatError *er) {
    if (er && http == 429 && (!strcmp(er->code, "insufficient_quota") || !strcmp(er->type, "insufficient_quota")))
        return LLM_E_QUOTA;
    if (er && !strcmp(er->code, "content_filter")) return LLM_E_FILTERED;
    if (http == 429) return LLM_E_RATE;
    if (http >= 500 || http == 408 || http == 409) return LLM_E_HTTP5XX;
    return LLM_E_HTTP4XX;
}

static void complete_error(Run *R, Slot *s, long i, long http) {
    LlmClient *c = R->c;
    ChatError er;
    char detail[200], msg[512]; /* detail fits LlmResult.error after "<name> request <i>: HTTP <s>: " */
    int known = chat_error_parse(s->body.a, s->body.n, &er);
    if (known) chat_error_format(&er, detail, sizeof detail);
    else excerpt_of(&s->body, detail, sizeof detail);
    msgf(msg, sizeof msg, "%s request %ld: HTTP %ld: %s", c->name, i, http, detail);
    settle(R, i, 0, 0);
    LlmStatus st = llm_status_of_error(http, known ? &er : NULL);
    if (st == LLM_E_QUOTA) {
        if (!R->quota)
            msgf(R->quota_msg, sizeof R->quota_msg,
                 "not sent: %s request %ld got insufficient_quota, so the run stopped: %.300s (hint: check "
                 "the plan and billing of the account)", c->name, i, er.message);
        R->quota = 1;
        c->usage.errors[LLM_E_QUOTA]++;
        char m[512];
        msgf(m, sizeof m, "insufficient_quota: %s", msg);
        finish(R, i, LLM_E_QUOTA, m);
    } else if (st == LLM_E_RATE || st == LLM_E_HTTP5XX) {
        schedule_retry(R, i, st, s->retry_after, msg);
    } else {
        c->usage.errors[st]++;
        finish(R, i, st, msg);
    }
}

static void complete(Run *R, Slot *s, CURLcode rc) {
    LlmClient *c = R->c;
    long i = s->idx;
    long http = 0;
    if (curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &http) != CURLE_OK) http = 0;
    CURLMcode mc = curl_multi_remove_handle(c->multi, s->easy);
    if (mc != CURLM_OK) log_warn("%s: curl_multi_remove_handle: %s", c->name, curl_multi_strerror(mc));
    s->idx = -1;
    R->active--;
    R->res[i].http_status = (int)http;
    if (rc != CURLE_OK) {
        complete_transport(R, i, rc);
        return;
    }
    R->connect_fail_streak = 0;
    if (http == 200) complete_answer(R, s, i);
    else complete_error(R, s, i, http);
}

static void progress_line(Run *R, int final) {
    if (!R->progress || util_rank() != 0) return;
    double now = util_now();
    if (!final && now - R->last_progress < (R->tty ? 0.5 : 10.0)) return;
    R->last_progress = now;
    const LlmUsage *u = &R->c->usage;
    double el = now - R->t0;
    double rate = el > 0 ? (double)R->finished / el : 0;
    double eta = rate > 0 ? (double)(R->total_net - R->finished) / rate : 0;
    char line[256];
    if (final && R->stopped)
        msgf(line, sizeof line, "[%s] stopped by a signal: %zu/%zu answered (%zu from cache), %zu not answered | "
                 "retries %lld | failed %lld", R->progress, R->ok + (size_t)(R->n - R->total_net), R->n,
                 R->n - R->total_net, R->stopped, (long long)u->retries, (long long)(R->finished - R->ok - R->stopped));
    else
        msgf(line, sizeof line, "[%s] %zu/%zu done (%zu from cache) | %.1f req/s | retries %lld | failed %lld | ETA %.0f s",
                 R->progress, R->finished + (size_t)(R->n - R->total_net), R->n, R->n - R->total_net, rate,
                 (long long)u->retries, (long long)u->failed, eta);
    if (R->tty) {
        fprintf(stdout, "\r%-110s%s", line, final ? "\n" : "");
    } else {
        fprintf(stdout, "%s\n", line);
    }
    fflush(stdout);
}

/* Sets up R and answers what the cache holds; the rest goes to the ready
 * queue.  Returns the number of usable (LLM_OK) answers from the cache. */
static size_t run_begin(Run *R, LlmClient *c, const ChatRequest *reqs, size_t n, LlmResult *results,
                        const char *progress) {
    memset(R, 0, sizeof *R);
    R->c = c;
    R->reqs = reqs;
    R->res = results;
    R->n = n;
    R->progress = progress;
    R->t0 = R->last_progress = util_now();
    R->stop_at = -1;
    /* an updating line only on a real terminal: mpirun hands its ranks a pseudo-terminal even when its own
     * output goes to a file (a Slurm log), so under an MPI launcher or in a Slurm job print plain lines */
    R->tty = isatty(STDOUT_FILENO) && !getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMIX_RANK") &&
             !getenv("PMI_RANK") && !getenv("SLURM_JOB_ID");
    R->ready = xmalloc(sizeof(long) * (n ? n : 1));
    R->tries = xcalloc(n ? n : 1, sizeof(int));
    R->held_usd = xcalloc(n ? n : 1, sizeof(double));
    R->held_tok = xcalloc(n ? n : 1, sizeof(int64_t));
    R->tpm_budget = c->ep.rate_tpm;
    R->tpm_stamp = R->t0;
    c->usage.requests += (int64_t)n;
    size_t hits = 0, hits_ok = 0;
    for (size_t i = 0; i < n; i++) {
        if (llm_cached_result(c, &reqs[i], &results[i])) {
            hits++;
            hits_ok += results[i].status == LLM_OK;
        } else {
            R->ready[R->rtail++] = (long)i;
        }
    }
    c->usage.cache_hits += (int64_t)hits;
    R->total_net = n - hits;
    return hits_ok;
}

/* A stop signal: nothing new is sent; 1 when the loop must end (nothing in
 * flight, or the grace is over). */
static int run_stop_check(Run *R) {
    LlmClient *c = R->c;
    if (!util_stop_signal()) return 0;
    double now = util_now();
    if (R->stop_at < 0) {
        R->stop_at = now;
        if (R->active > 0 && c->ep.stop_grace > 0 && util_rank() == 0)
            log_info("%s: stop signal: letting %zu requests in flight finish (up to %.0f s)", c->name, R->active,
                     c->ep.stop_grace);
    }
    return R->active == 0 || now - R->stop_at >= c->ep.stop_grace;
}

/* Due retries back to the ready queue (it has room: each index is in one
 * place); after insufficient_quota or an unreachable endpoint, everything
 * waiting is finished instead. */
static void run_requeue(Run *R) {
    if (R->stop_at >= 0) return;
    double now = util_now();
    int end_all = R->gave_up || R->quota;
    LlmStatus why = R->gave_up ? LLM_E_CONNECT : LLM_E_QUOTA;
    const char *msg = R->gave_up ? R->gave_up_msg : R->quota_msg;
    for (size_t k = 0; k < R->nretry;) {
        if (R->retry[k].due <= now || end_all) {
            if (end_all) {
                finish(R, R->retry[k].idx, why, msg);
            } else {
                if (R->rhead > 0 && R->rtail == R->n) { /* compact the FIFO */
                    memmove(R->ready, R->ready + R->rhead, sizeof(long) * (R->rtail - R->rhead));
                    R->rtail -= R->rhead;
                    R->rhead = 0;
                }
                R->ready[R->rtail++] = R->retry[k].idx;
            }
            R->retry[k] = R->retry[--R->nretry];
        } else {
            k++;
        }
    }
    if (end_all)
        while (R->rhead < R->rtail) finish(R, R->ready[R->rhead++], why, msg);
}

/* Reserves request i's largest cost: 0 to send it, 1 to wait (it stays
 * queued), -1 when it was refused (finished). */
static int run_reserve(Run *R, long i) {
    LlmClient *c = R->c;
    double usd = max_cost_of(c, &R->reqs[i]);
    int64_t tok = max_tokens_of(&R->reqs[i]);
    Err e;
    int v = budget_reserve(c->budget, usd, tok, &e);
    if (v == BUDGET_OK) {
        R->held_usd[i] = usd;
        R->held_tok[i] = tok;
        return 0;
    }
    if (v == BUDGET_WAIT) return 1;
    char m[512];
    if (v < 0) {
        msgf(m, sizeof m, "%s request %ld: not sent: the budget cannot be checked: %.300s", c->name, i, e.msg);
    } else {
        double spent, lim;
        int64_t spent_t, lim_t;
        budget_state(c->budget, &spent, &spent_t, &lim, &lim_t);
        msgf(m, sizeof m,
                 "%s request %ld: not sent: it could cost up to $%.4f / %lld tokens, and $%.4f / %lld tokens of "
                 "the budget (llm.budget_usd %g, llm.budget_tokens %lld) are spent",
                 c->name, i, usd, (long long)tok, spent, (long long)spent_t, lim, (long long)lim_t);
    }
    c->usage.errors[LLM_E_BUDGET]++;
    finish(R, i, LLM_E_BUDGET, m);
    return -1;
}

/* Launches as many requests as concurrency, rate limits and the budget
 * allow; returns how long to wait at most before looking again. */
static double run_launch(Run *R) {
    LlmClient *c = R->c;
    double now = util_now(), wait = 0.1;
    if (c->ep.rate_tpm > 0) {
        R->tpm_budget += (now - R->tpm_stamp) * c->ep.rate_tpm / 60.0;
        if (R->tpm_budget > c->ep.rate_tpm) R->tpm_budget = c->ep.rate_tpm;
        R->tpm_stamp = now;
    }
    while (R->stop_at < 0 && !util_stop_signal() && !R->quota && R->active < (size_t)c->ep.concurrency &&
           R->rhead < R->rtail) {
        if (c->ep.rate_rps > 0 && R->next_rps > now) {
            if (R->next_rps - now < wait) wait = R->next_rps - now;
            break;
        }
        long i = R->ready[R->rhead];
        double need = 0;
        if (c->ep.rate_tpm > 0) {
            need = est_tokens(&R->reqs[i]);
            if (need > c->ep.rate_tpm) need = c->ep.rate_tpm;
            if (R->tpm_budget < need) {
                double t = (need - R->tpm_budget) * 60.0 / c->ep.rate_tpm;
                if (t < wait) wait = t;
                break;
            }
        }
        if (c->budget) {
            int v = run_reserve(R, i);
            if (v < 0) {
                R->rhead++;
                continue;
            }
            if (v > 0) {
                if (wait > 0.2) wait = 0.2;
                break;
            }
        }
        R->tpm_budget -= need;
        if (c->ep.rate_rps > 0) R->next_rps = (R->next_rps > now ? R->next_rps : now) + 1.0 / c->ep.rate_rps;
        Slot *s = NULL;
        for (int k = 0; k < c->ep.concurrency && !s; k++)
            if (c->slots[k].idx < 0) s = &c->slots[k];
        CHECK(s, "no idle slot with %zu active", R->active);
        R->rhead++;
        launch(R, s, i);
    }
    for (size_t k = 0; k < R->nretry && R->stop_at < 0; k++)
        if (R->retry[k].due - now < wait) wait = R->retry[k].due - now;
    return wait < 0 ? 0 : wait;
}

/* Drives the transfers; returns how many ended, or -1 when the multi
 * handle failed (R->broken). */
static int run_transfer(Run *R) {
    LlmClient *c = R->c;
    int running = 0, done = 0;
    CURLMcode mc = curl_multi_perform(c->multi, &running);
    if (mc != CURLM_OK) {
        R->broken = 1;
        msgf(R->broken_msg, sizeof R->broken_msg, "%s: curl_multi_perform failed: %s", c->name,
                 curl_multi_strerror(mc));
        return -1;
    }
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        Slot *s = NULL;
        CURLcode gi = curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        CHECK(gi == CURLE_OK && s, "curl_easy_getinfo(CURLINFO_PRIVATE) failed");
        complete(R, s, m->data.result);
        done++;
    }
    return done;
}

/* Sleeps until a transfer needs attention or wait seconds passed; -1 when
 * the multi handle failed. */
static int run_wait(Run *R, double wait) {
    LlmClient *c = R->c;
    if (R->active > 0 || wait > 0) {
        int numfds = 0;
        CURLMcode mc = curl_multi_poll(c->multi, NULL, 0, (int)(wait * 1000) + 1, &numfds);
        if (mc != CURLM_OK) {
            R->broken = 1;
            msgf(R->broken_msg, sizeof R->broken_msg, "%s: curl_multi_poll failed: %s", c->name,
                     curl_multi_strerror(mc));
            return -1;
        }
    }
    progress_line(R, 0);
    return 0;
}

/* After a stop (or a broken multi handle): abandons what is in flight,
 * waiting or queued; then the totals. */
static void run_end(Run *R, double t_start) {
    LlmClient *c = R->c;
    LlmStatus why = R->broken ? LLM_E_TRANSPORT : LLM_E_STOPPED;
    for (int k = 0; k < c->ep.concurrency; k++) {
        Slot *s = &c->slots[k];
        if (s->idx < 0) continue;
        CURLMcode mc = curl_multi_remove_handle(c->multi, s->easy);
        if (mc != CURLM_OK) log_warn("%s: curl_multi_remove_handle: %s", c->name, curl_multi_strerror(mc));
        settle(R, s->idx, 0, -1);
        finish(R, s->idx, why, R->broken ? R->broken_msg : "stopped by a signal while in flight");
        s->idx = -1;
        R->active--;
    }
    while (R->rhead < R->rtail)
        finish(R, R->ready[R->rhead++], why, R->broken ? R->broken_msg : "stopped before it was sent");
    for (size_t k = 0; k < R->nretry; k++)
        finish(R, R->retry[k].idx, why, R->broken ? R->broken_msg : "stopped while waiting to retry");
    R->nretry = 0;
    if (c->cache) {
        Err e;
        if (cache_sync(c->cache, &e) != 0) log_warn("%s", e.msg);
    }
    progress_line(R, 1);
    c->usage.seconds += util_now() - t_start;
    free(R->ready);
    free(R->retry);
    free(R->tries);
    free(R->held_usd);
    free(R->held_tok);
}

size_t llm_run(LlmClient *c, const ChatRequest *reqs, size_t n, LlmResult *results, const char *progress) {
    Run R;
    double t_start = util_now();
    size_t hits = run_begin(&R, c, reqs, n, results, progress);
    while (R.finished < R.total_net) {
        if (run_stop_check(&R)) break;
        run_requeue(&R);
        double wait = run_launch(&R);
        int done = run_transfer(&R);
        if (done < 0 || R.finished >= R.total_net) break;
        /* slots just freed and work waiting: launch before sleeping */
        if (done && R.rhead < R.rtail && R.stop_at < 0) continue;
        if (run_wait(&R, wait) < 0) break;
    }
    run_end(&R, t_start);
    return R.ok + hits;
}

void llm_endpoint_init(LlmEndpoint *ep, const EndpointConfig *ec, const char *name, const char *url,
                       double stop_grace) {
    *ep = (LlmEndpoint){.name = name,
                        .base_url = url,
                        .api_key_env = ec->api_key_env,
                        .ca_bundle = ec->ca_bundle,
                        .concurrency = ec->concurrency,
                        .rate_rps = ec->rate_rps,
                        .rate_tpm = ec->rate_tpm,
                        .connect_timeout = ec->connect_timeout,
                        .timeout = ec->timeout,
                        .retries = ec->retries,
                        .backoff = ec->backoff,
                        .backoff_max = ec->backoff_max,
                        .stop_grace = stop_grace,
                        .ec = ec,
                        .price_in = ec->price_in,
                        .price_out = ec->price_out};
}

/* ---- plain HTTP (the Batch API) ----------------------------------------------- */

#define HTTP_MIN_TIMEOUT 600.0 /* s: files of up to 200 MB go up and down */

static int http_setup(LlmClient *c, CURL *h, const char *url, struct curl_slist *hd, ByteBuf *buf, Err *e) {
    double total = c->ep.timeout > HTTP_MIN_TIMEOUT ? c->ep.timeout : HTTP_MIN_TIMEOUT;
    SETOPT(h, CURLOPT_URL, url);
    SETOPT(h, CURLOPT_HTTPHEADER, hd);
    SETOPT(h, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(h, CURLOPT_WRITEDATA, buf);
    SETOPT(h, CURLOPT_NOSIGNAL, 1L);
    SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->ep.connect_timeout * 1000));
    SETOPT(h, CURLOPT_TIMEOUT_MS, (long)(total * 1000));
    SETOPT(h, CURLOPT_USERAGENT, "hdistill/0.1");
    if (c->ca_bundle[0]) SETOPT(h, CURLOPT_CAINFO, c->ca_bundle);
    return 0;
}

static int http_perform(LlmClient *c, CURL *h, const char *url, ByteBuf *buf, LlmHttp *out, Err *e) {
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) return err_set(e, "%s: %s (%s)", c->name, curl_easy_strerror(rc), url);
    long status = 0;
    rc = curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK) return err_set(e, "%s: curl_easy_getinfo: %s", c->name, curl_easy_strerror(rc));
    out->status = status;
    bytebuf_putc(buf, 0);
    out->body = buf->a;
    out->len = buf->n - 1;
    memset(buf, 0, sizeof *buf);
    return 0;
}

static int http_headers(LlmClient *c, int json, struct curl_slist **hd, Err *e) {
    *hd = NULL;
    if (json && add_header(hd, "Content-Type: application/json", e)) return -1;
    if (add_header(hd, "Expect:", e)) return -1;
    if (c->auth && add_header(hd, c->auth, e)) return -1;
    return 0;
}

int llm_http(LlmClient *c, const char *method, const char *path, const char *json, LlmHttp *out, Err *e) {
    memset(out, 0, sizeof *out);
    CURL *h = curl_easy_init();
    if (!h) return err_set(e, "curl_easy_init failed");
    char *url = xasprintf("%s%s", c->base, path);
    struct curl_slist *hd = NULL;
    ByteBuf buf = {0};
    int rc = http_headers(c, json != NULL, &hd, e);
    if (rc == 0) rc = http_setup(c, h, url, hd, &buf, e);
    if (rc == 0 && !strcmp(method, "POST")) {
        CURLcode x = curl_easy_setopt(h, CURLOPT_POSTFIELDS, json ? json : "");
        if (x == CURLE_OK) x = curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(json ? strlen(json) : 0));
        if (x != CURLE_OK) rc = err_set(e, "curl_easy_setopt(POSTFIELDS): %s", curl_easy_strerror(x));
    } else if (rc == 0 && strcmp(method, "GET")) {
        rc = err_set(e, "llm_http: method %s not supported", method);
    }
    if (rc == 0) rc = http_perform(c, h, url, &buf, out, e);
    curl_easy_cleanup(h);
    curl_slist_free_all(hd);
    bytebuf_free(&buf);
    free(url);
    return rc;
}

static int mime_part(curl_mime *m, const char *name, const char *filename, const char *data, size_t len, Err *e) {
    curl_mimepart *p = curl_mime_addpart(m);
    if (!p) return err_set(e, "curl_mime_addpart failed");
    CURLcode x = curl_mime_name(p, name);
    if (x == CURLE_OK && filename) x = curl_mime_filename(p, filename);
    if (x == CURLE_OK && filename) x = curl_mime_type(p, "application/jsonl");
    if (x == CURLE_OK) x = curl_mime_data(p, data, len);
    if (x != CURLE_OK) return err_set(e, "curl_mime (%s): %s", name, curl_easy_strerror(x));
    return 0;
}

int llm_http_upload(LlmClient *c, const char *path, const char *purpose, const char *filename, const char *data,
                    size_t len, LlmHttp *out, Err *e) {
    memset(out, 0, sizeof *out);
    CURL *h = curl_easy_init();
    if (!h) return err_set(e, "curl_easy_init failed");
    char *url = xasprintf("%s%s", c->base, path);
    struct curl_slist *hd = NULL;
    ByteBuf buf = {0};
    curl_mime *m = curl_mime_init(h);
    int rc = m ? http_headers(c, 0, &hd, e) : err_set(e, "curl_mime_init failed");
    if (rc == 0) rc = http_setup(c, h, url, hd, &buf, e);
    if (rc == 0) rc = mime_part(m, "purpose", NULL, purpose, strlen(purpose), e);
    if (rc == 0) rc = mime_part(m, "file", filename, data, len, e);
    if (rc == 0) {
        CURLcode x = curl_easy_setopt(h, CURLOPT_MIMEPOST, m);
        if (x != CURLE_OK) rc = err_set(e, "curl_easy_setopt(MIMEPOST): %s", curl_easy_strerror(x));
    }
    if (rc == 0) rc = http_perform(c, h, url, &buf, out, e);
    curl_easy_cleanup(h);
    curl_mime_free(m);
    curl_slist_free_all(hd);
    bytebuf_free(&buf);
    free(url);
    return rc;
}

void llm_http_free(LlmHttp *h) {
    if (!h) return;
    free(h->body);
    memset(h, 0, sizeof *h);
}

void llm_http_error(const LlmHttp *h, char *buf, size_t n) {
    ChatError er;
    char d[480];
    if (chat_error_parse(h->body, h->len, &er)) {
        chat_error_format(&er, d, sizeof d);
    } else {
        ByteBuf b = {.a = h->body, .n = h->len};
        excerpt_of(&b, d, sizeof d);
    }
    msgf(buf, n, "HTTP %ld: %s", h->status, d);
}

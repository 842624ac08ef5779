/* llm -- curl-multi chat-completions client; see include/llm/llm.h. */
#include "llm/llm.h"

#include <curl/curl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const char *STATUS_NAMES[LLM_N_STATUS] = {
    "ok", "http_4xx", "http_5xx", "rate_limited", "timeout", "connect",
    "transport", "malformed", "schema", "empty", "stopped"};

const char *llm_status_name(LlmStatus s) {
    return (s >= 0 && s < LLM_N_STATUS) ? STATUS_NAMES[s] : "unknown";
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
    double retry_after;
    char *post;
    double started;
} Slot;

struct LlmClient {
    char *name, *url, *ca_bundle;
    char *auth; /* "Authorization: Bearer ..." (memory only) */
    LlmEndpoint ep;
    LlmCache *cache;
    CURLM *multi;
    Slot *slots;
    struct curl_slist *headers;
    LlmUsage usage;
    Rng rng; /* backoff jitter */
};

static int g_curl_inited = 0;

LlmClient *llm_client_create(const LlmEndpoint *ep, LlmCache *cache, Err *e) {
    if (!ep->base_url || !*ep->base_url) {
        err_set(e, "%s.base_url is empty (hint: an OpenAI-compatible URL ending in /v1, or \"standin\")",
                ep->name);
        return NULL;
    }
    if (strncmp(ep->base_url, "http://", 7) && strncmp(ep->base_url, "https://", 8)) {
        err_set(e, "%s.base_url '%s' must start with http:// or https://", ep->name, ep->base_url);
        return NULL;
    }
    if (ep->concurrency < 1) {
        err_set(e, "%s.concurrency must be >= 1", ep->name);
        return NULL;
    }
    const char *key = NULL;
    if (ep->api_key_env && *ep->api_key_env) {
        key = getenv(ep->api_key_env);
        if (!key || !*key) {
            err_set(e, "%s.api_key_env names %s, which is not set in the environment (hint: export %s=...)",
                    ep->name, ep->api_key_env, ep->api_key_env);
            return NULL;
        }
    }
    if (!g_curl_inited) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            err_set(e, "curl_global_init failed");
            return NULL;
        }
        g_curl_inited = 1;
    }
    LlmClient *c = xcalloc(1, sizeof *c);
    c->ep = *ep;
    c->name = xstrdup(ep->name ? ep->name : "llm");
    c->ep.name = c->name;
    size_t bl = strlen(ep->base_url);
    while (bl > 0 && ep->base_url[bl - 1] == '/') bl--;
    c->url = xasprintf("%.*s/chat/completions", (int)bl, ep->base_url);
    c->ca_bundle = xstrdup(ep->ca_bundle ? ep->ca_bundle : "");
    c->cache = cache;
    c->headers = curl_slist_append(NULL, "Content-Type: application/json");
    c->headers = curl_slist_append(c->headers, "Expect:");
    if (key) {
        c->auth = xasprintf("Authorization: Bearer %s", key);
        c->headers = curl_slist_append(c->headers, c->auth);
    }
    CHECK(c->headers, "curl_slist_append");
    c->multi = curl_multi_init();
    CHECK(c->multi, "curl_multi_init");
    curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)ep->concurrency);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)ep->concurrency);
    c->slots = xcalloc((size_t)ep->concurrency, sizeof(Slot));
    for (int i = 0; i < ep->concurrency; i++) c->slots[i].idx = -1;
    rng_seed(&c->rng, (uint64_t)getpid() ^ (uint64_t)(util_wall() * 1e6));
    return c;
}

void llm_client_destroy(LlmClient *c) {
    if (!c) return;
    for (int i = 0; i < c->ep.concurrency; i++) {
        Slot *s = &c->slots[i];
        if (s->easy) {
            if (s->idx >= 0) curl_multi_remove_handle(c->multi, s->easy);
            curl_easy_cleanup(s->easy);
        }
        bytebuf_free(&s->body);
        free(s->post);
    }
    free(c->slots);
    curl_multi_cleanup(c->multi);
    curl_slist_free_all(c->headers);
    if (c->auth) {
        memset(c->auth, 0, strlen(c->auth)); /* do not leave the key in freed memory */
        free(c->auth);
    }
    free(c->url);
    free(c->ca_bundle);
    free(c->name);
    free(c);
}

const LlmUsage *llm_usage(const LlmClient *c) { return &c->usage; }

void llm_usage_format(const LlmUsage *u, char *buf, size_t n) {
    int k = snprintf(buf, n,
                     "requests %lld (cache %lld), sent %lld, retries %lld, ok %lld, failed %lld, "
                     "stopped %lld, tokens %lld prompt + %lld completion, %.1f s",
                     (long long)u->requests, (long long)u->cache_hits, (long long)u->sent,
                     (long long)u->retries, (long long)u->ok, (long long)u->failed, (long long)u->stopped,
                     (long long)u->prompt_tokens, (long long)u->completion_tokens, u->seconds);
    int first = 1;
    for (int s = 1; s < LLM_N_STATUS && k > 0 && (size_t)k < n; s++)
        if (u->errors[s]) {
            k += snprintf(buf + k, n - (size_t)k, "%s%s %lld", first ? "; errors: " : ", ",
                          llm_status_name((LlmStatus)s), (long long)u->errors[s]);
            first = 0;
        }
}

/* ---- curl callbacks --------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud) {
    Slot *s = ud;
    bytebuf_put(&s->body, p, size * nmemb);
    return size * nmemb;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud) {
    Slot *s = ud;
    size_t n = size * nmemb;
    if (n > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
        char tmp[64];
        size_t k = n - 12 < sizeof tmp - 1 ? n - 12 : sizeof tmp - 1;
        memcpy(tmp, p + 12, k);
        tmp[k] = 0;
        char *end;
        double v = strtod(tmp, &end);
        if (end != tmp && v >= 0) s->retry_after = v; /* HTTP-date form is ignored */
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
    double next_rps, tpm_budget, tpm_stamp;
    size_t finished, ok, total_net, stopped;
    int64_t connect_fail_streak;
    int gave_up;
    char gave_up_msg[256];
    const char *progress;
    double t0, last_progress;
    int tty;
} Run;

static double est_tokens(const ChatRequest *r) {
    size_t chars = 0;
    for (int i = 0; i < r->n_messages; i++) chars += strlen(r->messages[i].content);
    return (double)chars / 4.0 + (r->max_tokens > 0 ? r->max_tokens : 256);
}

static void finish(Run *R, long i, LlmStatus st, const char *msg) {
    LlmResult *r = &R->res[i];
    r->status = st;
    if (msg) snprintf(r->error, sizeof r->error, "%s", msg);
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
    snprintf(r->error, sizeof r->error, "%s", msg);
    if (R->tries[i] > c->ep.retries || R->gave_up) {
        finish(R, i, R->gave_up ? LLM_E_CONNECT : kind, R->gave_up ? R->gave_up_msg : msg);
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

/* Launches request i on idle slot s. */
static void launch(Run *R, Slot *s, long i) {
    LlmClient *c = R->c;
    if (!s->easy) {
        s->easy = curl_easy_init();
        CHECK(s->easy, "curl_easy_init");
        curl_easy_setopt(s->easy, CURLOPT_URL, c->url);
        curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, c->headers);
        curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
        curl_easy_setopt(s->easy, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(s->easy, CURLOPT_HEADERDATA, s);
        curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->ep.connect_timeout * 1000));
        curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, (long)(c->ep.timeout * 1000));
        curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
        curl_easy_setopt(s->easy, CURLOPT_USERAGENT, "hdistill/0.1");
        if (c->ca_bundle[0]) curl_easy_setopt(s->easy, CURLOPT_CAINFO, c->ca_bundle);
    }
    free(s->post);
    s->post = chat_request_body(&R->reqs[i]);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->post);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(s->post));
    s->body.n = 0;
    s->retry_after = -1;
    s->idx = i;
    s->started = util_now();
    R->tries[i]++;
    R->res[i].attempts++;
    c->usage.sent++;
    CURLMcode mc = curl_multi_add_handle(c->multi, s->easy);
    CHECK(mc == CURLM_OK, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
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

static void complete(Run *R, Slot *s, CURLcode rc) {
    LlmClient *c = R->c;
    long i = s->idx;
    long http = 0;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &http);
    curl_multi_remove_handle(c->multi, s->easy);
    s->idx = -1;
    LlmResult *r = &R->res[i];
    r->http_status = (int)http;
    char msg[256];
    if (rc != CURLE_OK) {
        LlmStatus k = curl_kind(rc);
        snprintf(msg, sizeof msg, "%s request %ld: %s (%s)", c->name, i, curl_easy_strerror(rc), c->url);
        if (k == LLM_E_CONNECT && R->ok == 0) {
            if (++R->connect_fail_streak >= 10 && R->connect_fail_streak >= 3 * c->ep.concurrency) {
                R->gave_up = 1;
                snprintf(R->gave_up_msg, sizeof R->gave_up_msg,
                         "%s endpoint %s unreachable: %s (hint: check %s.base_url and that the server runs)",
                         c->name, c->url, curl_easy_strerror(rc), c->name);
            }
        }
        schedule_retry(R, i, k, -1, msg);
        return;
    }
    R->connect_fail_streak = 0;
    if (http == 200) {
        Err e;
        ChatResponse resp;
        if (chat_response_parse(s->body.a ? s->body.a : "", s->body.n, &resp, &e) != 0) {
            LlmStatus k = strstr(e.msg, "malformed") ? LLM_E_MALFORMED : LLM_E_SCHEMA;
            snprintf(msg, sizeof msg, "%s request %ld: %.200s", c->name, i, e.msg);
            schedule_retry(R, i, k, -1, msg);
            return;
        }
        if (!resp.content[0]) {
            chat_response_free(&resp);
            snprintf(msg, sizeof msg, "%s request %ld: empty content", c->name, i);
            schedule_retry(R, i, LLM_E_EMPTY, -1, msg);
            return;
        }
        if (resp.prompt_tokens > 0) c->usage.prompt_tokens += resp.prompt_tokens;
        if (resp.completion_tokens > 0) c->usage.completion_tokens += resp.completion_tokens;
        if (c->ep.rate_tpm > 0 && resp.prompt_tokens >= 0 && resp.completion_tokens >= 0)
            R->tpm_budget += est_tokens(&R->reqs[i]) - (double)(resp.prompt_tokens + resp.completion_tokens);
        r->resp = resp;
        r->body = xstrndup(s->body.a, s->body.n);
        if (c->cache) {
            char key[65];
            chat_request_key(&R->reqs[i], key);
            Err e2;
            if (cache_put(c->cache, key, s->body.a, s->body.n, &e2) != 0)
                DIE("%s (the answer of %s request %ld could not be saved)", e2.msg, c->name, i);
        }
        finish(R, i, LLM_OK, NULL);
        return;
    }
    /* an error status: keep a short excerpt of the body for the message */
    char excerpt[120] = "";
    if (s->body.n) {
        size_t k = s->body.n < sizeof excerpt - 1 ? s->body.n : sizeof excerpt - 1;
        memcpy(excerpt, s->body.a, k);
        excerpt[k] = 0;
        for (char *p = excerpt; *p; p++)
            if (*p == '\n' || *p == '\r') *p = ' ';
    }
    snprintf(msg, sizeof msg, "%s request %ld: HTTP %ld %s", c->name, i, http, excerpt);
    if (http == 429) schedule_retry(R, i, LLM_E_RATE, s->retry_after, msg);
    else if (http >= 500 || http == 408 || http == 409) schedule_retry(R, i, LLM_E_HTTP5XX, s->retry_after, msg);
    else {
        c->usage.errors[LLM_E_HTTP4XX]++;
        finish(R, i, LLM_E_HTTP4XX, msg);
    }
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
        snprintf(line, sizeof line, "[%s] stopped by a signal: %zu/%zu answered (%zu from cache), %zu not answered | "
                 "retries %lld | failed %lld", R->progress, R->ok + (size_t)(R->n - R->total_net), R->n,
                 R->n - R->total_net, R->stopped, (long long)u->retries, (long long)(R->finished - R->ok - R->stopped));
    else
        snprintf(line, sizeof line, "[%s] %zu/%zu done (%zu from cache) | %.1f req/s | retries %lld | failed %lld | ETA %.0f s",
                 R->progress, R->finished + (size_t)(R->n - R->total_net), R->n, R->n - R->total_net, rate,
                 (long long)u->retries, (long long)u->failed, eta);
    if (R->tty) {
        fprintf(stdout, "\r%-110s%s", line, final ? "\n" : "");
    } else {
        fprintf(stdout, "%s\n", line);
    }
    fflush(stdout);
}

size_t llm_run(LlmClient *c, const ChatRequest *reqs, size_t n, LlmResult *results, const char *progress) {
    Run R;
    memset(&R, 0, sizeof R);
    R.c = c;
    R.reqs = reqs;
    R.res = results;
    R.n = n;
    R.progress = progress;
    R.t0 = R.last_progress = util_now();
    /* an updating line only on a real terminal: mpirun hands its ranks a pseudo-terminal even when its own
     * output goes to a file (a Slurm log), so under an MPI launcher or in a Slurm job print plain lines */
    R.tty = isatty(STDOUT_FILENO) && !getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMIX_RANK") &&
            !getenv("PMI_RANK") && !getenv("SLURM_JOB_ID");
    R.ready = xmalloc(sizeof(long) * (n ? n : 1));
    R.tries = xcalloc(n ? n : 1, sizeof(int));
    R.tpm_budget = c->ep.rate_tpm;
    R.tpm_stamp = R.t0;
    double t_start = util_now();
    c->usage.requests += (int64_t)n;
    size_t hits = 0;
    for (size_t i = 0; i < n; i++) {
        memset(&results[i], 0, sizeof results[i]);
        const char *body = NULL;
        size_t len = 0;
        if (c->cache) {
            char key[65];
            chat_request_key(&reqs[i], key);
            body = cache_get(c->cache, key, &len);
        }
        Err e;
        if (body && chat_response_parse(body, len, &results[i].resp, &e) == 0) {
            results[i].status = LLM_OK;
            results[i].from_cache = 1;
            results[i].http_status = 200;
            results[i].body = xstrndup(body, len);
            hits++;
        } else {
            R.ready[R.rtail++] = (long)i;
        }
    }
    c->usage.cache_hits += (int64_t)hits;
    R.total_net = n - hits;
    size_t active = 0;
    double stop_at = -1; /* when a stop signal was first seen */
    while (R.finished < R.total_net) {
        double now = util_now();
        if (util_stop_signal()) {
            /* send nothing new; let what is in flight (already paid for) finish for a while */
            if (stop_at < 0) {
                stop_at = now;
                if (active > 0 && c->ep.stop_grace > 0 && util_rank() == 0)
                    log_info("%s: stop signal: letting %zu requests in flight finish (up to %.0f s)", c->name,
                             active, c->ep.stop_grace);
            }
            if (active == 0 || now - stop_at >= c->ep.stop_grace) break;
        }
        int draining = stop_at >= 0;
        /* due retries back to the ready queue (the queue has room: each index is in one place) */
        for (size_t k = 0; k < R.nretry && !draining;) {
            if (R.retry[k].due <= now || R.gave_up) {
                if (R.gave_up) {
                    finish(&R, R.retry[k].idx, LLM_E_CONNECT, R.gave_up_msg);
                } else {
                    if (R.rhead > 0 && R.rtail == n) { /* compact the FIFO */
                        memmove(R.ready, R.ready + R.rhead, sizeof(long) * (R.rtail - R.rhead));
                        R.rtail -= R.rhead;
                        R.rhead = 0;
                    }
                    R.ready[R.rtail++] = R.retry[k].idx;
                }
                R.retry[k] = R.retry[--R.nretry];
            } else {
                k++;
            }
        }
        if (R.gave_up)
            while (R.rhead < R.rtail) finish(&R, R.ready[R.rhead++], LLM_E_CONNECT, R.gave_up_msg);
        /* launch as many as concurrency and rate limits allow */
        double wait = 0.1;
        if (c->ep.rate_tpm > 0) {
            R.tpm_budget += (now - R.tpm_stamp) * c->ep.rate_tpm / 60.0;
            if (R.tpm_budget > c->ep.rate_tpm) R.tpm_budget = c->ep.rate_tpm;
            R.tpm_stamp = now;
        }
        while (!draining && !util_stop_signal() && active < (size_t)c->ep.concurrency && R.rhead < R.rtail) {
            if (c->ep.rate_rps > 0 && R.next_rps > now) {
                if (R.next_rps - now < wait) wait = R.next_rps - now;
                break;
            }
            long i = R.ready[R.rhead];
            if (c->ep.rate_tpm > 0) {
                double need = est_tokens(&reqs[i]);
                if (need > c->ep.rate_tpm) need = c->ep.rate_tpm;
                if (R.tpm_budget < need) {
                    double t = (need - R.tpm_budget) * 60.0 / c->ep.rate_tpm;
                    if (t < wait) wait = t;
                    break;
                }
                R.tpm_budget -= need;
            }
            if (c->ep.rate_rps > 0) R.next_rps = (R.next_rps > now ? R.next_rps : now) + 1.0 / c->ep.rate_rps;
            Slot *s = NULL;
            for (int k = 0; k < c->ep.concurrency; k++)
                if (c->slots[k].idx < 0) {
                    s = &c->slots[k];
                    break;
                }
            CHECK(s, "no idle slot with %zu active", active);
            R.rhead++;
            launch(&R, s, i);
            active++;
        }
        for (size_t k = 0; k < R.nretry && !draining; k++)
            if (R.retry[k].due - now < wait) wait = R.retry[k].due - now;
        if (wait < 0) wait = 0;
        int running = 0;
        curl_multi_perform(c->multi, &running);
        CURLMsg *m;
        int left, done_now = 0;
        while ((m = curl_multi_info_read(c->multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            Slot *s = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            CURLcode rc = m->data.result;
            complete(&R, s, rc);
            active--;
            done_now++;
        }
        if (R.finished >= R.total_net) break;
        /* slots just freed and work waiting: launch before sleeping */
        if (done_now && R.rhead < R.rtail && !draining) continue;
        int numfds = 0;
        if (active > 0 || wait > 0)
            curl_multi_poll(c->multi, NULL, 0, active > 0 ? (int)(wait * 1000) + 1 : (int)(wait * 1000) + 1, &numfds);
        progress_line(&R, 0);
    }
    /* stop signal: abandon what is still in flight (after the grace) or waiting */
    for (int k = 0; k < c->ep.concurrency; k++) {
        Slot *s = &c->slots[k];
        if (s->idx >= 0) {
            curl_multi_remove_handle(c->multi, s->easy);
            finish(&R, s->idx, LLM_E_STOPPED, "stopped by a signal while in flight");
            s->idx = -1;
        }
    }
    while (R.rhead < R.rtail) finish(&R, R.ready[R.rhead++], LLM_E_STOPPED, "stopped before it was sent");
    for (size_t k = 0; k < R.nretry; k++) finish(&R, R.retry[k].idx, LLM_E_STOPPED, "stopped while waiting to retry");
    if (c->cache) {
        Err e;
        if (cache_sync(c->cache, &e) != 0) log_warn("%s", e.msg);
    }
    progress_line(&R, 1);
    c->usage.seconds += util_now() - t_start;
    free(R.ready);
    free(R.retry);
    free(R.tries);
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
                        .stop_grace = stop_grace};
}

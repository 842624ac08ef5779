/* session -- an LLM role of a stage; see include/stages/session.h. */
#include "stages/session.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

char *session_cache_path(const Config *cfg, SessionScope scope) {
    if (cfg->llm.cache[0]) return xstrdup(cfg->llm.cache);
    return scope == SESSION_DATA ? xasprintf("%s.llm-cache", cfg->data.path) : xasprintf("%s/llm-cache", cfg->run.dir);
}

LlmCache *session_cache_open(const Config *cfg, SessionScope scope, Err *e) {
    char *p = session_cache_path(cfg, scope);
    LlmCache *c = cache_open(p, cfg->llm.sync_seconds, e);
    free(p);
    return c;
}

static Server *start_standin(const Config *cfg, const char *name, Err *e) {
    ServeOptions o;
    serve_options_init(&o);
    o.seed = (uint64_t)cfg->standin.seed;
    o.refusal_rate = cfg->standin.refusal_rate;
    o.position_bias = cfg->standin.position_bias;
    o.length_bias = cfg->standin.length_bias;
    o.latency_ms = cfg->standin.latency_ms;
    o.quiet = 1;
    Server *s = serve_start(&o, e);
    if (!s) err_prefix(e, "%s: cannot start the stand-in endpoint: ", name);
    return s;
}

/* ---- the spend limit: one per process, shared by the sessions open at once ---- */

static LlmBudget *g_budget;
static int g_budget_users;

/* The run's budget (opened by its first user), or *out NULL when no limit is set. */
static int budget_acquire(const Config *cfg, LlmBudget **out, Err *e) {
    *out = NULL;
    if (cfg->llm.budget_usd <= 0 && cfg->llm.budget_tokens <= 0) return budget_open_config(cfg, out, e);
    if (!g_budget) {
        char *file = cfg->llm.budget_file[0] ? xstrdup(cfg->llm.budget_file) : xasprintf("%s/llm-budget", cfg->run.dir);
        char *dir = xstrdup(file), *slash = strrchr(dir, '/');
        int rc = 0;
        if (slash && slash != dir) *slash = 0, rc = util_mkdir_p(dir, e);
        if (rc == 0) g_budget = budget_open(cfg->llm.budget_usd, cfg->llm.budget_tokens, file, e);
        free(dir), free(file);
        if (!g_budget) return err_prefix(e, "llm.budget_file: ");
    }
    g_budget_users++;
    *out = g_budget;
    return 0;
}

static void budget_release(LlmBudget *b) {
    if (!b || b != g_budget) return;
    if (--g_budget_users == 0) {
        budget_close(g_budget);
        g_budget = NULL;
    }
}

static int open_session(LlmSession *s, const Config *cfg, const EndpointConfig *ec, const char *name, LlmCache *cache,
                        int budgeted, Err *e) {
    memset(s, 0, sizeof *s);
    s->ec = ec;
    if (!strcmp(ec->base_url, "standin")) {
        s->standin = start_standin(cfg, name, e);
        if (!s->standin) return -1;
        s->url = xasprintf("http://127.0.0.1:%d/v1", serve_port(s->standin));
        log_info("%s: built-in stand-in endpoint at %s (a deterministic test world, not a language model)", name,
                 s->url);
    } else {
        s->url = xstrdup(ec->base_url);
    }
    s->name = xstrdup(name);
    llm_endpoint_init(&s->ep, ec, s->name, s->url, cfg->llm.stop_grace);
    s->client = llm_client_create(&s->ep, cache, e);
    LlmBudget *b = NULL;
    int rc = s->client ? 0 : -1;
    if (rc == 0 && budgeted) rc = budget_acquire(cfg, &b, e);
    if (rc == 0 && b && llm_client_set_budget(s->client, b, e) != 0) {
        budget_release(b);
        rc = -1;
    }
    if (rc != 0) session_close(s);
    return rc;
}

int session_open(LlmSession *s, const Config *cfg, const EndpointConfig *ec, const char *name, LlmCache *cache,
                 Err *e) {
    return open_session(s, cfg, ec, name, cache, 1, e);
}

int session_open_plan(LlmSession *s, const Config *cfg, const EndpointConfig *ec, const char *name, LlmCache *cache,
                      Err *e) {
    return open_session(s, cfg, ec, name, cache, 0, e);
}

void session_close(LlmSession *s) {
    if (!s) return;
    if (s->client) budget_release(llm_client_budget(s->client));
    llm_client_destroy(s->client);
    if (s->standin) serve_stop(s->standin);
    free(s->name);
    free(s->url);
    memset(s, 0, sizeof *s);
}

/* the integer fields of LlmUsage by attribute name */
#define USAGE_FIELDS(X)                                                                                          \
    X(requests) X(cache_hits) X(sent) X(retries) X(ok) X(failed) X(stopped) X(prompt_tokens) X(completion_tokens)  \
    X(reasoning_tokens)

void session_read_usage(StoreFile *f, const char *obj, LlmUsage *u) {
    memset(u, 0, sizeof *u);
    if (!store_exists(f, obj)) return;
#define R(k) store_get_attr_i64(f, obj, #k, &u->k, NULL);
    USAGE_FIELDS(R)
#undef R
    for (int s = 1; s < LLM_N_STATUS; s++) {
        char k[64];
        snprintf(k, sizeof k, "errors_%s", llm_status_name((LlmStatus)s));
        store_get_attr_i64(f, obj, k, &u->errors[s], NULL);
    }
    store_get_attr_f64(f, obj, "seconds", &u->seconds, NULL);
    store_get_attr_f64(f, obj, "cost_usd", &u->cost_usd, NULL);
}

int session_add_usage(const LlmUsage *u, StoreFile *f, const char *obj, const char *desc, Err *e) {
    if (!store_exists(f, obj) && store_write_string(f, obj, desc, "LLM usage", e)) return -1;
#define W(k)                                                                                                     \
    {                                                                                                            \
        int64_t prev = 0;                                                                                        \
        store_get_attr_i64(f, obj, #k, &prev, NULL);                                                             \
        if (store_set_attr_i64(f, obj, #k, prev + u->k, e)) return -1;                                           \
    }
    USAGE_FIELDS(W)
#undef W
    for (int s = 1; s < LLM_N_STATUS; s++) {
        char k[64];
        int64_t prev = 0;
        snprintf(k, sizeof k, "errors_%s", llm_status_name((LlmStatus)s));
        store_get_attr_i64(f, obj, k, &prev, NULL);
        if (store_set_attr_i64(f, obj, k, prev + u->errors[s], e)) return -1;
    }
    double prev = 0, prev_cost = 0;
    store_get_attr_f64(f, obj, "seconds", &prev, NULL);
    store_get_attr_f64(f, obj, "cost_usd", &prev_cost, NULL);
    return store_set_attr_f64(f, obj, "seconds", prev + u->seconds, e) ||
           store_set_attr_f64(f, obj, "cost_usd", prev_cost + u->cost_usd, e);
}

int session_record_usage(const LlmSession *s, StoreFile *f, const char *obj, const char *desc, Err *e) {
    return session_add_usage(llm_usage(s->client), f, obj, desc, e);
}

int session_check_config(const Config *cfg, Err *e) {
    return chat_endpoint_check(&cfg->teacher, "teacher", e) || chat_endpoint_check(&cfg->critic, "critic", e) ? -1 : 0;
}

void session_log_estimate(const LlmSession *s, const Config *cfg, const ChatRequest *reqs, size_t n, double times,
                          int approx) {
    LlmEstimate est;
    llm_estimate(s->client, reqs, n, &est);
    int batch = s->ec->mode == ENDPOINT_MODE_BATCH;
    if (batch && est.cost_usd > 0) est.cost_usd *= 0.5;
    if (times != 1) {
        est.requests = (size_t)((double)est.requests * times + 0.5);
        est.cached = (size_t)((double)est.cached * times + 0.5);
        est.to_send = (size_t)((double)est.to_send * times + 0.5);
        est.unbounded = (int)((double)est.unbounded * times + 0.5);
        est.prompt_tokens *= times, est.completion_tokens *= times;
        if (est.cost_usd > 0) est.cost_usd *= times;
    }
    char buf[512];
    llm_estimate_format(&est, buf, sizeof buf);
    log_info("plan: %s%s: %s%s%s", s->name, batch ? " (Batch API, half price)" : "", approx ? "about " : "", buf,
             approx ? " (token figures from the teacher's texts in place of the student's)" : "");
    if (cfg->llm.budget_usd > 0 || cfg->llm.budget_tokens > 0)
        log_info("plan: spend limit llm.budget_usd %g, llm.budget_tokens %lld (0 = none), spent so far in %s%s", 
                 cfg->llm.budget_usd, (long long)cfg->llm.budget_tokens,
                 cfg->llm.budget_file[0] ? cfg->llm.budget_file : cfg->run.dir,
                 cfg->llm.budget_file[0] ? "" : "/llm-budget");
}

/* ---- what the outcomes mean for the stage ---- */

static int final_kind(LlmStatus st) {
    return st == LLM_E_HTTP4XX || st == LLM_E_QUOTA || st == LLM_E_REASONING;
}

void session_outcome_add(LlmOutcome *o, LlmStatus st, const char *error) {
    switch (st) {
    case LLM_OK: o->ok++; return;
    case LLM_E_REFUSED: o->refused++; return;
    case LLM_E_FILTERED: o->filtered++; return;
    case LLM_E_STOPPED: o->stopped++; return;
    case LLM_E_BUDGET: o->budget++; return;
    default: break;
    }
    o->failed++;
    int fin = final_kind(st);
    o->final += fin;
    /* report the first failure of a final kind (an answered one before one "not sent" after it), else the first */
    int have = o->failed > 1, have_final = have && final_kind(o->first);
    int not_sent = error && !strncmp(error, "not sent", 8), have_not_sent = !strncmp(o->first_msg, "not sent", 8);
    if (!have || (fin && !have_final) || (fin && have_final && have_not_sent && !not_sent)) {
        o->first = st;
        snprintf(o->first_msg, sizeof o->first_msg, "%s", error && *error ? error : llm_status_name(st));
    }
}

Status session_outcome_status(const LlmOutcome *o, const LlmBudget *b, const char *what, Err *e) {
    if (o->final) {
        const char *why = o->first == LLM_E_QUOTA      ? "the account is out of quota (insufficient_quota)"
                          : o->first == LLM_E_REASONING ? "answers spent their whole token limit on reasoning"
                                                        : "the endpoint rejected requests (a 4xx is not retried)";
        err_set(e, "%s: stopped: %s; %lld requests without an answer; fix it and run again (answers so far are "
                   "cached): %s",
                what, why, (long long)o->failed, o->first_msg);
        return STATUS_FAILED;
    }
    if (o->budget) {
        double spent = 0, lim = 0;
        int64_t spent_t = 0, lim_t = 0;
        if (b) budget_state(b, &spent, &spent_t, &lim, &lim_t);
        char limits[128];
        if (lim > 0 && lim_t > 0) snprintf(limits, sizeof limits, "llm.budget_usd %g, llm.budget_tokens %lld", lim, (long long)lim_t);
        else if (lim > 0) snprintf(limits, sizeof limits, "llm.budget_usd %g", lim);
        else snprintf(limits, sizeof limits, "llm.budget_tokens %lld", (long long)lim_t);
        err_set(e, "%s: stopped at the spend limit (%s): $%.4f and %lld tokens spent; %lld requests not sent, %lld "
                   "answered; raise the limit and run again to carry on (answers so far are cached; exit 4)",
                what, limits, spent, (long long)spent_t, (long long)o->budget, (long long)(o->ok + o->refused + o->filtered));
        return STATUS_BUDGET;
    }
    if (o->stopped) {
        err_set(e, "%s: stopped by a signal: %lld requests not answered (asked next time)", what,
                (long long)o->stopped);
        return STATUS_STOPPED;
    }
    if (o->failed) {
        err_set(e, "%s: %lld requests failed after their retries (%s); run again to retry only those (answers so far "
                   "are cached): %s",
                what, (long long)o->failed, llm_status_name(o->first), o->first_msg);
        return STATUS_FAILED;
    }
    return STATUS_OK;
}

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

int session_open(LlmSession *s, const Config *cfg, const EndpointConfig *ec, const char *name, LlmCache *cache,
                 Err *e) {
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
    if (!s->client) {
        session_close(s);
        return -1;
    }
    return 0;
}

void session_close(LlmSession *s) {
    if (!s) return;
    llm_client_destroy(s->client);
    if (s->standin) serve_stop(s->standin);
    free(s->name);
    free(s->url);
    memset(s, 0, sizeof *s);
}

/* the integer fields of LlmUsage by attribute name */
#define USAGE_FIELDS(X)                                                                                          \
    X(requests) X(cache_hits) X(sent) X(retries) X(ok) X(failed) X(stopped) X(prompt_tokens) X(completion_tokens)

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
    double prev = 0;
    store_get_attr_f64(f, obj, "seconds", &prev, NULL);
    return store_set_attr_f64(f, obj, "seconds", prev + u->seconds, e);
}

int session_record_usage(const LlmSession *s, StoreFile *f, const char *obj, const char *desc, Err *e) {
    return session_add_usage(llm_usage(s->client), f, obj, desc, e);
}

/* roles -- teacher and critic over the LLM client; see include/roles.h. */
#include "llm/roles.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "standin/serve.h"

/* ---- endpoints --------------------------------------------------------------- */

int role_open(Role *r, const Config *cfg, const EndpointConfig *ec, const char *name, Err *e) {
    memset(r, 0, sizeof *r);
    r->cfg = ec;
    r->name = xstrdup(name);
    if (!strcmp(ec->base_url, "standin")) {
        StandinOptions o;
        standin_options_init(&o);
        o.seed = (uint64_t)cfg->standin.seed;
        o.refusal_rate = cfg->standin.refusal_rate;
        o.position_bias = cfg->standin.position_bias;
        o.length_bias = cfg->standin.length_bias;
        o.latency_ms = cfg->standin.latency_ms;
        o.quiet = 1;
        r->standin = serve_start(&o, e);
        if (!r->standin) {
            free(r->name);
            return err_prefix(e, "%s: cannot start the stand-in endpoint: ", name);
        }
        r->url = xasprintf("http://127.0.0.1:%d/v1", serve_port(r->standin));
        log_info("%s: built-in stand-in endpoint at %s (a deterministic test world, not a language model)",
                 name, r->url);
    } else {
        r->url = xstrdup(ec->base_url);
    }
    r->ep = (LlmEndpoint){.name = r->name,
                          .base_url = r->url,
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
                          .stop_grace = cfg->llm.stop_grace};
    return 0;
}

void role_close(Role *r) {
    if (!r) return;
    if (r->standin) serve_stop(r->standin);
    free(r->name);
    free(r->url);
    memset(r, 0, sizeof *r);
}

static void base_request(const EndpointConfig *ec, const char *user, LlmRequest *out) {
    llm_request_init(out, ec->model);
    if (ec->system[0]) llm_request_add_message(out, "system", ec->system);
    llm_request_add_message(out, "user", user);
    out->temperature = ec->temperature;
    out->top_p = ec->top_p;
    out->max_tokens = ec->max_tokens;
    out->seed = ec->seed;
    out->logprobs = ec->logprobs;
    out->top_logprobs = ec->logprobs ? ec->top_logprobs : 0;
}

void role_teacher_request(const EndpointConfig *ec, const char *input, int n, LlmRequest *out) {
    char *u = llm_fill_template(ec->prompt, input, n, "", "");
    base_request(ec, u, out);
    free(u);
}

void role_critic_request(const EndpointConfig *ec, const char *input, const char *a, const char *b,
                         LlmRequest *out) {
    char *u = llm_fill_template(ec->prompt, input, 0, a, b);
    base_request(ec, u, out);
    free(u);
}

/* ---- teacher answers ----------------------------------------------------------- */

/* Length of a list marker at the start of s ("1.", "1)", "(1)", "1:", "-",
 * "*", "•", "**1.**"), including following spaces; 0 if none. */
static size_t marker_len(const char *s) {
    const char *p = s;
    int bold = 0;
    if (p[0] == '*' && p[1] == '*') p += 2, bold = 1;
    if (*p == '(' && isdigit((unsigned char)p[1])) {
        p++;
        while (isdigit((unsigned char)*p)) p++;
        if (*p != ')') return 0;
        p++;
    } else if (isdigit((unsigned char)*p)) {
        while (isdigit((unsigned char)*p)) p++;
        if (*p != '.' && *p != ')' && *p != ':') return 0;
        p++;
    } else if (!bold && (*p == '-' || *p == '*') && p[1] == ' ') {
        p++;
    } else if (!bold && !strncmp(p, "\xE2\x80\xA2", 3)) { /* bullet */
        p += 3;
    } else {
        return 0;
    }
    if (bold && p[0] == '*' && p[1] == '*') p += 2;
    if (*p != ' ' && *p != '\t') return 0;
    while (*p == ' ' || *p == '\t') p++;
    return (size_t)(p - s);
}

/* Trims spaces, wrapping quotes and markdown bold/italic from an item. */
static char *clean_item(const char *s, size_t n) {
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    for (int pass = 0; pass < 2; pass++) {
        if (n >= 2 && ((s[0] == '"' && s[n - 1] == '"') || (s[0] == '*' && s[n - 1] == '*') ||
                       (s[0] == '_' && s[n - 1] == '_')))
            s++, n -= 2;
        else if (n >= 6 && !strncmp(s, "\xE2\x80\x9C", 3) && !strncmp(s + n - 3, "\xE2\x80\x9D", 3))
            s += 3, n -= 6; /* curly quotes */
        while (n && isspace((unsigned char)*s)) s++, n--;
        while (n && isspace((unsigned char)s[n - 1])) n--;
    }
    return xstrndup(s, n);
}

static int word_count(const char *s) {
    int n = 0, in = 0;
    for (; *s; s++) {
        if (isspace((unsigned char)*s)) in = 0;
        else if (!in) in = 1, n++;
    }
    return n;
}

int teacher_parse_list(const char *content, int max, StrVec *items) {
    StrVec lines = {0};
    for (const char *p = content; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        strvec_push(&lines, p, n);
        p = nl ? nl + 1 : NULL;
    }
    int any_marker = 0;
    for (size_t i = 0; i < lines.n; i++) {
        const char *l = lines.a[i];
        while (*l == ' ' || *l == '\t') l++;
        if (marker_len(l)) any_marker = 1;
    }
    int added = 0;
    for (size_t i = 0; i < lines.n && added < max; i++) {
        const char *l = lines.a[i];
        while (*l == ' ' || *l == '\t') l++;
        size_t m = marker_len(l);
        if (any_marker && !m) continue; /* prose around a list */
        char *item = clean_item(l + m, strlen(l + m));
        size_t il = strlen(item);
        /* skip intro lines ("Here are three takes:") and fragments */
        int intro = il > 0 && item[il - 1] == ':';
        if (!intro && word_count(item) >= 2) {
            strvec_push(items, item, il);
            added++;
        }
        free(item);
    }
    strvec_free(&lines);
    return added;
}

int teacher_is_refusal(const char *content) {
    static const char *pat[] = {"i'm sorry", "i am sorry", "i cannot", "i can't", "i can\xE2\x80\x99t",
                                "i won't", "as an ai", "i'm not able", "i am not able", "i'm unable",
                                "i am unable", "cannot help with", "can't help with"};
    char head[160];
    size_t n = 0;
    for (const char *p = content; *p && n < sizeof head - 1; p++) head[n++] = (char)tolower((unsigned char)*p);
    head[n] = 0;
    int apology = 0;
    for (size_t k = 0; k < sizeof pat / sizeof pat[0]; k++)
        if (strstr(head, pat[k])) apology = 1;
    if (!apology) return 0;
    StrVec items = {0};
    int listed = teacher_parse_list(content, 10, &items);
    strvec_free(&items);
    return listed < 2; /* an apology followed by a real list is not a refusal */
}

/* ---- critic answers -------------------------------------------------------------- */

static int digit_token(const char *t) { /* "1" or "2" (spaces allowed) -> 1/2, else 0 */
    while (*t == ' ') t++;
    if ((*t == '1' || *t == '2') && (t[1] == 0 || t[1] == ' ' || t[1] == '\n' || t[1] == '.')) return *t - '0';
    return 0;
}

int critic_parse(const LlmResponse *r, double *p1) {
    /* where the written answer is */
    const char *c = r->content ? r->content : "";
    const char *ans = NULL;
    for (const char *p = c; (p = strcasestr(p, "answer")); p++) ans = p;
    int text = 0;
    if (ans) {
        for (const char *p = ans + 6; *p && p < ans + 40; p++)
            if (*p == '1' || *p == '2') {
                text = *p - '0';
                break;
            }
    }
    /* log-probs: the first "1"/"2" token after the text "answer" */
    if (r->n_tokens > 0) {
        ByteBuf acc = {0};
        int seen_answer = 0;
        for (int i = 0; i < r->n_tokens; i++) {
            const LlmTokenLogprob *t = &r->tokens[i];
            if (seen_answer && digit_token(t->token)) {
                double l1 = -INFINITY, l2 = -INFINITY;
                for (int k = 0; k < t->n_top; k++) {
                    int d = digit_token(t->top[k].token);
                    if (d == 1 && t->top[k].logprob > l1) l1 = t->top[k].logprob;
                    if (d == 2 && t->top[k].logprob > l2) l2 = t->top[k].logprob;
                }
                if (t->n_top == 0) { /* only the chosen token's own log-prob */
                    if (digit_token(t->token) == 1) l1 = t->logprob;
                    else l2 = t->logprob;
                }
                bytebuf_free(&acc);
                if (isfinite(l1) && isfinite(l2)) {
                    double m = l1 > l2 ? l1 : l2;
                    *p1 = exp(l1 - m) / (exp(l1 - m) + exp(l2 - m));
                } else if (isfinite(l1)) {
                    *p1 = exp(l1);
                } else if (isfinite(l2)) {
                    *p1 = 1.0 - exp(l2);
                } else {
                    break;
                }
                return CRITIC_SRC_LOGPROBS;
            }
            bytebuf_put(&acc, t->token, strlen(t->token));
            if (!seen_answer && acc.a && strcasestr(acc.a, "answer")) seen_answer = 1;
        }
        bytebuf_free(&acc);
    }
    if (text) {
        *p1 = text == 1 ? 1.0 : 0.0;
        return CRITIC_SRC_TEXT;
    }
    return CRITIC_SRC_NONE;
}

int64_t critic_failures(const CriticJudgement *j, size_t n, int *stopped, LlmStatus *first) {
    int64_t failed = 0;
    if (stopped) *stopped = 0;
    *first = LLM_OK;
    for (size_t i = 0; i < n; i++)
        for (int o = 0; o < 2; o++) {
            LlmStatus s = o ? j[i].st_ba : j[i].st_ab;
            if (s == LLM_E_STOPPED && stopped) *stopped = 1;
            if (s != LLM_OK && s != LLM_E_STOPPED && !failed++) *first = s;
        }
    return failed;
}

char *role_run_cache_path(const Config *cfg) {
    return cfg->llm.cache[0] ? xstrdup(cfg->llm.cache) : xasprintf("%s/llm-cache", cfg->run.dir);
}

void critic_judgement_free(CriticJudgement *j) {
    if (!j) return;
    free(j->raw_ab);
    free(j->raw_ba);
    j->raw_ab = j->raw_ba = NULL;
}

size_t critic_judge(LlmClient *c, const EndpointConfig *ec, const CriticItem *items, size_t n,
                    CriticJudgement *out, const char *progress) {
    LlmRequest *reqs = xcalloc(2 * n + 1, sizeof(LlmRequest));
    LlmResult *res = xcalloc(2 * n + 1, sizeof(LlmResult));
    for (size_t i = 0; i < n; i++) {
        role_critic_request(ec, items[i].input, items[i].a, items[i].b, &reqs[2 * i]);
        role_critic_request(ec, items[i].input, items[i].b, items[i].a, &reqs[2 * i + 1]);
    }
    llm_run(c, reqs, 2 * n, res, progress);
    size_t judged = 0;
    for (size_t i = 0; i < n; i++) {
        CriticJudgement *j = &out[i];
        memset(j, 0, sizeof *j);
        LlmResult *ab = &res[2 * i], *ba = &res[2 * i + 1];
        j->st_ab = ab->status;
        j->st_ba = ba->status;
        j->raw_ab = xstrdup(ab->status == LLM_OK ? ab->resp.content : "");
        j->raw_ba = xstrdup(ba->status == LLM_OK ? ba->resp.content : "");
        double p = NAN, q = NAN;
        if (ab->status == LLM_OK) j->src_ab = critic_parse(&ab->resp, &p);
        if (ba->status == LLM_OK) j->src_ba = critic_parse(&ba->resp, &q);
        j->p_ab = j->src_ab ? p : NAN;
        j->p_ba = j->src_ba ? 1.0 - q : NAN;
        if (j->src_ab && j->src_ba) j->p = 0.5 * (j->p_ab + j->p_ba);
        else if (j->src_ab) j->p = j->p_ab;
        else if (j->src_ba) j->p = j->p_ba;
        else j->p = NAN;
        if (!isnan(j->p)) judged++;
        llm_result_free(ab);
        llm_result_free(ba);
        llm_request_free(&reqs[2 * i]);
        llm_request_free(&reqs[2 * i + 1]);
    }
    free(reqs);
    free(res);
    return judged;
}

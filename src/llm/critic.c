/* critic -- the critic's requests, answers and both-order judgements; see
 * include/llm/critic.h. */
#include "llm/critic.h"

#include "llm/batch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void critic_request(const EndpointConfig *ec, const char *input, const char *a, const char *b,
                         ChatRequest *out) {
    char *u = chat_fill_template(ec->prompt, input, 0, a, b);
    chat_request_for(ec, u, out);
    free(u);
}

static int digit_token(const char *t) { /* "1" or "2" (spaces allowed) -> 1/2, else 0 */
    while (*t == ' ') t++;
    if ((*t == '1' || *t == '2') && (t[1] == 0 || t[1] == ' ' || t[1] == '\n' || t[1] == '.')) return *t - '0';
    return 0;
}

long critic_verdict_offset(const char *c) {
    const char *ans = NULL;
    for (const char *p = c; (p = strcasestr(p, "answer")); p++) ans = p;
    if (!ans) return -1;
    for (const char *p = ans + 6; *p && p < ans + 46; p++) {
        if (*p < '0' || *p > '9') continue;
        int alone = (p == c || p[-1] < '0' || p[-1] > '9') && (p[1] < '0' || p[1] > '9');
        return (alone && (*p == '1' || *p == '2')) ? (long)(p - c) : -1;
    }
    return -1;
}

/* P(answer 1) from the top log-probs of the verdict token t; -1 if none. */
static int token_p1(const ChatTokenLogprob *t, double *p1) {
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
    if (isfinite(l1) && isfinite(l2)) {
        double m = l1 > l2 ? l1 : l2;
        *p1 = exp(l1 - m) / (exp(l1 - m) + exp(l2 - m));
    } else if (isfinite(l1)) { /* a log-prob above 0 (rounding, a broken server) is 0 */
        *p1 = exp(fmin(l1, 0.0));
    } else if (isfinite(l2)) {
        *p1 = 1.0 - exp(fmin(l2, 0.0));
    } else {
        return -1;
    }
    return 0;
}

int critic_parse(const ChatResponse *r, double *p1) {
    if (chat_response_refused(r) || chat_response_filtered(r) || chat_response_truncated(r)) return CRITIC_SRC_NONE;
    const char *c = r->content ? r->content : "";
    long at = critic_verdict_offset(c);
    if (at < 0) return CRITIC_SRC_NONE;
    int text = c[at] - '0';
    int t = chat_response_token_at(r, (size_t)at);
    if (t >= 0 && digit_token(r->tokens[t].token) == text && token_p1(&r->tokens[t], p1) == 0)
        return CRITIC_SRC_LOGPROBS;
    *p1 = text == 1 ? 1.0 : 0.0;
    return CRITIC_SRC_TEXT;
}

int64_t critic_failures(const CriticJudgement *j, size_t n, int *stopped, LlmStatus *first) {
    int64_t failed = 0;
    if (stopped) *stopped = 0;
    *first = LLM_OK;
    for (size_t i = 0; i < n; i++)
        for (int o = 0; o < 2; o++) {
            LlmStatus s = o ? j[i].st_ba : j[i].st_ab;
            if (s == LLM_E_STOPPED && stopped) *stopped = 1;
            if (s != LLM_OK && s != LLM_E_STOPPED && s != LLM_E_REFUSED && s != LLM_E_FILTERED && !failed++)
                *first = s;
        }
    return failed;
}

int64_t critic_unjudged(const CriticJudgement *j, size_t n) {
    int64_t u = 0;
    for (size_t i = 0; i < n; i++)
        for (int o = 0; o < 2; o++) {
            LlmStatus s = o ? j[i].st_ba : j[i].st_ab;
            int src = o ? j[i].src_ba : j[i].src_ab;
            u += s == LLM_E_REFUSED || s == LLM_E_FILTERED || (s == LLM_OK && src == CRITIC_SRC_NONE);
        }
    return u;
}

void critic_judgement_free(CriticJudgement *j) {
    if (!j) return;
    free(j->raw_ab);
    free(j->raw_ba);
    free(j->reasoning_ab);
    free(j->reasoning_ba);
    free(j->error_ab);
    free(j->error_ba);
    j->raw_ab = j->raw_ba = j->reasoning_ab = j->reasoning_ba = j->error_ab = j->error_ba = NULL;
}

/* One order of a judgement from its result: source, P(option 1), texts. */
static int judge_order(const LlmResult *r, double *p1, char **raw, char **reasoning, int *truncated) {
    int answered = r->status == LLM_OK || r->status == LLM_E_REFUSED || r->status == LLM_E_FILTERED;
    *raw = xstrdup(r->status == LLM_OK ? r->resp.content : "");
    *reasoning = xstrdup(answered && r->resp.reasoning ? r->resp.reasoning : "");
    *truncated = r->status == LLM_OK && chat_response_truncated(&r->resp);
    return r->status == LLM_OK ? critic_parse(&r->resp, p1) : CRITIC_SRC_NONE;
}

size_t critic_judge(LlmClient *c, const EndpointConfig *ec, const CriticItem *items, size_t n,
                    CriticJudgement *out, const char *progress) {
    ChatRequest *reqs = xcalloc(2 * n + 1, sizeof(ChatRequest));
    LlmResult *res = xcalloc(2 * n + 1, sizeof(LlmResult));
    for (size_t i = 0; i < n; i++) {
        critic_request(ec, items[i].input, items[i].a, items[i].b, &reqs[2 * i]);
        critic_request(ec, items[i].input, items[i].b, items[i].a, &reqs[2 * i + 1]);
    }
    if (ec->mode == ENDPOINT_MODE_BATCH) {
        LlmBatchOptions o;
        llm_batch_options_for(&o, ec);
        llm_batch_run(c, reqs, 2 * n, res, &o, progress);
    } else {
        llm_run(c, reqs, 2 * n, res, progress);
    }
    size_t judged = 0;
    for (size_t i = 0; i < n; i++) {
        CriticJudgement *j = &out[i];
        memset(j, 0, sizeof *j);
        LlmResult *ab = &res[2 * i], *ba = &res[2 * i + 1];
        j->st_ab = ab->status;
        j->st_ba = ba->status;
        double p = NAN, q = NAN;
        j->src_ab = judge_order(ab, &p, &j->raw_ab, &j->reasoning_ab, &j->truncated_ab);
        j->src_ba = judge_order(ba, &q, &j->raw_ba, &j->reasoning_ba, &j->truncated_ba);
        j->error_ab = xstrdup(ab->status == LLM_OK ? "" : ab->error);
        j->error_ba = xstrdup(ba->status == LLM_OK ? "" : ba->error);
        j->p_ab = j->src_ab ? p : NAN;
        j->p_ba = j->src_ba ? 1.0 - q : NAN;
        if (j->src_ab && j->src_ba) j->p = 0.5 * (j->p_ab + j->p_ba);
        else if (j->src_ab) j->p = j->p_ab;
        else if (j->src_ba) j->p = j->p_ba;
        else j->p = NAN;
        if (!isnan(j->p)) judged++;
        llm_result_free(ab);
        llm_result_free(ba);
        chat_request_free(&reqs[2 * i]);
        chat_request_free(&reqs[2 * i + 1]);
    }
    free(reqs);
    free(res);
    return judged;
}

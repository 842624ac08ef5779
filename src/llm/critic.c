/* critic -- the critic's requests, answers and both-order judgements; see
 * include/llm/critic.h. */
#include "llm/critic.h"

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

int critic_parse(const ChatResponse *r, double *p1) {
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
            const ChatTokenLogprob *t = &r->tokens[i];
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
                } else if (isfinite(l1)) { /* a log-prob above 0 (rounding, a broken server) is 0 */
                    *p1 = exp(fmin(l1, 0.0));
                } else if (isfinite(l2)) {
                    *p1 = 1.0 - exp(fmin(l2, 0.0));
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

void critic_judgement_free(CriticJudgement *j) {
    if (!j) return;
    free(j->raw_ab);
    free(j->raw_ba);
    j->raw_ab = j->raw_ba = NULL;
}

size_t critic_judge(LlmClient *c, const EndpointConfig *ec, const CriticItem *items, size_t n,
                    CriticJudgement *out, const char *progress) {
    ChatRequest *reqs = xcalloc(2 * n + 1, sizeof(ChatRequest));
    LlmResult *res = xcalloc(2 * n + 1, sizeof(LlmResult));
    for (size_t i = 0; i < n; i++) {
        critic_request(ec, items[i].input, items[i].a, items[i].b, &reqs[2 * i]);
        critic_request(ec, items[i].input, items[i].b, items[i].a, &reqs[2 * i + 1]);
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
        chat_request_free(&reqs[2 * i]);
        chat_request_free(&reqs[2 * i + 1]);
    }
    free(reqs);
    free(res);
    return judged;
}

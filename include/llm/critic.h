/* critic -- the critic role of "Small But Funny" (Ravi et al. 2024),
 * "multiple choice prompting": the request for (input, option 1, option 2);
 * the preference P(option 1 is better) from the answer token's
 * top_logprobs, falling back to the written "Answer: 1|2"; and
 * critic_judge, which asks every pair in both orders through a client and
 * averages, cancelling position bias.
 */
#ifndef HDISTILL_CRITIC_H
#define HDISTILL_CRITIC_H

#include "base/config.h"
#include "llm/chat.h"
#include "llm/llm.h"

/* The request comparing a (option 1) and b (option 2) for input (caller
 * frees with chat_request_free). */
void critic_request(const EndpointConfig *ec, const char *input, const char *a, const char *b, ChatRequest *out);

enum { CRITIC_SRC_NONE = 0, CRITIC_SRC_LOGPROBS = 1, CRITIC_SRC_TEXT = 2 };
/* P(option 1 better) from one critic answer; returns the source used
 * (CRITIC_SRC_NONE when neither log-probs nor a written answer are found). */
int critic_parse(const ChatResponse *r, double *p1);

typedef struct {
    const char *input, *a, *b;
} CriticItem;

typedef struct {
    double p_ab; /* P(a better), asked with a as option 1 */
    double p_ba; /* P(a better), asked with a as option 2 (= 1 - P(answer 1)) */
    double p;    /* mean of the orders that were parsed; NAN if none */
    int src_ab, src_ba;
    LlmStatus st_ab, st_ba;
    char *raw_ab, *raw_ba; /* response contents ("" on failure) */
} CriticJudgement;

/* Judges items in both orders (2n requests through c).  Returns how many
 * items got a preference from at least one order. */
size_t critic_judge(LlmClient *c, const EndpointConfig *ec, const CriticItem *items, size_t n,
                    CriticJudgement *out, const char *progress);
void critic_judgement_free(CriticJudgement *j);

/* Outcomes of n judgements: returns how many of the 2n requests failed after
 * their retries (*first: the first failure's kind); *stopped (may be NULL)
 * gets 1 if any was not answered because of a stop signal. */
int64_t critic_failures(const CriticJudgement *j, size_t n, int *stopped, LlmStatus *first);

#endif

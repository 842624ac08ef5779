/* critic -- the critic role of "Small But Funny" (Ravi et al. 2024),
 * "multiple choice prompting": the request for (input, option 1, option 2);
 * the preference P(option 1 is better) from the answer token's
 * top_logprobs, falling back to the written "Answer: 1|2"; and
 * critic_judge, which asks every pair in both orders through a client (or
 * the Batch API when the role's mode is "batch") and averages, cancelling
 * position bias.
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
/* P(option 1 better) from one critic answer; returns the source used.
 * Only the answer is read (r->content, the reasoning removed by chat.h):
 *  - the verdict: the last "answer" (any case) in content, then within the
 *    next 40 characters the first digit, which must be a lone 1 or 2
 *    ("Answer: 2", "**Answer:** 1", "answer is 2.", "Answer - paraphrase 1";
 *    "Answer: 3", "Answer: 12" or no digit: no verdict);
 *  - CRITIC_SRC_LOGPROBS: the log-prob token covering that very digit (its
 *    text "1"/"2", spaces allowed) gives P from the "1" and "2" entries of
 *    its top_logprobs (p1 = e^l1/(e^l1+e^l2); with one entry, e^l1 or
 *    1-e^l2; without any, the token's own logprob).  A digit in the
 *    reasoning is never read: tokens are aligned with the answer first;
 *  - CRITIC_SRC_TEXT: no usable token there: p1 = 1 for "1", 0 for "2";
 *  - CRITIC_SRC_NONE: no verdict, an answer cut by the token limit
 *    (finish_reason "length"), a refusal or a content filter. */
int critic_parse(const ChatResponse *r, double *p1);
/* The byte offset of the verdict digit in content (rules above), or -1. */
long critic_verdict_offset(const char *content);

typedef struct {
    const char *input, *a, *b;
} CriticItem;

typedef struct {
    double p_ab; /* P(a better), asked with a as option 1 */
    double p_ba; /* P(a better), asked with a as option 2 (= 1 - P(answer 1)) */
    double p;    /* mean of the orders that were parsed; NAN if none */
    int src_ab, src_ba;
    LlmStatus st_ab, st_ba;
    char *raw_ab, *raw_ba; /* response contents: the answers without reasoning ("" on failure) */
    char *reasoning_ab, *reasoning_ba; /* the critic's reasoning, if any ("" otherwise) */
    int truncated_ab, truncated_ba;    /* the answer was cut by the token limit (no verdict taken) */
} CriticJudgement;

/* Judges items in both orders (2n requests through c; through the Batch API
 * (batch.h) when ec->mode is "batch").  An order answered with a refusal
 * (LLM_E_REFUSED) or stopped by a content filter (LLM_E_FILTERED) is
 * unjudged: its p is NAN, like an answer without a verdict.  Returns how
 * many items got a preference from at least one order. */
size_t critic_judge(LlmClient *c, const EndpointConfig *ec, const CriticItem *items, size_t n,
                    CriticJudgement *out, const char *progress);
void critic_judgement_free(CriticJudgement *j);

/* Outcomes of n judgements: returns how many of the 2n requests failed after
 * their retries (*first: the first failure's kind); *stopped (may be NULL)
 * gets 1 if any was not answered because of a stop signal.  Refusals and
 * content filters are not failures: they are unjudged orders
 * (critic_unjudged). */
int64_t critic_failures(const CriticJudgement *j, size_t n, int *stopped, LlmStatus *first);
/* How many of the 2n orders were answered without a verdict: refused,
 * filtered, cut by the token limit, or no "Answer: 1|2" found. */
int64_t critic_unjudged(const CriticJudgement *j, size_t n);

#endif

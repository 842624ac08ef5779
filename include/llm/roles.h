/* roles -- the teacher and the critic on top of the LLM client.
 *
 * - Endpoints from the configuration; "standin" starts the built-in
 *   stand-in server (serve.h) on a free loopback port for as long as the
 *   endpoint is open.
 * - Teacher: the request for one literal input (template with {input} and
 *   {n}), parsing of the numbered list it answers with (robust to "1.",
 *   "1)", "(1)", "**1.**", bullets, missing numbers, an intro line, quotes),
 *   and refusal detection.
 * - Critic ("multiple choice prompting", Ravi et al. 2024): the request for
 *   (input, option 1, option 2); the preference P(option 1 is better) from
 *   the answer token's top_logprobs, falling back to the written
 *   "Answer: 1|2"; and critic_judge, which asks every pair in both orders
 *   and averages, cancelling position bias.
 */
#ifndef HDISTILL_ROLES_H
#define HDISTILL_ROLES_H

#include "base/config.h"
#include "llm/llm.h"

typedef struct Standin Standin;

typedef struct {
    LlmEndpoint ep;
    char *name, *url;
    const EndpointConfig *cfg;
    Standin *standin; /* started by role_open for base_url "standin" */
} Role;

/* Resolves an endpoint role ("teacher", "critic"); starts the stand-in if
 * asked.  -1 with e set. */
int role_open(Role *r, const Config *cfg, const EndpointConfig *ec, const char *name, Err *e);
void role_close(Role *r);

/* Requests (caller frees with llm_request_free). */
void role_teacher_request(const EndpointConfig *ec, const char *input, int n, LlmRequest *out);
void role_critic_request(const EndpointConfig *ec, const char *input, const char *a, const char *b,
                         LlmRequest *out);

/* Items of a numbered/bulleted list, at most max (appended to items);
 * returns how many were added. */
int teacher_parse_list(const char *content, int max, StrVec *items);
/* 1 if the answer is a refusal (an apology or "I can't" and no list). */
int teacher_is_refusal(const char *content);

enum { CRITIC_SRC_NONE = 0, CRITIC_SRC_LOGPROBS = 1, CRITIC_SRC_TEXT = 2 };
/* P(option 1 better) from one critic answer; returns the source used
 * (CRITIC_SRC_NONE when neither log-probs nor a written answer are found). */
int critic_parse(const LlmResponse *r, double *p1);

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

/* The LLM cache of a run's critic and judges: llm.cache, else run.dir/llm-cache (malloc'd). */
char *role_run_cache_path(const Config *cfg);

#endif

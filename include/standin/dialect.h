/* dialect -- how the stand-in (serve.h) shapes its answers and errors, to
 * replay the documented bodies of the servers hdistill meets:
 *
 *   standin            hdistill's own shape (the default): OpenAI's chat
 *                      completion with the fields the client needs.
 *   openai             OpenAI chat completions (platform.openai.com/docs/
 *                      api-reference/chat/object): message.refusal null,
 *                      annotations, usage.prompt_tokens_details and
 *                      completion_tokens_details, "bytes" in log-probs.
 *   openai-reasoning   o-series / gpt-5 reasoning models: max_tokens is
 *                      rejected (400, param max_tokens, code
 *                      unsupported_parameter), as are temperature != 1 and
 *                      logprobs; max_completion_tokens and reasoning_effort
 *                      (minimal|low|medium|high) are accepted; the reasoning
 *                      is hidden but counted in completion_tokens and
 *                      completion_tokens_details.reasoning_tokens (16, 64,
 *                      128, 256 tokens for minimal..high; 128 unset); when
 *                      the limit is spent on reasoning, content is "" and
 *                      finish_reason "length".
 *   vllm               vLLM without a reasoning parser: the reasoning stays
 *                      in content as "<think>...</think>"; errors in vLLM's
 *                      older top-level shape {"object":"error","message",
 *                      "type":"NotFoundError","param":null,"code":404}.
 *   vllm-reasoning     vLLM with --reasoning-parser (docs.vllm.ai, "Reasoning
 *                      Outputs"): message.reasoning_content beside content;
 *                      log-probs cover the whole generation (reasoning,
 *                      "</think>", answer).
 *   llama-server       llama.cpp's server (tools/server/README.md): reasoning
 *                      in reasoning_content (--reasoning-format deepseek),
 *                      log-prob items {"id","token","bytes","logprob",
 *                      "top_logprobs":[{"id","token","bytes","logprob"}]},
 *                      errors {"error":{"code":400,"message","type":
 *                      "exceed_context_size_error","n_prompt_tokens","n_ctx"}}.
 *   ollama             Ollama's OpenAI-compatible endpoint (openai/openai.go):
 *                      message.reasoning, no log-probs, system_fingerprint
 *                      "fp_ollama", errors {"error":{"message","type":
 *                      "not_found_error"|"invalid_request_error"|"api_error",
 *                      "param":null,"code":null}}.
 *   azure              Azure OpenAI: the openai shape plus
 *                      prompt_filter_results and choices[].content_filter_results;
 *                      its content-filter answers come from the fault kinds
 *                      filter-400 and filtered (serve.h).
 * Pure functions; the stand-in's world decides the texts, this file only
 * their JSON.
 */
#ifndef HDISTILL_DIALECT_H
#define HDISTILL_DIALECT_H

#include <stdint.h>

#include "base/util.h"
#include "llm/chat.h"

typedef enum {
    DIALECT_STANDIN = 0,
    DIALECT_OPENAI,
    DIALECT_OPENAI_REASONING,
    DIALECT_VLLM,
    DIALECT_VLLM_REASONING,
    DIALECT_LLAMA_SERVER,
    DIALECT_OLLAMA,
    DIALECT_AZURE,
    DIALECT_N
} ServeDialect;

/* "standin", "openai", ...; dialect_parse returns the dialect or -1. */
const char *dialect_name(int d);
int dialect_parse(const char *name);
/* 1 if the dialect's models write a visible reasoning (vllm, vllm-reasoning,
 * llama-server, ollama). */
int dialect_reasons(int d);

/* How the text of one choice is to be shaped. */
enum {
    SHAPE_PLAIN = 0,   /* the dialect's own way */
    SHAPE_THINK,       /* content "<think>\nR\n</think>\n\nA" */
    SHAPE_LONE_THINK,  /* content "R\n</think>\n\nA" (no opening tag) */
    SHAPE_PARTS,       /* content [{"type":"thinking","thinking":[{"type":"text","text":R}]},{"type":"text","text":A}] */
    SHAPE_REFUSAL,     /* content null, refusal "I'm sorry, ..." */
    SHAPE_FILTERED,    /* content null, finish_reason content_filter */
    SHAPE_EXHAUSTED    /* content "", reasoning cut, finish_reason length */
};

typedef struct {
    const char *answer;     /* the answer text */
    const char *reasoning;  /* "" = none */
    long digit_at;          /* offset of the critic's verdict digit in answer, -1 = none */
    long decoy_at;          /* offset of a decoy digit in reasoning, -1 = none */
    double logit;           /* critic: logit of answer 1 */
    int answer_digit;       /* 1 or 2 when digit_at >= 0 */
    int truncated;          /* cut at the token limit */
    int shape;              /* SHAPE_* */
    int completion_tokens, reasoning_tokens;
} DialectChoice;

typedef struct {
    int dialect;
    const char *id, *model;
    long long created;
    int n_choices;
    const DialectChoice *choices;
    int prompt_tokens;
    int logprobs, top_logprobs; /* what the request asked */
    uint64_t lp_seed;           /* draws of the log-probs of ordinary tokens */
} DialectAnswer;

/* The 200 body (malloc'd). */
char *dialect_render(const DialectAnswer *a);

/* An error body in the dialect's shape (malloc'd); param/code NULL = null.
 * llama-server's numeric code is the status. */
char *dialect_error(int d, int status, const char *type, const char *param, const char *code, const char *msg);

/* Requests the dialect refuses (openai-reasoning: max_tokens, temperature
 * != 1, logprobs, a bad reasoning_effort; a model other than served_model
 * when set; llama-server: a prompt of more than ctx_words words).  0 when
 * it is accepted, else the status and *body (malloc'd). */
int dialect_check_request(int d, const ChatRequest *q, const char *served_model, int ctx_words, int prompt_words,
                          char **body);

/* openai-reasoning: hidden reasoning tokens for a reasoning_effort (NULL =
 * not sent). */
int dialect_reasoning_tokens(const char *effort);

#endif

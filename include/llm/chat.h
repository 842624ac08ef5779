/* chat -- the OpenAI-compatible chat-completions protocol, without any
 * transport: building request bodies, the canonical cache key of a request,
 * parsing responses (content, reasoning, refusal, finish_reason,
 * log-probabilities, usage) and error bodies.  Shared by the client
 * (llm.c, batch.c) and the stand-in server (serve.c), so both compute the
 * same key for the same request.
 *
 * Canonical key: SHA-256 (hex) of the compact JSON object
 *   {"model":..,"messages":[{"role":..,"content":..},..], then, when set and
 *    in this order, "temperature","top_p","max_tokens" (or
 *    "max_completion_tokens"),"seed","n","logprobs","top_logprobs",
 *    "reasoning_effort", then the keys of extra_body sorted (recursively)}
 * as printed by cJSON -- which is also the body sent.  A request without the
 * newer fields (token_param max_tokens, no reasoning_effort, no extra_body)
 * has the key it always had, so existing caches stay valid.  Transport
 * details (base URL, API key, timeouts) are not part of it.
 *
 * Responses are normalised here, in one place, for every server family:
 *  - reasoning is removed from the answer before anything parses it: the
 *    message fields "reasoning_content" (DeepSeek API, vLLM <= 0.10 with a
 *    reasoning parser, SGLang, llama-server) and "reasoning" (vLLM >= 0.11,
 *    Ollama); content given as a list of parts ({"type":"text","text"},
 *    {"type":"thinking","thinking": string | [{"type":"text","text"}]}
 *    (Mistral Magistral), {"type":"refusal","refusal"}); a leading
 *    "<think>...</think>" block; a lone "</think>" (DeepSeek-R1 often omits
 *    the opening tag: everything before it is reasoning); an unclosed
 *    "<think>" (the answer was cut inside its reasoning: no answer).
 *    The reasoning text is kept in ChatResponse.reasoning.
 *  - log-prob tokens (which servers give for the whole generation,
 *    reasoning included) are aligned with the answer: every token gets its
 *    offset in content (negative inside the reasoning), so a parser reads
 *    the answer's tokens only.
 */
#ifndef HDISTILL_LLMPROTO_H
#define HDISTILL_LLMPROTO_H

#include <stddef.h>
#include <stdint.h>

#include "base/config.h"
#include "base/util.h"

typedef struct {
    char *role;    /* "system" | "user" | "assistant" */
    char *content;
} ChatMessage;

/* which name carries the token limit */
enum { CHAT_TOKENS_MAX_TOKENS = 0, CHAT_TOKENS_MAX_COMPLETION_TOKENS = 1 };

/* Optional fields are omitted from the body when "unset": temperature and
 * top_p < 0, max_tokens <= 0, seed < 0, n <= 1, logprobs 0, top_logprobs <= 0,
 * reasoning_effort NULL or "", extra_body NULL. */
typedef struct {
    char *model;
    int n_messages;
    ChatMessage *messages;
    double temperature, top_p;
    int max_tokens;          /* the token limit, sent under the name token_param says */
    int token_param;         /* CHAT_TOKENS_* */
    int64_t seed;
    int n;
    int logprobs, top_logprobs;
    char *reasoning_effort;  /* "minimal" | "low" | ... ; NULL = not sent */
    char *extra_body;        /* canonical compact JSON object merged into the body; NULL = none */
} ChatRequest;

/* A request with unset optional fields and no messages (caller owns it;
 * free with chat_request_free). */
void chat_request_init(ChatRequest *r, const char *model);
void chat_request_add_message(ChatRequest *r, const char *role, const char *content);
void chat_request_free(ChatRequest *r);
/* A deep copy of src into dst (free with chat_request_free). */
void chat_request_copy(ChatRequest *dst, const ChatRequest *src);

/* Sets the extra body from JSON text (NULL or "" = none): it must be a JSON
 * object without duplicate keys and without the keys hdistill sets itself
 * (model, messages, temperature, top_p, max_tokens, max_completion_tokens,
 * seed, n, logprobs, top_logprobs, reasoning_effort, stream); it is stored
 * with its keys sorted at every level.  -1 with e set ("extra_body: ...")
 * otherwise. */
int chat_request_set_extra(ChatRequest *r, const char *json, Err *e);

/* The JSON body to POST (malloc'd). */
char *chat_request_body(const ChatRequest *r);
/* The canonical key (64 hex chars + NUL). */
void chat_request_key(const ChatRequest *r, char key[65]);
/* Parses a request body (what a server receives) into r: keys it does not
 * know are kept in extra_body, so the server's key equals the client's.
 * -1 with e set on malformed JSON or missing model/messages. */
int chat_request_parse(const char *body, size_t len, ChatRequest *r, Err *e);

/* Checks the request options of endpoint role (e.g. "teacher"): extra_body
 * (as chat_request_set_extra), reasoning_effort, token_param, mode.
 * -1 with e set naming the key ("teacher.extra_body: ..."). */
int chat_endpoint_check(const EndpointConfig *ec, const char *role, Err *e);

typedef struct {
    char token[64];
    double logprob;
} ChatTopLogprob;

typedef struct {
    char *token;
    double logprob;
    long offset;        /* of the token's first byte in ChatResponse.content; < 0 in the reasoning */
    int n_top;
    ChatTopLogprob *top;
} ChatTokenLogprob;

typedef struct {
    char *content;       /* the answer: message.content without its reasoning, leading blanks cut ("" if none) */
    char *reasoning;     /* the reasoning, however it came ("" if none) */
    char *refusal;       /* message.refusal or a refusal part ("" if none) */
    char *finish_reason; /* "" if absent or null */
    int n_tokens;        /* choices[0].logprobs.content, if any */
    ChatTokenLogprob *tokens;
    int aligned;         /* 1 when the tokens were aligned with content (offsets valid) */
    int64_t prompt_tokens, completion_tokens; /* usage; -1 if absent */
    int64_t reasoning_tokens; /* usage.completion_tokens_details.reasoning_tokens; -1 if absent */
} ChatResponse;

/* Parses a chat-completions response body.  Returns 0, or -1 with e set for
 * malformed JSON ("malformed JSON") or a wrong schema ("wrong schema: ..."),
 * or a 200 carrying an error object ("endpoint error: ..."); the caller
 * decides whether to retry.  Log-prob items are read from "logprob", or
 * from "prob" (llama-server's post-sampling probabilities) as its log. */
int chat_response_parse(const char *body, size_t len, ChatResponse *out, Err *e);
void chat_response_free(ChatResponse *r);

/* finish_reason "length": the answer was cut by the token limit. */
int chat_response_truncated(const ChatResponse *r);
/* finish_reason "content_filter". */
int chat_response_filtered(const ChatResponse *r);
/* A refusal field or part was given. */
int chat_response_refused(const ChatResponse *r);
/* The token covering byte `offset` of content, or -1 (no tokens, not
 * aligned, or no token there). */
int chat_response_token_at(const ChatResponse *r, size_t offset);

/* Splits text into the answer and the reasoning by the <think> rules above
 * (both malloc'd; *reasoning "" when there is none). */
void chat_split_reasoning(const char *text, char **answer, char **reasoning);

/* An error body, in any of the shapes servers send:
 *   {"error":{"message","type","param","code"}}   OpenAI, Azure (code
 *        "content_filter", plus "innererror"), Ollama, vLLM >= 0.10,
 *        llama-server (numeric code, e.g. type "exceed_context_size_error");
 *   {"object":"error","message","type","param","code"}   vLLM (older), SGLang;
 *   {"error":"text"}    Ollama's native API, proxies;
 *   {"detail": "text" | [{"loc","msg","type"}]}   FastAPI validation (422);
 *   {"message":"text"}.
 * Fields missing are "".  A numeric code is written as its number. */
typedef struct {
    char message[400];
    char type[64], param[64], code[64];
} ChatError;
/* 1 if body held an error in one of those shapes, else 0 (out zeroed). */
int chat_error_parse(const char *body, size_t len, ChatError *out);
/* "MESSAGE (type T, param P, code C)", leaving out what is empty. */
void chat_error_format(const ChatError *er, char *buf, size_t n);

/* Fills {input}, {n}, {a}, {b} in a prompt template (malloc'd).  Unknown
 * {names} are kept as they are. */
char *chat_fill_template(const char *tmpl, const char *input, int n, const char *a, const char *b);

/* A request to endpoint ec (model, sampling, log-probs, its system message,
 * token_param, reasoning_effort, extra_body) with one user message (caller
 * frees with chat_request_free).  ec must have passed chat_endpoint_check
 * (llm_client_create checks it). */
void chat_request_for(const EndpointConfig *ec, const char *user, ChatRequest *out);

#endif

/* chat -- the OpenAI-compatible chat-completions protocol, without any
 * transport: building request bodies, the canonical cache key of a request,
 * and parsing responses (content, finish_reason, log-probabilities, usage).
 * Shared by the client (llm.c) and the stand-in server (serve.c), so both
 * compute the same key for the same request.
 *
 * Canonical key: SHA-256 (hex) of the compact JSON object
 *   {"model":..,"messages":[{"role":..,"content":..},..], then, when set and
 *    in this order, "temperature","top_p","max_tokens","seed","n",
 *    "logprobs","top_logprobs"}
 * as printed by cJSON.  Transport details (base URL, API key, timeouts) are
 * not part of it: the same question to another address of the same model
 * is the same question.
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

/* Optional fields are omitted from the body when "unset": temperature and
 * top_p < 0, max_tokens <= 0, seed < 0, n <= 1, logprobs 0, top_logprobs <= 0. */
typedef struct {
    char *model;
    int n_messages;
    ChatMessage *messages;
    double temperature, top_p;
    int max_tokens;
    int64_t seed;
    int n;
    int logprobs, top_logprobs;
} ChatRequest;

/* A request with unset optional fields and no messages (caller owns it;
 * free with chat_request_free). */
void chat_request_init(ChatRequest *r, const char *model);
void chat_request_add_message(ChatRequest *r, const char *role, const char *content);
void chat_request_free(ChatRequest *r);

/* The JSON body to POST (malloc'd). */
char *chat_request_body(const ChatRequest *r);
/* The canonical key (64 hex chars + NUL). */
void chat_request_key(const ChatRequest *r, char key[65]);
/* Parses a request body (what a server receives) into r; -1 with e set on
 * malformed JSON or missing model/messages. */
int chat_request_parse(const char *body, size_t len, ChatRequest *r, Err *e);

typedef struct {
    char token[64];
    double logprob;
} ChatTopLogprob;

typedef struct {
    char *token;
    double logprob;
    int n_top;
    ChatTopLogprob *top;
} ChatTokenLogprob;

typedef struct {
    char *content;       /* choices[0].message.content ("" if null) */
    char *finish_reason; /* "" if absent */
    int n_tokens;        /* choices[0].logprobs.content, if any */
    ChatTokenLogprob *tokens;
    int64_t prompt_tokens, completion_tokens; /* usage; -1 if absent */
} ChatResponse;

/* Parses a chat-completions response body.  Returns 0, or -1 with e set for
 * malformed JSON ("malformed JSON") or a wrong schema ("no choices[0].message"
 * and the like); the caller decides whether to retry. */
int chat_response_parse(const char *body, size_t len, ChatResponse *out, Err *e);
void chat_response_free(ChatResponse *r);

/* Fills {input}, {n}, {a}, {b} in a prompt template (malloc'd).  Unknown
 * {names} are kept as they are. */
char *chat_fill_template(const char *tmpl, const char *input, int n, const char *a, const char *b);

/* A request to endpoint ec (model, sampling, log-probs, its system message)
 * with one user message (caller frees with chat_request_free). */
void chat_request_for(const EndpointConfig *ec, const char *user, ChatRequest *out);

#endif

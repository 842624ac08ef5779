/* llm -- the LLM client: many chat-completion requests in flight on one
 * thread through the libcurl multi interface, against any OpenAI-compatible
 * endpoint (hosted APIs, vLLM, llama.cpp server, Ollama, `hdistill serve`).
 *
 * - Concurrency (requests in flight), rate limits (requests/s, tokens/min),
 *   connect and total timeouts.
 * - Retries with exponential backoff and jitter on 429, 408, 409, 5xx,
 *   timeouts, connection/transport errors and unusable 200 answers
 *   (malformed JSON, wrong schema, empty content), honouring Retry-After;
 *   never on other 4xx.  An endpoint that refuses every connection is given
 *   up on quickly with a clear message instead of burning the whole budget.
 * - A durable cache (cache.h): a request already answered is never sent
 *   again, even after SIGKILL.
 * - Usage accounting, and a progress line for long stages (one line every
 *   10 s when stdout is not a terminal, an updating line when it is).
 * - The API key is read from the environment variable named in the
 *   endpoint, kept in memory only, sent only as an Authorization header; it
 *   is never printed, logged or stored.  TLS peer verification stays on.
 *
 * Used by rank 0 only; not thread-safe.
 */
#ifndef HDISTILL_LLM_H
#define HDISTILL_LLM_H

#include <stddef.h>
#include <stdint.h>

#include "base/config.h"
#include "llm/cache.h"
#include "llm/chat.h"

typedef struct {
    const char *name;        /* role, for messages: "teacher", "critic", ... */
    const char *base_url;    /* ".../v1"; "/chat/completions" is appended */
    const char *api_key_env; /* name of the environment variable; "" = none */
    const char *ca_bundle;   /* "" = system default */
    int concurrency;
    double rate_rps;         /* requests per second; 0 = unlimited */
    double rate_tpm;         /* tokens per minute (prompt estimate + max_tokens); 0 = unlimited */
    double connect_timeout, timeout; /* seconds */
    int retries;             /* further attempts after the first */
    double backoff, backoff_max; /* seconds: first retry delay, cap */
    double stop_grace;       /* on a stop signal: seconds to let requests in flight finish (paid
                                answers are kept); nothing new is sent.  0 = abandon at once */
} LlmEndpoint;

/* The transport settings of configuration ec for role name at url (both
 * borrowed: they must outlive ep); stop_grace from llm.stop_grace. */
void llm_endpoint_init(LlmEndpoint *ep, const EndpointConfig *ec, const char *name, const char *url,
                       double stop_grace);

typedef enum {
    LLM_OK = 0,
    LLM_E_HTTP4XX,   /* 4xx other than 408/409/429: not retried */
    LLM_E_HTTP5XX,   /* 5xx, 408, 409 */
    LLM_E_RATE,      /* 429 */
    LLM_E_TIMEOUT,   /* connect or total timeout */
    LLM_E_CONNECT,   /* refused, unknown host, unreachable */
    LLM_E_TRANSPORT, /* connection dropped, truncated body, other curl errors */
    LLM_E_MALFORMED, /* 200 but not JSON */
    LLM_E_SCHEMA,    /* 200 JSON without choices[0].message.content */
    LLM_E_EMPTY,     /* 200 with empty content */
    LLM_E_STOPPED,   /* not attempted / abandoned because of a stop signal (an endpoint given up on: LLM_E_CONNECT) */
    LLM_N_STATUS
} LlmStatus;

const char *llm_status_name(LlmStatus s);

typedef struct {
    LlmStatus status;
    int http_status;  /* of the last attempt (0 if none) */
    int attempts;     /* requests sent (0 when served from the cache) */
    int from_cache;
    char *body;       /* raw response body (successes) */
    ChatResponse resp; /* parsed (successes) */
    char error[256];  /* last error (failures) */
} LlmResult;

void llm_result_free(LlmResult *r);

typedef struct {
    int64_t requests;     /* logical requests asked for */
    int64_t cache_hits;
    int64_t sent;         /* HTTP requests sent, including retries */
    int64_t retries;
    int64_t ok, failed;   /* final outcomes of requests not in the cache */
    int64_t stopped;      /* not answered because of a stop signal (not failures: asked again next time) */
    int64_t errors[LLM_N_STATUS]; /* attempt-level errors by kind */
    int64_t prompt_tokens, completion_tokens;
    double seconds;
} LlmUsage;

typedef struct LlmClient LlmClient;

/* Validates the endpoint and reads the key; NULL with e set (e.g. the named
 * key variable is not set).  cache may be NULL (no caching). */
LlmClient *llm_client_create(const LlmEndpoint *ep, LlmCache *cache, Err *e);
void llm_client_destroy(LlmClient *c);

/* Runs reqs[0..n) to completion; results[i] answers reqs[i] (caller frees
 * each with llm_result_free).  progress: a label for the progress line, or
 * NULL.  Returns the number of successes.  A stop signal (util.h) ends the
 * run early: requests not finished get LLM_E_STOPPED. */
size_t llm_run(LlmClient *c, const ChatRequest *reqs, size_t n, LlmResult *results,
               const char *progress);

const LlmUsage *llm_usage(const LlmClient *c);
/* "requests 120 (cache 20), sent 130, retries 10, ok 100, failed 0, errors: ..., tokens 1234+567" */
void llm_usage_format(const LlmUsage *u, char *buf, size_t n);

#endif

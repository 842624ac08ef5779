/* llm -- the LLM client: many chat-completion requests in flight on one
 * thread through the libcurl multi interface, against any OpenAI-compatible
 * endpoint (OpenAI, Azure, vLLM, SGLang, llama.cpp's llama-server, Ollama,
 * `hdistill serve`).
 *
 * - Concurrency (requests in flight), rate limits (requests/s, tokens/min),
 *   connect and total timeouts.
 * - Retries with exponential backoff and jitter on 429, 408, 409, 5xx,
 *   timeouts, connection/transport errors and unusable 200 answers
 *   (malformed JSON, wrong schema, empty content), honouring Retry-After
 *   (seconds or an HTTP date; also retry-after-ms).  A server asking to
 *   wait longer than backoff_max ends the request with that in its error
 *   instead of retrying.  Never retried: other 4xx (exactly one attempt;
 *   the error quotes the server's message, type, param and code), a 429
 *   with code insufficient_quota (the whole run stops at once: nothing more
 *   is sent), refusals, content filters, answers whose tokens all went to
 *   reasoning.  An endpoint that refuses every connection is given up on
 *   quickly with a clear message instead of burning the whole budget.
 * - Answers are normalised by chat.h (reasoning removed and kept apart).
 * - A durable cache (cache.h): a request already answered is never sent
 *   again, even after SIGKILL.  Stored: every 200 answer that is final --
 *   usable ones, refusals, filtered ones, reasoning-exhausted ones (a rerun
 *   classifies the stored body again, so it gets the same status).
 * - An optional spend limit (budget.h): a request that could cross it is
 *   not sent (LLM_E_BUDGET).
 * - Usage accounting (tokens, reasoning tokens, cost at the role's prices),
 *   and a progress line for long stages (one line every 10 s when stdout is
 *   not a terminal, an updating line when it is).
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
#include "llm/budget.h"
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
    double backoff, backoff_max; /* seconds: first retry delay, cap (a longer Retry-After is an error) */
    double stop_grace;       /* on a stop signal: seconds to let requests in flight finish (paid
                                answers are kept); nothing new is sent.  0 = abandon at once */
    const EndpointConfig *ec; /* borrowed, may be NULL: its request options are checked by
                                 llm_client_create (chat_endpoint_check) */
    double price_in, price_out; /* USD per million prompt / completion tokens; 0 = unknown */
} LlmEndpoint;

/* The transport settings of configuration ec for role name at url (all
 * borrowed: they must outlive ep); stop_grace from llm.stop_grace; the
 * prices and ec itself. */
void llm_endpoint_init(LlmEndpoint *ep, const EndpointConfig *ec, const char *name, const char *url,
                       double stop_grace);

/* Outcomes.  The numbers are stored in HDF5 files: new kinds are added at
 * the end, never renumbered. */
typedef enum {
    LLM_OK = 0,
    LLM_E_HTTP4XX,   /* 4xx other than 408/409/429: not retried; error quotes the server */
    LLM_E_HTTP5XX,   /* 5xx, 408, 409 */
    LLM_E_RATE,      /* 429 */
    LLM_E_TIMEOUT,   /* connect or total timeout */
    LLM_E_CONNECT,   /* refused, unknown host, unreachable */
    LLM_E_TRANSPORT, /* connection dropped, truncated body, other curl errors */
    LLM_E_MALFORMED, /* 200 but not JSON */
    LLM_E_SCHEMA,    /* 200 JSON without choices[0].message.content */
    LLM_E_EMPTY,     /* 200 with empty content */
    LLM_E_STOPPED,   /* not attempted / abandoned because of a stop signal (an endpoint given up on: LLM_E_CONNECT) */
    LLM_E_QUOTA,     /* 429 insufficient_quota (billing): final, and nothing more is sent in this run */
    LLM_E_REASONING, /* answered, but the token limit was spent on reasoning: content empty and
                        finish_reason "length"; final (raise max_tokens / max_completion_tokens) */
    LLM_E_REFUSED,   /* answered with a refusal (message.refusal): final */
    LLM_E_FILTERED,  /* a content filter: finish_reason "content_filter", or an error with code
                        "content_filter" (Azure's 400): final */
    LLM_E_BUDGET,    /* not sent: it could cross llm.budget_usd / llm.budget_tokens */
    LLM_E_BATCH,     /* Batch API: the line expired, or its batch failed or was cancelled */
    LLM_N_STATUS
} LlmStatus;

/* "ok", "http_4xx", "http_5xx", "rate_limited", "timeout", "connect",
 * "transport", "malformed", "schema", "empty", "stopped",
 * "insufficient_quota", "reasoning_length", "refused", "content_filter",
 * "budget", "batch". */
const char *llm_status_name(LlmStatus s);
/* 1 if asking again later may give an answer (5xx, 429, timeouts,
 * transport, unusable 200s, stopped, batch); 0 for OK and the final
 * outcomes (4xx, insufficient_quota, reasoning_length, refused,
 * content_filter, budget). */
int llm_status_transient(LlmStatus s);

typedef struct {
    LlmStatus status;
    int http_status;  /* of the last attempt (0 if none) */
    int attempts;     /* requests sent (0 when served from the cache) */
    int from_cache;
    char *body;       /* raw response body: LLM_OK and the answered final kinds (REFUSED,
                         FILTERED by finish_reason, REASONING) */
    ChatResponse resp; /* parsed, for the same kinds */
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
    int64_t reasoning_tokens; /* of completion_tokens, where the server says */
    double cost_usd;      /* at the endpoint's prices (0 when unknown) */
    double seconds;
} LlmUsage;

typedef struct LlmClient LlmClient;

/* Validates the endpoint (and its request options when ep->ec is set) and
 * reads the key; NULL with e set (e.g. the named key variable is not set,
 * teacher.extra_body is not a JSON object).  cache may be NULL. */
LlmClient *llm_client_create(const LlmEndpoint *ep, LlmCache *cache, Err *e);
void llm_client_destroy(LlmClient *c);
/* Puts the client under budget b (borrowed; NULL = none; one budget may
 * serve several clients).  -1 with e set when the role cannot be budgeted:
 * no max_tokens (the cost of a request is unbounded), or a USD limit
 * without prices. */
int llm_client_set_budget(LlmClient *c, LlmBudget *b, Err *e);
LlmBudget *llm_client_budget(const LlmClient *c);
LlmCache *llm_client_cache(const LlmClient *c);
const LlmEndpoint *llm_client_endpoint(const LlmClient *c);

/* Runs reqs[0..n) to completion; results[i] answers reqs[i] (caller frees
 * each with llm_result_free).  progress: a label for the progress line, or
 * NULL.  Returns the number of successes.  A stop signal (util.h) ends the
 * run early: requests not finished get LLM_E_STOPPED. */
size_t llm_run(LlmClient *c, const ChatRequest *reqs, size_t n, LlmResult *results,
               const char *progress);

/* A body answering req (from the endpoint or a batch output line): parses
 * it, classifies it (OK, REFUSED, FILTERED, REASONING; MALFORMED, SCHEMA,
 * EMPTY for unusable ones), stores the final ones in the cache, counts its
 * usage (cost at price_factor times the endpoint's prices) and fills r
 * (status, body, resp, error).  Returns r->status. */
LlmStatus llm_accept_body(LlmClient *c, const ChatRequest *req, const char *body, size_t len,
                          double price_factor, LlmResult *r);

/* The answer stored in the cache for req, classified as llm_run would
 * (from_cache set): 1, or 0 when there is none (r zeroed). */
int llm_cached_result(LlmClient *c, const ChatRequest *req, LlmResult *r);
/* The kind of an HTTP error answer: 429 with code insufficient_quota ->
 * QUOTA, code content_filter -> FILTERED, 429 -> RATE, 5xx/408/409 ->
 * HTTP5XX, other -> HTTP4XX.  er may be NULL (body not understood). */
LlmStatus llm_status_of_error(long http, const ChatError *er);
/* The budget a request reserves: an upper bound of its prompt tokens (its
 * bytes, + 8 a message + 16) plus its token limit, and their cost at the
 * endpoint's prices. */
void llm_request_bound(const LlmClient *c, const ChatRequest *r, double *usd, int64_t *tokens);
/* The usage record, for code that runs requests its own way (batch.c). */
LlmUsage *llm_client_usage(LlmClient *c);

/* What running reqs would cost, for --dry-run: nothing is sent. */
typedef struct {
    size_t requests, cached, to_send;
    double prompt_tokens;      /* of to_send: an estimate (4 bytes a token + 4 a message) */
    double completion_tokens;  /* of to_send: the token limits (an upper bound; 0 where none is set) */
    int unbounded;             /* requests to send without a token limit */
    double cost_usd;           /* at the endpoint's prices; < 0 when they are unknown */
} LlmEstimate;
void llm_estimate(const LlmClient *c, const ChatRequest *reqs, size_t n, LlmEstimate *out);
/* "120 requests: 20 cached, 100 to send; ~4000 prompt + <= 25600 completion tokens; <= $0.0812" */
void llm_estimate_format(const LlmEstimate *est, char *buf, size_t n);

const LlmUsage *llm_usage(const LlmClient *c);
/* "requests 120 (cache 20), sent 130, retries 10, ok 100, failed 0, errors: ..., tokens 1234+567" */
void llm_usage_format(const LlmUsage *u, char *buf, size_t n);

/* ---- plain HTTP to the endpoint, for the Batch API (batch.h) ------------------ */

typedef struct {
    long status;   /* HTTP status; 0 when none arrived */
    char *body;    /* NUL-terminated */
    size_t len;
} LlmHttp;
/* method GET or POST (json: the body, NULL for none) to base_url + path,
 * with the client's key and timeouts.  -1 with e set on a transport error
 * (out->status 0); an HTTP error status is returned in out (0). */
int llm_http(LlmClient *c, const char *method, const char *path, const char *json, LlmHttp *out, Err *e);
/* POST multipart/form-data: field purpose and a file part named "file". */
int llm_http_upload(LlmClient *c, const char *path, const char *purpose, const char *filename, const char *data,
                    size_t len, LlmHttp *out, Err *e);
void llm_http_free(LlmHttp *h);
/* "HTTP 400: MESSAGE (type T, param P, code C)" from a failed call. */
void llm_http_error(const LlmHttp *h, char *buf, size_t n);

#endif

/* serve -- the stand-in OpenAI-compatible endpoint (`hdistill serve
 * --standin`): POST /v1/chat/completions and GET /v1/models over HTTP/1.1
 * (libmicrohttpd), answering hdistill's teacher and critic prompts
 * deterministically from a seed with the humor world of standin.h.  It is a
 * stand-in for tests and demos, never a model; docs/standin.md documents
 * the world, every option and every fault kind.
 *
 * Concurrency: MHD worker threads (epoll) parse and answer; a response due
 * later is prepared at once, its connection suspended, and a timer thread
 * (min-heap of due times) resumes it when its latency has elapsed, so no
 * thread sleeps per request.  Connections held by the `hang` fault are
 * watched for the client closing them and capped in number (max_hung).
 *
 * Determinism: with the canonical key k of a request (chat_request_key) and
 * r = how many times k was received before, the answer content is a
 * function of (seed, k), and the fault and latency drawn are functions of
 * (seed, k, r) -- a retry gets a fresh draw, a rerun the same ones.
 *
 * Dialects (dialect.h, --dialect NAME): the same answers in the shapes of
 * OpenAI (chat and reasoning models), vLLM (with and without a reasoning
 * parser), llama.cpp's llama-server, Ollama and Azure, with their error
 * bodies.  The Files and Batch API (batchsrv.h) is served on /v1/files and
 * /v1/batches.
 *
 * Request log (optional): one JSON object per line and per request, written
 * and flushed when the request ends (answered, closed or cut by shutdown),
 * so lines follow the order requests end, not the order they arrived:
 *   {"time":<unix s when received>,"key":"<64 hex>"|null,"role":"teacher"|
 *    "critic"|"unknown","method":"GET"|"POST"|...,"path":"/v1/...",
 *    "status":<HTTP status>|null,"fault":"none"|"429"|...,"latency_ms":
 *    <delay applied>,"repeat":r,"completed":true|false}
 * key is null when the body did not parse; status is null when nothing was
 * sent (hang); completed tells whether the whole response was handed to
 * the kernel.
 */
#ifndef HDISTILL_SERVE_H
#define HDISTILL_SERVE_H

#include <stdint.h>

#include "standin/dialect.h"
#include "standin/standin.h"
#include "base/util.h"

#define SERVE_MODEL_ID "hdistill-standin"

typedef enum {
    SERVE_FAULT_NONE = 0,
    SERVE_FAULT_429,       /* 429 with "Retry-After: retry_after_s" */
    SERVE_FAULT_500,
    SERVE_FAULT_503,
    SERVE_FAULT_HANG,      /* never answers; closed when the client gives up */
    SERVE_FAULT_MALFORMED, /* 200, body is not JSON */
    SERVE_FAULT_TRUNCATED, /* 200, declares Content-Length, closes half-way */
    SERVE_FAULT_EMPTY,     /* 200, every choice's content is "" */
    SERVE_FAULT_SCHEMA,    /* 200, valid JSON without "choices" */
    /* the quirks of real servers, documented bodies (docs/standin.md): */
    SERVE_FAULT_QUOTA,     /* 429 insufficient_quota (OpenAI billing): code and type insufficient_quota */
    SERVE_FAULT_RETRY_DATE, /* 429 whose Retry-After is an HTTP date retry_after_s ahead */
    SERVE_FAULT_FILTER_400, /* 400 code content_filter, param prompt, with innererror (Azure's prompt filter) */
    SERVE_FAULT_FILTERED,  /* 200, content null, finish_reason content_filter (Azure's completion filter) */
    SERVE_FAULT_REFUSAL,   /* 200, content null, message.refusal set (OpenAI) */
    SERVE_FAULT_THINK,     /* 200, content "<think>\nreasoning\n</think>\n\nanswer" */
    SERVE_FAULT_LONE_THINK, /* 200, content "reasoning\n</think>\n\nanswer" (DeepSeek-R1 without <think>) */
    SERVE_FAULT_PARTS,     /* 200, content as parts: thinking + text (Mistral Magistral) */
    SERVE_FAULT_EXHAUSTED, /* 200, content "", finish_reason length: the limit went to reasoning */
    SERVE_FAULT_KINDS
} ServeFault;

/* "none", "429", "500", "503", "hang", "malformed", "truncated", "empty",
 * "schema", "quota", "retry-date", "filter-400", "filtered", "refusal",
 * "think", "lone-think", "parts", "length-empty"; serve_fault_parse
 * returns the kind or -1. */
const char *serve_fault_name(int fault);
int serve_fault_parse(const char *name);

typedef struct {
    const char *bind;         /* listen address (IPv4 or IPv6 literal); "127.0.0.1" */
    int port;                 /* 0: any free port (see serve_port) */
    const char *port_file;    /* written atomically with "PORT\n" once listening; NULL: none */
    uint64_t seed;
    const char *request_log;  /* appended to; NULL: none */
    double latency_ms;        /* every chat answer is delayed by latency_ms */
    double latency_jitter_ms; /*   + uniform[0, jitter) ms, drawn per (seed, key, repeat) */
    double fault_rate[SERVE_FAULT_KINDS]; /* probability of each kind; sum <= 1; [0] unused */
    int retry_after_s;        /* Retry-After of the 429 fault; 1 */
    double refusal_rate;      /* teacher refusals, per (seed, key) */
    double position_bias;     /* critic: added to the logit of answer 1; 0 */
    double length_bias;       /* critic: times (words(a)-words(b))/words(literal); 0 */
    double tau;               /* critic temperature on the h scale; STANDIN_DEFAULT_TAU */
    int critic_sample;        /* critic writes a sampled answer, not the likelier one; 0 */
    int quiet;                /* serve_start prints nothing (else one line when it builds the world) */
    int threads;              /* MHD worker threads; 0: min(4, online CPUs) */
    int max_hung;             /* hung connections kept at most (oldest closed first); 512 */
    const char *fortunes_dir, *wordnet_dir; /* NULL: the Debian defaults */
    int dialect;              /* ServeDialect (dialect.h); DIALECT_STANDIN */
    const char *served_model; /* requests for another model get the dialect's 404; NULL: any model */
    int ctx_words;            /* llama-server: prompts longer than this many words get its 400; 0: no limit */
    double batch_delay_s;     /* Batch API: seconds from creating a batch to its end; 1 */
    double batch_fail_rate;   /* Batch API: share of lines that fail (500 in the error file); 0 */
    double batch_expire_rate; /* Batch API: share of lines that expire (the batch ends "expired"); 0 */
    const StandinWorld *world; /* borrowed, outlives the server; NULL: serve_start builds one */
} ServeOptions;

/* Defaults: 127.0.0.1, any port, seed 0, no latency, no faults, tau 0.1. */
void serve_options_init(ServeOptions *o);
/* Checks ranges (rates in [0,1], their sum <= 1, ...); -1 with e set. */
int serve_options_check(const ServeOptions *o, Err *e);

typedef struct Server Server;

/* Builds the world (unless given), opens the request log, listens and
 * returns once requests are accepted.  NULL with e set on bad options,
 * missing text sources, or an address that cannot be bound. */
Server *serve_start(const ServeOptions *o, Err *e);
/* The port actually listened on. */
int serve_port(const Server *s);
/* "http://ADDR:PORT/v1" -- the base URL clients use; lives as long as s. */
const char *serve_base_url(const Server *s);
const StandinWorld *serve_world(const Server *s);
/* Answers or closes what is pending, stops, writes the last log lines,
 * closes the log and frees everything.  Accepts NULL. */
void serve_stop(Server *s);

typedef struct {
    int64_t requests;                       /* requests decided, any path */
    int64_t chat;                           /* POST /v1/chat/completions */
    int64_t by_role[3];                     /* StandinRole of chat requests that parsed */
    int64_t by_fault[SERVE_FAULT_KINDS];
    int64_t by_status[600];                 /* [0]: nothing sent (hang) */
    int64_t repeats;                        /* chat requests whose key was seen before */
    int64_t refusals;
    int64_t ended;                          /* requests ended (logged) */
    int64_t completed;                      /* of those, response fully sent */
    int64_t pending;                        /* delayed answers not yet due, now */
    int64_t hung;                           /* connections held by the hang fault, now */
    int64_t files, batches, batches_cancelled, batch_lines; /* the Batch API */
} ServeStats;

void serve_stats(const Server *s, ServeStats *out);

/* `hdistill serve --standin [options]`: options start at argv[1] (argv[0]
 * is ignored; so is an argv[1] equal to "serve", so both main's argv and
 * argv + 1 work).  Parses them (see --help and docs/standin.md), prints
 * "hdistill serve: stand-in listening on URL" on stdout, serves until
 * SIGTERM or SIGINT (blocked in the calling thread and every thread it
 * starts, then taken with sigwait), and returns an exit code: 0 after a
 * clean stop, EXIT_USAGE on bad options, EXIT_RUNTIME when it cannot start. */
int serve_main(int argc, char **argv);

#endif

/* batch -- the OpenAI Batch API through an LlmClient: requests go up as a
 * JSONL file (POST /v1/files, purpose "batch"), a batch is created for it
 * (POST /v1/batches, endpoint /v1/chat/completions, completion_window
 * "24h"), polled (GET /v1/batches/{id}) with a growing interval, and its
 * output_file_id / error_file_id are downloaded (GET /v1/files/{id}/content).
 * Documented at platform.openai.com/docs/guides/batch and
 * /docs/api-reference/batch; the stand-in (serve.h) implements the same.
 *
 * - One line per distinct request: custom_id = the canonical cache key
 *   (chat.h), so duplicates are sent once and every answer lands in the
 *   same durable cache as llm_run's, through the same parser
 *   (llm_accept_body).  Requests already in the cache are not sent.
 * - At most max_lines (50,000) lines and max_bytes (200 MB) per batch; more
 *   are split into several batches.
 * - The journal (a file next to the cache, "<cache>.batches"; one process
 *   at a time, flock) makes a batch submitted exactly once:
 *       HDBJ1 upload <file_id> <n> <key>,<key>,... <fnv16>
 *       HDBJ1 submit <batch_id> <file_id> <fnv16>
 *       HDBJ1 done <batch_id> <fnv16>
 *   one line per record, each written with one write(2) and fsynced before
 *   the next step ("upload" after the file is uploaded and before the batch
 *   is created; "submit" right after it is created, before polling; "done"
 *   once its results are in the cache).  A torn last line is ignored.  A
 *   killed or requeued job finds its submitted batches and polls the SAME
 *   batches again; an upload without its submit record (killed in
 *   between) is looked up in GET /v1/batches by input_file_id and adopted
 *   when the batch exists, created otherwise.
 * - Lines that fail (an error status in the output, expired, missing, or
 *   the batch failed/expired/was cancelled) are returned as failures
 *   (LLM_E_BATCH, or the status their HTTP error maps to, as in llm.h); with
 *   retry = LLM_BATCH_RETRY_SYNC the transient ones are asked again through
 *   llm_run, with LLM_BATCH_RETRY_BATCH in a new batch (up to max_rounds).
 * - A stop signal stops polling at once (nothing new is submitted); the
 *   journal is kept, so the next run resumes; unanswered requests get
 *   LLM_E_STOPPED.
 * - The budget of the client (if any) is reserved per line before upload
 *   (at price_factor times the list prices) and settled as results arrive.
 */
#ifndef HDISTILL_BATCH_H
#define HDISTILL_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "base/config.h"
#include "llm/llm.h"

enum { LLM_BATCH_RETRY_NONE = 0, LLM_BATCH_RETRY_SYNC = 1, LLM_BATCH_RETRY_BATCH = 2 };

typedef struct {
    int64_t batches_created;  /* POST /v1/batches */
    int64_t batches_resumed;  /* found in the journal and polled again */
    int64_t batches_adopted;  /* uploaded but not journaled as submitted: found on the server */
    int64_t lines_submitted;  /* lines uploaded in new batches */
    int64_t duplicates;       /* requests with the key of another one (answered once) */
    int64_t answered;         /* lines answered through the batch */
    int64_t failed_lines;     /* lines that came back with an error */
    int64_t expired_lines;    /* lines not run: expired, cancelled, batch failed, missing */
    int64_t retried_sync;     /* failed lines asked again through llm_run */
    int64_t retried_batch;    /* failed lines sent again in a new batch */
    int64_t polls;            /* GET /v1/batches/{id} */
} LlmBatchStats;

typedef struct {
    const char *journal;      /* NULL: cache path + ".batches" */
    double poll;              /* seconds before the first poll and between the first polls */
    double poll_max;          /* the interval grows 1.5x per poll up to this; 0 = 10 x poll */
    size_t max_lines;         /* per batch; 0 = 50,000 */
    size_t max_bytes;         /* per input file; 0 = 200 MB */
    const char *completion_window; /* NULL = "24h" */
    int retry;                /* LLM_BATCH_RETRY_* for transient failures */
    int max_rounds;           /* RETRY_BATCH: further batches at most */
    double price_factor;      /* billed / list price, for usage and budget (OpenAI: 0.5); 0 = 1 */
    LlmBatchStats *stats;     /* added to when not NULL */
    int fault_exit_after_create; /* tests only: _exit(99) right after creating batch N (1-based) of this
                                    call, before journaling it; 0 = never */
} LlmBatchOptions;

/* Defaults: poll 30 s, 50,000 lines, 200 MB, "24h", no retry, factor 1. */
void llm_batch_options_init(LlmBatchOptions *o);
/* Defaults with ec's batch_poll. */
void llm_batch_options_for(LlmBatchOptions *o, const EndpointConfig *ec);

/* Runs reqs[0..n) through the Batch API; the same result contract as
 * llm_run (results[i] answers reqs[i]; free each with llm_result_free;
 * returns the number of LLM_OK).  Needs a client with a cache: without one
 * every result is LLM_E_BATCH with the reason. */
size_t llm_batch_run(LlmClient *c, const ChatRequest *reqs, size_t n, LlmResult *results, const LlmBatchOptions *o,
                     const char *progress);

#endif

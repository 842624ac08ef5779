/* batchsrv -- the stand-in's Files and Batch API (OpenAI's documented
 * shapes: platform.openai.com/docs/api-reference/files and /batch), so the
 * client's batch mode (llm/batch.h) is tested offline:
 *
 *   POST /v1/files                  multipart/form-data: purpose, file
 *   GET  /v1/files/{id}             the file object
 *   GET  /v1/files/{id}/content     the bytes
 *   POST /v1/batches                {"input_file_id","endpoint":"/v1/chat/completions",
 *                                    "completion_window":"24h","metadata"?}
 *   GET  /v1/batches/{id}           the batch object
 *   POST /v1/batches/{id}/cancel
 *   GET  /v1/batches?limit=&after=  newest first, has_more
 *
 * A batch is "validating" for the first tenth of delay_s, then
 * "in_progress" (request_counts growing), then at delay_s it ends:
 * every line is answered like a chat request to the stand-in (the answer
 * function), except a share expire_rate that expires (error file line
 * {"custom_id","response":null,"error":{"code":"batch_expired",...}}; the
 * batch ends "expired") and a share fail_rate that fails (error file line
 * with response.status_code 500 and an error body).  Draws are functions of
 * (seed, batch id, custom_id): a line sent again in a new batch draws afresh.  Output lines: {"id":"batch_req_..","custom_id",
 * "response":{"status_code":200,"request_id","body":{...}},"error":null}.
 * An input file with a bad line, a duplicate custom_id or more than 50,000
 * lines gives a batch that is "failed" with errors.data.  Everything lives
 * in memory; thread-safe.
 */
#ifndef HDISTILL_BATCHSRV_H
#define HDISTILL_BATCHSRV_H

#include <stddef.h>
#include <stdint.h>

typedef struct BatchStore BatchStore;

typedef struct {
    double delay_s;     /* from creation to the end of a batch */
    double fail_rate;   /* share of lines that fail */
    double expire_rate; /* share of lines that expire */
    uint64_t seed;
} BatchStoreOptions;

/* Answers one chat request body: the response body (malloc'd), *status its
 * HTTP status. */
typedef char *(*BatchAnswerFn)(void *ctx, const char *body, size_t len, int *status);

BatchStore *batchstore_create(const BatchStoreOptions *o, BatchAnswerFn answer, void *ctx);
void batchstore_destroy(BatchStore *b); /* accepts NULL */

/* 1 if url is one of the paths above. */
int batchstore_path(const char *url);

/* Handles one request (url without its query; after/limit from it, NULL /
 * 0 when absent).  Returns the status; *resp (malloc'd) and *len the body. */
int batchstore_handle(BatchStore *b, const char *method, const char *url, const char *content_type, const char *body,
                      size_t len, const char *after, int limit, char **resp, size_t *resp_len);

typedef struct {
    int64_t files, batches, cancelled, lines;
} BatchStoreStats;
void batchstore_stats(BatchStore *b, BatchStoreStats *out);

#endif

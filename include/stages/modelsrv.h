/* modelsrv -- `hdistill serve --model RUN_DIR|CHECKPOINT.h5|HF_DIR`: the
 * student (infer.h) as an OpenAI-compatible endpoint behind the stand-in's
 * HTTP layer (standin/serve.h with a chat handler): GET /v1/models lists
 * the model (the source's base name, or --model-name); POST
 * /v1/chat/completions puts the last user message to the student in the
 * run's prompt format and answers in OpenAI's chat.completion shape, with
 * n, temperature, top_p, seed, max_tokens / max_completion_tokens,
 * logprobs + top_logprobs and usage; errors in OpenAI's shape
 * {"error":{"message","type","param","code"}} (400 naming the param, 404
 * for another model or an unknown path, 405 for a wrong method).
 *
 * Decoding: temperature 0 is beam search (width max(eval.beam, n)), the n
 * best beams; temperature > 0 samples n outputs with temperature, top_p and
 * seed (0 when not given: the same request gets the same answer).  Requests
 * are decoded one at a time, each in the HTTP worker thread that received
 * it (the others wait); docs/generate.md has every rule and limit.
 */
#ifndef HDISTILL_MODELSRV_H
#define HDISTILL_MODELSRV_H

#include <stddef.h>

#include "stages/infer.h"

#define MODELSRV_MAX_N 16 /* choices per request at most */

typedef struct ModelSrv ModelSrv;

/* An answerer over m (borrowed: it must outlive the result) serving the
 * model id name (copied).  Free with modelsrv_destroy (accepts NULL). */
ModelSrv *modelsrv_create(Infer *m, const char *name);
void modelsrv_destroy(ModelSrv *ms);

/* Answers one POST /v1/chat/completions body: returns the HTTP status (200,
 * 400, 404) and sets *resp to the JSON body (malloc'd; the caller frees).
 * ctx is the ModelSrv (the signature of ServeOptions.chat).  Thread-safe:
 * decoding is serialised inside. */
int modelsrv_answer(void *ctx, const char *body, size_t len, char **resp);

/* `hdistill serve --model SRC [--port P] [--host H] [--port-file F]
 * [--model-name NAME] [--threads N] [--set k=v]... [--quiet]`: argv[0] is
 * ignored, and so is an argv[1] "serve".  Loads the student, prints
 * "hdistill serve: student NAME listening on URL", serves until SIGTERM or
 * SIGINT; returns 0 after a clean stop, 2 on bad options or a source that
 * cannot be read (one line), 1 when it cannot listen. */
int modelsrv_main(int argc, char **argv);

#endif

/* infer -- the student you can try, in one process (no MPI): a student read
 * from
 *   - a run directory: its newest checkpoint that reads back whole
 *     (student_read_source: ckpt.h's one policy, never quarantining), with
 *     the configuration that checkpoint was written under;
 *   - a checkpoint file (ckpt/step_NNNNNNNN.h5), with its configuration;
 *   - a Hugging Face model directory (config.json, safetensors weights,
 *     tokenizer.json), read as model.init_from reads one (io/hfmodel.h: the
 *     Llama-style families), with the default configuration;
 * each configuration then changed by `--set key=value` assignments.  Inputs
 * are put to the student in the prompt format of that configuration
 * (student.format, student.instruction, tokenizer.separator: prompt.h, as
 * training and evaluation put them) and decoded by student_decode (gen.h);
 * a generated sequence is scored token by token by one full forward pass
 * (model_forward) for its log-probabilities and top alternatives.
 * Used by `hdistill generate` (generate.h) and `hdistill serve --model`
 * (modelsrv.h).  Not thread-safe: one caller at a time.
 */
#ifndef HDISTILL_INFER_H
#define HDISTILL_INFER_H

#include "base/config.h"
#include "engine/gen.h"
#include "stages/student.h"

typedef enum { INFER_RUN = 0, INFER_CHECKPOINT = 1, INFER_HF = 2 } InferKind;

typedef struct {
    Student s;      /* model, tokenizer, prompt format (s.fmt), end id (s.eot) */
    Config cfg;     /* the checkpoint's configuration (HF: the defaults) with the assignments */
    InferKind kind;
    char *name;     /* the source's base name (without a trailing ".h5"): the served model id */
    char *path;     /* what was read: the checkpoint file, or the Hugging Face directory */
    int threads;    /* kernel threads (run.threads, else OMP_NUM_THREADS, else the cores) */
} Infer;

/* Reads src into m (sets: n_sets "section.key=value" strings applied after
 * the configuration read) and starts the kernel threads.  -1 with e one
 * line naming the path (or the key) and a hint; m then holds nothing. */
int infer_open(Infer *m, const char *src, char *const *sets, int n_sets, Err *e);
void infer_close(Infer *m); /* accepts NULL and a closed m */

/* Decoding options of the configuration: GEN_BEAM -> eval.beam, eval.max_new,
 * k 1 (evaluation's settings); GEN_SAMPLE -> critique.k, critique.temperature,
 * critique.top_p, critique.max_new (the critique rounds'); seed 0. */
void infer_gen_options(const Infer *m, GenMode mode, GenOptions *o);

#define INFER_MAX_TOP 20

/* One scored token: its log-probability under the model (temperature 1, no
 * truncation: float64 log-softmax of the float32 logits over the tokenizer's
 * ids) and the n_top most probable tokens there (most probable first, ties
 * by the smaller id). */
typedef struct {
    int id;
    double logprob;
    int n_top;
    int top_id[INFER_MAX_TOP];
    double top_logprob[INFER_MAX_TOP];
} InferToken;

/* Scores ids[0..n), then the end id when with_eot, after prompt[0..plen)
 * (plen >= 1, plen + n + with_eot <= max_seq_len + 1) with one forward pass;
 * out[0 .. n + with_eot) get them with top <= INFER_MAX_TOP alternatives. */
void infer_score(Infer *m, const int *prompt, int plen, const int *ids, int n, int with_eot, int top, InferToken *out);

/* The text of token id alone, appended to b: its bytes with every byte that
 * is not part of well-formed UTF-8 (a token may end inside a character) and
 * every NUL as U+FFFD; raw (may be NULL) gets the bytes as they are. */
void infer_token_text(const Infer *m, int id, ByteBuf *b, ByteBuf *raw);

#endif

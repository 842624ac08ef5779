/* student -- the student of a run directory: its model, tokenizer, prompt
 * format, training state and metric history, read from the newest readable
 * checkpoint by rank 0 and broadcast to every rank; plus prompt encoding,
 * output decoding in the format the model was trained on (prompt,
 * separator -> target, end of text), and distributed generation.
 *
 * The one place that reads a checkpoint into memory: SFT resuming (train.c),
 * the critique rounds, evaluation and export all come through rank 0's
 * student_read_newest (then student_bcast_state; student_load does both).
 * The policy for an unreadable checkpoint is ckpt.h's
 * ckpt_find_newest: skipped with a warning, renamed "<path>.bad" when the
 * caller owns the run (quarantine = 1), and the next older one is used.
 */
#ifndef HDISTILL_STUDENT_H
#define HDISTILL_STUDENT_H

#include "base/comm.h"
#include "base/config.h"
#include "engine/gen.h"
#include "engine/model.h"
#include "engine/optim.h"
#include "engine/prompt.h"
#include "engine/tokenizer.h"
#include "io/ckpt.h"
#include "io/metrics.h"

typedef struct {
    Model model;
    Tokenizer *tok;
    TokenizerData td;
    TrainState st;
    MetricLog log; /* rank 0 */
    ValLog val;    /* rank 0 */
    char *path;    /* the checkpoint read (rank 0); NULL for a fresh model */
    PromptFormat fmt; /* how inputs are put to it (student.format) */
    int eot;          /* the id that ends an answer (fmt.end) */
} Student;

/* The model of the configuration: the Hugging Face directory in
 * model.init_from (its config.json), else model.preset with model.n_layer/
 * n_head/d_model/max_seq_len overrides (GPT-2 presets; the Llama presets
 * only take max_seq_len).  vocab: the tokenizer's size, or 0 when not known
 * yet (GPT-2 presets then keep 0); a model with fewer token rows than vocab is
 * an error, as is train.seq_len beyond the model's positions.  -1 with e
 * naming the key. */
int student_model_config(const Config *cfg, int vocab, ModelConfig *mc, Err *e);
/* model.init_from checked against the model mc before anything is paid:
 * a Hugging Face directory (every tensor's name and shape) or a GPT-2
 * model.safetensors.  0 when unset; -1 with e naming the key, file and
 * tensor. */
int student_check_init_from(const Config *cfg, const ModelConfig *mc, Err *e);
/* Loads model.init_from's weights into m (initialised with mc); info gets a
 * one-line summary.  -1 with e set. */
int student_load_init_from(const Config *cfg, Model *m, char *info, size_t ninfo, Err *e);
/* The run's tokenizer from a file: tokenizer.type gpt2 (vocab.json +
 * merges.txt) or hf (tokenizer.path, else model.init_from's directory).
 * NULL with e set; bpe tokenizers are trained (train.c), not loaded. */
Tokenizer *student_load_tokenizer(const Config *cfg, Err *e);

/* Collective.  Loads the newest readable checkpoint of cfg->run.dir into s.
 * opt, if given, is initialised with train.beta1, beta2, eps and grad_clip
 * and weight decay 0 (its one user, the critique phase, trains without
 * decay; train.weight_decay is SFT's), and gets the checkpoint's moments.
 * -1 with e set (same status on every rank) if there is none; s and opt
 * then hold nothing to free. */
int student_load(Student *s, const Config *cfg, const Comm *comm, Optim *opt, int quarantine, Err *e);

/* Rank 0, inside a collective section: reads the whole state of the
 * checkpoint meta->path (parameters, moments when opt is given, training
 * state, logs) into s->model, which is initialised with meta->cfg.  If it
 * does not read back whole, the checkpoint is quarantined (when asked) and
 * the next older one with the same model configuration is tried (meta is
 * replaced).  Returns 0 when one was read (s->path set), -1 when none was
 * (s's buffers may then hold partial data: the caller starts afresh). */
int student_read_newest(Student *s, Optim *opt, const char *ckpt_dir, CkptMeta *meta, int quarantine);

/* Collective: rank 0's parameters, moments (opt may be NULL) and training
 * state to every rank. */
void student_bcast_state(Student *s, Optim *opt);

/* The tokenizer from td (every rank) and the prompt format of
 * student.format; -1 with e set (chat asked of a tokenizer without chat
 * tokens). */
int student_set_tokenizer(Student *s, const Config *cfg, Err *e);

void student_free(Student *s);

/* the prompt's ids in the student's format (appended to out) */
void student_prompt(const Student *s, const char *text, IntVec *out);
/* text of a generated sequence (malloc'd): decoded, made valid UTF-8 (U+FFFD
 * for broken characters), white space collapsed and trimmed */
char *student_text(const Student *s, const int *ids, int n);

/* Collective: decodes texts[0..n) (every rank passes the same list), each
 * rank its contiguous share; rank 0 receives n*o->k output strings in input
 * order in *out (malloc'd array of malloc'd strings; NULL elsewhere), and,
 * if tok_len is non-NULL, their token counts.  Seeds come from the global
 * input index, so the outputs do not depend on the rank count. */
void student_generate(const Student *s, const GenOptions *o, const Comm *comm, char *const *texts, int n,
                      char ***out, int **tok_len);

/* Collective: the same, chunk inputs at a time (each chunk decoded by every
 * rank, its share each): rank 0 gets each chunk's outputs as soon as it is
 * done -- fn(ctx, c0, c1, texts, tok_len) with the (c1-c0)*k outputs of
 * inputs [c0, c1) in input order, both arrays then fn's to free -- so it can
 * act on them while later chunks are decoded.  The outputs are those of
 * student_generate (seeds come from the global input index). */
typedef void (*StudentChunkFn)(void *ctx, int c0, int c1, char **texts, int *tok_len);
void student_generate_chunks(const Student *s, const GenOptions *o, const Comm *comm, char *const *texts, int n,
                             int chunk, StudentChunkFn fn, void *ctx);

#endif

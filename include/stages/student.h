/* student -- the trained student of a run directory, for the stages after
 * supervised fine-tuning (critique rounds, evaluation): the newest readable
 * checkpoint's model, tokenizer, training state and metric history, read by
 * rank 0 and broadcast, plus prompt encoding and output decoding in the
 * format the model was trained on (prompt, separator -> target, end). */
#ifndef HDISTILL_STUDENT_H
#define HDISTILL_STUDENT_H

#include "io/ckpt.h"
#include "base/comm.h"
#include "base/config.h"
#include "engine/gen.h"
#include "engine/model.h"
#include "engine/optim.h"
#include "engine/tokenizer.h"

typedef struct {
    Model model;
    Tokenizer *tok;
    TokenizerData td;
    TrainState st;
    MetricLog log; /* rank 0 */
    ValLog val;    /* rank 0 */
    char *path;    /* checkpoint read (rank 0) */
    int sep[64], n_sep, eot;
} Student;

/* Collective.  Loads the newest readable checkpoint of cfg->run.dir (opt, if
 * given, is initialised and gets the moments).  -1 with e set on rank 0 if
 * there is none; every rank returns the same status. */
int student_load(Student *s, const Config *cfg, const Comm *comm, Optim *opt, Err *e);
void student_free(Student *s);

/* prompt ids + separator ids (appended to out) */
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

#endif

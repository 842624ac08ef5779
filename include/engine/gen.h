/* gen -- decoding the student with a key/value cache (model.h).
 *
 * Modes: greedy; sampling with temperature and nucleus (top-p, Holtzman et
 * al. 2020) truncation, k candidates per input (the critique phase's k=6);
 * beam search of width W (the paper evaluates with beam 5), with the
 * length-normalised score  sum(log p) / len^alpha  over the generated tokens
 * including the end-of-text token (alpha = length_penalty; 1 as in Hugging
 * Face's default), keeping the W best finished hypotheses.
 *
 * Every random draw comes from a stream seeded by (seed, global input index,
 * candidate index), so the output of an input does not depend on which
 * rank decodes it or on what else is in its batch.  Inputs are decoded in
 * batches of up to `batch` sequences (sampled candidates or beam
 * hypotheses) that share one cache: every prompt of a batch goes through the
 * model in one call, and each step feeds one token of every live sequence of
 * every input of the batch together (the beams of many inputs share each
 * step's matrix products).  Candidates of one input share the rows of their
 * prompt, and a beam hypothesis shares its parent's rows (model.h), so the
 * cache is never copied.  The per-row work after the logits (softmax, top-p,
 * draws, a beam's best continuations) runs on the thread pool.
 */
#ifndef HDISTILL_GEN_H
#define HDISTILL_GEN_H

#include <stdint.h>

#include "engine/model.h"
#include "base/util.h"

typedef enum { GEN_GREEDY = 0, GEN_SAMPLE = 1, GEN_BEAM = 2 } GenMode;

typedef struct {
    GenMode mode;
    int max_new;           /* generated tokens at most (EOT included) */
    double temperature;    /* sampling */
    double top_p;          /* sampling, in (0, 1] */
    int k;                 /* sampling: candidates per input; beam: outputs kept per input (<= beam) */
    int beam;              /* beam width */
    double length_penalty; /* beam: alpha */
    uint64_t seed;
    int batch;             /* sequences decoded together (128) */
    int n_vocab;           /* ids >= n_vocab are never generated (a tokenizer smaller than the model's
                              embedding); 0 = every id of the model */
} GenOptions;

void gen_options_init(GenOptions *o);

/* One generated sequence. */
typedef struct {
    int n;
    int *ids;      /* without the end-of-text token */
    int finished;  /* ended with end-of-text (else hit max_new) */
    double logp;   /* sum of log-probabilities of the generated tokens (EOT included if finished) */
    double score;  /* beam: the normalised score; else logp */
} GenSeq;

void gen_seq_free(GenSeq *s);

/* Decodes n_in inputs (prompts[i][0..plen[i]) : prompt + separator ids).
 * out gets n_in * o->k sequences (input-major; for beam the best first).
 * first_index: the global index of prompts[0] (seeds).  The model's
 * max_seq_len bounds plen + max_new. */
void gen_run(const Model *m, const GenOptions *o, const int *const *prompts, const int *plen, int n_in,
             int eot, int64_t first_index, GenSeq *out);

/* Draws a token from softmax(logits / temperature) truncated to the smallest
 * set of top tokens whose probability reaches top_p; temperature 0 = argmax.
 * scratch: 3*V floats, iscratch: 2*V ints.  Returns the token; *logp its log-probability
 * under the untruncated softmax at temperature 1 (what the model assigns). */
int gen_sample_token(const float *logits, int V, double temperature, double top_p, Rng *r, float *scratch,
                     int *iscratch, double *logp);

#endif

/* pref -- the critique-phase objectives over (chosen, rejected) pairs, as
 * functions of sequence log-probabilities.  The model returns per-token
 * log-probs (model.h); a sequence's log-prob is their sum over its target
 * tokens.  Each objective here gives the mean loss over the pairs and
 * dL/dlogpi for every sequence, which becomes the per-token gradient g of
 * model_backward (every target token of a sequence gets its sequence's value).
 *
 *  dpo  (Rafailov et al. 2023):
 *       L = -log sigma(beta * [(lw - rw) - (ll - rl)])
 *       lw, ll: policy log-probs of chosen/rejected; rw, rl: the frozen
 *       reference's (the round's starting model).
 *  brio (Liu et al. 2022), as adapted by Ravi et al. 2024:
 *       s = logpi / len (length-normalised), margin m = log(2) / lambda with
 *       lambda the mean output length of the round's pairs;
 *       L = rank_weight * max(0, m - (s_w - s_l)) + ce_weight * (-lw / len_w)
 *  sd   (self-distillation baseline): L = -lw / len_w (cross-entropy per token
 *       on the chosen sequence only).
 */
#ifndef HDISTILL_PREF_H
#define HDISTILL_PREF_H

typedef enum { PREF_DPO = 0, PREF_BRIO = 1, PREF_SD = 2 } PrefObjective;

typedef struct {
    PrefObjective obj;
    double beta;        /* dpo */
    double margin;      /* brio: log(2)/lambda */
    double rank_weight; /* brio */
    double ce_weight;   /* brio */
} PrefParams;

typedef struct {
    double lw, ll;   /* policy log-probs of chosen / rejected */
    double rw, rl;   /* reference log-probs (dpo) */
    int len_w, len_l; /* target tokens (brio, sd) */
} PrefPair;

/* Mean loss over n pairs; dw[i], dl[i] = dL/dlw_i, dL/dll_i of the mean.
 * Pairs are summed in index order (deterministic). */
double pref_loss(const PrefParams *p, const PrefPair *pairs, int n, double *dw, double *dl);

/* Same, but divided by `norm` instead of n (the global pair count when a
 * rank holds only its share of the batch). */
double pref_loss_sum(const PrefParams *p, const PrefPair *pairs, int n, double norm, double *dw, double *dl);

/* Fraction of pairs the policy ranks right (lw/len_w > ll/len_l for brio
 * and sd; the DPO implicit reward margin > 0 for dpo). */
double pref_accuracy(const PrefParams *p, const PrefPair *pairs, int n);

#endif

/* optim -- AdamW (Loshchilov & Hutter 2019) over the model's flat buffers,
 * with global-norm gradient clipping and the warm-up + cosine schedule.
 * Decoupled weight decay applies to tensors marked decay (matrices and
 * embeddings), never to biases or LayerNorm.  Moments m and v are flat
 * buffers parallel to the parameters. */
#ifndef HDISTILL_OPTIM_H
#define HDISTILL_OPTIM_H

#include <stdint.h>

#include "engine/model.h"

typedef struct {
    double beta1, beta2, eps, weight_decay, grad_clip;
    /* the parameters [lo, hi) this optimizer updates (all of them, or one
     * rank's slice with a sharded state: ZeRO stage 1) */
    size_t lo, hi;
    float *m, *v; /* hi - lo each, zeroed: m[i] belongs to parameter lo + i */
} Optim;

/* For all parameters. */
void optim_init(Optim *o, const Model *model, double beta1, double beta2, double eps,
                double weight_decay, double grad_clip);
/* For parameters [lo, hi) only. */
void optim_init_range(Optim *o, const Model *model, double beta1, double beta2, double eps,
                      double weight_decay, double grad_clip, size_t lo, size_t hi);
void optim_free(Optim *o);
/* Clips model->grads to grad_clip (if > 0) by global norm and applies one
 * AdamW update as step t (1-based) with learning rate lr.  Returns the
 * gradient norm before clipping.  (optim_apply with the norm of all grads.) */
double optim_step(Optim *o, Model *model, double lr, int64_t t);
/* Sum of squares of model->grads over [lo, hi). */
double optim_sumsq(const Optim *o, const Model *model);
/* Clipping by the given global norm, then AdamW on [lo, hi) only. */
void optim_apply(Optim *o, Model *model, double lr, int64_t t, double gnorm);

/* Linear warm-up for warmup steps, then cosine from lr to lr*min_frac at
 * step total (or constant if cosine is 0).  s is 0-based. */
double optim_lr(double lr, double min_frac, int64_t warmup, int cosine, int64_t s, int64_t total);

#endif

/* optim -- see include/engine/optim.h. */
#include "engine/optim.h"

#include <math.h>
#include <stdlib.h>

#include "engine/ops.h"
#include "base/util.h"

void optim_init(Optim *o, const Model *model, double beta1, double beta2, double eps,
                double weight_decay, double grad_clip) {
    o->beta1 = beta1, o->beta2 = beta2, o->eps = eps;
    o->weight_decay = weight_decay, o->grad_clip = grad_clip;
    o->m = xmalloc_aligned(model->n_params * sizeof(float));
    o->v = xmalloc_aligned(model->n_params * sizeof(float));
}

void optim_free(Optim *o) {
    if (!o) return;
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

double optim_step(Optim *o, Model *model, double lr, int64_t t) {
    long n = (long)model->n_params;
    double gnorm = sqrt(ops_sumsq(model->grads, n));
    if (o->grad_clip > 0 && gnorm > o->grad_clip) ops_scale(model->grads, (float)(o->grad_clip / gnorm), n);
    for (int i = 0; i < model->n_tensors; i++) {
        const ModelTensor *ten = &model->tensors[i];
        size_t off = ten->offset;
        ops_adamw(model->params + off, model->grads + off, o->m + off, o->v + off, (long)ten->numel,
                  (float)lr, (float)o->beta1, (float)o->beta2, (float)o->eps,
                  ten->decay ? (float)o->weight_decay : 0.0f, (int)t);
    }
    return gnorm;
}

double optim_lr(double lr, double min_frac, int64_t warmup, int cosine, int64_t s, int64_t total) {
    if (s < warmup) return lr * (double)(s + 1) / (double)warmup;
    if (!cosine) return lr;
    double span = (double)(total - warmup);
    double prog = span > 0 ? (double)(s - warmup) / span : 1.0;
    if (prog > 1) prog = 1;
    double lo = lr * min_frac;
    return lo + 0.5 * (lr - lo) * (1.0 + cos(M_PI * prog));
}

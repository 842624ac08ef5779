/* optim -- see include/engine/optim.h. */
#include "engine/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ops.h"
#include "base/util.h"

void optim_init_range(Optim *o, const Model *model, double beta1, double beta2, double eps, double weight_decay,
                      double grad_clip, size_t lo, size_t hi) {
    CHECK(lo <= hi && hi <= model->n_params, "optimizer range [%zu, %zu) of %zu parameters", lo, hi, model->n_params);
    o->beta1 = beta1, o->beta2 = beta2, o->eps = eps;
    o->weight_decay = weight_decay, o->grad_clip = grad_clip;
    o->lo = lo, o->hi = hi;
    size_t n = hi - lo > 0 ? hi - lo : 1;
    o->m = xmalloc_aligned(n * sizeof(float));
    o->v = xmalloc_aligned(n * sizeof(float));
    memset(o->m, 0, n * sizeof(float));
    memset(o->v, 0, n * sizeof(float));
}

void optim_init(Optim *o, const Model *model, double beta1, double beta2, double eps, double weight_decay,
                double grad_clip) {
    optim_init_range(o, model, beta1, beta2, eps, weight_decay, grad_clip, 0, model->n_params);
}

void optim_free(Optim *o) {
    if (!o) return;
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

double optim_sumsq(const Optim *o, const Model *model) {
    return ops_sumsq(model->grads + o->lo, (long)(o->hi - o->lo));
}

void optim_apply(Optim *o, Model *model, double lr, int64_t t, double gnorm) {
    long n = (long)(o->hi - o->lo);
    if (o->grad_clip > 0 && gnorm > o->grad_clip)
        ops_scale(model->grads + o->lo, (float)(o->grad_clip / gnorm), n);
    for (int i = 0; i < model->n_tensors; i++) {
        const ModelTensor *ten = &model->tensors[i];
        size_t a = ten->offset > o->lo ? ten->offset : o->lo;
        size_t b = ten->offset + ten->numel < o->hi ? ten->offset + ten->numel : o->hi;
        if (a >= b) continue;
        ops_adamw(model->params + a, model->grads + a, o->m + (a - o->lo), o->v + (a - o->lo), (long)(b - a),
                  (float)lr, (float)o->beta1, (float)o->beta2, (float)o->eps,
                  ten->decay ? (float)o->weight_decay : 0.0f, (int)t);
    }
}

double optim_step(Optim *o, Model *model, double lr, int64_t t) {
    double gnorm = sqrt(optim_sumsq(o, model));
    optim_apply(o, model, lr, t, gnorm);
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

/* test_optim -- engine/optim.h.  optim_step over a small GPT-2's flat
 * buffers against a naive double-precision AdamW written here (global-norm
 * clipping, bias correction, decoupled weight decay on the tensors marked
 * decay) for several steps with and without clipping, on 1 and 2 threads;
 * the returned norm is the norm before clipping and the gradients are left
 * clipped; with zero gradients only the decay tensors change, each by
 * exactly (1 - lr*wd); decay marks exactly the matrices and embeddings.
 * optim_lr at the boundaries of warm-up and cosine, constant, and
 * degenerate schedules. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "engine/optim.h"
#include "base/util.h"
#include "test.h"

typedef struct {
    double *p, *m, *v;
} Ref;

/* one AdamW step in double on the reference; g is the raw gradient */
static double ref_step(Ref *r, const Model *md, const float *g, double lr, double b1, double b2, double eps, double wd,
                       double clip, int64_t t) {
    size_t n = md->n_params;
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
    double norm = sqrt(ss), scale = clip > 0 && norm > clip ? clip / norm : 1.0;
    for (int k = 0; k < md->n_tensors; k++) {
        const ModelTensor *ten = &md->tensors[k];
        double w = ten->decay ? wd : 0.0;
        for (size_t i = ten->offset; i < ten->offset + ten->numel; i++) {
            double gi = g[i] * scale;
            r->m[i] = b1 * r->m[i] + (1 - b1) * gi;
            r->v[i] = b2 * r->v[i] + (1 - b2) * gi * gi;
            double mh = r->m[i] / (1 - pow(b1, (double)t)), vh = r->v[i] / (1 - pow(b2, (double)t));
            r->p[i] = r->p[i] * (1 - lr * w) - lr * mh / (sqrt(vh) + eps);
        }
    }
    return norm;
}

static double max_rel(const float *a, const double *b, size_t n, double floor_) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]), s = fabs(b[i]) > floor_ ? fabs(b[i]) : floor_;
        if (!(d / s <= worst)) worst = d / s;
    }
    return worst;
}

static void against_reference(int threads) {
    par_init(threads);
    ModelConfig cfg = model_config_gpt2(2, 2, 64, 1100, 16);
    Model md;
    model_init(&md, &cfg);
    model_init_weights(&md, 3);
    const double b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1, clip = 1.0;
    Optim o;
    optim_init(&o, &md, b1, b2, eps, wd, clip);
    size_t n = md.n_params;
    int zero = 1;
    for (size_t i = 0; i < n; i++) zero &= o.m[i] == 0 && o.v[i] == 0;
    EXPECT(zero && o.beta1 == b1 && o.beta2 == b2 && o.eps == eps && o.weight_decay == wd && o.grad_clip == clip,
           "optim_init: settings kept, moments zeroed");
    Ref r = {xmalloc(sizeof(double) * n), xcalloc(n, sizeof(double)), xcalloc(n, sizeof(double))};
    for (size_t i = 0; i < n; i++) r.p[i] = md.params[i];
    float *g = xmalloc(sizeof(float) * n);
    Rng rng;
    rng_seed(&rng, 17);
    /* gradient scales: norms of about 4, 0.4, 4, 0.4, 8, 0.1 (clip 1) */
    const double sigma[] = {0.01, 0.001, 0.01, 0.001, 0.02, 0.00025};
    int nsteps = (int)(sizeof sigma / sizeof sigma[0]), clipped = 0, unclipped = 0;
    for (int s = 0; s < nsteps; s++) {
        for (size_t i = 0; i < n; i++) g[i] = (float)(sigma[s] * rng_normal(&rng));
        memcpy(md.grads, g, sizeof(float) * n);
        double lr = optim_lr(1e-2, 0.1, 2, 1, s, nsteps);
        double want = ref_step(&r, &md, g, lr, b1, b2, eps, wd, clip, s + 1);
        double got = optim_step(&o, &md, lr, s + 1);
        EXPECT(fabs(got - want) <= 1e-6 * want, "%d threads step %d: norm %.9g, want %.9g", threads, s + 1, got, want);
        double after = 0;
        for (size_t i = 0; i < n; i++) after += (double)md.grads[i] * md.grads[i];
        after = sqrt(after);
        if (want > clip) {
            clipped++;
            EXPECT(fabs(after - clip) < 1e-5, "step %d: gradients not clipped to 1 (norm %g)", s + 1, after);
        } else {
            unclipped++;
            EXPECT(memcmp(md.grads, g, sizeof(float) * n) == 0, "step %d: gradients below the clip changed", s + 1);
        }
        double ep = max_rel(md.params, r.p, n, 1e-3), em = max_rel(o.m, r.m, n, 1e-5), ev = max_rel(o.v, r.v, n, 1e-10);
        EXPECT(ep < 1e-4 && em < 1e-4 && ev < 1e-4, "%d threads step %d: params %.3g m %.3g v %.3g from the reference",
               threads, s + 1, ep, em, ev);
    }
    EXPECT(clipped >= 2 && unclipped >= 2, "both clipped and unclipped steps were tested");
    /* grad_clip 0: no clipping at all */
    Optim o2;
    optim_init(&o2, &md, b1, b2, eps, wd, 0.0);
    for (size_t i = 0; i < n; i++) md.grads[i] = g[i] = 1.0f;
    double nrm = optim_step(&o2, &md, 1e-3, 1);
    EXPECT(fabs(nrm - sqrt((double)n)) < 1e-6 * nrm && memcmp(md.grads, g, sizeof(float) * n) == 0,
           "grad_clip 0 leaves the gradients alone");
    optim_free(&o2);
    optim_free(&o);
    EXPECT(o.m == NULL && o.v == NULL, "optim_free resets");
    optim_free(NULL);
    free(r.p), free(r.m), free(r.v), free(g);
    model_free(&md);
}

static void decay_only(void) {
    ModelConfig cfg = model_config_gpt2(2, 2, 16, 60, 8);
    Model md;
    model_init(&md, &cfg);
    model_init_weights(&md, 9);
    int marks = 1;
    for (int k = 0; k < md.n_tensors; k++) marks &= md.tensors[k].decay == (md.tensors[k].ndim == 2);
    EXPECT(marks, "decay marks exactly the matrices and embeddings (2-D tensors)");
    float *before = xmalloc(sizeof(float) * md.n_params);
    memcpy(before, md.params, sizeof(float) * md.n_params);
    Optim o;
    optim_init(&o, &md, 0.9, 0.999, 1e-8, 0.5, 1.0);
    model_zero_grad(&md);
    const double lr = 0.01;
    EXPECT(optim_step(&o, &md, lr, 1) == 0.0, "zero gradient, zero norm");
    int dec_ok = 1, nodec_ok = 1, ndec = 0;
    for (int k = 0; k < md.n_tensors; k++) {
        const ModelTensor *t = &md.tensors[k];
        for (size_t i = t->offset; i < t->offset + t->numel; i++) {
            if (t->decay) {
                double want = before[i] * (1.0 - lr * 0.5);
                dec_ok &= fabs(md.params[i] - want) <= 1e-6 * fabs(want) + 1e-12;
                ndec++;
            } else {
                nodec_ok &= md.params[i] == before[i];
            }
        }
    }
    EXPECT(dec_ok && ndec > 0, "decay tensors shrink by exactly 1 - lr*wd");
    EXPECT(nodec_ok, "biases and LayerNorm never decay");
    optim_free(&o);
    free(before);
    model_free(&md);
}

static void schedule(void) {
    const double lo = 0.1;
    EXPECT(fabs(optim_lr(1, lo, 4, 1, 0, 14) - 0.25) < 1e-15, "warm-up step 0: lr/warmup");
    EXPECT(fabs(optim_lr(1, lo, 4, 1, 1, 14) - 0.5) < 1e-15, "warm-up step 1");
    EXPECT(optim_lr(1, lo, 4, 1, 3, 14) == 1.0, "last warm-up step reaches lr");
    EXPECT(optim_lr(1, lo, 4, 1, 4, 14) == 1.0, "cosine starts at lr");
    EXPECT(fabs(optim_lr(1, lo, 4, 1, 9, 14) - 0.55) < 1e-12, "cosine midpoint: (lr + lr*min_frac)/2, got %g",
           optim_lr(1, lo, 4, 1, 9, 14));
    EXPECT(fabs(optim_lr(1, lo, 4, 1, 14, 14) - lo) < 1e-15, "lr*min_frac at step total");
    EXPECT(fabs(optim_lr(1, lo, 4, 1, 40, 14) - lo) < 1e-15, "stays at the minimum after total");
    int mono = 1, rising = 1;
    for (int s = 4; s < 30; s++) mono &= optim_lr(1, lo, 4, 1, s + 1, 14) <= optim_lr(1, lo, 4, 1, s, 14);
    for (int s = 0; s < 3; s++) rising &= optim_lr(1, lo, 4, 1, s + 1, 14) > optim_lr(1, lo, 4, 1, s, 14);
    EXPECT(mono && rising, "rises during warm-up, never rises after");
    EXPECT(optim_lr(3e-4, lo, 4, 0, 4, 14) == 3e-4 && optim_lr(3e-4, lo, 4, 0, 1000, 14) == 3e-4,
           "constant after warm-up");
    EXPECT(fabs(optim_lr(3e-4, lo, 4, 0, 1, 14) - 1.5e-4) < 1e-18, "constant schedule still warms up");
    EXPECT(optim_lr(2.0, lo, 0, 1, 0, 10) == 2.0, "no warm-up: step 0 at lr");
    EXPECT(fabs(optim_lr(2.0, 0.0, 0, 1, 10, 10)) < 1e-15, "min_frac 0 ends at 0");
    EXPECT(fabs(optim_lr(1, lo, 5, 1, 5, 5) - lo) < 1e-15, "total == warmup: the minimum after warm-up");
}

int main(void) {
    against_reference(1);
    against_reference(2);
    par_shutdown();
    decay_only();
    schedule();
    return test_summary();
}

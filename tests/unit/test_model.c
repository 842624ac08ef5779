/* test_model -- the GPT-2 student against an independent PyTorch reference
 * (tests/ref/torch_ref.py, float64), plus model-level checks that need no
 * reference: finite differences through the whole network, packing
 * isolation, and the parameter count of the GPT-2 presets.
 * Run from the repository root (tests/run_all.sh does). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/model.h"
#include "io/store.h"
#include "test.h"
#include "torch_io.h"
#include "base/util.h"

enum { L = 2, NH = 4, C = 32, V = 61, P = 16, B = 2, T = 12 };
#define N (B * T)

static int tok[N], pos[N], seg[N], tgt[N];
static float w[N];

/* row 0: documents [0,5) and [5,12); row 1: one document [0,9) + 3 padding */
static void make_batch(Rng *r) {
    for (int i = 0; i < N; i++) {
        int b = i / T, t = i % T;
        tok[i] = (int)rng_below(r, V);
        tgt[i] = (int)rng_below(r, V);
        if (b == 0) seg[i] = t < 5 ? 0 : 5;
        else seg[i] = t < 9 ? 0 : t; /* padding attends only to itself */
        pos[i] = t - seg[i];
        int is_prompt = (b == 0 && (t == 0 || t == 5)) || (b == 1 && t < 2);
        int is_pad = b == 1 && t >= 9;
        w[i] = (is_prompt || is_pad) ? 0.0f : 0.5f + rng_float(r);
    }
}

static void randomize(Model *m, Rng *r) {
    for (int i = 0; i < m->n_tensors; i++) {
        const ModelTensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        int is_lnw = strstr(t->name, "ln_") && util_ends_with(t->name, "weight");
        for (size_t j = 0; j < t->numel; j++)
            p[j] = is_lnw ? (float)(1.0 + 0.3 * rng_normal(r)) : (float)(0.3 * rng_normal(r));
    }
}

static double model_loss(Model *m) {
    ModelBatch b = {B, T, tok, pos, seg, tgt};
    int M = model_forward(m, &b);
    double l = 0;
    for (int k = 0; k < M; k++) l -= (double)w[m->rows[k]] * m->logp[k];
    return l;
}

static void forward_backward(Model *m, double *loss) {
    ModelBatch b = {B, T, tok, pos, seg, tgt};
    int M = model_forward(m, &b);
    float g[N];
    double l = 0;
    for (int k = 0; k < M; k++) {
        g[k] = -w[m->rows[k]];
        l -= (double)w[m->rows[k]] * m->logp[k];
    }
    *loss = l;
    model_zero_grad(m);
    model_backward(m, &b, g);
}

static int write_input(const Model *m, const char *path) {
    StoreFile *f = torch_io_write(path, m, B, T, tok, tgt, pos, seg, w);
    return f ? store_close(f, NULL) : -1;
}

static double rel(const float *a, const float *b, size_t n) {
    double d = 0, mx = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (e > d || e != e) d = e != e ? INFINITY : e;
        if (fabs(b[i]) > mx) mx = fabs(b[i]);
    }
    return d / mx;
}

static void test_torch_parity(void) {
    ModelConfig cfg = model_config_gpt2(L, NH, C, V, P);
    Model m;
    model_init(&m, &cfg);
    model_alloc_acts(&m, B, T);
    Rng r;
    rng_seed(&r, 42);
    randomize(&m, &r);
    make_batch(&r);
    double loss;
    forward_backward(&m, &loss);
    mkdir("build/tmp", 0775);
    const char *in = "build/tmp/model_parity_in.h5", *out = "build/tmp/model_parity_out.h5";
    EXPECT(write_input(&m, in) == 0, "writing %s", in);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/ref/torch_ref.py %s %s", in, out);
    int st = system(cmd);
    EXPECT(st == 0, "%s exited with %d", cmd, st);
    Err e;
    StoreFile *f = st == 0 ? store_open(out, 0, &e) : NULL;
    EXPECT(f != NULL, "cannot open reference output");
    if (!f) {
        model_free(&m);
        return;
    }
    /* logits: ours are computed for every position (all targets >= 0) */
    ModelBatch b = {B, T, tok, pos, seg, tgt};
    int M = model_forward(&m, &b);
    EXPECT(M == N, "logit rows %d", M);
    float *ref = xmalloc(sizeof(float) * N * V);
    EXPECT(store_read_f32(f, "/logits", ref, N * V, &e) == 0, "%s", e.msg);
    double el = rel(m.logits, ref, (size_t)N * V);
    printf("logits max rel error %.3g\n", el);
    EXPECT(el <= 1e-4, "logits rel error %g", el);
    double rl;
    EXPECT(store_read_f64(f, "/loss", &rl, 1, &e) == 0, "%s", e.msg);
    printf("loss %.10f reference %.10f\n", loss, rl);
    EXPECT(fabs(loss - rl) / fabs(rl) <= 1e-5, "loss %.9g vs %.9g", loss, rl);
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < m.n_tensors; i++) {
        const ModelTensor *t = &m.tensors[i];
        char obj[96];
        snprintf(obj, sizeof obj, "/grads/%s", t->name);
        float *g = xmalloc(sizeof(float) * t->numel);
        EXPECT(store_read_f32(f, obj, g, (int64_t)t->numel, &e) == 0, "%s", e.msg);
        double er = rel(m.grads + t->offset, g, t->numel);
        if (er > worst) worst = er, worst_name = t->name;
        EXPECT(er <= 1e-4, "gradient %s rel error %g", t->name, er);
        free(g);
    }
    printf("gradients: %d tensors, max rel error %.3g (%s)\n", m.n_tensors, worst, worst_name);
    free(ref);
    store_close(f, NULL);
    model_free(&m);
}

/* finite differences through the whole model, at a few coordinates of
 * several tensors, with a smaller init (smoother loss) */
static void test_model_fd(void) {
    ModelConfig cfg = model_config_gpt2(L, NH, C, V, P);
    Model m;
    model_init(&m, &cfg);
    model_alloc_acts(&m, B, T);
    Rng r;
    rng_seed(&r, 7);
    randomize(&m, &r);
    make_batch(&r);
    double loss;
    forward_backward(&m, &loss);
    const char *names[] = {"wte", "wpe", "h.0.attn.c_attn.weight", "h.1.mlp.c_fc.bias",
                           "h.0.ln_1.weight", "ln_f.bias", "h.1.attn.c_proj.weight"};
    double worst = 0;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const ModelTensor *t = model_find_tensor(&m, names[k]);
        double gmax = 0;
        for (size_t j = 0; j < t->numel; j++)
            if (fabs(m.grads[t->offset + j]) > gmax) gmax = fabs(m.grads[t->offset + j]);
        for (int s = 0; s < 6; s++) {
            size_t j = t->offset + (size_t)rng_below(&r, t->numel);
            /* prefer coordinates with a visible gradient */
            for (int tries = 0; tries < 20 && fabs(m.grads[j]) < 0.1 * gmax; tries++)
                j = t->offset + (size_t)rng_below(&r, t->numel);
            float x0 = m.params[j], h = 1e-2f;
            m.params[j] = x0 + h;
            double lp = model_loss(&m);
            m.params[j] = x0 - h;
            double lm = model_loss(&m);
            m.params[j] = x0;
            double fd = (lp - lm) / (2 * (double)h);
            double er = fabs(fd - m.grads[j]) / (gmax > 1e-12 ? gmax : 1);
            if (er > worst) worst = er;
            EXPECT(er < 2e-2, "%s: fd %g vs analytic %g (gmax %g)", names[k], fd, m.grads[j], gmax);
        }
    }
    printf("whole-model finite differences: max error %.3g of the tensor's max gradient\n", worst);
    model_free(&m);
}

/* a packed document gives the same log-probs as the same document alone */
static void test_packing_isolation(void) {
    ModelConfig cfg = model_config_gpt2(L, NH, C, V, P);
    Model m;
    model_init(&m, &cfg);
    model_alloc_acts(&m, 1, T);
    model_init_weights(&m, 3);
    Rng r;
    rng_seed(&r, 9);
    make_batch(&r);
    /* row 0 packed: docs [0,5) and [5,12); alone: doc 2 shifted to the row start */
    int t2[T], p2[T], s2[T], g2[T];
    for (int t = 0; t < T; t++) {
        int src = t < 7 ? 5 + t : -1;
        t2[t] = src >= 0 ? tok[src] : 0;
        p2[t] = src >= 0 ? pos[src] : 0;
        s2[t] = src >= 0 ? 0 : t;
        g2[t] = src >= 0 ? tgt[src] : -1;
    }
    int gtmp[T];
    for (int t = 0; t < T; t++) gtmp[t] = t >= 5 ? tgt[t] : -1;
    ModelBatch packed = {1, T, tok, pos, seg, gtmp};
    int M1 = model_forward(&m, &packed);
    float lp1[T];
    memcpy(lp1, m.logp, sizeof(float) * M1);
    ModelBatch alone = {1, T, t2, p2, s2, g2};
    int M2 = model_forward(&m, &alone);
    EXPECT(M1 == 7 && M2 == 7, "rows %d %d", M1, M2);
    double d = 0;
    for (int k = 0; k < 7 && k < M1 && k < M2; k++) d = fmax(d, fabs(lp1[k] - m.logp[k]));
    EXPECT(d < 1e-5, "packed vs alone log-prob differ by %g", d);
    model_free(&m);
}

static void test_param_counts(void) {
    ModelConfig g124 = model_config_gpt2(12, 12, 768, 50257, 1024), g350 = model_config_gpt2(24, 16, 1024, 50257, 1024);
    EXPECT(model_param_count(&g124) == 124439808u, "gpt2-124m count %zu", model_param_count(&g124));
    EXPECT(model_param_count(&g350) == 354823168u, "gpt2-350m count %zu", model_param_count(&g350));
    ModelConfig t = model_config_gpt2(12, 12, 768, 50257, 256);
    double f = model_flops_per_token(&t, 256);
    EXPECT(fabs(f - 769.5e6) / 769.5e6 < 1e-3, "flops/token %g", f);
}

int main(void) {
    par_init(2);
    test_param_counts();
    test_packing_isolation();
    test_model_fd();
    test_torch_parity();
    par_shutdown();
    return test_summary();
}

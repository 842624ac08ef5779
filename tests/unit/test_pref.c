/* test_pref -- DPO, BRIO and SD: the loss functions' derivatives by finite
 * differences, and loss + every parameter gradient through the model
 * against the independent PyTorch reference (tests/ref/torch_pref.py, float64)
 * on packed sequences.  Run from the repository root. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/model.h"
#include "engine/pref.h"
#include "io/store.h"
#include "test.h"
#include "torch_io.h"
#include "base/util.h"

enum { L = 2, NH = 2, C = 16, V = 29, P = 24, B = 2, T = 16, NSEQ = 4, NPAIR = 2 };
#define N (B * T)

static int tok[N], pos[N], seg[N], tgt_all[N], tgt[N], example[N];
static float w[N];
static const int chosen[NPAIR] = {0, 3}, rejected[NPAIR] = {1, 2};

static void make_batch(Rng *r) {
    /* row 0: seq 0 [0,7), seq 1 [7,16); row 1: seq 2 [0,8), seq 3 [8,14), padding */
    int starts[2][3] = {{0, 7, 16}, {0, 8, 14}};
    for (int i = 0; i < N; i++) {
        int b = i / T, t = i % T;
        int s = 0, st = 0, end = T;
        for (int k = 0; k < 2; k++)
            if (t >= starts[b][k] && t < starts[b][k + 1]) s = b * 2 + k, st = starts[b][k], end = starts[b][k + 1];
        int pad = b == 1 && t >= 14;
        tok[i] = (int)rng_below(r, V);
        tgt_all[i] = (int)rng_below(r, V);
        seg[i] = pad ? t : st;
        pos[i] = pad ? 0 : t - st;
        (void)end;
        int target = !pad && t - st >= 2; /* 2 prompt positions per sequence */
        w[i] = target ? 1.0f : 0.0f;
        example[i] = target ? s : -1;
        tgt[i] = target ? tgt_all[i] : -1;
    }
}

static void randomize(Model *m, Rng *r) {
    for (int i = 0; i < m->n_tensors; i++) {
        const ModelTensor *t = &m->tensors[i];
        int lnw = strstr(t->name, "ln_") && util_ends_with(t->name, "weight");
        for (size_t j = 0; j < t->numel; j++)
            m->params[t->offset + j] = lnw ? (float)(1 + 0.2 * rng_normal(r)) : (float)(0.3 * rng_normal(r));
    }
}

/* forward; sequence log-probs and lengths */
static void seq_logps(Model *m, double *lp, int *len) {
    ModelBatch b = {B, T, tok, pos, seg, tgt};
    int M = model_forward(m, &b);
    for (int s = 0; s < NSEQ; s++) lp[s] = 0, len[s] = 0;
    for (int k = 0; k < M; k++) {
        int e = example[m->rows[k]];
        lp[e] += m->logp[k];
        len[e]++;
    }
}

static void fill_pairs(const double *lp, const int *len, const double *ref, PrefPair *pp) {
    for (int i = 0; i < NPAIR; i++)
        pp[i] = (PrefPair){lp[chosen[i]], lp[rejected[i]], ref[2 * i], ref[2 * i + 1], len[chosen[i]], len[rejected[i]]};
}

static void test_derivatives(void) {
    PrefPair pp[3] = {{-10, -12, -11, -11.5, 5, 6}, {-20, -15, -19, -16, 10, 7}, {-3, -30, -3.5, -29, 2, 9}};
    PrefParams cases[4] = {{PREF_DPO, 0.5, 0, 0, 0}, {PREF_BRIO, 0, 0.3, 1.0, 0.1},
                           {PREF_BRIO, 0, -50, 1.0, 0.1}, {PREF_SD, 0, 0, 0, 0}};
    for (int c = 0; c < 4; c++) {
        double dw[3], dl[3];
        pref_loss(&cases[c], pp, 3, dw, dl);
        double worst = 0;
        for (int i = 0; i < 3; i++) {
            for (int which = 0; which < 2; which++) {
                double h = 1e-5, save = which ? pp[i].ll : pp[i].lw;
                double *x = which ? &pp[i].ll : &pp[i].lw;
                *x = save + h;
                double lp = pref_loss(&cases[c], pp, 3, NULL, NULL);
                *x = save - h;
                double lm = pref_loss(&cases[c], pp, 3, NULL, NULL);
                *x = save;
                double fd = (lp - lm) / (2 * h), an = which ? dl[i] : dw[i];
                worst = fmax(worst, fabs(fd - an));
            }
        }
        EXPECT(worst < 1e-6, "objective %d case %d: derivative off by %g", cases[c].obj, c, worst);
    }
    /* DPO at z = 0 is log 2; a large margin is ~0 */
    PrefPair z = {-5, -5, -5, -5, 3, 3};
    PrefParams dpo = {PREF_DPO, 0.1, 0, 0, 0};
    EXPECT(fabs(pref_loss(&dpo, &z, 1, NULL, NULL) - log(2.0)) < 1e-12, "DPO at 0");
    PrefPair big = {0, -1e4, 0, 0, 3, 3};
    EXPECT(pref_loss(&dpo, &big, 1, NULL, NULL) < 1e-12, "DPO saturates");
    EXPECT(pref_accuracy(&dpo, pp, 3) == 2.0 / 3.0, "accuracy %g", pref_accuracy(&dpo, pp, 3));
}

static int write_input(const Model *m, const char *path, const char *obj, const PrefParams *pp,
                       const double *ref) {
    StoreFile *f = torch_io_write(path, m, B, T, tok, tgt_all, pos, seg, w);
    if (!f) return -1;
    Err e;
    int64_t d2[2] = {B, T}, np = NPAIR;
    double rw[NPAIR], rl[NPAIR];
    int32_t ch[NPAIR], rj[NPAIR];
    for (int i = 0; i < NPAIR; i++) rw[i] = ref[2 * i], rl[i] = ref[2 * i + 1], ch[i] = chosen[i], rj[i] = rejected[i];
    int rc = store_write_i32(f, "/input/example", example, 2, d2, NULL, &e) ||
             store_write_i32(f, "/pairs/chosen", ch, 1, &np, NULL, &e) ||
             store_write_i32(f, "/pairs/rejected", rj, 1, &np, NULL, &e) ||
             store_write_f64(f, "/pairs/ref_w", rw, 1, &np, NULL, &e) ||
             store_write_f64(f, "/pairs/ref_l", rl, 1, &np, NULL, &e) ||
             store_set_attr_str(f, "/", "objective", obj, &e) || store_set_attr_f64(f, "/", "beta", pp->beta, &e) ||
             store_set_attr_f64(f, "/", "margin", pp->margin, &e) ||
             store_set_attr_f64(f, "/", "rank_weight", pp->rank_weight, &e) ||
             store_set_attr_f64(f, "/", "ce_weight", pp->ce_weight, &e);
    store_close(f, NULL);
    if (rc) fprintf(stderr, "%s\n", e.msg);
    return rc;
}

static double rel(const float *a, const float *b, size_t n) {
    double d = 0, mx = 1e-30;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        mx = fmax(mx, fabs(b[i]));
    }
    return d / mx;
}

static void test_torch(const char *name, PrefParams pp) {
    ModelConfig cfg = model_config_gpt2(L, NH, C, V, P);
    Model m;
    model_init(&m, &cfg);
    model_alloc_acts(&m, B, T);
    Rng r;
    rng_seed(&r, 17);
    randomize(&m, &r);
    make_batch(&r);
    double lp[NSEQ], ref[2 * NPAIR];
    int len[NSEQ];
    seq_logps(&m, lp, len);
    for (int i = 0; i < NPAIR; i++) { /* a reference near the policy */
        ref[2 * i] = lp[chosen[i]] + 0.7 * rng_normal(&r);
        ref[2 * i + 1] = lp[rejected[i]] + 0.7 * rng_normal(&r);
    }
    PrefPair pairs[NPAIR];
    fill_pairs(lp, len, ref, pairs);
    double dw[NPAIR], dl[NPAIR];
    double loss = pref_loss(&pp, pairs, NPAIR, dw, dl);
    /* per-token gradient: each target token gets its sequence's dL/dlogpi */
    double gseq[NSEQ] = {0};
    for (int i = 0; i < NPAIR; i++) gseq[chosen[i]] += dw[i], gseq[rejected[i]] += dl[i];
    ModelBatch b = {B, T, tok, pos, seg, tgt};
    int M = model_forward(&m, &b);
    float g[N];
    for (int k = 0; k < M; k++) g[k] = (float)gseq[example[m.rows[k]]];
    model_zero_grad(&m);
    model_backward(&m, &b, g);
    mkdir("build/tmp", 0775);
    char in[128], out[128], cmd[400];
    snprintf(in, sizeof in, "build/tmp/pref_%s_in.h5", name);
    snprintf(out, sizeof out, "build/tmp/pref_%s_out.h5", name);
    EXPECT(write_input(&m, in, pp.obj == PREF_DPO ? "dpo" : pp.obj == PREF_BRIO ? "brio" : "sd", &pp, ref) == 0, "write");
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/ref/torch_pref.py %s %s", in, out);
    int st = system(cmd);
    EXPECT(st == 0, "%s: exit %d", cmd, st);
    Err e;
    StoreFile *f = st == 0 ? store_open(out, 0, &e) : NULL;
    if (!f) {
        model_free(&m);
        return;
    }
    double rl;
    store_read_f64(f, "/loss", &rl, 1, &e);
    EXPECT(fabs(loss - rl) <= 1e-5 * fmax(1, fabs(rl)), "%s loss %.9g vs %.9g", name, loss, rl);
    double worst = 0;
    const char *wn = "";
    for (int i = 0; i < m.n_tensors; i++) {
        const ModelTensor *t = &m.tensors[i];
        char o[96];
        snprintf(o, sizeof o, "/grads/%s", t->name);
        float *ref_g = xmalloc(sizeof(float) * t->numel);
        EXPECT(store_read_f32(f, o, ref_g, (int64_t)t->numel, &e) == 0, "%s", e.msg);
        double er = rel(m.grads + t->offset, ref_g, t->numel);
        if (er > worst) worst = er, wn = t->name;
        free(ref_g);
    }
    printf("%s: loss %.8f (PyTorch %.8f), gradients max rel error %.3g (%s)\n", name, loss, rl, worst, wn);
    EXPECT(worst <= 1e-4, "%s gradient %s rel error %g", name, wn, worst);
    store_close(f, NULL);
    model_free(&m);
}

int main(void) {
    par_init(2);
    test_derivatives();
    test_torch("dpo", (PrefParams){PREF_DPO, 0.5, 0, 0, 0});
    test_torch("brio_active", (PrefParams){PREF_BRIO, 0, 5.0, 1.0, 0.1});
    test_torch("brio_inactive", (PrefParams){PREF_BRIO, 0, -50.0, 1.0, 0.1});
    test_torch("sd", (PrefParams){PREF_SD, 0, 0, 0, 0});
    par_shutdown();
    return test_summary();
}

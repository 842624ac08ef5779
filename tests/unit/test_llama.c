/* test_llama -- the Llama-style student against an independent float64
 * PyTorch reference (tests/ref/torch_llama.py): logits, loss and every
 * gradient for each switch alone and all together (grouped-query and
 * multi-head attention, head_dim != d_model/n_head, q/k/v biases, q/k norms,
 * llama3 rotary scaling at positions beyond the original context, tied and
 * untied head) on packed rows; finite differences through the whole model;
 * results independent of the thread count; KV-cached decoding equal to the
 * full forward, copied slots, the GQA cache's size; sampling and beam search;
 * the presets' published parameter counts, FLOPs and configuration checks.
 * Run from the repository root (tests/run_all.sh does). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/util.h"
#include "engine/gen.h"
#include "engine/model.h"
#include "engine/model_family.h"
#include "engine/presets.h"
#include "io/store.h"
#include "test.h"
#include "torch_io.h"

enum { L = 2, NH = 4, C = 32, V = 61, P = 32, B = 2, T = 12 };
#define N (B * T)

static int tok[N], pos[N], seg[N], tgt[N];
static float w[N];

/* row 0: documents [0,5) and [5,12); row 1: one document [0,9) + 3 padding;
 * positions restart at each document, from pos0 */
static void make_batch(Rng *r, int pos0) {
    for (int i = 0; i < N; i++) {
        int b = i / T, t = i % T;
        tok[i] = (int)rng_below(r, V);
        tgt[i] = (int)rng_below(r, V);
        if (b == 0) seg[i] = t < 5 ? 0 : 5;
        else seg[i] = t < 9 ? 0 : t; /* padding attends only to itself */
        pos[i] = pos0 + t - seg[i];
        int is_prompt = (b == 0 && (t == 0 || t == 5)) || (b == 1 && t < 2);
        int is_pad = b == 1 && t >= 9;
        w[i] = (is_prompt || is_pad) ? 0.0f : 0.5f + rng_float(r);
    }
}

static ModelConfig base_config(void) {
    ModelConfig c;
    memset(&c, 0, sizeof c);
    c.arch = MODEL_LLAMA;
    c.n_layer = L, c.n_head = NH, c.d_model = C, c.vocab_size = V, c.max_seq_len = P;
    c.n_kv_head = 2, c.head_dim = C / NH, c.d_ff = 48, c.norm_eps = 1e-5, c.rope_theta = 10000.0;
    return c;
}

/* llama3 scaling whose three regions all occur at head_dim 8 or 12: theta 10,
 * original context 8, low/high frequency factors 0.5 / 1, factor 4 */
static void with_llama3(ModelConfig *c) {
    c->rope_theta = 10.0;
    c->rope_llama3 = 1, c->rope_factor = 4.0, c->rope_low_freq_factor = 0.5, c->rope_high_freq_factor = 1.0;
    c->rope_original_max_pos = 8;
}

typedef struct {
    const char *name;
    ModelConfig cfg;
    int pos0;
} Case;

static int make_cases(Case *cs) {
    int n = 0;
    ModelConfig c = base_config();
    cs[n++] = (Case){"gqa", c, 0}; /* 4 heads / 2 kv, untied */
    c.n_kv_head = NH;
    cs[n++] = (Case){"mha", c, 0};
    c = base_config();
    c.head_dim = 12;
    cs[n++] = (Case){"head_dim12", c, 0};
    c = base_config();
    c.qkv_bias = 1;
    cs[n++] = (Case){"qkv_bias", c, 0};
    c = base_config();
    c.qk_norm = 1;
    cs[n++] = (Case){"qk_norm", c, 0};
    c = base_config();
    with_llama3(&c);
    cs[n++] = (Case){"llama3", c, 6}; /* positions 6..17, original context 8 */
    c = base_config();
    c.tie_embeddings = 1;
    cs[n++] = (Case){"tied", c, 0};
    c.head_dim = 12, c.n_kv_head = 1, c.qkv_bias = 1, c.qk_norm = 1;
    with_llama3(&c);
    cs[n++] = (Case){"all", c, 6};
    return n;
}

static void randomize(Model *m, Rng *r) {
    for (int i = 0; i < m->n_tensors; i++) {
        const ModelTensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        int norm = util_ends_with(t->name, "norm.weight");
        for (size_t j = 0; j < t->numel; j++)
            p[j] = norm ? (float)(1.0 + 0.3 * rng_normal(r)) : (float)(0.3 * rng_normal(r));
    }
}

static double model_loss(Model *m) {
    ModelBatch b = {B, T, tok, pos, seg, tgt};
    int M = model_forward(m, &b);
    double l = 0;
    for (int k = 0; k < M; k++) l -= (double)w[m->rows[k]] * m->logp[k];
    return l;
}

static double forward_backward(Model *m) {
    ModelBatch b = {B, T, tok, pos, seg, tgt};
    int M = model_forward(m, &b);
    float g[N];
    double l = 0;
    for (int k = 0; k < M; k++) {
        g[k] = -w[m->rows[k]];
        l -= (double)w[m->rows[k]] * m->logp[k];
    }
    model_zero_grad(m);
    model_backward(m, &b, g);
    return l;
}

static void setup(Model *m, const Case *cs, uint64_t seed) {
    model_init(m, &cs->cfg);
    model_alloc_acts(m, B, T);
    Rng r;
    rng_seed(&r, seed);
    randomize(m, &r);
    make_batch(&r, cs->pos0);
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

/* ours vs the reference output of one case */
static void compare(Model *m, double loss, const char *name, const char *out) {
    Err e;
    StoreFile *f = store_open(out, 0, &e);
    EXPECT(f != NULL, "%s: no reference output", name);
    if (!f) return;
    float *ref = xmalloc(sizeof(float) * N * V);
    double rl = 0, worst = 0;
    const char *worst_name = "";
    EXPECT(store_read_f32(f, "/logits", ref, N * V, &e) == 0, "%s", e.msg);
    EXPECT(store_read_f64(f, "/loss", &rl, 1, &e) == 0, "%s", e.msg);
    ModelBatch b = {B, T, tok, pos, seg, tgt};
    int M = model_forward(m, &b); /* every position has a target: all logits */
    double el = M == N ? rel(m->logits, ref, (size_t)N * V) : INFINITY, eloss = fabs(loss - rl) / fabs(rl);
    for (int i = 0; i < m->n_tensors; i++) {
        const ModelTensor *t = &m->tensors[i];
        char obj[128];
        snprintf(obj, sizeof obj, "/grads/%s", t->name);
        float *g = xmalloc(sizeof(float) * t->numel);
        EXPECT(store_read_f32(f, obj, g, (int64_t)t->numel, &e) == 0, "%s", e.msg);
        double er = rel(m->grads + t->offset, g, t->numel);
        if (er > worst || er != er) worst = er, worst_name = t->name;
        free(g);
    }
    printf("%-10s logits %.2e  loss %.2e  gradients (%d tensors) %.2e (%s)\n", name, el, eloss, m->n_tensors, worst,
           worst_name);
    EXPECT(el <= 1e-4, "%s: logits rel error %g", name, el);
    EXPECT(eloss <= 1e-5, "%s: loss %.9g vs %.9g", name, loss, rl);
    EXPECT(worst <= 1e-4, "%s: gradient %s rel error %g", name, worst_name, worst);
    free(ref);
    store_close(f, NULL);
}

static void test_torch_parity(void) {
    Case cs[16];
    int nc = make_cases(cs);
    Model m[16];
    double loss[16];
    char cmd[4096] = "/usr/bin/python3 tests/ref/torch_llama.py";
    mkdir("build/tmp", 0775);
    for (int k = 0; k < nc; k++) {
        setup(&m[k], &cs[k], 100 + (uint64_t)k);
        loss[k] = forward_backward(&m[k]);
        char in[128];
        snprintf(in, sizeof in, "build/tmp/llama_%s_in.h5", cs[k].name);
        StoreFile *f = torch_io_write(in, &m[k], B, T, tok, tgt, pos, seg, w);
        EXPECT(f && store_close(f, NULL) == 0, "writing %s", in);
        size_t l = strlen(cmd);
        snprintf(cmd + l, sizeof cmd - l, " %s build/tmp/llama_%s_out.h5", in, cs[k].name);
    }
    strcat(cmd, " >/dev/null");
    int st = system(cmd);
    EXPECT(st == 0, "torch_llama.py exited with %d", st);
    for (int k = 0; k < nc && st == 0; k++) {
        char out[128];
        snprintf(out, sizeof out, "build/tmp/llama_%s_out.h5", cs[k].name);
        Rng r; /* the case's batch again */
        rng_seed(&r, 100 + (uint64_t)k);
        randomize(&m[k], &r);
        make_batch(&r, cs[k].pos0);
        compare(&m[k], loss[k], cs[k].name, out);
    }
    for (int k = 0; k < nc; k++) model_free(&m[k]);
}

/* central differences of the whole model at a few coordinates of every kind of tensor */
static void test_model_fd(const Case *cs) {
    Model m;
    setup(&m, cs, 7);
    Rng r;
    rng_seed(&r, 8);
    forward_backward(&m);
    double worst = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        const ModelTensor *t = &m.tensors[i];
        if (strncmp(t->name, "model.layers.1.", 15) == 0) continue; /* layer 0 covers the kinds */
        double gmax = 0;
        for (size_t j = 0; j < t->numel; j++) gmax = fmax(gmax, fabs(m.grads[t->offset + j]));
        for (int s = 0; s < 3; s++) {
            size_t j = t->offset + (size_t)rng_below(&r, t->numel);
            for (int tries = 0; tries < 20 && fabs(m.grads[j]) < 0.1 * gmax; tries++)
                j = t->offset + (size_t)rng_below(&r, t->numel);
            float x0 = m.params[j], h = 1e-2f;
            m.params[j] = x0 + h;
            double lp = model_loss(&m);
            m.params[j] = x0 - h;
            double lm = model_loss(&m);
            m.params[j] = x0;
            double fd = (lp - lm) / ((double)(x0 + h) - (double)(x0 - h)), er = fabs(fd - m.grads[j]) / fmax(gmax, 1e-12);
            worst = fmax(worst, er);
            EXPECT(er < 2e-2, "%s %s: fd %g vs analytic %g (gmax %g)", cs->name, t->name, fd, m.grads[j], gmax);
        }
    }
    printf("%-10s whole-model finite differences: max error %.2e of the tensor's max gradient\n", cs->name, worst);
    model_free(&m);
}

/* forward + backward bitwise the same on 1 and 3 pool threads */
static void test_threads(const Case *cs) {
    Model a, b;
    par_init(1);
    setup(&a, cs, 21);
    double la = forward_backward(&a);
    par_init(3);
    setup(&b, cs, 21);
    double lb = forward_backward(&b);
    par_init(2);
    EXPECT(la == lb && !memcmp(a.grads, b.grads, sizeof(float) * a.n_params), "%s: results depend on the threads",
           cs->name);
    model_free(&a);
    model_free(&b);
}

/* KV-cached decoding: three sequences decoded together equal their full forwards */
static void test_decode(const Case *cs) {
    enum { S = 3, TT = 14 };
    Model m;
    model_init(&m, &cs->cfg);
    Rng r;
    rng_seed(&r, 31);
    randomize(&m, &r);
    model_alloc_acts(&m, S, TT);
    int tk[S * TT], ps[S * TT], sg[S * TT], tg[S * TT];
    for (int i = 0; i < S * TT; i++) tk[i] = (int)rng_below(&r, V), ps[i] = i % TT, sg[i] = 0, tg[i] = 0;
    ModelBatch bt = {S, TT, tk, ps, sg, tg};
    model_forward(&m, &bt);
    float *full = xmalloc(sizeof(float) * S * TT * V), lg[S * V];
    memcpy(full, m.logits, sizeof(float) * S * TT * V);
    ModelKV *kv = model_kv_create(&m, 5, TT);
    size_t want = 2 * (size_t)cs->cfg.n_layer * 5 * TT * cs->cfg.n_kv_head * cs->cfg.head_dim * sizeof(float);
    EXPECT(kv->family->kv_bytes && kv->family->kv_bytes(kv) == want, "%s: cache of %zu bytes, %zu for the kv heads",
           cs->name, kv->family->kv_bytes ? kv->family->kv_bytes(kv) : 0, want);
    double worst = 0, scale = 1e-6;
    for (int i = 0; i < S * TT * V; i++) scale = fmax(scale, fabs(full[i]));
    int slots[S] = {4, 0, 2};
    for (int t = 0; t < TT; t++) {
        int tok_t[S];
        for (int s = 0; s < S; s++) tok_t[s] = tk[s * TT + t];
        model_decode_step(&m, kv, slots, tok_t, S, lg);
        for (int s = 0; s < S; s++)
            for (int v = 0; v < V; v++) worst = fmax(worst, fabs(lg[s * V + v] - full[(s * TT + t) * V + v]) / scale);
    }
    printf("%-10s KV decode vs full forward: max rel error %.2e\n", cs->name, worst);
    EXPECT(worst < 1e-4, "%s: KV decode differs from the full forward by %g", cs->name, worst);
    /* a copied slot continues identically */
    model_kv_reset(kv, 1);
    for (int t = 0; t < 6; t++) {
        int s1 = 1;
        model_decode_step(&m, kv, &s1, &tk[t], 1, lg);
    }
    model_kv_copy(kv, 3, 1);
    float a[V], c[V];
    int s1 = 1, s3 = 3;
    model_decode_step(&m, kv, &s1, &tk[6], 1, a);
    model_decode_step(&m, kv, &s3, &tk[6], 1, c);
    double w2 = 0;
    for (int v = 0; v < V; v++) w2 = fmax(w2, fabs(a[v] - full[6 * V + v]) / scale);
    EXPECT(!memcmp(a, c, sizeof a) && w2 < 1e-4, "%s: copied slot diverges (%g)", cs->name, w2);
    model_kv_destroy(kv);
    free(full);
    model_free(&m);
}

/* log p(seq | prompt) by the full forward */
static double seq_logp(Model *m, const int *prompt, int pl, const GenSeq *s, int eot) {
    int tk[P], ps[P], sg[P], tg[P], all[P], len = 0;
    for (int i = 0; i < pl; i++) all[len++] = prompt[i];
    for (int i = 0; i < s->n; i++) all[len++] = s->ids[i];
    if (s->finished) all[len++] = eot;
    for (int t = 0; t < 16; t++) {
        tk[t] = t < len ? all[t] : 0, ps[t] = t, sg[t] = 0;
        tg[t] = (t >= pl - 1 && t + 1 < len) ? all[t + 1] : -1;
    }
    model_alloc_acts(m, 1, 16);
    ModelBatch b = {1, 16, tk, ps, sg, tg};
    int M = model_forward(m, &b);
    double l = 0;
    for (int k = 0; k < M; k++) l += m->logp[k];
    return l;
}

static void test_generate(const Case *cs) {
    Model m;
    model_init(&m, &cs->cfg);
    Rng r;
    rng_seed(&r, 41);
    randomize(&m, &r);
    int pr[2][3] = {{1, 2, 3}, {4, 5}}, pl[2] = {3, 2}, eot = 7;
    const int *pp[2] = {pr[0], pr[1]};
    GenOptions o;
    gen_options_init(&o);
    o.mode = GEN_SAMPLE, o.k = 3, o.max_new = 8, o.temperature = 1.0, o.top_p = 0.95, o.seed = 5;
    GenSeq out[6];
    gen_run(&m, &o, pp, pl, 2, eot, 0, out);
    double worst = 0;
    for (int i = 0; i < 6; i++) worst = fmax(worst, fabs(seq_logp(&m, pr[i / 3], pl[i / 3], &out[i], eot) - out[i].logp));
    EXPECT(worst < 1e-3, "%s: sampled log-probs differ from the forward by %g", cs->name, worst);
    for (int i = 0; i < 6; i++) gen_seq_free(&out[i]);
    o.mode = GEN_BEAM, o.beam = 4, o.k = 2, o.length_penalty = 1.0;
    gen_run(&m, &o, pp, pl, 2, eot, 0, out);
    EXPECT(out[0].score >= out[1].score && out[2].score >= out[3].score, "%s: beams not sorted", cs->name);
    double wb = fabs(seq_logp(&m, pr[0], pl[0], &out[0], eot) - out[0].logp);
    EXPECT(wb < 1e-3, "%s: beam log-prob differs from the forward by %g", cs->name, wb);
    printf("%-10s sampling and beam search: log-probs within %.2e of the forward\n", cs->name, fmax(worst, wb));
    for (int i = 0; i < 4; i++) gen_seq_free(&out[i]);
    model_free(&m);
}

static void test_presets(void) {
    ModelConfig c;
    EXPECT(model_preset("smollm2-135m", &c) == 0 && model_param_count(&c) == 134515008u, "smollm2-135m: %zu",
           model_param_count(&c));
    EXPECT(model_preset("qwen2.5-0.5b", &c) == 0 && model_param_count(&c) == 494032768u, "qwen2.5-0.5b: %zu",
           model_param_count(&c));
    EXPECT(model_preset("no-such-model", &c) == -1, "unknown preset accepted");
    for (int i = 0; model_preset_name(i); i++) {
        EXPECT(model_preset(model_preset_name(i), &c) == 0 && model_preset_about(i), "preset %d", i);
        if (c.vocab_size == 0) c.vocab_size = 50257;
        char why[256];
        EXPECT(model_config_check(&c, why, sizeof why) == 0, "%s: %s", model_preset_name(i), why);
        printf("preset %-13s %13zu parameters  %7.1f MFLOP/token at T=256  (%s)\n", model_preset_name(i),
               model_param_count(&c), model_flops_per_token(&c, 256) / 1e6, model_preset_about(i));
    }
    /* FLOPs: 6 x the matrix parameters (the tied embedding counted once, as the head) + 12 L T QD */
    model_preset("smollm2-135m", &c);
    double mat = (double)model_param_count(&c) - (2.0 * c.n_layer + 1) * c.d_model;
    double want = 6 * mat + 12.0 * c.n_layer * 256 * c.n_head * c.head_dim, got = model_flops_per_token(&c, 256);
    EXPECT(fabs(got - want) / want < 1e-12, "smollm2-135m flops %g vs %g", got, want);
    model_preset("qwen2.5-0.5b", &c);
    printf("qwen2.5-0.5b at B=1 T=256: activations %.1f MiB\n", model_activation_bytes(&c, 1, 256) / 1048576.0);
    /* configuration checks name the field */
    ModelConfig bad = base_config();
    char why[256];
    bad.n_kv_head = 3;
    EXPECT(model_config_check(&bad, why, sizeof why) != 0 && strstr(why, "n_kv_head"), "kv heads: %s", why);
    bad = base_config(), bad.head_dim = 7;
    EXPECT(model_config_check(&bad, why, sizeof why) != 0 && strstr(why, "head_dim"), "head_dim: %s", why);
    bad = base_config(), with_llama3(&bad), bad.rope_high_freq_factor = 0.5;
    EXPECT(model_config_check(&bad, why, sizeof why) != 0 && strstr(why, "rope_high_freq_factor"), "llama3: %s", why);
}

int main(void) {
    par_init(2);
    test_presets();
    Case cs[16];
    int nc = make_cases(cs);
    test_torch_parity();
    test_model_fd(&cs[0]);
    test_model_fd(&cs[nc - 1]);
    test_threads(&cs[nc - 1]);
    test_decode(&cs[0]);
    test_decode(&cs[nc - 1]);
    test_generate(&cs[nc - 1]);
    par_shutdown();
    return test_summary();
}

/* test_gen -- decoding: the KV-cached step gives the full forward's logits;
 * beam search equals exhaustive search on a tiny vocabulary (alpha 0 and
 * 1); token sampling matches the expected temperature/top-p frequencies;
 * sampled outputs do not depend on sharding or batch size. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gen.h"
#include "engine/model.h"
#include "test.h"
#include "base/util.h"

enum { V = 6, EOT = 5, P = 24 };

static void init_model(Model *m, uint64_t seed) {
    ModelConfig c = model_config_gpt2(2, 2, 16, V, P);
    model_init(m, &c);
    Rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < m->n_tensors; i++) {
        const ModelTensor *t = &m->tensors[i];
        int lnw = strstr(t->name, "ln_") && util_ends_with(t->name, "weight");
        for (size_t j = 0; j < t->numel; j++)
            m->params[t->offset + j] = lnw ? 1.0f : (float)(0.5 * rng_normal(&r));
    }
}

/* log p(seq | prompt) by the full forward: tokens prompt+seq, targets shifted */
static double seq_logp(Model *m, const int *prompt, int pl, const int *seq, int n, int with_eot) {
    int T = P;
    int tok[P], pos[P], seg[P], tgt[P];
    int all[P], len = 0;
    for (int i = 0; i < pl; i++) all[len++] = prompt[i];
    for (int i = 0; i < n; i++) all[len++] = seq[i];
    if (with_eot) all[len++] = EOT;
    for (int t = 0; t < T; t++) {
        tok[t] = t < len ? all[t] : 0;
        pos[t] = t;
        seg[t] = 0;
        tgt[t] = (t >= pl - 1 && t + 1 < len) ? all[t + 1] : -1;
    }
    model_alloc_acts(m, 1, T);
    ModelBatch b = {1, T, tok, pos, seg, tgt};
    int M = model_forward(m, &b);
    double s = 0;
    for (int k = 0; k < M; k++) s += m->logp[k];
    return s;
}

static void test_kv_matches_forward(void) {
    Model m;
    init_model(&m, 1);
    int T = 12, tok[12], pos[12], seg[12], tgt[12];
    Rng r;
    rng_seed(&r, 2);
    for (int t = 0; t < T; t++) tok[t] = (int)rng_below(&r, V), pos[t] = t, seg[t] = 0, tgt[t] = 0;
    model_alloc_acts(&m, 1, T);
    ModelBatch b = {1, T, tok, pos, seg, tgt};
    model_forward(&m, &b); /* logits for every position (all targets >= 0) */
    float *full = xmalloc(sizeof(float) * T * V);
    memcpy(full, m.logits, sizeof(float) * T * V);
    ModelKV *kv = model_kv_create(&m, 3, T);
    float lg[V];
    double worst = 0;
    int slot = 2; /* any slot */
    for (int t = 0; t < T; t++) {
        model_decode_step(&m, kv, &slot, &tok[t], 1, lg);
        for (int v = 0; v < V; v++) worst = fmax(worst, fabs(lg[v] - full[t * V + v]));
    }
    EXPECT(worst < 1e-4, "KV decode logits differ from the full forward by %g", worst);
    /* a copied slot continues identically */
    model_kv_reset(kv, 0);
    for (int t = 0; t < 5; t++) {
        int s0 = 0;
        model_decode_step(&m, kv, &s0, &tok[t], 1, lg);
    }
    model_kv_copy(kv, 1, 0);
    float a[V], c[V];
    int s0 = 0, s1 = 1;
    model_decode_step(&m, kv, &s0, &tok[5], 1, a);
    model_decode_step(&m, kv, &s1, &tok[5], 1, c);
    EXPECT(memcmp(a, c, sizeof a) == 0, "copied cache diverges");
    double w2 = 0;
    for (int v = 0; v < V; v++) w2 = fmax(w2, fabs(a[v] - full[5 * V + v]));
    EXPECT(w2 < 1e-4, "copied cache wrong by %g", w2);
    model_kv_destroy(kv);
    free(full);
    model_free(&m);
}

/* enumerate all continuations of up to max_new tokens */
static void exhaustive(Model *m, const int *prompt, int pl, int max_new, double alpha, int *best, int *best_n,
                       double *best_score) {
    *best_score = -INFINITY;
    int seq[8];
    for (int n = 0; n <= max_new; n++) {
        long count = 1;
        for (int i = 0; i < n; i++) count *= (V - 1);
        for (long c = 0; c < count; c++) {
            long x = c;
            for (int i = 0; i < n; i++) seq[i] = (int)(x % (V - 1)), x /= (V - 1);
            int finished = n < max_new;
            double lp = seq_logp(m, prompt, pl, seq, n, finished);
            int len = n + finished;
            double sc = lp / pow(len, alpha);
            if (sc > *best_score) {
                *best_score = sc;
                *best_n = n;
                memcpy(best, seq, sizeof(int) * n);
            }
        }
    }
}

static void test_beam_exhaustive(void) {
    Model m;
    init_model(&m, 7);
    int prompt[3] = {1, 3, 2};
    const int *pp[1] = {prompt};
    int pl = 3, max_new = 3;
    for (int k = 0; k < 2; k++) {
        double alpha = k ? 1.0 : 0.0;
        int best[8], bn = 0;
        double bs;
        exhaustive(&m, prompt, pl, max_new, alpha, best, &bn, &bs);
        GenOptions o;
        gen_options_init(&o);
        o.mode = GEN_BEAM;
        o.beam = 200; /* wider than the 156 sequences: exact */
        o.k = 3;
        o.max_new = max_new;
        o.length_penalty = alpha;
        GenSeq out[3];
        gen_run(&m, &o, pp, &pl, 1, EOT, 0, out);
        int same = out[0].n == bn && !memcmp(out[0].ids, best, sizeof(int) * bn);
        EXPECT(same && fabs(out[0].score - bs) < 1e-4, "alpha %g: beam %d tokens score %.6f, exhaustive %d tokens %.6f",
               alpha, out[0].n, out[0].score, bn, bs);
        EXPECT(out[0].score >= out[1].score && out[1].score >= out[2].score, "beam outputs not sorted");
        double check = seq_logp(&m, prompt, pl, out[1].ids, out[1].n, out[1].finished);
        EXPECT(fabs(check - out[1].logp) < 1e-4, "beam log-prob %g vs forward %g", out[1].logp, check);
        for (int j = 0; j < 3; j++) gen_seq_free(&out[j]);
        /* a narrow beam never beats the exact optimum */
        o.beam = 3;
        o.k = 1;
        gen_run(&m, &o, pp, &pl, 1, EOT, 0, out);
        double chk3 = seq_logp(&m, prompt, pl, out[0].ids, out[0].n, out[0].finished);
        EXPECT(out[0].score <= bs + 1e-4, "beam 3 above the optimum: %d tokens fin %d logp %g (forward %g) score %g vs %g",
               out[0].n, out[0].finished, out[0].logp, chk3, out[0].score, bs);
        gen_seq_free(&out[0]);
    }
    /* every finished hypothesis kept, among them the empty one (end-of-text
     * first: add_finished copied from a NULL id array, UB found by make test-asan) */
    GenOptions o;
    gen_options_init(&o);
    o.mode = GEN_BEAM;
    o.beam = o.k = 40;
    o.max_new = 2;
    GenSeq all[40];
    gen_run(&m, &o, pp, &pl, 1, EOT, 0, all);
    int empty = -1;
    for (int j = 0; j < 40; j++)
        if (all[j].finished && all[j].n == 0) empty = j;
    EXPECT(empty >= 0 && all[empty].ids, "the empty finished sequence is an output with an id array");
    if (empty >= 0) {
        double lp0 = seq_logp(&m, prompt, pl, NULL, 0, 1);
        EXPECT(fabs(all[empty].logp - lp0) < 1e-4, "empty sequence log-prob %g vs forward %g", all[empty].logp, lp0);
    }
    for (int j = 0; j < 40; j++) gen_seq_free(&all[j]);
    model_free(&m);
}

static void test_sampling_frequencies(void) {
    float logits[5] = {1.0f, 0.5f, 0.0f, -1.0f, 2.0f};
    double T = 0.7, top_p = 0.9;
    /* expected: softmax(logits/T), keep the most likely until 0.9 of the mass */
    double p[5], tot = 0;
    for (int i = 0; i < 5; i++) tot += (p[i] = exp(logits[i] / T));
    int order[5] = {4, 0, 1, 2, 3};
    double cum = 0, keep[5] = {0};
    for (int k = 0; k < 5 && cum < top_p * tot; k++) cum += (keep[order[k]] = p[order[k]]);
    float scratch[15]; /* 3V */
    int is[10];        /* 2V */
    Rng r;
    rng_seed(&r, 3);
    int n = 200000, cnt[5] = {0};
    double lp;
    for (int i = 0; i < n; i++) cnt[gen_sample_token(logits, 5, T, top_p, &r, scratch, is, &lp)]++;
    double worst = 0;
    for (int i = 0; i < 5; i++) worst = fmax(worst, fabs((double)cnt[i] / n - keep[i] / cum));
    EXPECT(worst < 0.005, "sampled frequencies off by %g", worst);
    EXPECT(cnt[3] == 0, "a token outside the nucleus was sampled %d times", cnt[3]);
    int t = gen_sample_token(logits, 5, 0.0, 1.0, &r, scratch, is, &lp);
    double lse = log(exp(1.0) + exp(0.5) + exp(0.0) + exp(-1.0) + exp(2.0));
    EXPECT(t == 4 && fabs(lp - (2.0 - lse)) < 1e-6, "greedy %d logp %g", t, lp);
    /* temperature 1, top_p 1: plain softmax */
    int c2[5] = {0};
    for (int i = 0; i < n; i++) c2[gen_sample_token(logits, 5, 1.0, 1.0, &r, scratch, is, &lp)]++;
    double w2 = 0;
    for (int i = 0; i < 5; i++) w2 = fmax(w2, fabs((double)c2[i] / n - exp(logits[i] - lse)));
    EXPECT(w2 < 0.005, "softmax frequencies off by %g", w2);
}

static int same_seq(const GenSeq *a, const GenSeq *b) {
    return a->n == b->n && !memcmp(a->ids, b->ids, sizeof(int) * a->n) && a->logp == b->logp;
}

static void test_sharding(void) {
    Model m;
    init_model(&m, 11);
    int pr[4][4] = {{1, 2, 3, 4}, {0, 0}, {4, 3, 2}, {2}};
    int pl[4] = {4, 2, 3, 1};
    const int *pp[4] = {pr[0], pr[1], pr[2], pr[3]};
    GenOptions o;
    gen_options_init(&o);
    o.mode = GEN_SAMPLE;
    o.k = 3;
    o.max_new = 10;
    o.temperature = 1.0;
    o.top_p = 0.95;
    o.seed = 99;
    GenSeq all[12], part[6], small[12];
    gen_run(&m, &o, pp, pl, 4, EOT, 0, all);
    gen_run(&m, &o, pp + 2, pl + 2, 2, EOT, 2, part); /* inputs 2,3 on "another rank" */
    o.batch = 2;
    gen_run(&m, &o, pp, pl, 4, EOT, 0, small); /* smaller batches */
    int ok_shard = 1, ok_batch = 1, differ = 0;
    for (int i = 0; i < 6; i++) ok_shard &= same_seq(&all[6 + i], &part[i]);
    for (int i = 0; i < 12; i++) ok_batch &= same_seq(&all[i], &small[i]);
    for (int i = 0; i < 4; i++) differ += !same_seq(&all[3 * i], &all[3 * i + 1]);
    EXPECT(ok_shard, "outputs depend on the shard");
    EXPECT(ok_batch, "outputs depend on the batch size");
    EXPECT(differ >= 2, "candidates of one input are all the same");
    /* a sampled sequence's log-prob is the model's */
    double chk = seq_logp(&m, pr[0], pl[0], all[1].ids, all[1].n, all[1].finished);
    EXPECT(fabs(chk - all[1].logp) < 1e-4, "sample logp %g vs forward %g", all[1].logp, chk);
    for (int i = 0; i < 12; i++) gen_seq_free(&all[i]), gen_seq_free(&small[i]);
    for (int i = 0; i < 6; i++) gen_seq_free(&part[i]);
    model_free(&m);
}

/* Sampled sequences that end at once (end-of-text drawn first): empty, finished,
 * with an id array (run_sampling copied from a NULL one: UB found by make test-asan). */
static void test_sample_empty(void) {
    Model m;
    init_model(&m, 5);
    int prompt[2] = {3, 1}, pl = 2;
    const int *pp[1] = {prompt};
    GenOptions o;
    gen_options_init(&o);
    o.mode = GEN_SAMPLE;
    o.k = 24;
    o.max_new = 3;
    o.temperature = 50.0; /* nearly uniform: about 4 of 24 draw EOT first */
    o.top_p = 1.0;
    o.seed = 7;
    GenSeq out[24];
    gen_run(&m, &o, pp, &pl, 1, EOT, 0, out);
    int empty = -1;
    for (int j = 0; j < 24; j++)
        if (out[j].n == 0 && out[j].finished) empty = j;
    EXPECT(empty >= 0 && out[empty].ids, "an empty finished sample with an id array");
    if (empty >= 0) {
        double lp0 = seq_logp(&m, prompt, pl, NULL, 0, 1);
        EXPECT(fabs(out[empty].logp - lp0) < 1e-4, "empty sample log-prob %g vs forward %g", out[empty].logp, lp0);
    }
    for (int j = 0; j < 24; j++) gen_seq_free(&out[j]);
    model_free(&m);
}

int main(void) {
    par_init(2);
    test_sample_empty();
    test_kv_matches_forward();
    test_beam_exhaustive();
    test_sampling_frequencies();
    test_sharding();
    par_shutdown();
    return test_summary();
}

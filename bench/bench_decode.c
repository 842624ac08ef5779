/* bench_decode -- decoding tokens/second of the student through gen_run()
 * (engine/gen.h), as the critique phase samples and the evaluation beam-
 * searches: random weights (model_init_weights), random prompts, one rank.
 * Prints one JSON line.  Never part of the tests (bench/decode.sh).
 *
 * usage: bench_decode [--preset NAME] --layers L --heads NH --dim C --vocab V
 *          --prompts N --prompt-len T0 --new G --k K --beam W --top-p P
 *          --temperature X [--length-penalty A] --threads K --warmup W --reps R
 *          [--batch B] [--phases 0|1] [--sgemm-reps S] [--seed S]
 * --k 0 skips sampling, --beam 0 skips beam search.  --preset takes a
 * presets.h shape (e.g. smollm2-135m) instead of a GPT-2 from --layers,
 * --heads, --dim; --vocab overrides the preset's vocabulary.  --batch
 * (GenOptions.batch) defaults to every sequence of the run in one batch:
 * N*K rows for sampling, N*W for beam, as the PyTorch loop does.
 *
 * End of text.  eot = V-1, and the random model is made unable to emit it,
 * so every sequence runs exactly G steps on both implementations:
 *  - GPT-2: the eot row of the tied wte is the constant -1000 and ln_f.bias[0]
 *    is 1.  LayerNorm's normalised output sums to 0 over the channels (ln_f
 *    gain is 1 at init), so eot's logit is exactly -1000 * (0 + 1) = -1000 up
 *    to rounding; every other logit moves by wte[v][0] (~N(0, 0.02)).
 *  - Llama family: channel 0 of the residual stream is made the constant
 *    0.02 (embedding column 0 = 0.02 for every token but eot, row 0 of every
 *    o_proj and down_proj zeroed), and the head's eot row is -1e4 * e_0, so
 *    eot's logit is -1e4 * 0.02 / rms(x) * norm[0] < 0 (about -150 here);
 *    the other tokens' logits all move by the same amount (no effect).
 * eot never occurs in the prompts (ids in [0, V-1)).  Each timed run is then
 * checked: every output sequence has G tokens and no end of text (beam keeps
 * all W hypotheses, k = W, so an early stop would show), else the bench dies.
 *
 * Tokens counted: generated tokens of all sequences.  Sampling: N*K*G.
 * Beam: the hypotheses alive after each step summed over the steps =
 * N*W*G (step 0 expands each prompt's one hypothesis into W).
 *
 * FLOPs (model FLOPs of the forward work the run needs, both
 * implementations doing the same): per token fed, 2 x the matrix parameters
 * of the layers (GPT-2 12*C^2 per layer; Llama C*QD + 2*C*KD + QD*C + 3*C*F),
 * plus 2 x V*C for each row that needs logits, plus attention over the
 * cache 4*L*QD*n for a token that sees n positions (q.k and p.v).  Prefill:
 * N prompts of T0 tokens, logits for their last tokens only; then G-1 decode
 * steps of R rows (R = N*K or N*W) at positions T0 .. T0+G-2.  Biases,
 * norms, softmax over V, top-p sorting and beam selection are not counted.
 * gflops = flops / seconds; frac = gflops / sgemm_rows, where sgemm_rows is
 * cblas_sgemm's rate (NT, best of --sgemm-reps after one warm-up, as
 * bench/sgemm_peak) on this model's linear shapes at M = R rows, weighted by
 * their FLOPs in a step (L x each layer product + the head).
 *
 * Phases (--phases 1, an estimate: R more runs after the timed ones, mean):
 * prefill_s and steps_s time model_decode on the prompts and G-1
 * model_decode_step calls of R rows (the forward work alone, same cache
 * layout as gen.c; gen_run cannot be timed inside without touching src/);
 * other_s = seconds - prefill_s - steps_s (softmax, top-p, draws or beam
 * selection, bookkeeping) -- can come out slightly negative on a noisy machine. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "engine/gen.h"
#include "engine/model.h"
#include "engine/presets.h"

typedef struct {
    const char *preset;
    int L, NH, C, V, N, T0, G, K, W, threads, warmup, reps, batch, phases, sgemm_reps;
    double top_p, temp, alpha;
    uint64_t seed;
} Args;

typedef struct {
    double seconds, tok_s, gflops, sgemm_rows, frac, prefill_s, steps_s, flops;
    long tokens;
    int rows;
} ModeResult;

static void parse_args(int argc, char **argv, Args *a) {
    *a = (Args){NULL, 2, 2, 64, 0, 4, 8, 8, 2, 2, 1, 1, 3, 0, 1, 3, 0.95, 1.0, 1.0, 1};
    for (int i = 1; i < argc; i += 2) {
        CHECK(i + 1 < argc, "option %s needs a value", argv[i]);
        const char *o = argv[i], *s = argv[i + 1];
        int v = atoi(s);
        if (!strcmp(o, "--preset")) a->preset = s;
        else if (!strcmp(o, "--layers")) a->L = v;
        else if (!strcmp(o, "--heads")) a->NH = v;
        else if (!strcmp(o, "--dim")) a->C = v;
        else if (!strcmp(o, "--vocab")) a->V = v;
        else if (!strcmp(o, "--prompts")) a->N = v;
        else if (!strcmp(o, "--prompt-len")) a->T0 = v;
        else if (!strcmp(o, "--new")) a->G = v;
        else if (!strcmp(o, "--k")) a->K = v;
        else if (!strcmp(o, "--beam")) a->W = v;
        else if (!strcmp(o, "--top-p")) a->top_p = atof(s);
        else if (!strcmp(o, "--temperature")) a->temp = atof(s);
        else if (!strcmp(o, "--length-penalty")) a->alpha = atof(s);
        else if (!strcmp(o, "--threads")) a->threads = v;
        else if (!strcmp(o, "--warmup")) a->warmup = v;
        else if (!strcmp(o, "--reps")) a->reps = v;
        else if (!strcmp(o, "--batch")) a->batch = v;
        else if (!strcmp(o, "--phases")) a->phases = v;
        else if (!strcmp(o, "--sgemm-reps")) a->sgemm_reps = v;
        else if (!strcmp(o, "--seed")) a->seed = (uint64_t)strtoull(s, NULL, 10);
        else DIE("unknown option %s", o);
    }
    CHECK(a->N >= 1 && a->T0 >= 1 && a->G >= 1 && a->K >= 0 && a->W >= 0 && a->threads >= 1 && a->reps >= 1 &&
              a->warmup >= 0 && a->sgemm_reps >= 1,
          "bad sizes");
    CHECK(a->top_p > 0 && a->top_p <= 1 && a->temp > 0, "top_p in (0, 1], temperature > 0");
}

static ModelConfig make_config(const Args *a) {
    ModelConfig c;
    int need = a->T0 + a->G;
    if (a->preset) {
        CHECK(model_preset(a->preset, &c) == 0, "unknown preset %s", a->preset);
        if (a->V > 0) c.vocab_size = a->V;
        CHECK(c.vocab_size > 1, "preset %s needs --vocab", a->preset);
        CHECK(c.max_seq_len >= need, "preset %s has %d positions, %d needed", a->preset, c.max_seq_len, need);
    } else {
        CHECK(a->V > 1, "--vocab needed");
        c = model_config_gpt2(a->L, a->NH, a->C, a->V, need > 1024 ? need : 1024);
    }
    return c;
}

static float *tensor(Model *m, const char *name) {
    const ModelTensor *t = model_find_tensor(m, name);
    CHECK(t, "no tensor %s", name);
    return m->params + t->offset;
}

/* Makes eot = V-1 impossible to emit (see the header); returns it. */
static int suppress_eot(Model *m) {
    const ModelConfig *c = &m->cfg;
    int C = c->d_model, V = c->vocab_size, eot = V - 1;
    char nm[96];
    if (c->arch == MODEL_GPT2) {
        float *wte = tensor(m, "wte"), *lnfw = tensor(m, "ln_f.weight");
        for (int i = 0; i < C; i++) {
            CHECK(lnfw[i] == 1.0f, "ln_f gain is not 1");
            wte[(size_t)eot * C + i] = -1000.0f;
        }
        tensor(m, "ln_f.bias")[0] = 1.0f;
        return eot;
    }
    CHECK(c->arch == MODEL_LLAMA, "unknown family");
    int QD = c->n_head * c->head_dim, F = c->d_ff;
    float *emb = tensor(m, "model.embed_tokens.weight");
    for (int v = 0; v < V; v++) emb[(size_t)v * C] = 0.02f;
    for (int l = 0; l < c->n_layer; l++) {
        snprintf(nm, sizeof nm, "model.layers.%d.self_attn.o_proj.weight", l);
        memset(tensor(m, nm), 0, sizeof(float) * (size_t)QD); /* row 0 of [C, QD] */
        snprintf(nm, sizeof nm, "model.layers.%d.mlp.down_proj.weight", l);
        memset(tensor(m, nm), 0, sizeof(float) * (size_t)F); /* row 0 of [C, F] */
    }
    float *head = c->tie_embeddings ? emb : tensor(m, "lm_head.weight");
    memset(head + (size_t)eot * C, 0, sizeof(float) * (size_t)C);
    head[(size_t)eot * C] = -1e4f;
    if (!c->tie_embeddings) { /* the input row of eot: never fed, kept finite */
        memset(emb + (size_t)eot * C, 0, sizeof(float) * (size_t)C);
    }
    return eot;
}

/* matrix parameters of one layer, query width */
static double layer_mat_params(const ModelConfig *c, int *QD) {
    double C = c->d_model;
    if (c->arch == MODEL_GPT2) {
        *QD = c->d_model;
        return 12.0 * C * C;
    }
    *QD = c->n_head * c->head_dim;
    double KD = (double)c->n_kv_head * c->head_dim;
    return C * *QD + 2.0 * C * KD + (double)*QD * C + 3.0 * C * c->d_ff;
}

/* model FLOPs of a run: prefill of N prompts of T0, then G-1 steps of R rows */
static double run_flops(const ModelConfig *c, int N, int T0, int G, int R) {
    int QD;
    double P = layer_mat_params(c, &QD), L = c->n_layer, head = 2.0 * c->vocab_size * c->d_model, f = 0;
    for (int t = 0; t < T0; t++) f += N * (2.0 * L * P + 4.0 * L * QD * (t + 1));
    f += N * head;
    for (int s = 1; s < G; s++) f += R * (2.0 * L * P + head + 4.0 * L * QD * (T0 + s));
    return f;
}

/* cblas_sgemm GFLOP/s on the model's linear shapes at M rows (NT, as model.c) */
static double sgemm_rows(const ModelConfig *c, int M, int reps) {
    int C = c->d_model, V = c->vocab_size, QD;
    layer_mat_params(c, &QD);
    int shapes[5][2]; /* K, OC */
    int ns = 0;
    if (c->arch == MODEL_GPT2) {
        int s[4][2] = {{C, 3 * C}, {C, C}, {C, 4 * C}, {4 * C, C}};
        memcpy(shapes, s, sizeof s);
        ns = 4;
    } else {
        int KD = c->n_kv_head * c->head_dim, F = c->d_ff;
        int s[4][2] = {{C, QD + 2 * KD}, {QD, C}, {C, 2 * F}, {F, C}};
        memcpy(shapes, s, sizeof s);
        ns = 4;
    }
    shapes[ns][0] = C, shapes[ns][1] = V; /* the head */
    ns++;
    size_t wmax = 0, imax = 0;
    for (int i = 0; i < ns; i++) {
        size_t w = (size_t)shapes[i][0] * shapes[i][1], in = (size_t)M * shapes[i][0], o = (size_t)M * shapes[i][1];
        wmax = w > wmax ? w : wmax;
        imax = in > imax ? in : imax;
        imax = o > imax ? o : imax;
    }
    float *w = xmalloc_aligned(sizeof(float) * wmax), *in = xmalloc_aligned(sizeof(float) * imax);
    float *out = xmalloc_aligned(sizeof(float) * imax);
    Rng r;
    rng_seed(&r, 7);
    for (size_t i = 0; i < wmax; i++) w[i] = rng_float(&r) - 0.5f;
    for (size_t i = 0; i < imax; i++) in[i] = rng_float(&r) - 0.5f;
    double flops = 0, secs = 0;
    for (int i = 0; i < ns; i++) {
        int K = shapes[i][0], OC = shapes[i][1];
        double best = 1e30;
        for (int k = 0; k < reps + 1; k++) {
            double t0 = util_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, OC, K, 1, in, K, w, K, 0, out, OC);
            double dt = util_now() - t0;
            if (k > 0 && dt < best) best = dt;
        }
        double mult = i == ns - 1 ? 1.0 : c->n_layer;
        flops += mult * 2.0 * M * OC * K;
        secs += mult * best;
    }
    free(w), free(in), free(out);
    return flops / secs / 1e9;
}

/* The forward work of a run alone: prompts in one model_decode, then G-1 steps of
 * N*per rows (each input's `per` sequences sharing its prompt's rows, as gen.c). */
static void phase_forward(const Model *m, const int *const *prompts, int N, int T0, int G, int per, double *prefill_s,
                          double *steps_s) {
    int V = m->cfg.vocab_size, R = N * per;
    ModelKV *kv = model_kv_create_pool(m, R, T0 + G, N * T0 + R * G, N * T0 > R ? N * T0 : R);
    int *slot = xmalloc(sizeof(int) * (size_t)R), *cnt = xmalloc(sizeof(int) * (size_t)N);
    int *tok = xmalloc(sizeof(int) * (size_t)(N * T0 > R ? N * T0 : R));
    float *logits = xmalloc(sizeof(float) * (size_t)R * V);
    for (int i = 0; i < N; i++) {
        slot[i] = i * per, cnt[i] = T0;
        memcpy(tok + (size_t)i * T0, prompts[i], sizeof(int) * (size_t)T0);
    }
    double t0 = util_now();
    model_decode(m, kv, slot, tok, cnt, N, logits);
    double t1 = util_now();
    for (int s = 0; s < R; s++) {
        if (s % per) model_kv_copy(kv, s, s - s % per);
        slot[s] = s;
    }
    for (int g = 1; g < G; g++) {
        for (int s = 0; s < R; s++) tok[s] = (s * 7919 + g * 104729) % (V - 1);
        model_decode_step(m, kv, slot, tok, R, logits);
    }
    *prefill_s = t1 - t0;
    *steps_s = util_now() - t1;
    free(slot), free(cnt), free(tok), free(logits);
    model_kv_destroy(kv);
}

/* warm-up + timed runs of one mode; dies unless every sequence ran G steps */
static ModeResult run_mode(const Model *m, const Args *a, GenMode mode, const int *const *prompts, int eot) {
    int N = a->N, T0 = a->T0, per = mode == GEN_BEAM ? a->W : a->K;
    GenOptions o;
    gen_options_init(&o);
    o.mode = mode, o.max_new = a->G, o.temperature = a->temp, o.top_p = a->top_p, o.seed = a->seed;
    o.k = per, o.beam = a->W, o.length_penalty = a->alpha;
    o.batch = a->batch > 0 ? a->batch : N * per;
    int *plen = xmalloc(sizeof(int) * (size_t)N);
    for (int i = 0; i < N; i++) plen[i] = T0;
    GenSeq *out = xcalloc((size_t)N * per, sizeof(GenSeq));
    ModeResult r = {0};
    r.rows = N * per;
    double total = 0;
    for (int rep = 0; rep < a->warmup + a->reps; rep++) {
        o.seed = a->seed + (uint64_t)rep;
        double t0 = util_now();
        gen_run(m, &o, prompts, plen, N, eot, 0, out);
        double dt = util_now() - t0;
        long toks = 0;
        for (int s = 0; s < N * per; s++) {
            CHECK(out[s].n == a->G && !out[s].finished, "%s sequence %d: %d tokens, finished %d (eot %d reached)",
                  mode == GEN_BEAM ? "beam" : "sample", s, out[s].n, out[s].finished, eot);
            toks += out[s].n + out[s].finished;
            gen_seq_free(&out[s]);
        }
        if (rep >= a->warmup) total += dt, r.tokens = toks;
    }
    r.seconds = total / a->reps;
    r.tok_s = (double)r.tokens / r.seconds;
    r.flops = run_flops(&m->cfg, N, T0, a->G, r.rows);
    r.gflops = r.flops / r.seconds / 1e9;
    r.sgemm_rows = sgemm_rows(&m->cfg, r.rows, a->sgemm_reps);
    r.frac = r.gflops / r.sgemm_rows;
    r.prefill_s = r.steps_s = NAN;
    if (a->phases) { /* mean over reps runs, like seconds */
        r.prefill_s = r.steps_s = 0;
        for (int rep = 0; rep < a->reps; rep++) {
            double p, s;
            phase_forward(m, prompts, N, T0, a->G, per, &p, &s);
            r.prefill_s += p / a->reps, r.steps_s += s / a->reps;
        }
    }
    free(plen), free(out);
    return r;
}

static void print_mode(const char *p, const ModeResult *r, int ran) {
    if (!ran) {
        printf(", \"%s_tok_s\": null", p);
        return;
    }
    printf(", \"%s_tok_s\": %.2f, \"%s_s\": %.4f, \"%s_tokens\": %ld, \"%s_rows\": %d, \"%s_flops\": %.6g, "
           "\"%s_flops_per_token\": %.6g, \"%s_gflops\": %.2f, \"%s_sgemm_rows_gflops\": %.1f, \"%s_frac\": %.3f",
           p, r->tok_s, p, r->seconds, p, r->tokens, p, r->rows, p, r->flops, p, r->flops / (double)r->tokens, p,
           r->gflops, p, r->sgemm_rows, p, r->frac);
    if (!isnan(r->prefill_s))
        printf(", \"%s_prefill_s\": %.4f, \"%s_steps_s\": %.4f, \"%s_other_s\": %.4f", p, r->prefill_s, p, r->steps_s,
               p, r->seconds - r->prefill_s - r->steps_s);
}

int main(int argc, char **argv) {
    Args a;
    parse_args(argc, argv, &a);
    par_init(a.threads);
    openblas_set_num_threads(a.threads);
    ModelConfig cfg = make_config(&a);
    Model m;
    model_init(&m, &cfg);
    model_init_weights(&m, 1);
    int eot = suppress_eot(&m), V = cfg.vocab_size;
    int *ptok = xmalloc(sizeof(int) * (size_t)a.N * a.T0);
    const int **prompts = xmalloc(sizeof(int *) * (size_t)a.N);
    Rng r;
    rng_seed(&r, 100 + a.seed);
    for (int i = 0; i < a.N * a.T0; i++) ptok[i] = (int)rng_below(&r, (uint64_t)(V - 1)); /* never eot */
    for (int i = 0; i < a.N; i++) prompts[i] = ptok + (size_t)i * a.T0;
    ModeResult rs = {0}, rb = {0};
    if (a.K > 0) rs = run_mode(&m, &a, GEN_SAMPLE, prompts, eot);
    if (a.W > 0) rb = run_mode(&m, &a, GEN_BEAM, prompts, eot);
    printf("{\"arch\": \"%s\", \"preset\": \"%s\", \"layers\": %d, \"heads\": %d, \"dim\": %d, \"vocab\": %d, "
           "\"kv_heads\": %d, \"head_dim\": %d, \"ffn\": %d, \"rope_theta\": %g, \"norm_eps\": %g, ",
           model_arch_name(cfg.arch), a.preset ? a.preset : "", cfg.n_layer, cfg.n_head, cfg.d_model, V,
           cfg.n_kv_head, cfg.head_dim, cfg.d_ff, cfg.rope_theta, cfg.norm_eps);
    printf("\"params\": %zu, \"prompts\": %d, \"prompt_len\": %d, \"new\": %d, \"k\": %d, \"beam\": %d, "
           "\"top_p\": %g, \"temperature\": %g, \"length_penalty\": %g, \"eot\": %d, \"threads\": %d, "
           "\"warmup\": %d, \"reps\": %d, \"seconds\": %.4f",
           m.n_params, a.N, a.T0, a.G, a.K, a.W, a.top_p, a.temp, a.alpha, eot, a.threads, a.warmup, a.reps,
           (rs.seconds + rb.seconds) * a.reps);
    print_mode("sample", &rs, a.K > 0);
    print_mode("beam", &rb, a.W > 0);
    printf("}\n");
    free(ptok), free(prompts);
    model_free(&m);
    par_shutdown();
    return 0;
}

/* bench_train -- training tokens/second of the student, driving exactly the
 * trainer's step (model_forward/model_backward per micro-batch, gradient
 * allreduce, clipping, AdamW) on random tokens, one full-length document per
 * row, loss on every position.  Run under mpirun for several ranks: --batch
 * is the global batch, split over the ranks.  Prints one JSON line (rank 0)
 * with the model's shape, FLOPs per token (model_flops_per_token), the memory
 * the trainer's plan counts (16 bytes per parameter + activations) and each
 * rank's peak resident set (VmHWM of /proc/self/status at the end).
 *
 * usage: bench_train [--preset NAME | --layers L --heads NH --dim C]
 *                    [--vocab V] --seq T --batch B [--micro M]
 *                    --steps N --warmup W --threads K
 * Without --preset the model is GPT-2 (L, NH, C, V; positions max(T, 1024)).
 * --preset takes any name of model_preset (engine/presets.h: gpt2-124m,
 * llama-tiny, smollm2-135m, qwen2.5-0.5b, ...); --layers, --heads, --dim and
 * --vocab given as well override the preset's (for quick checks; the GPT-2
 * presets and llama-tiny need --vocab). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/comm.h"
#include "base/util.h"
#include "engine/model.h"
#include "engine/optim.h"
#include "engine/presets.h"

/* peak resident set of this process in KiB (VmHWM), -1 if unknown */
static long vmhwm_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

static void print_json(const Model *m, const char *preset, int T, int B, int micro, int steps, double dt,
                       double first, double last, int ranks, int threads, const double *rss_gib) {
    const ModelConfig *c = &m->cfg;
    double gib = (double)(1 << 30);
    double state_gib = (double)m->n_params * 16 / gib;
    double act_gib = (double)model_activation_bytes(c, micro, T) / gib;
    double rss_max = 0;
    for (int r = 0; r < ranks; r++) rss_max = rss_gib[r] > rss_max ? rss_gib[r] : rss_max;
    printf("{\"tok_s\": %.2f, \"step_s\": %.4f, \"loss_first\": %.4f, \"loss_last\": %.4f, "
           "\"flops_per_token\": %.6g, \"params\": %zu, \"ranks\": %d, \"threads\": %d, ",
           (double)B * T * steps / dt, dt / steps, first, last, model_flops_per_token(c, T), m->n_params, ranks,
           threads);
    printf("\"preset\": \"%s\", \"arch\": \"%s\", \"layers\": %d, \"heads\": %d, \"dim\": %d, \"vocab\": %d, "
           "\"seq\": %d, \"batch\": %d, \"micro\": %d, \"steps\": %d, ",
           preset, model_arch_name(c->arch), c->n_layer, c->n_head, c->d_model, c->vocab_size, T, B, micro, steps);
    if (c->arch == MODEL_LLAMA)
        printf("\"kv_heads\": %d, \"head_dim\": %d, \"ffn\": %d, \"rope_theta\": %.17g, \"norm_eps\": %.17g, "
               "\"qkv_bias\": %d, \"qk_norm\": %d, \"tied\": %d, ",
               c->n_kv_head, c->head_dim, c->d_ff, c->rope_theta, c->norm_eps, c->qkv_bias, c->qk_norm,
               c->tie_embeddings);
    printf("\"state_gib\": %.4f, \"act_gib\": %.4f, \"plan_gib\": %.4f, \"rss_gib_max\": %.4f, \"rss_gib\": [",
           state_gib, act_gib, state_gib + act_gib, rss_max);
    for (int r = 0; r < ranks; r++) printf("%s%.4f", r ? ", " : "", rss_gib[r]);
    printf("]}\n");
}

int main(int argc, char **argv) {
    Comm comm;
    comm_init(&comm, &argc, &argv);
    int L = 0, NH = 0, C = 0, V = 0, T = 64, B = 8, micro = 0, steps = 5, warmup = 2, threads = 1;
    const char *preset = "";
    for (int i = 1; i < argc; i += 2) {
        CHECK(i + 1 < argc, "option %s needs a value", argv[i]);
        if (!strcmp(argv[i], "--preset")) {
            preset = argv[i + 1];
            continue;
        }
        int v = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--layers")) L = v;
        else if (!strcmp(argv[i], "--heads")) NH = v;
        else if (!strcmp(argv[i], "--dim")) C = v;
        else if (!strcmp(argv[i], "--vocab")) V = v;
        else if (!strcmp(argv[i], "--seq")) T = v;
        else if (!strcmp(argv[i], "--batch")) B = v;
        else if (!strcmp(argv[i], "--micro")) micro = v;
        else if (!strcmp(argv[i], "--steps")) steps = v;
        else if (!strcmp(argv[i], "--warmup")) warmup = v;
        else if (!strcmp(argv[i], "--threads")) threads = v;
        else DIE("unknown option %s", argv[i]);
    }
    CHECK(T > 0 && B > 0 && steps > 0 && warmup >= 0 && threads > 0, "bad --seq/--batch/--steps/--warmup/--threads");
    CHECK(B % comm.size == 0, "batch %d not divisible by %d ranks", B, comm.size);
    int rows = B / comm.size;
    if (!micro) micro = rows;
    CHECK(micro > 0 && rows % micro == 0, "micro %d does not divide %d", micro, rows);
    ModelConfig cfg;
    if (preset[0]) {
        CHECK(model_preset(preset, &cfg) == 0, "--preset %s is not a preset of engine/presets.h", preset);
        if (L) cfg.n_layer = L;
        if (NH) cfg.n_head = NH;
        if (C) cfg.d_model = C;
        if (V) cfg.vocab_size = V;
        CHECK(cfg.vocab_size > 0, "preset %s has no vocabulary of its own: give --vocab", preset);
        CHECK(T <= cfg.max_seq_len, "--seq %d exceeds the %d positions of %s", T, cfg.max_seq_len, preset);
    } else {
        cfg = model_config_gpt2(L ? L : 2, NH ? NH : 2, C ? C : 64, V ? V : 512, T > 1024 ? T : 1024);
    }
    char why[256];
    CHECK(model_config_check(&cfg, why, sizeof why) == 0, "%s", why);
    par_init(threads);
    openblas_set_num_threads(threads);
    Model m;
    model_init(&m, &cfg);
    model_init_weights(&m, 1);
    model_alloc_acts(&m, micro, T);
    Optim opt;
    optim_init(&opt, &m, 0.9, 0.95, 1e-8, 0.1, 1.0);
    V = cfg.vocab_size;
    int N = micro * T;
    int *tok = xmalloc(sizeof(int) * N * (rows / micro)), *tgt = xmalloc(sizeof(int) * N * (rows / micro));
    int *pos = xmalloc(sizeof(int) * N), *seg = xmalloc(sizeof(int) * N);
    Rng r;
    rng_seed(&r, 100 + (uint64_t)comm.rank);
    for (int i = 0; i < N * (rows / micro); i++) tok[i] = (int)rng_below(&r, V), tgt[i] = (int)rng_below(&r, V);
    for (int i = 0; i < N; i++) pos[i] = i % T, seg[i] = 0;
    float *g = xmalloc(sizeof(float) * N);
    double first = 0, last = 0, t0 = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) {
            comm_barrier();
            t0 = util_now();
        }
        model_zero_grad(&m);
        double lsum = 0;
        for (int k = 0; k < rows / micro; k++) {
            ModelBatch b = {micro, T, tok + (size_t)k * N, pos, seg, tgt + (size_t)k * N};
            int M = model_forward(&m, &b);
            for (int j = 0; j < M; j++) {
                g[j] = -1.0f / (float)(B * T);
                lsum -= m.logp[j];
            }
            model_backward(&m, &b, g);
        }
        if (comm.size > 1) {
            comm_allreduce_sum_f32(m.grads, m.n_params);
            comm_allreduce_sum_f64(&lsum, 1);
        }
        optim_step(&opt, &m, 3e-4, s + 1);
        double loss = lsum / (B * T);
        if (s == 0) first = loss;
        last = loss;
    }
    comm_barrier();
    double dt = util_now() - t0;
    /* every rank's peak resident set, summed into rank 0's table */
    double *rss = xcalloc((size_t)comm.size, sizeof(double));
    long kib = vmhwm_kib();
    rss[comm.rank] = kib < 0 ? -1.0 : (double)kib / (1024.0 * 1024.0);
    if (comm.size > 1) comm_allreduce_sum_f64(rss, (size_t)comm.size);
    if (comm.rank == 0)
        print_json(&m, preset, T, B, micro, steps, dt, first, last, comm.size, threads, rss);
    optim_free(&opt);
    model_free(&m);
    free(tok), free(tgt), free(pos), free(seg), free(g), free(rss);
    par_shutdown();
    comm_finalize();
    return 0;
}

/* bench_train -- training tokens/second of the student, driving exactly the
 * trainer's step (model_forward/model_backward per micro-batch, gradient
 * allreduce, clipping, AdamW) on random tokens, one full-length document per
 * row, loss on every position.  Run under mpirun for several ranks: --batch
 * is the global batch, split over the ranks.  Prints one JSON line.
 *
 * usage: bench_train --layers L --heads NH --dim C --vocab V --seq T
 *                    --batch B [--micro M] --steps N --warmup W --threads K */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/comm.h"
#include "engine/model.h"
#include "engine/optim.h"
#include "base/util.h"

int main(int argc, char **argv) {
    Comm comm;
    comm_init(&comm, &argc, &argv);
    int L = 2, NH = 2, C = 64, V = 512, T = 64, B = 8, micro = 0, steps = 5, warmup = 2, threads = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
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
    CHECK(B % comm.size == 0, "batch %d not divisible by %d ranks", B, comm.size);
    int rows = B / comm.size;
    if (!micro) micro = rows;
    CHECK(rows % micro == 0, "micro %d does not divide %d", micro, rows);
    par_init(threads);
    openblas_set_num_threads(threads);
    ModelConfig cfg = model_config_gpt2(L, NH, C, V, T > 1024 ? T : 1024);
    Model m;
    model_init(&m, &cfg);
    model_init_weights(&m, 1);
    model_alloc_acts(&m, micro, T);
    Optim opt;
    optim_init(&opt, &m, 0.9, 0.95, 1e-8, 0.1, 1.0);
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
    double tok_s = (double)B * T * steps / dt;
    ModelConfig fc = cfg;
    double flops = model_flops_per_token(&fc, T);
    if (comm.rank == 0)
        printf("{\"tok_s\": %.2f, \"step_s\": %.4f, \"loss_first\": %.4f, \"loss_last\": %.4f, "
               "\"flops_per_token\": %.6g, \"params\": %zu, \"ranks\": %d, \"threads\": %d}\n",
               tok_s, dt / steps, first, last, flops, m.n_params, comm.size, threads);
    optim_free(&opt);
    model_free(&m);
    free(tok), free(tgt), free(pos), free(seg), free(g);
    par_shutdown();
    comm_finalize();
    return 0;
}

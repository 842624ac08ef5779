/* sgemm_peak -- OpenBLAS cblas_sgemm GFLOP/s on a model's training shapes
 * (N = 2048 rows: B*T of the benchmark's batch) in the three layouts the
 * model uses; prints the best and the mean as one JSON line.
 * usage: sgemm_peak THREADS [REPEATS [C QKV UP DOWN]]
 * The widths default to GPT-2 124M's (C 768, QKV 3C, UP 4C, DOWN 4C); a
 * Llama-style model gives its own (smollm2-135m: 576 960 3072 1536, UP the
 * fused gate|up = 2 ffn, DOWN the ffn).  Products, M x N x K:
 *   forward (NT)   N x QKV x C, N x UP x C, N x C x DOWN
 *   dinp    (NN)   N x C x QKV, N x C x UP
 *   dweight (TN)   QKV x C x N, UP x C x N */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/util.h"

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1, reps = argc > 2 ? atoi(argv[2]) : 5;
    openblas_set_num_threads(threads);
    int N = 2048, C = 768, QKV = 3 * 768, UP = 4 * 768, DOWN = 4 * 768;
    if (argc > 6) C = atoi(argv[3]), QKV = atoi(argv[4]), UP = atoi(argv[5]), DOWN = atoi(argv[6]);
    CHECK(threads > 0 && reps > 0 && C > 0 && QKV > 0 && UP > 0 && DOWN > 0,
          "usage: sgemm_peak THREADS [REPEATS [C QKV UP DOWN]]");
    int shapes[][4] = {/* M, N, K, layout: 0 NT (forward), 1 NN (dinp), 2 TN (dweight) */
                       {N, QKV, C, 0}, {N, UP, C, 0}, {N, C, DOWN, 0},
                       {N, C, QKV, 1}, {N, C, UP, 1}, {QKV, C, N, 2}, {UP, C, N, 2}};
    int wide = QKV > UP ? QKV : UP;
    wide = wide > DOWN ? wide : DOWN;
    wide = wide > C ? wide : C;
    size_t n = (size_t)(N > wide ? N : wide) * (size_t)wide; /* every operand: two of N and the widths */
    float *a = xmalloc_aligned(sizeof(float) * n);
    float *b = xmalloc_aligned(sizeof(float) * n);
    float *c = xmalloc_aligned(sizeof(float) * n);
    Rng r;
    rng_seed(&r, 1);
    for (size_t i = 0; i < n; i++) a[i] = rng_float(&r) - 0.5f, b[i] = rng_float(&r) - 0.5f;
    double best = 0, sum = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], Nn = shapes[s][1], K = shapes[s][2], lay = shapes[s][3];
        double bs = 0;
        for (int k = 0; k < reps + 1; k++) {
            double t0 = util_now();
            if (lay == 0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, Nn, K, 1, a, K, b, K, 0, c, Nn);
            else if (lay == 1)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, Nn, K, 1, a, K, b, Nn, 0, c, Nn);
            else
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, M, Nn, K, 1, a, M, b, Nn, 0, c, Nn);
            double gf = 2.0 * M * Nn * K / (util_now() - t0) / 1e9;
            if (k > 0 && gf > bs) bs = gf;
        }
        sum += bs;
        if (bs > best) best = bs;
    }
    printf("{\"threads\": %d, \"sgemm_gflops_best\": %.1f, \"sgemm_gflops_mean\": %.1f, \"dims\": [%d, %d, %d, %d]}\n",
           threads, best, sum / (double)(sizeof shapes / sizeof shapes[0]), C, QKV, UP, DOWN);
    free(a), free(b), free(c);
    return 0;
}

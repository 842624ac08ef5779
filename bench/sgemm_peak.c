/* sgemm_peak -- OpenBLAS cblas_sgemm GFLOP/s on the GPT-2 training shapes
 * (B*T = 2048 rows, C = 768) in the three layouts the model uses; prints
 * the best as one JSON line.  usage: sgemm_peak THREADS [REPEATS] */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/util.h"

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1, reps = argc > 2 ? atoi(argv[2]) : 5;
    openblas_set_num_threads(threads);
    int N = 2048, C = 768;
    int shapes[][4] = {/* M, N, K, layout: 0 NT (forward), 1 NN (dinp), 2 TN (dweight) */
                       {N, 3 * C, C, 0}, {N, 4 * C, C, 0}, {N, C, 4 * C, 0},
                       {N, C, 3 * C, 1}, {N, C, 4 * C, 1}, {3 * C, C, N, 2}, {4 * C, C, N, 2}};
    float *a = xmalloc_aligned(sizeof(float) * (size_t)N * 4 * C);
    float *b = xmalloc_aligned(sizeof(float) * (size_t)N * 4 * C);
    float *c = xmalloc_aligned(sizeof(float) * (size_t)N * 4 * C);
    Rng r;
    rng_seed(&r, 1);
    for (size_t i = 0; i < (size_t)N * 4 * C; i++) a[i] = rng_float(&r) - 0.5f, b[i] = rng_float(&r) - 0.5f;
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
    printf("{\"threads\": %d, \"sgemm_gflops_best\": %.1f, \"sgemm_gflops_mean\": %.1f}\n", threads,
           best, sum / (double)(sizeof shapes / sizeof shapes[0]));
    free(a), free(b), free(c);
    return 0;
}

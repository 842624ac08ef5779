/* bench_ckpt -- write bandwidth of ckpt_write_sharded (run under mpirun -np W).
 *
 * A model of a preset's shape (default qwen2.5-0.5b) with random values, the
 * AdamW moments sharded over the ranks by model_shard_bounds; every rank
 * fills only its own slice of the parameters (the rest of its parameter
 * buffer is never touched, so never resident).  Unless --distinct, each
 * rank's moment slices are its slice of the parameters (the bytes written
 * are the same -- params + m + v -- and the memory one copy of the
 * parameters, not three).  Each repetition writes dir/step_<r>.h5 and rank 0
 * deletes it after timing: from the barrier before the call to its return
 * (rank 0 creates the file with the metadata, all ranks write, sync, rename).
 * Prints one JSON line per repetition and a last one with the best and the
 * median.  --bytes: prints the payload bytes (3 x 4 x parameters) and
 * exits without MPI.  Not part of the tests: bench/ckpt.sh runs it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/comm.h"
#include "base/util.h"
#include "engine/presets.h"
#include "io/ckpt.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* the model's layout and an (untouched) parameter buffer: no gradients */
static void model_shell(Model *m, const ModelConfig *cfg) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->n_tensors = model_tensor_layout(cfg, &m->tensors);
    m->n_params = model_param_count(cfg);
    m->params = xmalloc(sizeof(float) * m->n_params);
}

/* random floats of a plausible scale (xorshift: fast enough for 10^9) */
static void fill(float *x, size_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = ((float)(s >> 40) * (1.0f / 16777216.0f) - 0.5f) * 0.04f;
    }
}

int main(int argc, char **argv) {
    const char *dir = NULL, *preset = "qwen2.5-0.5b";
    int repeat = 1, distinct = 0, bytes_only = 0, serial = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--dir") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--preset") && i + 1 < argc) preset = argv[++i];
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--distinct")) distinct = 1;
        else if (!strcmp(argv[i], "--bytes")) bytes_only = 1;
        else if (!strcmp(argv[i], "--serial")) serial = 1;
        else {
            fprintf(stderr, "usage: bench_ckpt --dir DIR [--preset NAME] [--repeat N] [--distinct] | --bytes\n");
            return 2;
        }
    }
    ModelConfig cfg;
    if (model_preset(preset, &cfg) != 0 || cfg.vocab_size <= 0) {
        fprintf(stderr, "bench_ckpt: %s is not a preset with a vocabulary\n", preset);
        return 2;
    }
    double payload = 3.0 * 4.0 * (double)model_param_count(&cfg);
    if (bytes_only) {
        printf("%.0f\n", payload);
        return 0;
    }
    if (!dir || repeat < 1) {
        fprintf(stderr, "bench_ckpt: --dir DIR is required\n");
        return 2;
    }
    Comm c;
    comm_init(&c, &argc, &argv);
    Model m;
    model_shell(&m, &cfg);
    size_t *b = xmalloc(sizeof(size_t) * (size_t)(c.size + 1));
    model_shard_bounds(&m, c.size, b);
    if (serial) b[1] = m.n_params; /* one rank writes everything with ckpt_write */
    CHECK(!serial || c.size == 1, "--serial runs on one rank");
    size_t lo = b[c.rank], hi = b[c.rank + 1];
    fill(m.params + lo, hi - lo, (uint64_t)c.rank + 1);
    float *mm = m.params + lo, *vv = m.params + lo;
    if (distinct) {
        mm = xmalloc(sizeof(float) * (hi - lo + 1)), vv = xmalloc(sizeof(float) * (hi - lo + 1));
        fill(mm, hi - lo, 1000 + (uint64_t)c.rank), fill(vv, hi - lo, 2000 + (uint64_t)c.rank);
    }
    Provenance prov;
    prov_collect(&prov, argc, argv, c.size);
    double *secs = xmalloc(sizeof(double) * (size_t)repeat);
    for (int k = 0; k < repeat; k++) {
        TrainState st = {.step = k + 1, .world_size = c.size, .threads = 1};
        char *path = NULL;
        Err e;
        comm_barrier();
        double t0 = comm_wtime();
        int rc = serial ? ckpt_write(dir, &m, mm, vv, &st, NULL, "{}", &prov, NULL, NULL, &path, &e)
                        : ckpt_write_sharded(&c, dir, &m, b, mm, vv, &st, NULL, "{}", &prov, NULL, NULL, &path, &e);
        secs[k] = comm_wtime() - t0;
        if (rc != 0) {
            if (c.rank == 0) fprintf(stderr, "bench_ckpt: %s\n", e.msg);
            comm_exit(1);
        }
        struct stat sb;
        if (c.rank == 0) {
            double size = stat(path, &sb) == 0 ? (double)sb.st_size : 0;
            printf("{\"ranks\": %d, \"preset\": \"%s\", \"params\": %zu, \"payload_bytes\": %.0f, \"file_bytes\": %.0f, "
                   "\"seconds\": %.3f, \"gb_s\": %.3f}\n",
                   c.size, preset, m.n_params, payload, size, secs[k], payload / secs[k] / 1e9);
            fflush(stdout);
            unlink(path);
        }
        free(path);
        comm_barrier();
    }
    qsort(secs, (size_t)repeat, sizeof *secs, cmp_d);
    if (c.rank == 0)
        printf("{\"ranks\": %d, \"best_gb_s\": %.3f, \"median_gb_s\": %.3f}\n", c.size, payload / secs[0] / 1e9,
               payload / secs[repeat / 2] / 1e9);
    free(secs), free(b);
    if (distinct) free(mm), free(vv);
    prov_free(&prov);
    free(m.params), free(m.tensors);
    comm_finalize();
    return 0;
}

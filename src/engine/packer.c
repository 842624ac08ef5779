/* packer -- the deterministic packer of examples into rows; see
 * include/engine/packer.h. */
#include "engine/packer.h"

#include <stdlib.h>
#include <string.h>

#define STREAM_SHUFFLE 0x5bu /* rng_derive stream of the epoch permutations */

static void make_perm(int64_t *perm, int64_t n, uint64_t seed, int64_t epoch, int shuffle) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    if (!shuffle) return;
    Rng r;
    rng_seed(&r, rng_derive(seed, STREAM_SHUFFLE, (uint64_t)epoch));
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(&r, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

void packer_init(Packer *p, const Examples *ex, uint64_t seed, int T, int shuffle) {
    memset(p, 0, sizeof *p);
    p->ex = ex;
    p->seed = seed;
    p->T = T;
    p->shuffle = shuffle;
    p->perm = xmalloc(sizeof(int64_t) * (size_t)(ex->n ? ex->n : 1));
    p->perm_epoch = -1;
}

void packer_free(Packer *p) {
    if (!p) return;
    free(p->perm);
    p->perm = NULL;
}

static int64_t current_example(Packer *p) {
    if (p->one_pass && (p->cur.epoch > 0 || p->cur.index >= p->ex->n)) return -1;
    if (p->cur.index >= p->ex->n) {
        p->cur.epoch++;
        p->cur.index = 0;
    }
    if (p->perm_epoch != p->cur.epoch) {
        make_perm(p->perm, p->ex->n, p->seed, p->cur.epoch, p->shuffle);
        p->perm_epoch = p->cur.epoch;
    }
    return p->perm[p->cur.index];
}

int64_t packer_next_rows(Packer *p, int nrows, int *tok, int *pos, int *seg, int *tgt, int pad_id) {
    return packer_next_rows_ex(p, nrows, tok, pos, seg, tgt, NULL, pad_id);
}

int64_t packer_next_rows_ex(Packer *p, int nrows, int *tok, int *pos, int *seg, int *tgt, int *exid, int pad_id) {
    const Examples *ex = p->ex;
    int T = p->T;
    int64_t nloss = 0;
    for (int r = 0; r < nrows; r++) {
        int *tk = tok + (size_t)r * T, *ps = pos + (size_t)r * T, *sg = seg + (size_t)r * T,
            *tg = tgt + (size_t)r * T;
        int fill = 0;
        for (;;) {
            int64_t k = current_example(p);
            if (k < 0) break; /* one pass: no examples left */
            int need = (int)(ex->off[k + 1] - ex->off[k]) - 1;
            if (fill + need > T) break;
            const int32_t *ids = ex->ids + ex->off[k];
            for (int j = 0; j < need; j++) {
                tk[fill + j] = ids[j];
                ps[fill + j] = j;
                sg[fill + j] = fill;
                int has = j + 1 >= ex->n_prompt[k];
                tg[fill + j] = has ? ids[j + 1] : -1;
                if (exid) exid[(size_t)r * T + fill + j] = (int)k;
                nloss += has;
            }
            fill += need;
            p->cur.index++;
        }
        CHECK(fill > 0 || p->one_pass, "an example longer than the row survived tokenization");
        for (int j = fill; j < T; j++) {
            if (exid) exid[(size_t)r * T + j] = -1;
            tk[j] = pad_id;
            ps[j] = 0;
            sg[j] = j;
            tg[j] = -1;
        }
    }
    return nloss;
}

int64_t packer_rows_for_epochs(const Examples *ex, uint64_t seed, int T, int shuffle, double epochs) {
    Packer p;
    packer_init(&p, ex, seed, T, shuffle);
    double target = epochs * (double)ex->n;
    int64_t rows = 0;
    for (;;) {
        double done = (double)p.cur.epoch * (double)ex->n + (double)p.cur.index;
        if (done >= target) break;
        int fill = 0;
        for (;;) {
            int64_t k = current_example(&p);
            int need = (int)(ex->off[k + 1] - ex->off[k]) - 1;
            if (fill + need > T) break;
            fill += need;
            p.cur.index++;
        }
        rows++;
    }
    packer_free(&p);
    return rows;
}

/* test_data -- the packer and the example split: every example of an epoch
 * appears exactly once (and one-pass mode never repeats one), packed rows
 * never mix positions across examples, resuming from a saved cursor
 * continues the identical stream, and the train/validation split is
 * deterministic and disjoint. */
#include <stdlib.h>
#include <string.h>

#include "engine/data.h"
#include "io/dataset.h"
#include "engine/packer.h"
#include "test.h"
#include "base/util.h"

/* n examples; example i has len(i) ids: i*1000+j, prompt of 2 ids */
static void make(Examples *x, int n, int T) {
    memset(x, 0, sizeof *x);
    x->n = n;
    x->off = xmalloc(sizeof(int64_t) * (n + 1));
    x->n_prompt = xmalloc(sizeof(int32_t) * n);
    int64_t tot = 0;
    x->off[0] = 0;
    for (int i = 0; i < n; i++) {
        int len = 3 + (i * 7) % (T - 2); /* 3..T: needs len-1 <= T-1 positions */
        tot += len;
        x->off[i + 1] = tot;
        x->n_prompt[i] = 2;
    }
    x->ids = xmalloc(sizeof(int32_t) * tot);
    for (int i = 0; i < n; i++)
        for (int64_t j = x->off[i]; j < x->off[i + 1]; j++) x->ids[j] = i * 1000 + (int)(j - x->off[i]);
}

/* Decodes rows into per-example sightings; checks positions/segments. */
static int scan(const int *tok, const int *pos, const int *seg, const int *tgt, int rows, int T,
                int *seen, int n, int *bad) {
    int loss = 0;
    for (int r = 0; r < rows; r++)
        for (int t = 0; t < T; t++) {
            int i = r * T + t;
            if (tgt[i] < 0 && seg[i] == t && pos[i] == 0 && (t == 0 || tok[i] != tok[i - 1] + 1)) {
                /* padding or an example start; starts are checked below */
            }
            if (pos[i] == 0 && seg[i] == t && tgt[i] >= 0) (*bad)++; /* the first position predicts a prompt id */
            if (t - seg[i] != pos[i]) (*bad)++;
            if (pos[i] == 0 && tgt[i] == -1 && t + 1 < T && pos[i + 1] == 1 && seg[i + 1] == t) {
                int ex = tok[i] / 1000;
                if (ex >= 0 && ex < n) seen[ex]++;
            }
            if (tgt[i] >= 0) {
                loss++;
                if (tgt[i] != tok[i] + 1) (*bad)++; /* next id of the same example */
            }
        }
    return loss;
}

int main(void) {
    enum { N = 57, T = 24 };
    Examples ex;
    make(&ex, N, T);
    /* one epoch, shuffled: rows needed for exactly one pass */
    int64_t rows = packer_rows_for_epochs(&ex, 9, T, 1, 1.0);
    int *tok = xmalloc(sizeof(int) * rows * T * 3), *pos = xmalloc(sizeof(int) * rows * T * 3);
    int *seg = xmalloc(sizeof(int) * rows * T * 3), *tgt = xmalloc(sizeof(int) * rows * T * 3);
    Packer p;
    packer_init(&p, &ex, 9, T, 1);
    int64_t nl = packer_next_rows(&p, (int)rows, tok, pos, seg, tgt, 0);
    int seen[N] = {0}, bad = 0;
    int loss = scan(tok, pos, seg, tgt, (int)rows, T, seen, N, &bad);
    int once = 1;
    for (int i = 0; i < N; i++) once &= seen[i] == 1;
    EXPECT(once, "an epoch must show every example exactly once");
    EXPECT(bad == 0, "%d malformed positions", bad);
    int64_t want = 0;
    for (int i = 0; i < N; i++) want += (ex.off[i + 1] - ex.off[i]) - 2; /* targets after the prompt */
    EXPECT(nl == loss && nl == want, "loss positions %lld / %d, want %lld", (long long)nl, loss, (long long)want);
    EXPECT((p.cur.epoch == 1 && p.cur.index == 0) || (p.cur.epoch == 0 && p.cur.index == N),
           "cursor after one epoch: %lld/%lld", (long long)p.cur.epoch, (long long)p.cur.index);
    /* resuming from a saved cursor continues the same stream */
    int *t1 = xmalloc(sizeof(int) * 40 * T), *t2 = xmalloc(sizeof(int) * 40 * T);
    int *sc = xmalloc(sizeof(int) * 40 * T * 3);
    Packer a, b;
    packer_init(&a, &ex, 3, T, 1);
    packer_next_rows(&a, 17, sc, sc + 40 * T, sc + 80 * T, t1, 0); /* advance */
    DataCursor saved = a.cur;
    packer_next_rows(&a, 40, t1, sc, sc + 40 * T, sc + 80 * T, 0);
    packer_init(&b, &ex, 3, T, 1);
    b.cur = saved;
    packer_next_rows(&b, 40, t2, sc, sc + 40 * T, sc + 80 * T, 0);
    EXPECT(memcmp(t1, t2, sizeof(int) * 40 * T) == 0, "resumed stream differs");
    /* different epochs are different permutations, same seed same order */
    Packer c1, c2;
    packer_init(&c1, &ex, 3, T, 1);
    packer_init(&c2, &ex, 4, T, 1);
    packer_next_rows(&c1, 5, t1, sc, sc + 40 * T, sc + 80 * T, 0);
    packer_next_rows(&c2, 5, t2, sc, sc + 40 * T, sc + 80 * T, 0);
    EXPECT(memcmp(t1, t2, sizeof(int) * 5 * T) != 0, "seed does not change the order");
    /* one pass: more rows than needed are padding, nothing repeats */
    Packer v;
    packer_init(&v, &ex, 0, T, 0);
    v.one_pass = 1;
    int extra = (int)rows + 3;
    int *vt = xmalloc(sizeof(int) * extra * T), *vp = xmalloc(sizeof(int) * extra * T);
    int *vs = xmalloc(sizeof(int) * extra * T), *vg = xmalloc(sizeof(int) * extra * T);
    int64_t vl = packer_next_rows(&v, extra, vt, vp, vs, vg, 0);
    int vseen[N] = {0}, vbad = 0;
    scan(vt, vp, vs, vg, extra, T, vseen, N, &vbad);
    int vonce = 1;
    for (int i = 0; i < N; i++) vonce &= vseen[i] == 1;
    EXPECT(vonce && vl == want && vbad == 0, "one pass: once=%d loss %lld want %lld bad %d", vonce,
           (long long)vl, (long long)want, vbad);
    int tail_pad = 1;
    for (int i = ((int)rows) * T; i < extra * T; i++) tail_pad &= vg[i] == -1;
    EXPECT(tail_pad, "rows after a one-pass stream must be padding");
    /* split: deterministic, disjoint, covering */
    Examples tr, va, tr2, va2;
    data_split(&ex, 0.2, 77, &tr, &va);
    data_split(&ex, 0.2, 77, &tr2, &va2);
    EXPECT(tr.n + va.n == N && va.n > 0 && tr.n == tr2.n &&
               memcmp(tr.ids, tr2.ids, sizeof(int32_t) * tr.off[tr.n]) == 0,
           "split %lld + %lld", (long long)tr.n, (long long)va.n);
    data_examples_free(&tr), data_examples_free(&va), data_examples_free(&tr2), data_examples_free(&va2);
    packer_free(&p), packer_free(&a), packer_free(&b), packer_free(&c1), packer_free(&c2), packer_free(&v);
    free(tok), free(pos), free(seg), free(tgt), free(t1), free(t2), free(sc), free(vt), free(vp), free(vs), free(vg);
    data_examples_free(&ex);
    return test_summary();
}

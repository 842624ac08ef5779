/* test_packer -- engine/packer.h (moved here from test_data.c and extended):
 * the stream is a pure function of (seed, cursor): the same seed gives the
 * same rows, a saved cursor continues the identical stream, another seed
 * another order; every example appears exactly once in each epoch (the
 * epochs differ in order when shuffled, keep the file order when not);
 * every packed example restarts pos at 0 with seg = its first position, its
 * tokens and targets are its own (loss only after the prompt), padding
 * attends to itself only; the rows do not depend on how many rows are
 * taken at a time; one_pass pads after the last example; the returned loss
 * count and packer_rows_for_epochs agree with the cursor. */
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "engine/data.h"
#include "engine/packer.h"
#include "test.h"

enum { N = 57, T = 24, PAD = 7777 };

/* n examples; example i has ids i*1000 + j, a prompt of 1 + i%3 ids */
static void make(Examples *x, int n, int Tm) {
    memset(x, 0, sizeof *x);
    x->n = n;
    x->off = xmalloc(sizeof(int64_t) * (n + 1));
    x->n_prompt = xmalloc(sizeof(int32_t) * n);
    int64_t tot = 0;
    x->off[0] = 0;
    for (int i = 0; i < n; i++) {
        int len = 4 + (i * 7) % (Tm - 3); /* 4..Tm: needs len-1 <= Tm-1 positions */
        tot += len;
        x->off[i + 1] = tot;
        x->n_prompt[i] = 1 + i % 3;
    }
    x->ids = xmalloc(sizeof(int32_t) * tot);
    for (int i = 0; i < n; i++)
        for (int64_t j = x->off[i]; j < x->off[i + 1]; j++) x->ids[j] = i * 1000 + (int)(j - x->off[i]);
}

typedef struct {
    int *tok, *pos, *seg, *tgt, *ex;
    int rows;
} Rows;

static void rows_alloc(Rows *r, int rows) {
    r->rows = rows;
    size_t n = (size_t)rows * T;
    r->tok = xmalloc(sizeof(int) * n), r->pos = xmalloc(sizeof(int) * n), r->seg = xmalloc(sizeof(int) * n);
    r->tgt = xmalloc(sizeof(int) * n), r->ex = xmalloc(sizeof(int) * n);
}
static void rows_free(Rows *r) { free(r->tok), free(r->pos), free(r->seg), free(r->tgt), free(r->ex); }
static int64_t take(Packer *p, Rows *r, int at, int k) {
    size_t o = (size_t)at * T;
    return packer_next_rows_ex(p, k, r->tok + o, r->pos + o, r->seg + o, r->tgt + o, r->ex + o, PAD);
}
static int rows_equal(const Rows *a, const Rows *b, int rows) {
    size_t n = sizeof(int) * (size_t)rows * T;
    return !memcmp(a->tok, b->tok, n) && !memcmp(a->pos, b->pos, n) && !memcmp(a->seg, b->seg, n) &&
           !memcmp(a->tgt, b->tgt, n) && !memcmp(a->ex, b->ex, n);
}

/* Checks every position of the rows against the examples; returns the
 * number of malformed positions; appends the examples in order of
 * appearance to order[] (*no of them); *loss = positions with a target. */
static int scan(const Examples *x, const Rows *r, int rows, int *order, int *no, int64_t *loss) {
    int bad = 0;
    for (int q = 0; q < rows; q++)
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)q * T + t;
            int k = r->ex[i];
            if (k < 0) { /* padding: attends to itself, no loss */
                bad += r->tok[i] != PAD || r->tgt[i] != -1 || r->seg[i] != t || r->pos[i] != 0;
                continue;
            }
            if (k >= x->n) {
                bad++;
                continue;
            }
            int p = r->pos[i];
            bad += r->seg[i] != t - p || p < 0;
            if (p == 0) order[(*no)++] = k;
            else bad += r->ex[i - 1] != k; /* one example's positions are contiguous */
            int len = (int)(x->off[k + 1] - x->off[k]);
            if (p >= len - 1) {
                bad++;
                continue;
            }
            const int32_t *ids = x->ids + x->off[k];
            bad += r->tok[i] != ids[p];
            int want = p + 1 >= x->n_prompt[k] ? ids[p + 1] : -1;
            bad += r->tgt[i] != want;
            *loss += r->tgt[i] >= 0;
            /* complete: the example's last position is present */
            if (p + 1 == len - 1) bad += t + 1 < T && r->ex[i + 1] == k;
        }
    return bad;
}

int main(void) {
    Examples ex;
    make(&ex, N, T);
    /* three epochs, shuffled: every example once per epoch */
    int64_t rows3 = packer_rows_for_epochs(&ex, 9, T, 1, 3.0);
    Rows a;
    rows_alloc(&a, (int)rows3);
    Packer p;
    packer_init(&p, &ex, 9, T, 1);
    int64_t nl = take(&p, &a, 0, (int)rows3);
    int *order = xmalloc(sizeof(int) * (size_t)(rows3 + 8) * T * 2);
    int no = 0;
    int64_t loss = 0;
    int bad = scan(&ex, &a, (int)rows3, order, &no, &loss);
    EXPECT(bad == 0, "%d malformed positions", bad);
    EXPECT(nl == loss, "returned loss count %lld, counted %lld", (long long)nl, (long long)loss);
    EXPECT(no >= 3 * N && no < 3 * N + T, "3 epochs give %d examples, want %d (+ the rest of the last row)", no, 3 * N);
    int each = 1, differ[2] = {0, 0};
    for (int e = 0; e < 3 && no >= 3 * N; e++) {
        int seen[N] = {0};
        for (int i = 0; i < N; i++) seen[order[e * N + i]]++;
        for (int i = 0; i < N; i++) each &= seen[i] == 1;
        if (e > 0) differ[e - 1] = memcmp(order, order + e * N, sizeof(int) * N) != 0;
    }
    EXPECT(each, "an epoch does not show every example exactly once");
    EXPECT(differ[0] && differ[1], "the epochs are not reshuffled");
    int64_t want_loss = 0, seen_loss = 0;
    for (int i = 0; i < N; i++) want_loss += (ex.off[i + 1] - ex.off[i]) - ex.n_prompt[i];
    for (int i = 0; i < no; i++) seen_loss += (ex.off[order[i] + 1] - ex.off[order[i]]) - ex.n_prompt[order[i]];
    EXPECT(loss == seen_loss, "loss positions %lld, want %lld", (long long)loss, (long long)seen_loss);
    EXPECT(p.cur.epoch * N + p.cur.index == no, "cursor after %d examples: epoch %lld index %lld", no,
           (long long)p.cur.epoch, (long long)p.cur.index);
    /* packer_rows_for_epochs is the least number of rows for the passes */
    Packer p1;
    packer_init(&p1, &ex, 9, T, 1);
    Rows s;
    rows_alloc(&s, (int)rows3);
    take(&p1, &s, 0, (int)rows3 - 1);
    EXPECT(p1.cur.epoch * N + p1.cur.index < 3 * N, "one row fewer already covers 3 epochs");
    int64_t r1 = packer_rows_for_epochs(&ex, 9, T, 1, 1.0), r15 = packer_rows_for_epochs(&ex, 9, T, 1, 1.5);
    EXPECT(r1 > 0 && r1 <= r15 && r15 <= rows3, "rows for 1 / 1.5 / 3 epochs: %lld %lld %lld", (long long)r1,
           (long long)r15, (long long)rows3);
    EXPECT(packer_rows_for_epochs(&ex, 9, T, 1, 0.0) == 0, "no rows for 0 epochs");

    /* the same seed gives the same rows; the cursor is all the state there is */
    Packer q;
    packer_init(&q, &ex, 9, T, 1);
    Rows b;
    rows_alloc(&b, (int)rows3);
    take(&q, &b, 0, (int)rows3);
    EXPECT(rows_equal(&a, &b, (int)rows3), "same seed, other rows");
    /* rows do not depend on how many are taken at a time */
    Packer c;
    packer_init(&c, &ex, 9, T, 1);
    Rows d;
    rows_alloc(&d, (int)rows3);
    int at = 0, step = 1;
    while (at < rows3) {
        int k = step < rows3 - at ? step : (int)rows3 - at;
        take(&c, &d, at, k);
        at += k;
        step = step % 5 + 2;
    }
    EXPECT(rows_equal(&a, &d, (int)rows3), "taking rows in pieces changes them");
    /* resume from a saved cursor in a fresh packer */
    Packer e1, e2;
    packer_init(&e1, &ex, 9, T, 1);
    Rows scratch;
    rows_alloc(&scratch, 40);
    take(&e1, &scratch, 0, 17);
    DataCursor saved = e1.cur;
    packer_init(&e2, &ex, 9, T, 1);
    e2.cur = saved;
    Rows f1, f2;
    rows_alloc(&f1, 40), rows_alloc(&f2, 40);
    take(&e1, &f1, 0, 40);
    take(&e2, &f2, 0, 40);
    EXPECT(rows_equal(&f1, &f2, 40), "resumed stream differs");
    EXPECT(rows_equal(&f1, &(Rows){a.tok + 17 * T, a.pos + 17 * T, a.seg + 17 * T, a.tgt + 17 * T, a.ex + 17 * T, 40}, 40),
           "resumed stream is not the uninterrupted one");
    /* another seed, another order; no shuffle keeps the file order every epoch */
    Packer o1;
    packer_init(&o1, &ex, 10, T, 1);
    take(&o1, &f1, 0, 5);
    EXPECT(memcmp(f1.tok, a.tok, sizeof(int) * 5 * T) != 0, "the seed does not change the order");
    Packer un;
    packer_init(&un, &ex, 9, T, 0);
    int64_t urows = packer_rows_for_epochs(&ex, 9, T, 0, 3.0);
    Rows u;
    rows_alloc(&u, (int)urows);
    take(&un, &u, 0, (int)urows);
    no = 0, loss = 0;
    bad = scan(&ex, &u, (int)urows, order, &no, &loss);
    int inorder = bad == 0 && no >= 3 * N;
    for (int i = 0; i < no && inorder; i++) inorder = order[i] == i % N;
    EXPECT(inorder, "unshuffled stream is not the file order (bad %d, %d examples)", bad, no);

    /* one pass: every example once, then padding; the return counts the loss */
    Packer v;
    packer_init(&v, &ex, 0, T, 0);
    v.one_pass = 1;
    int64_t r1u = packer_rows_for_epochs(&ex, 0, T, 0, 1.0);
    int extra = (int)r1u + 3;
    Rows w;
    rows_alloc(&w, extra);
    int64_t vl = take(&v, &w, 0, extra);
    no = 0, loss = 0;
    bad = scan(&ex, &w, extra, order, &no, &loss);
    int once = no == N;
    for (int i = 0; i < no && once; i++) once = order[i] == i;
    EXPECT(once && bad == 0 && vl == want_loss && loss == want_loss, "one pass: %d examples, bad %d, loss %lld/%lld", no,
           bad, (long long)vl, (long long)want_loss);
    int tail = 1;
    for (size_t i = (size_t)r1u * T; i < (size_t)extra * T; i++) tail &= w.ex[i] == -1 && w.tgt[i] == -1 && w.tok[i] == PAD;
    EXPECT(tail, "rows after a one-pass stream must be padding");
    EXPECT(take(&v, &w, 0, 2) == 0, "an exhausted one-pass packer gives only padding");
    /* packer_next_rows without ex gives the same rows */
    Packer g1, g2;
    packer_init(&g1, &ex, 4, T, 1), packer_init(&g2, &ex, 4, T, 1);
    take(&g1, &f1, 0, 30);
    int64_t l2 = packer_next_rows(&g2, 30, f2.tok, f2.pos, f2.seg, f2.tgt, PAD);
    memcpy(f2.ex, f1.ex, sizeof(int) * 30 * T);
    EXPECT(rows_equal(&f1, &f2, 30) && l2 > 0, "packer_next_rows differs from packer_next_rows_ex");

    Packer *all[] = {&p, &p1, &q, &c, &e1, &e2, &o1, &un, &v, &g1, &g2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) packer_free(all[i]);
    packer_free(NULL);
    Rows *rs[] = {&a, &b, &d, &s, &scratch, &f1, &f2, &u, &w};
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) rows_free(rs[i]);
    free(order);
    data_examples_free(&ex);
    return test_summary();
}

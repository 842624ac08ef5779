/* gen -- greedy, sampled and beam decoding with a KV cache; see
 * include/gen.h. */
#include "engine/gen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void gen_options_init(GenOptions *o) {
    memset(o, 0, sizeof *o);
    o->mode = GEN_GREEDY;
    o->max_new = 48;
    o->temperature = 1.0;
    o->top_p = 1.0;
    o->k = 1;
    o->beam = 5;
    o->length_penalty = 1.0;
    o->batch = 128;
}

void gen_seq_free(GenSeq *s) {
    if (!s) return;
    free(s->ids);
    memset(s, 0, sizeof *s);
}

static double log_sum_exp(const float *x, int V, float *mx_out) {
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = x[i] > mx ? x[i] : mx;
    double s = 0;
    for (int i = 0; i < V; i++) s += exp((double)x[i] - mx);
    *mx_out = mx;
    return mx + log(s);
}

/* idx[0..V) ordered by p descending, ties by index ascending: a stable LSD
 * radix sort of the bits of ~p (p >= 0, so its bits order like its value) in
 * three 11-bit digits.  tmp: V ints; keys: 2V uint32 scratch. */
static void order_by_prob(const float *p, int V, int *idx, int *tmp, uint32_t *keys) {
    uint32_t *ka = keys, *kb = keys + V;
    for (int i = 0; i < V; i++) {
        uint32_t b;
        memcpy(&b, &p[i], sizeof b);
        ka[i] = ~b;
        idx[i] = i;
    }
    for (int shift = 0; shift < 33; shift += 11) {
        int count[2049] = {0};
        for (int i = 0; i < V; i++) count[((ka[i] >> shift) & 2047) + 1]++;
        for (int d = 0; d < 2048; d++) count[d + 1] += count[d];
        for (int i = 0; i < V; i++) {
            int at = count[(ka[i] >> shift) & 2047]++;
            kb[at] = ka[i];
            tmp[at] = idx[i];
        }
        uint32_t *kt = ka;
        ka = kb, kb = kt;
        memcpy(idx, tmp, sizeof(int) * (size_t)V);
    }
}

int gen_sample_token(const float *logits, int V, double temperature, double top_p, Rng *r, float *scratch,
                     int *iscratch, double *logp) {
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    float *p = scratch;
    double s = 0, tot = 0;
    int tok = 0;
    if (temperature == 1.0) { /* the softmax's exponentials are the sampling weights: one pass */
        for (int i = 0; i < V; i++) {
            double ex = exp((double)logits[i] - mx);
            s += ex;
            tot += (p[i] = (float)ex);
        }
    } else {
        for (int i = 0; i < V; i++) s += exp((double)logits[i] - mx);
        if (temperature > 0)
            for (int i = 0; i < V; i++) tot += (p[i] = (float)exp(((double)logits[i] - mx) / temperature));
    }
    double lse = mx + log(s);
    if (temperature <= 0) {
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[tok]) tok = i;
    } else {
        int n = V;
        if (top_p < 1.0) {
            order_by_prob(p, V, iscratch, iscratch + V, (uint32_t *)(scratch + V));
            double cum = 0;
            n = 0;
            while (n < V && cum < top_p * tot) cum += p[iscratch[n++]];
            tot = cum;
        } else {
            for (int i = 0; i < V; i++) iscratch[i] = i;
        }
        double u = rng_double(r) * tot, acc = 0;
        tok = iscratch[n - 1];
        for (int k = 0; k < n; k++) {
            acc += p[iscratch[k]];
            if (u < acc) {
                tok = iscratch[k];
                break;
            }
        }
    }
    *logp = (double)logits[tok] - lse;
    return tok;
}

/* logits of ids the tokenizer does not have: never generated */
static void mask_vocab(float *logits, int rows, int V, int n_vocab) {
    if (n_vocab <= 0 || n_vocab >= V) return;
    for (int r = 0; r < rows; r++)
        for (int v = n_vocab; v < V; v++) logits[(size_t)r * V + v] = -INFINITY;
}

/* ---- scratch per thread -------------------------------------------------------------- */

typedef struct {
    int nt, V;
    float *f; /* [nt][3V] */
    int *i;   /* [nt][2V] */
} Scratch;

static void scratch_init(Scratch *s, int V) {
    s->nt = par_nthreads(), s->V = V;
    s->f = xmalloc(sizeof(float) * 3 * (size_t)V * (size_t)s->nt);
    s->i = xmalloc(sizeof(int) * 2 * (size_t)V * (size_t)s->nt);
}

static void scratch_free(Scratch *s) { free(s->f), free(s->i); }

/* ---- sampling / greedy ------------------------------------------------------------ */

typedef struct {
    int in;       /* input index (local) */
    int cand;     /* candidate index */
    int row;      /* row of its logits in this step */
    int done;     /* 1 end of text, 2 length */
    IntVec gen;
    double logp;
    Rng rng;
} SeqState;

typedef struct {
    SeqState *st;
    const int *who;
    const float *logits;
    int V, eot, max_new, T;
    double temp, top_p;
    Scratch *sc;
    const int *plen;
} DrawCtx;

/* draws the next token of sequences who[b..e) from their logits rows (each its own stream) */
static void draw_task(void *vc, long b, long e, int tid) {
    DrawCtx *c = vc;
    float *f = c->sc->f + (size_t)tid * 3 * c->V;
    int *ii = c->sc->i + (size_t)tid * 2 * c->V;
    for (long j = b; j < e; j++) {
        SeqState *q = &c->st[c->who[j]];
        double lp;
        int t = gen_sample_token(c->logits + (size_t)q->row * c->V, c->V, c->temp, c->top_p, &q->rng, f, ii, &lp);
        q->logp += lp;
        if (t == c->eot) {
            q->done = 1;
            continue;
        }
        intvec_push(&q->gen, t);
        if ((int)q->gen.n >= c->max_new || c->plen[q->in] + (int)q->gen.n >= c->T) q->done = 2;
    }
}

/* Inputs [i0, i0+ni): every prompt in one decode call on the slots of candidate 0, the other
 * candidates share its rows; then one token per live sequence per step. */
static void sample_batch(const Model *m, const GenOptions *o, ModelKV *kv, const int *const *prompts, const int *plen,
                         int i0, int ni, int k, int eot, int64_t first_index, SeqState *st, float *logits, Scratch *sc) {
    int V = m->cfg.vocab_size, ns = ni * k;
    int *slot = xmalloc(sizeof(int) * (size_t)ns), *tok = xmalloc(sizeof(int) * (size_t)(ns + kv->max_tokens));
    int *cnt = xmalloc(sizeof(int) * (size_t)ns), *who = xmalloc(sizeof(int) * (size_t)ns);
    model_kv_clear(kv);
    int N = 0;
    for (int i = 0; i < ni; i++) {
        slot[i] = i * k, cnt[i] = plen[i0 + i];
        memcpy(tok + N, prompts[i0 + i], sizeof(int) * (size_t)cnt[i]);
        N += cnt[i];
    }
    model_decode(m, kv, slot, tok, cnt, ni, logits); /* row i: after input i's prompt */
    mask_vocab(logits, ni, V, o->n_vocab);
    for (int s = 0; s < ns; s++) {
        SeqState *q = &st[s];
        q->gen.n = 0, q->in = i0 + s / k, q->cand = s % k, q->done = 0, q->logp = 0, q->row = s / k;
        rng_seed(&q->rng, rng_derive(o->seed, (uint64_t)(first_index + q->in), (uint64_t)q->cand));
        if (q->cand) model_kv_copy(kv, s, s - q->cand);
        who[s] = s;
    }
    DrawCtx dc = {st,        who,      logits, V, eot, o->max_new, kv->T, o->mode == GEN_GREEDY ? 0.0 : o->temperature,
                  o->top_p, sc,       plen};
    int n = ns;
    for (;;) {
        par_for(n, 8, draw_task, &dc);
        int live = 0;
        for (int j = 0; j < n; j++) {
            SeqState *q = &st[who[j]];
            if (q->done) continue;
            who[live] = who[j];
            slot[live] = who[j];
            tok[live] = q->gen.a[q->gen.n - 1];
            q->row = live++;
        }
        if (!(n = live)) break;
        model_decode_step(m, kv, slot, tok, n, logits);
        mask_vocab(logits, n, V, o->n_vocab);
    }
    free(slot), free(tok), free(cnt), free(who);
}

static void run_sampling(const Model *m, const GenOptions *o, const int *const *prompts, const int *plen, int n_in,
                         int eot, int64_t first_index, GenSeq *out) {
    int V = m->cfg.vocab_size, k = o->mode == GEN_GREEDY ? 1 : o->k;
    int per_batch = o->batch > k ? o->batch / k : 1; /* inputs per batch */
    int maxlen = 0;
    for (int i = 0; i < n_in; i++) maxlen = plen[i] > maxlen ? plen[i] : maxlen;
    int pb = per_batch < n_in ? per_batch : n_in, ns = pb * k;
    /* pool: every prompt once and every generated token of every sequence */
    ModelKV *kv = model_kv_create_pool(m, ns, maxlen + o->max_new, pb * maxlen + ns * o->max_new,
                                       pb * maxlen > ns ? pb * maxlen : ns);
    float *logits = xmalloc(sizeof(float) * (size_t)ns * V);
    SeqState *st = xcalloc((size_t)ns, sizeof(SeqState));
    Scratch sc;
    scratch_init(&sc, V);
    for (int i0 = 0; i0 < n_in; i0 += per_batch) {
        int ni = n_in - i0 < per_batch ? n_in - i0 : per_batch;
        sample_batch(m, o, kv, prompts, plen, i0, ni, k, eot, first_index, st, logits, &sc);
        for (int s = 0; s < ni * k; s++) {
            SeqState *q = &st[s];
            GenSeq *g = &out[(size_t)q->in * k + q->cand];
            g->n = (int)q->gen.n;
            g->ids = xmalloc(sizeof(int) * (q->gen.n ? q->gen.n : 1));
            if (q->gen.n) memcpy(g->ids, q->gen.a, sizeof(int) * q->gen.n); /* gen.a NULL: EOT came first */
            g->finished = q->done == 1;
            g->logp = g->score = q->logp;
        }
    }
    for (int s = 0; s < ns; s++) intvec_free(&st[s].gen);
    free(st), free(logits);
    scratch_free(&sc);
    model_kv_destroy(kv);
}

/* ---- beam search ----------------------------------------------------------------------- */

typedef struct {
    int parent;  /* hypothesis index in the previous beam */
    int tok;
    double cum;
} Cand;

typedef struct {
    IntVec ids;
    double cum;
    int slot;
} Hyp;

static int cmp_cand(const void *a, const void *b) {
    const Cand *x = a, *y = b;
    if (x->cum != y->cum) return x->cum > y->cum ? -1 : 1;
    if (x->parent != y->parent) return x->parent - y->parent;
    return x->tok - y->tok;
}

static int cmp_seq_score(const void *a, const void *b) {
    const GenSeq *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return 0;
}

/* keeps the best W finished sequences in fin (unsorted); returns the count */
static int add_finished(GenSeq *fin, int nfin, int W, const IntVec *ids, double cum, double score, int finished) {
    int at = nfin;
    if (nfin == W) {
        int worst = 0;
        for (int i = 1; i < nfin; i++)
            if (fin[i].score < fin[worst].score) worst = i;
        if (score <= fin[worst].score) return nfin;
        gen_seq_free(&fin[worst]);
        at = worst;
    } else {
        nfin++;
    }
    fin[at].n = (int)ids->n;
    fin[at].ids = xmalloc(sizeof(int) * (ids->n ? ids->n : 1));
    if (ids->n) memcpy(fin[at].ids, ids->a, sizeof(int) * ids->n); /* ids->a is NULL when EOT came first */
    fin[at].logp = cum;
    fin[at].score = score;
    fin[at].finished = finished;
    return nfin;
}

/* ---- batched beam search -------------------------------------------------------------
 * The beams of a batch of inputs advance together: one decode call per step
 * over every live hypothesis of every input.  Input i owns cache slots
 * [2Wi, 2Wi + 2W); its hypotheses alternate between the halves, and a new
 * hypothesis takes its parent's history by sharing its cache rows
 * (model_kv_copy copies a map, not keys and values). */

typedef struct {
    Hyp *live, *next; /* [W] each */
    GenSeq *fin;      /* [W] */
    int nlive, nfin, base, row0; /* row0: first logits row of its hypotheses this step */
} Beam;

/* worse-first heap of the best `take` candidates of one hypothesis */
static void heap_sift(Cand *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && cmp_cand(&h[l], &h[w]) > 0) w = l;
        if (r < n && cmp_cand(&h[r], &h[w]) > 0) w = r;
        if (w == i) return;
        Cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

typedef struct {
    const float *logits;
    const int *hyp_parent; /* per row: the hypothesis index within its beam */
    const double *cum;     /* per row: the hypothesis' log-prob so far */
    Cand *out;             /* [rows][take] */
    int V, take;
} TopCtx;

/* each row's best `take` continuations by (cum desc, token asc), as the old full selection */
static void top_task(void *vc, long b, long e, int tid) {
    (void)tid;
    TopCtx *c = vc;
    for (long row = b; row < e; row++) {
        const float *lg = c->logits + (size_t)row * c->V;
        float mx;
        double lse = log_sum_exp(lg, c->V, &mx);
        Cand *h = c->out + (size_t)row * c->take;
        int n = 0, parent = c->hyp_parent[row];
        for (int v = 0; v < c->V; v++) {
            Cand cd = {parent, v, c->cum[row] + (double)lg[v] - lse};
            if (n < c->take) {
                h[n++] = cd;
                if (n == c->take)
                    for (int i = n / 2 - 1; i >= 0; i--) heap_sift(h, n, i);
            } else if (cmp_cand(&cd, &h[0]) < 0) {
                h[0] = cd;
                heap_sift(h, n, 0);
            }
        }
        if (n < c->take)
            for (int i = n / 2 - 1; i >= 0; i--) heap_sift(h, n, i);
    }
}

/* One step of input `in`'s beam from its candidates cands[0..nc): the next
 * hypotheses (sharing their parents' cache rows), finished ones, the early stop. */
static void beam_advance(Beam *bm, ModelKV *kv, int in, Cand *cands, int nc, int W, int eot, double alpha, int last) {
    qsort(cands, (size_t)nc, sizeof(Cand), cmp_cand);
    int nnext = 0, other = bm->base ? 0 : W;
    for (int c = 0; c < nc && nnext < W; c++) {
        const Hyp *par = &bm->live[cands[c].parent];
        int len = (int)par->ids.n + 1; /* generated tokens incl. this one */
        if (cands[c].tok == eot) {
            bm->nfin = add_finished(bm->fin, bm->nfin, W, &par->ids, cands[c].cum, cands[c].cum / pow(len, alpha), 1);
            continue;
        }
        Hyp *nh = &bm->next[nnext];
        nh->ids.n = 0;
        for (size_t j = 0; j < par->ids.n; j++) intvec_push(&nh->ids, par->ids.a[j]);
        intvec_push(&nh->ids, cands[c].tok);
        nh->cum = cands[c].cum;
        nh->slot = in * 2 * W + other + nnext;
        model_kv_copy(kv, nh->slot, par->slot);
        if (last) bm->nfin = add_finished(bm->fin, bm->nfin, W, &nh->ids, nh->cum, nh->cum / pow(len, alpha), 0);
        nnext++;
    }
    if (last) nnext = 0;
    Hyp *t = bm->live; /* swap beams */
    bm->live = bm->next;
    bm->next = t;
    bm->nlive = nnext;
    bm->base = other;
    /* stop when no live hypothesis can enter the finished set: sound for
     * alpha = 0 (log-probs only fall); the usual heuristic otherwise */
    if (bm->nfin == W && bm->nlive > 0) {
        double worst = bm->fin[0].score, best_live = -INFINITY;
        for (int i = 1; i < bm->nfin; i++) worst = bm->fin[i].score < worst ? bm->fin[i].score : worst;
        for (int h = 0; h < bm->nlive; h++) {
            double sc = bm->live[h].cum / pow((double)bm->live[h].ids.n, alpha);
            best_live = sc > best_live ? sc : best_live;
        }
        if (best_live < worst) bm->nlive = 0;
    }
}

/* Moves the K best finished sequences of a beam to out. */
static void beam_output(Beam *bm, int K, GenSeq *out) {
    qsort(bm->fin, (size_t)bm->nfin, sizeof(GenSeq), cmp_seq_score);
    for (int j = 0; j < K; j++) {
        GenSeq *g = &out[j];
        if (j < bm->nfin) {
            *g = bm->fin[j];
            memset(&bm->fin[j], 0, sizeof bm->fin[j]);
        } else {
            memset(g, 0, sizeof *g);
            g->ids = xmalloc(sizeof(int));
            g->score = g->logp = -INFINITY;
        }
    }
    for (int j = 0; j < bm->nfin; j++) gen_seq_free(&bm->fin[j]);
    bm->nfin = 0;
}

typedef struct {
    int *slot, *tok, *parent;
    double *cum;
    Cand *top, *merged;
    int n_vocab;
} BeamBufs;

/* Collective over a batch's beams: feeds every live hypothesis' last token
 * (not on the first step: the prompts' logits are there), selects each one's
 * best continuations in parallel, advances every beam. */
static int beam_step(const Model *m, ModelKV *kv, Beam *bms, int nb, int W, int first, int take, int eot, double alpha,
                     int last, float *logits, BeamBufs *bb) {
    int rows = 0;
    for (int i = 0; i < nb; i++) {
        Beam *bm = &bms[i];
        bm->row0 = rows;
        for (int h = 0; h < bm->nlive; h++, rows++) {
            bb->slot[rows] = bm->live[h].slot;
            bb->tok[rows] = first ? 0 : bm->live[h].ids.a[bm->live[h].ids.n - 1];
            bb->parent[rows] = h;
            bb->cum[rows] = bm->live[h].cum;
        }
    }
    if (!rows) return 0;
    if (!first) model_decode_step(m, kv, bb->slot, bb->tok, rows, logits);
    mask_vocab(logits, rows, m->cfg.vocab_size, bb->n_vocab);
    TopCtx tc = {logits, bb->parent, bb->cum, bb->top, m->cfg.vocab_size, take};
    par_for(rows, 1, top_task, &tc);
    for (int i = 0; i < nb; i++) {
        Beam *bm = &bms[i];
        if (!bm->nlive) continue;
        int nc = bm->nlive * take;
        memcpy(bb->merged, bb->top + (size_t)bm->row0 * take, sizeof(Cand) * (size_t)nc);
        beam_advance(bm, kv, i, bb->merged, nc, W, eot, alpha, last);
    }
    return rows;
}

static void run_beam(const Model *m, const GenOptions *o, const int *const *prompts, const int *plen, int n_in,
                     int eot, GenSeq *out) {
    int V = m->cfg.vocab_size, W = o->beam, K = o->k < W ? o->k : W, take = 2 * W < V ? 2 * W : V;
    CHECK(W >= 1, "beam width %d", W);
    int per_batch = o->batch > W ? o->batch / W : 1, maxlen = 0;
    for (int i = 0; i < n_in; i++) maxlen = plen[i] > maxlen ? plen[i] : maxlen;
    int pb = per_batch < n_in ? per_batch : n_in;
    ModelKV *kv = model_kv_create_pool(m, pb * 2 * W, maxlen + o->max_new, pb * maxlen + pb * W * o->max_new,
                                       pb * maxlen > pb * W ? pb * maxlen : pb * W);
    float *logits = xmalloc(sizeof(float) * (size_t)pb * W * V);
    Beam *bms = xcalloc((size_t)pb, sizeof(Beam));
    for (int i = 0; i < pb; i++) {
        bms[i].live = xcalloc((size_t)W, sizeof(Hyp));
        bms[i].next = xcalloc((size_t)W, sizeof(Hyp));
        bms[i].fin = xcalloc((size_t)W, sizeof(GenSeq));
    }
    BeamBufs bb = {xmalloc(sizeof(int) * (size_t)(pb * W + pb * maxlen)), xmalloc(sizeof(int) * (size_t)(pb * W + pb * maxlen)),
                   xmalloc(sizeof(int) * (size_t)pb * W), xmalloc(sizeof(double) * (size_t)pb * W),
                   xmalloc(sizeof(Cand) * (size_t)pb * W * take), xmalloc(sizeof(Cand) * (size_t)W * take),
                   o->n_vocab};
    for (int i0 = 0; i0 < n_in; i0 += per_batch) {
        int nb = n_in - i0 < per_batch ? n_in - i0 : per_batch, N = 0;
        model_kv_clear(kv);
        for (int i = 0; i < nb; i++) { /* every prompt in one call, on the first slot of its input */
            bb.slot[i] = i * 2 * W;
            bb.parent[i] = plen[i0 + i];
            memcpy(bb.tok + N, prompts[i0 + i], sizeof(int) * (size_t)plen[i0 + i]);
            N += plen[i0 + i];
            Beam *bm = &bms[i];
            bm->nlive = 1, bm->nfin = 0, bm->base = 0;
            bm->live[0].ids.n = 0, bm->live[0].cum = 0, bm->live[0].slot = i * 2 * W;
        }
        model_decode(m, kv, bb.slot, bb.tok, bb.parent, nb, logits);
        for (int step = 0; step < o->max_new; step++)
            if (!beam_step(m, kv, bms, nb, W, step == 0, take, eot, o->length_penalty, step + 1 == o->max_new, logits, &bb))
                break;
        for (int i = 0; i < nb; i++) beam_output(&bms[i], K, out + (size_t)(i0 + i) * K);
    }
    for (int i = 0; i < pb; i++) {
        for (int h = 0; h < W; h++) intvec_free(&bms[i].live[h].ids), intvec_free(&bms[i].next[h].ids);
        free(bms[i].live), free(bms[i].next), free(bms[i].fin);
    }
    free(bms), free(logits), free(bb.slot), free(bb.tok), free(bb.parent), free(bb.cum), free(bb.top), free(bb.merged);
    model_kv_destroy(kv);
}

void gen_run(const Model *m, const GenOptions *o, const int *const *prompts, const int *plen, int n_in, int eot,
             int64_t first_index, GenSeq *out) {
    for (int i = 0; i < n_in; i++)
        CHECK(plen[i] >= 1 && plen[i] + o->max_new <= m->cfg.max_seq_len,
              "prompt %d of %d tokens + %d new exceeds %d positions", i, plen[i], o->max_new, m->cfg.max_seq_len);
    if (o->mode == GEN_BEAM) run_beam(m, o, prompts, plen, n_in, eot, out);
    else run_sampling(m, o, prompts, plen, n_in, eot, first_index, out);
}

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
    o->batch = 64;
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

static int cmp_prob_desc(const void *a, const void *b, void *ctx) {
    const float *p = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    if (p[i] != p[j]) return p[i] > p[j] ? -1 : 1;
    return i - j;
}

int gen_sample_token(const float *logits, int V, double temperature, double top_p, Rng *r, float *scratch,
                     int *iscratch, double *logp) {
    float mx;
    double lse = log_sum_exp(logits, V, &mx);
    int tok = 0;
    if (temperature <= 0) {
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[tok]) tok = i;
    } else {
        float *p = scratch;
        double tot = 0;
        for (int i = 0; i < V; i++) tot += (p[i] = (float)exp(((double)logits[i] - mx) / temperature));
        int n = V;
        if (top_p < 1.0) {
            for (int i = 0; i < V; i++) iscratch[i] = i;
            qsort_r(iscratch, (size_t)V, sizeof(int), cmp_prob_desc, p);
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

/* ---- sampling / greedy ------------------------------------------------------------ */

typedef struct {
    int in;       /* input index (local) */
    int cand;     /* candidate index */
    int slot;
    int fed;      /* tokens fed */
    int next;     /* token to feed when fed >= plen */
    int done;
    IntVec gen;
    double logp;
    Rng rng;
} SeqState;

static void run_sampling(const Model *m, const GenOptions *o, const int *const *prompts, const int *plen, int n_in,
                         int eot, int64_t first_index, GenSeq *out) {
    int V = m->cfg.vocab_size, k = o->mode == GEN_GREEDY ? 1 : o->k;
    int per_batch = o->batch > k ? o->batch / k : 1; /* inputs per batch */
    int maxlen = 0;
    for (int i = 0; i < n_in; i++) maxlen = plen[i] > maxlen ? plen[i] : maxlen;
    ModelKV *kv = model_kv_create(m, per_batch * k, maxlen + o->max_new);
    float *logits = xmalloc(sizeof(float) * (size_t)per_batch * k * V);
    float *scratch = xmalloc(sizeof(float) * 2 * (size_t)V);
    int *iscratch = xmalloc(sizeof(int) * (size_t)V);
    SeqState *st = xcalloc((size_t)per_batch * k, sizeof(SeqState));
    int *slot = xmalloc(sizeof(int) * (size_t)per_batch * k), *tok = xmalloc(sizeof(int) * (size_t)per_batch * k);
    int *who = xmalloc(sizeof(int) * (size_t)per_batch * k);
    double temp = o->mode == GEN_GREEDY ? 0.0 : o->temperature;
    for (int i0 = 0; i0 < n_in; i0 += per_batch) {
        int ni = n_in - i0 < per_batch ? n_in - i0 : per_batch, ns = ni * k;
        for (int s = 0; s < ns; s++) {
            SeqState *q = &st[s];
            q->gen.n = 0;
            q->in = i0 + s / k;
            q->cand = s % k;
            q->slot = s;
            q->fed = 0;
            q->done = 0;
            q->logp = 0;
            rng_seed(&q->rng, rng_derive(o->seed, (uint64_t)(first_index + q->in), (uint64_t)q->cand));
            model_kv_reset(kv, s);
        }
        /* shared prompt prefix: candidate 0 feeds all but the last prompt token,
         * the others copy its cache */
        for (;;) {
            int n = 0;
            for (int s = 0; s < ns; s += k)
                if (st[s].fed < plen[st[s].in] - 1) {
                    slot[n] = s;
                    tok[n] = prompts[st[s].in][st[s].fed];
                    who[n++] = s;
                }
            if (!n) break;
            model_decode_step(m, kv, slot, tok, n, logits);
            for (int j = 0; j < n; j++) st[who[j]].fed++;
        }
        for (int s = 0; s < ns; s++)
            if (s % k) {
                model_kv_copy(kv, s, s - s % k);
                st[s].fed = st[s - s % k].fed;
            }
        for (;;) {
            int n = 0;
            for (int s = 0; s < ns; s++) {
                SeqState *q = &st[s];
                if (q->done) continue;
                int pl = plen[q->in];
                slot[n] = s;
                tok[n] = q->fed < pl ? prompts[q->in][q->fed] : q->next;
                who[n++] = s;
            }
            if (!n) break;
            model_decode_step(m, kv, slot, tok, n, logits);
            for (int j = 0; j < n; j++) {
                SeqState *q = &st[who[j]];
                q->fed++;
                if (q->fed < plen[q->in]) continue;
                double lp;
                int t = gen_sample_token(logits + (size_t)j * V, V, temp, o->top_p, &q->rng, scratch, iscratch, &lp);
                q->logp += lp;
                if (t == eot) {
                    q->done = 1;
                    continue;
                }
                intvec_push(&q->gen, t);
                q->next = t;
                if ((int)q->gen.n >= o->max_new || q->fed + 1 >= kv->T) q->done = 2;
            }
        }
        for (int s = 0; s < ns; s++) {
            SeqState *q = &st[s];
            GenSeq *g = &out[(size_t)q->in * k + q->cand];
            g->n = (int)q->gen.n;
            g->ids = xmalloc(sizeof(int) * (q->gen.n ? q->gen.n : 1));
            memcpy(g->ids, q->gen.a, sizeof(int) * q->gen.n);
            g->finished = q->done == 1;
            g->logp = g->score = q->logp;
        }
    }
    for (int s = 0; s < per_batch * k; s++) intvec_free(&st[s].gen);
    free(st), free(slot), free(tok), free(who), free(logits), free(scratch), free(iscratch);
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
    memcpy(fin[at].ids, ids->a, sizeof(int) * ids->n);
    fin[at].logp = cum;
    fin[at].score = score;
    fin[at].finished = finished;
    return nfin;
}

/* one input at a time; its W hypotheses use cache slots [0, W) and [W, 2W) alternately */
static void run_beam(const Model *m, const GenOptions *o, const int *const *prompts, const int *plen, int n_in,
                     int eot, GenSeq *out) {
    int V = m->cfg.vocab_size, W = o->beam, K = o->k < W ? o->k : W;
    double alpha = o->length_penalty;
    int maxlen = 0;
    for (int i = 0; i < n_in; i++) maxlen = plen[i] > maxlen ? plen[i] : maxlen;
    ModelKV *kv = model_kv_create(m, 2 * W, maxlen + o->max_new);
    float *logits = xmalloc(sizeof(float) * (size_t)W * V);
    Cand *cands = xmalloc(sizeof(Cand) * (size_t)W * 2 * W + 1);
    Cand *tmpc = xmalloc(sizeof(Cand) * (size_t)V);
    Hyp *live = xcalloc((size_t)W, sizeof(Hyp)), *next = xcalloc((size_t)W, sizeof(Hyp));
    GenSeq *fin = xcalloc((size_t)W, sizeof(GenSeq));
    int slot[1], tok[1];
    int *slots = xmalloc(sizeof(int) * (size_t)W), *toks = xmalloc(sizeof(int) * (size_t)W);
    for (int in = 0; in < n_in; in++) {
        const int *pr = prompts[in];
        int pl = plen[in];
        model_kv_reset(kv, 0);
        for (int t = 0; t < pl; t++) { /* the prompt, on slot 0 */
            slot[0] = 0;
            tok[0] = pr[t];
            model_decode_step(m, kv, slot, tok, 1, logits);
        }
        int nlive = 1, nfin = 0, base = 0;
        live[0].ids.n = 0;
        live[0].cum = 0;
        live[0].slot = 0;
        int have_logits = 1; /* logits of live[0] are in row 0 */
        for (int step = 0; step < o->max_new && nlive > 0; step++) {
            if (!have_logits) {
                for (int h = 0; h < nlive; h++) {
                    slots[h] = live[h].slot;
                    toks[h] = live[h].ids.a[live[h].ids.n - 1];
                }
                model_decode_step(m, kv, slots, toks, nlive, logits);
            }
            have_logits = 0;
            /* each hypothesis' best 2W continuations, then the best 2W overall */
            int nc = 0;
            for (int h = 0; h < nlive; h++) {
                const float *lg = logits + (size_t)h * V;
                float mx;
                double lse = log_sum_exp(lg, V, &mx);
                for (int v = 0; v < V; v++) tmpc[v] = (Cand){h, v, live[h].cum + (double)lg[v] - lse};
                int take = 2 * W < V ? 2 * W : V;
                /* partial selection: repeated max (take is small) */
                for (int a = 0; a < take; a++) {
                    int best = a;
                    for (int v = a + 1; v < V; v++)
                        if (cmp_cand(&tmpc[v], &tmpc[best]) < 0) best = v;
                    Cand t = tmpc[a];
                    tmpc[a] = tmpc[best];
                    tmpc[best] = t;
                    cands[nc++] = tmpc[a];
                }
            }
            qsort(cands, (size_t)nc, sizeof(Cand), cmp_cand);
            int nnext = 0, other = base ? 0 : W;
            int last = step + 1 == o->max_new;
            for (int c = 0; c < nc && nnext < W; c++) {
                const Hyp *par = &live[cands[c].parent];
                int len = (int)par->ids.n + 1; /* generated tokens incl. this one */
                if (cands[c].tok == eot) {
                    nfin = add_finished(fin, nfin, W, &par->ids, cands[c].cum, cands[c].cum / pow(len, alpha), 1);
                    continue;
                }
                Hyp *nh = &next[nnext];
                nh->ids.n = 0;
                for (size_t j = 0; j < par->ids.n; j++) intvec_push(&nh->ids, par->ids.a[j]);
                intvec_push(&nh->ids, cands[c].tok);
                nh->cum = cands[c].cum;
                nh->slot = other + nnext;
                model_kv_copy(kv, nh->slot, par->slot);
                if (last) nfin = add_finished(fin, nfin, W, &nh->ids, nh->cum, nh->cum / pow(len, alpha), 0);
                nnext++;
            }
            if (last) nnext = 0;
            /* swap beams */
            Hyp *t = live;
            live = next;
            next = t;
            nlive = nnext;
            base = other;
            /* stop when no live hypothesis can enter the finished set: sound for
             * alpha = 0 (log-probs only fall); the usual heuristic otherwise */
            if (nfin == W && nlive > 0) {
                double worst = fin[0].score, best_live = -INFINITY;
                for (int i = 1; i < nfin; i++) worst = fin[i].score < worst ? fin[i].score : worst;
                for (int h = 0; h < nlive; h++) {
                    double s = live[h].cum / pow((double)live[h].ids.n, alpha);
                    best_live = s > best_live ? s : best_live;
                }
                if (best_live < worst) nlive = 0;
            }
        }
        qsort(fin, (size_t)nfin, sizeof(GenSeq), cmp_seq_score);
        for (int j = 0; j < K; j++) {
            GenSeq *g = &out[(size_t)in * K + j];
            if (j < nfin) {
                *g = fin[j];
                memset(&fin[j], 0, sizeof fin[j]);
            } else {
                memset(g, 0, sizeof *g);
                g->ids = xmalloc(sizeof(int));
                g->score = g->logp = -INFINITY;
            }
        }
        for (int j = 0; j < nfin; j++) gen_seq_free(&fin[j]);
    }
    for (int h = 0; h < W; h++) intvec_free(&live[h].ids), intvec_free(&next[h].ids);
    free(live), free(next), free(fin), free(cands), free(tmpc), free(logits), free(slots), free(toks);
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

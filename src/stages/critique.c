/* critique -- the critique phase; see include/critique.h. */
#include "stages/critique.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/ckpt.h"
#include "engine/data.h"
#include "stages/evaluate.h"
#include "engine/pairs.h"
#include "engine/pref.h"
#include "io/prov.h"
#include "llm/critic.h"
#include "stages/session.h"
#include "io/store.h"
#include "stages/student.h"
#include "stages/train.h"

enum { OBJ_CE = -1 }; /* cross-entropy items (ft, sd) */

/* A training set of a phase: pairs (a = chosen, b = rejected) or single
 * sequences (a only), with prompts. */
typedef struct {
    int64_t n;
    char **prompt, **a, **b; /* b NULL for single sequences */
    double *ref_a, *ref_b;   /* DPO reference log-probs */
    Examples ex;             /* tokenized: pairs -> 2 examples (a, b), singles -> 1 */
} ItemSet;

typedef struct {
    int obj;       /* PrefObjective or OBJ_CE */
    ItemSet *set;
    int64_t steps;
    const char *name;
} Phase;

typedef struct {
    const Config *cfg;
    const Comm *comm;
    int argc;
    char **argv;
    Student s;
    Optim opt;
    StoreFile *run; /* rank 0 */
    Provenance prov;
    char *ckpt_dir, *config_json, *stop_path;
    int64_t log_flushed, last_ckpt;
    double t0, step_avg;
    /* training inputs and teacher answers (all ranks) */
    char **inputs;
    int64_t n_inputs;
    char **teacher; /* [n_inputs * N] (rank 0) */
    int64_t teacher_n;
    int T;
} Ctx;

static void itemset_free(ItemSet *s) {
    for (int64_t i = 0; i < s->n; i++) {
        free(s->prompt[i]);
        free(s->a[i]);
        if (s->b) free(s->b[i]);
    }
    free(s->prompt), free(s->a), free(s->b), free(s->ref_a), free(s->ref_b);
    data_examples_free(&s->ex);
    memset(s, 0, sizeof *s);
}

/* Tokenizes an item set on every rank (after the strings were broadcast);
 * items whose sequences do not fit the rows are dropped (returns how many). */
static int64_t itemset_tokenize(Ctx *c, ItemSet *s) {
    int per = s->b ? 2 : 1;
    Pairs p = {0};
    p.n = s->n * per;
    p.prompt = xmalloc(sizeof(char *) * (size_t)(p.n + 1));
    p.target = xmalloc(sizeof(char *) * (size_t)(p.n + 1));
    p.line = xmalloc(sizeof(int64_t) * (size_t)(p.n + 1));
    for (int64_t i = 0; i < s->n; i++) {
        p.prompt[i * per] = s->prompt[i];
        p.target[i * per] = s->a[i];
        p.line[i * per] = i;
        if (per == 2) {
            p.prompt[i * per + 1] = s->prompt[i];
            p.target[i * per + 1] = s->b[i];
            p.line[i * per + 1] = i;
        }
    }
    /* tokenize each sequence on its own so a long one drops its whole item */
    Examples all;
    Err e;
    int64_t skipped = 0;
    memset(&all, 0, sizeof all);
    all.off = xmalloc(sizeof(int64_t) * (size_t)(p.n + 1));
    all.n_prompt = xmalloc(sizeof(int32_t) * (size_t)(p.n + 1));
    IntVec ids = {0};
    uint8_t *fits = xcalloc((size_t)(s->n + 1), 1);
    for (int64_t i = 0; i < s->n; i++) fits[i] = 1;
    IntVec tmp = {0};
    all.off[0] = 0;
    for (int64_t q = 0; q < p.n; q++) {
        tmp.n = 0;
        student_prompt(&c->s, p.prompt[q], &tmp);
        int np = (int)tmp.n;
        tokenizer_encode(c->s.tok, p.target[q], strlen(p.target[q]), &tmp);
        intvec_push(&tmp, c->s.eot);
        if ((int)tmp.n - 1 > c->T) fits[q / per] = 0;
        for (size_t j = 0; j < tmp.n; j++) intvec_push(&ids, tmp.a[j]);
        all.n_prompt[q] = np;
        all.off[q + 1] = (int64_t)ids.n;
    }
    all.n = p.n;
    all.ids = xmalloc(sizeof(int32_t) * (ids.n ? ids.n : 1));
    for (size_t j = 0; j < ids.n; j++) all.ids[j] = ids.a[j];
    intvec_free(&ids);
    intvec_free(&tmp);
    (void)e;
    /* keep the items that fit, compacting the strings too */
    int64_t *keep = xmalloc(sizeof(int64_t) * (size_t)(p.n + 1));
    int64_t nk = 0, ni = 0;
    for (int64_t i = 0; i < s->n; i++) {
        if (!fits[i]) {
            skipped++;
            free(s->prompt[i]), free(s->a[i]);
            if (s->b) free(s->b[i]);
            continue;
        }
        for (int k = 0; k < per; k++) keep[nk++] = i * per + k;
        s->prompt[ni] = s->prompt[i];
        s->a[ni] = s->a[i];
        if (s->b) s->b[ni] = s->b[i];
        if (s->ref_a) s->ref_a[ni] = s->ref_a[i], s->ref_b[ni] = s->ref_b[i];
        ni++;
    }
    s->n = ni;
    data_examples_pick(&all, keep, nk, &s->ex);
    data_examples_free(&all);
    free(keep), free(fits);
    free(p.prompt), free(p.target), free(p.line);
    return skipped;
}

/* sd trains on the chosen candidates alone: pairs become single sequences
 * (the stored pairs keep both) */
static void drop_rejected(ItemSet *s) {
    if (!s->b) return;
    for (int64_t i = 0; i < s->n; i++) free(s->b[i]);
    free(s->b);
    s->b = NULL;
}

/* rank 0's strings to everyone */
static void itemset_bcast(ItemSet *s, int pairs) {
    int64_t n = s->n;
    comm_bcast_strings(&s->prompt, &n);
    comm_bcast_strings(&s->a, &n);
    if (pairs) comm_bcast_strings(&s->b, &n);
    s->n = n;
    int has_ref = util_rank() == 0 ? s->ref_a != NULL : 0;
    int64_t hr = has_ref;
    comm_bcast_i64(&hr, 1);
    if (hr) {
        if (util_rank() != 0) {
            s->ref_a = xmalloc(sizeof(double) * (size_t)(n + 1));
            s->ref_b = xmalloc(sizeof(double) * (size_t)(n + 1));
        }
        comm_bcast(s->ref_a, sizeof(double) * (size_t)n);
        comm_bcast(s->ref_b, sizeof(double) * (size_t)n);
    }
}

/* ---- the forward passes of a set of examples ---------------------------------- */

typedef struct {
    int rows, T;
    int *tok, *pos, *seg, *tgt, *ex;
} Rows;

static void rows_pack(Rows *r, const Examples *ex, int T, int eot) {
    memset(r, 0, sizeof *r);
    r->T = T;
    r->rows = ex->n ? (int)packer_rows_for_epochs(ex, 0, T, 0, 1.0) : 0;
    size_t n = (size_t)(r->rows ? r->rows : 1) * T;
    r->tok = xmalloc(sizeof(int) * n), r->pos = xmalloc(sizeof(int) * n), r->seg = xmalloc(sizeof(int) * n);
    r->tgt = xmalloc(sizeof(int) * n), r->ex = xmalloc(sizeof(int) * n);
    if (!r->rows) return;
    Packer p;
    packer_init(&p, ex, 0, T, 0);
    p.one_pass = 1;
    packer_next_rows_ex(&p, r->rows, r->tok, r->pos, r->seg, r->tgt, r->ex, eot);
    packer_free(&p);
}

static void rows_free(Rows *r) {
    free(r->tok), free(r->pos), free(r->seg), free(r->tgt), free(r->ex);
    memset(r, 0, sizeof *r);
}

/* Sequence log-probs (and target counts) of every example in rows,
 * micro_rows rows at a time; with g non-NULL, also backward with per-token
 * gradient g[example] (accumulating into the model's gradients). */
static void rows_pass(Model *m, const Rows *r, int micro, double *lp, int *len, const double *g, float *gbuf) {
    for (int r0 = 0; r0 < r->rows; r0 += micro) {
        int nb = r->rows - r0 < micro ? r->rows - r0 : micro;
        size_t o = (size_t)r0 * r->T;
        ModelBatch b = {nb, r->T, r->tok + o, r->pos + o, r->seg + o, r->tgt + o};
        int M = model_forward(m, &b);
        for (int k = 0; k < M; k++) {
            int e = r->ex[o + (size_t)m->rows[k]];
            if (lp) lp[e] += m->logp[k];
            if (len) len[e]++;
            if (g) gbuf[k] = (float)g[e];
        }
        if (g) model_backward(m, &b, gbuf);
    }
}

/* DPO reference log-probs of a pair set with the current model: pair i is
 * computed by rank i % W, then summed over ranks. */
static void compute_refs(Ctx *c, ItemSet *s) {
    int W = c->comm->size, R = c->comm->rank;
    int64_t mine = 0;
    for (int64_t i = R; i < s->n; i += W) mine++;
    int64_t *idx = xmalloc(sizeof(int64_t) * (size_t)(2 * mine + 1));
    int64_t q = 0;
    for (int64_t i = R; i < s->n; i += W) idx[q++] = 2 * i, idx[q++] = 2 * i + 1;
    Examples sub;
    data_examples_pick(&s->ex, idx, q, &sub);
    Rows rw;
    rows_pack(&rw, &sub, c->T, c->s.eot);
    double *lp = xcalloc((size_t)(q + 1), sizeof(double));
    model_alloc_acts(&c->s.model, c->cfg->critique.micro_rows, c->T);
    rows_pass(&c->s.model, &rw, c->cfg->critique.micro_rows, lp, NULL, NULL, NULL);
    double *all = xcalloc((size_t)(2 * s->n + 1), sizeof(double));
    q = 0;
    for (int64_t i = R; i < s->n; i += W) all[2 * i] = lp[q++], all[2 * i + 1] = lp[q++];
    comm_allreduce_sum_f64(all, (size_t)(2 * s->n));
    free(s->ref_a), free(s->ref_b);
    s->ref_a = xmalloc(sizeof(double) * (size_t)(s->n + 1));
    s->ref_b = xmalloc(sizeof(double) * (size_t)(s->n + 1));
    for (int64_t i = 0; i < s->n; i++) s->ref_a[i] = all[2 * i], s->ref_b[i] = all[2 * i + 1];
    free(all), free(lp), free(idx);
    rows_free(&rw);
    data_examples_free(&sub);
}

/* ---- one optimizer step of a phase -------------------------------------------- */

/* Items of batch b (global): epoch-wise seeded permutations of the set. */
static int64_t item_of(const Ctx *c, int round, int phase, int64_t n, int64_t g, int64_t **perm, int64_t *perm_epoch) {
    int64_t epoch = g / n;
    if (*perm_epoch != epoch) {
        for (int64_t i = 0; i < n; i++) (*perm)[i] = i;
        Rng r;
        rng_seed(&r, rng_derive((uint64_t)c->cfg->train.seed, 0xc217 + (uint64_t)round * 16 + (uint64_t)phase,
                                (uint64_t)epoch));
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)rng_below(&r, (uint64_t)i + 1), t = (*perm)[i];
            (*perm)[i] = (*perm)[j];
            (*perm)[j] = t;
        }
        *perm_epoch = epoch;
    }
    return (*perm)[g % n];
}

static double phase_step(Ctx *c, const Phase *ph, int round, int phase, int64_t b, double lr, int64_t t,
                         double *gnorm, double *acc, int64_t *ntok) {
    const Config *cfg = c->cfg;
    int W = c->comm->size, R = c->comm->rank;
    int P = cfg->critique.batch_pairs;
    int per = ph->set->b ? 2 : 1;
    int64_t n = ph->set->n;
    int lo = (int)((int64_t)P * R / W), hi = (int)((int64_t)P * (R + 1) / W);
    int mine = hi - lo;
    int64_t *perm = xmalloc(sizeof(int64_t) * (size_t)n), perm_epoch = -1;
    int64_t *items = xmalloc(sizeof(int64_t) * (size_t)(mine + 1)), *ex_idx = xmalloc(sizeof(int64_t) * (size_t)(per * mine + 1));
    for (int q = 0; q < mine; q++) {
        items[q] = item_of(c, round, phase, n, b * P + lo + q, &perm, &perm_epoch);
        for (int k = 0; k < per; k++) ex_idx[q * per + k] = items[q] * per + k;
    }
    Examples sub;
    data_examples_pick(&ph->set->ex, ex_idx, (int64_t)mine * per, &sub);
    Rows rw;
    rows_pack(&rw, &sub, c->T, c->s.eot);
    int nex = mine * per;
    double *lp = xcalloc((size_t)(nex + 1), sizeof(double)), *g = xcalloc((size_t)(nex + 1), sizeof(double));
    int *len = xcalloc((size_t)(nex + 1), sizeof(int));
    for (int e = 0; e < nex; e++) len[e] = (int)(sub.off[e + 1] - sub.off[e]) - sub.n_prompt[e];
    Model *m = &c->s.model;
    int micro = cfg->critique.micro_rows;
    float *gbuf = xmalloc(sizeof(float) * (size_t)micro * c->T);
    double sums[3] = {0, 0, 0}; /* loss, correct, tokens */
    if (ph->obj == OBJ_CE) {
        for (int e = 0; e < nex; e++) g[e] = -1.0 / ((double)len[e] * P);
    } else {
        rows_pass(m, &rw, micro, lp, NULL, NULL, NULL); /* pass 1: sequence log-probs */
        PrefPair *pp = xcalloc((size_t)(mine + 1), sizeof(PrefPair));
        for (int q = 0; q < mine; q++) {
            int64_t it = items[q];
            pp[q] = (PrefPair){lp[2 * q], lp[2 * q + 1], ph->set->ref_a ? ph->set->ref_a[it] : 0,
                               ph->set->ref_b ? ph->set->ref_b[it] : 0, len[2 * q], len[2 * q + 1]};
        }
        PrefParams prm = {.obj = (PrefObjective)ph->obj,
                          .beta = cfg->critique.beta,
                          .rank_weight = cfg->critique.brio_rank_weight,
                          .ce_weight = cfg->critique.brio_ce_weight};
        /* BRIO margin log(2)/lambda with lambda the mean output length of the set */
        double mean_len = 0;
        for (int64_t e = 0; e < ph->set->ex.n; e++)
            mean_len += (double)(ph->set->ex.off[e + 1] - ph->set->ex.off[e] - ph->set->ex.n_prompt[e]);
        mean_len /= ph->set->ex.n ? (double)ph->set->ex.n : 1;
        prm.margin = log(2.0) / (mean_len > 0 ? mean_len : 1);
        double *dw = xcalloc((size_t)(mine + 1), sizeof(double)), *dl = xcalloc((size_t)(mine + 1), sizeof(double));
        sums[0] = pref_loss_sum(&prm, pp, mine, 1.0, dw, dl); /* sum over my pairs */
        sums[1] = mine ? pref_accuracy(&prm, pp, mine) * mine : 0;
        for (int q = 0; q < mine; q++) g[2 * q] = dw[q] / P, g[2 * q + 1] = dl[q] / P;
        free(pp), free(dw), free(dl);
    }
    /* pass 2: forward + backward with the per-sequence gradients */
    model_zero_grad(m);
    memset(lp, 0, sizeof(double) * (size_t)nex);
    rows_pass(m, &rw, micro, lp, NULL, g, gbuf);
    if (ph->obj == OBJ_CE)
        for (int e = 0; e < nex; e++) sums[0] += -lp[e] / len[e];
    for (int e = 0; e < nex; e++) sums[2] += len[e];
    if (W > 1) {
        comm_allreduce_sum_f32(m->grads, m->n_params);
        comm_allreduce_sum_f64(sums, 3);
    }
    *gnorm = optim_step(&c->opt, m, lr, t);
    *acc = sums[1] / P;
    *ntok = (int64_t)sums[2];
    free(perm), free(items), free(ex_idx), free(lp), free(g), free(len), free(gbuf);
    rows_free(&rw);
    data_examples_free(&sub);
    return sums[0] / P;
}

/* ---- run.h5 ------------------------------------------------------------------------ */

static void flush_metrics(Ctx *c) {
    if (c->comm->rank != 0) return;
    Err e;
    if (metriclog_append_to(c->run, "/metrics/train", &c->s.log, c->log_flushed, &e) != 0 ||
        store_flush(c->run, &e) != 0)
        DIE("%s (hint: is the disk full?)", e.msg);
    c->log_flushed = c->s.log.n;
}

static void checkpoint(Ctx *c) {
    if (c->s.st.step == c->last_ckpt) return;
    flush_metrics(c);
    if (c->comm->rank == 0) {
        Err e;
        char *path = NULL;
        c->s.st.world_size = c->comm->size;
        if (ckpt_write(c->ckpt_dir, &c->s.model, c->opt.m, c->opt.v, &c->s.st, &c->s.td, c->config_json, &c->prov,
                       &c->s.log, &c->s.val, &path, &e) != 0)
            DIE("checkpoint failed: %s (hint: is the disk full?)", e.msg);
        ckpt_prune(c->ckpt_dir, c->cfg->train.ckpt_keep, path);
        log_info("checkpoint %s", path);
        free(path);
    }
    c->last_ckpt = c->s.st.step;
}

/* ---- collecting a round's pairs (rank 0 talks to the critic) ------------------------ */

typedef struct {
    int64_t n;          /* inputs of the round */
    int64_t *input;     /* indices into /inputs/train */
    char **cands;       /* n * k */
    int32_t *pi, *pj, *label;
    double *p_ab, *p_ba, *p;
    char **raw_ab, **raw_ba;
    int64_t no_pair, ties;
} Judged;

static void judged_free(Judged *j, int k) {
    for (int64_t i = 0; i < j->n * k; i++) free(j->cands[i]);
    for (int64_t i = 0; i < j->n; i++) free(j->raw_ab[i]), free(j->raw_ba[i]);
    free(j->input), free(j->cands), free(j->pi), free(j->pj), free(j->label);
    free(j->p_ab), free(j->p_ba), free(j->p), free(j->raw_ab), free(j->raw_ba);
    memset(j, 0, sizeof *j);
}

/* rank 0: pick pairs among cands (n x k), judge them; fills j (takes cands) */
/* Returns 0; -1 with e empty when stopped by a signal (answers so far cached); -1 with e set when
 * critic requests failed after their retries (a round never trains on a partial judgement). */
static int judge_candidates(Ctx *c, LlmClient *client, Judged *j, char **cands, const int *tok_len, int k,
                            const char *label, Err *e) {
    const Config *cfg = c->cfg;
    PairRule rule = {cfg->critique.ngram, !strcmp(cfg->critique.len_unit, "tokens"), cfg->critique.len_lo,
                     cfg->critique.len_hi, cfg->critique.filter_first};
    int64_t n = j->n;
    j->cands = cands;
    j->pi = xmalloc(sizeof(int32_t) * (size_t)(n + 1));
    j->pj = xmalloc(sizeof(int32_t) * (size_t)(n + 1));
    j->label = xcalloc((size_t)(n + 1), sizeof(int32_t));
    j->p_ab = xmalloc(sizeof(double) * (size_t)(n + 1));
    j->p_ba = xmalloc(sizeof(double) * (size_t)(n + 1));
    j->p = xmalloc(sizeof(double) * (size_t)(n + 1));
    j->raw_ab = xcalloc((size_t)(n + 1), sizeof(char *));
    j->raw_ba = xcalloc((size_t)(n + 1), sizeof(char *));
    CriticItem *items = xcalloc((size_t)(n + 1), sizeof(CriticItem));
    int64_t *which = xmalloc(sizeof(int64_t) * (size_t)(n + 1)), m = 0;
    for (int64_t i = 0; i < n; i++) {
        int a, b;
        j->p_ab[i] = j->p_ba[i] = j->p[i] = NAN;
        if (pairs_select((const char *const *)cands + i * k, tok_len ? tok_len + i * k : NULL, k, &rule, &a, &b)) {
            j->pi[i] = a, j->pj[i] = b;
            items[m] = (CriticItem){c->inputs[j->input[i]], cands[i * k + a], cands[i * k + b]};
            which[m++] = i;
        } else {
            j->pi[i] = j->pj[i] = -1;
            j->no_pair++;
        }
    }
    CriticJudgement *jd = xcalloc((size_t)(m + 1), sizeof(CriticJudgement));
    critic_judge(client, &cfg->critic, items, (size_t)m, jd, label);
    int stopped;
    LlmStatus first_fail;
    int64_t failed = critic_failures(jd, (size_t)m, &stopped, &first_fail);
    for (int64_t q = 0; q < m; q++) {
        int64_t i = which[q];
        j->p_ab[i] = jd[q].p_ab, j->p_ba[i] = jd[q].p_ba, j->p[i] = jd[q].p;
        j->raw_ab[i] = jd[q].raw_ab, j->raw_ba[i] = jd[q].raw_ba;
        jd[q].raw_ab = jd[q].raw_ba = NULL;
        j->label[i] = pairs_verdict(j->p[i], cfg->critique.tie_margin);
        if (j->label[i] == 0) j->ties++;
    }
    if (!stopped && failed)
        err_set(e, "%s: %lld of %lld requests failed after their retries (first: %s; usage line above); run again to "
                   "retry them: the answers so far are cached",
                label, (long long)failed, (long long)(2 * m), llm_status_name(first_fail));
    for (int64_t i = 0; i < n; i++) {
        if (!j->raw_ab[i]) j->raw_ab[i] = xstrdup("");
        if (!j->raw_ba[i]) j->raw_ba[i] = xstrdup("");
    }
    free(jd), free(items), free(which);
    return stopped || failed ? -1 : 0;
}

static int store_judged(Ctx *c, const char *g, const Judged *j, int k, Err *e) {
    char obj[256];
    int64_t n = j->n, d2[2] = {n, k};
#define O(x) (snprintf(obj, sizeof obj, "%s/%s", g, x), obj)
    return store_write_i64(c->run, O("input"), j->input, 1, &n, "index into /inputs/train of data.h5", e) ||
           store_write_strings(c->run, O("candidates"), (const char *const *)j->cands, 2, d2,
                               "sampled candidates (student) or teacher paraphrases, row = input", e) ||
           store_write_i32(c->run, O("pair_a"), j->pi, 1, &n, "column of option a of the judged pair; -1 = no pair", e) ||
           store_write_i32(c->run, O("pair_b"), j->pj, 1, &n, "column of option b", e) ||
           store_write_f64(c->run, O("p_ab"), j->p_ab, 1, &n, "P(a better), asked with a as option 1", e) ||
           store_write_f64(c->run, O("p_ba"), j->p_ba, 1, &n, "P(a better), asked with a as option 2", e) ||
           store_write_f64(c->run, O("p"), j->p, 1, &n, "P(a better), mean of both orders", e) ||
           store_write_strings(c->run, O("raw_ab"), (const char *const *)j->raw_ab, 1, &n, "critic answer, a first", e) ||
           store_write_strings(c->run, O("raw_ba"), (const char *const *)j->raw_ba, 1, &n, "critic answer, b first", e) ||
           store_write_i32(c->run, O("label"), j->label, 1, &n, "1 = a chosen, -1 = b chosen, 0 = tie or no pair", e);
#undef O
}

/* pairs (chosen, rejected) of a judged set -> ItemSet (rank 0) */
static void judged_to_pairs(const Ctx *c, const Judged *j, int k, ItemSet *s) {
    memset(s, 0, sizeof *s);
    s->prompt = xcalloc((size_t)(j->n + 1), sizeof(char *));
    s->a = xcalloc((size_t)(j->n + 1), sizeof(char *));
    s->b = xcalloc((size_t)(j->n + 1), sizeof(char *));
    for (int64_t i = 0; i < j->n; i++) {
        if (j->label[i] == 0) continue;
        const char *A = j->cands[i * k + j->pi[i]], *B = j->cands[i * k + j->pj[i]];
        s->prompt[s->n] = xstrdup(c->inputs[j->input[i]]);
        s->a[s->n] = xstrdup(j->label[i] > 0 ? A : B);
        s->b[s->n] = xstrdup(j->label[i] > 0 ? B : A);
        s->n++;
    }
}

static int store_pairs(Ctx *c, const char *g, const ItemSet *s, Err *e) {
    char obj[256];
    int64_t n = s->n;
#define O(x) (snprintf(obj, sizeof obj, "%s/%s", g, x), obj)
    int rc = store_write_strings(c->run, O("prompt"), (const char *const *)s->prompt, 1, &n, "literal input", e) ||
             store_write_strings(c->run, O("chosen"), (const char *const *)s->a, 1, &n, "preferred output", e);
    if (rc == 0 && s->b)
        rc = store_write_strings(c->run, O("rejected"), (const char *const *)s->b, 1, &n, "dispreferred output", e);
    if (rc == 0 && s->ref_a)
        rc = store_write_f64(c->run, O("ref_chosen"), s->ref_a, 1, &n,
                             "log-prob of chosen under the round's starting model (DPO reference), nats", e) ||
             store_write_f64(c->run, O("ref_rejected"), s->ref_b, 1, &n, "the same for rejected", e);
#undef O
    return rc;
}

static int read_pairs(Ctx *c, const char *g, ItemSet *s, Err *e) {
    memset(s, 0, sizeof *s);
    char obj[256];
    int64_t n1, n2, n3;
#define O(x) (snprintf(obj, sizeof obj, "%s/%s", g, x), obj)
    s->prompt = store_read_strings(c->run, O("prompt"), &n1, e);
    s->a = s->prompt ? store_read_strings(c->run, O("chosen"), &n2, e) : NULL;
    if (!s->a) return -1;
    if (store_exists(c->run, O("rejected"))) {
        s->b = store_read_strings(c->run, O("rejected"), &n3, e);
        if (!s->b) return -1;
    }
    s->n = n1;
    if (store_exists(c->run, O("ref_chosen"))) {
        s->ref_a = store_read_alloc(c->run, O("ref_chosen"), 'd', NULL, e);
        s->ref_b = store_read_alloc(c->run, O("ref_rejected"), 'd', NULL, e);
        if (!s->ref_a || !s->ref_b) return -1;
    }
#undef O
    return 0;
}

/* ---- a round --------------------------------------------------------------------------- */

static int stop_requested(Ctx *c) {
    int want = util_stop_signal() != 0;
    if (c->comm->rank == 0) {
        if (util_file_exists(c->stop_path)) want = 1;
        double ran = util_now() - c->t0;
        if (c->cfg->train.max_run_time > 0 && ran + c->step_avg + 1.0 > c->cfg->train.max_run_time) want = 1;
    }
    if (comm_any(want)) {
        if (c->comm->rank == 0 && util_file_exists(c->stop_path)) unlink(c->stop_path);
        return 1;
    }
    return 0;
}

/* the round's inputs: all, or a window of a seeded permutation that moves with the round */
static int64_t round_inputs(const Ctx *c, int round, int64_t **out) {
    int64_t N = c->n_inputs, m = c->cfg->critique.inputs > 0 && c->cfg->critique.inputs < N ? c->cfg->critique.inputs : N;
    int64_t *perm = xmalloc(sizeof(int64_t) * (size_t)(N + 1));
    for (int64_t i = 0; i < N; i++) perm[i] = i;
    if (m < N) {
        Rng r;
        rng_seed(&r, rng_derive((uint64_t)c->cfg->train.seed, 0xc0de, 0));
        for (int64_t i = N - 1; i > 0; i--) {
            int64_t j = (int64_t)rng_below(&r, (uint64_t)i + 1), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
    }
    int64_t *o = xmalloc(sizeof(int64_t) * (size_t)(m + 1));
    for (int64_t i = 0; i < m; i++) o[i] = perm[((int64_t)round * m + i) % N];
    free(perm);
    *out = o;
    return m;
}

/* teacher paraphrases as CE items (ft) */
static void teacher_items(const Ctx *c, const int64_t *in, int64_t m, ItemSet *s) {
    memset(s, 0, sizeof *s);
    int N = (int)c->teacher_n;
    s->prompt = xcalloc((size_t)(m * N + 1), sizeof(char *));
    s->a = xcalloc((size_t)(m * N + 1), sizeof(char *));
    for (int64_t i = 0; i < m; i++)
        for (int q = 0; q < N; q++) {
            const char *t = c->teacher[in[i] * N + q];
            if (!t[0]) continue;
            s->prompt[s->n] = xstrdup(c->inputs[in[i]]);
            s->a[s->n] = xstrdup(t);
            s->n++;
        }
}

static int run_round(Ctx *c, int r, LlmClient *client) {
    const Config *cfg = c->cfg;
    const char *obj = cfg->critique.objective;
    char g[64];
    snprintf(g, sizeof g, "/rounds/%d", r);
    int k = cfg->critique.k;
    Err e = {{0}};
    int rc = 0;
    /* where the round starts and whether its data are collected */
    int64_t info[3] = {-1, 0, 0}; /* start step, collected, complete */
    if (c->comm->rank == 0 && store_exists(c->run, g)) {
        store_get_attr_i64(c->run, g, "start_step", &info[0], NULL);
        store_get_attr_i64(c->run, g, "collected", &info[1], NULL);
        store_get_attr_i64(c->run, g, "complete", &info[2], NULL);
    }
    comm_bcast_i64(info, 3);
    if (info[2]) return EXIT_OK;
    if (info[0] < 0) info[0] = c->s.st.step;
    int64_t start = info[0];
    ItemSet student_set = {0}, teacher_set = {0};
    int64_t *in = NULL, m = round_inputs(c, r, &in);
    if (!info[1]) {
        log_info("round %d: %s on %lld inputs, starting at step %lld", r, obj, (long long)m, (long long)start);
        if (strcmp(obj, "ft") != 0) {
            /* sample k candidates per input (all ranks), judge (rank 0) */
            GenOptions go;
            gen_options_init(&go);
            go.mode = GEN_SAMPLE;
            go.k = k;
            go.temperature = cfg->critique.temperature;
            go.top_p = cfg->critique.top_p;
            go.max_new = cfg->critique.max_new;
            go.seed = rng_derive((uint64_t)cfg->train.seed, 0x5a4d, (uint64_t)r);
            char **texts = xmalloc(sizeof(char *) * (size_t)(m + 1));
            for (int64_t i = 0; i < m; i++) texts[i] = c->inputs[in[i]];
            char **cands = NULL;
            int *tl = NULL;
            double t0 = util_now();
            student_generate(&c->s, &go, c->comm, texts, (int)m, &cands, &tl);
            log_info("round %d: sampled %lld x %d candidates in %.1f s", r, (long long)m, k, util_now() - t0);
            free(texts);
            if (c->comm->rank == 0) {
                Judged j = {.n = m, .input = xmalloc(sizeof(int64_t) * (size_t)(m + 1))};
                memcpy(j.input, in, sizeof(int64_t) * (size_t)m);
                rc = judge_candidates(c, client, &j, cands, tl, k, "critic", &e);
                if (rc == 0) {
                    judged_to_pairs(c, &j, k, &student_set);
                    char sub[96];
                    snprintf(sub, sizeof sub, "%s/student", g);
                    rc = store_judged(c, sub, &j, k, &e);
                    log_info("round %d: %lld inputs -> %lld pairs (%lld without a usable pair, %lld ties)", r,
                             (long long)m, (long long)student_set.n, (long long)j.no_pair, (long long)j.ties);
                }
                judged_free(&j, k);
            }
            free(tl);
            if (!strcmp(obj, "brio-dpo") && c->comm->rank == 0 && rc == 0) {
                /* teacher-vs-teacher pairs ranked by the critic */
                int N = (int)c->teacher_n;
                char **tc = xcalloc((size_t)(m * N + 1), sizeof(char *));
                for (int64_t i = 0; i < m; i++)
                    for (int q = 0; q < N; q++) tc[i * N + q] = xstrdup(c->teacher[in[i] * N + q]);
                Judged j = {.n = m, .input = xmalloc(sizeof(int64_t) * (size_t)(m + 1))};
                memcpy(j.input, in, sizeof(int64_t) * (size_t)m);
                rc = judge_candidates(c, client, &j, tc, NULL, N, "critic (teacher pairs)", &e);
                if (rc == 0) {
                    judged_to_pairs(c, &j, N, &teacher_set);
                    char sub[96];
                    snprintf(sub, sizeof sub, "%s/teacher", g);
                    rc = store_judged(c, sub, &j, N, &e);
                }
                judged_free(&j, N);
            }
        } else if (c->comm->rank == 0) {
            teacher_items(c, in, m, &teacher_set);
        }
        /* rank 0's outcome: 0 fine, 1 stopped while judging, 2 an error */
        int64_t status = c->comm->rank == 0 ? (rc == 0 ? 0 : e.msg[0] ? 2 : 1) : 0;
        comm_bcast_i64(&status, 1);
        if (status) {
            itemset_free(&student_set), itemset_free(&teacher_set), free(in);
            comm_check(status == 2, e.msg, EXIT_RUNTIME);
            log_info("round %d: stopped while judging; the answers so far are cached", r);
            return EXIT_STOPPED;
        }
        /* everyone gets the sets, the DPO references are computed with the round's start model */
        int has_student = strcmp(obj, "ft") != 0;
        int has_teacher = !strcmp(obj, "ft") || !strcmp(obj, "brio-dpo");
        if (has_student) itemset_bcast(&student_set, 1);
        if (has_teacher) itemset_bcast(&teacher_set, strcmp(obj, "ft") != 0);
        int64_t sk = 0;
        if (!strcmp(obj, "sd")) drop_rejected(&student_set);
        if (has_student) sk += itemset_tokenize(c, &student_set);
        if (has_teacher) sk += itemset_tokenize(c, &teacher_set);
        if (sk) log_info("round %d: %lld items dropped (longer than train.seq_len)", r, (long long)sk);
        if (has_student && (!strcmp(obj, "dpo") || !strcmp(obj, "brio-dpo"))) compute_refs(c, &student_set);
        if (c->comm->rank == 0) {
            char sub[96];
            snprintf(sub, sizeof sub, "%s/pairs", g);
            if (has_student) rc = store_pairs(c, sub, &student_set, &e);
            snprintf(sub, sizeof sub, "%s/teacher_pairs", g);
            if (rc == 0 && has_teacher && teacher_set.b) rc = store_pairs(c, sub, &teacher_set, &e);
            snprintf(sub, sizeof sub, "%s/info", g);
            if (rc == 0)
                rc = store_write_string(c->run, sub, "attributes of this group describe the round", NULL, &e) ||
                     store_set_attr_str(c->run, g, "objective", obj, &e) ||
                     store_set_attr_i64(c->run, g, "start_step", start, &e) ||
                     store_set_attr_i64(c->run, g, "inputs", m, &e) ||
                     store_set_attr_i64(c->run, g, "pairs", has_student ? student_set.n : teacher_set.n, &e) ||
                     store_set_attr_i64(c->run, g, "collected", 1, &e) || store_flush(c->run, &e);
        }
        comm_check_all(rc, e.msg, EXIT_RUNTIME);
    } else {
        /* resume: the round's data from run.h5 */
        int has_student = strcmp(obj, "ft") != 0;
        char sub[96];
        if (c->comm->rank == 0) {
            snprintf(sub, sizeof sub, "%s/pairs", g);
            if (has_student) rc = read_pairs(c, sub, &student_set, &e);
            snprintf(sub, sizeof sub, "%s/teacher_pairs", g);
            if (rc == 0 && !strcmp(obj, "brio-dpo")) rc = read_pairs(c, sub, &teacher_set, &e);
            if (rc == 0 && !strcmp(obj, "ft")) teacher_items(c, in, m, &teacher_set);
        }
        comm_check_all(rc, e.msg, EXIT_RUNTIME);
        if (has_student) itemset_bcast(&student_set, strcmp(obj, "sd") != 0);
        if (!strcmp(obj, "brio-dpo")) itemset_bcast(&teacher_set, 1);
        if (!strcmp(obj, "ft")) itemset_bcast(&teacher_set, 0);
        if (!strcmp(obj, "sd")) drop_rejected(&student_set);
        if (has_student) itemset_tokenize(c, &student_set);
        if (!strcmp(obj, "ft") || !strcmp(obj, "brio-dpo")) itemset_tokenize(c, &teacher_set);
        log_info("round %d: resuming (%lld pairs) at step %lld", r, (long long)student_set.n, (long long)c->s.st.step);
    }
    free(in);
    /* phases */
    Phase ph[2];
    int nph = 0;
    int P = cfg->critique.batch_pairs;
#define STEPS(set) ((set)->n ? (int64_t)ceil(cfg->critique.epochs * (double)(set)->n / P) : 0)
    if (!strcmp(obj, "ft")) ph[nph++] = (Phase){OBJ_CE, &teacher_set, STEPS(&teacher_set), "ft"};
    else if (!strcmp(obj, "sd")) ph[nph++] = (Phase){OBJ_CE, &student_set, STEPS(&student_set), "sd"}; else if (!strcmp(obj, "dpo")) ph[nph++] = (Phase){PREF_DPO, &student_set, STEPS(&student_set), "dpo"};
    else if (!strcmp(obj, "brio")) ph[nph++] = (Phase){PREF_BRIO, &student_set, STEPS(&student_set), "brio"};
    else {
        ph[nph++] = (Phase){PREF_BRIO, &teacher_set, STEPS(&teacher_set), "brio (teacher pairs)"};
        ph[nph++] = (Phase){PREF_DPO, &student_set, STEPS(&student_set), "dpo"};
    }
#undef STEPS
    int64_t end = start;
    for (int q = 0; q < nph; q++) end += ph[q].steps;
    /* a fresh optimizer at the start of the round */
    if (c->s.st.step == start) {
        memset(c->opt.m, 0, c->s.model.n_params * sizeof(float));
        memset(c->opt.v, 0, c->s.model.n_params * sizeof(float));
    }
    model_alloc_acts(&c->s.model, cfg->critique.micro_rows, c->T);
    int code = EXIT_OK;
    int64_t phase_start = start;
    for (int q = 0; q < nph && code == EXIT_OK; q++) {
        int64_t pend = phase_start + ph[q].steps;
        if (ph[q].steps && c->s.st.step < pend)
            log_info("round %d phase %s: steps %lld..%lld over %lld %s", r, ph[q].name,
                     (long long)(c->s.st.step > phase_start ? c->s.st.step : phase_start) + 1, (long long)pend,
                     (long long)ph[q].set->n, ph[q].set->b ? "pairs" : "sequences");
        while (c->s.st.step < pend) {
            if (c->s.st.step < phase_start) { /* cannot happen: resume inside an earlier phase */
                c->s.st.step = phase_start;
            }
            if (stop_requested(c)) {
                code = EXIT_STOPPED;
                break;
            }
            double t0 = util_now();
            int64_t b = c->s.st.step - phase_start;
            int64_t t = c->s.st.step - start + 1; /* AdamW step within the round */
            double lr = cfg->critique.lr * (b < cfg->critique.warmup_steps ? (double)(b + 1) / cfg->critique.warmup_steps : 1.0);
            double gn, acc;
            int64_t ntok;
            double loss = phase_step(c, &ph[q], r, q, b, lr, t, &gn, &acc, &ntok);
            if (!isfinite(loss)) {
                if (c->comm->rank == 0)
                    log_error("critique loss is %g at step %lld (hint: lower critique.lr or critique.beta)", loss,
                              (long long)c->s.st.step + 1);
                comm_exit(EXIT_RUNTIME);
            }
            c->s.st.step++;
            c->s.st.tokens += ntok;
            double dt = util_now() - t0;
            c->s.st.elapsed += dt;
            c->step_avg = c->step_avg > 0 ? 0.8 * c->step_avg + 0.2 * dt : dt;
            if (c->comm->rank == 0)
                metriclog_push(&c->s.log, c->s.st.step, loss, lr, gn, c->s.st.tokens, c->s.st.elapsed);
            if (c->s.st.step % cfg->run.log_every == 0 || c->s.st.step == pend)
                log_info("step %6lld/%lld  round %d %s  loss %.4f  pair accuracy %.2f  gnorm %.3f  %.2f s/step",
                         (long long)c->s.st.step, (long long)end, r, ph[q].name, loss, acc, gn, c->step_avg);
            if (cfg->critique.ckpt_every > 0 && (c->s.st.step - start) % cfg->critique.ckpt_every == 0) checkpoint(c);
        }
        phase_start = pend;
    }
    checkpoint(c);
    if (code == EXIT_OK && c->comm->rank == 0) {
        if (store_set_attr_i64(c->run, g, "end_step", end, &e) || store_set_attr_i64(c->run, g, "complete", 1, &e) ||
            store_flush(c->run, &e))
            DIE("%s", e.msg);
        log_info("round %d complete at step %lld", r, (long long)end);
    }
    itemset_free(&student_set);
    itemset_free(&teacher_set);
    return code;
}

#define CRITIC_USAGE "attributes: usage of this role (critique and evaluation)"

/* Evaluates the current model into ROOT of run.h5 (eval_run opens run.h5 and the LLM cache
 * itself: rank 0 releases its own around it, recording the critic's usage so far). */
static int eval_between(Ctx *c, LlmSession *critic, LlmCache **cache, const char *root) {
    const Config *cfg = c->cfg;
    Err e2;
    int had_critic = critic->client != NULL;
    if (c->comm->rank == 0) {
        flush_metrics(c);
        if (had_critic && session_record_usage(critic, c->run, "/usage/critic", CRITIC_USAGE, &e2) != 0)
            DIE("%s", e2.msg);
        if (store_close(c->run, &e2) != 0) DIE("%s", e2.msg);
        c->run = NULL;
        session_close(critic);
        cache_close(*cache);
        *cache = NULL;
    }
    int code = eval_run(cfg, c->comm, root);
    if (c->comm->rank == 0) {
        char *rp = xasprintf("%s/run.h5", cfg->run.dir);
        c->run = store_open(rp, 1, &e2);
        free(rp);
        if (!c->run) DIE("%s", e2.msg);
        if (had_critic && (!(*cache = session_cache_open(cfg, SESSION_RUN, &e2)) ||
                           session_open(critic, cfg, &cfg->critic, "critic", *cache, &e2) != 0))
            DIE("%s", e2.msg);
    }
    return code;
}

int critique_main(const Config *cfg, const Comm *comm, int argc, char **argv) {
    if (cfg->critique.rounds == 0) return EXIT_OK;
    Ctx C;
    memset(&C, 0, sizeof C);
    Ctx *c = &C;
    c->cfg = cfg, c->comm = comm, c->argc = argc, c->argv = argv;
    c->t0 = util_now();
    util_install_stop_signals();
    c->T = cfg->train.seq_len;
    int threads = train_pick_threads(cfg, comm);
    par_init(threads);
    openblas_set_num_threads(threads);
    Err e = {{0}};
    int rc = 0;
    /* rank 0: training inputs and teacher answers; the run file */
    if (comm->rank == 0) {
        StoreFile *d = store_open(cfg->data.path, 0, &e);
        if (!d) rc = -1;
        if (rc == 0) {
            c->inputs = store_read_strings(d, "/inputs/train", &c->n_inputs, &e);
            int nd;
            int64_t dims[4], np = 0;
            if (!c->inputs) rc = -1;
            else if (store_dims(d, "/teacher/paraphrases", &nd, dims, &e) != 0) rc = err_suffix(&e, " (hint: run hdistill teach first)");
            else {
                c->teacher_n = dims[1];
                c->teacher = store_read_strings(d, "/teacher/paraphrases", &np, &e);
                if (!c->teacher) rc = -1;
            }
            store_close(d, NULL);
        }
        char *run_path = xasprintf("%s/run.h5", cfg->run.dir);
        if (rc == 0) {
            c->run = store_open(run_path, 1, &e);
            if (!c->run) rc = err_suffix(&e, " (hint: the student must be trained first)");
        }
        free(run_path);
    }
    comm_check(rc, e.msg, EXIT_USAGE);
    comm_bcast_strings(&c->inputs, &c->n_inputs);
    int64_t tn = c->teacher_n;
    comm_bcast_i64(&tn, 1);
    c->teacher_n = tn;
    if (student_load(&c->s, cfg, comm, &c->opt, &e) != 0) comm_check(1, e.msg, EXIT_USAGE);
    c->opt.weight_decay = 0.0;
    c->ckpt_dir = xasprintf("%s/ckpt", cfg->run.dir);
    c->stop_path = xasprintf("%s/STOP", cfg->run.dir);
    c->config_json = config_to_json(cfg);
    c->last_ckpt = c->s.st.step;
    LlmSession critic = {0};
    LlmCache *cache = NULL;
    if (comm->rank == 0) {
        prov_collect(&c->prov, argc, argv, comm->size);
        /* run.h5 metrics: exactly the checkpoint's history */
        if (store_delete(c->run, "/metrics/train", &e) != 0 ||
            metriclog_append_to(c->run, "/metrics/train", &c->s.log, 0, &e) != 0)
            rc = -1;
        c->log_flushed = c->s.log.n;
        int need_critic = strcmp(cfg->critique.objective, "ft") != 0;
        if (rc == 0 && need_critic) rc = (cache = session_cache_open(cfg, SESSION_RUN, &e)) ? 0 : -1;
        if (rc == 0 && need_critic) rc = session_open(&critic, cfg, &cfg->critic, "critic", cache, &e);
    }
    comm_check(rc, e.msg, EXIT_USAGE);
    int code = EXIT_OK;
    if (cfg->critique.eval_each_round) {
        /* the model after SFT, as the first point of the win-or-tie rate by round (before round 0 starts) */
        int64_t fresh = comm->rank == 0 ? !store_exists(c->run, "/rounds/0") : 0;
        comm_bcast_i64(&fresh, 1);
        if (fresh) code = eval_between(c, &critic, &cache, "/sft/eval");
    }
    for (int r = 0; r < cfg->critique.rounds && code == EXIT_OK; r++) {
        code = run_round(c, r, critic.client);
        if (code == EXIT_OK && cfg->critique.eval_each_round) {
            /* the model after round r: only while it is the newest checkpoint (a resumed run that is past
             * round r must not evaluate a later model into /rounds/r/eval), and never twice */
            char root[64];
            snprintf(root, sizeof root, "/rounds/%d/eval", r);
            int64_t want = 0;
            if (comm->rank == 0) {
                char g[48];
                snprintf(g, sizeof g, "/rounds/%d", r);
                int64_t done = 0, end = -1;
                if (store_exists(c->run, root)) store_get_attr_i64(c->run, root, "complete", &done, NULL);
                store_get_attr_i64(c->run, g, "end_step", &end, NULL);
                want = !done && end == c->s.st.step;
                if (!done && end != c->s.st.step)
                    log_warn("round %d: not evaluated: its model (step %lld) is no longer the newest checkpoint "
                             "(step %lld)", r, (long long)end, (long long)c->s.st.step);
            }
            comm_bcast_i64(&want, 1);
            if (want) code = eval_between(c, &critic, &cache, root);
        }
    }
    if (comm->rank == 0) {
        if (critic.client) {
            char ub[512];
            llm_usage_format(llm_usage(critic.client), ub, sizeof ub);
            log_info("critique: critic usage: %s", ub);
            Err e2;
            if (session_record_usage(&critic, c->run, "/usage/critic", CRITIC_USAGE, &e2)) log_warn("%s", e2.msg);
        }
        flush_metrics(c);
        Err e2;
        if (store_close(c->run, &e2) != 0) DIE("%s", e2.msg);
    }
    session_close(&critic);
    cache_close(cache);
    if (comm->rank == 0) prov_free(&c->prov);
    store_free_strings(c->inputs, c->n_inputs);
    if (c->teacher) store_free_strings(c->teacher, c->n_inputs * c->teacher_n);
    optim_free(&c->opt);
    student_free(&c->s);
    free(c->ckpt_dir), free(c->stop_path), free(c->config_json);
    return code;
}

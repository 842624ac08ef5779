/* critique -- the critique phase; see include/stages/critique.h. */
#include "stages/critique.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/ckpt.h"
#include "io/dataset.h"
#include "engine/data.h"
#include "engine/packer.h"
#include "stages/eval.h"
#include "engine/pairs.h"
#include "engine/pref.h"
#include "io/prov.h"
#include "llm/critic.h"
#include "stages/session.h"
#include "io/store.h"
#include "stages/student.h"
#include "stages/trainer.h"

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

/* The critique phase's state: the trainer (student, optimizer, run.h5, the
 * step protocol) and the round's inputs. */
typedef struct {
    Trainer t;
    const Config *cfg;
    const Comm *comm;
    /* training inputs and teacher answers (inputs on all ranks, teacher on rank 0) */
    char **inputs;
    int64_t n_inputs;
    char **teacher; /* [n_inputs * teacher_n] */
    int64_t teacher_n;
    int T;
    Err err;        /* rank 0: why a round failed or stopped at the spend limit */
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
        student_prompt(&c->t.s, p.prompt[q], &tmp);
        int np = (int)tmp.n;
        prompt_encode_answer(&c->t.s.fmt, c->t.s.tok, p.target[q], &tmp);
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
static void rows_pass(Model *m, const Rows *r, int micro, double *lp, int *len, const double *g, float *gbuf,
                      GradSync *gs) {
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
        if (g && gs && r0 + micro >= r->rows) gradsync_arm(gs); /* the last backward pass reduces */
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
    rows_pack(&rw, &sub, c->T, c->t.s.eot);
    double *lp = xcalloc((size_t)(q + 1), sizeof(double));
    model_alloc_acts(&c->t.s.model, c->cfg->critique.micro_rows, c->T);
    rows_pass(&c->t.s.model, &rw, c->cfg->critique.micro_rows, lp, NULL, NULL, NULL, NULL);
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
    rows_pack(&rw, &sub, c->T, c->t.s.eot);
    int nex = mine * per;
    double *lp = xcalloc((size_t)(nex + 1), sizeof(double)), *g = xcalloc((size_t)(nex + 1), sizeof(double));
    int *len = xcalloc((size_t)(nex + 1), sizeof(int));
    for (int e = 0; e < nex; e++) len[e] = (int)(sub.off[e + 1] - sub.off[e]) - sub.n_prompt[e];
    Model *m = &c->t.s.model;
    int micro = cfg->critique.micro_rows;
    float *gbuf = xmalloc(sizeof(float) * (size_t)micro * c->T);
    double sums[3] = {0, 0, 0}; /* loss, correct, tokens */
    if (ph->obj == OBJ_CE) {
        for (int e = 0; e < nex; e++) g[e] = -1.0 / ((double)len[e] * P);
    } else {
        rows_pass(m, &rw, micro, lp, NULL, NULL, NULL, NULL); /* pass 1: sequence log-probs */
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
    gradsync_begin(c->t.gs);
    rows_pass(m, &rw, micro, lp, NULL, g, gbuf, c->t.gs);
    gradsync_finish(c->t.gs);
    if (ph->obj == OBJ_CE)
        for (int e = 0; e < nex; e++) sums[0] += -lp[e] / len[e];
    for (int e = 0; e < nex; e++) sums[2] += len[e];
    if (W > 1) comm_allreduce_sum_f64(sums, 3);
    *gnorm = gradsync_step(c->t.gs, &c->t.opt, lr, t);
    *acc = sums[1] / P;
    *ntok = (int64_t)sums[2];
    free(perm), free(items), free(ex_idx), free(lp), free(g), free(len), free(gbuf);
    rows_free(&rw);
    data_examples_free(&sub);
    return sums[0] / P;
}

/* ---- collecting a round's pairs (rank 0 talks to the critic) ------------------------ */

typedef struct {
    int64_t n;          /* inputs of the round */
    int64_t *input;     /* indices into /inputs/train */
    char **cands;       /* n * k */
    int32_t *pi, *pj, *label;
    double *p_ab, *p_ba, *p;
    char **raw_ab, **raw_ba;
    int32_t *src;       /* [n, 2]: where each order's preference came from (CRITIC_SRC_*) */
    uint8_t *trunc;     /* [n, 2]: the order's answer was cut by the token limit */
    char **reason;      /* [n, 2]: the order's reasoning ("" if none) */
    int any_reason;
    int64_t no_pair, ties, unjudged;
} Judged;

static void judged_free(Judged *j, int k) {
    for (int64_t i = 0; i < j->n * k; i++) free(j->cands[i]);
    for (int64_t i = 0; i < j->n; i++) free(j->raw_ab[i]), free(j->raw_ba[i]);
    for (int64_t i = 0; i < 2 * j->n; i++) free(j->reason[i]);
    free(j->input), free(j->cands), free(j->pi), free(j->pj), free(j->label);
    free(j->p_ab), free(j->p_ba), free(j->p), free(j->raw_ab), free(j->raw_ba);
    free(j->src), free(j->trunc), free(j->reason);
    memset(j, 0, sizeof *j);
}

/* ---- judging (rank 0): pair selection and the critic, a range of inputs at a time ---- */

/* Allocates the per-input arrays of j (j->n, j->input set); takes cands (n x k, rows may be
 * filled later: judge_range reads only its own rows). */
static void judged_alloc(Judged *j, char **cands) {
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
    j->src = xcalloc((size_t)(2 * n + 1), sizeof(int32_t));
    j->trunc = xcalloc((size_t)(2 * n + 1), 1);
    j->reason = xcalloc((size_t)(2 * n + 1), sizeof(char *));
}

/* How a judging went: the outcomes of its requests (session.h), how many were asked. */
typedef struct {
    LlmOutcome o;
    int64_t requests;
} JudgeOutcome;

/* Input i of j from its judgement d (takes its texts); its label by the tie rule, -2 when unjudged. */
static void take_judgement(Judged *j, int64_t i, CriticJudgement *d, double tie_margin, JudgeOutcome *out) {
    j->p_ab[i] = d->p_ab, j->p_ba[i] = d->p_ba, j->p[i] = d->p;
    j->raw_ab[i] = d->raw_ab, j->raw_ba[i] = d->raw_ba;
    j->reason[2 * i] = d->reasoning_ab, j->reason[2 * i + 1] = d->reasoning_ba;
    d->raw_ab = d->raw_ba = d->reasoning_ab = d->reasoning_ba = NULL;
    j->any_reason |= j->reason[2 * i][0] || j->reason[2 * i + 1][0];
    j->src[2 * i] = d->src_ab, j->src[2 * i + 1] = d->src_ba;
    j->trunc[2 * i] = (uint8_t)d->truncated_ab, j->trunc[2 * i + 1] = (uint8_t)d->truncated_ba;
    session_outcome_add(&out->o, d->st_ab, d->error_ab);
    session_outcome_add(&out->o, d->st_ba, d->error_ba);
    if (isnan(d->p)) { /* no usable verdict in either order: never a tie */
        j->label[i] = -2;
        j->unjudged++;
        return;
    }
    j->label[i] = pairs_verdict(d->p, tie_margin);
    if (j->label[i] == 0) j->ties++;
}

/* Inputs [i0, i1) of j: the most distant comparable pair of each, judged by the critic in both
 * orders, labels by the tie rule. */
static void judge_range(const Ctx *c, LlmClient *client, Judged *j, const int *tok_len, int k, int64_t i0, int64_t i1,
                        const char *label, JudgeOutcome *out) {
    const Config *cfg = c->cfg;
    PairRule rule = {cfg->critique.ngram, cfg->critique.len_unit == LEN_TOKENS, cfg->critique.len_lo,
                     cfg->critique.len_hi, cfg->critique.filter_first};
    CriticItem *items = xcalloc((size_t)(i1 - i0 + 1), sizeof(CriticItem));
    int64_t *which = xmalloc(sizeof(int64_t) * (size_t)(i1 - i0 + 1)), m = 0;
    for (int64_t i = i0; i < i1; i++) {
        int a, b;
        j->p_ab[i] = j->p_ba[i] = j->p[i] = NAN;
        if (pairs_select((const char *const *)j->cands + i * k, tok_len ? tok_len + i * k : NULL, k, &rule, &a, &b)) {
            j->pi[i] = a, j->pj[i] = b;
            items[m] = (CriticItem){c->inputs[j->input[i]], j->cands[i * k + a], j->cands[i * k + b]};
            which[m++] = i;
        } else {
            j->pi[i] = j->pj[i] = -1;
            j->no_pair++;
        }
    }
    CriticJudgement *jd = xcalloc((size_t)(m + 1), sizeof(CriticJudgement));
    if (out->o.final) m = 0; /* a 4xx, insufficient_quota or reasoning_length ended the judging: ask nothing more */
    critic_judge(client, &cfg->critic, items, (size_t)m, jd, label);
    out->requests += 2 * m;
    for (int64_t q = 0; q < m; q++) {
        take_judgement(j, which[q], &jd[q], cfg->critique.tie_margin, out);
        critic_judgement_free(&jd[q]);
    }
    free(jd), free(items), free(which);
}

/* The judging's status (session_outcome_status: a round never trains on a partial judgement; the
 * answers so far are cached); e set for anything but STATUS_OK.  b: the client's budget, or NULL. */
static Status judge_status(Judged *j, const JudgeOutcome *o, const LlmBudget *b, const char *label, Err *e) {
    for (int64_t i = 0; i < j->n; i++) {
        if (!j->raw_ab[i]) j->raw_ab[i] = xstrdup("");
        if (!j->raw_ba[i]) j->raw_ba[i] = xstrdup("");
        if (!j->reason[2 * i]) j->reason[2 * i] = xstrdup("");
        if (!j->reason[2 * i + 1]) j->reason[2 * i + 1] = xstrdup("");
    }
    return session_outcome_status(&o->o, b, label, e);
}

/* rank 0: pick pairs among cands (n x k), judge them; fills j (takes cands) */
static Status judge_candidates(Ctx *c, LlmClient *client, Judged *j, char **cands, const int *tok_len, int k,
                               const char *label, Err *e) {
    judged_alloc(j, cands);
    JudgeOutcome o = {0};
    judge_range(c, client, j, tok_len, k, 0, j->n, label, &o);
    return judge_status(j, &o, llm_client_budget(client), label, e);
}

/* ---- the critic beside the sampling ------------------------------------------------------
 * While all ranks sample a round's candidates chunk by chunk, a thread of rank 0 sends each
 * chunk's pairs to the critic as soon as the chunk is gathered (critique.pipeline=1; with 0, and
 * in critic.mode=batch so that the round is one Batch API submission, it waits for the last
 * chunk; the judging thread calls no MPI; the LLM client and its cache are used by the judging
 * thread alone until it is joined), so a round takes about the longer of sampling and judging
 * instead of their sum.  The stored results are those of judging everything afterwards: pair
 * selection and the critic's answers do not depend on when they are asked, nor the samples on
 * the chunks (gen.h). */
typedef struct {
    const Ctx *c;
    LlmClient *client;
    Judged *j;
    int *tok_len; /* [n*k] */
    int k;
    int whole;    /* judge once, after the last chunk */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t ready, judged; /* inputs [0, ready) have candidates; [0, judged) are judged */
    int closed;
    JudgeOutcome out;
    double t0;               /* when the sampling started (util_now) */
    double first, done1, last; /* seconds after t0: first request, first chunk judged, last answer; -1 = none */
} JudgePipe;

static void *judge_thread(void *vp) {
    JudgePipe *jp = vp;
    for (;;) {
        pthread_mutex_lock(&jp->mu);
        while ((jp->ready == jp->judged || jp->whole) && !jp->closed) pthread_cond_wait(&jp->cv, &jp->mu);
        int64_t i0 = jp->judged, i1 = jp->ready;
        int done = jp->closed && i0 == i1;
        pthread_mutex_unlock(&jp->mu);
        if (done) return NULL;
        if (jp->first < 0) jp->first = util_now() - jp->t0;
        judge_range(jp->c, jp->client, jp->j, jp->tok_len, jp->k, i0, i1, "critic", &jp->out);
        jp->last = util_now() - jp->t0;
        if (jp->done1 < 0) jp->done1 = jp->last;
        pthread_mutex_lock(&jp->mu);
        jp->judged = i1;
        pthread_mutex_unlock(&jp->mu);
    }
}

/* student_generate_chunks' callback on rank 0: the chunk's candidates, then wake the judge */
static void pipe_chunk(void *vp, int c0, int c1, char **texts, int *tok_len) {
    JudgePipe *jp = vp;
    for (int i = 0; i < (c1 - c0) * jp->k; i++) {
        jp->j->cands[(size_t)c0 * jp->k + i] = texts[i];
        jp->tok_len[(size_t)c0 * jp->k + i] = tok_len[i];
    }
    free(texts);
    free(tok_len);
    pthread_mutex_lock(&jp->mu);
    jp->ready = c1;
    pthread_cond_signal(&jp->cv);
    pthread_mutex_unlock(&jp->mu);
}

enum { PIPE_CHUNKS = 16 }; /* chunks of a pipelined round, about */

/* Inputs per sampled chunk of a round of m inputs on W ranks, at most per_rank each (one decoding
 * batch).  Judged whole: one batch per rank.  Pipelined: about m / PIPE_CHUNKS, so that the
 * sampling before the critic's first request (the first chunk) and the judging left after the
 * last chunk are short; a multiple of W (equal shares) and, batch permitting, of the inputs of one
 * wave of critic.concurrency requests (two per input), so that no wave of a chunk leaves the
 * critic idle.  The samples do not depend on it (gen.h). */
static int chunk_inputs(int64_t m, int W, int per_rank, int concurrency, int whole) {
    int64_t cap = (int64_t)per_rank * W, unit = W, wave = (concurrency + 1) / 2;
    if (whole) return (int)cap;
    for (int64_t u = wave; u <= cap; u += wave)
        if (u % W == 0) { /* the least common multiple of wave and W, if it fits a batch */
            unit = u;
            break;
        }
    int64_t c = m > PIPE_CHUNKS ? (m + PIPE_CHUNKS - 1) / PIPE_CHUNKS : 1;
    c = (c + unit - 1) / unit * unit;
    return (int)(c < cap / unit * unit ? c : cap / unit * unit);
}

static int store_judged(Ctx *c, const char *g, const Judged *j, int k, Err *e) {
    char obj[256];
    int64_t n = j->n, d2[2] = {n, k}, o2[2] = {n, 2};
#define O(x) (snprintf(obj, sizeof obj, "%s/%s", g, x), obj)
    if (j->any_reason &&
        store_write_strings(c->t.run, O("reasoning"), (const char *const *)j->reason, 2, o2,
                            "the critic's reasoning, [input, order] (order 0: a first, 1: b first); \"\" where none", e))
        return -1;
    return store_write_i32(c->t.run, O("source"), j->src, 2, o2,
                           "where each order's preference came from, [input, order]: 1 log-probs, 2 the written "
                           "answer, 0 none (no pair, not asked, or no usable verdict)", e) ||
           store_write_u8(c->t.run, O("truncated"), j->trunc, 2, o2,
                          "1 = that order's answer was cut by critic.max_tokens (finish_reason length; no verdict "
                          "taken from it)", e) ||
           store_write_i64(c->t.run, O("input"), j->input, 1, &n, "index into /inputs/train of data.h5", e) ||
           store_write_strings(c->t.run, O("candidates"), (const char *const *)j->cands, 2, d2,
                               "sampled candidates (student) or teacher paraphrases, row = input", e) ||
           store_write_i32(c->t.run, O("pair_a"), j->pi, 1, &n, "column of option a of the judged pair; -1 = no pair", e) ||
           store_write_i32(c->t.run, O("pair_b"), j->pj, 1, &n, "column of option b", e) ||
           store_write_f64(c->t.run, O("p_ab"), j->p_ab, 1, &n, "P(a better), asked with a as option 1; NaN: no verdict", e) ||
           store_write_f64(c->t.run, O("p_ba"), j->p_ba, 1, &n, "P(a better), asked with a as option 2; NaN: no verdict", e) ||
           store_write_f64(c->t.run, O("p"), j->p, 1, &n, "P(a better), mean of the orders with a verdict; NaN: unjudged", e) ||
           store_write_strings(c->t.run, O("raw_ab"), (const char *const *)j->raw_ab, 1, &n, "critic answer, a first", e) ||
           store_write_strings(c->t.run, O("raw_ba"), (const char *const *)j->raw_ba, 1, &n, "critic answer, b first", e) ||
           store_write_i32(c->t.run, O("label"), j->label, 1, &n,
                           "1 = a chosen, -1 = b chosen, 0 = tie or no pair, -2 = unjudged (no usable verdict in either "
                           "order: never a tie)", e) ||
           store_set_attr_i64(c->t.run, g, "no_pair", j->no_pair, e) ||
           store_set_attr_i64(c->t.run, g, "ties", j->ties, e) ||
           store_set_attr_i64(c->t.run, g, "unjudged", j->unjudged, e);
#undef O
}

/* pairs (chosen, rejected) of a judged set -> ItemSet (rank 0) */
static void judged_to_pairs(const Ctx *c, const Judged *j, int k, ItemSet *s) {
    memset(s, 0, sizeof *s);
    s->prompt = xcalloc((size_t)(j->n + 1), sizeof(char *));
    s->a = xcalloc((size_t)(j->n + 1), sizeof(char *));
    s->b = xcalloc((size_t)(j->n + 1), sizeof(char *));
    for (int64_t i = 0; i < j->n; i++) {
        if (j->label[i] != 1 && j->label[i] != -1) continue; /* a tie, no pair, or unjudged */
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
    int rc = store_write_strings(c->t.run, O("prompt"), (const char *const *)s->prompt, 1, &n, "literal input", e) ||
             store_write_strings(c->t.run, O("chosen"), (const char *const *)s->a, 1, &n, "preferred output", e);
    if (rc == 0 && s->b)
        rc = store_write_strings(c->t.run, O("rejected"), (const char *const *)s->b, 1, &n, "dispreferred output", e);
    if (rc == 0 && s->ref_a)
        rc = store_write_f64(c->t.run, O("ref_chosen"), s->ref_a, 1, &n,
                             "log-prob of chosen under the round's starting model (DPO reference), nats", e) ||
             store_write_f64(c->t.run, O("ref_rejected"), s->ref_b, 1, &n, "the same for rejected", e);
#undef O
    return rc;
}

static int read_pairs(Ctx *c, const char *g, ItemSet *s, Err *e) {
    memset(s, 0, sizeof *s);
    char obj[256];
    int64_t n1, n2, n3;
#define O(x) (snprintf(obj, sizeof obj, "%s/%s", g, x), obj)
    s->prompt = store_read_strings(c->t.run, O("prompt"), &n1, e);
    s->a = s->prompt ? store_read_strings(c->t.run, O("chosen"), &n2, e) : NULL;
    if (!s->a) return -1;
    if (store_exists(c->t.run, O("rejected"))) {
        s->b = store_read_strings(c->t.run, O("rejected"), &n3, e);
        if (!s->b) return -1;
    }
    s->n = n1;
    if (store_exists(c->t.run, O("ref_chosen"))) {
        s->ref_a = store_read_alloc(c->t.run, O("ref_chosen"), 'd', NULL, e);
        s->ref_b = store_read_alloc(c->t.run, O("ref_rejected"), 'd', NULL, e);
        if (!s->ref_a || !s->ref_b) return -1;
    }
#undef O
    return 0;
}

/* ---- a round --------------------------------------------------------------------------- */

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

/* ---- the objectives, as tables of what a round does ------------------------------- */

enum { SET_STUDENT = 0, SET_TEACHER = 1 };

typedef struct {
    int obj;          /* PrefObjective or OBJ_CE */
    int set;          /* SET_STUDENT | SET_TEACHER */
    const char *name; /* for progress lines */
} PhaseSpec;

typedef struct {
    int objective;       /* CritiqueObjective */
    const char *name;    /* its name */
    int sample;          /* the student's candidates are sampled and judged into the student pairs */
    int teacher_pairs;   /* the teacher's paraphrases are judged into teacher pairs */
    int teacher_singles; /* the teacher's paraphrases are cross-entropy items */
    int chosen_only;     /* the student pairs train as their chosen sequences alone */
    int refs;            /* DPO reference log-probs of the student pairs */
    int n_phases;
    PhaseSpec phase[2];
} ObjectiveSpec;

static const ObjectiveSpec OBJECTIVES[] = {
    {OBJECTIVE_FT, "ft", 0, 0, 1, 0, 0, 1, {{OBJ_CE, SET_TEACHER, "ft"}}},
    {OBJECTIVE_SD, "sd", 1, 0, 0, 1, 0, 1, {{OBJ_CE, SET_STUDENT, "sd"}}},
    {OBJECTIVE_DPO, "dpo", 1, 0, 0, 0, 1, 1, {{PREF_DPO, SET_STUDENT, "dpo"}}},
    {OBJECTIVE_BRIO, "brio", 1, 0, 0, 0, 0, 1, {{PREF_BRIO, SET_STUDENT, "brio"}}},
    {OBJECTIVE_BRIO_DPO, "brio-dpo", 1, 1, 0, 0, 1, 2,
     {{PREF_BRIO, SET_TEACHER, "brio (teacher pairs)"}, {PREF_DPO, SET_STUDENT, "dpo"}}},
};

static const ObjectiveSpec *objective_of(int objective) {
    for (size_t i = 0; i < sizeof OBJECTIVES / sizeof OBJECTIVES[0]; i++)
        if (OBJECTIVES[i].objective == objective) return &OBJECTIVES[i];
    DIE("critique.objective %d has no phase table", objective); /* the option table allows only these */
}

/* ---- a round ---------------------------------------------------------------------------- */

typedef struct {
    int r;
    const ObjectiveSpec *ob;
    char g[64];             /* /rounds/<r> */
    int64_t start;          /* the step the round starts at */
    int64_t *in, m;         /* the round's inputs (indices into /inputs/train) */
    ItemSet set[2];         /* SET_STUDENT, SET_TEACHER */
} Round;

static void round_free(Round *rd) {
    itemset_free(&rd->set[SET_STUDENT]);
    itemset_free(&rd->set[SET_TEACHER]);
    free(rd->in);
}

/* rank 0, the judging joined: the round's times (seconds from the start of the sampling) */
static void log_round_times(const JudgePipe *jp, int r) {
    double total = util_now() - jp->t0, first = jp->first >= 0 ? jp->first : 0, last = jp->last >= 0 ? jp->last : 0;
    log_info("round %d: critic busy %.2f s (%.2f s to %.2f s, first chunk judged at %.2f s); sampling + judging "
             "%.2f s, %s",
             r, last - first, first, last, jp->done1 >= 0 ? jp->done1 : 0, total,
             jp->whole ? "one after the other" : "overlapped");
}

/* Collective: samples the student's k candidates per input (all ranks, chunk by chunk) while
 * rank 0 judges each chunk's pair; then rank 0 makes and stores the pairs.  rank 0's status. */
static Status sample_and_judge(Ctx *c, Round *rd, LlmClient *client, const GenOptions *go, Err *e) {
    const Config *cfg = c->cfg;
    int k = go->k, W = c->comm->size;
    char **texts = xmalloc(sizeof(char *) * (size_t)(rd->m + 1));
    for (int64_t i = 0; i < rd->m; i++) texts[i] = c->inputs[rd->in[i]];
    Judged j = {.n = rd->m};
    int whole = !cfg->critique.pipeline || cfg->critic.mode == ENDPOINT_MODE_BATCH;
    JudgePipe jp = {.c = c, .client = client, .j = &j, .k = k, .whole = whole, .first = -1, .done1 = -1, .last = -1};
    pthread_t th;
    jp.t0 = util_now();
    if (c->comm->rank == 0) {
        j.input = xmalloc(sizeof(int64_t) * (size_t)(rd->m + 1));
        memcpy(j.input, rd->in, sizeof(int64_t) * (size_t)rd->m);
        judged_alloc(&j, xcalloc((size_t)(rd->m * k + 1), sizeof(char *)));
        jp.tok_len = xcalloc((size_t)(rd->m * k + 1), sizeof(int));
        pthread_mutex_init(&jp.mu, NULL);
        pthread_cond_init(&jp.cv, NULL);
        if (pthread_create(&th, NULL, judge_thread, &jp) != 0) DIE("cannot start the judging thread");
    }
    int per_rank = go->batch > k ? go->batch / k : 1; /* inputs of one decoding batch */
    int chunk = chunk_inputs(rd->m, W, per_rank, cfg->critic.concurrency, whole);
    student_generate_chunks(&c->t.s, go, c->comm, texts, (int)rd->m, chunk, pipe_chunk, &jp);
    double sampled = util_now() - jp.t0;
    int64_t nc = (rd->m + chunk - 1) / chunk;
    log_info("round %d: sampled %lld x %d candidates in %.2f s (%lld chunk%s)", rd->r, (long long)rd->m, k, sampled,
             (long long)nc, nc == 1 ? "" : "s");
    free(texts);
    Status rc = STATUS_OK;
    if (c->comm->rank == 0) {
        pthread_mutex_lock(&jp.mu);
        jp.closed = 1;
        pthread_cond_signal(&jp.cv);
        pthread_mutex_unlock(&jp.mu);
        pthread_join(th, NULL);
        pthread_mutex_destroy(&jp.mu);
        pthread_cond_destroy(&jp.cv);
        log_round_times(&jp, rd->r);
        rc = judge_status(&j, &jp.out, llm_client_budget(client), "critic", e);
        if (rc == STATUS_OK) {
            judged_to_pairs(c, &j, k, &rd->set[SET_STUDENT]);
            char sub[96];
            snprintf(sub, sizeof sub, "%s/student", rd->g);
            if (store_judged(c, sub, &j, k, e) != 0) rc = STATUS_FAILED;
            log_info("round %d: %lld inputs -> %lld pairs (%lld without a usable pair, %lld ties, %lld unjudged)", rd->r,
                     (long long)rd->m, (long long)rd->set[SET_STUDENT].n, (long long)j.no_pair, (long long)j.ties,
                     (long long)j.unjudged);
            if (j.unjudged)
                log_warn("round %d: the critic gave no usable verdict for %lld pairs (cut by critic.max_tokens, "
                         "refused, filtered or no \"Answer: 1|2\"): they are left out, not counted as ties",
                         rd->r, (long long)j.unjudged);
        }
        judged_free(&j, k);
        free(jp.tok_len);
    }
    return rc;
}

/* rank 0: teacher-vs-teacher pairs ranked by the critic, stored */
static Status judge_teacher(Ctx *c, Round *rd, LlmClient *client, Err *e) {
    int N = (int)c->teacher_n;
    char **tc = xcalloc((size_t)(rd->m * N + 1), sizeof(char *));
    for (int64_t i = 0; i < rd->m; i++)
        for (int q = 0; q < N; q++) tc[i * N + q] = xstrdup(c->teacher[rd->in[i] * N + q]);
    Judged j = {.n = rd->m, .input = xmalloc(sizeof(int64_t) * (size_t)(rd->m + 1))};
    memcpy(j.input, rd->in, sizeof(int64_t) * (size_t)rd->m);
    Status rc = judge_candidates(c, client, &j, tc, NULL, N, "critic (teacher pairs)", e);
    if (rc == STATUS_OK) {
        judged_to_pairs(c, &j, N, &rd->set[SET_TEACHER]);
        char sub[96];
        snprintf(sub, sizeof sub, "%s/teacher", rd->g);
        if (store_judged(c, sub, &j, N, e) != 0) rc = STATUS_FAILED;
    }
    judged_free(&j, N);
    return rc;
}

/* Collective: samples (all ranks) and judges (rank 0) the round's pairs.
 * Returns rank 0's status on every rank: STATUS_OK, STATUS_STOPPED when
 * stopped while judging, STATUS_FAILED or STATUS_BUDGET (c->err says why,
 * on rank 0). */
static Status collect(Ctx *c, Round *rd, LlmClient *client) {
    const Config *cfg = c->cfg;
    Err e = {{0}};
    Status rc = STATUS_OK;
    log_info("round %d: %s on %lld inputs, starting at step %lld", rd->r, rd->ob->name, (long long)rd->m,
             (long long)rd->start);
    if (rd->ob->sample) {
        GenOptions go;
        gen_options_init(&go);
        go.mode = GEN_SAMPLE;
        go.k = cfg->critique.k;
        go.temperature = cfg->critique.temperature;
        go.top_p = cfg->critique.top_p;
        go.max_new = cfg->critique.max_new;
        go.seed = rng_derive((uint64_t)cfg->train.seed, 0x5a4d, (uint64_t)rd->r);
        rc = sample_and_judge(c, rd, client, &go, &e);
        if (rd->ob->teacher_pairs && c->comm->rank == 0 && rc == STATUS_OK) rc = judge_teacher(c, rd, client, &e);
    }
    if (rd->ob->teacher_singles && c->comm->rank == 0) teacher_items(c, rd->in, rd->m, &rd->set[SET_TEACHER]);
    /* rank 0's outcome decides */
    int64_t status = rc;
    comm_bcast_i64(&status, 1);
    if (status == STATUS_STOPPED) log_info("round %d: stopped while judging; the answers so far are cached", rd->r);
    if (status == STATUS_FAILED || status == STATUS_BUDGET) c->err = e;
    return (Status)status;
}

/* rank 0: the round's data from run.h5 (a resumed round) */
static int reread(Ctx *c, Round *rd, Err *e) {
    char sub[96];
    int rc = 0;
    snprintf(sub, sizeof sub, "%s/pairs", rd->g);
    if (rd->ob->sample) rc = read_pairs(c, sub, &rd->set[SET_STUDENT], e);
    snprintf(sub, sizeof sub, "%s/teacher_pairs", rd->g);
    if (rc == 0 && rd->ob->teacher_pairs) rc = read_pairs(c, sub, &rd->set[SET_TEACHER], e);
    if (rc == 0 && rd->ob->teacher_singles) teacher_items(c, rd->in, rd->m, &rd->set[SET_TEACHER]);
    return rc;
}

/* Collective: the sets on every rank, tokenized; DPO references with the round's start model when fresh */
static void prepare_sets(Ctx *c, Round *rd, int fresh) {
    const ObjectiveSpec *ob = rd->ob;
    ItemSet *st = &rd->set[SET_STUDENT], *te = &rd->set[SET_TEACHER];
    int has_teacher = ob->teacher_pairs || ob->teacher_singles;
    if (ob->sample) itemset_bcast(st, fresh || !ob->chosen_only);
    if (has_teacher) itemset_bcast(te, ob->teacher_pairs);
    if (ob->chosen_only) drop_rejected(st);
    int64_t sk = 0;
    if (ob->sample) sk += itemset_tokenize(c, st);
    if (has_teacher) sk += itemset_tokenize(c, te);
    if (fresh && sk) log_info("round %d: %lld items dropped (longer than train.seq_len)", rd->r, (long long)sk);
    if (fresh && ob->sample && ob->refs) compute_refs(c, st);
}

/* rank 0: everything the round decided, into run.h5 before training on it */
static int store_round(Ctx *c, const Round *rd, Err *e) {
    const ItemSet *st = &rd->set[SET_STUDENT], *te = &rd->set[SET_TEACHER];
    char sub[96];
    int rc = 0;
    snprintf(sub, sizeof sub, "%s/pairs", rd->g);
    if (rd->ob->sample) rc = store_pairs(c, sub, st, e);
    snprintf(sub, sizeof sub, "%s/teacher_pairs", rd->g);
    if (rc == 0 && rd->ob->teacher_pairs && te->b) rc = store_pairs(c, sub, te, e);
    snprintf(sub, sizeof sub, "%s/info", rd->g);
    if (rc == 0)
        rc = store_write_string(c->t.run, sub, "attributes of this group describe the round", NULL, e) ||
             store_set_attr_str(c->t.run, rd->g, "objective", rd->ob->name, e) ||
             store_set_attr_i64(c->t.run, rd->g, "start_step", rd->start, e) ||
             store_set_attr_i64(c->t.run, rd->g, "inputs", rd->m, e) ||
             store_set_attr_i64(c->t.run, rd->g, "pairs", rd->ob->sample ? st->n : te->n, e) ||
             store_set_attr_i64(c->t.run, rd->g, "collected", 1, e) || store_commit(c->t.run, e);
    return rc;
}

/* One optimizer step of phase q (its batch b = step - phase_start). */
static void critique_step(Ctx *c, const Phase *ph, const Round *rd, int q, int64_t phase_start, int64_t end) {
    const Config *cfg = c->cfg;
    Trainer *t = &c->t;
    double t0 = util_now();
    int64_t b = t->s.st.step - phase_start;
    int64_t step_in_round = t->s.st.step - rd->start + 1; /* AdamW step within the round */
    double lr = cfg->critique.lr * (b < cfg->critique.warmup_steps ? (double)(b + 1) / cfg->critique.warmup_steps : 1.0);
    double gn, acc;
    int64_t ntok;
    double loss = phase_step(c, ph, rd->r, q, b, lr, step_in_round, &gn, &acc, &ntok);
    if (!isfinite(loss)) {
        if (c->comm->rank == 0)
            log_error("critique loss is %g at step %lld (hint: lower critique.lr or critique.beta)", loss,
                      (long long)t->s.st.step + 1);
        comm_exit(EXIT_RUNTIME);
    }
    trainer_step_done(t, loss, lr, gn, ntok, util_now() - t0);
    int64_t pend = phase_start + ph->steps;
    if (t->s.st.step % cfg->run.log_every == 0 || t->s.st.step == pend)
        log_info("step %6lld/%lld  round %d %s  loss %.4f  pair accuracy %.2f  gnorm %.3f  %.2f s/step",
                 (long long)t->s.st.step, (long long)end, rd->r, ph->name, loss, acc, gn, t->step_avg);
    if (cfg->critique.ckpt_every > 0 && (t->s.st.step - rd->start) % cfg->critique.ckpt_every == 0)
        trainer_checkpoint(t);
}

/* Collective: the optimizer steps of the round's phases (from the current step).
 * Returns STATUS_OK or STATUS_STOPPED. */
static Status train_round(Ctx *c, Round *rd) {
    const Config *cfg = c->cfg;
    Trainer *t = &c->t;
    int P = cfg->critique.batch_pairs;
    Phase ph[2];
    int64_t end = rd->start;
    for (int q = 0; q < rd->ob->n_phases; q++) {
        const PhaseSpec *sp = &rd->ob->phase[q];
        ItemSet *set = &rd->set[sp->set];
        ph[q] = (Phase){sp->obj, set, set->n ? (int64_t)ceil(cfg->critique.epochs * (double)set->n / P) : 0, sp->name};
        end += ph[q].steps;
    }
    if (t->s.st.step == rd->start) { /* a fresh optimizer at the start of the round */
        memset(t->opt.m, 0, (t->opt.hi - t->opt.lo) * sizeof(float));
        memset(t->opt.v, 0, (t->opt.hi - t->opt.lo) * sizeof(float));
    }
    model_alloc_acts(&t->s.model, cfg->critique.micro_rows, c->T);
    int64_t phase_start = rd->start;
    for (int q = 0; q < rd->ob->n_phases; q++) {
        int64_t pend = phase_start + ph[q].steps;
        if (ph[q].steps && t->s.st.step < pend)
            log_info("round %d phase %s: steps %lld..%lld over %lld %s", rd->r, ph[q].name,
                     (long long)(t->s.st.step > phase_start ? t->s.st.step : phase_start) + 1, (long long)pend,
                     (long long)ph[q].set->n, ph[q].set->b ? "pairs" : "sequences");
        if (t->s.st.step < phase_start) t->s.st.step = phase_start; /* cannot happen: resume inside an earlier phase */
        while (t->s.st.step < pend) {
            if (trainer_should_stop(t)) return STATUS_STOPPED;
            critique_step(c, &ph[q], rd, q, phase_start, end);
        }
        phase_start = pend;
    }
    return STATUS_OK;
}

/* Collective: round r from where it stands (collected or not, complete or not). */
static Status run_round(Ctx *c, int r, LlmClient *client) {
    const Config *cfg = c->cfg;
    Round rd = {.r = r, .ob = objective_of(cfg->critique.objective)};
    snprintf(rd.g, sizeof rd.g, "/rounds/%d", r);
    /* where the round starts and whether its data are collected */
    int64_t info[3] = {-1, 0, 0}; /* start step, collected, complete */
    if (c->comm->rank == 0 && store_exists(c->t.run, rd.g)) {
        store_get_attr_i64(c->t.run, rd.g, "start_step", &info[0], NULL);
        store_get_attr_i64(c->t.run, rd.g, "collected", &info[1], NULL);
        store_get_attr_i64(c->t.run, rd.g, "complete", &info[2], NULL);
    }
    comm_bcast_i64(info, 3);
    if (info[2]) return STATUS_OK;
    rd.start = info[0] >= 0 ? info[0] : c->t.s.st.step;
    rd.m = round_inputs(c, r, &rd.in);
    Err e = {{0}};
    if (!info[1]) {
        Status cs = collect(c, &rd, client);
        if (cs != STATUS_OK) {
            round_free(&rd);
            return cs;
        }
        prepare_sets(c, &rd, 1);
        int rc = c->comm->rank == 0 ? store_round(c, &rd, &e) : 0;
        comm_check_all(rc, e.msg, EXIT_RUNTIME);
    } else {
        int rc = c->comm->rank == 0 ? reread(c, &rd, &e) : 0;
        comm_check_all(rc, e.msg, EXIT_RUNTIME);
        prepare_sets(c, &rd, 0);
        log_info("round %d: resuming (%lld pairs) at step %lld", r, (long long)rd.set[SET_STUDENT].n,
                 (long long)c->t.s.st.step);
    }
    Status code = train_round(c, &rd);
    trainer_checkpoint(&c->t);
    if (code == STATUS_OK && c->comm->rank == 0) {
        int64_t end = c->t.s.st.step;
        if (store_set_attr_i64(c->t.run, rd.g, "end_step", end, &e) ||
            store_set_attr_i64(c->t.run, rd.g, "complete", 1, &e) || store_commit(c->t.run, &e))
            DIE("%s", e.msg);
        log_info("round %d complete at step %lld", r, (long long)end);
    }
    round_free(&rd);
    return code;
}

#define CRITIC_USAGE "attributes: usage of this role (critique and evaluation)"

/* Collective: evaluates the current model into root of run.h5, lending it
 * the student, run.h5, the cache and the critic's session. */
static Status eval_between(Ctx *c, LlmSession *critic, LlmCache *cache, const char *root) {
    trainer_flush(&c->t);
    EvalShared sh = {.student = &c->t.s, .run = c->t.run, .cache = cache, .critic = critic};
    return eval_run(c->cfg, c->comm, root, &sh);
}

/* Rank 0: the training inputs and the teacher's paraphrases from data.path. */
static int read_inputs(Ctx *c, Err *e) {
    StoreFile *d = store_open(c->cfg->data.path, 0, e);
    if (!d) return -1;
    int rc = 0;
    c->inputs = store_read_strings(d, "/inputs/train", &c->n_inputs, e);
    int nd;
    int64_t dims[4], np = 0;
    if (!c->inputs) rc = -1;
    else if (store_dims(d, "/teacher/paraphrases", &nd, dims, e) != 0) rc = err_suffix(e, " (hint: run hdistill teach first)");
    else {
        c->teacher_n = dims[1];
        c->teacher = store_read_strings(d, "/teacher/paraphrases", &np, e);
        if (!c->teacher) rc = -1;
    }
    store_close(d, NULL);
    return rc;
}

/* Collective: inputs, run.h5, the student and optimizer, the critic. */
static void critique_open(Ctx *c, LlmSession *critic, LlmCache **cache) {
    const Config *cfg = c->cfg;
    Err e = {{0}};
    int rc = 0;
    if (c->comm->rank == 0) {
        rc = read_inputs(c, &e);
        if (rc == 0 && trainer_open_run(&c->t, &e) != 0) rc = err_suffix(&e, " (hint: the student must be trained first)");
    }
    comm_check(rc, e.msg, EXIT_USAGE);
    comm_bcast_strings(&c->inputs, &c->n_inputs);
    comm_bcast_i64(&c->teacher_n, 1);
    if (student_load(&c->t.s, cfg, c->comm, &c->t.opt, 1, &e) != 0) comm_check(1, e.msg, EXIT_USAGE);
    c->t.opt.weight_decay = 0.0; /* as student_load leaves it: the preference phase trains without decay */
    c->t.last_ckpt = c->t.s.st.step;
    trainer_start_sync(&c->t);
    if (c->comm->rank == 0) {
        /* run.h5 metrics: exactly the checkpoint's history */
        if (store_delete(c->t.run, "/metrics/train", &e) != 0 ||
            metrics_append_to(c->t.run, "/metrics/train", &c->t.s.log, 0, &e) != 0)
            rc = -1;
        c->t.log_flushed = c->t.s.log.n;
        int need_critic = cfg->critique.objective != OBJECTIVE_FT;
        if (rc == 0 && need_critic) rc = (*cache = session_cache_open(cfg, SESSION_RUN, &e)) ? 0 : -1;
        if (rc == 0 && need_critic) rc = session_open(critic, cfg, &cfg->critic, "critic", *cache, &e);
    }
    comm_check(rc, e.msg, EXIT_USAGE);
}

/* Collective: 1 if the model after round r is to be evaluated now: only
 * while it is the newest checkpoint (a resumed run that is past round r must
 * not evaluate a later model into /rounds/r/eval), and never twice. */
static int round_eval_wanted(Ctx *c, int r, const char *root) {
    int64_t want = 0;
    if (c->comm->rank == 0) {
        char g[48];
        snprintf(g, sizeof g, "/rounds/%d", r);
        int64_t done = 0, end = -1;
        if (store_exists(c->t.run, root)) store_get_attr_i64(c->t.run, root, "complete", &done, NULL);
        store_get_attr_i64(c->t.run, g, "end_step", &end, NULL);
        want = !done && end == c->t.s.st.step;
        if (!done && end != c->t.s.st.step)
            log_warn("round %d: not evaluated: its model (step %lld) is no longer the newest checkpoint "
                     "(step %lld)",
                     r, (long long)end, (long long)c->t.s.st.step);
    }
    comm_bcast_i64(&want, 1);
    return (int)want;
}

int critique_main(const Config *cfg, const Comm *comm, int argc, char **argv) {
    if (cfg->critique.rounds == 0) return EXIT_OK;
    Ctx C;
    memset(&C, 0, sizeof C);
    Ctx *c = &C;
    c->cfg = cfg, c->comm = comm, c->T = cfg->train.seq_len;
    trainer_lock_run(cfg, comm);
    trainer_init(&c->t, cfg, comm, argc, argv);
    LlmSession critic = {0};
    LlmCache *cache = NULL;
    critique_open(c, &critic, &cache);
    Status code = STATUS_OK;
    if (cfg->critique.eval_each_round) {
        /* the model after SFT, as the first point of the win-or-tie rate by round (before round 0 starts) */
        int64_t fresh = comm->rank == 0 ? !store_exists(c->t.run, "/rounds/0") : 0;
        comm_bcast_i64(&fresh, 1);
        if (fresh) code = eval_between(c, &critic, cache, "/sft/eval");
    }
    for (int r = 0; r < cfg->critique.rounds && code == STATUS_OK; r++) {
        code = run_round(c, r, critic.client);
        char root[64];
        snprintf(root, sizeof root, "/rounds/%d/eval", r);
        if (code == STATUS_OK && cfg->critique.eval_each_round && round_eval_wanted(c, r, root))
            code = eval_between(c, &critic, cache, root);
    }
    if (comm->rank == 0 && critic.client) {
        char ub[512];
        llm_usage_format(llm_usage(critic.client), ub, sizeof ub);
        log_info("critique: critic usage: %s", ub);
        Err e2;
        if (session_record_usage(&critic, c->t.run, "/usage/critic", CRITIC_USAGE, &e2)) log_warn("%s", e2.msg);
    }
    if (comm->rank == 0 && (code == STATUS_FAILED || code == STATUS_BUDGET)) {
        fflush(stdout);
        fprintf(stderr, "error: %s\n", c->err.msg); /* the last line: why (comm_check's form) */
    }
    trainer_log_comm(&c->t);
    trainer_close_run(&c->t);
    session_close(&critic);
    cache_close(cache);
    store_free_strings(c->inputs, c->n_inputs);
    if (c->teacher) store_free_strings(c->teacher, c->n_inputs * c->teacher_n);
    trainer_free(&c->t);
    return status_exit_code(code, EXIT_RUNTIME);
}

/* Rank 0: the critic's requests for `todo` rounds to collect, estimated with the teacher's first two
 * paraphrases of each input in place of the student's pair (not sampled yet), logged (session.h). */
static int log_critic_estimate(Ctx *c, int todo, Err *e) {
    const Config *cfg = c->cfg;
    const ObjectiveSpec *ob = objective_of(cfg->critique.objective);
    int per = ob->sample + ob->teacher_pairs; /* judged pair sets per round */
    if (per == 0 || todo == 0 || c->n_inputs == 0 || c->teacher_n == 0) return 0;
    int64_t *in, m = round_inputs(c, 0, &in);
    ChatRequest *reqs = xcalloc((size_t)(2 * m + 1), sizeof(ChatRequest));
    int64_t N = c->teacher_n;
    for (int64_t i = 0; i < m; i++) {
        const char *a = c->teacher[in[i] * N], *b = c->teacher[in[i] * N + (N > 1)];
        critic_request(&cfg->critic, c->inputs[in[i]], a, b, &reqs[2 * i]);
        critic_request(&cfg->critic, c->inputs[in[i]], b, a, &reqs[2 * i + 1]);
    }
    LlmSession s;
    int rc = session_open_plan(&s, cfg, &cfg->critic, "critic", NULL, e);
    if (rc == 0) session_log_estimate(&s, cfg, reqs, (size_t)(2 * m), (double)per * todo, 1);
    session_close(&s);
    for (int64_t i = 0; i < 2 * m; i++) chat_request_free(&reqs[i]);
    free(reqs), free(in);
    return rc;
}

/* Rank 0: how many of the rounds are still to collect, by run.h5 (all of them without one). */
static int rounds_to_collect(const Config *cfg, StoreFile *run, int print) {
    int todo = 0;
    for (int r = 0; r < cfg->critique.rounds; r++) {
        char g[48];
        int64_t complete = 0, collected = 0;
        snprintf(g, sizeof g, "/rounds/%d", r);
        if (run && store_exists(run, g)) {
            store_get_attr_i64(run, g, "complete", &complete, NULL);
            store_get_attr_i64(run, g, "collected", &collected, NULL);
        }
        if (print) log_info("  round %d: %s", r, complete ? "complete" : collected ? "collected, training to finish" : "to do");
        todo += !collected;
    }
    return todo;
}

int critique_plan_requests(const Config *cfg, const Comm *comm) {
    Err e = {{0}};
    int rc = 0;
    if (comm->rank == 0 && cfg->critique.rounds > 0) {
        Ctx c;
        memset(&c, 0, sizeof c);
        c.cfg = cfg;
        rc = read_inputs(&c, &e);
        char *rp = xasprintf("%s/run.h5", cfg->run.dir);
        StoreFile *run = rc == 0 && util_file_exists(rp) ? store_open(rp, 0, NULL) : NULL;
        if (rc == 0) rc = log_critic_estimate(&c, rounds_to_collect(cfg, run, 0), &e);
        store_close(run, NULL);
        free(rp);
        store_free_strings(c.inputs, c.n_inputs);
        if (c.teacher) store_free_strings(c.teacher, c.n_inputs * c.teacher_n);
    }
    comm_check(rc, e.msg, EXIT_USAGE);
    return EXIT_OK;
}

/* rank 0 of critique_plan: the rounds' state and the request bound */
static int plan_rounds(const Config *cfg, Err *e) {
    Ctx c;
    memset(&c, 0, sizeof c);
    c.cfg = cfg;
    if (read_inputs(&c, e) != 0) return -1;
    char *dir = xasprintf("%s/ckpt", cfg->run.dir), *rp = xasprintf("%s/run.h5", cfg->run.dir);
    CkptMeta meta;
    int rc = ckpt_find_newest(dir, 0, -1, &meta) ? 0 : err_set(e, "%s: no readable checkpoint (hint: train the student first)", dir);
    StoreFile *run = rc == 0 ? store_open(rp, 0, e) : NULL;
    if (rc == 0 && !run) rc = err_suffix(e, " (hint: the student must be trained first)");
    const ObjectiveSpec *ob = objective_of(cfg->critique.objective);
    int64_t m = cfg->critique.inputs > 0 && cfg->critique.inputs < c.n_inputs ? cfg->critique.inputs : c.n_inputs;
    int todo = rc == 0 ? rounds_to_collect(cfg, run, 1) : 0;
    if (rc == 0) {
        int64_t per = ob->sample ? 2 * m : 0;
        per += ob->teacher_pairs ? 2 * m : 0;
        log_info("plan: critique.objective %s, %lld of %lld training inputs per round, k=%d, from %s", ob->name,
                 (long long)m, (long long)c.n_inputs, cfg->critique.k, meta.path);
        log_info("  critic: at most %lld requests per round to collect, %lld for the %d rounds left (both orders; "
                 "answers in %s/llm-cache or llm.cache are not asked again)",
                 (long long)per, (long long)per * todo, todo, cfg->run.dir);
        rc = log_critic_estimate(&c, todo, e);
    }
    if (rc == 0) {
        log_info("dry run: nothing was sampled, sent, trained or written");
    }
    store_close(run, NULL);
    ckpt_meta_free(&meta);
    free(dir), free(rp);
    store_free_strings(c.inputs, c.n_inputs);
    if (c.teacher) store_free_strings(c.teacher, c.n_inputs * c.teacher_n);
    return rc;
}

int critique_plan(const Config *cfg, const Comm *comm) {
    Err e = {{0}};
    int rc = comm->rank == 0 ? plan_rounds(cfg, &e) : 0;
    comm_check(rc, e.msg, EXIT_USAGE);
    return EXIT_OK;
}

/* evaluate -- win-or-tie rate of the student vs the teacher; see
 * include/evaluate.h. */
#include "stages/eval.h"

#include <cJSON.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/text.h"
#include "engine/judgestats.h"
#include "engine/pairs.h"
#include "io/prov.h"
#include "llm/critic.h"
#include "stages/session.h"
#include "io/store.h"
#include "stages/student.h"
#include "stages/trainer.h"

typedef struct {
    const char *name;
    int64_t n;
    char **input, **ref;
} Split;

static int load_split(StoreFile *d, const char *name, int64_t limit, Split *s, Err *e) {
    memset(s, 0, sizeof *s);
    s->name = name;
    char a[64], b[64], c[64];
    snprintf(a, sizeof a, "/inputs/%s", name);
    snprintf(b, sizeof b, "/teacher/%s/paraphrases", name);
    snprintf(c, sizeof c, "/teacher/%s/refused", name);
    int64_t ni = 0, np = 0;
    int nd;
    int64_t dims[4];
    char **in = store_read_strings(d, a, &ni, e);
    if (!in) return -1;
    if (store_dims(d, b, &nd, dims, e) != 0) {
        store_free_strings(in, ni);
        return err_suffix(e, " (hint: teach.splits must include %s)", name);
    }
    char **para = store_read_strings(d, b, &np, e);
    if (!para) {
        store_free_strings(in, ni);
        return -1;
    }
    s->input = xcalloc((size_t)(ni + 1), sizeof(char *));
    s->ref = xcalloc((size_t)(ni + 1), sizeof(char *));
    for (int64_t i = 0; i < ni && (limit <= 0 || s->n < limit); i++) {
        const char *ref = NULL;
        for (int64_t q = 0; q < dims[1] && !ref; q++)
            if (para[i * dims[1] + q][0]) ref = para[i * dims[1] + q];
        if (!ref) continue; /* refused or empty */
        s->input[s->n] = xstrdup(in[i]);
        s->ref[s->n] = xstrdup(ref);
        s->n++;
    }
    store_free_strings(in, ni);
    store_free_strings(para, np);
    return 0;
}

typedef struct {
    char *name;
    const EndpointConfig *ep;
    LlmSession own;      /* opened by this evaluation */
    LlmSession *ses;     /* &own, or the caller's critic session */
} Judge;

/* The judge's verdicts on split sp, stored under root/<split>/<judge>. */
static int store_verdicts(StoreFile *run, const char *root, const Judge *jg, const Split *sp, const CriticJudgement *j,
                          const int *v, const double *p, const JudgeStats *st, const int64_t src[3], Err *e) {
    int64_t n = sp->n;
    double *pab = xmalloc(sizeof(double) * (size_t)(n + 1)), *pba = xmalloc(sizeof(double) * (size_t)(n + 1));
    const char **rab = xcalloc((size_t)(n + 1), sizeof(char *)), **rba = xcalloc((size_t)(n + 1), sizeof(char *));
    for (int64_t i = 0; i < n; i++) {
        pab[i] = j[i].p_ab, pba[i] = j[i].p_ba;
        rab[i] = j[i].raw_ab, rba[i] = j[i].raw_ba;
    }
    char g[192], obj[256];
    snprintf(g, sizeof g, "%s/%s/%s", root, sp->name, jg->name);
#define O(x) (snprintf(obj, sizeof obj, "%s/%s", g, x), obj)
    int rc = store_write_f64(run, O("p_ab"), pab, 1, &n, "P(student better), student as option 1; NaN: no verdict", e) ||
             store_write_f64(run, O("p_ba"), pba, 1, &n, "P(student better), student as option 2; NaN: no verdict", e) ||
             store_write_f64(run, O("p"), p, 1, &n, "P(student better), mean of the orders with a verdict; NaN: unjudged", e) ||
             store_write_i32(run, O("verdict"), v, 1, &n,
                             "1 win, 0 tie, -1 loss (student vs reference), -2 unjudged (no usable verdict in either "
                             "order; left out of every rate)",
                             e) ||
             store_write_strings(run, O("raw_ab"), rab, 1, &n, "judge's answer, student first", e) ||
             store_write_strings(run, O("raw_ba"), rba, 1, &n, "judge's answer, reference first", e);
#undef O
    struct { const char *k; double v; } fa[] = {
        {"wtr", st->wtr}, {"wtr_ci_low", st->ci_low}, {"wtr_ci_high", st->ci_high}, {"lc_winrate", st->lc_winrate},
        {"lc_ci_low", st->lc_low}, {"lc_ci_high", st->lc_high}, {"position_bias", st->position_bias},
        {"position_consistency", st->position_consistency}, {"length_bias", st->length_bias},
        {"student_words", st->student_words}, {"reference_words", st->reference_words}};
    struct { const char *k; int64_t v; } ia[] = {
        {"n", st->n}, {"judged", st->judged}, {"unjudged", st->unjudged}, {"wins", st->wins}, {"ties", st->ties},
        {"losses", st->losses}, {"p_from_logprobs", src[CRITIC_SRC_LOGPROBS]}, {"p_from_text", src[CRITIC_SRC_TEXT]},
        {"p_from_none", src[CRITIC_SRC_NONE]}};
    for (size_t k = 0; rc == 0 && k < sizeof fa / sizeof fa[0]; k++) rc = store_set_attr_f64(run, g, fa[k].k, fa[k].v, e);
    for (size_t k = 0; rc == 0 && k < sizeof ia / sizeof ia[0]; k++) rc = store_set_attr_i64(run, g, ia[k].k, ia[k].v, e);
    free(pab), free(pba), free(rab), free(rba);
    return rc;
}

/* where the preferences came from (per order): log-probs, the written answer, none; a warning when
 * log-probs were asked for and some came as text only */
static void count_sources(const Judge *jg, const Split *sp, const CriticJudgement *j, int64_t n, int64_t src[3]) {
    src[0] = src[1] = src[2] = 0;
    for (int64_t i = 0; i < n; i++) src[j[i].src_ab]++, src[j[i].src_ba]++;
    if (jg->ep->logprobs && src[CRITIC_SRC_TEXT] > 0)
        log_warn("eval %s: %s: log-probabilities were asked for but %lld of %lld answers came without them; those "
                 "preferences are the written answer (0 or 1), not a probability (hint: does the endpoint support "
                 "logprobs/top_logprobs?)",
                 sp->name, jg->name, (long long)src[CRITIC_SRC_TEXT], (long long)(2 * n));
}

/* Rank 0: judge jg on split sp (student outputs `student`), statistics, storage; v and p get the
 * verdicts and preferences (for the agreement between judges). */
static Status judge_split(const Config *cfg, StoreFile *run, const char *root, Judge *jg, const Split *sp, char **student,
                          Err *e, JudgeStats *st, int *v, double *p) {
    int64_t n = sp->n;
    CriticItem *items = xcalloc((size_t)(n + 1), sizeof(CriticItem));
    for (int64_t i = 0; i < n; i++) items[i] = (CriticItem){sp->input[i], student[i], sp->ref[i]};
    CriticJudgement *j = xcalloc((size_t)(n + 1), sizeof(CriticJudgement));
    char label[96];
    snprintf(label, sizeof label, "eval %s: %s", sp->name, jg->name);
    critic_judge(jg->ses->client, jg->ep, items, (size_t)n, j, label);
    int *ws = xmalloc(sizeof(int) * (size_t)(n + 1)), *wr = xmalloc(sizeof(int) * (size_t)(n + 1));
    double *pab = xmalloc(sizeof(double) * (size_t)(n + 1)), *pba = xmalloc(sizeof(double) * (size_t)(n + 1));
    int stopped;
    Status rc = STATUS_OK;
    LlmStatus first_fail;
    int64_t failed = critic_failures(j, (size_t)n, &stopped, &first_fail), src[3];
    for (int64_t i = 0; i < n; i++) {
        pab[i] = j[i].p_ab, pba[i] = j[i].p_ba;
        ws[i] = text_word_count(student[i]), wr[i] = text_word_count(sp->ref[i]);
    }
    if (stopped) {
        rc = STATUS_STOPPED;
        log_info("eval %s: %s: stopped while judging (answers so far are cached)", sp->name, jg->name);
    } else if (failed) {
        rc = STATUS_FAILED;
        err_set(e, "eval %s: judge %s: %lld of %lld requests failed after their retries (first: %s; usage line "
                   "above); run again to retry them: the answers so far are cached",
                sp->name, jg->name, (long long)failed, (long long)(2 * n), llm_status_name(first_fail));
    }
    if (rc == STATUS_OK) {
        judge_stats(pab, pba, ws, wr, n, cfg->eval.tie_margin, cfg->eval.bootstrap,
                    rng_derive((uint64_t)cfg->train.seed, 0xb007, 0), st, v, p);
        count_sources(jg, sp, j, n, src);
        if (st->unjudged > 0)
            log_warn("eval %s: %s gave no usable verdict for %lld of %lld inputs: they are left out of the rates "
                     "(unjudged, never ties)",
                     sp->name, jg->name, (long long)st->unjudged, (long long)n);
        if (n > 0 && st->judged == 0) {
            rc = STATUS_FAILED;
            err_set(e, "eval %s: judge %s gave no usable verdict for any of the %lld inputs: there is no win rate "
                       "(see the raw answers in run.h5 %s/%s/%s/raw_ab; hint: max_tokens too small for a reasoning "
                       "model, or an answer format the critic prompt does not ask for)",
                    sp->name, jg->name, (long long)n, root, sp->name, jg->name);
        }
        if (store_verdicts(run, root, jg, sp, j, v, p, st, src, e) != 0) rc = STATUS_FAILED;
    }
    for (int64_t i = 0; i < n; i++) critic_judgement_free(&j[i]);
    free(pab), free(pba), free(ws), free(wr), free(items), free(j);
    return rc;
}

/* Rank 0: the agreement of every pair of judges on a split (Cohen's kappa on verdicts, Kendall's tau on
 * preferences), stored under root/<split>/agreement/<a>__<b> and printed. */
static int store_agreement(StoreFile *run, const char *root, const Split *sp, const Judge *jg, int nj, int *const *v,
                           double *const *p, Err *e) {
    int rc = 0;
    for (int a = 0; a < nj && rc == 0; a++)
        for (int b = a + 1; b < nj && rc == 0; b++) {
            double kappa = judge_kappa(v[a], v[b], sp->n), tau = judge_kendall_tau(p[a], p[b], sp->n);
            int64_t both = 0, one = 1;
            for (int64_t i = 0; i < sp->n; i++) both += v[a][i] != JUDGE_UNJUDGED && v[b][i] != JUDGE_UNJUDGED;
            char g[256], obj[300];
            snprintf(g, sizeof g, "%s/%s/agreement/%s__%s", root, sp->name, jg[a].name, jg[b].name);
            snprintf(obj, sizeof obj, "%s/n_both", g);
            rc = store_write_i64(run, obj, &both, 1, &one, "inputs both judges judged (kappa and tau are over these)", e) ||
                 store_set_attr_f64(run, g, "kappa", kappa, e) || store_set_attr_f64(run, g, "kendall_tau", tau, e);
            log_info("eval %s: %s vs %s on %lld inputs both judged: Cohen's kappa %.3f (verdicts), Kendall's tau %.3f "
                     "(preferences)",
                     sp->name, jg[a].name, jg[b].name, (long long)both, kappa, tau);
        }
    return rc;
}

/* Rank 0: what an evaluation reads: run.h5 (unless lent), whether root
 * already holds this step's complete evaluation, the splits and judges. */
typedef struct {
    StoreFile *run;
    int own_run;
    int64_t done;
    Split sp[2];
    int nsp;
    JudgeConfig *extra;
    int n_extra;
} EvalInputs;

static int eval_inputs(const Config *cfg, const char *root, int64_t step, const EvalShared *sh, EvalInputs *in,
                       Err *e) {
    memset(in, 0, sizeof *in);
    int rc = 0;
    if (sh && sh->run) {
        in->run = sh->run;
    } else {
        char *rp = xasprintf("%s/run.h5", cfg->run.dir);
        in->run = store_open_staged(rp, 0, e);
        in->own_run = 1;
        free(rp);
        if (!in->run) return -1;
    }
    int64_t at = -1;
    if (store_exists(in->run, root) && store_get_attr_i64(in->run, root, "step", &at, NULL) == 0 && at == step)
        store_get_attr_i64(in->run, root, "complete", &in->done, NULL);
    if (in->done) return 0;
    StoreFile *d = store_open(cfg->data.path, 0, e);
    if (!d) return -1;
    const char *names[2] = {"eval", "ood"};
    const unsigned bits[2] = {EVAL_SPLIT_EVAL, EVAL_SPLIT_OOD};
    for (int k = 0; k < 2 && rc == 0; k++)
        if (cfg->eval.splits & bits[k]) {
            if (load_split(d, names[k], cfg->eval.limit, &in->sp[in->nsp], e) != 0) rc = -1;
            else in->nsp++;
        }
    store_close(d, NULL);
    if (rc == 0 && cfg->eval.judges[0] && config_load_judges(cfg, cfg->eval.judges, &in->extra, &in->n_extra, e) != 0)
        rc = -1;
    return rc;
}

/* Rank 0: the judges (the critic first), each with a session: the caller's
 * critic when lent, else opened over the run's cache.  -1 with e set. */
static int open_judges(const Config *cfg, const EvalInputs *in, const EvalShared *sh, LlmCache **cache, Judge **out,
                       int *nj, Err *e) {
    *nj = 1 + in->n_extra;
    Judge *jg = xcalloc((size_t)*nj, sizeof(Judge));
    *out = jg;
    jg[0] = (Judge){.name = "critic", .ep = &cfg->critic};
    for (int q = 0; q < in->n_extra; q++) jg[1 + q] = (Judge){.name = in->extra[q].name, .ep = &in->extra[q].ep};
    if (sh && sh->critic && sh->critic->client) jg[0].ses = sh->critic;
    *cache = sh && sh->cache ? sh->cache : NULL;
    for (int q = 0; q < *nj; q++) {
        if (jg[q].ses) continue;
        if (!*cache && !(*cache = session_cache_open(cfg, SESSION_RUN, e))) return -1;
        if (session_open(&jg[q].own, cfg, jg[q].ep, jg[q].name, *cache, e) != 0) return -1;
        jg[q].ses = &jg[q].own;
    }
    return 0;
}

/* Rank 0: the outputs and verdicts of every split, the table, root's attributes. */
static Status judge_all(const Config *cfg, const char *root, int64_t step, EvalInputs *in, Judge *jg, int nj, char ***outs,
                     Err *e) {
    StoreFile *run = in->run;
    char info[160];
    snprintf(info, sizeof info, "%s/info", root);
    int rc = store_delete(run, root, e) || store_write_string(run, info, "see the attributes of this group", NULL, e) ||
             store_set_attr_i64(run, root, "step", step, e) ||
             store_set_attr_str(run, root, "objective",
                                cfg->critique.rounds && strncmp(root, "/sft/", 5) ? config_enum_name("critique.objective", cfg->critique.objective) : "sft", e) ||
             store_set_attr_i64(run, root, "seed", cfg->train.seed, e);
    if (rc) return STATUS_FAILED;
    printf("\n| split | judge | judged/n | win-or-tie %% | 95%% CI | LC win %% | 95%% CI | wins/ties/losses | position "
           "bias | consistency | length bias | words student/ref |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    Status st_all = STATUS_OK;
    int **v = xcalloc((size_t)nj, sizeof(int *));
    double **p = xcalloc((size_t)nj, sizeof(double *));
    for (int k = 0; k < in->nsp && st_all == STATUS_OK; k++) {
        Split *sp = &in->sp[k];
        char g[128], obj[192];
        snprintf(g, sizeof g, "%s/%s", root, sp->name);
        int64_t n = sp->n;
        snprintf(obj, sizeof obj, "%s/input", g);
        rc = store_write_strings(run, obj, (const char *const *)sp->input, 1, &n, "literal input", e);
        snprintf(obj, sizeof obj, "%s/student", g);
        if (rc == 0) rc = store_write_strings(run, obj, (const char *const *)outs[k], 1, &n, "the student's output (beam search)", e);
        snprintf(obj, sizeof obj, "%s/reference", g);
        if (rc == 0) rc = store_write_strings(run, obj, (const char *const *)sp->ref, 1, &n, "the teacher's reference", e);
        if (rc) st_all = STATUS_FAILED;
        for (int q = 0; q < nj && st_all == STATUS_OK; q++) {
            JudgeStats st;
            v[q] = xrealloc(v[q], sizeof(int) * (size_t)(n + 1));
            p[q] = xrealloc(p[q], sizeof(double) * (size_t)(n + 1));
            st_all = judge_split(cfg, run, root, &jg[q], sp, outs[k], e, &st, v[q], p[q]);
            if (st_all == STATUS_OK)
                printf("| %s | %s | %lld/%lld | %.1f | [%.1f, %.1f] | %.1f | [%.1f, %.1f] | %lld/%lld/%lld | %.3f | %.3f | "
                       "%.3f | %.1f/%.1f |\n",
                       sp->name, jg[q].name, (long long)st.judged, (long long)st.n, st.wtr, st.ci_low, st.ci_high,
                       st.lc_winrate, st.lc_low, st.lc_high, (long long)st.wins, (long long)st.ties, (long long)st.losses,
                       st.position_bias, st.position_consistency, st.length_bias, st.student_words, st.reference_words);
        }
        if (st_all == STATUS_OK && nj > 1 && store_agreement(run, root, sp, jg, nj, v, p, e) != 0) st_all = STATUS_FAILED;
    }
    for (int q = 0; q < nj; q++) free(v[q]), free(p[q]);
    free(v), free(p);
    fflush(stdout);
    if (st_all == STATUS_OK && (store_set_attr_i64(run, root, "complete", 1, e) || store_commit(run, e)))
        st_all = STATUS_FAILED;
    return st_all;
}

/* Rank 0: records the usage of the sessions this evaluation opened, closes them. */
static void close_judges(Judge *jg, int nj, StoreFile *run, int record) {
    for (int q = 0; q < nj && jg; q++) {
        if (jg[q].ses != &jg[q].own) continue;
        char obj[160];
        Err e;
        snprintf(obj, sizeof obj, "/usage/%s", jg[q].name);
        if (record && run && jg[q].own.client &&
            session_record_usage(&jg[q].own, run, obj, "attributes: usage of this role (critique and evaluation)", &e))
            log_warn("%s", e.msg);
        session_close(&jg[q].own);
    }
    free(jg);
}

int eval_main(const Config *cfg, const Comm *comm, int argc, char **argv) {
    (void)argc, (void)argv;
    return status_exit_code(eval_run(cfg, comm, "/eval", NULL), EXIT_RUNTIME);
}

/* Collective: beam-search outputs of every split (rank 0 gets them). */
static void generate_outputs(const Config *cfg, const Comm *comm, const Student *s, Split *sp, int64_t ns, char ***outs) {
    GenOptions go;
    gen_options_init(&go);
    go.mode = GEN_BEAM;
    go.beam = cfg->eval.beam;
    go.k = 1;
    go.max_new = cfg->eval.max_new;
    for (int k = 0; k < ns; k++) {
        if (comm->rank != 0) memset(&sp[k], 0, sizeof sp[k]);
        comm_bcast_strings(&sp[k].input, &sp[k].n);
        double t0 = util_now();
        student_generate(s, &go, comm, sp[k].input, (int)sp[k].n, &outs[k], NULL);
        log_info("eval: %lld student outputs (beam %d) in %.1f s", (long long)sp[k].n, go.beam, util_now() - t0);
    }
}

static void free_splits(const Comm *comm, Split *sp, int64_t ns, char ***outs) {
    for (int k = 0; k < ns; k++) {
        if (outs[k])
            for (int64_t i = 0; i < sp[k].n; i++) free(outs[k][i]);
        free(outs[k]);
        for (int64_t i = 0; i < sp[k].n; i++) free(sp[k].input[i]);
        free(sp[k].input);
        if (comm->rank == 0) {
            for (int64_t i = 0; i < sp[k].n; i++) free(sp[k].ref[i]);
            free(sp[k].ref);
        }
    }
}

Status eval_run(const Config *cfg, const Comm *comm, const char *root, const EvalShared *sh) {
    Err e = {{0}};
    Student own;
    const Student *s = sh && sh->student ? sh->student : NULL;
    if (!s) {
        trainer_lock_run(cfg, comm);
        util_install_stop_signals();
        trainer_setup_threads(cfg, comm);
        if (student_load(&own, cfg, comm, NULL, 1, &e) != 0) comm_check(1, e.msg, EXIT_USAGE);
        s = &own;
    }
    EvalInputs in;
    memset(&in, 0, sizeof in);
    int rc = comm->rank == 0 ? eval_inputs(cfg, root, s->st.step, sh, &in, &e) : 0;
    comm_check(rc, e.msg, EXIT_USAGE);
    comm_bcast_i64(&in.done, 1);
    Status code = STATUS_OK;
    if (in.done) {
        log_info("eval: the checkpoint of step %lld is already evaluated (%s)", (long long)s->st.step, root);
    } else {
        int64_t ns = in.nsp;
        comm_bcast_i64(&ns, 1);
        char **outs[2] = {NULL, NULL};
        generate_outputs(cfg, comm, s, in.sp, ns, outs);
        Judge *jg = NULL;
        int nj = 0;
        LlmCache *cache = NULL;
        if (comm->rank == 0) {
            code = open_judges(cfg, &in, sh, &cache, &jg, &nj, &e) == 0 ? STATUS_OK : STATUS_FAILED;
            if (code == STATUS_OK) code = judge_all(cfg, root, s->st.step, &in, jg, nj, outs, &e);
            close_judges(jg, nj, in.run, 1);
            if (cache && !(sh && sh->cache)) cache_close(cache);
        }
        comm_check(comm->rank == 0 && code == STATUS_FAILED, e.msg, EXIT_RUNTIME);
        int64_t cc = code;
        comm_bcast_i64(&cc, 1);
        code = (Status)cc;
        free_splits(comm, in.sp, ns, outs);
    }
    if (comm->rank == 0 && in.own_run && store_close(in.run, &e) != 0) DIE("%s", e.msg);
    config_free_judges(in.extra, in.n_extra);
    if (s == &own) student_free(&own);
    return code;
}

/* rank 0 of eval_plan */
static int plan_eval(const Config *cfg, Err *e) {
    char *dir = xasprintf("%s/ckpt", cfg->run.dir);
    CkptMeta meta;
    int rc = ckpt_find_newest(dir, 0, -1, &meta) ? 0 : err_set(e, "%s: no readable checkpoint (hint: train the student first)", dir);
    free(dir);
    if (rc != 0) return -1;
    int64_t step = ckpt_step_of(meta.path);
    EvalInputs in;
    memset(&in, 0, sizeof in);
    char *rp = xasprintf("%s/run.h5", cfg->run.dir);
    in.run = store_open(rp, 0, e);
    free(rp);
    if (!in.run) rc = -1;
    int64_t at = -1;
    if (rc == 0 && store_exists(in.run, "/eval") && store_get_attr_i64(in.run, "/eval", "step", &at, NULL) == 0 && at == step)
        store_get_attr_i64(in.run, "/eval", "complete", &in.done, NULL);
    store_close(in.run, NULL);
    in.run = NULL;
    if (rc == 0 && in.done) {
        log_info("plan: the newest checkpoint (step %lld) is already evaluated; nothing to do", (long long)step);
    } else if (rc == 0) {
        StoreFile *d = store_open(cfg->data.path, 0, e);
        const char *names[2] = {"eval", "ood"};
        const unsigned bits[2] = {EVAL_SPLIT_EVAL, EVAL_SPLIT_OOD};
        if (!d) rc = -1;
        for (int k = 0; k < 2 && rc == 0; k++)
            if (cfg->eval.splits & bits[k]) rc = load_split(d, names[k], cfg->eval.limit, &in.sp[in.nsp++], e);
        store_close(d, NULL);
        if (rc == 0 && cfg->eval.judges[0]) rc = config_load_judges(cfg, cfg->eval.judges, &in.extra, &in.n_extra, e);
        int64_t n = 0;
        for (int k = 0; k < in.nsp; k++) n += in.sp[k].n;
        if (rc == 0) {
            log_info("plan: evaluate the checkpoint of step %lld (%s) on %lld inputs (beam %d)", (long long)step,
                     meta.path, (long long)n, cfg->eval.beam);
            log_info("  judges: critic%s%d more; at most %lld requests each (both orders; cached answers are not asked "
                     "again)", in.n_extra ? " and " : ", ", in.n_extra, (long long)(2 * n));
            log_info("dry run: nothing was decoded, sent or written");
        }
        for (int k = 0; k < in.nsp; k++) {
            store_free_strings(in.sp[k].input, in.sp[k].n);
            store_free_strings(in.sp[k].ref, in.sp[k].n);
        }
    }
    config_free_judges(in.extra, in.n_extra);
    ckpt_meta_free(&meta);
    return rc;
}

int eval_plan(const Config *cfg, const Comm *comm) {
    Err e = {{0}};
    int rc = comm->rank == 0 ? plan_eval(cfg, &e) : 0;
    comm_check(rc, e.msg, EXIT_USAGE);
    return EXIT_OK;
}

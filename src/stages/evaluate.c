/* evaluate -- win-or-tie rate of the student vs the teacher; see
 * include/evaluate.h. */
#include "stages/evaluate.h"

#include <cJSON.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pairs.h"
#include "io/prov.h"
#include "llm/critic.h"
#include "stages/session.h"
#include "io/store.h"
#include "stages/student.h"
#include "stages/train.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void eval_stats(const double *p_ab, const double *p_ba, const int *ws, const int *wr, int64_t n, double tm,
                int bootstrap, uint64_t seed, EvalStats *o, int *verdict) {
    memset(o, 0, sizeof *o);
    o->n = n;
    int64_t flips = 0, decisive_len = 0, longer_won = 0;
    double sw = 0, rw = 0;
    uint8_t *wt = xcalloc((size_t)(n + 1), 1);
    for (int64_t i = 0; i < n; i++) {
        double a = p_ab[i], b = p_ba[i], p;
        if (!isnan(a) && !isnan(b)) p = 0.5 * (a + b);
        else p = isnan(a) ? b : a;
        int v = pairs_verdict(p, tm);
        if (verdict) verdict[i] = v;
        o->wins += v > 0, o->ties += v == 0, o->losses += v < 0;
        wt[i] = v >= 0;
        int va = pairs_verdict(a, tm), vb = pairs_verdict(b, tm);
        if (va != 0 && vb != 0 && va != vb) flips++;
        if (v != 0 && ws[i] != wr[i]) {
            decisive_len++;
            longer_won += (v > 0) == (ws[i] > wr[i]);
        }
        sw += ws[i], rw += wr[i];
    }
    o->wtr = n ? 100.0 * (double)(o->wins + o->ties) / (double)n : NAN;
    o->position_bias = n ? (double)flips / (double)n : NAN;
    o->length_bias = decisive_len ? (double)longer_won / (double)decisive_len : NAN;
    o->student_words = n ? sw / (double)n : NAN;
    o->reference_words = n ? rw / (double)n : NAN;
    /* percentile bootstrap of the win-or-tie rate */
    if (n > 0 && bootstrap > 0) {
        double *rates = xmalloc(sizeof(double) * (size_t)bootstrap);
        Rng r;
        rng_seed(&r, seed);
        for (int b = 0; b < bootstrap; b++) {
            int64_t k = 0;
            for (int64_t i = 0; i < n; i++) k += wt[rng_below(&r, (uint64_t)n)];
            rates[b] = 100.0 * (double)k / (double)n;
        }
        qsort(rates, (size_t)bootstrap, sizeof(double), cmp_double);
        o->ci_low = rates[(int)floor(0.025 * (bootstrap - 1))];
        o->ci_high = rates[(int)ceil(0.975 * (bootstrap - 1))];
        free(rates);
    } else {
        o->ci_low = o->ci_high = NAN;
    }
    free(wt);
}

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
} Judge;

static int judge_split(const Config *cfg, StoreFile *run, const char *root, const Judge *jg, const Split *sp,
                       char **student, Err *e, EvalStats *st) {
    LlmCache *cache = session_cache_open(cfg, SESSION_RUN, e);
    if (!cache) return -1;
    LlmSession ses;
    int rc = session_open(&ses, cfg, jg->ep, jg->name, cache, e);
    if (rc) {
        cache_close(cache);
        return rc;
    }
    LlmClient *client = ses.client;
    int64_t n = sp->n;
    CriticItem *items = xcalloc((size_t)(n + 1), sizeof(CriticItem));
    for (int64_t i = 0; i < n; i++) items[i] = (CriticItem){sp->input[i], student[i], sp->ref[i]};
    CriticJudgement *j = xcalloc((size_t)(n + 1), sizeof(CriticJudgement));
    char label[96];
    snprintf(label, sizeof label, "eval %s: %s", sp->name, jg->name);
    critic_judge(client, jg->ep, items, (size_t)n, j, label);
    double *pab = xmalloc(sizeof(double) * (size_t)(n + 1)), *pba = xmalloc(sizeof(double) * (size_t)(n + 1));
    double *p = xmalloc(sizeof(double) * (size_t)(n + 1));
    int *ws = xmalloc(sizeof(int) * (size_t)(n + 1)), *wr = xmalloc(sizeof(int) * (size_t)(n + 1));
    int *v = xmalloc(sizeof(int) * (size_t)(n + 1));
    char **rab = xcalloc((size_t)(n + 1), sizeof(char *)), **rba = xcalloc((size_t)(n + 1), sizeof(char *));
    int64_t unjudged = 0;
    int stopped;
    LlmStatus first_fail;
    int64_t failed = critic_failures(j, (size_t)n, &stopped, &first_fail);
    for (int64_t i = 0; i < n; i++) {
        pab[i] = j[i].p_ab, pba[i] = j[i].p_ba, p[i] = j[i].p;
        ws[i] = pairs_word_count(student[i]), wr[i] = pairs_word_count(sp->ref[i]);
        rab[i] = j[i].raw_ab, rba[i] = j[i].raw_ba;
        unjudged += isnan(j[i].p);
    }
    if (stopped) rc = err_set(e, "stopped while judging (answers so far are cached)");
    else if (failed)
        rc = err_set(e, "eval %s: judge %s: %lld of %lld requests failed after their retries (first: %s; usage line "
                        "above); run again to retry them: the answers so far are cached",
                     sp->name, jg->name, (long long)failed, (long long)(2 * n), llm_status_name(first_fail));
    else if (unjudged > 0)
        log_warn("eval %s: %s gave no usable verdict for %lld of %lld inputs (counted as ties)", sp->name, jg->name,
                 (long long)unjudged, (long long)n);
    if (rc == 0) {
        eval_stats(pab, pba, ws, wr, n, cfg->eval.tie_margin, cfg->eval.bootstrap,
                   rng_derive((uint64_t)cfg->train.seed, 0xb007, 0), st, v);
        char g[192], obj[256];
        snprintf(g, sizeof g, "%s/%s/%s", root, sp->name, jg->name);
#define O(x) (snprintf(obj, sizeof obj, "%s/%s", g, x), obj)
        rc = store_write_f64(run, O("p_ab"), pab, 1, &n, "P(student better), student as option 1", e) ||
             store_write_f64(run, O("p_ba"), pba, 1, &n, "P(student better), student as option 2", e) ||
             store_write_f64(run, O("p"), p, 1, &n, "P(student better), mean of both orders", e) ||
             store_write_i32(run, O("verdict"), v, 1, &n, "1 win, 0 tie, -1 loss (student vs reference)", e) ||
             store_write_strings(run, O("raw_ab"), (const char *const *)rab, 1, &n, "judge's answer, student first", e) ||
             store_write_strings(run, O("raw_ba"), (const char *const *)rba, 1, &n, "judge's answer, reference first", e) ||
             store_set_attr_f64(run, g, "wtr", st->wtr, e) || store_set_attr_f64(run, g, "wtr_ci_low", st->ci_low, e) ||
             store_set_attr_f64(run, g, "wtr_ci_high", st->ci_high, e) ||
             store_set_attr_f64(run, g, "position_bias", st->position_bias, e) ||
             store_set_attr_f64(run, g, "length_bias", st->length_bias, e) ||
             store_set_attr_f64(run, g, "student_words", st->student_words, e) ||
             store_set_attr_f64(run, g, "reference_words", st->reference_words, e) ||
             store_set_attr_i64(run, g, "n", st->n, e) || store_set_attr_i64(run, g, "wins", st->wins, e) ||
             store_set_attr_i64(run, g, "ties", st->ties, e) || store_set_attr_i64(run, g, "losses", st->losses, e) ||
             store_set_attr_i64(run, g, "unjudged", unjudged, e);
#undef O
        snprintf(obj, sizeof obj, "/usage/%s", jg->name);
        if (rc == 0)
            rc = session_record_usage(&ses, run, obj, "attributes: usage of this role (critique and evaluation)", e);
    }
    for (int64_t i = 0; i < n; i++) free(rab[i]), free(rba[i]);
    free(rab), free(rba), free(pab), free(pba), free(p), free(ws), free(wr), free(v), free(items), free(j);
    session_close(&ses);
    cache_close(cache);
    return rc;
}

int eval_main(const Config *cfg, const Comm *comm, int argc, char **argv) {
    (void)argc, (void)argv;
    return eval_run(cfg, comm, "/eval");
}

int eval_run(const Config *cfg, const Comm *comm, const char *root) {
    util_install_stop_signals();
    int threads = train_pick_threads(cfg, comm);
    par_init(threads);
    openblas_set_num_threads(threads);
    Err e = {{0}};
    int rc = 0;
    Student s;
    if (student_load(&s, cfg, comm, NULL, &e) != 0) comm_check(1, e.msg, EXIT_USAGE);
    /* already evaluated at this step? */
    StoreFile *run = NULL;
    int64_t done = 0;
    const char *names[2] = {"eval", "ood"};
    Split sp[2];
    int nsp = 0;
    JudgeConfig *extra = NULL;
    int n_extra = 0;
    if (comm->rank == 0) {
        char *rp = xasprintf("%s/run.h5", cfg->run.dir);
        run = store_open(rp, 1, &e);
        free(rp);
        if (!run) rc = -1;
        int64_t step = -1;
        if (rc == 0 && store_exists(run, root) && store_get_attr_i64(run, root, "step", &step, NULL) == 0 &&
            step == s.st.step) {
            int64_t complete = 0;
            store_get_attr_i64(run, root, "complete", &complete, NULL);
            done = complete;
        }
        if (rc == 0 && !done) {
            StoreFile *d = store_open(cfg->data.path, 0, &e);
            if (!d) rc = -1;
            for (int k = 0; k < 2 && rc == 0; k++)
                if (strstr(cfg->eval.splits, names[k])) {
                    if (load_split(d, names[k], cfg->eval.limit, &sp[nsp], &e) != 0) rc = -1;
                    else nsp++;
                }
            store_close(d, NULL);
            if (rc == 0 && cfg->eval.judges[0] && config_load_judges(cfg, cfg->eval.judges, &extra, &n_extra, &e) != 0)
                rc = -1;
        }
    }
    comm_check(rc, e.msg, EXIT_USAGE);
    comm_bcast_i64(&done, 1);
    if (done) {
        log_info("eval: the checkpoint of step %lld is already evaluated (%s)", (long long)s.st.step, root);
        if (comm->rank == 0) store_close(run, NULL);
        student_free(&s);
        return EXIT_OK;
    }
    int64_t ns = nsp;
    comm_bcast_i64(&ns, 1);
    GenOptions go;
    gen_options_init(&go);
    go.mode = GEN_BEAM;
    go.beam = cfg->eval.beam;
    go.k = 1;
    go.max_new = cfg->eval.max_new;
    char **outs[2] = {NULL, NULL};
    for (int k = 0; k < ns; k++) {
        if (comm->rank != 0) memset(&sp[k], 0, sizeof sp[k]);
        comm_bcast_strings(&sp[k].input, &sp[k].n);
        double t0 = util_now();
        student_generate(&s, &go, comm, sp[k].input, (int)sp[k].n, &outs[k], NULL);
        log_info("eval: %lld student outputs (beam %d) in %.1f s", (long long)sp[k].n, go.beam, util_now() - t0);
    }
    int code = EXIT_OK;
    if (comm->rank == 0) {
        int nj = 1 + n_extra;
        Judge *jg = xcalloc((size_t)nj, sizeof(Judge));
        jg[0] = (Judge){"critic", &cfg->critic};
        for (int q = 0; q < n_extra; q++) jg[1 + q] = (Judge){extra[q].name, &extra[q].ep};
        char info[160];
        snprintf(info, sizeof info, "%s/info", root);
        rc = store_delete(run, root, &e) || store_write_string(run, info, "see the attributes of this group", NULL, &e) ||
             store_set_attr_i64(run, root, "step", s.st.step, &e) ||
             store_set_attr_str(run, root, "objective",
                                cfg->critique.rounds && strncmp(root, "/sft/", 5) ? cfg->critique.objective : "sft", &e) ||
             store_set_attr_i64(run, root, "seed", cfg->train.seed, &e);
        printf("\n| split | judge | n | win-or-tie %% | 95%% CI | wins/ties/losses | position bias | length bias | words student/ref |\n");
        printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
        for (int k = 0; k < nsp && rc == 0; k++) {
            char g[128];
            snprintf(g, sizeof g, "%s/%s", root, sp[k].name);
            char obj[192];
            int64_t n = sp[k].n;
            snprintf(obj, sizeof obj, "%s/input", g);
            rc = store_write_strings(run, obj, (const char *const *)sp[k].input, 1, &n, "literal input", &e);
            snprintf(obj, sizeof obj, "%s/student", g);
            if (rc == 0) rc = store_write_strings(run, obj, (const char *const *)outs[k], 1, &n, "the student's output (beam search)", &e);
            snprintf(obj, sizeof obj, "%s/reference", g);
            if (rc == 0) rc = store_write_strings(run, obj, (const char *const *)sp[k].ref, 1, &n, "the teacher's reference", &e);
            for (int q = 0; q < nj && rc == 0; q++) {
                EvalStats st;
                rc = judge_split(cfg, run, root, &jg[q], &sp[k], outs[k], &e, &st);
                if (rc == 0)
                    printf("| %s | %s | %lld | %.1f | [%.1f, %.1f] | %lld/%lld/%lld | %.3f | %.3f | %.1f/%.1f |\n", sp[k].name,
                           jg[q].name, (long long)st.n, st.wtr, st.ci_low, st.ci_high, (long long)st.wins,
                           (long long)st.ties, (long long)st.losses, st.position_bias, st.length_bias, st.student_words,
                           st.reference_words);
            }
        }
        fflush(stdout);
        if (rc == 0) rc = store_set_attr_i64(run, root, "complete", 1, &e);
        if (store_close(run, rc ? NULL : &e) != 0) rc = -1;
        if (rc != 0 && util_stop_signal()) code = EXIT_STOPPED, rc = 0;
        free(jg);
    }
    comm_check(rc, e.msg, EXIT_RUNTIME);
    int64_t cc = code;
    comm_bcast_i64(&cc, 1);
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
    config_free_judges(extra, n_extra);
    student_free(&s);
    return (int)cc;
}

/* ---- report ---------------------------------------------------------------------------- */

int report_main(int argc, char **argv) {
    const char *dir = NULL;
    int json = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "error: report: unknown option '%s' (hint: hdistill report --help)\n", argv[i]);
            return EXIT_USAGE;
        } else dir = argv[i];
    }
    if (!dir) {
        fprintf(stderr, "error: report needs a run directory (hint: hdistill report runs/NAME --json)\n");
        return EXIT_USAGE;
    }
    char *path = xasprintf("%s/run.h5", dir);
    Err e;
    StoreFile *f = store_open(path, 0, &e);
    if (!f) {
        fprintf(stderr, "error: %s\n", e.msg);
        free(path);
        return EXIT_USAGE;
    }
    int64_t step = 0, seed = 0, complete = 0;
    char *objective = NULL;
    if (!store_exists(f, "/eval") || store_get_attr_i64(f, "/eval", "complete", &complete, NULL) != 0 || !complete) {
        fprintf(stderr, "error: %s: no complete evaluation (hint: hdistill run CONFIG evaluates at the end)\n", path);
        store_close(f, NULL);
        free(path);
        return EXIT_USAGE;
    }
    store_get_attr_i64(f, "/eval", "step", &step, NULL);
    store_get_attr_i64(f, "/eval", "seed", &seed, NULL);
    objective = store_get_attr_str(f, "/eval", "objective", NULL);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "run", dir);
    cJSON_AddStringToObject(root, "objective", objective ? objective : "");
    cJSON_AddNumberToObject(root, "seed", (double)seed);
    cJSON_AddNumberToObject(root, "step", (double)step);
    cJSON *splits = cJSON_AddObjectToObject(root, "splits");
    if (!json) {
        printf("run %s: objective %s, seed %lld, evaluated at step %lld\n\n", dir, objective ? objective : "?",
               (long long)seed, (long long)step);
        printf("| split | judge | n | win-or-tie %% | 95%% CI | position bias | length bias |\n| --- | --- | --- | --- | --- | --- | --- |\n");
    }
    const char *names[2] = {"eval", "ood"};
    static const char *keys[] = {"wtr", "wtr_ci_low", "wtr_ci_high", "position_bias", "length_bias", "student_words",
                                 "reference_words"};
    for (int k = 0; k < 2; k++) {
        char g[64];
        snprintf(g, sizeof g, "/eval/%s", names[k]);
        if (!store_exists(f, g)) continue;
        int nj = 0;
        char **judges = store_list(f, g, &nj);
        cJSON *sj = cJSON_AddObjectToObject(splits, names[k]);
        for (int q = 0; q < nj; q++) {
            char jg[192];
            snprintf(jg, sizeof jg, "%s/%s", g, judges[q]);
            double wtr;
            if (store_get_attr_f64(f, jg, "wtr", &wtr, NULL) != 0) continue; /* a dataset, not a judge */
            cJSON *o = cJSON_AddObjectToObject(sj, judges[q]);
            double v[7];
            for (int x = 0; x < 7; x++) {
                v[x] = NAN;
                store_get_attr_f64(f, jg, keys[x], &v[x], NULL);
                if (isnan(v[x])) cJSON_AddNullToObject(o, keys[x]);
                else cJSON_AddNumberToObject(o, keys[x], v[x]);
            }
            int64_t n = 0;
            store_get_attr_i64(f, jg, "n", &n, NULL);
            cJSON_AddNumberToObject(o, "n", (double)n);
            if (!json)
                printf("| %s | %s | %lld | %.1f | [%.1f, %.1f] | %.3f | %.3f |\n", names[k], judges[q], (long long)n, v[0],
                       v[1], v[2], v[3], v[4]);
        }
        for (int q = 0; q < nj; q++) free(judges[q]);
        free(judges);
    }
    if (json) {
        char *s = cJSON_Print(root);
        printf("%s\n", s);
        cJSON_free(s);
    }
    cJSON_Delete(root);
    free(objective);
    store_close(f, NULL);
    free(path);
    return EXIT_OK;
}

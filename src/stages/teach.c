/* teach -- the teacher stage; see include/stages/teach.h. */
#include "stages/teach.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/lock.h"
#include "io/prov.h"
#include "io/store.h"
#include "llm/batch.h"
#include "llm/cache.h"
#include "llm/llm.h"
#include "llm/teacher.h"
#include "stages/session.h"

typedef struct {
    const char *name;   /* train | eval | ood */
    const char *group;  /* /teacher or /teacher/<name> */
    char **inputs;
    int64_t n;
    size_t first;       /* index of its first request */
} Split;

/* The inputs of teach.splits from data.path; *nsp set.  -1 with e set. */
static int load_splits(const Config *cfg, Split sp[3], int *nsp, size_t *total, Err *e) {
    const char *path = cfg->data.path;
    StoreFile *f = store_open(path, 0, e);
    if (!f) return err_suffix(e, " (hint: run hdistill ingest first)");
    const char *names[3] = {"train", "eval", "ood"};
    const char *groups[3] = {"/teacher", "/teacher/eval", "/teacher/ood"};
    const unsigned bits[3] = {SPLIT_TRAIN, SPLIT_EVAL, SPLIT_OOD};
    int rc = 0;
    *nsp = 0;
    for (int k = 0; k < 3 && rc == 0; k++) {
        if (!(cfg->teach.splits & bits[k])) continue;
        char obj[64];
        snprintf(obj, sizeof obj, "/inputs/%s", names[k]);
        if (!store_exists(f, obj)) {
            rc = err_set(e, "%s: no %s (hint: run hdistill ingest first)", path, obj);
            break;
        }
        Split *s = &sp[*nsp];
        s->name = names[k];
        s->group = groups[k];
        s->inputs = store_read_strings(f, obj, &s->n, e);
        if (!s->inputs) rc = -1;
        else (*nsp)++;
    }
    store_close(f, NULL);
    *total = 0;
    for (int k = 0; k < *nsp; k++) {
        sp[k].first = *total;
        *total += (size_t)sp[k].n;
    }
    return rc;
}

/* One request per input of every split; returns how many are cached. */
static size_t build_requests(const Config *cfg, const Split *sp, int nsp, LlmCache *cache, ChatRequest *reqs) {
    size_t cached = 0;
    for (int k = 0; k < nsp; k++)
        for (int64_t i = 0; i < sp[k].n; i++) {
            ChatRequest *r = &reqs[sp[k].first + (size_t)i];
            teacher_request(&cfg->teacher, sp[k].inputs[i], cfg->teach.n, r);
            char key[65];
            chat_request_key(r, key);
            cached += cache_get(cache, key, NULL) != NULL;
        }
    return cached;
}

/* What the answers of a teach held, over every split. */
typedef struct {
    LlmOutcome out;      /* request outcomes */
    size_t refused;      /* refusals: in words, or the API's refusal field */
    size_t filtered;     /* stopped by a content filter */
    size_t truncated;    /* answers cut by the token limit: their items kept apart */
    size_t short_lists;  /* usable answers with fewer than teach.n items */
    size_t reasoning;    /* answers that came with a reasoning text */
} TeachCounts;

/* The description of /teacher/.../status: every LlmStatus by number. */
static char *status_description(void) {
    ByteBuf b = {0};
    bytebuf_printf(&b, "request outcome (LlmStatus):");
    for (int s = 0; s < LLM_N_STATUS; s++) bytebuf_printf(&b, "%s %d %s", s ? "," : "", s, llm_status_name((LlmStatus)s));
    return b.a;
}

/* The per-input datasets of one split, filled from its results. */
typedef struct {
    int64_t n;
    int N;
    char **para, **trunc_para, **raw, **reasoning, **error;
    uint8_t *refused, *filtered, *truncated;
    int32_t *nparsed, *status;
    int any_reasoning;
} SplitOut;

static void split_out_alloc(SplitOut *o, int64_t n, int N) {
    memset(o, 0, sizeof *o);
    o->n = n, o->N = N;
    o->para = xcalloc((size_t)(n * N + 1), sizeof(char *));
    o->trunc_para = xcalloc((size_t)(n * N + 1), sizeof(char *));
    o->raw = xcalloc((size_t)(n + 1), sizeof(char *));
    o->reasoning = xcalloc((size_t)(n + 1), sizeof(char *));
    o->error = xcalloc((size_t)(n + 1), sizeof(char *));
    o->refused = xcalloc((size_t)(n + 1), 1);
    o->filtered = xcalloc((size_t)(n + 1), 1);
    o->truncated = xcalloc((size_t)(n + 1), 1);
    o->nparsed = xcalloc((size_t)(n + 1), sizeof(int32_t));
    o->status = xcalloc((size_t)(n + 1), sizeof(int32_t));
}

static void split_out_free(SplitOut *o) {
    for (int64_t i = 0; i < o->n * o->N; i++) free(o->para[i]), free(o->trunc_para[i]);
    for (int64_t i = 0; i < o->n; i++) free(o->raw[i]), free(o->reasoning[i]), free(o->error[i]);
    free(o->para), free(o->trunc_para), free(o->raw), free(o->reasoning), free(o->error);
    free(o->refused), free(o->filtered), free(o->truncated), free(o->nparsed), free(o->status);
}

/* Input i's answer r: its row of every dataset, and the counts. */
static void take_answer(SplitOut *o, int64_t i, const LlmResult *r, TeachCounts *tc) {
    int N = o->N;
    int answered = r->status == LLM_OK || r->status == LLM_E_REFUSED || r->status == LLM_E_FILTERED ||
                   r->status == LLM_E_REASONING;
    o->status[i] = r->status;
    session_outcome_add(&tc->out, r->status, r->error);
    o->error[i] = xstrdup(r->status == LLM_OK ? "" : r->error);
    o->reasoning[i] = xstrdup(answered && r->resp.reasoning ? r->resp.reasoning : "");
    if (o->reasoning[i][0]) o->any_reasoning = 1, tc->reasoning++;
    o->raw[i] = xstrdup(r->status == LLM_OK ? r->resp.content
                        : r->status == LLM_E_REFUSED && r->resp.refusal ? r->resp.refusal : "");
    if (r->status == LLM_E_REFUSED || (r->status == LLM_OK && teacher_is_refusal(r->resp.content))) {
        o->refused[i] = 1;
        tc->refused++;
    }
    if (r->status == LLM_E_FILTERED) o->filtered[i] = 1, tc->filtered++;
    if (r->status != LLM_OK || o->refused[i]) return;
    StrVec items = {0};
    o->nparsed[i] = teacher_parse_list(r->resp.content, N, &items);
    o->truncated[i] = chat_response_truncated(&r->resp) ? 1 : 0;
    tc->truncated += o->truncated[i];
    if (!o->truncated[i] && o->nparsed[i] < N) tc->short_lists++;
    char **row = o->truncated[i] ? o->trunc_para : o->para; /* a cut answer's items are kept apart */
    for (size_t j = 0; j < items.n; j++) row[i * N + (int64_t)j] = xstrdup(items.a[j]);
    strvec_free(&items);
}

/* Parses the answers of split s and writes its datasets under s->group. */
static int write_split(StoreFile *out, const Split *s, const LlmResult *res, int N, TeachCounts *tc, Err *e) {
    SplitOut o;
    split_out_alloc(&o, s->n, N);
    for (int64_t i = 0; i < s->n; i++) take_answer(&o, i, &res[s->first + (size_t)i], tc);
    for (int64_t i = 0; i < s->n * N; i++) {
        if (!o.para[i]) o.para[i] = xstrdup("");
        if (!o.trunc_para[i]) o.trunc_para[i] = xstrdup("");
    }
    char obj[128], *sdesc = status_description();
    int64_t d2[2] = {s->n, N}, d1 = s->n;
#define OBJ(x) (snprintf(obj, sizeof obj, "%s/%s", s->group, x), obj)
#define STRS(x, v, nd, d, desc) store_write_strings(out, OBJ(x), (const char *const *)(v), nd, d, desc, e)
    int rc = STRS("paraphrases", o.para, 2, d2,
                  "teacher paraphrases: row = input (same order as /inputs/<split>), column = list item; \"\" where "
                  "none (refused, filtered, failed, or cut by the token limit: see truncated)") ||
             STRS("truncated_paraphrases", o.trunc_para, 2, d2,
                  "the items of answers cut by the token limit (finish_reason length), kept apart: trained on only "
                  "with data.use_truncated=1; \"\" elsewhere") ||
             store_write_u8(out, OBJ("refused"), o.refused, 1, &d1,
                            "1 = the teacher refused this input (in words, or the API's refusal field)", e) ||
             store_write_u8(out, OBJ("filtered"), o.filtered, 1, &d1,
                            "1 = a content filter stopped the answer (finish_reason content_filter, or a 400 with "
                            "code content_filter)", e) ||
             store_write_u8(out, OBJ("truncated"), o.truncated, 1, &d1,
                            "1 = the answer was cut by the token limit (finish_reason length); its items are in "
                            "truncated_paraphrases", e) ||
             store_write_i32(out, OBJ("n_parsed"), o.nparsed, 1, &d1, "list items parsed from the answer", e) ||
             store_write_i32(out, OBJ("status"), o.status, 1, &d1, sdesc, e) ||
             STRS("raw", o.raw, 1, &d1, "the teacher's answer as received (without its reasoning; a refusal's text)") ||
             STRS("error", o.error, 1, &d1, "the client's error for a request that did not end ok (\"\" otherwise)");
    if (rc == 0 && o.any_reasoning)
        rc = STRS("reasoning", o.reasoning, 1, &d1, "the teacher's reasoning (reasoning models), \"\" where none");
#undef STRS
#undef OBJ
    free(sdesc);
    split_out_free(&o);
    return rc;
}

/* /teacher's attributes, configuration, provenance (world_size: the job's
 * ranks) and usage (the earlier runs' usage `prev` plus this session's). */
static int write_teacher_meta(StoreFile *out, const Config *cfg, int argc, char **argv, int world_size,
                              const LlmUsage *prev, const LlmSession *ses, int complete, Err *e) {
    Provenance prov;
    prov_collect(&prov, argc, argv, world_size);
    char *json = config_to_json(cfg);
    int rc = store_set_attr_i64(out, "/teacher", "n", cfg->teach.n, e) ||
             store_set_attr_str(out, "/teacher", "model", cfg->teacher.model, e) ||
             store_set_attr_str(out, "/teacher", "base_url", cfg->teacher.base_url, e) ||
             store_set_attr_str(out, "/teacher", "prompt", cfg->teacher.prompt, e) ||
             store_set_attr_str(out, "/teacher", "mode", config_enum_name("teacher.mode", cfg->teacher.mode), e) ||
             store_set_attr_i64(out, "/teacher", "complete", complete, e) ||
             session_add_usage(prev, out, "/teacher/usage", "attributes: usage of the endpoint role", e) ||
             session_record_usage(ses, out, "/teacher/usage", "attributes: usage of the endpoint role", e) ||
             store_write_string(out, "/teacher/config", json, "resolved configuration of teach (JSON)", e) ||
             prov_write(out, "/teacher/provenance", &prov, e);
    prov_free(&prov);
    free(json);
    return rc;
}

/* Writes /teacher into a copy of data.path and renames it over the original. */
static int write_results(const Config *cfg, int argc, char **argv, int world_size, const Split *sp, int nsp,
                         const LlmResult *res, const LlmSession *ses, TeachCounts *tc, Err *e) {
    const char *path = cfg->data.path;
    char *tmp = xasprintf("%s.tmp", path);
    int rc = util_copy_file(path, tmp, e);
    StoreFile *out = rc == 0 ? store_open(tmp, 1, e) : NULL;
    if (rc == 0 && !out) rc = -1;
    LlmUsage prev;
    if (rc == 0) session_read_usage(out, "/teacher/usage", &prev);
    if (rc == 0) rc = store_delete(out, "/teacher", e);
    for (int k = 0; k < nsp && rc == 0; k++) rc = write_split(out, &sp[k], res, cfg->teach.n, tc, e);
    const LlmOutcome *o = &tc->out;
    int complete = o->failed == 0 && o->budget == 0 && o->stopped == 0;
    if (rc == 0) rc = write_teacher_meta(out, cfg, argc, argv, world_size, &prev, ses, complete, e);
    if (out && store_close(out, rc ? NULL : e) != 0) rc = -1;
    if (rc == 0) rc = util_rename_durable(tmp, path, e);
    if (rc != 0) unlink(tmp);
    free(tmp);
    return rc;
}

/* The closing lines and the outcome of a teach that wrote its results; the
 * last line printed is the reason when it did not end OK. */
static Status report(const Config *cfg, size_t total, const TeachCounts *tc, const LlmSession *ses,
                     const char *cache_file) {
    const LlmOutcome *o = &tc->out;
    log_info("teach: wrote %s: %zu answers (%zu refused, %zu filtered, %zu cut by the token limit and kept apart, "
             "%zu with fewer than %d items, %zu with reasoning); %lld failed, %lld not sent (budget), %lld stopped",
             cfg->data.path, total - (size_t)(o->failed + o->budget + o->stopped), tc->refused, tc->filtered,
             tc->truncated, tc->short_lists, cfg->teach.n, tc->reasoning, (long long)o->failed, (long long)o->budget,
             (long long)o->stopped);
    if (tc->truncated)
        log_warn("teach: %zu answers were cut by teacher.max_tokens (finish_reason length): their items are kept "
                 "apart (/teacher/truncated_paraphrases) and not trained on unless data.use_truncated=1 (hint: raise "
                 "teacher.max_tokens)", tc->truncated);
    Err e = {{0}};
    Status st = session_outcome_status(o, llm_client_budget(ses->client), "teach", &e);
    if (st == STATUS_STOPPED)
        log_info("teach: stopped early by a signal: run teach again to carry on (the answers so far are cached in "
                 "%s and are not asked again)", cache_file);
    else if (st != STATUS_OK)
        log_error("%s", e.msg);
    return st;
}

/* Sends the requests: the Batch API in teacher.mode=batch, else in flight at once. */
static void ask_teacher(const Config *cfg, LlmSession *ses, const ChatRequest *reqs, size_t n, LlmResult *res) {
    if (cfg->teacher.mode != ENDPOINT_MODE_BATCH) {
        llm_run(ses->client, reqs, n, res, "teach");
        return;
    }
    LlmBatchStats bs = {0};
    LlmBatchOptions o;
    llm_batch_options_for(&o, &cfg->teacher);
    o.stats = &bs;
    llm_batch_run(ses->client, reqs, n, res, &o, "teach");
    log_info("teach: Batch API: %lld batches created, %lld resumed, %lld adopted; %lld lines sent, %lld answered, "
             "%lld failed, %lld expired, %lld asked again directly, %lld duplicates",
             (long long)bs.batches_created, (long long)bs.batches_resumed, (long long)bs.batches_adopted,
             (long long)bs.lines_submitted, (long long)bs.answered, (long long)bs.failed_lines,
             (long long)bs.expired_lines, (long long)bs.retried_sync, (long long)bs.duplicates);
}

/* Rank 0: the whole stage (world_size: the job's ranks, for the provenance).
 * Returns -1 with e set on a usage/input error; else 0 with *outcome the
 * stage's outcome. */
static int do_teach(const Config *cfg, int argc, char **argv, int world_size, int dry_run, Status *outcome, Err *e) {
    Split sp[3];
    int nsp = 0;
    size_t total = 0;
    LlmSession ses = {0};
    LlmCache *cache = NULL;
    char *cache_file = session_cache_path(cfg, SESSION_DATA);
    int rc = load_splits(cfg, sp, &nsp, &total, e);
    if (rc == 0) rc = (cache = session_cache_open(cfg, SESSION_DATA, e)) ? 0 : -1;
    if (rc == 0)
        rc = dry_run ? session_open_plan(&ses, cfg, &cfg->teacher, "teacher", cache, e)
                     : session_open(&ses, cfg, &cfg->teacher, "teacher", cache, e);
    ChatRequest *reqs = rc == 0 ? xcalloc(total + 1, sizeof(ChatRequest)) : NULL;
    LlmResult *res = rc == 0 ? xcalloc(total + 1, sizeof(LlmResult)) : NULL;
    if (rc == 0) {
        size_t cached = build_requests(cfg, sp, nsp, cache, reqs);
        char splits[64];
        config_get_string(cfg, "teach.splits", splits, sizeof splits);
        log_info("teach: %zu inputs (%s) x 1 request for %d paraphrases each; %zu already answered in %s, "
                 "%zu to send to %s%s",
                 total, splits, cfg->teach.n, cached, cache_file, total - cached, ses.url,
                 cfg->teacher.mode == ENDPOINT_MODE_BATCH ? " through the Batch API" : "");
    }
    if (rc == 0 && dry_run) {
        session_log_estimate(&ses, cfg, reqs, total, 1, 0);
        log_info("dry run: nothing was sent or written");
    } else if (rc == 0) {
        ask_teacher(cfg, &ses, reqs, total, res);
        char ub[512];
        llm_usage_format(llm_usage(ses.client), ub, sizeof ub);
        log_info("teach: teacher usage: %s", ub);
        TeachCounts tc;
        memset(&tc, 0, sizeof tc);
        rc = write_results(cfg, argc, argv, world_size, sp, nsp, res, &ses, &tc, e);
        if (rc == 0) *outcome = report(cfg, total, &tc, &ses, cache_file);
    }
    for (size_t i = 0; reqs && i < total; i++) {
        chat_request_free(&reqs[i]);
        llm_result_free(&res[i]);
    }
    free(reqs), free(res);
    session_close(&ses);
    cache_close(cache);
    free(cache_file);
    for (int k = 0; k < nsp; k++) store_free_strings(sp[k].inputs, sp[k].n);
    return rc;
}

int teach_main(const Config *cfg, const Comm *comm, int argc, char **argv, int dry_run) {
    Err e = {{0}};
    int rc = 0;
    Status outcome = STATUS_OK;
    if (comm->rank == 0) {
        util_install_stop_signals();
        if (!dry_run) rc = lock_acquire(cfg->data.path, LOCK_DATA_FILE, cfg->run.lock_wait, &e);
        if (rc == 0) rc = do_teach(cfg, argc, argv, comm->size, dry_run, &outcome, &e);
        lock_release(cfg->data.path, LOCK_DATA_FILE);
    }
    comm_check(rc, e.msg, EXIT_USAGE);
    int64_t c = outcome;
    comm_bcast_i64(&c, 1);
    return status_exit_code((Status)c, EXIT_RUNTIME);
}

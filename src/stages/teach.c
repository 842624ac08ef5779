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


static int transient(LlmStatus s) { return s != LLM_OK && s != LLM_E_HTTP4XX; }

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

typedef struct {
    size_t transient, refused, short_lists, stopped;
    char first_err[256];
} TeachCounts;

/* The closing lines and the outcome of a teach that wrote its results:
 * stopped (requests left unanswered by a stop signal), failed (requests
 * failed for reasons worth retrying: EXIT_RUNTIME, run again) or done. */
static Status report(const Config *cfg, size_t total, const TeachCounts *tc, const char *cache_file) {
    log_info("teach: wrote %s: %zu answers, %zu refused, %zu with fewer than %d items, %zu failed", cfg->data.path,
             total - tc->transient, tc->refused, tc->short_lists, cfg->teach.n, tc->transient);
    if (tc->stopped) {
        log_info("teach: stopped early by a signal: run teach again to carry on (the %zu answers so far are "
                 "cached in %s and are not asked again)",
                 total - tc->transient, cache_file);
        return STATUS_STOPPED;
    }
    if (tc->transient > 0) {
        log_error("teach: %zu requests failed (see /teacher/status), e.g. %s; run again to retry "
                  "them -- answers so far are cached in %s",
                  tc->transient, tc->first_err, cache_file);
        return STATUS_FAILED;
    }
    return STATUS_OK;
}

/* Parses the answers of split s and writes its datasets under s->group. */
static int write_split(StoreFile *out, const Split *s, const LlmResult *res, int N, TeachCounts *tc, Err *e) {
    int64_t n = s->n;
    char **para = xcalloc((size_t)(n * N + 1), sizeof(char *));
    char **raw = xcalloc((size_t)(n + 1), sizeof(char *));
    uint8_t *refused = xcalloc((size_t)(n + 1), 1);
    int32_t *nparsed = xcalloc((size_t)(n + 1), sizeof(int32_t));
    int32_t *status = xcalloc((size_t)(n + 1), sizeof(int32_t));
    for (int64_t i = 0; i < n; i++) {
        const LlmResult *r = &res[s->first + (size_t)i];
        status[i] = r->status;
        raw[i] = xstrdup(r->status == LLM_OK ? r->resp.content : "");
        if (r->status != LLM_OK) {
            tc->transient += transient(r->status);
            tc->stopped += r->status == LLM_E_STOPPED;
            if (!tc->first_err[0]) snprintf(tc->first_err, sizeof tc->first_err, "%s", r->error);
            continue;
        }
        StrVec items = {0};
        if (teacher_is_refusal(r->resp.content)) {
            refused[i] = 1;
            tc->refused++;
        } else {
            nparsed[i] = teacher_parse_list(r->resp.content, N, &items);
            if (nparsed[i] < N) tc->short_lists++;
        }
        for (size_t j = 0; j < items.n; j++) para[i * N + (int64_t)j] = xstrdup(items.a[j]);
        strvec_free(&items);
    }
    char obj[128];
    int64_t d2[2] = {n, N}, d1 = n;
#define OBJ(x) (snprintf(obj, sizeof obj, "%s/%s", s->group, x), obj)
    int rc = store_write_strings(out, OBJ("paraphrases"), (const char *const *)para, 2, d2,
                                 "teacher paraphrases: row = input (same order as /inputs/<split>), "
                                 "column = list item; \"\" where none",
                                 e) ||
             store_write_u8(out, OBJ("refused"), refused, 1, &d1, "1 = the teacher refused this input", e) ||
             store_write_i32(out, OBJ("n_parsed"), nparsed, 1, &d1, "list items parsed from the answer", e) ||
             store_write_i32(out, OBJ("status"), status, 1, &d1,
                             "request outcome: 0 ok, 1 http_4xx, 2 http_5xx, 3 rate_limited, 4 timeout, "
                             "5 connect, 6 transport, 7 malformed, 8 schema, 9 empty, 10 stopped",
                             e) ||
             store_write_strings(out, OBJ("raw"), (const char *const *)raw, 1, &d1, "the teacher's answer as received", e);
#undef OBJ
    for (int64_t i = 0; i < n * N; i++) free(para[i]);
    for (int64_t i = 0; i < n; i++) free(raw[i]);
    free(para), free(raw), free(refused), free(nparsed), free(status);
    return rc;
}

/* /teacher's attributes, configuration, provenance and usage (the earlier
 * runs' usage `prev` plus this session's). */
static int write_teacher_meta(StoreFile *out, const Config *cfg, int argc, char **argv, const LlmUsage *prev,
                              const LlmSession *ses, int complete, Err *e) {
    Provenance prov;
    prov_collect(&prov, argc, argv, 1);
    char *json = config_to_json(cfg);
    int rc = store_set_attr_i64(out, "/teacher", "n", cfg->teach.n, e) ||
             store_set_attr_str(out, "/teacher", "model", cfg->teacher.model, e) ||
             store_set_attr_str(out, "/teacher", "base_url", cfg->teacher.base_url, e) ||
             store_set_attr_str(out, "/teacher", "prompt", cfg->teacher.prompt, e) ||
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
static int write_results(const Config *cfg, int argc, char **argv, const Split *sp, int nsp, const LlmResult *res,
                         const LlmSession *ses, TeachCounts *tc, Err *e) {
    const char *path = cfg->data.path;
    char *tmp = xasprintf("%s.tmp", path);
    int rc = util_copy_file(path, tmp, e);
    StoreFile *out = rc == 0 ? store_open(tmp, 1, e) : NULL;
    if (rc == 0 && !out) rc = -1;
    LlmUsage prev;
    if (rc == 0) session_read_usage(out, "/teacher/usage", &prev);
    if (rc == 0) rc = store_delete(out, "/teacher", e);
    for (int k = 0; k < nsp && rc == 0; k++) rc = write_split(out, &sp[k], res, cfg->teach.n, tc, e);
    if (rc == 0) rc = write_teacher_meta(out, cfg, argc, argv, &prev, ses, tc->transient == 0, e);
    if (out && store_close(out, rc ? NULL : e) != 0) rc = -1;
    if (rc == 0) rc = util_rename_durable(tmp, path, e);
    if (rc != 0) unlink(tmp);
    free(tmp);
    return rc;
}

/* Rank 0: the whole stage.  Returns -1 with e set on a usage/input error;
 * else 0 with *outcome the stage's outcome (STATUS_FAILED: retry). */
static int do_teach(const Config *cfg, int argc, char **argv, int dry_run, Status *outcome, Err *e) {
    Split sp[3];
    int nsp = 0;
    size_t total = 0;
    LlmSession ses = {0};
    LlmCache *cache = NULL;
    char *cache_file = session_cache_path(cfg, SESSION_DATA);
    int rc = load_splits(cfg, sp, &nsp, &total, e);
    if (rc == 0) rc = (cache = session_cache_open(cfg, SESSION_DATA, e)) ? 0 : -1;
    if (rc == 0) rc = session_open(&ses, cfg, &cfg->teacher, "teacher", cache, e);
    ChatRequest *reqs = rc == 0 ? xcalloc(total + 1, sizeof(ChatRequest)) : NULL;
    LlmResult *res = rc == 0 ? xcalloc(total + 1, sizeof(LlmResult)) : NULL;
    if (rc == 0) {
        size_t cached = build_requests(cfg, sp, nsp, cache, reqs);
        char splits[64];
        config_get_string(cfg, "teach.splits", splits, sizeof splits);
        log_info("teach: %zu inputs (%s) x 1 request for %d paraphrases each; %zu already answered in %s, "
                 "%zu to send to %s",
                 total, splits, cfg->teach.n, cached, cache_file, total - cached, ses.url);
    }
    if (rc == 0 && dry_run) {
        log_info("dry run: nothing was sent or written");
    } else if (rc == 0) {
        llm_run(ses.client, reqs, total, res, "teach");
        char ub[512];
        llm_usage_format(llm_usage(ses.client), ub, sizeof ub);
        log_info("teach: teacher usage: %s", ub);
        TeachCounts tc = {0};
        rc = write_results(cfg, argc, argv, sp, nsp, res, &ses, &tc, e);
        if (rc == 0) *outcome = report(cfg, total, &tc, cache_file);
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
        if (rc == 0) rc = do_teach(cfg, argc, argv, dry_run, &outcome, &e);
        lock_release(cfg->data.path, LOCK_DATA_FILE);
    }
    comm_check(rc, e.msg, EXIT_USAGE);
    int64_t c = outcome;
    comm_bcast_i64(&c, 1);
    return status_exit_code((Status)c, EXIT_RUNTIME);
}

/* teach -- the teacher stage; see include/teach.h. */
#include "stages/teach.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llm/cache.h"
#include "llm/llm.h"
#include "io/prov.h"
#include "llm/roles.h"
#include "io/store.h"

char *teach_cache_path(const Config *cfg, const char *default_base) {
    if (cfg->llm.cache[0]) return xstrdup(cfg->llm.cache);
    return xasprintf("%s.llm-cache", default_base);
}

typedef struct {
    const char *name;   /* train | eval | ood */
    const char *group;  /* /teacher or /teacher/<name> */
    char **inputs;
    int64_t n;
    size_t first;       /* index of its first request */
} Split;

static int copy_file(const char *from, const char *to, Err *e) {
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0) return err_set(e, "%s: %s", from, strerror(errno));
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        close(in);
        return err_set(e, "%s: %s", to, strerror(errno));
    }
    char buf[1 << 16];
    ssize_t r;
    int rc = 0;
    while ((r = read(in, buf, sizeof buf)) > 0) {
        for (ssize_t done = 0; done < r;) {
            ssize_t w = write(out, buf + done, (size_t)(r - done));
            if (w <= 0) {
                rc = err_set(e, "%s: write failed: %s (disk full?)", to, strerror(errno));
                break;
            }
            done += w;
        }
        if (rc) break;
    }
    if (r < 0) rc = err_set(e, "%s: read failed: %s", from, strerror(errno));
    close(in);
    if (close(out) != 0 && rc == 0) rc = err_set(e, "%s: close failed: %s", to, strerror(errno));
    return rc;
}

static int write_usage(StoreFile *f, const char *g, const LlmUsage *u, Err *e) {
    char obj[128];
    snprintf(obj, sizeof obj, "%s/usage", g);
    if (store_write_string(f, obj, "attributes: usage of the endpoint role", "LLM usage", e)) return -1;
    snprintf(obj, sizeof obj, "%s/usage", g);
    struct {
        const char *k;
        int64_t v;
    } kv[] = {{"requests", u->requests}, {"cache_hits", u->cache_hits}, {"sent", u->sent},
              {"retries", u->retries},   {"ok", u->ok},                 {"failed", u->failed}, {"stopped", u->stopped},
              {"prompt_tokens", u->prompt_tokens}, {"completion_tokens", u->completion_tokens}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (store_set_attr_i64(f, obj, kv[i].k, kv[i].v, e)) return -1;
    for (int s = 1; s < LLM_N_STATUS; s++) {
        char k[64];
        snprintf(k, sizeof k, "errors_%s", llm_status_name((LlmStatus)s));
        if (store_set_attr_i64(f, obj, k, u->errors[s], e)) return -1;
    }
    return store_set_attr_f64(f, obj, "seconds", u->seconds, e);
}

static int transient(LlmStatus s) { return s != LLM_OK && s != LLM_E_HTTP4XX; }

static int do_teach(const Config *cfg, int argc, char **argv, int dry_run, int *exit_code, Err *e) {
    const char *path = cfg->data.path;
    int N = cfg->teach.n;
    StoreFile *f = store_open(path, 0, e);
    if (!f) return err_suffix(e, " (hint: run hdistill ingest first)");
    Split sp[3];
    int nsp = 0;
    int rc = 0;
    const char *names[3] = {"train", "eval", "ood"};
    for (int k = 0; k < 3 && rc == 0; k++) {
        if (!strstr(cfg->teach.splits, names[k])) continue;
        char obj[64];
        snprintf(obj, sizeof obj, "/inputs/%s", names[k]);
        if (!store_exists(f, obj)) {
            rc = err_set(e, "%s: no %s (hint: run hdistill ingest first)", path, obj);
            break;
        }
        Split *s = &sp[nsp];
        s->name = names[k];
        s->group = k == 0 ? "/teacher" : (k == 1 ? "/teacher/eval" : "/teacher/ood");
        s->inputs = store_read_strings(f, obj, &s->n, e);
        if (!s->inputs) rc = -1;
        else nsp++;
    }
    store_close(f, NULL);
    if (rc == 0 && nsp == 0) rc = err_set(e, "teach.splits '%s' names none of train,eval,ood", cfg->teach.splits);
    size_t total = 0;
    for (int k = 0; k < nsp; k++) {
        sp[k].first = total;
        total += (size_t)sp[k].n;
    }
    Role role = {0};
    LlmCache *cache = NULL;
    char *cache_file = teach_cache_path(cfg, path);
    if (rc == 0) rc = role_open(&role, cfg, &cfg->teacher, "teacher", e);
    if (rc == 0) {
        cache = cache_open(cache_file, cfg->llm.sync_seconds, e);
        if (!cache) rc = -1;
    }
    LlmClient *client = NULL;
    if (rc == 0) {
        client = llm_client_create(&role.ep, cache, e);
        if (!client) rc = -1;
    }
    LlmRequest *reqs = rc == 0 ? xcalloc(total + 1, sizeof(LlmRequest)) : NULL;
    LlmResult *res = rc == 0 ? xcalloc(total + 1, sizeof(LlmResult)) : NULL;
    size_t cached = 0;
    if (rc == 0) {
        for (int k = 0; k < nsp; k++)
            for (int64_t i = 0; i < sp[k].n; i++) {
                LlmRequest *r = &reqs[sp[k].first + (size_t)i];
                role_teacher_request(&cfg->teacher, sp[k].inputs[i], N, r);
                char key[65];
                llm_request_key(r, key);
                cached += cache_get(cache, key, NULL) != NULL;
            }
        log_info("teach: %zu inputs (%s) x 1 request for %d paraphrases each; %zu already answered in %s, "
                 "%zu to send to %s",
                 total, cfg->teach.splits, N, cached, cache_file, total - cached, role.url);
    }
    if (rc == 0 && dry_run) {
        log_info("dry run: nothing was sent or written");
    } else if (rc == 0) {
        llm_run(client, reqs, total, res, "teach");
        const LlmUsage *u = llm_usage(client);
        char first_err[256] = "";
        for (size_t i = 0; i < total && !first_err[0]; i++)
            if (res[i].status != LLM_OK) snprintf(first_err, sizeof first_err, "%s", res[i].error);
        char ub[512];
        llm_usage_format(u, ub, sizeof ub);
        log_info("teach: teacher usage: %s", ub);
        /* parse and write */
        size_t n_transient = 0, n_refused = 0, n_short = 0;
        char *tmp = xasprintf("%s.tmp", path);
        rc = copy_file(path, tmp, e);
        StoreFile *out = rc == 0 ? store_open(tmp, 1, e) : NULL;
        if (rc == 0 && !out) rc = -1;
        if (rc == 0) rc = store_delete(out, "/teacher", e);
        for (int k = 0; k < nsp && rc == 0; k++) {
            Split *s = &sp[k];
            int64_t n = s->n;
            char **para = xcalloc((size_t)(n * N + 1), sizeof(char *));
            char **raw = xcalloc((size_t)(n + 1), sizeof(char *));
            uint8_t *refused = xcalloc((size_t)(n + 1), 1);
            int32_t *nparsed = xcalloc((size_t)(n + 1), sizeof(int32_t));
            int32_t *status = xcalloc((size_t)(n + 1), sizeof(int32_t));
            for (int64_t i = 0; i < n; i++) {
                LlmResult *r = &res[s->first + (size_t)i];
                status[i] = r->status;
                raw[i] = xstrdup(r->status == LLM_OK ? r->resp.content : "");
                if (r->status != LLM_OK) {
                    n_transient += transient(r->status);
                    continue;
                }
                StrVec items = {0};
                if (teacher_is_refusal(r->resp.content)) {
                    refused[i] = 1;
                    n_refused++;
                } else {
                    nparsed[i] = teacher_parse_list(r->resp.content, N, &items);
                    if (nparsed[i] < N) n_short++;
                }
                for (size_t j = 0; j < items.n; j++) para[i * N + (int64_t)j] = xstrdup(items.a[j]);
                strvec_free(&items);
            }
            char obj[128];
            int64_t d2[2] = {n, N}, d1 = n;
#define OBJ(x) (snprintf(obj, sizeof obj, "%s/%s", s->group, x), obj)
            rc = store_write_strings(out, OBJ("paraphrases"), (const char *const *)para, 2, d2,
                                     "teacher paraphrases: row = input (same order as /inputs/<split>), "
                                     "column = list item; \"\" where none",
                                     e) ||
                 store_write_u8(out, OBJ("refused"), refused, 1, &d1, "1 = the teacher refused this input", e) ||
                 store_write_i32(out, OBJ("n_parsed"), nparsed, 1, &d1, "list items parsed from the answer", e) ||
                 store_write_i32(out, OBJ("status"), status, 1, &d1,
                                 "request outcome: 0 ok, 1 http_4xx, 2 http_5xx, 3 rate_limited, 4 timeout, "
                                 "5 connect, 6 transport, 7 malformed, 8 schema, 9 empty, 10 stopped",
                                 e) ||
                 store_write_strings(out, OBJ("raw"), (const char *const *)raw, 1, &d1,
                                     "the teacher's answer as received", e);
#undef OBJ
            for (int64_t i = 0; i < n * N; i++) free(para[i]);
            for (int64_t i = 0; i < n; i++) free(raw[i]);
            free(para), free(raw), free(refused), free(nparsed), free(status);
        }
        if (rc == 0) {
            Provenance prov;
            prov_collect(&prov, argc, argv, 1);
            char *json = config_to_json(cfg);
            rc = store_set_attr_i64(out, "/teacher", "n", N, e) ||
                 store_set_attr_str(out, "/teacher", "model", cfg->teacher.model, e) ||
                 store_set_attr_str(out, "/teacher", "base_url",
                                    strcmp(cfg->teacher.base_url, "standin") ? cfg->teacher.base_url : "standin", e) ||
                 store_set_attr_str(out, "/teacher", "prompt", cfg->teacher.prompt, e) ||
                 store_set_attr_i64(out, "/teacher", "complete", n_transient == 0, e) ||
                 write_usage(out, "/teacher", u, e) ||
                 store_write_string(out, "/teacher/config", json, "resolved configuration of teach (JSON)", e) ||
                 prov_write(out, "/teacher/provenance", &prov, e);
            prov_free(&prov);
            free(json);
        }
        if (out && store_close(out, rc ? NULL : e) != 0) rc = -1;
        if (rc == 0) rc = util_rename_durable(tmp, path, e);
        if (rc != 0) unlink(tmp);
        free(tmp);
        if (rc == 0) {
            log_info("teach: wrote %s: %zu answers, %zu refused, %zu with fewer than %d items, %zu failed",
                     path, total - n_transient, n_refused, n_short, N, n_transient);
            if (util_stop_signal()) {
                *exit_code = EXIT_STOPPED;
                log_info("teach: stopped early by a signal: run teach again to carry on (the %zu answers so far are "
                         "cached in %s and are not asked again)", total - n_transient, cache_file);
            } else if (n_transient > 0) {
                *exit_code = EXIT_RUNTIME;
                log_error("teach: %zu requests failed (see /teacher/status), e.g. %s; run again to retry "
                          "them -- answers so far are cached in %s",
                          n_transient, first_err, cache_file);
            }
        }
    }
    for (size_t i = 0; reqs && i < total; i++) {
        llm_request_free(&reqs[i]);
        llm_result_free(&res[i]);
    }
    free(reqs), free(res);
    llm_client_destroy(client);
    cache_close(cache);
    role_close(&role);
    free(cache_file);
    for (int k = 0; k < nsp; k++) store_free_strings(sp[k].inputs, sp[k].n);
    return rc;
}

int teach_main(const Config *cfg, const Comm *comm, int argc, char **argv, int dry_run) {
    Err e = {{0}};
    int rc = 0, code = EXIT_OK;
    if (comm->rank == 0) {
        util_install_stop_signals();
        rc = do_teach(cfg, argc, argv, dry_run, &code, &e);
    }
    comm_check(rc, e.msg, EXIT_USAGE);
    int64_t c = code;
    comm_bcast_i64(&c, 1);
    return (int)c;
}

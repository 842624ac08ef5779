/* test_session -- stages/session.h: the cache path rules (llm.cache wins;
 * else data.path + ".llm-cache" for SESSION_DATA and run.dir/llm-cache for
 * SESSION_RUN), one writer per cache file; a stand-in session (base_url
 * "standin") answers teacher requests through its client, a repeat comes
 * from the cache, and the stand-in is gone after session_close; a session
 * that cannot open leaves nothing behind; usage recorded twice into one
 * object is summed field by field (errors_<kind> and seconds included),
 * session_read_usage reads it back and gives zeros for a missing object.
 * No MPI: sessions are rank 0's. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/config.h"
#include "base/util.h"
#include "llm/teacher.h"
#include "stages/session.h"
#include "test.h"

static void set(Config *c, const char *kv) {
    Err e;
    CHECK(config_set(c, kv, &e) == 0, "%s", e.msg);
}

static int port_open(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static int usage_equal(const LlmUsage *a, const LlmUsage *b) {
    int ok = a->requests == b->requests && a->cache_hits == b->cache_hits && a->sent == b->sent &&
             a->retries == b->retries && a->ok == b->ok && a->failed == b->failed && a->stopped == b->stopped &&
             a->prompt_tokens == b->prompt_tokens && a->completion_tokens == b->completion_tokens &&
             a->seconds == b->seconds;
    for (int s = 1; s < LLM_N_STATUS; s++) ok &= a->errors[s] == b->errors[s];
    return ok;
}

int main(void) {
    log_set_quiet(1);
    char *dir = test_tmpdir("session");
    Config c;
    config_init(&c);
    char *kv = xasprintf("data.path=%s/d/data.h5", dir);
    set(&c, kv), free(kv);
    kv = xasprintf("run.dir=%s/run", dir);
    set(&c, kv), free(kv);
    char *p = session_cache_path(&c, SESSION_DATA), *want = xasprintf("%s/d/data.h5.llm-cache", dir);
    EXPECT(!strcmp(p, want), "SESSION_DATA cache %s, want %s", p, want);
    free(p), free(want);
    p = session_cache_path(&c, SESSION_RUN), want = xasprintf("%s/run/llm-cache", dir);
    EXPECT(!strcmp(p, want), "SESSION_RUN cache %s, want %s", p, want);
    free(p), free(want);
    kv = xasprintf("llm.cache=%s/shared.cache", dir);
    set(&c, kv), free(kv);
    want = xasprintf("%s/shared.cache", dir);
    p = session_cache_path(&c, SESSION_DATA);
    char *p2 = session_cache_path(&c, SESSION_RUN);
    EXPECT(!strcmp(p, want) && !strcmp(p2, want), "llm.cache wins for both scopes: %s %s", p, p2);
    free(p), free(p2);

    /* one writer per cache file */
    Err e = {{0}};
    LlmCache *cache = session_cache_open(&c, SESSION_RUN, &e);
    EXPECT(cache && util_file_exists(want) && !strcmp(cache_path(cache), want), "cache opened at llm.cache: %s", e.msg);
    LlmCache *second = session_cache_open(&c, SESSION_DATA, &e);
    EXPECT(second == NULL && strstr(e.msg, "shared.cache"), "a second writer on the same file: %s",
           second ? "opened" : e.msg);
    cache_close(second);
    free(want);

    /* a stand-in teacher through the session's client */
    set(&c, "teacher.base_url=standin");
    set(&c, "standin.seed=3");
    LlmSession s;
    EXPECT(session_open(&s, &c, &c.teacher, "teacher", cache, &e) == 0, "%s", e.msg);
    int port = 0;
    if (s.client) {
        EXPECT(s.standin != NULL && !strcmp(s.name, "teacher") && s.ec == &c.teacher, "stand-in session");
        port = serve_port(s.standin);
        char *url = xasprintf("http://127.0.0.1:%d/v1", port);
        EXPECT(!strcmp(s.url, url), "url %s", s.url);
        free(url);
        const char *inputs[3] = {"The cat sat on the mat.", "He runs every morning.", "The soup was cold."};
        ChatRequest req[3];
        LlmResult res[3];
        for (int i = 0; i < 3; i++) teacher_request(&c.teacher, inputs[i], 3, &req[i]);
        memset(res, 0, sizeof res);
        size_t got = llm_run(s.client, req, 3, res, NULL);
        int lists = 1;
        for (int i = 0; i < 3; i++) {
            StrVec items = {0};
            lists &= res[i].status == LLM_OK && (teacher_parse_list(res[i].resp.content, 3, &items) > 0 ||
                                                 teacher_is_refusal(res[i].resp.content));
            strvec_free(&items);
            llm_result_free(&res[i]);
        }
        EXPECT(got == 3 && lists, "three teacher answers (%zu)", got);
        const LlmUsage *u = llm_usage(s.client);
        EXPECT(u->requests == 3 && u->sent == 3 && u->ok == 3 && u->cache_hits == 0, "usage after 3: sent %lld",
               (long long)u->sent);
        memset(res, 0, sizeof res);
        got = llm_run(s.client, req, 3, res, NULL);
        EXPECT(got == 3 && res[0].from_cache && u->requests == 6 && u->cache_hits == 3 && u->sent == 3,
               "repeats come from the cache (hits %lld, sent %lld)", (long long)u->cache_hits, (long long)u->sent);
        for (int i = 0; i < 3; i++) llm_result_free(&res[i]), chat_request_free(&req[i]);

        /* the session's usage recorded twice into one object is doubled */
        char *h5 = xasprintf("%s/usage.h5", dir);
        StoreFile *f = store_create(h5, &e);
        LlmUsage before;
        session_read_usage(f, "/teacher/usage", &before);
        LlmUsage zero;
        memset(&zero, 0, sizeof zero);
        EXPECT(usage_equal(&before, &zero), "usage of a missing object is zeros");
        EXPECT(session_record_usage(&s, f, "/teacher/usage", "usage", &e) == 0 &&
                   session_record_usage(&s, f, "/teacher/usage", "usage", &e) == 0,
               "%s", e.msg);
        LlmUsage twice, w = *u;
        session_read_usage(f, "/teacher/usage", &twice);
        w.requests *= 2, w.cache_hits *= 2, w.sent *= 2, w.retries *= 2, w.ok *= 2, w.failed *= 2, w.stopped *= 2;
        w.prompt_tokens *= 2, w.completion_tokens *= 2, w.seconds *= 2;
        for (int k = 1; k < LLM_N_STATUS; k++) w.errors[k] *= 2;
        EXPECT(usage_equal(&twice, &w) && twice.requests == 12 && twice.prompt_tokens > 0, "recorded twice: requests %lld",
               (long long)twice.requests);
        char *d = store_get_attr_str(f, "/teacher/usage", "description", &e);
        char *txt = store_read_string(f, "/teacher/usage", &e);
        EXPECT(d && txt && !strcmp(txt, "usage"), "the object is a string dataset describing the attributes");
        free(d), free(txt);
        store_close(f, NULL);
        free(h5);
    }
    session_close(&s);
    EXPECT(s.client == NULL && s.standin == NULL && s.name == NULL, "session_close empties the session");
    EXPECT(port > 0 && !port_open(port), "the stand-in stops with its session");
    session_close(&s); /* an empty session is accepted */

    /* every field summed, each error kind by name */
    char *h5 = xasprintf("%s/add.h5", dir);
    StoreFile *f = store_create(h5, &e);
    LlmUsage a, b;
    memset(&a, 0, sizeof a), memset(&b, 0, sizeof b);
    a.requests = 1, a.cache_hits = 2, a.sent = 3, a.retries = 4, a.ok = 5, a.failed = 6, a.stopped = 7;
    a.prompt_tokens = 8, a.completion_tokens = 9, a.seconds = 0.5;
    b = a;
    b.requests = 100, b.seconds = 2.25, b.stopped = 70;
    for (int k = 1; k < LLM_N_STATUS; k++) a.errors[k] = 10 * k, b.errors[k] = 1000 + k;
    EXPECT(session_add_usage(&a, f, "/x/usage", "d", &e) == 0 && session_add_usage(&b, f, "/x/usage", "d", &e) == 0,
           "%s", e.msg);
    LlmUsage sum = a, got;
    sum.requests += b.requests, sum.cache_hits += b.cache_hits, sum.sent += b.sent, sum.retries += b.retries;
    sum.ok += b.ok, sum.failed += b.failed, sum.stopped += b.stopped, sum.prompt_tokens += b.prompt_tokens;
    sum.completion_tokens += b.completion_tokens, sum.seconds += b.seconds;
    for (int k = 1; k < LLM_N_STATUS; k++) sum.errors[k] += b.errors[k];
    session_read_usage(f, "/x/usage", &got);
    EXPECT(usage_equal(&got, &sum), "every field summed");
    int named = 1;
    for (int k = 1; k < LLM_N_STATUS; k++) {
        char name[64];
        int64_t v = -1;
        snprintf(name, sizeof name, "errors_%s", llm_status_name((LlmStatus)k));
        named &= store_get_attr_i64(f, "/x/usage", name, &v, &e) == 0 && v == 10 * k + 1000 + k;
    }
    EXPECT(named, "an errors_<kind> attribute per error kind");
    const char *plain[] = {"requests", "cache_hits", "sent", "retries", "ok", "failed", "stopped", "prompt_tokens",
                           "completion_tokens"};
    int present = 1;
    for (size_t k = 0; k < sizeof plain / sizeof plain[0]; k++) {
        int64_t v;
        present &= store_get_attr_i64(f, "/x/usage", plain[k], &v, &e) == 0;
    }
    double sec = 0;
    EXPECT(present && store_get_attr_f64(f, "/x/usage", "seconds", &sec, &e) == 0 && sec == 2.75,
           "the documented attribute names");
    store_close(f, NULL);
    free(h5);

    /* a session that cannot open: an API key variable that is not set */
    unsetenv("HDISTILL_TEST_NO_SUCH_KEY");
    set(&c, "critic.base_url=standin");
    set(&c, "critic.api_key_env=HDISTILL_TEST_NO_SUCH_KEY");
    memset(&s, 0x5a, sizeof s);
    EXPECT(session_open(&s, &c, &c.critic, "critic", cache, &e) != 0 && strstr(e.msg, "HDISTILL_TEST_NO_SUCH_KEY"),
           "missing key variable: %s", e.msg);
    EXPECT(s.client == NULL && s.standin == NULL && s.name == NULL && s.url == NULL, "a failed open leaves s empty");
    session_close(&s);
    /* an ordinary URL: no stand-in, the URL as given */
    set(&c, "critic.api_key_env=");
    set(&c, "critic.base_url=http://127.0.0.1:9/v1");
    EXPECT(session_open(&s, &c, &c.critic, "critic", NULL, &e) == 0 && s.standin == NULL &&
               !strcmp(s.url, "http://127.0.0.1:9/v1"),
           "a URL session: %s", e.msg);
    session_close(&s);
    cache_close(cache);
    config_free(&c);
    test_rm_rf(dir);
    free(dir);
    return test_summary();
}

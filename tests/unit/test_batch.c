/* test_batch -- the Batch API client (batch.c) against the stand-in's Files
 * and Batch API, the server in a process of its own: 1,000 requests (plus
 * duplicates) in batches of at most 300 lines, answers in the cache, failed
 * and expired lines returned and retried in a new batch or synchronously;
 * a client killed with SIGKILL while polling, restarted, polls the same
 * batches and creates none (the request log has exactly one POST
 * /v1/batches per chunk); a client killed between creating a batch and
 * journaling it adopts that batch; a stop signal stops polling and keeps
 * the journal; no cache, no batch. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/config.h"
#include "llm/batch.h"
#include "llm/cache.h"
#include "llm/llm.h"
#include "llm/teacher.h"
#include "standin/serve.h"
#include "test.h"

enum { N = 1000, DUP = 50, LINES = 300, CHUNKS = 4 };

static char TMP[128];
static pid_t SERVER = 0;
static char URL[128], LOG[256];

/* The stand-in in a child process; its request log at LOG. */
static void server_start(const char *name, double delay, double fail, double expire) {
    snprintf(LOG, sizeof LOG, "%s/%s.log", TMP, name);
    int fd[2];
    CHECK(pipe(fd) == 0, "pipe");
    SERVER = fork();
    if (SERVER == 0) {
        close(fd[0]);
        ServeOptions o;
        serve_options_init(&o);
        o.quiet = 1;
        o.seed = 9;
        o.request_log = LOG;
        o.batch_delay_s = delay;
        o.batch_fail_rate = fail;
        o.batch_expire_rate = expire;
        Err e;
        Server *s = serve_start(&o, &e);
        if (!s) _exit(3);
        dprintf(fd[1], "%d\n", serve_port(s));
        close(fd[1]);
        for (;;) pause();
    }
    close(fd[1]);
    char buf[32] = "";
    ssize_t k = read(fd[0], buf, sizeof buf - 1);
    close(fd[0]);
    CHECK(k > 0, "the stand-in did not start");
    snprintf(URL, sizeof URL, "http://127.0.0.1:%d/v1", atoi(buf));
}

static void server_stop(void) {
    kill(SERVER, SIGKILL);
    waitpid(SERVER, NULL, 0);
    SERVER = 0;
}

/* Lines of LOG containing every one of the strings (up to 3). */
static int log_count(const char *a, const char *b, const char *c) {
    FILE *f = fopen(LOG, "r");
    if (!f) return -1;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, a) && (!b || strstr(line, b)) && (!c || strstr(line, c));
    fclose(f);
    return n;
}

static int batches_created(void) {
    return log_count("\"method\":\"POST\"", "\"path\":\"/v1/batches\"", "\"status\":200");
}

typedef struct {
    Config cfg;
    LlmEndpoint ep;
    LlmCache *cache;
    LlmClient *c;
} Cli;

static void cli_open(Cli *k, const char *cache) {
    memset(k, 0, sizeof *k);
    config_init(&k->cfg);
    k->cfg.teacher.backoff = 0.02;
    k->cfg.teacher.backoff_max = 0.2;
    Err e;
    k->cache = cache_open(cache, 0, &e);
    CHECK(k->cache, "%s", e.msg);
    llm_endpoint_init(&k->ep, &k->cfg.teacher, "teacher", URL, 0);
    k->c = llm_client_create(&k->ep, k->cache, &e);
    CHECK(k->c, "%s", e.msg);
}

static void cli_close(Cli *k) {
    llm_client_destroy(k->c);
    cache_close(k->cache);
    config_free(&k->cfg);
}

/* N distinct requests and DUP duplicates of the first ones */
static ChatRequest *make_requests(const EndpointConfig *ec, int tag) {
    ChatRequest *q = xcalloc(N + DUP, sizeof *q);
    for (int i = 0; i < N + DUP; i++) {
        char lit[128];
        snprintf(lit, sizeof lit, "the committee %d approved budget number %d today", tag, i < N ? i : i - N);
        teacher_request(ec, lit, 3, &q[i]);
    }
    return q;
}

static void free_requests(ChatRequest *q, LlmResult *r) {
    for (int i = 0; i < N + DUP; i++) {
        chat_request_free(&q[i]);
        if (r) llm_result_free(&r[i]);
    }
    free(q), free(r);
}

static void options(LlmBatchOptions *o, LlmBatchStats *st) {
    llm_batch_options_init(o);
    o->poll = 0.1;
    o->poll_max = 0.3;
    o->max_lines = LINES;
    o->stats = st;
    memset(st, 0, sizeof *st);
}

static int count_status(const LlmResult *r, LlmStatus s) {
    int n = 0;
    for (int i = 0; i < N + DUP; i++) n += r[i].status == s;
    return n;
}

/* Failed and expired lines come back; retried in a new batch, then in sync. */
static void test_batch_run(void) {
    server_start("run", 0.5, 0.02, 0.01);
    char *cache = xasprintf("%s/run.cache", TMP);
    Cli k;
    cli_open(&k, cache);
    ChatRequest *q = make_requests(&k.cfg.teacher, 1);
    LlmResult *r = xcalloc(N + DUP, sizeof *r);
    LlmBatchOptions o;
    LlmBatchStats st;
    options(&o, &st);
    size_t ok = llm_batch_run(k.c, q, N + DUP, r, &o, NULL);
    int failed = count_status(r, LLM_E_BATCH) + count_status(r, LLM_E_HTTP5XX), fd = 0;
    for (int i = 0; i < N; i++) fd += r[i].status != LLM_OK;
    printf("batch: %zu ok, %d failed; %lld created, %lld lines, %lld duplicates, %lld answered, %lld failed, %lld "
           "expired, %lld polls\n", ok, failed, (long long)st.batches_created, (long long)st.lines_submitted,
           (long long)st.duplicates, (long long)st.answered, (long long)st.failed_lines, (long long)st.expired_lines,
           (long long)st.polls);
    EXPECT(st.batches_created == CHUNKS && batches_created() == CHUNKS && st.lines_submitted == N &&
               st.duplicates == DUP, "chunks and duplicates");
    EXPECT(failed > 0 && ok + (size_t)failed == N + DUP && st.expired_lines > 0 && st.failed_lines > 0,
           "failures returned: %zu ok, %d failed", ok, failed);
    EXPECT(r[N].status == r[0].status && (r[0].status != LLM_OK || !strcmp(r[N].resp.content, r[0].resp.content)),
           "a duplicate gets its twin's answer");
    EXPECT(llm_usage(k.c)->cache_hits == 0 && cache_count(k.cache) == (int64_t)st.answered, "answers cached");
    free_requests(q, r);
    /* again, failures retried in new batches: only they are sent */
    q = make_requests(&k.cfg.teacher, 1);
    r = xcalloc(N + DUP, sizeof *r);
    options(&o, &st);
    o.retry = LLM_BATCH_RETRY_BATCH;
    o.max_rounds = 3;
    ok = llm_batch_run(k.c, q, N + DUP, r, &o, NULL);
    EXPECT(ok == N + DUP && st.lines_submitted >= fd && st.lines_submitted <= fd + fd / 2 + 2 &&
               st.retried_batch >= 0 && st.batches_created >= 1,
           "retry in a new batch: %zu ok, %lld lines sent for %d failed, %lld retried", ok,
           (long long)st.lines_submitted, fd, (long long)st.retried_batch);
    free_requests(q, r);
    cli_close(&k);
    /* failures retried synchronously (llm_run) */
    unlink(cache);
    char *jr = xasprintf("%s.batches", cache);
    unlink(jr);
    cli_open(&k, cache);
    q = make_requests(&k.cfg.teacher, 2);
    r = xcalloc(N + DUP, sizeof *r);
    options(&o, &st);
    o.retry = LLM_BATCH_RETRY_SYNC;
    ok = llm_batch_run(k.c, q, N + DUP, r, &o, NULL);
    EXPECT(ok == N + DUP && st.retried_sync > 0 && llm_usage(k.c)->ok + llm_usage(k.c)->failed == N,
           "retry in sync: %zu ok, %lld retried", ok, (long long)st.retried_sync);
    free_requests(q, r);
    cli_close(&k);
    free(jr);
    free(cache);
    server_stop();
}

/* Lines of the journal with word (e.g. " submit "). */
static int journal_count(const char *journal, const char *word) {
    size_t n;
    Err e;
    char *t = util_read_file(journal, &n, &e);
    int c = 0;
    for (char *p = t; p && (p = strstr(p, word)); p++) c++;
    free(t);
    return c;
}

/* A client that runs the whole set (in a child); exit code 0 when it ended. */
static pid_t client_child(const char *cache, int fault_exit, int stop_signals) {
    pid_t p = fork();
    if (p == 0) {
        if (stop_signals) util_install_stop_signals();
        Cli k;
        cli_open(&k, cache);
        ChatRequest *q = make_requests(&k.cfg.teacher, 3);
        LlmResult *r = xcalloc(N + DUP, sizeof *r);
        LlmBatchOptions o;
        LlmBatchStats st;
        options(&o, &st);
        o.fault_exit_after_create = fault_exit;
        llm_batch_run(k.c, q, N + DUP, r, &o, NULL);
        int stopped = count_status(r, LLM_E_STOPPED);
        cli_close(&k);
        _exit(stop_signals ? (stopped > 0 ? 7 : 8) : 0);
    }
    return p;
}

static void wait_journal(const char *journal, const char *word, int n) {
    double t0 = util_now();
    while (journal_count(journal, word) < n && util_now() - t0 < 30) usleep(20000);
}

/* After a kill or a stop: a run that must create no new batch. */
static void resume_and_check(const char *cache, int want_created, int want_adopted, const char *what) {
    Cli k;
    cli_open(&k, cache);
    ChatRequest *q = make_requests(&k.cfg.teacher, 3);
    LlmResult *r = xcalloc(N + DUP, sizeof *r);
    LlmBatchOptions o;
    LlmBatchStats st;
    options(&o, &st);
    size_t ok = llm_batch_run(k.c, q, N + DUP, r, &o, NULL);
    printf("%s: resumed %lld, adopted %lld, created %lld, %zu ok; POST /v1/batches in the log: %d\n", what,
           (long long)st.batches_resumed, (long long)st.batches_adopted, (long long)st.batches_created, ok,
           batches_created());
    EXPECT(ok == N + DUP && st.batches_created == want_created && st.batches_adopted == want_adopted &&
               batches_created() == CHUNKS && log_count("\"path\":\"/v1/files\"", "\"status\":200", NULL) == CHUNKS,
           "%s: exactly one batch per chunk (%d in the log)", what, batches_created());
    free_requests(q, r);
    cli_close(&k);
}

static void test_kill_while_polling(void) {
    server_start("kill", 2.0, 0, 0);
    char *cache = xasprintf("%s/kill.cache", TMP), *journal = xasprintf("%s.batches", cache);
    pid_t c = client_child(cache, 0, 0);
    wait_journal(journal, " submit ", CHUNKS);
    usleep(300000); /* polling */
    kill(c, SIGKILL);
    int st;
    waitpid(c, &st, 0);
    EXPECT(WIFSIGNALED(st) && journal_count(journal, " submit ") == CHUNKS && journal_count(journal, " done ") == 0,
           "killed while polling, %d batches journaled", journal_count(journal, " submit "));
    resume_and_check(cache, 0, 0, "kill -9 while polling");
    EXPECT(journal_count(journal, " done ") == CHUNKS, "every batch journaled as done");
    free(cache), free(journal);
    server_stop();
}

static void test_kill_before_journal(void) {
    server_start("adopt", 1.0, 0, 0);
    char *cache = xasprintf("%s/adopt.cache", TMP), *journal = xasprintf("%s.batches", cache);
    pid_t c = client_child(cache, 2, 0); /* dies right after creating batch 2, before journaling it */
    int st;
    waitpid(c, &st, 0);
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 99 && journal_count(journal, " upload ") == 2 &&
               journal_count(journal, " submit ") == 1 && batches_created() == 2,
           "killed between creating and journaling (exit %d)", WEXITSTATUS(st));
    resume_and_check(cache, 2, 1, "kill between create and journal");
    free(cache), free(journal);
    server_stop();
}

static void test_stop_signal(void) {
    server_start("stop", 2.0, 0, 0);
    char *cache = xasprintf("%s/stop.cache", TMP), *journal = xasprintf("%s.batches", cache);
    pid_t c = client_child(cache, 0, 1);
    wait_journal(journal, " submit ", CHUNKS);
    kill(c, SIGTERM);
    int st;
    double t0 = util_now();
    waitpid(c, &st, 0);
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 7 && util_now() - t0 < 1.5,
           "stop signal: polling stopped at once with STOPPED results (exit %d, %.2f s)", WEXITSTATUS(st),
           util_now() - t0);
    resume_and_check(cache, 0, 0, "after a stop signal");
    free(cache), free(journal);
    server_stop();
}

static void test_no_cache(void) {
    server_start("nocache", 0.2, 0, 0);
    Config cfg;
    config_init(&cfg);
    LlmEndpoint ep;
    llm_endpoint_init(&ep, &cfg.teacher, "teacher", URL, 0);
    Err e;
    LlmClient *c = llm_client_create(&ep, NULL, &e);
    ChatRequest q;
    teacher_request(&cfg.teacher, "a b c", 3, &q);
    LlmResult r;
    LlmBatchOptions o;
    llm_batch_options_init(&o);
    llm_batch_run(c, &q, 1, &r, &o, NULL);
    EXPECT(r.status == LLM_E_BATCH && strstr(r.error, "cache"), "no cache: %s", r.error);
    llm_result_free(&r);
    chat_request_free(&q);
    llm_client_destroy(c);
    config_free(&cfg);
    server_stop();
}

int main(void) {
    snprintf(TMP, sizeof TMP, "/tmp/hdistill-test-batch-XXXXXX");
    CHECK(mkdtemp(TMP), "mkdtemp");
    test_batch_run();
    test_kill_while_polling();
    test_kill_before_journal();
    test_stop_signal();
    test_no_cache();
    char *cmd = xasprintf("rm -rf %s", TMP);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", TMP);
    free(cmd);
    return test_summary();
}

/* test_llm -- the client (llm.c) through real HTTP to the stand-in in its
 * server dialects and quirks: a 4xx is final after one attempt and quotes
 * message, type, param and code (OpenAI reasoning model given max_tokens,
 * vLLM's and Ollama's unknown model, llama-server's context limit);
 * max_completion_tokens + reasoning_effort are accepted and reasoning tokens
 * counted; an answer whose tokens all went to reasoning is final and names
 * the parameter; insufficient_quota stops the run at once; Retry-After as
 * an HTTP date is honoured and a wait over backoff_max is reported;
 * refusals and content filters (finish_reason and Azure's 400) are final
 * and cached; reasoning shapes give clean answers; extra_body reaches the
 * server under the same key; the budget (in memory and in a file shared by
 * two processes) is never crossed; the dry-run estimate. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/config.h"
#include "llm/budget.h"
#include "llm/cache.h"
#include "llm/llm.h"
#include "llm/teacher.h"
#include "standin/serve.h"
#include "test.h"

static StandinWorld *W;
static char TMP[128];

static Server *start(int dialect, int fault, double rate, const char *model) {
    ServeOptions o;
    serve_options_init(&o);
    o.world = W;
    o.quiet = 1;
    o.seed = 3;
    o.dialect = dialect;
    o.served_model = model;
    if (fault) o.fault_rate[fault] = rate;
    Err e;
    Server *s = serve_start(&o, &e);
    CHECK(s, "%s", e.msg);
    return s;
}

typedef struct {
    Config cfg;
    LlmEndpoint ep;
    LlmClient *c;
    LlmCache *cache;
    char *url;
} Cli;

/* A teacher client on s (the cache is optional). */
static void cli_open(Cli *k, const Server *s, const char *cache_path) {
    memset(k, 0, sizeof *k);
    config_init(&k->cfg);
    k->cfg.teacher.backoff = 0.02;
    k->cfg.teacher.backoff_max = 0.5;
    k->cfg.teacher.retries = 4;
    k->cfg.teacher.concurrency = 4;
    k->cfg.teacher.timeout = 20;
    k->url = xasprintf("%s", serve_base_url(s));
    Err e;
    if (cache_path) {
        k->cache = cache_open(cache_path, 0, &e);
        CHECK(k->cache, "%s", e.msg);
    }
}

static void cli_connect(Cli *k) {
    llm_endpoint_init(&k->ep, &k->cfg.teacher, "teacher", k->url, 0);
    Err e;
    k->c = llm_client_create(&k->ep, k->cache, &e);
    CHECK(k->c, "%s", e.msg);
}

static void cli_close(Cli *k) {
    llm_client_destroy(k->c);
    cache_close(k->cache);
    config_free(&k->cfg);
    free(k->url);
}

static void set_str(char **field, const char *v) {
    free(*field);
    *field = xstrdup(v);
}

/* n teacher requests for distinct literals; results[] to free by the caller */
static ChatRequest *requests(const EndpointConfig *ec, int n, int from) {
    ChatRequest *r = xcalloc((size_t)n, sizeof *r);
    for (int i = 0; i < n; i++) teacher_request(ec, standin_world_literal(W, 100 + 7 * (from + i)), 3, &r[i]);
    return r;
}

static void free_all(ChatRequest *q, LlmResult *r, int n) {
    for (int i = 0; i < n; i++) chat_request_free(&q[i]), llm_result_free(&r[i]);
    free(q), free(r);
}

static int has(const char *s, const char *x) { return s && strstr(s, x) != NULL; }

static void test_http_errors(void) {
    /* OpenAI reasoning model given max_tokens: one attempt, the server's words */
    Server *s = start(DIALECT_OPENAI_REASONING, 0, 0, NULL);
    Cli k;
    cli_open(&k, s, NULL);
    cli_connect(&k);
    ChatRequest *q = requests(&k.cfg.teacher, 3, 0);
    LlmResult *r = xcalloc(3, sizeof *r);
    llm_run(k.c, q, 3, r, NULL);
    EXPECT(r[0].status == LLM_E_HTTP4XX && r[0].attempts == 1 && r[0].http_status == 400 &&
               has(r[0].error, "Use 'max_completion_tokens' instead") && has(r[0].error, "param max_tokens") &&
               has(r[0].error, "code unsupported_parameter"),
           "reasoning model + max_tokens: %s (attempts %d)", r[0].error, r[0].attempts);
    EXPECT(llm_usage(k.c)->sent == 3 && llm_usage(k.c)->retries == 0, "4xx retried");
    free_all(q, r, 3);
    llm_client_destroy(k.c);
    /* the same model with max_completion_tokens, no temperature, reasoning_effort high */
    k.cfg.teacher.token_param = TOKEN_PARAM_MAX_COMPLETION_TOKENS;
    set_str(&k.cfg.teacher.reasoning_effort, "high");
    k.cfg.teacher.temperature = -1;
    k.cfg.teacher.top_p = -1;
    k.cfg.teacher.max_tokens = 600;
    cli_connect(&k);
    q = requests(&k.cfg.teacher, 3, 0);
    r = xcalloc(3, sizeof *r);
    size_t ok = llm_run(k.c, q, 3, r, NULL);
    EXPECT(ok == 3 && r[0].resp.reasoning_tokens == 256 && llm_usage(k.c)->reasoning_tokens == 3 * 256,
           "max_completion_tokens accepted, reasoning counted: ok %zu, %lld", ok,
           (long long)llm_usage(k.c)->reasoning_tokens);
    free_all(q, r, 3);
    llm_client_destroy(k.c);
    /* a limit under the reasoning: final, names the parameter, one attempt */
    k.cfg.teacher.max_tokens = 200;
    cli_connect(&k);
    q = requests(&k.cfg.teacher, 2, 0);
    r = xcalloc(2, sizeof *r);
    llm_run(k.c, q, 2, r, NULL);
    EXPECT(r[0].status == LLM_E_REASONING && r[0].attempts == 1 && has(r[0].error, "max_completion_tokens") &&
               has(r[0].error, "reasoning") && r[0].resp.finish_reason && !strcmp(r[0].resp.finish_reason, "length"),
           "reasoning_length: %s", r[0].error);
    free_all(q, r, 2);
    cli_close(&k);
    serve_stop(s);

    struct { int dialect; const char *model, *want1, *want2; } other[] = {
        {DIALECT_VLLM, "served", "does not exist", "type NotFoundError"},
        {DIALECT_OLLAMA, "served", "try pulling it first", "not_found_error"},
        {DIALECT_OPENAI, "served", "does not exist or you do not have access", "code model_not_found"}};
    for (int i = 0; i < 3; i++) {
        s = start(other[i].dialect, 0, 0, other[i].model);
        cli_open(&k, s, NULL);
        cli_connect(&k);
        q = requests(&k.cfg.teacher, 1, 0);
        r = xcalloc(1, sizeof *r);
        llm_run(k.c, q, 1, r, NULL);
        EXPECT(r[0].status == LLM_E_HTTP4XX && r[0].http_status == 404 && r[0].attempts == 1 &&
                   has(r[0].error, other[i].want1) && has(r[0].error, other[i].want2),
               "%s unknown model: %s", dialect_name(other[i].dialect), r[0].error);
        free_all(q, r, 1);
        cli_close(&k);
        serve_stop(s);
    }
    /* llama-server's context limit */
    ServeOptions o;
    serve_options_init(&o);
    o.world = W, o.quiet = 1, o.dialect = DIALECT_LLAMA_SERVER, o.ctx_words = 10;
    Err e;
    s = serve_start(&o, &e);
    cli_open(&k, s, NULL);
    cli_connect(&k);
    q = requests(&k.cfg.teacher, 1, 0);
    r = xcalloc(1, sizeof *r);
    llm_run(k.c, q, 1, r, NULL);
    EXPECT(r[0].status == LLM_E_HTTP4XX && r[0].attempts == 1 && has(r[0].error, "exceeds the available context size") &&
               has(r[0].error, "exceed_context_size_error"),
           "llama-server context: %s", r[0].error);
    free_all(q, r, 1);
    cli_close(&k);
    serve_stop(s);
}

static void test_quota_and_retry_after(void) {
    /* insufficient_quota: the first answer stops the run; nothing else is sent */
    Server *s = start(DIALECT_OPENAI, SERVE_FAULT_QUOTA, 1.0, NULL);
    Cli k;
    cli_open(&k, s, NULL);
    k.cfg.teacher.concurrency = 1;
    cli_connect(&k);
    ChatRequest *q = requests(&k.cfg.teacher, 20, 0);
    LlmResult *r = xcalloc(20, sizeof *r);
    llm_run(k.c, q, 20, r, NULL);
    int all = 1, attempts = 0;
    for (int i = 0; i < 20; i++) all &= r[i].status == LLM_E_QUOTA && has(r[i].error, "insufficient_quota"), attempts += r[i].attempts;
    EXPECT(all && attempts == 1 && llm_usage(k.c)->sent == 1 && llm_usage(k.c)->retries == 0,
           "quota: %d attempts, first error %s, last %s", attempts, r[0].error, r[19].error);
    free_all(q, r, 20);
    cli_close(&k);
    serve_stop(s);

    /* Retry-After as an HTTP date, 2 s ahead: honoured */
    ServeOptions o;
    serve_options_init(&o);
    o.world = W, o.quiet = 1, o.seed = 5, o.retry_after_s = 2;
    o.fault_rate[SERVE_FAULT_RETRY_DATE] = 0.5;
    Err e;
    s = serve_start(&o, &e);
    cli_open(&k, s, NULL);
    k.cfg.teacher.backoff_max = 5;
    k.cfg.teacher.retries = 8;
    cli_connect(&k);
    q = requests(&k.cfg.teacher, 6, 0);
    r = xcalloc(6, sizeof *r);
    double t0 = util_now();
    size_t ok = llm_run(k.c, q, 6, r, NULL);
    double el = util_now() - t0;
    EXPECT(ok == 6 && llm_usage(k.c)->retries > 0 && el > 0.9, "Retry-After date: ok %zu, retries %lld, %.2f s", ok,
           (long long)llm_usage(k.c)->retries, el);
    free_all(q, r, 6);
    cli_close(&k);
    /* a wait longer than backoff_max: reported, not retried */
    cli_open(&k, s, NULL);
    k.cfg.teacher.backoff_max = 0.5;
    cli_connect(&k);
    q = requests(&k.cfg.teacher, 6, 0);
    r = xcalloc(6, sizeof *r);
    llm_run(k.c, q, 6, r, NULL);
    int reported = 0;
    for (int i = 0; i < 6; i++)
        if (r[i].status == LLM_E_RATE) reported += has(r[i].error, "asked to wait") && has(r[i].error, "backoff_max") &&
                                                   r[i].attempts == 1;
    EXPECT(reported > 0, "long Retry-After reported: %s", r[0].error);
    free_all(q, r, 6);
    cli_close(&k);
    serve_stop(s);
}

static void test_final_answers(void) {
    char *cpath = xasprintf("%s/final.cache", TMP);
    struct { int fault; LlmStatus want; const char *words; int cached; } cases[] = {
        {SERVE_FAULT_REFUSAL, LLM_E_REFUSED, "refused", 1},
        {SERVE_FAULT_FILTERED, LLM_E_FILTERED, "content filter", 1},
        {SERVE_FAULT_FILTER_400, LLM_E_FILTERED, "content_filter", 0},
        {SERVE_FAULT_EXHAUSTED, LLM_E_REASONING, "max_tokens", 1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        unlink(cpath);
        Server *s = start(DIALECT_AZURE, cases[c].fault, 1.0, NULL);
        Cli k;
        cli_open(&k, s, cpath);
        cli_connect(&k);
        ChatRequest *q = requests(&k.cfg.teacher, 3, 0);
        LlmResult *r = xcalloc(3, sizeof *r);
        llm_run(k.c, q, 3, r, NULL);
        EXPECT(r[0].status == cases[c].want && r[0].attempts == 1 && has(r[0].error, cases[c].words) &&
                   llm_usage(k.c)->retries == 0,
               "%s: status %s, %s", serve_fault_name(cases[c].fault), llm_status_name(r[0].status), r[0].error);
        if (cases[c].want == LLM_E_REFUSED) EXPECT(has(r[0].resp.refusal, "can't help"), "refusal text kept");
        free_all(q, r, 3);
        llm_client_destroy(k.c);
        /* asked again: answered from the cache with the same outcome (a 400 is not stored) */
        cli_connect(&k);
        q = requests(&k.cfg.teacher, 3, 0);
        r = xcalloc(3, sizeof *r);
        llm_run(k.c, q, 3, r, NULL);
        EXPECT(r[0].status == cases[c].want && r[0].from_cache == cases[c].cached, "%s again: %s from cache %d",
               serve_fault_name(cases[c].fault), llm_status_name(r[0].status), r[0].from_cache);
        free_all(q, r, 3);
        cli_close(&k);
        serve_stop(s);
    }
    unlink(cpath);
    free(cpath);
    /* reasoning shapes: clean answers, reasoning kept */
    int shapes[3] = {SERVE_FAULT_THINK, SERVE_FAULT_LONE_THINK, SERVE_FAULT_PARTS};
    for (int i = 0; i < 3; i++) {
        Server *s = start(DIALECT_STANDIN, shapes[i], 1.0, NULL);
        Cli k;
        cli_open(&k, s, NULL);
        cli_connect(&k);
        ChatRequest *q = requests(&k.cfg.teacher, 2, 0);
        LlmResult *r = xcalloc(2, sizeof *r);
        llm_run(k.c, q, 2, r, NULL);
        StrVec items = {0};
        int n = r[0].status == LLM_OK ? teacher_parse_list(r[0].resp.content, 3, &items) : 0;
        EXPECT(r[0].status == LLM_OK && !has(r[0].resp.content, "draft") && has(r[0].resp.reasoning, "draft") && n == 3,
               "%s: %s / %d items / reasoning '%.40s'", serve_fault_name(shapes[i]), llm_status_name(r[0].status), n,
               r[0].resp.reasoning);
        strvec_free(&items);
        free_all(q, r, 2);
        cli_close(&k);
        serve_stop(s);
    }
}

/* extra_body goes out merged into the body; the server keys it like the client */
static void test_extra_body(void) {
    char *log = xasprintf("%s/extra.log", TMP);
    ServeOptions o;
    serve_options_init(&o);
    o.world = W, o.quiet = 1, o.request_log = log;
    Err e;
    Server *s = serve_start(&o, &e);
    Cli k;
    cli_open(&k, s, NULL);
    set_str(&k.cfg.teacher.extra_body, "{\"chat_template_kwargs\":{\"enable_thinking\":false},\"top_k\":20}");
    cli_connect(&k);
    ChatRequest *q = requests(&k.cfg.teacher, 1, 0);
    LlmResult *r = xcalloc(1, sizeof *r);
    llm_run(k.c, q, 1, r, NULL);
    char key[65];
    chat_request_key(&q[0], key);
    serve_stop(s);
    size_t n;
    char *text = util_read_file(log, &n, &e);
    EXPECT(r[0].status == LLM_OK && text && strstr(text, key), "server key of an extra_body request matches");
    free(text);
    free_all(q, r, 1);
    llm_client_destroy(k.c);
    /* a bad extra_body is refused when the client is made, naming the key */
    set_str(&k.cfg.teacher.extra_body, "{\"max_tokens\": 5}");
    llm_endpoint_init(&k.ep, &k.cfg.teacher, "teacher", k.url, 0);
    k.c = llm_client_create(&k.ep, NULL, &e);
    EXPECT(!k.c && has(e.msg, "teacher.extra_body") && has(e.msg, "max_tokens"), "bad extra_body: %s", e.msg);
    cli_close(&k);
    unlink(log);
    free(log);
}

static void test_budget(void) {
    Server *s = start(DIALECT_OPENAI, 0, 0, NULL);
    Cli k;
    cli_open(&k, s, NULL);
    k.cfg.teacher.price_in = 2.0;
    k.cfg.teacher.price_out = 8.0;
    k.cfg.teacher.max_tokens = 60;
    cli_connect(&k);
    Err e;
    /* estimate for a dry run */
    ChatRequest *q = requests(&k.cfg.teacher, 40, 0);
    LlmEstimate est;
    llm_estimate(k.c, q, 40, &est);
    char line[300];
    llm_estimate_format(&est, line, sizeof line);
    EXPECT(est.to_send == 40 && est.completion_tokens == 2400 && est.cost_usd > 0.0192 && has(line, "$"),
           "estimate: %s", line);
    /* a limit for about a dozen requests: never crossed, the rest refused unsent */
    LlmBudget *b = budget_open(0.006, 0, NULL, &e);
    EXPECT(llm_client_set_budget(k.c, b, &e) == 0, "%s", e.msg);
    LlmResult *r = xcalloc(40, sizeof *r);
    llm_run(k.c, q, 40, r, NULL);
    double spent;
    int64_t spent_tok;
    budget_state(b, &spent, &spent_tok, NULL, NULL);
    int refused = 0, ok = 0, sent = 0;
    for (int i = 0; i < 40; i++) {
        refused += r[i].status == LLM_E_BUDGET;
        ok += r[i].status == LLM_OK;
        sent += r[i].attempts;
    }
    EXPECT(spent <= 0.006 && ok > 0 && refused > 0 && ok + refused == 40 && sent == ok &&
               fabs(spent - llm_usage(k.c)->cost_usd) < 1e-9,
           "budget: spent $%.5f (usage $%.5f), %d ok, %d refused, %d sent", spent, llm_usage(k.c)->cost_usd, ok, refused,
           sent);
    EXPECT(has(r[39].error, "not sent") && has(r[39].error, "budget"), "budget message: %s", r[39].error);
    free_all(q, r, 40);
    budget_close(b);
    /* a role without max_tokens cannot be budgeted */
    k.cfg.teacher.max_tokens = 0;
    b = budget_open(1, 0, NULL, &e);
    EXPECT(llm_client_set_budget(k.c, b, &e) != 0 && has(e.msg, "max_tokens"), "unbounded role: %s", e.msg);
    budget_close(b);
    cli_close(&k);

    /* a budget file shared by two processes: one cap */
    char *bf = xasprintf("%s/budget", TMP);
    unlink(bf);
    pid_t kids[2];
    for (int p = 0; p < 2; p++) {
        if ((kids[p] = fork()) == 0) {
            Cli kk;
            cli_open(&kk, s, NULL);
            kk.cfg.teacher.max_tokens = 60;
            cli_connect(&kk);
            Err e2;
            LlmBudget *bb = budget_open(0, 3000, bf, &e2);
            if (!bb || llm_client_set_budget(kk.c, bb, &e2)) _exit(2);
            ChatRequest *qq = requests(&kk.cfg.teacher, 40, 40 * p);
            LlmResult *rr = xcalloc(40, sizeof *rr);
            llm_run(kk.c, qq, 40, rr, NULL);
            budget_close(bb);
            _exit(0);
        }
    }
    int okk = 1;
    for (int p = 0; p < 2; p++) {
        int st;
        waitpid(kids[p], &st, 0);
        okk &= WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }
    b = budget_open(0, 3000, bf, &e);
    budget_state(b, NULL, &spent_tok, NULL, NULL);
    size_t n;
    char *text = util_read_file(bf, &n, &e);
    EXPECT(okk && spent_tok > 1500 && spent_tok <= 3000 && text && !strstr(text, "reserved"),
           "shared budget file: %lld tokens spent of 3000\n%s", (long long)spent_tok, text ? text : "");
    free(text);
    budget_close(b);
    unlink(bf);
    free(bf);
    serve_stop(s);
}

int main(void) {
    Err e;
    W = standin_world_create(NULL, NULL, &e);
    CHECK(W, "%s", e.msg);
    snprintf(TMP, sizeof TMP, "/tmp/hdistill-test-llm-XXXXXX");
    CHECK(mkdtemp(TMP), "mkdtemp");
    test_http_errors();
    test_quota_and_retry_after();
    test_final_answers();
    test_extra_body();
    test_budget();
    char *cmd = xasprintf("rm -rf %s", TMP);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", TMP);
    free(cmd);
    standin_world_destroy(W);
    return test_summary();
}

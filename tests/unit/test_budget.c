/* test_budget -- the spend limit (llm/budget.h) against hand-worked
 * ledgers.  In memory: reservations up to the limit exactly are OK, one
 * more token is WAIT while reservations are held and NEVER once the spent
 * amount alone leaves no room; settling releases the reservation and counts
 * what was spent (more or less than reserved); a limit of 0 is no limit of
 * that kind and each kind binds on its own; USD sums at the limit are not
 * refused for rounding.  The file: the documented text format (header,
 * spent line, one reservation line for this host and pid, gone after
 * settling and after budget_close); a dead process's reservation on this
 * host is dropped by the next writer while a live one's and another host's
 * stay and count against the limit; what another process spent is seen at
 * the next reservation (budget_state is "as last read"); a file that is not
 * a budget file, a bad line and a path that cannot be opened are errors
 * naming the path, reported through e only (a failed open also printed a
 * warning of the same error: fixed); four processes reserving and settling at once through
 * one file lose no update and never cross the cap.  Configuration:
 * budget_open_config (no limit, limits, a file without a limit).  Prices
 * and reasoning tokens: a USD limit needs prices (llm_client_set_budget), a
 * token limit does not; against the stand-in as an OpenAI reasoning model
 * the hidden reasoning tokens are counted as spent (tokens and USD) and the
 * cap is never crossed. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/config.h"
#include "base/util.h"
#include "llm/budget.h"
#include "llm/llm.h"
#include "llm/teacher.h"
#include "standin/serve.h"
#include "test.h"

static char *TMP;

static int has(const char *s, const char *x) { return s && x && strstr(s, x) != NULL; }

static LlmBudget *open_ok(double usd, int64_t tok, const char *file) {
    Err e = {{0}};
    LlmBudget *b = budget_open(usd, tok, file, &e);
    CHECK(b, "budget_open: %s", e.msg);
    return b;
}

static int reserve(LlmBudget *b, double usd, int64_t tok) {
    Err e = {{0}};
    int v = budget_reserve(b, usd, tok, &e);
    if (v < 0) fprintf(stderr, "budget_reserve: %s\n", e.msg);
    return v;
}

static int settle(LlmBudget *b, double r_usd, int64_t r_tok, double s_usd, int64_t s_tok) {
    Err e = {{0}};
    int rc = budget_settle(b, r_usd, r_tok, s_usd, s_tok, &e);
    if (rc) fprintf(stderr, "budget_settle: %s\n", e.msg);
    return rc;
}

static int64_t spent_tokens(const LlmBudget *b) {
    int64_t t = -1;
    budget_state(b, NULL, &t, NULL, NULL);
    return t;
}

static double spent_usd(const LlmBudget *b) {
    double u = -1;
    budget_state(b, &u, NULL, NULL, NULL);
    return u;
}

/* ---- in memory ------------------------------------------------------------------- */

static void tokens_in_memory(void) {
    LlmBudget *b = open_ok(0, 100, NULL);
    double lu = -1;
    int64_t lt = -1;
    budget_state(b, NULL, NULL, &lu, &lt);
    EXPECT(lu == 0 && lt == 100 && spent_tokens(b) == 0 && spent_usd(b) == 0, "fresh: limits %g/%lld", lu, (long long)lt);
    EXPECT(budget_limits_usd(b) == 0 && budget_limits_usd(NULL) == 0, "no USD limit");

    EXPECT(reserve(b, 0, 60) == BUDGET_OK, "60 of 100");
    EXPECT(reserve(b, 0, 40) == BUDGET_OK, "60 + 40 = the limit exactly");
    EXPECT(reserve(b, 0, 1) == BUDGET_WAIT, "one more token: wait (fits once reservations settle)");
    EXPECT(reserve(b, 0, 101) == BUDGET_NEVER, "101 tokens never fit a limit of 100");
    EXPECT(reserve(b, 0, 100) == BUDGET_WAIT, "the whole limit: wait, not never");
    EXPECT(spent_tokens(b) == 0, "reserving spends nothing");

    EXPECT(settle(b, 0, 60, 0, 50) == 0 && spent_tokens(b) == 50, "60 reserved, 50 spent: spent %lld",
           (long long)spent_tokens(b));
    /* held 40, spent 50 */
    EXPECT(reserve(b, 0, 10) == BUDGET_OK, "50 + 40 held + 10 = 100");
    EXPECT(reserve(b, 0, 1) == BUDGET_WAIT, "no room while 50 are held");
    EXPECT(reserve(b, 0, 51) == BUDGET_NEVER, "50 spent + 51 > 100: never");
    EXPECT(reserve(b, 0, 50) == BUDGET_WAIT, "50 spent + 50 = 100: only waits");
    /* a WAIT or NEVER reserves nothing: settle the two held and see the whole room */
    EXPECT(settle(b, 0, 40, 0, 0) == 0 && settle(b, 0, 10, 0, 0) == 0 && spent_tokens(b) == 50, "nothing spent");
    EXPECT(reserve(b, 0, 50) == BUDGET_OK, "the rest of the limit once nothing is held");
    EXPECT(settle(b, 0, 50, 0, 50) == 0 && spent_tokens(b) == 100, "spent = limit");
    EXPECT(reserve(b, 0, 0) == BUDGET_OK, "at the limit a free request fits");
    EXPECT(settle(b, 0, 0, 0, 0) == 0, "settle nothing");
    EXPECT(reserve(b, 0, 1) == BUDGET_NEVER, "at the limit one token never fits");
    /* an answer that used more than its reservation (the server's count wins) */
    EXPECT(reserve(b, 0, 0) == BUDGET_OK && settle(b, 0, 0, 0, 7) == 0 && spent_tokens(b) == 107,
           "over the limit: %lld", (long long)spent_tokens(b));
    EXPECT(reserve(b, 0, 0) == BUDGET_NEVER, "over the limit even a free request is refused");
    budget_close(b);

    /* settling more than is held clamps at zero: it does not free room that was never held */
    b = open_ok(0, 100, NULL);
    EXPECT(reserve(b, 0, 30) == BUDGET_OK && settle(b, 0, 80, 0, 10) == 0, "over-release");
    EXPECT(reserve(b, 0, 90) == BUDGET_OK && reserve(b, 0, 1) == BUDGET_WAIT, "held 90 after the clamp, spent 10");
    budget_close(b);
    budget_close(NULL);
}

static void usd_in_memory(void) {
    LlmBudget *b = open_ok(0.01, 0, "");
    EXPECT(budget_limits_usd(b) == 1, "USD limit set");
    EXPECT(reserve(b, 0.004, 1000000) == BUDGET_OK, "no token limit: any tokens");
    EXPECT(reserve(b, 0.004, 0) == BUDGET_OK, "0.008 held");
    EXPECT(reserve(b, 0.004, 0) == BUDGET_WAIT, "0.012 > 0.01: wait");
    EXPECT(reserve(b, 0.0100001, 0) == BUDGET_NEVER, "more than the limit alone: never");
    EXPECT(reserve(b, 0.002, 0) == BUDGET_OK, "0.008 + 0.002 = the limit");
    EXPECT(settle(b, 0.004, 1000000, 0.003, 999) == 0 && fabs(spent_usd(b) - 0.003) < 1e-15 && spent_tokens(b) == 999,
           "spent $%.6f, %lld tokens", spent_usd(b), (long long)spent_tokens(b));
    budget_close(b);

    /* sums that equal the limit in decimal are not refused for binary rounding: 0.1 + 0.2 vs 0.3 */
    b = open_ok(0.3, 0, NULL);
    EXPECT(reserve(b, 0.1, 0) == BUDGET_OK && reserve(b, 0.2, 0) == BUDGET_OK, "0.1 + 0.2 within a limit of 0.3");
    EXPECT(settle(b, 0.1, 0, 0.1, 0) == 0 && settle(b, 0.2, 0, 0.2, 0) == 0, "settled");
    EXPECT(reserve(b, 0, 0) == BUDGET_OK, "spent 0.1 + 0.2: at the limit, not over");
    EXPECT(settle(b, 0, 0, 0, 0) == 0 && reserve(b, 1e-9, 0) == BUDGET_NEVER, "but a nano-dollar more is over");
    budget_close(b);

    /* both kinds: each binds on its own */
    b = open_ok(1.0, 50, NULL);
    EXPECT(reserve(b, 0.01, 51) == BUDGET_NEVER, "tokens bind under a loose USD limit");
    EXPECT(reserve(b, 1.5, 1) == BUDGET_NEVER, "USD binds under a loose token limit");
    EXPECT(reserve(b, 1.0, 50) == BUDGET_OK, "both at their limits");
    budget_close(b);
    /* no limit at all: everything fits */
    b = open_ok(0, 0, NULL);
    EXPECT(reserve(b, 1e12, (int64_t)1 << 60) == BUDGET_OK, "no limits");
    budget_close(b);
}

/* ---- the file ---------------------------------------------------------------------- */

static char *path_of(const char *name) { return xasprintf("%s/%s", TMP, name); }

static char *host(void) {
    char h[64] = "";
    if (gethostname(h, sizeof h - 1) != 0 || !h[0]) snprintf(h, sizeof h, "localhost");
    for (char *p = h; *p; p++)
        if (*p == ' ' || *p == '\n') *p = '_';
    return xstrdup(h);
}

/* The reservation line of (host, pid) in text: 1 with usd/tokens, or 0. */
static int reservation_of(const char *text, const char *h, long pid, double *usd, long long *tok) {
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        char hh[128];
        long pp;
        if (sscanf(p, "reserved %127s %ld %lf %lld", hh, &pp, usd, tok) == 4 && !strcmp(hh, h) && pp == pid) return 1;
    }
    return 0;
}

static void file_format(void) {
    char *f = path_of("format");
    char *h = host();
    LlmBudget *b = open_ok(2.5, 1000, f);
    char *t = test_read_file(f, NULL);
    EXPECT(t && !strcmp(t, "hdistill-budget 1\nspent 0.000000000 0\n"), "a new file: '%s'", t ? t : "(none)");
    free(t);
    EXPECT(reserve(b, 0.25, 300) == BUDGET_OK, "reserve");
    t = test_read_file(f, NULL);
    double u = 0;
    long long k = 0;
    EXPECT(t && !strncmp(t, "hdistill-budget 1\n", 18) && reservation_of(t, h, (long)getpid(), &u, &k) && u == 0.25 &&
               k == 300,
           "our reservation line: '%s'", t ? t : "");
    free(t);
    EXPECT(settle(b, 0.25, 300, 0.125, 120) == 0, "settle");
    t = test_read_file(f, NULL);
    EXPECT(t && !strcmp(t, "hdistill-budget 1\nspent 0.125000000 120\n"), "settled, no reservation line: '%s'", t ? t : "");
    free(t);
    EXPECT(reserve(b, 0.5, 10) == BUDGET_OK, "hold again");
    budget_close(b);
    t = test_read_file(f, NULL);
    EXPECT(t && !strcmp(t, "hdistill-budget 1\nspent 0.125000000 120\n"), "budget_close drops our reservation: '%s'",
           t ? t : "");
    free(t);
    /* reopened (a resumed run): what was spent is kept */
    b = open_ok(2.5, 1000, f);
    EXPECT(spent_tokens(b) == 120 && fabs(spent_usd(b) - 0.125) < 1e-12, "reopened: %lld", (long long)spent_tokens(b));
    EXPECT(reserve(b, 0, 881) == BUDGET_NEVER && reserve(b, 0, 880) == BUDGET_OK, "120 + 880 = 1000");
    budget_close(b);
    free(h), free(f);
}

static void reservations_of_others(void) {
    char *f = path_of("others");
    char *h = host();
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    pid_t alive = fork();
    if (alive == 0) {
        pause();
        _exit(0);
    }
    char *text = xasprintf("hdistill-budget 1\nspent 0.000000000 800\nreserved %s %ld 0.000000000 150\n"
                           "reserved %s %ld 0.000000000 40\nreserved other-host.example 4242 0.000000000 60\n",
                           h, (long)dead, h, (long)alive);
    test_write_file(f, text, -1);
    LlmBudget *b = open_ok(0, 1000, f);
    char *t = test_read_file(f, NULL);
    double u;
    long long k;
    EXPECT(t && !reservation_of(t, h, (long)dead, &u, &k), "a dead process's reservation is dropped:\n%s", t ? t : "");
    EXPECT(t && reservation_of(t, h, (long)alive, &u, &k) && k == 40, "a live process's stays");
    EXPECT(t && reservation_of(t, "other-host.example", 4242, &u, &k) && k == 60, "another host's stays");
    free(t);
    /* 800 spent + 100 held by others: 100 left now, 200 once they settle */
    EXPECT(reserve(b, 0, 100) == BUDGET_OK, "800 + 100 held + 100 = 1000");
    EXPECT(settle(b, 0, 100, 0, 0) == 0 && reserve(b, 0, 101) == BUDGET_WAIT, "others' reservations count");
    EXPECT(reserve(b, 0, 201) == BUDGET_NEVER && reserve(b, 0, 200) == BUDGET_WAIT, "never beyond what is spent");
    budget_close(b);
    t = test_read_file(f, NULL);
    EXPECT(t && reservation_of(t, h, (long)alive, &u, &k) && reservation_of(t, "other-host.example", 4242, &u, &k) &&
               !reservation_of(t, h, (long)getpid(), &u, &k),
           "closing removes only ours:\n%s", t ? t : "");
    free(t);
    kill(alive, SIGKILL);
    waitpid(alive, NULL, 0);
    /* the live process died: the next writer drops its line; the other host's stays (removed by hand) */
    b = open_ok(0, 1000, f);
    t = test_read_file(f, NULL);
    EXPECT(t && !reservation_of(t, h, (long)alive, &u, &k) && reservation_of(t, "other-host.example", 4242, &u, &k),
           "after its death:\n%s", t ? t : "");
    free(t);
    budget_close(b);
    free(text), free(h), free(f);
}

/* what another process spent is seen at our next reservation, not before */
static void state_as_last_read(void) {
    char *f = path_of("seen");
    LlmBudget *b = open_ok(0, 500, f);
    pid_t p = fork();
    if (p == 0) {
        LlmBudget *c = open_ok(0, 500, f);
        int ok = reserve(c, 0, 300) == BUDGET_OK && settle(c, 0, 300, 0, 300) == 0;
        budget_close(c);
        _exit(ok ? 0 : 1);
    }
    int st = 0;
    waitpid(p, &st, 0);
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the other process spent 300");
    EXPECT(spent_tokens(b) == 0, "state as last read: %lld", (long long)spent_tokens(b));
    EXPECT(reserve(b, 0, 201) == BUDGET_NEVER && spent_tokens(b) == 300, "read again at the reservation: %lld",
           (long long)spent_tokens(b));
    EXPECT(reserve(b, 0, 200) == BUDGET_OK, "the rest");
    budget_close(b);
    free(f);
}

static void file_errors(void) {
    Err e = {{0}};
    char *f = path_of("notbudget");
    test_write_file(f, "{\"spent\": 3}\n", -1);
    test_capture_begin(1);
    LlmBudget *b = budget_open(1, 0, f, &e);
    char *said = test_capture_end();
    EXPECT(!b && has(e.msg, f) && has(e.msg, "not an hdistill budget file"), "foreign file: %s", e.msg);
    EXPECT(!said[0], "a failed open reports through e only, nothing printed: '%s'", said); /* it warned the same line too */
    free(said);
    char *t = test_read_file(f, NULL);
    EXPECT(t && !strcmp(t, "{\"spent\": 3}\n"), "a foreign file is left as it was: %s", t ? t : "(gone)");
    free(t);
    test_write_file(f, "hdistill-budget 1\nspent lots 3\n", -1);
    memset(&e, 0, sizeof e);
    b = budget_open(1, 0, f, &e);
    EXPECT(!b && has(e.msg, f) && has(e.msg, "bad line 'spent lots 3'"), "bad spent line: %s", e.msg);
    test_write_file(f, "hdistill-budget 1\nspent 0 0\nreserved onlyhost\n", -1);
    memset(&e, 0, sizeof e);
    b = budget_open(1, 0, f, &e);
    EXPECT(!b && has(e.msg, "bad line 'reserved onlyhost'"), "bad reservation line: %s", e.msg);
    test_write_file(f, "hdistill-budget 1\nspent 0 0\nborrowed 5\n", -1);
    memset(&e, 0, sizeof e);
    b = budget_open(1, 0, f, &e);
    EXPECT(!b && has(e.msg, "bad line 'borrowed 5'"), "unknown line: %s", e.msg);
    /* an empty file is a new budget */
    test_write_file(f, "", 0);
    b = budget_open(0, 10, f, &e);
    EXPECT(b && reserve(b, 0, 10) == BUDGET_OK, "an empty file starts a budget");
    budget_close(b);
    free(f);
    /* a path that cannot be opened */
    f = path_of("missing-dir/budget");
    memset(&e, 0, sizeof e);
    b = budget_open(1, 0, f, &e);
    EXPECT(!b && has(e.msg, f) && has(e.msg, "cannot open the budget file"), "missing directory: %s", e.msg);
    free(f);
    memset(&e, 0, sizeof e);
    b = budget_open(1, 0, TMP, &e);
    EXPECT(!b && has(e.msg, TMP), "a directory: %s", e.msg);
    /* a file that went bad under a running budget: reserve and settle fail, nothing is sent */
    f = path_of("spoilt");
    b = open_ok(0, 100, f);
    EXPECT(reserve(b, 0, 10) == BUDGET_OK, "reserve");
    test_write_file(f, "garbage\n", -1);
    memset(&e, 0, sizeof e);
    EXPECT(budget_reserve(b, 0, 1, &e) == -1 && has(e.msg, f), "reserve on a spoilt file: %s", e.msg);
    memset(&e, 0, sizeof e);
    EXPECT(budget_settle(b, 0, 10, 0, 10, &e) == -1 && has(e.msg, f), "settle on a spoilt file: %s", e.msg);
    test_capture_begin(1);
    budget_close(b); /* warns, frees */
    char *out = test_capture_end();
    EXPECT(has(out, f), "closing on a spoilt file warns: %s", out);
    free(out), free(f);
}

/* Four processes reserve 1 token and settle it, as fast as they can, until
 * the shared limit says never: exactly the limit is spent, none lost. */
static void concurrent_processes(void) {
    enum { P = 4, LIMIT = 400 };
    char *f = path_of("shared");
    int fds[P][2];
    pid_t kids[P];
    for (int p = 0; p < P; p++) {
        if (pipe(fds[p]) != 0) abort();
        if ((kids[p] = fork()) == 0) {
            close(fds[p][0]);
            LlmBudget *b = open_ok(0, LIMIT, f);
            int ok = 0, waits = 0, bad = 0;
            for (;;) {
                int v = reserve(b, 0, 1);
                if (v == BUDGET_OK) {
                    ok++;
                    bad |= settle(b, 0, 1, 0, 1) != 0;
                } else if (v == BUDGET_WAIT) {
                    waits++;
                } else {
                    bad |= v != BUDGET_NEVER;
                    break;
                }
            }
            budget_close(b);
            int msg[3] = {ok, waits, bad};
            if (write(fds[p][1], msg, sizeof msg) != (ssize_t)sizeof msg) _exit(3);
            _exit(0);
        }
        close(fds[p][1]);
    }
    int total = 0, bad = 0, rc = 0;
    for (int p = 0; p < P; p++) {
        int msg[3] = {0, 0, 1};
        if (read(fds[p][0], msg, sizeof msg) != (ssize_t)sizeof msg) bad = 1;
        close(fds[p][0]);
        int st = 0;
        waitpid(kids[p], &st, 0);
        rc |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
        total += msg[0], bad |= msg[2];
    }
    LlmBudget *b = open_ok(0, LIMIT, f);
    char *t = test_read_file(f, NULL);
    EXPECT(!rc && !bad && total == LIMIT && spent_tokens(b) == LIMIT && t && !strstr(t, "reserved"),
           "%d processes: %d reservations granted, %lld spent of %d:\n%s", P, total, (long long)spent_tokens(b), LIMIT,
           t ? t : "");
    free(t);
    budget_close(b);
    free(f);
}

/* ---- configuration ------------------------------------------------------------------- */

static void from_config(void) {
    Config c;
    config_init(&c);
    Err e = {{0}};
    LlmBudget *b = (LlmBudget *)&b;
    EXPECT(budget_open_config(&c, &b, &e) == 0 && b == NULL, "no limit: no budget");
    c.llm.budget_tokens = 77;
    EXPECT(budget_open_config(&c, &b, &e) == 0 && b, "a token limit: %s", e.msg);
    int64_t lt = 0;
    double lu = -1;
    if (b) budget_state(b, NULL, NULL, &lu, &lt);
    EXPECT(lt == 77 && lu == 0 && !budget_limits_usd(b), "limits of the configuration");
    budget_close(b);
    c.llm.budget_tokens = 0;
    free(c.llm.budget_file);
    c.llm.budget_file = path_of("cfg");
    memset(&e, 0, sizeof e);
    b = (LlmBudget *)&b;
    EXPECT(budget_open_config(&c, &b, &e) == -1 && b == NULL && has(e.msg, "llm.budget_file") &&
               has(e.msg, "llm.budget_usd"),
           "a file without a limit: %s", e.msg);
    c.llm.budget_usd = 0.5;
    EXPECT(budget_open_config(&c, &b, &e) == 0 && b && budget_limits_usd(b) && util_file_exists(c.llm.budget_file),
           "USD limit in a file: %s", e.msg);
    budget_close(b);
    free(c.llm.budget_file);
    c.llm.budget_file = path_of("nodir/x");
    memset(&e, 0, sizeof e);
    EXPECT(budget_open_config(&c, &b, &e) == -1 && b == NULL && has(e.msg, "nodir/x"), "unopenable: %s", e.msg);
    config_free(&c);
}

/* ---- prices and reasoning tokens, through the client ---------------------------------- */

static void prices_and_reasoning(void) {
    ServeOptions so;
    serve_options_init(&so);
    so.quiet = 1;
    so.seed = 5;
    so.dialect = DIALECT_OPENAI_REASONING;
    Err e = {{0}};
    Server *s = serve_start(&so, &e);
    if (!s) {
        EXPECT(0, "stand-in: %s", e.msg);
        return;
    }
    Config c;
    config_init(&c);
    EndpointConfig *ec = &c.teacher;
    ec->token_param = TOKEN_PARAM_MAX_COMPLETION_TOKENS;
    free(ec->reasoning_effort);
    ec->reasoning_effort = xstrdup("high"); /* 256 hidden reasoning tokens per answer (dialect.h) */
    ec->temperature = -1, ec->top_p = -1;
    ec->max_tokens = 600;
    ec->concurrency = 2;
    ec->backoff = 0.02;
    char *url = xstrdup(serve_base_url(s));
    LlmEndpoint ep;

    /* missing prices: a USD limit is refused, a token limit is not */
    llm_endpoint_init(&ep, ec, "teacher", url, 0);
    ep.price_in = ep.price_out = 0;
    LlmClient *cl = llm_client_create(&ep, NULL, &e);
    CHECK(cl, "%s", e.msg);
    LlmBudget *b = open_ok(1.0, 0, NULL);
    memset(&e, 0, sizeof e);
    EXPECT(llm_client_set_budget(cl, b, &e) == -1 && has(e.msg, "teacher.price_in") && llm_client_budget(cl) == NULL,
           "USD limit without prices: %s", e.msg);
    budget_close(b);
    b = open_ok(0, 100000, NULL);
    EXPECT(llm_client_set_budget(cl, b, &e) == 0 && llm_client_budget(cl) == b, "token limit without prices: %s", e.msg);
    llm_client_destroy(cl);
    budget_close(b);

    /* priced ($2 in, $8 out per million), a limit of about three answers */
    ep.price_in = 2, ep.price_out = 8;
    cl = llm_client_create(&ep, NULL, &e);
    CHECK(cl, "%s", e.msg);
    enum { N = 8 };
    ChatRequest q[N];
    LlmResult r[N];
    memset(r, 0, sizeof r);
    for (int i = 0; i < N; i++)
        teacher_request(ec, "the committee approved the new budget after a long debate", 3, &q[i]), q[i].seed = i;
    double bound_usd;
    int64_t bound_tok;
    llm_request_bound(cl, &q[0], &bound_usd, &bound_tok);
    EXPECT(bound_tok >= 600 && fabs(bound_usd - ((double)(bound_tok - 600) * 2 + 600.0 * 8) / 1e6) < 1e-12,
           "bound: %lld tokens, $%g", (long long)bound_tok, bound_usd);
    int64_t limit = 3 * bound_tok + bound_tok / 2;
    b = open_ok(0, limit, NULL);
    EXPECT(llm_client_set_budget(cl, b, &e) == 0, "%s", e.msg);
    llm_run(cl, q, N, r, NULL);
    int64_t want_tok = 0, reasoning = 0;
    double want_usd = 0;
    int ok = 0, refused = 0;
    for (int i = 0; i < N; i++) {
        if (r[i].status == LLM_OK) {
            ok++;
            want_tok += r[i].resp.prompt_tokens + r[i].resp.completion_tokens;
            want_usd += ((double)r[i].resp.prompt_tokens * 2 + (double)r[i].resp.completion_tokens * 8) / 1e6;
            reasoning += r[i].resp.reasoning_tokens;
        }
        refused += r[i].status == LLM_E_BUDGET;
    }
    EXPECT(ok >= 3 && refused > 0 && ok + refused == N && reasoning == 256LL * ok,
           "%d answered, %d refused by the budget, %lld reasoning tokens", ok, refused, (long long)reasoning);
    EXPECT(spent_tokens(b) == want_tok && spent_tokens(b) <= limit,
           "spent %lld tokens = the answers' prompt + completion (reasoning included) %lld, limit %lld",
           (long long)spent_tokens(b), (long long)want_tok, (long long)limit);
    EXPECT(fabs(spent_usd(b) - want_usd) < 1e-12 && want_usd > 256.0 * 8 * ok / 1e6,
           "spent $%.9f = the answers at the prices (reasoning billed as output) $%.9f", spent_usd(b), want_usd);
    for (int i = 0; i < N; i++) chat_request_free(&q[i]), llm_result_free(&r[i]);
    llm_client_destroy(cl);
    budget_close(b);
    free(url);
    config_free(&c);
    serve_stop(s);
}

int main(void) {
    log_set_quiet(1);
    TMP = test_tmpdir("test_budget");
    tokens_in_memory();
    usd_in_memory();
    file_format();
    reservations_of_others();
    state_as_last_read();
    file_errors();
    concurrent_processes();
    from_config();
    prices_and_reasoning();
    test_rm_rf(TMP);
    free(TMP);
    return test_summary();
}

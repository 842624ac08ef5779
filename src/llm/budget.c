/* budget -- spend limits with reservations, optionally shared through a
 * file; see include/llm/budget.h. */
#include "llm/budget.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char host[64];
    long pid;
    double usd;
    int64_t tokens;
} Reservation;

/* the shared state, as read from the file (or kept in memory) */
typedef struct {
    double spent_usd;
    int64_t spent_tokens;
    Reservation *res;
    size_t n_res;
} Ledger;

struct LlmBudget {
    double limit_usd;
    int64_t limit_tokens;
    char *path; /* NULL: in memory */
    int fd;
    char host[64];
    long pid;
    Ledger mem;            /* in memory (no file), and the last state read */
};

static void ledger_free(Ledger *l) {
    free(l->res);
    memset(l, 0, sizeof *l);
}

static Reservation *mine(Ledger *l, const LlmBudget *b) {
    for (size_t i = 0; i < l->n_res; i++)
        if (l->res[i].pid == b->pid && !strcmp(l->res[i].host, b->host)) return &l->res[i];
    l->res = xrealloc(l->res, sizeof(Reservation) * (l->n_res + 1));
    Reservation *r = &l->res[l->n_res++];
    memset(r, 0, sizeof *r);
    snprintf(r->host, sizeof r->host, "%s", b->host);
    r->pid = b->pid;
    return r;
}

/* Parses the file's text; reservations of dead processes of this host are dropped. */
static int ledger_parse(const LlmBudget *b, const char *text, Ledger *l, Err *e) {
    memset(l, 0, sizeof *l);
    if (!*text) return 0;
    if (strncmp(text, "hdistill-budget 1\n", 18) != 0)
        return err_set(e, "%s: not an hdistill budget file (hint: llm.budget_file names a file hdistill writes)",
                       b->path);
    for (const char *p = text + 18; *p;) {
        const char *nl = strchr(p, '\n');
        char line[256];
        snprintf(line, sizeof line, "%.*s", (int)(nl ? nl - p : (long)strlen(p)), p);
        Reservation r = {0};
        long long tok = 0;
        if (!strncmp(line, "spent ", 6)) {
            if (sscanf(line + 6, "%lf %lld", &l->spent_usd, &tok) != 2)
                return err_set(e, "%s: bad line '%s'", b->path, line);
            l->spent_tokens = tok;
        } else if (!strncmp(line, "reserved ", 9)) {
            if (sscanf(line + 9, "%63s %ld %lf %lld", r.host, &r.pid, &r.usd, &tok) != 4)
                return err_set(e, "%s: bad line '%s'", b->path, line);
            r.tokens = tok;
            int dead = !strcmp(r.host, b->host) && r.pid != b->pid && kill((pid_t)r.pid, 0) != 0 && errno == ESRCH;
            if (!dead && (r.usd > 0 || r.tokens > 0)) {
                l->res = xrealloc(l->res, sizeof(Reservation) * (l->n_res + 1));
                l->res[l->n_res++] = r;
            }
        } else if (line[0]) {
            return err_set(e, "%s: bad line '%s'", b->path, line);
        }
        p = nl ? nl + 1 : p + strlen(p);
    }
    return 0;
}

static int ledger_write(const LlmBudget *b, const Ledger *l, Err *e) {
    ByteBuf t = {0};
    bytebuf_printf(&t, "hdistill-budget 1\nspent %.9f %lld\n", l->spent_usd, (long long)l->spent_tokens);
    for (size_t i = 0; i < l->n_res; i++)
        if (l->res[i].usd > 1e-12 || l->res[i].tokens > 0)
            bytebuf_printf(&t, "reserved %s %ld %.9f %lld\n", l->res[i].host, l->res[i].pid, l->res[i].usd,
                           (long long)l->res[i].tokens);
    int rc = 0;
    if (ftruncate(b->fd, 0) != 0) rc = err_set(e, "%s: %s", b->path, strerror(errno));
    size_t done = 0;
    while (rc == 0 && done < t.n) {
        ssize_t w = pwrite(b->fd, t.a + done, t.n - done, (off_t)done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) rc = err_set(e, "%s: write failed: %s", b->path, strerror(errno));
        else done += (size_t)w;
    }
    bytebuf_free(&t);
    return rc;
}

/* Locks and reads the ledger (file) or copies the in-memory one. */
static int ledger_load(LlmBudget *b, Ledger *l, Err *e) {
    memset(l, 0, sizeof *l);
    if (!b->path) {
        *l = b->mem;
        l->res = b->mem.n_res ? xmalloc(sizeof(Reservation) * b->mem.n_res) : NULL;
        if (b->mem.n_res) memcpy(l->res, b->mem.res, sizeof(Reservation) * b->mem.n_res);
        return 0;
    }
    while (flock(b->fd, LOCK_EX) != 0)
        if (errno != EINTR) return err_set(e, "%s: cannot lock: %s", b->path, strerror(errno));
    struct stat st;
    if (fstat(b->fd, &st) != 0) return err_set(e, "%s: %s", b->path, strerror(errno));
    char *text = xcalloc((size_t)st.st_size + 1, 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = pread(b->fd, text + got, (size_t)st.st_size - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    text[got] = 0;
    int rc = ledger_parse(b, text, l, e);
    free(text);
    return rc;
}

/* Writes l back (file, then unlock) or into memory; takes l. */
static int ledger_store(LlmBudget *b, Ledger *l, int changed, Err *e) {
    int rc = 0;
    if (b->path) {
        if (changed) rc = ledger_write(b, l, e);
        flock(b->fd, LOCK_UN);
    }
    ledger_free(&b->mem);
    b->mem = *l;
    return rc;
}

LlmBudget *budget_open(double limit_usd, int64_t limit_tokens, const char *file, Err *e) {
    LlmBudget *b = xcalloc(1, sizeof *b);
    b->limit_usd = limit_usd;
    b->limit_tokens = limit_tokens;
    b->fd = -1;
    b->pid = (long)getpid();
    if (gethostname(b->host, sizeof b->host - 1) != 0 || !b->host[0]) snprintf(b->host, sizeof b->host, "localhost");
    for (char *p = b->host; *p; p++)
        if (*p == ' ' || *p == '\n') *p = '_';
    if (file && *file) {
        b->path = xstrdup(file);
        b->fd = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        Ledger l;
        if (b->fd < 0) {
            err_set(e, "%s: cannot open the budget file: %s", file, strerror(errno));
        } else if (ledger_load(b, &l, e) == 0) {
            if (ledger_store(b, &l, 1, e) == 0) return b;
        } else {
            flock(b->fd, LOCK_UN);
            ledger_free(&l);
        }
        if (b->fd >= 0) close(b->fd); /* nothing reserved yet: no second reading of a file that failed (it warned) */
        b->fd = -1;
        budget_close(b);
        return NULL;
    }
    return b;
}

int budget_open_config(const Config *cfg, LlmBudget **out, Err *e) {
    *out = NULL;
    if (cfg->llm.budget_usd <= 0 && cfg->llm.budget_tokens <= 0) {
        if (cfg->llm.budget_file && cfg->llm.budget_file[0])
            return err_set(e, "%s: llm.budget_file is set but neither llm.budget_usd nor llm.budget_tokens",
                           cfg->source);
        return 0;
    }
    *out = budget_open(cfg->llm.budget_usd, cfg->llm.budget_tokens, cfg->llm.budget_file, e);
    return *out ? 0 : -1;
}

void budget_close(LlmBudget *b) {
    if (!b) return;
    if (b->fd >= 0) {
        Ledger l;
        Err e;
        if (ledger_load(b, &l, &e) == 0) {
            Reservation *r = mine(&l, b);
            r->usd = 0, r->tokens = 0;
            if (ledger_store(b, &l, 1, &e) != 0) log_warn("%s", e.msg);
        } else {
            flock(b->fd, LOCK_UN);
            ledger_free(&l);
            log_warn("%s", e.msg);
        }
        close(b->fd);
    }
    ledger_free(&b->mem);
    free(b->path);
    free(b);
}

int budget_reserve(LlmBudget *b, double usd, int64_t tokens, Err *e) {
    Ledger l;
    if (ledger_load(b, &l, e) != 0) {
        if (b->path) flock(b->fd, LOCK_UN);
        ledger_free(&l);
        return -1;
    }
    double held_usd = 0;
    int64_t held_tok = 0;
    for (size_t i = 0; i < l.n_res; i++) held_usd += l.res[i].usd, held_tok += l.res[i].tokens;
    int verdict = BUDGET_OK;
    if ((b->limit_usd > 0 && l.spent_usd + usd > b->limit_usd + 1e-12) ||
        (b->limit_tokens > 0 && l.spent_tokens + tokens > b->limit_tokens))
        verdict = BUDGET_NEVER;
    else if ((b->limit_usd > 0 && l.spent_usd + held_usd + usd > b->limit_usd + 1e-12) ||
             (b->limit_tokens > 0 && l.spent_tokens + held_tok + tokens > b->limit_tokens))
        verdict = BUDGET_WAIT;
    if (verdict == BUDGET_OK) {
        Reservation *r = mine(&l, b);
        r->usd += usd;
        r->tokens += tokens;
    }
    return ledger_store(b, &l, verdict == BUDGET_OK, e) ? -1 : verdict;
}

int budget_settle(LlmBudget *b, double reserved_usd, int64_t reserved_tokens, double spent_usd,
                  int64_t spent_tokens, Err *e) {
    Ledger l;
    if (ledger_load(b, &l, e) != 0) {
        if (b->path) flock(b->fd, LOCK_UN);
        ledger_free(&l);
        return -1;
    }
    Reservation *r = mine(&l, b);
    r->usd -= reserved_usd;
    r->tokens -= reserved_tokens;
    if (r->usd < 1e-12) r->usd = 0;
    if (r->tokens < 0) r->tokens = 0;
    l.spent_usd += spent_usd;
    l.spent_tokens += spent_tokens;
    return ledger_store(b, &l, 1, e);
}

void budget_state(const LlmBudget *b, double *spent_usd, int64_t *spent_tokens, double *limit_usd,
                  int64_t *limit_tokens) {
    if (spent_usd) *spent_usd = b->mem.spent_usd;
    if (spent_tokens) *spent_tokens = b->mem.spent_tokens;
    if (limit_usd) *limit_usd = b->limit_usd;
    if (limit_tokens) *limit_tokens = b->limit_tokens;
}

int budget_limits_usd(const LlmBudget *b) { return b && b->limit_usd > 0; }

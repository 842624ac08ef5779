/* session -- one LLM role of a stage, opened once: the endpoint (the
 * built-in stand-in is started for base_url "standin" and stopped on
 * close), the client over the stage's durable response cache, the run's
 * spend limit, the record of its usage, and what the outcomes of a stage's
 * requests mean for the stage (LlmOutcome).
 *
 * Every stage that talks to an LLM (teach, critique, eval) goes through
 * here, so the cache file of a stage and the usage schema are decided in
 * one place:
 *   cache  llm.cache when set; else data.path + ".llm-cache" for teach
 *          (shared by every run of a sweep) and run.dir/llm-cache for the
 *          critic and judges of a run.
 *   budget llm.budget_usd / llm.budget_tokens: one LlmBudget per process,
 *          shared by every session open at once, kept in llm.budget_file,
 *          else run.dir/llm-budget, so the limit holds across the stages of
 *          a run, across resumes, and (with a shared file) across a sweep.
 *   usage  the attributes of one object (a string dataset describing them),
 *          each the SUM over every process that recorded into the object (a
 *          resumed stage adds to it); the schema is in docs/file-formats.md
 *          ("The usage schema").
 * Rank 0 only.
 */
#ifndef HDISTILL_SESSION_H
#define HDISTILL_SESSION_H

#include "base/config.h"
#include "io/store.h"
#include "llm/cache.h"
#include "llm/llm.h"
#include "standin/serve.h"

typedef struct {
    char *name;                 /* role: "teacher", "critic", a judge's name */
    char *url;                  /* the base URL requests go to */
    const EndpointConfig *ec;   /* borrowed: the role's configuration */
    LlmEndpoint ep;
    Server *standin;            /* started for base_url "standin", else NULL */
    LlmClient *client;
} LlmSession;

typedef enum { SESSION_DATA = 0, SESSION_RUN = 1 } SessionScope;

/* The cache file of a stage (malloc'd): llm.cache, else data.path +
 * ".llm-cache" (SESSION_DATA) or run.dir/llm-cache (SESSION_RUN). */
char *session_cache_path(const Config *cfg, SessionScope scope);
/* Opens that cache (one writer at a time: cache.h).  NULL with e set. */
LlmCache *session_cache_open(const Config *cfg, SessionScope scope, Err *e);

/* Opens role `name` of configuration ec over cache (borrowed; may be shared
 * by several sessions of one stage), under the run's budget when one is
 * set.  -1 with e set (the stand-in cannot start, the API key variable is
 * unset, the role cannot be budgeted, ...); s is then empty. */
int session_open(LlmSession *s, const Config *cfg, const EndpointConfig *ec, const char *name, LlmCache *cache,
                 Err *e);
/* The same without the budget, for --dry-run (no budget file is made). */
int session_open_plan(LlmSession *s, const Config *cfg, const EndpointConfig *ec, const char *name, LlmCache *cache,
                      Err *e);
/* Stops the stand-in (if any), releases the budget (closed with its last
 * session) and frees s; accepts an empty session. */
void session_close(LlmSession *s);

/* The request options of the roles a configuration names (teacher and
 * critic: extra_body, reasoning_effort, ...; chat_endpoint_check).  -1 with
 * e set naming the key. */
int session_check_config(const Config *cfg, Err *e);

/* For --dry-run, logs "plan: teacher: 120 requests: 20 cached, 100 to send;
 * ~4000 prompt + <= 25600 completion tokens; <= $0.0812" for reqs[0..n)
 * repeated `times` times (all figures multiplied), at half price in batch
 * mode.  approx: the requests stand in for ones that depend on outputs not
 * yet made (the critic's: the teacher's texts in place of the student's),
 * so the figures are estimates.  The spend limit, when set, is printed too. */
void session_log_estimate(const LlmSession *s, const Config *cfg, const ChatRequest *reqs, size_t n, double times,
                          int approx);

/* What the final outcomes of a stage's requests mean for the stage.
 * Refusals and content filters are final answers, never failures.  The
 * kinds a rerun with the same configuration cannot fix stop the stage at
 * once and fail it: http_4xx, insufficient_quota, reasoning_length.  A
 * request the budget did not allow stops it resumably (STATUS_BUDGET,
 * exit 4).  A stop signal stops it (exit 3).  Other failures (after their
 * retries) fail it: run again to ask only for those. */
typedef struct {
    int64_t ok, refused, filtered;
    int64_t failed;     /* every failure, the final kinds included */
    int64_t final;      /* of failed: http_4xx, insufficient_quota, reasoning_length */
    int64_t budget;     /* not sent: the spend limit */
    int64_t stopped;    /* not answered: a stop signal */
    LlmStatus first;    /* the failure reported: the first of a final kind, else the first */
    char first_msg[256];
} LlmOutcome;
/* Counts one request's final status (error: its LlmResult.error). */
void session_outcome_add(LlmOutcome *o, LlmStatus st, const char *error);
/* The stage's status from o; e gets one line for anything but STATUS_OK
 * ("<what>: ..." quoting the client's error; for the budget, what was spent
 * of which limit and how many requests were not sent).  b may be NULL. */
Status session_outcome_status(const LlmOutcome *o, const LlmBudget *b, const char *what, Err *e);

/* Adds the session's usage so far to the attributes of obj in f (created
 * with description desc when missing). */
int session_record_usage(const LlmSession *s, StoreFile *f, const char *obj, const char *desc, Err *e);
/* Reads the usage recorded at obj into u (zeros when there is none). */
void session_read_usage(StoreFile *f, const char *obj, LlmUsage *u);
/* The same for a usage record u (for stages that keep a client's usage past
 * the session, and for tests). */
int session_add_usage(const LlmUsage *u, StoreFile *f, const char *obj, const char *desc, Err *e);

#endif

/* session -- one LLM role of a stage, opened once: the endpoint (the
 * built-in stand-in is started for base_url "standin" and stopped on
 * close), the client over the stage's durable response cache, and the
 * record of its usage.
 *
 * Every stage that talks to an LLM (teach, critique, eval) goes through
 * here, so the cache file of a stage and the usage schema are decided in
 * one place:
 *   cache  llm.cache when set; else data.path + ".llm-cache" for teach
 *          (shared by every run of a sweep) and run.dir/llm-cache for the
 *          critic and judges of a run.
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
 * by several sessions of one stage).  -1 with e set (the stand-in cannot
 * start, the API key variable is unset, ...); s is then empty. */
int session_open(LlmSession *s, const Config *cfg, const EndpointConfig *ec, const char *name, LlmCache *cache,
                 Err *e);
/* Stops the stand-in (if any) and frees s; accepts an empty session. */
void session_close(LlmSession *s);

/* Adds the session's usage so far to the attributes of obj in f (created
 * with description desc when missing). */
int session_record_usage(const LlmSession *s, StoreFile *f, const char *obj, const char *desc, Err *e);
/* Reads the usage recorded at obj into u (zeros when there is none). */
void session_read_usage(StoreFile *f, const char *obj, LlmUsage *u);
/* The same for a usage record u (for stages that keep a client's usage past
 * the session, and for tests). */
int session_add_usage(const LlmUsage *u, StoreFile *f, const char *obj, const char *desc, Err *e);

#endif

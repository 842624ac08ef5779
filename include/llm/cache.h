/* cache -- durable cache of LLM responses, keyed by the canonical request
 * key (chat.h).
 *
 * An append-only file of records (header line + response body; the record
 * layout is in docs/file-formats.md, "LLM response caches"), each
 * written with one write(2) as soon as a response arrives, so a
 * process killed with SIGKILL loses nothing that was answered; fsync runs at
 * most every sync_seconds (and on close) for node crashes.  On open, a torn
 * last record (killed mid-write) is cut off and later records win.  The
 * file is locked (flock) so two processes cannot append to it at once.
 * Only successful responses are stored.
 */
#ifndef HDISTILL_CACHE_H
#define HDISTILL_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

typedef struct LlmCache LlmCache;

/* Opens (creating) path; NULL with e set on I/O errors or if another
 * process holds it. */
LlmCache *cache_open(const char *path, double sync_seconds, Err *e);
/* Syncs and closes; accepts NULL. */
void cache_close(LlmCache *c);

/* The body stored for key, or NULL; the pointer stays valid until close. */
const char *cache_get(LlmCache *c, const char *key, size_t *len);
/* Appends a record; returns 0 or -1 with e set (disk full...). */
int cache_put(LlmCache *c, const char *key, const char *body, size_t len, Err *e);
/* fsyncs now. */
int cache_sync(LlmCache *c, Err *e);

int64_t cache_count(const LlmCache *c);
/* Records dropped when opening (a torn tail). */
int64_t cache_dropped(const LlmCache *c);
const char *cache_path(const LlmCache *c);

#endif

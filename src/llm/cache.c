/* cache -- append-only durable response cache; see include/llm/cache.h. */
#include "llm/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/text.h"

typedef struct {
    char key[65];
    char *body;
    size_t len;
    int used;
} Slot;

struct LlmCache {
    char *path;
    int fd;
    Slot *slots;
    size_t cap, count;
    int64_t dropped;
    double sync_seconds, last_sync;
    int dirty;
};

static uint64_t key_hash(const char *key) {
    uint64_t h = 0;
    for (int i = 0; i < 16; i++) {
        char c = key[i];
        h = h * 16 + (uint64_t)(c >= 'a' ? c - 'a' + 10 : c - '0');
    }
    return h;
}

static void grow(LlmCache *c);

static Slot *find(LlmCache *c, const char *key) {
    size_t i = key_hash(key) & (c->cap - 1);
    while (c->slots[i].used) {
        if (memcmp(c->slots[i].key, key, 64) == 0) return &c->slots[i];
        i = (i + 1) & (c->cap - 1);
    }
    return &c->slots[i];
}

static void insert(LlmCache *c, const char *key, const char *body, size_t len) {
    if ((c->count + 1) * 2 > c->cap) grow(c);
    Slot *s = find(c, key);
    if (s->used) {
        free(s->body); /* a later record wins */
    } else {
        memcpy(s->key, key, 64);
        s->key[64] = 0;
        s->used = 1;
        c->count++;
    }
    s->body = xstrndup(body, len);
    s->len = len;
}

static void grow(LlmCache *c) {
    Slot *old = c->slots;
    size_t oldcap = c->cap;
    c->cap = c->cap ? c->cap * 2 : 1024;
    c->slots = xcalloc(c->cap, sizeof(Slot));
    c->count = 0;
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].used) {
            Slot *s = find(c, old[i].key);
            *s = old[i];
            c->count++;
        }
    free(old);
}

static int is_hex(const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) return 0;
    return 1;
}

/* Parses records from buf; returns the offset of the first byte that is not
 * part of a complete, valid record. */
static size_t load(LlmCache *c, const char *buf, size_t n) {
    size_t off = 0;
    while (off < n) {
        const char *nl = memchr(buf + off, '\n', n - off);
        if (!nl) break;
        size_t hl = (size_t)(nl - (buf + off));
        /* "HDC1 " + 64 + " " + len + " " + 16 */
        if (hl < 5 + 64 + 1 + 1 + 1 + 16 || memcmp(buf + off, "HDC1 ", 5) != 0) break;
        const char *key = buf + off + 5;
        if (!is_hex(key, 64) || key[64] != ' ') break;
        char *end;
        unsigned long long len = strtoull(key + 65, &end, 10);
        if (*end != ' ' || nl - end - 1 != 16 || !is_hex(end + 1, 16)) break;
        uint64_t sum = strtoull(end + 1, NULL, 16);
        size_t body = (size_t)(nl - buf) + 1;
        if (body + len + 1 > n || buf[body + len] != '\n') break;
        if (text_fnv1a64(buf + body, len) != sum) break;
        insert(c, key, buf + body, len);
        off = body + len + 1;
    }
    return off;
}

LlmCache *cache_open(const char *path, double sync_seconds, Err *e) {
    int fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        err_set(e, "%s: cannot open the LLM cache: %s", path, strerror(errno));
        return NULL;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        err_set(e, "%s: the LLM cache is in use by another process (hint: one stage per cache file)",
                path);
        close(fd);
        return NULL;
    }
    LlmCache *c = xcalloc(1, sizeof *c);
    c->path = xstrdup(path);
    c->fd = fd;
    c->sync_seconds = sync_seconds;
    c->last_sync = util_now();
    grow(c);
    size_t n = 0;
    Err e2;
    char *buf = util_read_file(path, &n, &e2);
    if (!buf) {
        err_set(e, "%s", e2.msg);
        cache_close(c);
        return NULL;
    }
    size_t good = load(c, buf, n);
    if (good < n) {
        /* a torn or corrupt tail: keep what is whole, cut the rest */
        c->dropped = 1;
        log_warn("%s: dropping %zu bytes of an incomplete record at the end (killed mid-write?)",
                 path, n - good);
        if (ftruncate(fd, (off_t)good) != 0) {
            err_set(e, "%s: cannot truncate the torn tail: %s", path, strerror(errno));
            free(buf);
            cache_close(c);
            return NULL;
        }
    }
    free(buf);
    return c;
}

int cache_sync(LlmCache *c, Err *e) {
    if (!c || !c->dirty) return 0;
    if (fsync(c->fd) != 0) return err_set(e, "%s: fsync failed: %s", c->path, strerror(errno));
    c->dirty = 0;
    c->last_sync = util_now();
    return 0;
}

void cache_close(LlmCache *c) {
    if (!c) return;
    Err e;
    if (cache_sync(c, &e) != 0) log_warn("%s", e.msg);
    if (c->fd >= 0) close(c->fd);
    for (size_t i = 0; i < c->cap; i++)
        if (c->slots[i].used) free(c->slots[i].body);
    free(c->slots);
    free(c->path);
    free(c);
}

const char *cache_get(LlmCache *c, const char *key, size_t *len) {
    if (!c) return NULL;
    Slot *s = find(c, key);
    if (!s->used) return NULL;
    if (len) *len = s->len;
    return s->body;
}

int cache_put(LlmCache *c, const char *key, const char *body, size_t len, Err *e) {
    CHECK(strlen(key) == 64, "cache key must be 64 hex characters");
    char hdr[128];
    int hn = snprintf(hdr, sizeof hdr, "HDC1 %s %zu %016llx\n", key, len,
                      (unsigned long long)text_fnv1a64(body, len));
    size_t total = (size_t)hn + len + 1;
    char *rec = xmalloc(total);
    memcpy(rec, hdr, (size_t)hn);
    memcpy(rec + hn, body, len);
    rec[total - 1] = '\n';
    size_t done = 0;
    while (done < total) {
        ssize_t w = write(c->fd, rec + done, total - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            free(rec);
            return err_set(e, "%s: cannot append to the LLM cache: %s (disk full?)", c->path,
                           strerror(errno));
        }
        done += (size_t)w;
    }
    free(rec);
    insert(c, key, body, len);
    c->dirty = 1;
    if (util_now() - c->last_sync >= c->sync_seconds) return cache_sync(c, e);
    return 0;
}

int64_t cache_count(const LlmCache *c) { return c ? (int64_t)c->count : 0; }
int64_t cache_dropped(const LlmCache *c) { return c ? c->dropped : 0; }
const char *cache_path(const LlmCache *c) { return c ? c->path : ""; }

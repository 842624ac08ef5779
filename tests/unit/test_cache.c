/* test_cache -- the durable response cache (cache.c): round trip, a second
 * process locked out, later record wins, a torn last record cut off on
 * reopen, appends after the repair. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/sha256.h"
#include "base/util.h"
#include "llm/cache.h"
#include "test.h"

static void test_cache(void) {
    char path[] = "/tmp/hdistill-cache-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    Err e;
    LlmCache *c = cache_open(path, 0, &e);
    EXPECT(c != NULL, "%s", e.msg);
    char k1[65], k2[65];
    sha256_hex("one", 3, k1);
    sha256_hex("two", 3, k2);
    const char *b1 = "{\"a\": 1}\nwith a newline", *b2 = "second";
    EXPECT(cache_put(c, k1, b1, strlen(b1), &e) == 0, "%s", e.msg);
    EXPECT(cache_put(c, k2, b2, strlen(b2), &e) == 0, "%s", e.msg);
    size_t len;
    const char *g = cache_get(c, k1, &len);
    EXPECT(g && len == strlen(b1) && !memcmp(g, b1, len), "get after put");
    /* a second process cannot open it while we hold it */
    pid_t pid = fork();
    if (pid == 0) {
        Err e2;
        LlmCache *c2 = cache_open(path, 0, &e2);
        _exit(c2 == NULL && strstr(e2.msg, "in use") ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "lock not held");
    EXPECT(cache_put(c, k1, "newer", 5, &e) == 0, "%s", e.msg);
    cache_close(c);
    /* a torn record at the end (killed mid-write) */
    fd = open(path, O_WRONLY | O_APPEND);
    const char *torn = "HDC1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef 100 0000000000000000\npartial";
    EXPECT(write(fd, torn, strlen(torn)) == (ssize_t)strlen(torn), "write");
    close(fd);
    c = cache_open(path, 0, &e);
    EXPECT(c != NULL, "%s", e.msg);
    EXPECT(cache_count(c) == 2 && cache_dropped(c) == 1, "count %lld dropped %lld", (long long)cache_count(c),
           (long long)cache_dropped(c));
    g = cache_get(c, k1, &len);
    EXPECT(g && len == 5 && !memcmp(g, "newer", 5), "later record wins");
    g = cache_get(c, k2, &len);
    EXPECT(g && len == strlen(b2), "second record survives");
    EXPECT(cache_put(c, k2, "third", 5, &e) == 0, "append after cutting the tail: %s", e.msg);
    cache_close(c);
    c = cache_open(path, 0, &e);
    g = cache_get(c, k2, &len);
    EXPECT(c && cache_dropped(c) == 0 && g && len == 5 && !memcmp(g, "third", 5), "clean after repair");
    cache_close(c);
    unlink(path);
}

int main(void) {
    test_cache();
    return test_summary();
}

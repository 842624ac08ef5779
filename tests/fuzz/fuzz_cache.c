/* fuzz_cache -- the durable LLM response cache (llm/cache.h) opened on an
 * arbitrary file, as a run does with data.h5.llm-cache and run.dir/llm-cache:
 * cache_open parses the records and cuts a torn tail; then a record is
 * appended and the file opened again, which must give back the appended
 * body and keep every record the first open counted. */
#include "base/sha256.h"
#include "llm/cache.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *path = fuzz_write("llm-cache", data, size);
    Err e;
    LlmCache *c = cache_open(path, 0, &e);
    if (c) {
        char key[65];
        sha256_hex("fuzz", 4, key);
        int64_t n = cache_count(c) + (cache_get(c, key, NULL) == NULL);
        size_t len = 0;
        FUZZ_CHECK(cache_put(c, key, "{\"x\": 1}\n", 9, &e) == 0, "append: %s", e.msg);
        cache_close(c);
        c = cache_open(path, 0, &e);
        FUZZ_CHECK(c, "reopening after an append: %s", e.msg);
        const char *b = cache_get(c, key, &len);
        FUZZ_CHECK(b && len == 9 && !memcmp(b, "{\"x\": 1}\n", 9), "the appended record is not read back");
        FUZZ_CHECK(cache_count(c) == n && cache_dropped(c) == 0, "%lld records, %lld dropped after reopening, %lld before",
                   (long long)cache_count(c), (long long)cache_dropped(c), (long long)n);
        cache_close(c);
    }
    free(path);
    return 0;
}

/* bench_client -- hdistill's LLM client against a running endpoint: N
 * distinct chat completions with C in flight, no cache, no retries needed.
 * Prints one JSON line: {"rps", "seconds", "cpu_ms_per_req", "ok", "failed"}
 * (CPU = this process's user+system time, i.e. the client's cost).
 * usage: bench_client BASE_URL N C */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "llm/llm.h"
#include "base/util.h"

static double cpu_seconds(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: bench_client BASE_URL N C\n");
        return 2;
    }
    const char *url = argv[1];
    size_t n = (size_t)atol(argv[2]);
    int conc = atoi(argv[3]);
    LlmEndpoint ep = {.name = "bench", .base_url = url, .api_key_env = "", .ca_bundle = "",
                      .concurrency = conc, .connect_timeout = 10, .timeout = 60, .retries = 2,
                      .backoff = 0.1, .backoff_max = 1};
    Err e;
    LlmClient *c = llm_client_create(&ep, NULL, &e);
    if (!c) {
        fprintf(stderr, "error: %s\n", e.msg);
        return 1;
    }
    ChatRequest *reqs = xcalloc(n, sizeof(ChatRequest));
    LlmResult *res = xcalloc(n, sizeof(LlmResult));
    for (size_t i = 0; i < n; i++) {
        char msg[256];
        snprintf(msg, sizeof msg,
                 "Rewrite the sentence below in 3 different humorous ways. Keep its meaning. Answer with a "
                 "numbered list and nothing else.\nSentence: bench request number %zu", i);
        chat_request_init(&reqs[i], "hdistill-standin");
        chat_request_add_message(&reqs[i], "user", msg);
        reqs[i].temperature = 0.8;
        reqs[i].max_tokens = 64;
    }
    double c0 = cpu_seconds(), t0 = util_now();
    size_t ok = llm_run(c, reqs, n, res, NULL);
    double dt = util_now() - t0, cpu = cpu_seconds() - c0;
    printf("{\"rps\": %.1f, \"seconds\": %.3f, \"cpu_ms_per_req\": %.4f, \"ok\": %zu, \"failed\": %zu}\n",
           (double)n / dt, dt, 1000.0 * cpu / (double)n, ok, n - ok);
    for (size_t i = 0; i < n; i++) {
        chat_request_free(&reqs[i]);
        llm_result_free(&res[i]);
    }
    free(reqs), free(res);
    llm_client_destroy(c);
    return ok == n ? 0 : 1;
}

/* fuzz_chat_response -- chat_response_parse (llm/chat.h) on an arbitrary
 * response body: content, finish_reason, log-probabilities with their
 * top_logprobs, usage; then the critic's reading of the parsed answer
 * (critic_parse, llm/critic.h), whose preference must be a probability. */
#include <math.h>

#include "llm/chat.h"
#include "llm/critic.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ChatResponse r;
    Err e;
    if (chat_response_parse((const char *)data, size, &r, &e) != 0) return 0;
    FUZZ_CHECK(r.content && r.finish_reason && r.n_tokens >= 0, "incomplete response");
    for (int i = 0; i < r.n_tokens; i++) {
        FUZZ_CHECK(r.tokens[i].token, "token %d without text", i);
        for (int k = 0; k < r.tokens[i].n_top; k++)
            FUZZ_CHECK(memchr(r.tokens[i].top[k].token, 0, sizeof r.tokens[i].top[k].token), "top token %d.%d", i, k);
    }
    double p1 = NAN;
    int src = critic_parse(&r, &p1);
    FUZZ_CHECK(src == CRITIC_SRC_NONE || (p1 >= 0 && p1 <= 1), "critic preference %g (source %d)", p1, src);
    chat_response_free(&r);
    return 0;
}

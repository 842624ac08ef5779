/* fuzz_critic -- the critic's answer reader (llm/critic.h) on an arbitrary
 * response body, parsed as the client parses it (chat_response_parse):
 * critic_parse and critic_verdict_offset.  Properties: a preference is a
 * probability; it is read only from a verdict -- a lone 1 or 2 after the
 * last "answer" of the answer, never from the reasoning -- and never from
 * an answer cut by the token limit, refused or filtered; a written verdict
 * gives 1 or 0; a log-prob verdict comes from the token covering that very
 * digit. */
#include <math.h>

#include "llm/critic.h"
#include "fuzz.h"

static void check_verdict(const char *c) {
    long at = critic_verdict_offset(c);
    FUZZ_CHECK(at >= -1 && at < (long)strlen(c) + 1, "offset %ld", at);
    if (at < 0) return;
    FUZZ_CHECK(c[at] == '1' || c[at] == '2', "verdict '%c' at %ld", c[at], at);
    FUZZ_CHECK((at == 0 || c[at - 1] < '0' || c[at - 1] > '9') && (c[at + 1] < '0' || c[at + 1] > '9'),
               "verdict digit not alone at %ld", at);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ChatResponse r;
    Err e;
    if (chat_response_parse((const char *)data, size, &r, &e) != 0) {
        /* the written answer alone, as a server without JSON would give it */
        char *c = fuzz_cstr(data, size);
        check_verdict(c);
        ChatResponse t = {.content = c, .reasoning = "", .refusal = "", .finish_reason = "stop"};
        double p1 = NAN;
        int src = critic_parse(&t, &p1);
        long at = critic_verdict_offset(c);
        FUZZ_CHECK(src == (at >= 0 ? CRITIC_SRC_TEXT : CRITIC_SRC_NONE), "source %d, verdict at %ld", src, at);
        if (src) FUZZ_CHECK(p1 == (c[at] == '1' ? 1.0 : 0.0), "text verdict %c gave %g", c[at], p1);
        free(c);
        return 0;
    }
    check_verdict(r.content);
    double p1 = NAN;
    int src = critic_parse(&r, &p1);
    long at = critic_verdict_offset(r.content);
    FUZZ_CHECK(src == CRITIC_SRC_NONE || src == CRITIC_SRC_LOGPROBS || src == CRITIC_SRC_TEXT, "source %d", src);
    if (chat_response_truncated(&r) || chat_response_refused(&r) || chat_response_filtered(&r) || at < 0)
        FUZZ_CHECK(src == CRITIC_SRC_NONE, "a verdict from a cut, refused or filtered answer or none (source %d)", src);
    if (src != CRITIC_SRC_NONE) FUZZ_CHECK(p1 >= 0 && p1 <= 1, "preference %g (source %d)", p1, src);
    if (src == CRITIC_SRC_TEXT) FUZZ_CHECK(p1 == (r.content[at] == '1' ? 1.0 : 0.0), "text verdict gave %g", p1);
    if (src == CRITIC_SRC_LOGPROBS) {
        int t = chat_response_token_at(&r, (size_t)at);
        FUZZ_CHECK(t >= 0 && strchr(r.tokens[t].token, r.content[at]), "log-probs not from the verdict's token");
    }
    chat_response_free(&r);
    return 0;
}

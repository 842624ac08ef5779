/* fuzz_chat_request -- chat_request_parse (llm/chat.h), what the stand-in
 * server does with every request body it receives.  A body that parses
 * must survive the canonical form: chat_request_body of the parsed request
 * parses again to the same canonical key (the cache key the client and
 * the server both compute). */
#include "llm/chat.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ChatRequest r;
    Err e;
    if (chat_request_parse((const char *)data, size, &r, &e) != 0) return 0;
    char *body = chat_request_body(&r);
    char k1[65], k2[65];
    chat_request_key(&r, k1);
    ChatRequest back;
    int rc = chat_request_parse(body, strlen(body), &back, &e);
    FUZZ_CHECK(rc == 0, "the canonical body does not parse: %s\n%s", e.msg, body);
    chat_request_key(&back, k2);
    FUZZ_CHECK(strcmp(k1, k2) == 0, "the key changes through the canonical body:\n%s", body);
    chat_request_free(&back);
    chat_request_free(&r);
    free(body);
    return 0;
}

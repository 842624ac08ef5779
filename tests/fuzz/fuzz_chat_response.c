/* fuzz_chat_response -- the chat-completions response parser (llm/chat.h)
 * on an arbitrary body, as the client reads every answer: content given as
 * text or as parts, reasoning (reasoning_content, reasoning, <think> blocks,
 * a lone </think>) split off, refusal, finish_reason, log-probabilities
 * (logprob or prob, top_logprobs) aligned with the answer, usage; error
 * bodies in every shape (chat_error_parse, chat_error_format).  Properties:
 * a parsed response is complete (no NULL string, content without leading
 * blanks), every aligned token lies where the answer has its text,
 * chat_response_token_at finds the token covering an offset and no other;
 * a failure is one line and names its kind; an error body formats to one
 * line inside any buffer size.  The critic's reading of the same response
 * is fuzz_critic's. */
#include "llm/chat.h"
#include "fuzz.h"

static void check_error_body(const char *body, size_t len) {
    ChatError er;
    if (!chat_error_parse(body, len, &er)) {
        FUZZ_CHECK(!er.message[0] && !er.type[0] && !er.param[0] && !er.code[0], "not an error, but fields set");
        return;
    }
    FUZZ_CHECK(er.message[0] || er.type[0] || er.code[0], "an error without message, type or code");
    char buf[600];
    for (size_t n = 1; n <= sizeof buf; n = n < 16 ? n + 1 : n * 2) {
        memset(buf, 'x', sizeof buf);
        chat_error_format(&er, buf, n);
        FUZZ_CHECK(memchr(buf, 0, n) && strlen(buf) < n, "chat_error_format overran %zu bytes", n);
        FUZZ_CHECK(!strpbrk(buf, "\n\r"), "error not one line: '%s'", buf);
    }
}

static void check_response(const ChatResponse *r) {
    FUZZ_CHECK(r->content && r->reasoning && r->refusal && r->finish_reason, "a NULL string");
    FUZZ_CHECK(!strchr(" \n\r\t", r->content[0]) || !r->content[0], "content starts blank: '%s'", r->content);
    FUZZ_CHECK(r->n_tokens >= 0 && (r->n_tokens == 0 || r->tokens), "%d tokens", r->n_tokens);
    size_t cl = strlen(r->content);
    for (int i = 0; i < r->n_tokens; i++) {
        const ChatTokenLogprob *t = &r->tokens[i];
        FUZZ_CHECK(t->token && t->n_top >= 0, "token %d", i);
        for (int k = 0; k < t->n_top; k++)
            FUZZ_CHECK(memchr(t->top[k].token, 0, sizeof t->top[k].token), "top token %d.%d not terminated", i, k);
        size_t len = strlen(t->token);
        if (r->aligned && t->offset >= 0 && (size_t)t->offset + len <= cl)
            FUZZ_CHECK(!memcmp(r->content + t->offset, t->token, len), "token %d '%s' is not at offset %ld of '%s'",
                       i, t->token, t->offset, r->content);
    }
    for (size_t off = 0; off < cl && off < 4096; off++) {
        int i = chat_response_token_at(r, off);
        if (i < 0) continue;
        FUZZ_CHECK(r->aligned && i < r->n_tokens, "token %d at %zu", i, off);
        long o = r->tokens[i].offset;
        FUZZ_CHECK(o <= (long)off && (long)off < o + (long)strlen(r->tokens[i].token), "token %d does not cover %zu",
                   i, off);
    }
    FUZZ_CHECK(chat_response_token_at(r, cl + 100000) == -1 || r->aligned, "token beyond the content");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *body = (const char *)data;
    ChatResponse r;
    Err e = {{0}};
    if (chat_response_parse(body, size, &r, &e) == 0) {
        check_response(&r);
        chat_response_free(&r);
    } else {
        FUZZ_CHECK(!strpbrk(e.msg, "\n\r"), "error not one line: '%s'", e.msg);
        FUZZ_CHECK(strstr(e.msg, "malformed JSON") || strstr(e.msg, "wrong schema") || strstr(e.msg, "endpoint error"),
                   "error of no known kind: '%s'", e.msg);
    }
    check_error_body(body, size);
    /* the reasoning rules on the raw text */
    char *text = fuzz_cstr(data, size), *answer, *reasoning;
    chat_split_reasoning(text, &answer, &reasoning);
    FUZZ_CHECK(answer && reasoning && strlen(answer) <= size && strlen(reasoning) <= size, "split");
    if (!strstr(text, "<think>") && !strstr(text, "</think>")) FUZZ_CHECK(!reasoning[0], "reasoning without a tag");
    free(answer), free(reasoning), free(text);
    return 0;
}

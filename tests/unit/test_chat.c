/* test_llmproto -- the transport-free parts of the LLM client: SHA-256 (FIPS
 * test vectors), request bodies and canonical keys, response parsing (with
 * log-probs, errors, wrong schemas), prompt templates, the teacher list
 * parser and refusal detector, the critic answer parser, and the durable
 * cache (round trip, reopen, torn tail, later record wins, lock). */
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "llm/cache.h"
#include "llm/chat.h"
#include "llm/critic.h"
#include "llm/teacher.h"
#include "base/sha256.h"
#include "test.h"
#include "base/util.h"

static void test_sha256(void) {
    char h[65];
    sha256_hex("", 0, h);
    EXPECT(!strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "empty: %s", h);
    sha256_hex("abc", 3, h);
    EXPECT(!strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "abc: %s", h);
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex(m, strlen(m), h);
    EXPECT(!strcmp(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"), "448 bits: %s", h);
    /* one million 'a', fed in uneven pieces */
    Sha256 s;
    sha256_init(&s);
    char buf[997];
    memset(buf, 'a', sizeof buf);
    size_t left = 1000000;
    while (left) {
        size_t k = left < sizeof buf ? left : sizeof buf;
        sha256_update(&s, buf, k);
        left -= k;
    }
    uint8_t d[32];
    sha256_final(&s, d);
    for (int i = 0; i < 32; i++) snprintf(h + 2 * i, 3, "%02x", d[i]);
    EXPECT(!strcmp(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "1M a: %s", h);
}

static void test_request(void) {
    ChatRequest r;
    chat_request_init(&r, "m1");
    chat_request_add_message(&r, "system", "be brief");
    chat_request_add_message(&r, "user", "say \"hi\"\nnow");
    r.temperature = 0.8;
    r.max_tokens = 50;
    r.logprobs = 1;
    r.top_logprobs = 5;
    char *body = chat_request_body(&r);
    EXPECT(!strcmp(body, "{\"model\":\"m1\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
                         "{\"role\":\"user\",\"content\":\"say \\\"hi\\\"\\nnow\"}],\"temperature\":0.8,"
                         "\"max_tokens\":50,\"logprobs\":true,\"top_logprobs\":5}"),
           "body %s", body);
    char k1[65], k2[65];
    chat_request_key(&r, k1);
    /* the server's view: parse the body, key it again */
    ChatRequest back;
    Err e;
    EXPECT(chat_request_parse(body, strlen(body), &back, &e) == 0, "%s", e.msg);
    chat_request_key(&back, k2);
    chat_request_free(&back);
    EXPECT(!strcmp(k1, k2), "key differs after a round trip");
    /* the same body with other whitespace and key order is the same request */
    const char *other = "{ \"messages\": [ {\"content\": \"be brief\", \"role\": \"system\"}, {\"role\":\"user\","
                        "\"content\":\"say \\\"hi\\\"\\nnow\"} ], \"top_logprobs\": 5, \"logprobs\": true,"
                        " \"max_tokens\": 50, \"temperature\": 0.80, \"model\": \"m1\" }";
    ChatRequest o2;
    EXPECT(chat_request_parse(other, strlen(other), &o2, &e) == 0, "%s", e.msg);
    char k3[65];
    chat_request_key(&o2, k3);
    EXPECT(!strcmp(k1, k3), "canonical key depends on formatting");
    r.temperature = 0.7;
    chat_request_key(&r, k2);
    EXPECT(strcmp(k1, k2) != 0, "temperature not part of the key");
    /* a seed outside int64 is clamped, not cast (undefined; found by fuzz_chat_request) */
    const char *huge = "{\"model\":\"m\",\"messages\":[],\"seed\":1e999}";
    EXPECT(chat_request_parse(huge, strlen(huge), &back, &e) == 0 && back.seed == INT64_MAX, "seed 1e999");
    chat_request_free(&back);
    EXPECT(chat_request_parse("{\"model\": 3}", 12, &back, &e) != 0, "bad request accepted");
    EXPECT(chat_request_parse("{nope", 5, &back, &e) != 0 && strstr(e.msg, "malformed"), "malformed accepted");
    chat_request_free(&r), chat_request_free(&o2);
    free(body);
}

static void test_response(void) {
    const char *ok = "{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
                     "\"Reason: funnier.\\nAnswer: 2\"},\"finish_reason\":\"stop\",\"logprobs\":{\"content\":["
                     "{\"token\":\"Reason\",\"logprob\":0},{\"token\":\":\",\"logprob\":0},"
                     "{\"token\":\" funnier.\\n\",\"logprob\":-0.1},{\"token\":\"Answer\",\"logprob\":0},"
                     "{\"token\":\":\",\"logprob\":0},{\"token\":\" 2\",\"logprob\":-0.2231,\"top_logprobs\":["
                     "{\"token\":\" 2\",\"logprob\":-0.2231},{\"token\":\" 1\",\"logprob\":-1.6094}]}]}}],"
                     "\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":7,\"total_tokens\":47}}";
    ChatResponse r;
    Err e;
    EXPECT(chat_response_parse(ok, strlen(ok), &r, &e) == 0, "%s", e.msg);
    EXPECT(!strcmp(r.content, "Reason: funnier.\nAnswer: 2") && !strcmp(r.finish_reason, "stop"), "content");
    EXPECT(r.n_tokens == 6 && r.tokens[5].n_top == 2, "logprobs %d", r.n_tokens);
    EXPECT(r.prompt_tokens == 40 && r.completion_tokens == 7, "usage");
    double p1 = -1;
    EXPECT(critic_parse(&r, &p1) == CRITIC_SRC_LOGPROBS, "critic source");
    EXPECT(fabs(p1 - 0.2) < 1e-3, "p1 %g (exp(-1.6094)=0.2, exp(-0.2231)=0.8)", p1);
    chat_response_free(&r);
    const char *nolp = "{\"choices\":[{\"message\":{\"content\":\"Reason: shorter.\\nAnswer: 1\"}}]}";
    EXPECT(chat_response_parse(nolp, strlen(nolp), &r, &e) == 0, "%s", e.msg);
    EXPECT(critic_parse(&r, &p1) == CRITIC_SRC_TEXT && p1 == 1.0, "text fallback %g", p1);
    EXPECT(r.prompt_tokens == -1, "missing usage");
    chat_response_free(&r);
    const char *none = "{\"choices\":[{\"message\":{\"content\":\"I like both.\"}}]}";
    EXPECT(chat_response_parse(none, strlen(none), &r, &e) == 0, "%s", e.msg);
    EXPECT(critic_parse(&r, &p1) == CRITIC_SRC_NONE, "no answer must not parse");
    chat_response_free(&r);
    EXPECT(chat_response_parse("{\"choices\":[", 12, &r, &e) != 0 && strstr(e.msg, "malformed"), "malformed");
    EXPECT(chat_response_parse("{\"object\":\"x\"}", 14, &r, &e) != 0 && strstr(e.msg, "schema"), "schema");
    /* a positive log-prob of the only answer token is probability 1, so P(1 better) stays in [0, 1]
     * (it was 1 - exp(0.22) = -0.25: found by fuzz_chat_response) */
    const char *pos = "{\"choices\":[{\"message\":{\"content\":\"Answer: 2\"},\"logprobs\":{\"content\":["
                      "{\"token\":\"Answer\",\"logprob\":0},{\"token\":\" 2\",\"logprob\":0.2231,\"top_logprobs\":["
                      "{\"token\":\" 2\",\"logprob\":0.2231},{\"token\":\" 0\",\"logprob\":-1.6}]}]}}]}";
    EXPECT(chat_response_parse(pos, strlen(pos), &r, &e) == 0, "%s", e.msg);
    EXPECT(critic_parse(&r, &p1) == CRITIC_SRC_LOGPROBS && p1 == 0.0, "positive log-prob of 2: p1 %g", p1);
    chat_response_free(&r);
    const char *pos1 = "{\"choices\":[{\"message\":{\"content\":\"Answer: 1\"},\"logprobs\":{\"content\":["
                       "{\"token\":\"Answer:\",\"logprob\":0},{\"token\":\" 1\",\"logprob\":1e-7}]}}]}";
    EXPECT(chat_response_parse(pos1, strlen(pos1), &r, &e) == 0, "%s", e.msg);
    EXPECT(critic_parse(&r, &p1) == CRITIC_SRC_LOGPROBS && p1 == 1.0, "positive log-prob of 1: p1 %g", p1);
    chat_response_free(&r);
    /* usage outside int64 is clamped, not cast (undefined; found by fuzz_chat_response) */
    const char *big = "{\"choices\":[{\"message\":{\"content\":\"x\"}}],\"usage\":{\"prompt_tokens\":6e52,"
                      "\"completion_tokens\":-1e300}}";
    EXPECT(chat_response_parse(big, strlen(big), &r, &e) == 0 && r.prompt_tokens == INT64_MAX &&
               r.completion_tokens == INT64_MIN, "usage 6e52, -1e300");
    chat_response_free(&r);
    const char *err = "{\"error\":{\"message\":\"model not found\"}}";
    EXPECT(chat_response_parse(err, strlen(err), &r, &e) != 0 && strstr(e.msg, "model not found"), "error %s", e.msg);
    char *t = chat_fill_template("S: {input} n={n} 1. {a} 2. {b} {other}", "x y", 3, "A", "B");
    EXPECT(!strcmp(t, "S: x y n=3 1. A 2. B {other}"), "template %s", t);
    free(t);
}

static void expect_list(const char *content, int max, int want, const char *first, const char *last) {
    StrVec v = {0};
    int n = teacher_parse_list(content, max, &v);
    EXPECT(n == want, "list of %d, wanted %d: <<%s>>", n, want, content);
    if (n == want && want > 0) {
        EXPECT(!strcmp(v.a[0], first), "first item '%s' wanted '%s'", v.a[0], first);
        EXPECT(!strcmp(v.a[n - 1], last), "last item '%s' wanted '%s'", v.a[n - 1], last);
    }
    strvec_free(&v);
}

static void test_teacher_parsing(void) {
    expect_list("1. The cat sat.\n2. A cat was sitting.\n3. Feline, seated.", 3, 3, "The cat sat.", "Feline, seated.");
    expect_list("Here are three takes:\n\n1) One two\n2) Three four\n3) Five six\n\n", 3, 3, "One two", "Five six");
    expect_list("- \"Alpha beta\"\n- Gamma delta\n* Epsilon zeta", 3, 3, "Alpha beta", "Epsilon zeta");
    expect_list("**1.** Bold one here\n**2.** Bold two here", 3, 2, "Bold one here", "Bold two here");
    expect_list("(1) first one\n(2) second one\n(3) third one\n(4) fourth one", 3, 3, "first one", "third one");
    expect_list("Sure! These are funny.\n1. With prose\n2. Around it\nHope you like them!", 3, 2, "With prose", "Around it");
    expect_list("No numbers at all\nJust lines of text\nThird line here", 3, 3, "No numbers at all", "Third line here");
    expect_list("1. \xE2\x80\x9C" "Curly quoted" "\xE2\x80\x9D\n2. x", 3, 1, "Curly quoted", "Curly quoted");
    expect_list("", 3, 0, "", "");
    EXPECT(teacher_is_refusal("I'm sorry, but I can't help with that."), "refusal");
    EXPECT(teacher_is_refusal("As an AI, I cannot do this."), "refusal 2");
    EXPECT(!teacher_is_refusal("1. I'm sorry, said the cat\n2. Sorry not sorry\n3. Whoops"), "list with apology");
    EXPECT(!teacher_is_refusal("1. The cat sat.\n2. The cat sat again."), "plain list");
}

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
    test_sha256();
    test_request();
    test_response();
    test_teacher_parsing();
    test_cache();
    return test_summary();
}

/* test_chat -- the protocol module chat.c without transport: SHA-256 (FIPS
 * test vectors); request bodies and canonical keys (old keys unchanged,
 * token_param, reasoning_effort, extra_body canonical and validated, the
 * server's parse giving the client's key); responses as the documented
 * bodies of OpenAI, vLLM, llama-server, Ollama, Mistral and Azure give them
 * (content, reasoning, refusal, finish_reason, usage, log-probs aligned with
 * the answer); error bodies of every shape; prompt templates. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/sha256.h"
#include "base/util.h"
#include "llm/chat.h"
#include "test.h"

static void test_sha256(void) {
    char h[65];
    sha256_hex("", 0, h);
    EXPECT(!strcmp(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "empty: %s", h);
    sha256_hex("abc", 3, h);
    EXPECT(!strcmp(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "abc: %s", h);
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex(m, strlen(m), h);
    EXPECT(!strcmp(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"), "448 bits: %s", h);
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

/* 1 if body parses and its canonical body parses back to the same key. */
static int key_stable(const char *body) {
    ChatRequest a, b;
    Err e;
    if (chat_request_parse(body, strlen(body), &a, &e) != 0) return 0;
    char *canon = chat_request_body(&a);
    char k1[65], k2[65];
    chat_request_key(&a, k1);
    int ok = chat_request_parse(canon, strlen(canon), &b, &e) == 0;
    if (ok) {
        chat_request_key(&b, k2);
        ok = !strcmp(k1, k2);
        chat_request_free(&b);
    }
    if (!ok) fprintf(stderr, "  %s\n  -> %s\n", body, canon);
    chat_request_free(&a);
    free(canon);
    return ok;
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
    /* the key of this request before the newer fields existed (sha256 of the body above) */
    EXPECT(!strcmp(k1, "4863d365d51f051ebfba4f6f4ea3915b32ea8443669ed1118e7c7c113f8f9e1a"), "old key changed: %s", k1);
    ChatRequest back;
    Err e;
    EXPECT(chat_request_parse(body, strlen(body), &back, &e) == 0, "%s", e.msg);
    chat_request_key(&back, k2);
    chat_request_free(&back);
    EXPECT(!strcmp(k1, k2), "key differs after a round trip");
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
    const char *huge = "{\"model\":\"m\",\"messages\":[],\"a\":1,\"n\":2,\"seed\":1e999}";
    EXPECT(chat_request_parse(huge, strlen(huge), &back, &e) == 0 && back.seed == INT64_MAX, "seed 1e999");
    chat_request_free(&back);
    /* a body the server receives keys like its canonical body (found by fuzz_chat_request: repeated
     * or unprintable fields moved between the fields and extra_body) */
    const char *odd[] = {
        "{\"model\":\"m\",\"messages\":[],\"a\":1,\"n\":2,\"max_tokens\":-28,\"max_tokens\":128}",
        "{\"model\":\"m\",\"messages\":[],\"a\":1,\"n\":2,\"max_tokens\":0,\"max_completion_tokens\":64}",
        "{\"model\":\"m\",\"messages\":[],\"a\":1,\"n\":2,\"max_tokens\":5,\"max_completion_tokens\":64,\"max_tokens\":7}",
        "{\"model\":\"m\",\"messages\":[],\"a\":1,\"n\":2,\"reasoning_effort\":\"\",\"reasoning_effort\":\"high\"}",
        "{\"model\":\"m\",\"messages\":[],\"a\":1,\"n\":2,\"temperature\":1e999,\"top_p\":-1e999}",
        "{\"model\":\"m\",\"messages\":[],\"a\":1,\"n\":2,\"seed\":\"x\",\"seed\":5,\"temperature\":\"hot\"}"};
    for (size_t k = 0; k < sizeof odd / sizeof *odd; k++) EXPECT(key_stable(odd[k]), "key changes: %s", odd[k]);
    EXPECT(chat_request_parse("{\"model\": 3}", 12, &back, &e) != 0, "bad request accepted");
    EXPECT(chat_request_parse("{nope", 5, &back, &e) != 0 && strstr(e.msg, "malformed"), "malformed accepted");
    chat_request_free(&r), chat_request_free(&o2), chat_request_free(&back);
    free(body);
}

/* Keys of requests built from the default configuration, as the code before
 * token_param/reasoning_effort/extra_body computed them (an old build of
 * chat.c): existing caches stay valid. */
static void test_old_keys(void) {
    Config c;
    config_init(&c);
    ChatRequest r;
    char k[65];
    chat_request_for(&c.teacher, "Rewrite 3\nSentence: the cat sat", &r);
    chat_request_key(&r, k);
    EXPECT(!strcmp(k, "1f59790b06aa9fbe471b2197974720ef488787b01834117d84df4955f847b825"), "teacher key %s", k);
    chat_request_free(&r);
    chat_request_for(&c.critic, "Sentence: a\n1. b\n2. c", &r);
    chat_request_key(&r, k);
    EXPECT(!strcmp(k, "72bbb9e6ea291a82fca790be912c6717c1d8e61d1fad2df7a4f6f584a23acf3b"), "critic key %s", k);
    chat_request_free(&r);
    /* "none" and "" do not send reasoning_effort: same key */
    free(c.teacher.reasoning_effort);
    c.teacher.reasoning_effort = xstrdup("none");
    chat_request_for(&c.teacher, "Rewrite 3\nSentence: the cat sat", &r);
    chat_request_key(&r, k);
    EXPECT(!strcmp(k, "1f59790b06aa9fbe471b2197974720ef488787b01834117d84df4955f847b825"), "none changes the key");
    chat_request_free(&r);
    config_free(&c);
}

static void test_new_fields(void) {
    Config c;
    config_init(&c);
    EndpointConfig *ec = &c.teacher;
    free(ec->reasoning_effort), free(ec->extra_body);
    ec->token_param = TOKEN_PARAM_MAX_COMPLETION_TOKENS;
    ec->reasoning_effort = xstrdup("low");
    ec->extra_body = xstrdup(" {\"top_k\": 20, \"chat_template_kwargs\": {\"enable_thinking\": false, \"a\": 1}}");
    Err e;
    EXPECT(chat_endpoint_check(ec, "teacher", &e) == 0, "%s", e.msg);
    ChatRequest r;
    chat_request_for(ec, "hi", &r);
    char *body = chat_request_body(&r);
    EXPECT(!strcmp(body, "{\"model\":\"hdistill-standin\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                         "\"temperature\":0.8,\"top_p\":1,\"max_completion_tokens\":256,\"reasoning_effort\":\"low\","
                         "\"chat_template_kwargs\":{\"a\":1,\"enable_thinking\":false},\"top_k\":20}"),
           "body %s", body);
    char k1[65], k2[65];
    chat_request_key(&r, k1);
    /* the server's view: unknown keys are kept, so its key is the client's */
    ChatRequest srv;
    EXPECT(chat_request_parse(body, strlen(body), &srv, &e) == 0 && srv.token_param == CHAT_TOKENS_MAX_COMPLETION_TOKENS &&
               srv.max_tokens == 256 && srv.reasoning_effort && !strcmp(srv.reasoning_effort, "low"),
           "server parse of the new fields");
    chat_request_key(&srv, k2);
    EXPECT(!strcmp(k1, k2), "server key %s != client key %s", k2, k1);
    chat_request_free(&srv);
    /* the same extra body written otherwise is the same request */
    ChatRequest r2;
    chat_request_copy(&r2, &r);
    EXPECT(chat_request_set_extra(&r2, "{\"chat_template_kwargs\":{\"a\":1,\"enable_thinking\":false},\"top_k\":20}",
                                  &e) == 0, "%s", e.msg);
    chat_request_key(&r2, k2);
    EXPECT(!strcmp(k1, k2), "extra_body key order changes the key");
    EXPECT(chat_request_set_extra(&r2, "{\"top_k\":21}", &e) == 0, "%s", e.msg);
    chat_request_key(&r2, k2);
    EXPECT(strcmp(k1, k2) != 0, "extra_body not in the key");
    r2.token_param = CHAT_TOKENS_MAX_TOKENS;
    char k3[65];
    chat_request_key(&r2, k3);
    EXPECT(strcmp(k3, k2) != 0, "token_param not in the key");
    EXPECT(chat_request_set_extra(&r2, "[1,2]", &e) != 0 && strstr(e.msg, "object"), "a list accepted: %s", e.msg);
    EXPECT(chat_request_set_extra(&r2, "{\"max_tokens\":3}", &e) != 0 && strstr(e.msg, "max_tokens"), "reserved key");
    EXPECT(chat_request_set_extra(&r2, "{\"a\":1,\"a\":2}", &e) != 0 && strstr(e.msg, "twice"), "duplicate key");
    EXPECT(chat_request_set_extra(&r2, "{nope", &e) != 0 && strstr(e.msg, "JSON"), "bad JSON");
    chat_request_free(&r2);
    /* configuration errors name the key */
    free(ec->extra_body);
    ec->extra_body = xstrdup("{\"stream\": true}");
    EXPECT(chat_endpoint_check(ec, "teacher", &e) != 0 && strstr(e.msg, "teacher.extra_body") && strstr(e.msg, "stream"),
           "extra_body error: %s", e.msg);
    free(ec->extra_body);
    ec->extra_body = xstrdup("not json");
    EXPECT(chat_endpoint_check(ec, "critic", &e) != 0 && strstr(e.msg, "critic.extra_body"), "%s", e.msg);
    free(ec->extra_body);
    ec->extra_body = xstrdup("");
    free(ec->reasoning_effort);
    ec->reasoning_effort = xstrdup("extreme");
    EXPECT(chat_endpoint_check(ec, "teacher", &e) != 0 && strstr(e.msg, "teacher.reasoning_effort"), "%s", e.msg);
    chat_request_free(&r);
    free(body);
    config_free(&c);
}

static ChatResponse parse_ok(const char *body, const char *what) {
    ChatResponse r;
    Err e;
    int rc = chat_response_parse(body, strlen(body), &r, &e);
    EXPECT(rc == 0, "%s: %s", what, e.msg);
    if (rc) memset(&r, 0, sizeof r);
    return r;
}

static int has(const char *s, const char *x) { return s && strstr(s, x) != NULL; }

/* Bodies as the servers document them (see the comments). */
static void test_response_shapes(void) {
    /* OpenAI chat completion (api-reference/chat/object): refusal null, annotations, usage details */
    ChatResponse r = parse_ok(
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":\"1. A joke here\",\"refusal\":null,\"annotations\":[]},"
        "\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":10,"
        "\"total_tokens\":29,\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},"
        "\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,"
        "\"rejected_prediction_tokens\":0}},\"service_tier\":\"default\",\"system_fingerprint\":\"fp_1\"}",
        "openai");
    EXPECT(!strcmp(r.content, "1. A joke here") && !r.reasoning[0] && !chat_response_refused(&r) &&
               r.reasoning_tokens == 0 && r.prompt_tokens == 19,
           "openai plain");
    chat_response_free(&r);
    /* o-series: hidden reasoning, counted; the limit spent on it: content "" and finish_reason length */
    r = parse_ok("{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null},"
                 "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":100,"
                 "\"total_tokens\":130,\"completion_tokens_details\":{\"reasoning_tokens\":100}}}",
                 "o-series length");
    EXPECT(!r.content[0] && chat_response_truncated(&r) && r.reasoning_tokens == 100, "o-series exhausted");
    chat_response_free(&r);
    /* vLLM with a reasoning parser (docs.vllm.ai, Reasoning Outputs): reasoning_content beside content */
    r = parse_ok("{\"choices\":[{\"message\":{\"role\":\"assistant\",\"reasoning_content\":\"Maybe Answer: 2?\","
                 "\"content\":\"Reason: x\\nAnswer: 1\",\"tool_calls\":[]},\"finish_reason\":\"stop\",\"stop_reason\":null}]}",
                 "vllm reasoning_content");
    EXPECT(!strcmp(r.content, "Reason: x\nAnswer: 1") && !strcmp(r.reasoning, "Maybe Answer: 2?"), "vllm parser");
    chat_response_free(&r);
    /* vLLM >= 0.11 renames it "reasoning"; Ollama's openai.go Message.Reasoning */
    r = parse_ok("{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"Answer: 2\",\"reasoning\":\"hmm\"},"
                 "\"finish_reason\":\"stop\"}],\"system_fingerprint\":\"fp_ollama\"}",
                 "reasoning field");
    EXPECT(!strcmp(r.content, "Answer: 2") && !strcmp(r.reasoning, "hmm"), "reasoning field");
    chat_response_free(&r);
    /* vLLM without a parser / llama-server --reasoning-format none: <think> in content */
    r = parse_ok("{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"<think>\\n1. draft\\n</think>\\n\\n"
                 "1. Final one\\n2. Final two\"},\"finish_reason\":\"stop\"}]}",
                 "think block");
    EXPECT(!strcmp(r.content, "1. Final one\n2. Final two") && !strcmp(r.reasoning, "1. draft"), "think: '%s' '%s'",
           r.content, r.reasoning);
    chat_response_free(&r);
    /* DeepSeek-R1 without the opening tag: everything before </think> is reasoning */
    r = parse_ok("{\"choices\":[{\"message\":{\"content\":\"Answer: 2? no.\\n</think>\\nReason: y\\nAnswer: 1\"}}]}",
                 "lone think");
    EXPECT(!strcmp(r.content, "Reason: y\nAnswer: 1") && !strcmp(r.reasoning, "Answer: 2? no."), "lone </think>");
    chat_response_free(&r);
    /* cut inside the reasoning: no answer at all */
    r = parse_ok("{\"choices\":[{\"message\":{\"content\":\"<think>still thinking\"},\"finish_reason\":\"length\"}]}",
                 "unclosed think");
    EXPECT(!r.content[0] && !strcmp(r.reasoning, "still thinking") && chat_response_truncated(&r), "unclosed <think>");
    chat_response_free(&r);
    /* Mistral Magistral: content as parts (thinking with a list of text chunks, then text) */
    r = parse_ok("{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":"
                 "[{\"type\":\"text\",\"text\":\"Answer: 2?\"}]},{\"type\":\"text\",\"text\":\"Answer: 1\"}]},"
                 "\"finish_reason\":\"stop\"}]}",
                 "parts");
    EXPECT(!strcmp(r.content, "Answer: 1") && !strcmp(r.reasoning, "Answer: 2?"), "parts");
    chat_response_free(&r);
    /* OpenAI refusal (structured outputs): content null, refusal text */
    r = parse_ok("{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null,\"refusal\":\"I'm sorry, I cannot "
                 "assist with that request.\"},\"finish_reason\":\"stop\"}]}",
                 "refusal");
    EXPECT(chat_response_refused(&r) && has(r.refusal, "cannot assist") && !r.content[0], "refusal");
    chat_response_free(&r);
    /* Azure: the completion stopped by the content filter */
    r = parse_ok("{\"choices\":[{\"index\":0,\"finish_reason\":\"content_filter\",\"message\":{\"role\":\"assistant\","
                 "\"content\":null},\"content_filter_results\":{\"violence\":{\"filtered\":true,\"severity\":\"medium\"}}}],"
                 "\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":{}}]}",
                 "azure filtered");
    EXPECT(chat_response_filtered(&r) && !r.content[0], "content_filter");
    chat_response_free(&r);
    Err e;
    const char *img = "{\"choices\":[{\"message\":{\"content\":[{\"type\":\"image_url\"}]}}]}";
    EXPECT(chat_response_parse(img, strlen(img), &r, &e) != 0 &&
               strstr(e.msg, "image_url"),
           "unknown part type: %s", e.msg);
    EXPECT(chat_response_parse("{\"choices\":[", 12, &r, &e) != 0 && strstr(e.msg, "malformed"), "malformed");
    EXPECT(chat_response_parse("{\"object\":\"x\"}", 14, &r, &e) != 0 && strstr(e.msg, "schema"), "schema");
    /* usage outside int64 is clamped, not cast (undefined; found by fuzz_chat_response) */
    const char *big = "{\"choices\":[{\"message\":{\"content\":\"x\"}}],\"usage\":{\"prompt_tokens\":6e52,"
                      "\"completion_tokens\":-1e300}}";
    EXPECT(chat_response_parse(big, strlen(big), &r, &e) == 0 && r.prompt_tokens == INT64_MAX &&
               r.completion_tokens == INT64_MIN, "usage 6e52, -1e300");
    chat_response_free(&r);
    const char *err = "{\"error\":{\"message\":\"model not found\"}}";
    EXPECT(chat_response_parse(err, strlen(err), &r, &e) != 0 && strstr(e.msg, "model not found"), "error %s", e.msg);
}

/* Log-probs over the whole generation are aligned with the answer. */
static void test_alignment(void) {
    /* vLLM with a reasoning parser: the tokens cover reasoning, </think> and the answer */
    ChatResponse r = parse_ok(
        "{\"choices\":[{\"message\":{\"reasoning_content\":\"Answer: 2?\",\"content\":\"Answer: 1\"},\"logprobs\":"
        "{\"content\":[{\"token\":\"Answer\",\"logprob\":0},{\"token\":\":\",\"logprob\":0},{\"token\":\" 2\",\"logprob\":-1},"
        "{\"token\":\"?\",\"logprob\":0},{\"token\":\"\\n</think>\\n\\n\",\"logprob\":0},{\"token\":\"Answer\",\"logprob\":0},"
        "{\"token\":\":\",\"logprob\":0},{\"token\":\" 1\",\"logprob\":-0.1}]},\"finish_reason\":\"stop\"}]}",
        "aligned");
    EXPECT(r.aligned && r.tokens[2].offset < 0 && r.tokens[5].offset == 0 && chat_response_token_at(&r, 8) == 7,
           "tokens after </think> start the answer");
    chat_response_free(&r);
    /* llama-server's items: id, token, bytes, logprob, top_logprobs with the same fields */
    r = parse_ok("{\"choices\":[{\"message\":{\"content\":\"Answer: 2\"},\"logprobs\":{\"content\":[{\"id\":16533,"
                 "\"token\":\"Answer\",\"bytes\":[65],\"logprob\":-0.01,\"top_logprobs\":[]},{\"id\":25,\"token\":\":\","
                 "\"bytes\":[58],\"logprob\":0,\"top_logprobs\":[]},{\"id\":220,\"token\":\" \",\"bytes\":[32],"
                 "\"logprob\":0,\"top_logprobs\":[]},{\"id\":17,\"token\":\"2\",\"bytes\":[50],\"logprob\":-0.3,"
                 "\"top_logprobs\":[{\"id\":17,\"token\":\"2\",\"bytes\":[50],\"logprob\":-0.3},{\"id\":16,\"token\":\"1\","
                 "\"bytes\":[49],\"logprob\":-1.4}]}]}}]}",
                 "llama-server logprobs");
    EXPECT(r.n_tokens == 4 && r.tokens[3].n_top == 2 && chat_response_token_at(&r, 8) == 3, "llama-server items");
    chat_response_free(&r);
    /* post-sampling probabilities ("prob", "top_probs") are read as their logs */
    r = parse_ok("{\"choices\":[{\"message\":{\"content\":\"Answer: 1\"},\"logprobs\":{\"content\":[{\"token\":\"Answer:\","
                 "\"prob\":1},{\"token\":\" 1\",\"prob\":0.25,\"top_probs\":[{\"token\":\" 1\",\"prob\":0.25},"
                 "{\"token\":\" 2\",\"prob\":0.75}]}]}}]}",
                 "probs");
    EXPECT(r.n_tokens == 2 && fabs(r.tokens[1].top[1].logprob - log(0.75)) < 1e-12, "prob -> log");
    chat_response_free(&r);
    /* tokens that do not spell the answer are not aligned (never trusted) */
    r = parse_ok("{\"choices\":[{\"message\":{\"content\":\"Answer: 1\"},\"logprobs\":{\"content\":[{\"token\":\"Other\","
                 "\"logprob\":0}]}}]}",
                 "unaligned");
    EXPECT(!r.aligned && chat_response_token_at(&r, 0) == -1, "unaligned tokens");
    chat_response_free(&r);
}

static void expect_error(const char *body, const char *msg, const char *type, const char *param, const char *code) {
    ChatError er;
    int ok = chat_error_parse(body, strlen(body), &er);
    EXPECT(ok && has(er.message, msg) && !strcmp(er.type, type) && !strcmp(er.param, param) && !strcmp(er.code, code),
           "error %s -> '%s' '%s' '%s' '%s'", body, er.message, er.type, er.param, er.code);
}

/* Error bodies as the servers send them. */
static void test_errors(void) {
    /* OpenAI, reasoning model given max_tokens (openai/openai-python#2046) */
    expect_error("{\"error\":{\"message\":\"Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                 "'max_completion_tokens' instead.\",\"type\":\"invalid_request_error\",\"param\":\"max_tokens\","
                 "\"code\":\"unsupported_parameter\"}}",
                 "max_completion_tokens", "invalid_request_error", "max_tokens", "unsupported_parameter");
    expect_error("{\"error\":{\"message\":\"You exceeded your current quota, please check your plan and billing "
                 "details.\",\"type\":\"insufficient_quota\",\"param\":null,\"code\":\"insufficient_quota\"}}",
                 "current quota", "insufficient_quota", "", "insufficient_quota");
    /* Azure's prompt filter (type null, status and innererror beside) */
    expect_error("{\"error\":{\"message\":\"The response was filtered due to the prompt triggering Azure OpenAI's "
                 "content management policy.\",\"type\":null,\"param\":\"prompt\",\"code\":\"content_filter\","
                 "\"status\":400,\"innererror\":{\"code\":\"ResponsibleAIPolicyViolation\"}}}",
                 "filtered", "", "prompt", "content_filter");
    /* vLLM's (older) top-level ErrorResponse; SGLang's is the same */
    expect_error("{\"object\":\"error\",\"message\":\"The model `x` does not exist.\",\"type\":\"NotFoundError\","
                 "\"param\":null,\"code\":404}",
                 "does not exist", "NotFoundError", "", "404");
    /* llama-server: numeric code, extra fields */
    expect_error("{\"error\":{\"code\":400,\"message\":\"request (5000 tokens) exceeds the available context size "
                 "(4096 tokens), try increasing it\",\"type\":\"exceed_context_size_error\",\"n_prompt_tokens\":5000,"
                 "\"n_ctx\":4096}}",
                 "exceeds the available context", "exceed_context_size_error", "", "400");
    expect_error("{\"error\": {\"code\": 503, \"message\": \"Loading model\", \"type\": \"unavailable_error\"}}",
                 "Loading model", "unavailable_error", "", "503");
    /* Ollama (openai/openai.go NewError) */
    expect_error("{\"error\":{\"message\":\"model \\\"llama9\\\" not found, try pulling it first\",\"type\":"
                 "\"not_found_error\",\"param\":null,\"code\":null}}",
                 "try pulling it first", "not_found_error", "", "");
    /* Ollama's native API and proxies */
    expect_error("{\"error\":\"model 'x' not found\"}", "not found", "", "", "");
    /* FastAPI validation (vLLM 422) */
    expect_error("{\"detail\":[{\"loc\":[\"body\",\"max_tokens\"],\"msg\":\"Input should be greater than 0\","
                 "\"type\":\"greater_than\"}]}",
                 "greater than 0", "greater_than", "max_tokens", "");
    ChatError er;
    EXPECT(!chat_error_parse("<html>502 Bad Gateway</html>", 28, &er), "HTML is not an error body");
    EXPECT(!chat_error_parse("{\"choices\":[]}", 14, &er), "a chat body is not an error body");
    EXPECT(!chat_error_parse("{\"error\":{\"param\":\"max_tokens\"}}", 32, &er) && !er.param[0],
           "not an error, but param '%s' left", er.param);
    char buf[200];
    chat_error_parse("{\"error\":{\"message\":\"m\",\"type\":\"t\",\"param\":\"p\",\"code\":\"c\"}}", 62, &er);
    chat_error_format(&er, buf, sizeof buf);
    EXPECT(!strcmp(buf, "m (type t, param p, code c)"), "format: %s", buf);
    /* line breaks in any field: one line (a type with one gave a multi-line error: found by
     * fuzz_chat_response) */
    const char *nl = "{\"error\":{\"message\":\"a\\nb\",\"type\":\"t\\r\\nu\",\"param\":\"p\\n\",\"code\":\"\\tc\"}}";
    EXPECT(chat_error_parse(nl, strlen(nl), &er), "error with line breaks");
    chat_error_format(&er, buf, sizeof buf);
    EXPECT(!strcmp(buf, "a b (type t  u, param p , code  c)"), "format: '%s'", buf);
    ChatResponse r;
    Err e;
    EXPECT(chat_response_parse(nl, strlen(nl), &r, &e) != 0 && !strpbrk(e.msg, "\r\n"), "not one line: %s", e.msg);
}

static void test_template(void) {
    char *t = chat_fill_template("S: {input} n={n} 1. {a} 2. {b} {other}", "x y", 3, "A", "B");
    EXPECT(!strcmp(t, "S: x y n=3 1. A 2. B {other}"), "template %s", t);
    free(t);
    char *a, *r;
    chat_split_reasoning("  plain answer", &a, &r);
    EXPECT(!strcmp(a, "plain answer") && !r[0], "no reasoning");
    free(a), free(r);
}

int main(void) {
    test_sha256();
    test_request();
    test_old_keys();
    test_new_fields();
    test_response_shapes();
    test_alignment();
    test_errors();
    test_template();
    return test_summary();
}

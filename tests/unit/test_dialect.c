/* test_dialect -- the JSON shapes of the servers the stand-in replays
 * (standin/dialect.h), against bodies written by hand from the servers'
 * documentation as docs/standin.md quotes it:
 *  - names in the documented order, parse of every name and of unknown ones,
 *    which dialects reason visibly, hidden reasoning tokens per effort;
 *  - dialect_error: OpenAI's {"error":{message,type,param,code}} (null for
 *    a missing param/code) for standin, openai, azure and ollama; vLLM's
 *    top-level {"object":"error",...,"code":<status>}; llama-server's
 *    {"error":{"code":<status>,message,type}}; messages with quotes,
 *    newlines and control bytes escaped; the client's chat_error_parse reads
 *    every one back;
 *  - dialect_check_request: the OpenAI reasoning model's 400s (max_tokens
 *    with the exact quoted body, temperature != 1, logprobs, a bad
 *    reasoning_effort) and what it accepts; another model's 404 per dialect
 *    (OpenAI model_not_found, vLLM's and Ollama's exact bodies, llama-server
 *    ignoring the model); llama-server's context limit with its exact body,
 *    at and over the limit;
 *  - dialect_render: per dialect and shape the fields the documentation
 *    lists (fingerprints, refusal/annotations/service_tier/usage details
 *    for the OpenAI family, Azure's filter results, vLLM's reasoning_content
 *    / tool_calls / stop_reason and <think> content, llama-server's
 *    reasoning_content, log-prob ids and timings, Ollama's reasoning and no
 *    log-probs); content and finish_reason of the think, lone-think, parts,
 *    refusal, filtered and exhausted shapes; usage sums; log-probs: tokens
 *    that concatenate to the text ("\n" or an optional space and non-blanks),
 *    the verdict digit with log sigma(+-z) ordered and cut to top_logprobs,
 *    the decoy at even odds where the log-probs cover the reasoning (and no
 *    decoy token inside the answer when the reasoning is hidden: it was
 *    placed there, fixed), other tokens in (-0.2, 0] with themselves as
 *    their only alternative, bytes = the UTF-8 bytes; determinism in
 *    lp_seed; and the client's chat_response_parse gets the answer and the
 *    reasoning back from every dialect. */
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llm/chat.h"
#include "standin/dialect.h"
#include "test.h"

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }
static const char *str(const cJSON *o, const char *k) {
    const cJSON *x = get(o, k);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}
static int is(const char *a, const char *b) { return a && b && !strcmp(a, b); }

/* 1 when body parses to exactly the JSON text want (key order aside) */
static int json_equal(const char *body, const char *want) {
    cJSON *a = cJSON_Parse(body), *b = cJSON_Parse(want);
    CHECK(b, "the expected JSON does not parse: %s", want);
    int eq = a && cJSON_Compare(a, b, 1);
    cJSON_Delete(a), cJSON_Delete(b);
    return eq;
}

/* ---- names ------------------------------------------------------------------------------------ */

static void names(void) {
    const char *want[] = {"standin", "openai", "openai-reasoning", "vllm", "vllm-reasoning", "llama-server", "ollama", "azure"};
    EXPECT(DIALECT_N == 8, "eight dialects");
    for (int d = 0; d < DIALECT_N; d++)
        EXPECT(is(dialect_name(d), want[d]) && dialect_parse(want[d]) == d, "dialect %d: %s", d, dialect_name(d));
    EXPECT(dialect_parse("openai_reasoning") == -1 && dialect_parse("") == -1 && dialect_parse("vllm ") == -1 &&
               dialect_parse("OLLAMA") == -1,
           "unknown names");
    EXPECT(is(dialect_name(-1), "?") && is(dialect_name(DIALECT_N), "?"), "out-of-range dialects have a name");
    int reasons[] = {0, 0, 0, 1, 1, 1, 1, 0};
    for (int d = 0; d < DIALECT_N; d++) EXPECT(dialect_reasons(d) == reasons[d], "%s reasons visibly: %d", want[d], reasons[d]);
    EXPECT(dialect_reasoning_tokens(NULL) == 128 && dialect_reasoning_tokens("minimal") == 16 &&
               dialect_reasoning_tokens("low") == 64 && dialect_reasoning_tokens("medium") == 128 &&
               dialect_reasoning_tokens("high") == 256,
           "hidden reasoning: 16, 64, 128, 256 for minimal..high, 128 unset");
}

/* ---- errors ---------------------------------------------------------------------------------------- */

static void errors(void) {
    const char *msg = "Bad \"thing\"\n\tat \\ line\x01 2";
    const char *esc = "Bad \\\"thing\\\"\\n\\tat \\\\ line\\u0001 2";
    for (int d = 0; d < DIALECT_N; d++) {
        char *b = dialect_error(d, 429, "rate_limit_error", "model", "rate_limit_exceeded", msg);
        char *bn = dialect_error(d, 500, "server_error", NULL, NULL, msg);
        char *want, *wantn;
        if (d == DIALECT_VLLM || d == DIALECT_VLLM_REASONING) {
            want = xasprintf("{\"object\":\"error\",\"message\":\"%s\",\"type\":\"rate_limit_error\",\"param\":\"model\","
                             "\"code\":429}", esc);
            wantn = xasprintf("{\"object\":\"error\",\"message\":\"%s\",\"type\":\"server_error\",\"param\":null,\"code\":500}",
                              esc);
        } else if (d == DIALECT_LLAMA_SERVER) {
            want = xasprintf("{\"error\":{\"code\":429,\"message\":\"%s\",\"type\":\"rate_limit_error\"}}", esc);
            wantn = xasprintf("{\"error\":{\"code\":500,\"message\":\"%s\",\"type\":\"server_error\"}}", esc);
        } else {
            want = xasprintf("{\"error\":{\"message\":\"%s\",\"type\":\"rate_limit_error\",\"param\":\"model\","
                             "\"code\":\"rate_limit_exceeded\"}}", esc);
            wantn = xasprintf("{\"error\":{\"message\":\"%s\",\"type\":\"server_error\",\"param\":null,\"code\":null}}", esc);
        }
        EXPECT(json_equal(b, want), "%s error body:\n%s\nwant\n%s", dialect_name(d), b, want);
        EXPECT(json_equal(bn, wantn), "%s error body without param and code:\n%s\nwant\n%s", dialect_name(d), bn, wantn);
        ChatError er;
        EXPECT(chat_error_parse(b, strlen(b), &er) == 1 && is(er.type, "rate_limit_error") && strstr(er.message, "Bad"),
               "%s: the client reads the error back (type '%s')", dialect_name(d), er.type);
        free(b), free(bn), free(want), free(wantn);
    }
    /* the OpenAI family may say type null (Azure's filter) */
    char *b = dialect_error(DIALECT_AZURE, 400, NULL, "prompt", "content_filter", "filtered");
    EXPECT(json_equal(b, "{\"error\":{\"message\":\"filtered\",\"type\":null,\"param\":\"prompt\",\"code\":\"content_filter\"}}"),
           "type null: %s", b);
    free(b);
}

/* ---- request checks ------------------------------------------------------------------------------- */

static ChatRequest request(const char *model) {
    ChatRequest q;
    chat_request_init(&q, model);
    chat_request_add_message(&q, "user", "Sentence: the cat sat on the mat");
    return q;
}

/* status of the check, the body in *body (NULL when accepted) */
static int check(int d, const ChatRequest *q, const char *served, int ctx, int words, char **body) {
    *body = NULL;
    int st = dialect_check_request(d, q, served, ctx, words, body);
    if (st == 0 && *body) {
        free(*body);
        *body = xstrdup("(a body with status 0)");
    }
    return st;
}

static int error_is(const char *body, const char *param, const char *code) {
    cJSON *j = cJSON_Parse(body);
    const cJSON *e = get(j, "error");
    int ok = cJSON_IsObject(e) && str(e, "message") && is(str(e, "type"), "invalid_request_error") &&
             (param ? is(str(e, "param"), param) : cJSON_IsNull(get(e, "param"))) &&
             (code ? is(str(e, "code"), code) : cJSON_IsNull(get(e, "code")));
    cJSON_Delete(j);
    return ok;
}

static void reasoning_model(void) {
    char *b;
    ChatRequest q = request("o3");
    EXPECT(check(DIALECT_OPENAI_REASONING, &q, NULL, 0, 0, &b) == 0 && !b, "a plain request is accepted");
    q.max_tokens = 50, q.token_param = CHAT_TOKENS_MAX_TOKENS;
    EXPECT(check(DIALECT_OPENAI_REASONING, &q, NULL, 0, 0, &b) == 400 &&
               json_equal(b, "{\"error\":{\"message\":\"Unsupported parameter: 'max_tokens' is not supported with this model. "
                             "Use 'max_completion_tokens' instead.\",\"type\":\"invalid_request_error\",\"param\":\"max_tokens\","
                             "\"code\":\"unsupported_parameter\"}}"),
           "max_tokens: the quoted 400: %s", b ? b : "(accepted)");
    free(b);
    for (int d = 0; d < DIALECT_N; d++) {
        if (d == DIALECT_OPENAI_REASONING) continue;
        EXPECT(check(d, &q, NULL, 0, 0, &b) == 0, "%s accepts max_tokens", dialect_name(d));
        free(b);
    }
    q.token_param = CHAT_TOKENS_MAX_COMPLETION_TOKENS;
    EXPECT(check(DIALECT_OPENAI_REASONING, &q, NULL, 0, 0, &b) == 0, "max_completion_tokens accepted");
    free(b);
    q.temperature = 0.7;
    EXPECT(check(DIALECT_OPENAI_REASONING, &q, NULL, 0, 0, &b) == 400 && error_is(b, "temperature", "unsupported_value") &&
               strstr(b, "0.7"),
           "temperature 0.7: %s", b ? b : "(accepted)");
    free(b);
    q.temperature = 1;
    EXPECT(check(DIALECT_OPENAI_REASONING, &q, NULL, 0, 0, &b) == 0, "temperature 1 accepted");
    free(b);
    q.logprobs = 1;
    EXPECT(check(DIALECT_OPENAI_REASONING, &q, NULL, 0, 0, &b) == 400 && error_is(b, "logprobs", "unsupported_parameter"),
           "logprobs: %s", b ? b : "(accepted)");
    free(b);
    q.logprobs = 0;
    const char *efforts[] = {"minimal", "low", "medium", "high"};
    for (int i = 0; i < 4; i++) {
        free(q.reasoning_effort);
        q.reasoning_effort = xstrdup(efforts[i]);
        EXPECT(check(DIALECT_OPENAI_REASONING, &q, NULL, 0, 0, &b) == 0, "reasoning_effort %s accepted", efforts[i]);
        free(b);
    }
    free(q.reasoning_effort);
    q.reasoning_effort = xstrdup("extreme");
    EXPECT(check(DIALECT_OPENAI_REASONING, &q, NULL, 0, 0, &b) == 400 && error_is(b, "reasoning_effort", "invalid_value") &&
               strstr(b, "extreme"),
           "reasoning_effort extreme: %s", b ? b : "(accepted)");
    free(b);
    chat_request_free(&q);
}

static void served_model(void) {
    char *b;
    ChatRequest q = request("gpt-x");
    for (int d = 0; d < DIALECT_N; d++) {
        EXPECT(check(d, &q, "gpt-x", 0, 0, &b) == 0 && check(d, &q, NULL, 0, 0, &b) == 0 && check(d, &q, "", 0, 0, &b) == 0,
               "%s: the served model, or any model", dialect_name(d));
        int st = check(d, &q, "other", 0, 0, &b);
        if (d == DIALECT_LLAMA_SERVER) {
            EXPECT(st == 0, "llama-server ignores the model");
        } else if (d == DIALECT_VLLM || d == DIALECT_VLLM_REASONING) {
            EXPECT(st == 404 && json_equal(b, "{\"object\":\"error\",\"message\":\"The model `gpt-x` does not exist.\","
                                              "\"type\":\"NotFoundError\",\"param\":null,\"code\":404}"),
                   "%s 404: %s", dialect_name(d), b);
        } else if (d == DIALECT_OLLAMA) {
            EXPECT(st == 404 && json_equal(b, "{\"error\":{\"message\":\"model \\\"gpt-x\\\" not found, try pulling it first\","
                                              "\"type\":\"not_found_error\",\"param\":null,\"code\":null}}"),
                   "ollama 404: %s", b);
        } else {
            EXPECT(st == 404 && error_is(b, NULL, "model_not_found") && strstr(b, "gpt-x"), "%s 404: %s", dialect_name(d), b);
        }
        free(b);
    }
    chat_request_free(&q);
    /* a model name that needs escaping stays JSON */
    q = request("a\"b\\c");
    for (int d = 0; d < DIALECT_N; d++) {
        int st = check(d, &q, "other", 0, 0, &b);
        cJSON *j = b ? cJSON_Parse(b) : NULL;
        EXPECT(d == DIALECT_LLAMA_SERVER ? st == 0 : st == 404 && j != NULL, "%s: a quoted model name: %s", dialect_name(d),
               b ? b : "(accepted)");
        cJSON_Delete(j), free(b);
    }
    chat_request_free(&q);
}

static void context_limit(void) {
    char *b;
    ChatRequest q = request("m");
    EXPECT(check(DIALECT_LLAMA_SERVER, &q, NULL, 10, 10, &b) == 0, "10 words of a 10-word context fit");
    EXPECT(check(DIALECT_LLAMA_SERVER, &q, NULL, 0, 5000, &b) == 0, "ctx 0: no limit");
    EXPECT(check(DIALECT_LLAMA_SERVER, &q, NULL, 10, 11, &b) == 400 &&
               json_equal(b, "{\"error\":{\"code\":400,\"message\":\"request (11 tokens) exceeds the available context size "
                             "(10 tokens), try increasing it\",\"type\":\"exceed_context_size_error\",\"n_prompt_tokens\":11,"
                             "\"n_ctx\":10}}"),
           "11 words: llama-server's 400: %s", b ? b : "(accepted)");
    free(b);
    for (int d = 0; d < DIALECT_N; d++) {
        if (d == DIALECT_LLAMA_SERVER) continue;
        EXPECT(check(d, &q, NULL, 10, 11, &b) == 0, "%s has no context limit", dialect_name(d));
        free(b);
    }
    chat_request_free(&q);
}

/* ---- rendering --------------------------------------------------------------------------------------- */

static const char *ANSWER = "Reason: Paraphrase 2 keeps more of the original meaning.\nAnswer: 2";
static const char *REASONING = "Okay, at first sight paraphrase 1 looks funnier, so Answer: 1? Wait.";

static DialectChoice critic_choice(int shape) {
    DialectChoice c = {0};
    c.answer = ANSWER;
    c.reasoning = REASONING;
    c.digit_at = (long)strlen(ANSWER) - 1;
    c.decoy_at = (long)(strstr(REASONING, "Answer: 1") - REASONING) + 8;
    c.logit = -0.8; /* p(1) = sigmoid(-0.8) = 0.31: answer 2 is the likelier */
    c.answer_digit = 2;
    c.shape = shape;
    c.completion_tokens = 11, c.reasoning_tokens = 13;
    return c;
}

static char *render(int d, const DialectChoice *c, int n, int logprobs, int top, uint64_t seed) {
    DialectAnswer a = {.dialect = d, .id = "chatcmpl-x", .model = "m\"odel", .created = 1764000000, .n_choices = n,
                       .choices = c, .prompt_tokens = 40, .logprobs = logprobs, .top_logprobs = top, .lp_seed = seed};
    return dialect_render(&a);
}

static int openai_like(int d) { return d == DIALECT_OPENAI || d == DIALECT_OPENAI_REASONING || d == DIALECT_AZURE; }

/* the documented top-level and message fields of dialect d */
static void check_shape(int d, const char *body, const cJSON *j) {
    const char *name = dialect_name(d);
    const cJSON *c0 = cJSON_GetArrayItem(get(j, "choices"), 0), *msg = get(c0, "message"), *u = get(j, "usage");
    EXPECT(j && is(str(j, "id"), "chatcmpl-x") && is(str(j, "object"), "chat.completion") &&
               cJSON_GetNumberValue(get(j, "created")) == 1764000000 && is(str(j, "model"), "m\"odel") &&
               is(str(msg, "role"), "assistant") && cJSON_GetNumberValue(get(c0, "index")) == 0,
           "%s: id, object, created, model, role, index:\n%s", name, body);
    const char *fp = str(j, "system_fingerprint");
    if (d == DIALECT_STANDIN) EXPECT(is(fp, "hdistill-standin"), "standin fingerprint %s", fp);
    if (d == DIALECT_OLLAMA) EXPECT(is(fp, "fp_ollama"), "ollama fingerprint %s", fp);
    if (d == DIALECT_LLAMA_SERVER) EXPECT(is(fp, "b0000-standin"), "llama-server fingerprint %s", fp);
    EXPECT(cJSON_GetNumberValue(get(u, "prompt_tokens")) == 40 && cJSON_GetNumberValue(get(u, "completion_tokens")) == 22 &&
               cJSON_GetNumberValue(get(u, "total_tokens")) == 62,
           "%s: usage sums the two choices", name);
    const cJSON *det = get(u, "completion_tokens_details");
    EXPECT(openai_like(d) == (cJSON_IsObject(get(u, "prompt_tokens_details")) && cJSON_IsObject(det) &&
                              cJSON_GetNumberValue(get(det, "reasoning_tokens")) == 26 && is(str(j, "service_tier"), "default") &&
                              cJSON_IsNull(get(msg, "refusal")) && cJSON_IsArray(get(msg, "annotations")) &&
                              cJSON_GetArraySize(get(msg, "annotations")) == 0),
           "%s: usage details (reasoning 26), service_tier, refusal null, annotations [] iff the OpenAI family", name);
    int azure = cJSON_IsArray(get(j, "prompt_filter_results")) &&
                cJSON_GetNumberValue(get(cJSON_GetArrayItem(get(j, "prompt_filter_results"), 0), "prompt_index")) == 0 &&
                cJSON_IsObject(get(c0, "content_filter_results"));
    EXPECT(azure == (d == DIALECT_AZURE), "%s: Azure's filter results iff azure", name);
    int vllm = d == DIALECT_VLLM || d == DIALECT_VLLM_REASONING;
    EXPECT(vllm == (cJSON_HasObjectItem(msg, "reasoning_content") && cJSON_IsArray(get(msg, "tool_calls")) &&
                    cJSON_GetArraySize(get(msg, "tool_calls")) == 0 && cJSON_IsNull(get(c0, "stop_reason"))),
           "%s: reasoning_content, tool_calls [] and stop_reason null iff vLLM", name);
    const cJSON *t = get(j, "timings");
    EXPECT((d == DIALECT_LLAMA_SERVER) == (cJSON_GetNumberValue(get(t, "prompt_n")) == 40 &&
                                           cJSON_GetNumberValue(get(t, "predicted_n")) == 22),
           "%s: timings iff llama-server", name);
}

/* content and reasoning of a plain critic choice, per dialect */
static void plain_texts(int d, const cJSON *j) {
    const char *name = dialect_name(d);
    const cJSON *msg = get(cJSON_GetArrayItem(get(j, "choices"), 0), "message");
    const char *content = str(msg, "content");
    char *think = xasprintf("<think>\n%s\n</think>\n\n%s", REASONING, ANSWER);
    if (d == DIALECT_VLLM) {
        EXPECT(is(content, think) && cJSON_IsNull(get(msg, "reasoning_content")), "vllm: <think> in content");
    } else {
        EXPECT(is(content, ANSWER), "%s: content is the answer: %s", name, content ? content : "(null)");
    }
    const char *rc = str(msg, "reasoning_content"), *r = str(msg, "reasoning");
    EXPECT(is(rc, REASONING) == (d == DIALECT_VLLM_REASONING || d == DIALECT_LLAMA_SERVER),
           "%s: reasoning_content set iff vllm-reasoning or llama-server", name);
    EXPECT(is(r, REASONING) == (d == DIALECT_OLLAMA), "%s: message.reasoning iff ollama", name);
    free(think);
}

/* The text the log-probs cover, per dialect, for a plain critic choice. */
static char *lp_text(int d) {
    if (d == DIALECT_VLLM) return xasprintf("<think>\n%s\n</think>\n\n%s", REASONING, ANSWER);
    if (d == DIALECT_VLLM_REASONING || d == DIALECT_LLAMA_SERVER) return xasprintf("%s\n</think>\n\n%s", REASONING, ANSWER);
    return xstrdup(ANSWER);
}

static int bytes_are(const cJSON *bytes, const char *tok) {
    size_t n = strlen(tok);
    if (!cJSON_IsArray(bytes) || cJSON_GetArraySize(bytes) != (int)n) return 0;
    for (size_t i = 0; i < n; i++)
        if (cJSON_GetArrayItem(bytes, (int)i)->valueint != (unsigned char)tok[i]) return 0;
    return 1;
}

/* the log-probs of choice 0: tokens, their shape, the verdict and the decoy */
static void check_logprobs(int d, const cJSON *j, int top) {
    const char *name = dialect_name(d);
    const cJSON *lp = get(cJSON_GetArrayItem(get(j, "choices"), 0), "logprobs"), *items = get(lp, "content");
    if (d == DIALECT_OLLAMA) {
        EXPECT(cJSON_IsNull(lp), "ollama: no log-probs even when asked");
        return;
    }
    char *text = lp_text(d);
    ByteBuf cat = {0};
    int shape_ok = cJSON_IsArray(items), digit_seen = 0, decoy_seen = 0, others_ok = 1, bytes_ok = 1, ids_ok = 1;
    double p1 = log(1.0 / (1.0 + exp(0.8))), p2 = log(1.0 / (1.0 + exp(-0.8)));
    for (int i = 0; shape_ok && i < cJSON_GetArraySize(items); i++) {
        const cJSON *it = cJSON_GetArrayItem(items, i), *tops = get(it, "top_logprobs");
        const char *tok = str(it, "token");
        double l = cJSON_GetNumberValue(get(it, "logprob"));
        if (!tok || !cJSON_IsArray(tops)) {
            shape_ok = 0;
            break;
        }
        size_t at = cat.n;
        bytebuf_put(&cat, tok, strlen(tok));
        /* "\n", or an optional space and a run of non-blanks (a lone space before a digit token) */
        int well = !strcmp(tok, "\n") || !strcmp(tok, " ");
        if (!well) {
            const char *p = tok + (tok[0] == ' ');
            well = *p != 0;
            for (; *p; p++) well &= *p != ' ' && *p != '\n';
        }
        shape_ok &= well;
        int stands_alone = !strcmp(tok, " ") && !(at + 1 < strlen(text) && (text[at + 1] == '1' || text[at + 1] == '2'));
        shape_ok &= !stands_alone;
        if (d != DIALECT_STANDIN) bytes_ok &= bytes_are(get(it, "bytes"), tok);
        else bytes_ok &= !cJSON_HasObjectItem(it, "bytes");
        if (d == DIALECT_LLAMA_SERVER) ids_ok &= cJSON_IsNumber(get(it, "id"));
        if (at == strlen(text) - 1) { /* the verdict "2" */
            const cJSON *t0 = cJSON_GetArrayItem(tops, 0), *t1 = cJSON_GetArrayItem(tops, 1);
            digit_seen = !strcmp(tok, "2") && fabs(l - p2) < 1e-12 && cJSON_GetArraySize(tops) == (top < 2 ? top : 2) &&
                         (top < 1 || (is(str(t0, "token"), "2") && fabs(cJSON_GetNumberValue(get(t0, "logprob")) - p2) < 1e-12)) &&
                         (top < 2 || (is(str(t1, "token"), "1") && fabs(cJSON_GetNumberValue(get(t1, "logprob")) - p1) < 1e-12));
        } else if (strstr(text, "Answer: 1?") && at == (size_t)(strstr(text, "Answer: 1?") - text) + 8) {
            decoy_seen = !strcmp(tok, "1") && fabs(l - log(0.5)) < 1e-12;
        } else {
            int fine = l <= 0 && l > -0.2 && cJSON_GetArraySize(tops) == (top > 0 ? 1 : 0) &&
                       (top == 0 || (is(str(cJSON_GetArrayItem(tops, 0), "token"), tok) &&
                                     cJSON_GetNumberValue(get(cJSON_GetArrayItem(tops, 0), "logprob")) == l));
            if (!fine && others_ok) fprintf(stderr, "  %s: token '%s' logprob %g, %d alternatives\n", name, tok, l,
                                            cJSON_GetArraySize(tops));
            others_ok &= fine;
        }
    }
    EXPECT(shape_ok && cat.n == strlen(text) && !memcmp(cat.a, text, cat.n),
           "%s (top %d): tokens of the documented shape concatenate to the text", name, top);
    EXPECT(digit_seen, "%s (top %d): the verdict digit, logprob log sigma(-z), alternatives 2 then 1, cut to top_logprobs",
           name, top);
    int covered = d == DIALECT_VLLM || d == DIALECT_VLLM_REASONING || d == DIALECT_LLAMA_SERVER;
    EXPECT(decoy_seen == covered, "%s: the decoy digit at even odds iff the log-probs cover the reasoning", name);
    EXPECT(others_ok, "%s (top %d): other tokens in (-0.2, 0], themselves their only alternative", name, top);
    EXPECT(bytes_ok && ids_ok, "%s: bytes (not in the stand-in's own shape), llama-server's ids", name);
    bytebuf_free(&cat);
    free(text);
}

static void plain_render(void) {
    for (int d = 0; d < DIALECT_N; d++) {
        DialectChoice c[2] = {critic_choice(SHAPE_PLAIN), critic_choice(SHAPE_PLAIN)};
        c[1].truncated = 1;
        for (int top = 0; top <= 2; top++) {
            char *b = render(d, c, 2, 1, top, 77);
            cJSON *j = cJSON_Parse(b);
            if (top == 2) {
                check_shape(d, b, j);
                plain_texts(d, j);
                EXPECT(is(str(cJSON_GetArrayItem(get(j, "choices"), 0), "finish_reason"), "stop") &&
                           is(str(cJSON_GetArrayItem(get(j, "choices"), 1), "finish_reason"), "length") &&
                           cJSON_GetNumberValue(get(cJSON_GetArrayItem(get(j, "choices"), 1), "index")) == 1,
                       "%s: finish_reason stop, length when truncated; index 1", dialect_name(d));
                /* the client's reader gets the answer and the reasoning back */
                ChatResponse r;
                Err e = {{0}};
                int ok = chat_response_parse(b, strlen(b), &r, &e) == 0;
                int shows = dialect_reasons(d);
                EXPECT(ok && is(r.content, ANSWER) && is(r.reasoning, shows ? REASONING : ""),
                       "%s: chat_response_parse gives answer '%s' and reasoning '%s' (%s)", dialect_name(d),
                       ok ? r.content : "?", ok ? r.reasoning : "?", e.msg);
                if (ok) chat_response_free(&r);
            }
            check_logprobs(d, j, top);
            cJSON_Delete(j), free(b);
        }
        /* no log-probs unless asked */
        char *b = render(d, c, 1, 0, 0, 77);
        cJSON *j = cJSON_Parse(b);
        EXPECT(cJSON_IsNull(get(cJSON_GetArrayItem(get(j, "choices"), 0), "logprobs")), "%s: logprobs null unless asked",
               dialect_name(d));
        cJSON_Delete(j), free(b);
        /* determinism: the seed decides the ordinary tokens' log-probs */
        char *x = render(d, c, 1, 1, 1, 77), *y = render(d, c, 1, 1, 1, 77), *z = render(d, c, 1, 1, 1, 78);
        EXPECT(!strcmp(x, y) && (d == DIALECT_OLLAMA || strcmp(x, z) != 0), "%s: a function of lp_seed", dialect_name(d));
        free(x), free(y), free(z);
    }
}

static void shapes(void) {
    char *think = xasprintf("<think>\n%s\n</think>\n\n%s", REASONING, ANSWER);
    char *lone = xasprintf("%s\n</think>\n\n%s", REASONING, ANSWER);
    char *parts = xasprintf("[{\"type\":\"thinking\",\"thinking\":[{\"type\":\"text\",\"text\":\"%s\"}]},{\"type\":\"text\","
                            "\"text\":\"%s\"}]", REASONING, "Reason: Paraphrase 2 keeps more of the original meaning.\\nAnswer: 2");
    for (int d = 0; d < DIALECT_N; d++) {
        const char *name = dialect_name(d);
        for (int shape = SHAPE_THINK; shape <= SHAPE_EXHAUSTED; shape++) {
            DialectChoice c = critic_choice(shape);
            char *b = render(d, &c, 1, 1, 2, 5);
            cJSON *j = cJSON_Parse(b);
            const cJSON *c0 = cJSON_GetArrayItem(get(j, "choices"), 0), *msg = get(c0, "message"), *content = get(msg, "content");
            const char *fr = str(c0, "finish_reason");
            int ok = j != NULL;
            switch (shape) {
            case SHAPE_THINK: ok &= is(str(msg, "content"), think) && is(fr, "stop"); break;
            case SHAPE_LONE_THINK: ok &= is(str(msg, "content"), lone) && is(fr, "stop"); break;
            case SHAPE_PARTS: {
                cJSON *want = cJSON_Parse(parts);
                ok &= cJSON_Compare(content, want, 1) && is(fr, "stop");
                cJSON_Delete(want);
                break;
            }
            case SHAPE_REFUSAL:
                ok &= cJSON_IsNull(content) && is(str(msg, "refusal"), "I'm sorry, but I can't help with that request.") &&
                      is(fr, "stop") && cJSON_IsNull(get(c0, "logprobs"));
                break;
            case SHAPE_FILTERED: ok &= cJSON_IsNull(content) && is(fr, "content_filter") && cJSON_IsNull(get(c0, "logprobs")); break;
            case SHAPE_EXHAUSTED: ok &= cJSON_IsString(content) && !content->valuestring[0] && is(fr, "length"); break;
            }
            /* a reasoning shown in the content never also fills the dialect's own reasoning field; an
             * exhausted answer's reasoning is where the dialect puts it */
            int field = is(str(msg, "reasoning"), REASONING) || is(str(msg, "reasoning_content"), REASONING);
            int own = d == DIALECT_VLLM_REASONING || d == DIALECT_LLAMA_SERVER || d == DIALECT_OLLAMA;
            ok &= field == (shape == SHAPE_EXHAUSTED && own) && (field || (!str(msg, "reasoning") && !str(msg, "reasoning_content")));
            EXPECT(ok, "%s shape %d:\n%s", name, shape, b);
            if (d == DIALECT_AZURE && shape == SHAPE_FILTERED) {
                const cJSON *v = get(get(c0, "content_filter_results"), "violence");
                EXPECT(cJSON_IsTrue(get(v, "filtered")), "azure filtered: violence filtered");
            }
            /* the client: answer and reasoning apart; refusals and filters flagged */
            ChatResponse r;
            Err e = {{0}};
            if (chat_response_parse(b, strlen(b), &r, &e) == 0) {
                int want_ok = shape == SHAPE_REFUSAL    ? chat_response_refused(&r)
                              : shape == SHAPE_FILTERED ? chat_response_filtered(&r)
                              : shape == SHAPE_EXHAUSTED ? chat_response_truncated(&r) && !r.content[0]
                                                         : is(r.content, ANSWER) && is(r.reasoning, REASONING);
                EXPECT(want_ok, "%s shape %d: the client reads '%s' / '%s'", name, shape, r.content, r.reasoning);
                chat_response_free(&r);
            } else {
                EXPECT(0, "%s shape %d: chat_response_parse: %s", name, shape, e.msg);
            }
            cJSON_Delete(j), free(b);
        }
    }
    free(think), free(lone), free(parts);
}

/* bytes of a non-ASCII token; an answer with quotes stays JSON */
static void bytes_and_escapes(void) {
    DialectChoice c = {0};
    c.answer = "The \"caf\xC3\xA9\" closed\tearly";
    c.reasoning = "";
    c.digit_at = c.decoy_at = -1;
    c.completion_tokens = 4;
    for (int d = 0; d < DIALECT_N; d++) {
        char *b = render(d, &c, 1, 1, 1, 3);
        cJSON *j = cJSON_Parse(b);
        const cJSON *c0 = cJSON_GetArrayItem(get(j, "choices"), 0), *items = get(get(c0, "logprobs"), "content");
        EXPECT(j && is(str(get(c0, "message"), "content"), c.answer), "%s: content with quotes, tab and UTF-8", dialect_name(d));
        int found = d == DIALECT_OLLAMA || d == DIALECT_STANDIN;
        for (int i = 0; !found && i < cJSON_GetArraySize(items); i++) {
            const cJSON *it = cJSON_GetArrayItem(items, i);
            if (is(str(it, "token"), " \"caf\xC3\xA9\""))
                found = bytes_are(get(it, "bytes"), " \"caf\xC3\xA9\"") &&
                        cJSON_GetArrayItem(get(it, "bytes"), 5)->valueint == 195;
        }
        EXPECT(found, "%s: the bytes of ' \"caf\xC3\xA9\"' are its UTF-8 bytes", dialect_name(d));
        cJSON_Delete(j), free(b);
    }
}

int main(void) {
    names();
    errors();
    reasoning_model();
    served_model();
    context_limit();
    plain_render();
    shapes();
    bytes_and_escapes();
    return test_summary();
}

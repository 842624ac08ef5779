/* dialect -- the JSON shapes of the servers the stand-in replays; see
 * include/standin/dialect.h.  The bodies follow the servers' documentation:
 *  - OpenAI: the chat completion object and error codes
 *    (platform.openai.com/docs/api-reference/chat/object, docs/guides/
 *    error-codes); the 400 for max_tokens on reasoning models as quoted in
 *    openai/openai-python#2046: {"error":{"message":"Unsupported parameter:
 *    'max_tokens' is not supported with this model. Use
 *    'max_completion_tokens' instead.","type":"invalid_request_error",
 *    "param":"max_tokens","code":"unsupported_parameter"}}.
 *  - vLLM: docs.vllm.ai "Reasoning Outputs" (reasoning_content beside
 *    content), vllm/entrypoints/openai/protocol.py ErrorResponse
 *    {"object":"error","message","type","param","code"}.
 *  - llama.cpp: tools/server/README.md (reasoning_content; probs items with
 *    id/token/bytes/logprob/top_logprobs; {"error":{"code":503,"message":
 *    "Loading model","type":"unavailable_error"}}), the
 *    exceed_context_size_error body with n_prompt_tokens and n_ctx.
 *  - Ollama: openai/openai.go (Message.Reasoning, Error{message,type,param,
 *    code}, NewError: 400 invalid_request_error, 404 not_found_error, else
 *    api_error; system_fingerprint "fp_ollama").
 *  - Azure OpenAI: the content filter answers (see serve.c). */
#include "standin/dialect.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "standin/standin.h"

static const char *const NAMES[DIALECT_N] = {"standin", "openai",       "openai-reasoning", "vllm",
                                             "vllm-reasoning", "llama-server", "ollama", "azure"};

const char *dialect_name(int d) { return d >= 0 && d < DIALECT_N ? NAMES[d] : "?"; }

int dialect_parse(const char *name) {
    for (int i = 0; i < DIALECT_N; i++)
        if (!strcmp(name, NAMES[i])) return i;
    return -1;
}

int dialect_reasons(int d) {
    return d == DIALECT_VLLM || d == DIALECT_VLLM_REASONING || d == DIALECT_LLAMA_SERVER || d == DIALECT_OLLAMA;
}

static int openai_like(int d) { return d == DIALECT_OPENAI || d == DIALECT_OPENAI_REASONING || d == DIALECT_AZURE; }

static void json_str_or_null(ByteBuf *b, const char *s) {
    if (s) bytebuf_put_json_string(b, s);
    else bytebuf_put(b, "null", sizeof "null" - 1);
}

/* ---- errors ------------------------------------------------------------------ */

char *dialect_error(int d, int status, const char *type, const char *param, const char *code, const char *msg) {
    ByteBuf b = {0};
    if (d == DIALECT_VLLM || d == DIALECT_VLLM_REASONING) { /* vLLM's (older) top-level ErrorResponse */
        bytebuf_put(&b, "{\"object\":\"error\",\"message\":", sizeof "{\"object\":\"error\",\"message\":" - 1);
        bytebuf_put_json_string(&b, msg);
        bytebuf_put(&b, ",\"type\":", sizeof ",\"type\":" - 1);
        bytebuf_put_json_string(&b, type);
        bytebuf_put(&b, ",\"param\":", sizeof ",\"param\":" - 1);
        json_str_or_null(&b, param);
        bytebuf_printf(&b, ",\"code\":%d}", status);
        return b.a;
    }
    if (d == DIALECT_LLAMA_SERVER) { /* numeric code first, no param */
        bytebuf_printf(&b, "{\"error\":{\"code\":%d,\"message\":", status);
        bytebuf_put_json_string(&b, msg);
        bytebuf_put(&b, ",\"type\":", sizeof ",\"type\":" - 1);
        bytebuf_put_json_string(&b, type);
        bytebuf_put(&b, "}}", sizeof "}}" - 1);
        return b.a;
    }
    bytebuf_put(&b, "{\"error\":{\"message\":", sizeof "{\"error\":{\"message\":" - 1);
    bytebuf_put_json_string(&b, msg);
    bytebuf_put(&b, ",\"type\":", sizeof ",\"type\":" - 1);
    json_str_or_null(&b, type);
    bytebuf_put(&b, ",\"param\":", sizeof ",\"param\":" - 1);
    json_str_or_null(&b, param);
    bytebuf_put(&b, ",\"code\":", sizeof ",\"code\":" - 1);
    json_str_or_null(&b, code);
    bytebuf_put(&b, "}}", sizeof "}}" - 1);
    return b.a;
}

int dialect_reasoning_tokens(const char *effort) {
    if (!effort) return 128;
    if (!strcmp(effort, "minimal")) return 16;
    if (!strcmp(effort, "low")) return 64;
    if (!strcmp(effort, "high")) return 256;
    return 128;
}

static int reasoning_model_check(const ChatRequest *q, char **body) {
    char msg[256];
    const char *param = NULL, *code = "unsupported_parameter";
    if (q->max_tokens > 0 && q->token_param == CHAT_TOKENS_MAX_TOKENS) {
        param = "max_tokens";
        snprintf(msg, sizeof msg, "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                                  "'max_completion_tokens' instead.");
    } else if (q->temperature >= 0 && q->temperature != 1) {
        param = "temperature", code = "unsupported_value";
        snprintf(msg, sizeof msg, "Unsupported value: 'temperature' does not support %g with this model. Only the "
                                  "default (1) value is supported.", q->temperature);
    } else if (q->logprobs) {
        param = "logprobs";
        snprintf(msg, sizeof msg, "Unsupported parameter: 'logprobs' is not supported with this model.");
    } else if (q->reasoning_effort && strcmp(q->reasoning_effort, "minimal") && strcmp(q->reasoning_effort, "low") &&
               strcmp(q->reasoning_effort, "medium") && strcmp(q->reasoning_effort, "high")) {
        param = "reasoning_effort", code = "invalid_value";
        snprintf(msg, sizeof msg, "Invalid value: '%.60s'. Supported values are: 'minimal', 'low', 'medium', and "
                                  "'high'.", q->reasoning_effort);
    }
    if (!param) return 0;
    *body = dialect_error(DIALECT_OPENAI_REASONING, 400, "invalid_request_error", param, code, msg);
    return 400;
}

int dialect_check_request(int d, const ChatRequest *q, const char *served_model, int ctx_words, int prompt_words,
                          char **body) {
    char msg[320];
    if (d == DIALECT_OPENAI_REASONING) {
        int st = reasoning_model_check(q, body);
        if (st) return st;
    }
    if (d == DIALECT_LLAMA_SERVER && ctx_words > 0 && prompt_words > ctx_words) {
        ByteBuf b = {0};
        bytebuf_printf(&b, "{\"error\":{\"code\":400,\"message\":\"request (%d tokens) exceeds the available context "
                           "size (%d tokens), try increasing it\",\"type\":\"exceed_context_size_error\","
                           "\"n_prompt_tokens\":%d,\"n_ctx\":%d}}", prompt_words, ctx_words, prompt_words, ctx_words);
        *body = b.a;
        return 400;
    }
    if (!served_model || !*served_model || !strcmp(q->model, served_model) || d == DIALECT_LLAMA_SERVER) return 0;
    if (d == DIALECT_VLLM || d == DIALECT_VLLM_REASONING) {
        snprintf(msg, sizeof msg, "The model `%.100s` does not exist.", q->model);
        *body = dialect_error(d, 404, "NotFoundError", NULL, NULL, msg);
    } else if (d == DIALECT_OLLAMA) {
        snprintf(msg, sizeof msg, "model \"%.100s\" not found, try pulling it first", q->model);
        *body = dialect_error(d, 404, "not_found_error", NULL, NULL, msg);
    } else {
        snprintf(msg, sizeof msg, "The model `%.100s` does not exist or you do not have access to it.", q->model);
        *body = dialect_error(d, 404, "invalid_request_error", NULL, "model_not_found", msg);
    }
    return 404;
}

/* ---- log-probs ------------------------------------------------------------------- */

static void put_bytes(ByteBuf *b, const char *tok) {
    bytebuf_put(b, ",\"bytes\":[", sizeof ",\"bytes\":[" - 1);
    for (const unsigned char *p = (const unsigned char *)tok; *p; p++)
        bytebuf_printf(b, "%s%u", p == (const unsigned char *)tok ? "" : ",", *p);
    bytebuf_putc(b, ']');
}

static unsigned token_id(const char *tok) {
    unsigned h = 2166136261u;
    for (; *tok; tok++) h = (h ^ (unsigned char)*tok) * 16777619u;
    return h % 150000u;
}

/* One top entry {"token","logprob"} in the dialect's item shape. */
static void put_entry(ByteBuf *b, int d, const char *tok, double lp, int exact) {
    bytebuf_putc(b, '{');
    if (d == DIALECT_LLAMA_SERVER) bytebuf_printf(b, "\"id\":%u,", token_id(tok));
    bytebuf_put(b, "\"token\":", sizeof "\"token\":" - 1);
    bytebuf_put_json_string(b, tok);
    if (d != DIALECT_STANDIN && d != DIALECT_LLAMA_SERVER) put_bytes(b, tok);
    if (exact) bytebuf_printf(b, ",\"logprob\":%.17g", lp);
    else bytebuf_printf(b, ",\"logprob\":%.3f", lp);
    if (d == DIALECT_LLAMA_SERVER) put_bytes(b, tok);
    bytebuf_putc(b, '}');
}

/* A digit token with top entries "1" and "2" at log p1, log p2. */
static void put_digit(ByteBuf *b, int d, const char *tok, int digit, double l1, double l2, int top) {
    bytebuf_putc(b, '{');
    if (d == DIALECT_LLAMA_SERVER) bytebuf_printf(b, "\"id\":%u,", token_id(tok));
    bytebuf_put(b, "\"token\":", sizeof "\"token\":" - 1);
    bytebuf_put_json_string(b, tok);
    if (d != DIALECT_STANDIN) put_bytes(b, tok);
    bytebuf_printf(b, ",\"logprob\":%.17g,\"top_logprobs\":[", digit == 1 ? l1 : l2);
    int one_first = l1 >= l2;
    for (int k = 0; k < 2 && k < top; k++) {
        int dg = (k == 0) == one_first ? 1 : 2;
        if (k) bytebuf_putc(b, ',');
        put_entry(b, d, dg == 1 ? "1" : "2", dg == 1 ? l1 : l2, 1);
    }
    bytebuf_put(b, "]}", sizeof "]}" - 1);
}

/* Log-probs over text in word-sized pieces (" word", "\n"); the digits at
 * digit_at (the verdict: the critic's probabilities) and decoy_at (one in
 * the reasoning: even odds) are tokens of their own. */
static void put_logprobs(ByteBuf *b, const DialectAnswer *a, const char *text, long digit_at, long decoy_at,
                         const DialectChoice *c, int ci) {
    bytebuf_put(b, "{\"content\":[", sizeof "{\"content\":[" - 1);
    size_t len = strlen(text);
    char tok[256];
    int idx = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        int special = (long)i == digit_at || (long)i == decoy_at;
        if (special || text[i] == '\n') j = i + 1;
        else {
            if (text[j] == ' ' && (long)(j + 1) != digit_at && (long)(j + 1) != decoy_at) j++;
            while (j < len && text[j] != ' ' && text[j] != '\n' && (long)j != digit_at && (long)j != decoy_at &&
                   j - i < sizeof tok - 1)
                j++;
            if (j == i) j = i + 1; /* a lone space before a digit token */
        }
        memcpy(tok, text + i, j - i);
        tok[j - i] = 0;
        if (idx) bytebuf_putc(b, ',');
        if ((long)i == digit_at) {
            put_digit(b, a->dialect, tok, c->answer_digit, standin_log_sigmoid(c->logit),
                      standin_log_sigmoid(-c->logit), a->top_logprobs);
        } else if ((long)i == decoy_at) {
            put_digit(b, a->dialect, tok, tok[0] - '0', log(0.5), log(0.5), a->top_logprobs);
        } else {
            double lp = -(double)(rng_derive(a->lp_seed, 5, (uint64_t)ci << 32 | (uint64_t)idx) % 200) / 1000.0;
            put_entry(b, a->dialect, tok, lp, 0);
            b->n--; /* reopen the item for its top_logprobs */
            bytebuf_put(b, ",\"top_logprobs\":[", sizeof ",\"top_logprobs\":[" - 1);
            if (a->top_logprobs > 0) put_entry(b, a->dialect, tok, lp, 0);
            bytebuf_put(b, "]}", sizeof "]}" - 1);
        }
        idx++;
        i = j;
    }
    bytebuf_put(b, "]}", sizeof "]}" - 1);
}

/* ---- answers --------------------------------------------------------------------------- */

/* What the choice's message content is and what its log-probs cover (both
 * malloc'd; *lp_text NULL: no log-probs); r_off: where the reasoning starts
 * in lp_text, -1 when lp_text does not hold it. */
static void choice_texts(int d, const DialectChoice *c, char **content, char **lp_text, long *r_off) {
    const char *A = c->answer, *R = c->reasoning;
    *content = NULL, *lp_text = NULL, *r_off = 0;
    switch (c->shape) {
    case SHAPE_THINK:
        *content = xasprintf("<think>\n%s\n</think>\n\n%s", R, A);
        *lp_text = xstrdup(*content);
        *r_off = 8;
        return;
    case SHAPE_LONE_THINK:
        *content = xasprintf("%s\n</think>\n\n%s", R, A);
        *lp_text = xstrdup(*content);
        return;
    case SHAPE_PARTS:
        *lp_text = xasprintf("%s%s", R, A);
        return;
    case SHAPE_REFUSAL:
    case SHAPE_FILTERED: return;
    case SHAPE_EXHAUSTED: *content = xstrdup(""); return;
    }
    if (d == DIALECT_VLLM && R[0]) {
        *content = xasprintf("<think>\n%s\n</think>\n\n%s", R, A);
        *lp_text = xstrdup(*content);
        *r_off = 8;
    } else if ((d == DIALECT_VLLM_REASONING || d == DIALECT_LLAMA_SERVER) && R[0]) {
        *content = xstrdup(A);
        *lp_text = xasprintf("%s\n</think>\n\n%s", R, A);
    } else {
        *content = xstrdup(A);
        *lp_text = xstrdup(A);
        *r_off = -1; /* a hidden reasoning: its decoy is no token of the answer */
    }
}

static const char *CF_SAFE = "{\"hate\":{\"filtered\":false,\"severity\":\"safe\"},\"self_harm\":{\"filtered\":false,"
                             "\"severity\":\"safe\"},\"sexual\":{\"filtered\":false,\"severity\":\"safe\"},"
                             "\"violence\":{\"filtered\":false,\"severity\":\"safe\"}}";
static const char *CF_VIOLENCE = "{\"hate\":{\"filtered\":false,\"severity\":\"safe\"},\"self_harm\":{\"filtered\":"
                                 "false,\"severity\":\"safe\"},\"sexual\":{\"filtered\":false,\"severity\":\"safe\"},"
                                 "\"violence\":{\"filtered\":true,\"severity\":\"medium\"}}";

static void put_message(ByteBuf *b, int d, const DialectChoice *c, const char *content) {
    const char *R = c->reasoning;
    bytebuf_put(b, "{\"role\":\"assistant\",", sizeof "{\"role\":\"assistant\"," - 1);
    int visible = c->shape == SHAPE_PLAIN || c->shape == SHAPE_EXHAUSTED;
    if (d == DIALECT_VLLM || d == DIALECT_VLLM_REASONING) {
        bytebuf_put(b, "\"reasoning_content\":", sizeof "\"reasoning_content\":" - 1);
        json_str_or_null(b, d == DIALECT_VLLM_REASONING && visible && R[0] ? R : NULL);
        bytebuf_putc(b, ',');
    } else if (d == DIALECT_LLAMA_SERVER && visible && R[0]) {
        bytebuf_put(b, "\"reasoning_content\":", sizeof "\"reasoning_content\":" - 1);
        bytebuf_put_json_string(b, R);
        bytebuf_putc(b, ',');
    }
    bytebuf_put(b, "\"content\":", sizeof "\"content\":" - 1);
    if (c->shape == SHAPE_PARTS) {
        bytebuf_put(b, "[{\"type\":\"thinking\",\"thinking\":[{\"type\":\"text\",\"text\":", sizeof "[{\"type\":\"thinking\",\"thinking\":[{\"type\":\"text\",\"text\":" - 1);
        bytebuf_put_json_string(b, R);
        bytebuf_put(b, "}]},{\"type\":\"text\",\"text\":", sizeof "}]},{\"type\":\"text\",\"text\":" - 1);
        bytebuf_put_json_string(b, c->answer);
        bytebuf_put(b, "}]", sizeof "}]" - 1);
    } else {
        json_str_or_null(b, content);
    }
    if (d == DIALECT_OLLAMA && visible && R[0]) {
        bytebuf_put(b, ",\"reasoning\":", sizeof ",\"reasoning\":" - 1);
        bytebuf_put_json_string(b, R);
    }
    if (openai_like(d) || c->shape == SHAPE_REFUSAL) {
        bytebuf_put(b, ",\"refusal\":", sizeof ",\"refusal\":" - 1);
        json_str_or_null(b, c->shape == SHAPE_REFUSAL ? "I'm sorry, but I can't help with that request." : NULL);
    }
    if (openai_like(d)) bytebuf_put(b, ",\"annotations\":[]", sizeof ",\"annotations\":[]" - 1);
    if (d == DIALECT_VLLM || d == DIALECT_VLLM_REASONING) bytebuf_put(b, ",\"tool_calls\":[]", sizeof ",\"tool_calls\":[]" - 1);
    bytebuf_putc(b, '}');
}

static void put_choice(ByteBuf *b, const DialectAnswer *a, const DialectChoice *c, int i) {
    int d = a->dialect;
    char *content, *lp_text;
    long r_off;
    choice_texts(d, c, &content, &lp_text, &r_off);
    bytebuf_printf(b, "%s{\"index\":%d,\"message\":", i ? "," : "", i);
    put_message(b, d, c, content);
    bytebuf_put(b, ",\"logprobs\":", sizeof ",\"logprobs\":" - 1);
    if (a->logprobs && lp_text && d != DIALECT_OLLAMA) {
        long a_off = (long)strlen(lp_text) - (long)strlen(c->answer);
        put_logprobs(b, a, lp_text, c->digit_at >= 0 ? a_off + c->digit_at : -1,
                     c->decoy_at >= 0 && r_off >= 0 ? r_off + c->decoy_at : -1, c, i);
    } else {
        bytebuf_put(b, "null", sizeof "null" - 1);
    }
    const char *fr = c->shape == SHAPE_FILTERED ? "content_filter"
                     : c->truncated || c->shape == SHAPE_EXHAUSTED ? "length"
                                                                  : "stop";
    bytebuf_printf(b, ",\"finish_reason\":\"%s\"", fr);
    if (d == DIALECT_VLLM || d == DIALECT_VLLM_REASONING) bytebuf_put(b, ",\"stop_reason\":null", sizeof ",\"stop_reason\":null" - 1);
    if (d == DIALECT_AZURE) {
        bytebuf_put(b, ",\"content_filter_results\":", sizeof ",\"content_filter_results\":" - 1);
        bytebuf_put(b, c->shape == SHAPE_FILTERED ? CF_VIOLENCE : CF_SAFE,
                    strlen(c->shape == SHAPE_FILTERED ? CF_VIOLENCE : CF_SAFE));
    }
    bytebuf_putc(b, '}');
    free(content);
    free(lp_text);
}

static const char *fingerprint(int d) {
    switch (d) {
    case DIALECT_STANDIN: return "hdistill-standin";
    case DIALECT_OLLAMA: return "fp_ollama";
    case DIALECT_LLAMA_SERVER: return "b0000-standin";
    case DIALECT_VLLM:
    case DIALECT_VLLM_REASONING: return NULL;
    default: return "fp_standin";
    }
}

char *dialect_render(const DialectAnswer *a) {
    int d = a->dialect, ct = 0, rt = 0;
    ByteBuf b = {0};
    bytebuf_put(&b, "{\"id\":", sizeof "{\"id\":" - 1);
    bytebuf_put_json_string(&b, a->id);
    bytebuf_printf(&b, ",\"object\":\"chat.completion\",\"created\":%lld,\"model\":", a->created);
    bytebuf_put_json_string(&b, a->model);
    bytebuf_put(&b, ",\"system_fingerprint\":", sizeof ",\"system_fingerprint\":" - 1);
    json_str_or_null(&b, fingerprint(d));
    if (openai_like(d)) bytebuf_put(&b, ",\"service_tier\":\"default\"", sizeof ",\"service_tier\":\"default\"" - 1);
    if (d == DIALECT_AZURE)
        bytebuf_printf(&b, ",\"prompt_filter_results\":[{\"prompt_index\":0,\"content_filter_results\":%s}]", CF_SAFE);
    bytebuf_put(&b, ",\"choices\":[", sizeof ",\"choices\":[" - 1);
    for (int i = 0; i < a->n_choices; i++) {
        put_choice(&b, a, &a->choices[i], i);
        ct += a->choices[i].completion_tokens;
        rt += a->choices[i].reasoning_tokens;
    }
    bytebuf_printf(&b, "],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d", a->prompt_tokens,
                   ct, a->prompt_tokens + ct);
    if (openai_like(d))
        bytebuf_printf(&b, ",\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},"
                           "\"completion_tokens_details\":{\"reasoning_tokens\":%d,\"audio_tokens\":0,"
                           "\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}", rt);
    bytebuf_putc(&b, '}');
    if (d == DIALECT_LLAMA_SERVER)
        bytebuf_printf(&b, ",\"timings\":{\"prompt_n\":%d,\"prompt_ms\":1.0,\"predicted_n\":%d,\"predicted_ms\":1.0}",
                       a->prompt_tokens, ct);
    bytebuf_putc(&b, '}');
    return b.a;
}

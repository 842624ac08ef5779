/* llmproto -- chat-completions bodies, keys and responses; see
 * include/llmproto.h. */
#include "llm/chat.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "base/sha256.h"

void chat_request_init(ChatRequest *r, const char *model) {
    memset(r, 0, sizeof *r);
    r->model = xstrdup(model ? model : "");
    r->temperature = -1;
    r->top_p = -1;
    r->seed = -1;
    r->n = 1;
}

void chat_request_add_message(ChatRequest *r, const char *role, const char *content) {
    r->messages = xrealloc(r->messages, sizeof(ChatMessage) * (size_t)(r->n_messages + 1));
    r->messages[r->n_messages].role = xstrdup(role);
    r->messages[r->n_messages].content = xstrdup(content);
    r->n_messages++;
}

void chat_request_free(ChatRequest *r) {
    if (!r) return;
    for (int i = 0; i < r->n_messages; i++) {
        free(r->messages[i].role);
        free(r->messages[i].content);
    }
    free(r->messages);
    free(r->model);
    memset(r, 0, sizeof *r);
}

static cJSON *request_json(const ChatRequest *r) {
    cJSON *o = cJSON_CreateObject();
    CHECK(o, "cJSON alloc");
    cJSON_AddStringToObject(o, "model", r->model);
    cJSON *msgs = cJSON_AddArrayToObject(o, "messages");
    for (int i = 0; i < r->n_messages; i++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", r->messages[i].role);
        cJSON_AddStringToObject(m, "content", r->messages[i].content);
        cJSON_AddItemToArray(msgs, m);
    }
    if (r->temperature >= 0) cJSON_AddNumberToObject(o, "temperature", r->temperature);
    if (r->top_p >= 0) cJSON_AddNumberToObject(o, "top_p", r->top_p);
    if (r->max_tokens > 0) cJSON_AddNumberToObject(o, "max_tokens", r->max_tokens);
    if (r->seed >= 0) cJSON_AddNumberToObject(o, "seed", (double)r->seed);
    if (r->n > 1) cJSON_AddNumberToObject(o, "n", r->n);
    if (r->logprobs) cJSON_AddBoolToObject(o, "logprobs", 1);
    if (r->top_logprobs > 0) cJSON_AddNumberToObject(o, "top_logprobs", r->top_logprobs);
    return o;
}

static char *print_compact(cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    CHECK(s, "cJSON print");
    char *c = xstrdup(s);
    cJSON_free(s);
    return c;
}

char *chat_request_body(const ChatRequest *r) {
    cJSON *o = request_json(r);
    char *s = print_compact(o);
    cJSON_Delete(o);
    return s;
}

void chat_request_key(const ChatRequest *r, char key[65]) {
    char *s = chat_request_body(r);
    sha256_hex(s, strlen(s), key);
    free(s);
}

/* A JSON number as int64, clamped: casting a double outside int64's range
 * (a seed or a token count of 1e300) is undefined. */
static int64_t json_i64(const cJSON *v) {
    double d = v->valuedouble;
    return d >= 0x1p63 ? INT64_MAX : d <= -0x1p63 ? INT64_MIN : (int64_t)d;
}

int chat_request_parse(const char *body, size_t len, ChatRequest *r, Err *e) {
    memset(r, 0, sizeof *r);
    cJSON *o = cJSON_ParseWithLength(body, len);
    if (!o) return err_set(e, "malformed JSON request");
    int rc = 0;
    cJSON *model = cJSON_GetObjectItemCaseSensitive(o, "model");
    cJSON *msgs = cJSON_GetObjectItemCaseSensitive(o, "messages");
    if (!cJSON_IsString(model) || !cJSON_IsArray(msgs)) {
        rc = err_set(e, "request needs \"model\" (string) and \"messages\" (array)");
        goto out;
    }
    chat_request_init(r, model->valuestring);
    cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsString(role) || !cJSON_IsString(content)) {
            rc = err_set(e, "every message needs string \"role\" and \"content\"");
            chat_request_free(r);
            goto out;
        }
        chat_request_add_message(r, role->valuestring, content->valuestring);
    }
    cJSON *v;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "temperature"))) r->temperature = v->valuedouble;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "top_p"))) r->top_p = v->valuedouble;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "max_tokens"))) r->max_tokens = v->valueint;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "seed"))) r->seed = json_i64(v);
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "n"))) r->n = v->valueint;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "logprobs"))) r->logprobs = 1;
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(o, "top_logprobs"))) r->top_logprobs = v->valueint;
out:
    cJSON_Delete(o);
    return rc;
}

void chat_response_free(ChatResponse *r) {
    if (!r) return;
    for (int i = 0; i < r->n_tokens; i++) {
        free(r->tokens[i].token);
        free(r->tokens[i].top);
    }
    free(r->tokens);
    free(r->content);
    free(r->finish_reason);
    memset(r, 0, sizeof *r);
}

int chat_response_parse(const char *body, size_t len, ChatResponse *out, Err *e) {
    memset(out, 0, sizeof *out);
    out->prompt_tokens = out->completion_tokens = -1;
    cJSON *o = cJSON_ParseWithLength(body, len);
    if (!o) return err_set(e, "malformed JSON in response (%zu bytes)", len);
    int rc = 0;
    cJSON *choices = cJSON_GetObjectItemCaseSensitive(o, "choices");
    cJSON *c0 = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;
    cJSON *msg = c0 ? cJSON_GetObjectItemCaseSensitive(c0, "message") : NULL;
    cJSON *content = msg ? cJSON_GetObjectItemCaseSensitive(msg, "content") : NULL;
    if (!cJSON_IsObject(msg) || !(cJSON_IsString(content) || cJSON_IsNull(content))) {
        cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
        cJSON *em = cJSON_IsObject(err) ? cJSON_GetObjectItemCaseSensitive(err, "message") : NULL;
        if (cJSON_IsString(em))
            rc = err_set(e, "endpoint error: %.200s", em->valuestring);
        else
            rc = err_set(e, "wrong schema: no choices[0].message.content in response");
        goto out;
    }
    out->content = xstrdup(cJSON_IsString(content) ? content->valuestring : "");
    cJSON *fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
    out->finish_reason = xstrdup(cJSON_IsString(fr) ? fr->valuestring : "");
    cJSON *lp = cJSON_GetObjectItemCaseSensitive(c0, "logprobs");
    cJSON *lpc = cJSON_IsObject(lp) ? cJSON_GetObjectItemCaseSensitive(lp, "content") : NULL;
    if (cJSON_IsArray(lpc)) {
        int n = cJSON_GetArraySize(lpc);
        out->tokens = xcalloc((size_t)(n ? n : 1), sizeof(ChatTokenLogprob));
        cJSON *t;
        cJSON_ArrayForEach(t, lpc) {
            cJSON *tok = cJSON_GetObjectItemCaseSensitive(t, "token");
            cJSON *l = cJSON_GetObjectItemCaseSensitive(t, "logprob");
            if (!cJSON_IsString(tok) || !cJSON_IsNumber(l)) continue;
            ChatTokenLogprob *d = &out->tokens[out->n_tokens++];
            d->token = xstrdup(tok->valuestring);
            d->logprob = l->valuedouble;
            cJSON *top = cJSON_GetObjectItemCaseSensitive(t, "top_logprobs");
            if (cJSON_IsArray(top)) {
                int k = cJSON_GetArraySize(top);
                d->top = xcalloc((size_t)(k ? k : 1), sizeof(ChatTopLogprob));
                cJSON *x;
                cJSON_ArrayForEach(x, top) {
                    cJSON *xt = cJSON_GetObjectItemCaseSensitive(x, "token");
                    cJSON *xl = cJSON_GetObjectItemCaseSensitive(x, "logprob");
                    if (!cJSON_IsString(xt) || !cJSON_IsNumber(xl)) continue;
                    snprintf(d->top[d->n_top].token, sizeof d->top[d->n_top].token, "%s", xt->valuestring);
                    d->top[d->n_top].logprob = xl->valuedouble;
                    d->n_top++;
                }
            }
        }
    }
    cJSON *usage = cJSON_GetObjectItemCaseSensitive(o, "usage");
    if (cJSON_IsObject(usage)) {
        cJSON *pt = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens");
        cJSON *ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
        if (cJSON_IsNumber(pt)) out->prompt_tokens = json_i64(pt);
        if (cJSON_IsNumber(ct)) out->completion_tokens = json_i64(ct);
    }
out:
    cJSON_Delete(o);
    if (rc) chat_response_free(out);
    return rc;
}

char *chat_fill_template(const char *tmpl, const char *input, int n, const char *a, const char *b) {
    ByteBuf out = {0};
    for (const char *p = tmpl; *p;) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            if (close) {
                size_t len = (size_t)(close - p - 1);
                const char *val = NULL;
                char num[32];
                if (len == 5 && !strncmp(p + 1, "input", 5)) val = input;
                else if (len == 1 && p[1] == 'n') {
                    snprintf(num, sizeof num, "%d", n);
                    val = num;
                } else if (len == 1 && p[1] == 'a') val = a;
                else if (len == 1 && p[1] == 'b') val = b;
                if (val) {
                    bytebuf_put(&out, val, strlen(val));
                    p = close + 1;
                    continue;
                }
            }
        }
        bytebuf_putc(&out, *p++);
    }
    if (!out.a) bytebuf_put(&out, "", 0);
    return out.a;
}

void chat_request_for(const EndpointConfig *ec, const char *user, ChatRequest *out) {
    chat_request_init(out, ec->model);
    if (ec->system[0]) chat_request_add_message(out, "system", ec->system);
    chat_request_add_message(out, "user", user);
    out->temperature = ec->temperature;
    out->top_p = ec->top_p;
    out->max_tokens = ec->max_tokens;
    out->seed = ec->seed;
    out->logprobs = ec->logprobs;
    out->top_logprobs = ec->logprobs ? ec->top_logprobs : 0;
}

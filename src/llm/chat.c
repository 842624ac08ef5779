/* chat -- chat-completions bodies, keys, responses and error bodies; see
 * include/llm/chat.h. */
#include "llm/chat.h"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/sha256.h"

/* keys hdistill sets itself: never taken from extra_body */
static const char *const RESERVED[] = {"model", "messages", "temperature", "top_p", "max_tokens",
                                       "max_completion_tokens", "seed", "n", "logprobs", "top_logprobs",
                                       "reasoning_effort", "stream"};
#define N_RESERVED (sizeof RESERVED / sizeof RESERVED[0])

static int reserved_key(const char *k) {
    for (size_t i = 0; i < N_RESERVED; i++)
        if (!strcmp(k, RESERVED[i])) return 1;
    return 0;
}

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
    free(r->reasoning_effort);
    free(r->extra_body);
    memset(r, 0, sizeof *r);
}

void chat_request_copy(ChatRequest *dst, const ChatRequest *src) {
    *dst = *src;
    dst->model = xstrdup(src->model);
    dst->messages = NULL;
    dst->n_messages = 0;
    for (int i = 0; i < src->n_messages; i++)
        chat_request_add_message(dst, src->messages[i].role, src->messages[i].content);
    dst->reasoning_effort = src->reasoning_effort ? xstrdup(src->reasoning_effort) : NULL;
    dst->extra_body = src->extra_body ? xstrdup(src->extra_body) : NULL;
}

static char *print_compact(const cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    CHECK(s, "cJSON print");
    char *c = xstrdup(s);
    cJSON_free(s);
    return c;
}

static int cmp_keys(const void *a, const void *b) {
    return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

/* A copy of x with the keys of every object sorted (the canonical form). */
static cJSON *canonical(const cJSON *x) {
    if (cJSON_IsObject(x)) {
        int n = cJSON_GetArraySize(x), k = 0;
        cJSON **kids = xcalloc((size_t)(n ? n : 1), sizeof *kids);
        for (cJSON *c = x->child; c; c = c->next) kids[k++] = c;
        qsort(kids, (size_t)n, sizeof *kids, cmp_keys);
        cJSON *o = cJSON_CreateObject();
        CHECK(o, "cJSON alloc");
        for (int i = 0; i < n; i++) cJSON_AddItemToObject(o, kids[i]->string, canonical(kids[i]));
        free(kids);
        return o;
    }
    if (cJSON_IsArray(x)) {
        cJSON *a = cJSON_CreateArray();
        CHECK(a, "cJSON alloc");
        for (cJSON *c = x->child; c; c = c->next) cJSON_AddItemToArray(a, canonical(c));
        return a;
    }
    cJSON *d = cJSON_Duplicate(x, 1);
    CHECK(d, "cJSON alloc");
    return d;
}

/* Duplicate keys anywhere in x: the first one found, or NULL. */
static const char *duplicate_key(const cJSON *x) {
    if (!cJSON_IsObject(x) && !cJSON_IsArray(x)) return NULL;
    for (const cJSON *c = x->child; c; c = c->next) {
        if (cJSON_IsObject(x))
            for (const cJSON *d = c->next; d; d = d->next)
                if (!strcmp(c->string, d->string)) return c->string;
        const char *k = duplicate_key(c);
        if (k) return k;
    }
    return NULL;
}

/* Checks extra-body JSON text; returns the canonical text (malloc'd) or
 * NULL with e set. */
static char *extra_canonical(const char *json, Err *e) {
    cJSON *o = cJSON_Parse(json);
    if (!o) {
        err_set(e, "not valid JSON: '%.80s' (hint: a JSON object such as {\"chat_template_kwargs\":"
                   "{\"enable_thinking\":false}})", json);
        return NULL;
    }
    char *out = NULL;
    const char *dup = duplicate_key(o);
    if (!cJSON_IsObject(o)) {
        err_set(e, "must be a JSON object, got '%.80s'", json);
    } else if (dup) {
        err_set(e, "key \"%s\" appears twice", dup);
    } else {
        for (cJSON *c = o->child; c && !out; c = c->next)
            if (reserved_key(c->string)) {
                err_set(e, "key \"%s\" is set by hdistill itself (hint: use its own option, e.g. "
                           "teacher.max_tokens or teacher.token_param)", c->string);
                cJSON_Delete(o);
                return NULL;
            }
        cJSON *canon = canonical(o);
        out = print_compact(canon);
        cJSON_Delete(canon);
    }
    cJSON_Delete(o);
    return out;
}

int chat_request_set_extra(ChatRequest *r, const char *json, Err *e) {
    free(r->extra_body);
    r->extra_body = NULL;
    if (!json || !*json) return 0;
    char *c = extra_canonical(json, e);
    if (!c) return err_prefix(e, "extra_body: ");
    if (!strcmp(c, "{}")) free(c);
    else r->extra_body = c;
    return 0;
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
    if (r->max_tokens > 0)
        cJSON_AddNumberToObject(o, r->token_param == CHAT_TOKENS_MAX_COMPLETION_TOKENS ? "max_completion_tokens"
                                                                                       : "max_tokens",
                                r->max_tokens);
    if (r->seed >= 0) cJSON_AddNumberToObject(o, "seed", (double)r->seed);
    if (r->n > 1) cJSON_AddNumberToObject(o, "n", r->n);
    if (r->logprobs) cJSON_AddBoolToObject(o, "logprobs", 1);
    if (r->top_logprobs > 0) cJSON_AddNumberToObject(o, "top_logprobs", r->top_logprobs);
    if (r->reasoning_effort && r->reasoning_effort[0])
        cJSON_AddStringToObject(o, "reasoning_effort", r->reasoning_effort);
    if (r->extra_body) {
        cJSON *x = cJSON_Parse(r->extra_body);
        CHECK(cJSON_IsObject(x), "extra_body is not a JSON object (set it with chat_request_set_extra)");
        while (x->child) {
            cJSON *c = cJSON_DetachItemViaPointer(x, x->child);
            cJSON_AddItemToObject(o, c->string, c);
        }
        cJSON_Delete(x);
    }
    return o;
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

static int finite_number(const cJSON *v) { return cJSON_IsNumber(v) && isfinite(v->valuedouble); }

/* The known optional fields of a parsed request; unknown keys go to extra.
 * The body of the result parses back to the same request (the server's key
 * is the client's): a number JSON cannot print (1e999 is "null") is not
 * taken as temperature or top_p, and a repeated max_tokens /
 * max_completion_tokens or reasoning_effort goes to extra only after a
 * value that is set (found by fuzz_chat_request: {"max_tokens":-28,
 * "max_tokens":128} gave a body with max_tokens 128 in extra, which then
 * parsed as the field). */
static void parse_request_fields(const cJSON *o, ChatRequest *r) {
    cJSON *extra = cJSON_CreateObject();
    CHECK(extra, "cJSON alloc");
    int have_max = 0;
    for (const cJSON *v = o->child; v; v = v->next) {
        const char *k = v->string;
        if (!strcmp(k, "model") || !strcmp(k, "messages")) continue;
        if (!strcmp(k, "temperature") && finite_number(v)) r->temperature = v->valuedouble;
        else if (!strcmp(k, "top_p") && finite_number(v)) r->top_p = v->valuedouble;
        else if ((!strcmp(k, "max_tokens") || !strcmp(k, "max_completion_tokens")) && cJSON_IsNumber(v) &&
                 !have_max) {
            r->max_tokens = v->valueint;
            r->token_param = k[4] == 'c' ? CHAT_TOKENS_MAX_COMPLETION_TOKENS : CHAT_TOKENS_MAX_TOKENS;
            have_max = r->max_tokens > 0;
        } else if (!strcmp(k, "seed") && cJSON_IsNumber(v)) r->seed = json_i64(v);
        else if (!strcmp(k, "n") && cJSON_IsNumber(v)) r->n = v->valueint;
        else if (!strcmp(k, "logprobs") && cJSON_IsBool(v)) r->logprobs = cJSON_IsTrue(v);
        else if (!strcmp(k, "top_logprobs") && cJSON_IsNumber(v)) r->top_logprobs = v->valueint;
        else if (!strcmp(k, "reasoning_effort") && cJSON_IsString(v) &&
                 !(r->reasoning_effort && r->reasoning_effort[0])) {
            free(r->reasoning_effort);
            r->reasoning_effort = xstrdup(v->valuestring);
        } else if (!cJSON_GetObjectItemCaseSensitive(extra, k))
            cJSON_AddItemToObject(extra, k, canonical(v));
    }
    if (extra->child) {
        cJSON *canon = canonical(extra);
        r->extra_body = print_compact(canon);
        cJSON_Delete(canon);
    }
    cJSON_Delete(extra);
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
    parse_request_fields(o, r);
out:
    cJSON_Delete(o);
    return rc;
}

int chat_endpoint_check(const EndpointConfig *ec, const char *role, Err *e) {
    if (ec->extra_body && ec->extra_body[0]) {
        char *c = extra_canonical(ec->extra_body, e);
        if (!c) return err_prefix(e, "%s.extra_body: ", role);
        free(c);
    }
    static const char *efforts[] = {"", "none", "minimal", "low", "medium", "high"};
    int ok = !ec->reasoning_effort; /* unset = "" */
    for (size_t i = 0; i < sizeof efforts / sizeof efforts[0]; i++)
        ok |= ec->reasoning_effort && !strcmp(ec->reasoning_effort, efforts[i]);
    if (!ok)
        return err_set(e, "%s.reasoning_effort '%s' is not one of \"\", none, minimal, low, medium, high", role,
                       ec->reasoning_effort ? ec->reasoning_effort : "(null)");
    if (ec->token_param != TOKEN_PARAM_MAX_TOKENS && ec->token_param != TOKEN_PARAM_MAX_COMPLETION_TOKENS)
        return err_set(e, "%s.token_param must be max_tokens or max_completion_tokens", role);
    if (ec->mode != ENDPOINT_MODE_SYNC && ec->mode != ENDPOINT_MODE_BATCH)
        return err_set(e, "%s.mode must be sync or batch", role);
    return 0;
}

/* ---- responses -------------------------------------------------------------- */

void chat_response_free(ChatResponse *r) {
    if (!r) return;
    for (int i = 0; i < r->n_tokens; i++) {
        free(r->tokens[i].token);
        free(r->tokens[i].top);
    }
    free(r->tokens);
    free(r->content);
    free(r->reasoning);
    free(r->refusal);
    free(r->finish_reason);
    memset(r, 0, sizeof *r);
}

int chat_response_truncated(const ChatResponse *r) { return r->finish_reason && !strcmp(r->finish_reason, "length"); }
int chat_response_filtered(const ChatResponse *r) {
    return r->finish_reason && !strcmp(r->finish_reason, "content_filter");
}
int chat_response_refused(const ChatResponse *r) { return r->refusal && r->refusal[0]; }

static const char *skip_blank(const char *p) {
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') p++;
    return p;
}

static char *trimmed_copy(const char *s, size_t n) {
    while (n && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')) s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == '\t')) n--;
    return xstrndup(s, n);
}

void chat_split_reasoning(const char *text, char **answer, char **reasoning) {
    const char *t = skip_blank(text ? text : "");
    const char *close = strstr(t, "</think>");
    if (!strncmp(t, "<think>", 7)) {
        const char *in = t + 7;
        close = strstr(in, "</think>");
        if (!close) { /* cut inside the reasoning: no answer */
            *reasoning = trimmed_copy(in, strlen(in));
            *answer = xstrdup("");
            return;
        }
        *reasoning = trimmed_copy(in, (size_t)(close - in));
        *answer = xstrdup(skip_blank(close + 8));
        return;
    }
    if (close) { /* a lone closing tag: what comes before it is reasoning */
        *reasoning = trimmed_copy(t, (size_t)(close - t));
        *answer = xstrdup(skip_blank(close + 8));
        return;
    }
    *reasoning = xstrdup("");
    *answer = xstrdup(t);
}

static void append_text(ByteBuf *b, const char *s) {
    if (!s || !*s) return;
    if (b->n) bytebuf_putc(b, '\n');
    bytebuf_put(b, s, strlen(s));
}

/* content given as a list of parts; -1 with e set on a part it cannot read */
static int read_parts(const cJSON *parts, ByteBuf *text, ByteBuf *think, ByteBuf *refusal, Err *e) {
    const cJSON *p;
    cJSON_ArrayForEach(p, parts) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
        const char *t = cJSON_IsString(type) ? type->valuestring : "";
        if (!strcmp(t, "text")) {
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(p, "text");
            if (!cJSON_IsString(x)) return err_set(e, "wrong schema: a \"text\" content part without a string text");
            bytebuf_put(text, x->valuestring, strlen(x->valuestring));
        } else if (!strcmp(t, "thinking") || !strcmp(t, "reasoning")) {
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(p, t);
            if (!x) x = cJSON_GetObjectItemCaseSensitive(p, "text");
            if (cJSON_IsString(x)) append_text(think, x->valuestring);
            else if (cJSON_IsArray(x)) { /* Magistral: [{"type":"text","text":..}] */
                const cJSON *q;
                cJSON_ArrayForEach(q, x) {
                    const cJSON *qt = cJSON_GetObjectItemCaseSensitive(q, "text");
                    if (cJSON_IsString(qt)) append_text(think, qt->valuestring);
                }
            } else {
                return err_set(e, "wrong schema: a \"%s\" content part without its text", t);
            }
        } else if (!strcmp(t, "refusal")) {
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(p, "refusal");
            if (cJSON_IsString(x)) append_text(refusal, x->valuestring);
        } else {
            return err_set(e, "wrong schema: content part of type \"%.40s\" (hint: only text, thinking and refusal "
                              "parts are understood)", t);
        }
    }
    return 0;
}

/* Fills content, reasoning and refusal of out from message msg. */
static int read_message(const cJSON *msg, ChatResponse *out, Err *e) {
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    ByteBuf text = {0}, think = {0}, refusal = {0};
    int rc = 0;
    static const char *fields[] = {"reasoning_content", "reasoning"};
    for (int k = 0; k < 2; k++) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(msg, fields[k]);
        if (cJSON_IsString(f) && (k == 0 || !think.n)) append_text(&think, f->valuestring);
    }
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(msg, "refusal");
    if (cJSON_IsString(rf)) append_text(&refusal, rf->valuestring);
    if (cJSON_IsString(content)) bytebuf_put(&text, content->valuestring, strlen(content->valuestring));
    else if (cJSON_IsArray(content)) rc = read_parts(content, &text, &think, &refusal, e);
    else if (content && !cJSON_IsNull(content)) rc = err_set(e, "wrong schema: message.content is neither text nor parts");
    else if (!content && !refusal.n && !think.n) rc = err_set(e, "wrong schema: no choices[0].message.content in response");
    if (rc == 0) {
        char *answer, *inline_think;
        chat_split_reasoning(text.a ? text.a : "", &answer, &inline_think);
        append_text(&think, inline_think);
        free(inline_think);
        out->content = answer;
        out->reasoning = xstrdup(think.a ? think.a : "");
        out->refusal = xstrdup(refusal.a ? refusal.a : "");
    }
    bytebuf_free(&text), bytebuf_free(&think), bytebuf_free(&refusal);
    return rc;
}

static int read_logprob(const cJSON *t, double *lp) {
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(t, "logprob");
    if (cJSON_IsNumber(l)) {
        *lp = l->valuedouble;
        return 1;
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(t, "prob"); /* llama-server post_sampling_probs */
    if (cJSON_IsNumber(p) && p->valuedouble >= 0) {
        *lp = p->valuedouble > 0 ? log(p->valuedouble) : -INFINITY;
        return 1;
    }
    return 0;
}

static void read_logprobs(const cJSON *lpc, ChatResponse *out) {
    int n = cJSON_GetArraySize(lpc);
    out->tokens = xcalloc((size_t)(n ? n : 1), sizeof(ChatTokenLogprob));
    const cJSON *t;
    cJSON_ArrayForEach(t, lpc) {
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(t, "token");
        double l;
        if (!cJSON_IsString(tok) || !read_logprob(t, &l)) continue;
        ChatTokenLogprob *d = &out->tokens[out->n_tokens++];
        d->token = xstrdup(tok->valuestring);
        d->logprob = l;
        const cJSON *top = cJSON_GetObjectItemCaseSensitive(t, "top_logprobs");
        if (!top) top = cJSON_GetObjectItemCaseSensitive(t, "top_probs");
        if (!cJSON_IsArray(top)) continue;
        int k = cJSON_GetArraySize(top);
        d->top = xcalloc((size_t)(k ? k : 1), sizeof(ChatTopLogprob));
        const cJSON *x;
        cJSON_ArrayForEach(x, top) {
            const cJSON *xt = cJSON_GetObjectItemCaseSensitive(x, "token");
            double xl;
            if (!cJSON_IsString(xt) || !read_logprob(x, &xl)) continue;
            snprintf(d->top[d->n_top].token, sizeof d->top[d->n_top].token, "%s", xt->valuestring);
            d->top[d->n_top].logprob = xl;
            d->n_top++;
        }
    }
}

/* Where content starts in the concatenated tokens: after the last
 * "</think>" if there is one, else the last place it occurs.  Sets every
 * token's offset relative to content and out->aligned. */
static void align_tokens(ChatResponse *out) {
    if (!out->n_tokens || !out->content[0]) return;
    ByteBuf all = {0};
    size_t *start = xmalloc(sizeof(size_t) * (size_t)out->n_tokens);
    for (int i = 0; i < out->n_tokens; i++) {
        start[i] = all.n;
        bytebuf_put(&all, out->tokens[i].token, strlen(out->tokens[i].token));
    }
    bytebuf_putc(&all, 0);
    size_t from = 0, cl = strlen(out->content);
    for (const char *p = all.a; (p = strstr(p, "</think>")); p += 8) from = (size_t)(p - all.a) + 8;
    const char *hit = NULL;
    for (const char *p = all.a + from; (p = strstr(p, out->content)); p++) {
        hit = p;
        if (from) break; /* the first occurrence after the reasoning */
    }
    if (hit) {
        size_t at = (size_t)(hit - all.a);
        for (int i = 0; i < out->n_tokens; i++) out->tokens[i].offset = (long)start[i] - (long)at;
        out->aligned = at + cl <= all.n;
    }
    free(start);
    bytebuf_free(&all);
}

int chat_response_token_at(const ChatResponse *r, size_t offset) {
    if (!r->aligned) return -1;
    for (int i = 0; i < r->n_tokens; i++) {
        long o = r->tokens[i].offset, len = (long)strlen(r->tokens[i].token);
        if (o <= (long)offset && (long)offset < o + len) return i;
    }
    return -1;
}

static void read_usage(const cJSON *o, ChatResponse *out) {
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(o, "usage");
    if (!cJSON_IsObject(usage)) return;
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
    const cJSON *det = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens_details");
    const cJSON *rt = cJSON_IsObject(det) ? cJSON_GetObjectItemCaseSensitive(det, "reasoning_tokens") : NULL;
    if (cJSON_IsNumber(pt)) out->prompt_tokens = json_i64(pt);
    if (cJSON_IsNumber(ct)) out->completion_tokens = json_i64(ct);
    if (cJSON_IsNumber(rt)) out->reasoning_tokens = json_i64(rt);
}

int chat_response_parse(const char *body, size_t len, ChatResponse *out, Err *e) {
    memset(out, 0, sizeof *out);
    out->prompt_tokens = out->completion_tokens = out->reasoning_tokens = -1;
    cJSON *o = cJSON_ParseWithLength(body, len);
    if (!o) return err_set(e, "malformed JSON in response (%zu bytes)", len);
    int rc = 0;
    cJSON *choices = cJSON_GetObjectItemCaseSensitive(o, "choices");
    cJSON *c0 = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;
    cJSON *msg = c0 ? cJSON_GetObjectItemCaseSensitive(c0, "message") : NULL;
    if (!cJSON_IsObject(msg)) {
        ChatError er;
        char m[600];
        if (chat_error_parse(body, len, &er)) {
            chat_error_format(&er, m, sizeof m);
            rc = err_set(e, "endpoint error: %s", m);
        } else {
            rc = err_set(e, "wrong schema: no choices[0].message.content in response");
        }
        goto out;
    }
    if ((rc = read_message(msg, out, e)) != 0) goto out;
    cJSON *fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
    out->finish_reason = xstrdup(cJSON_IsString(fr) ? fr->valuestring : "");
    cJSON *lp = cJSON_GetObjectItemCaseSensitive(c0, "logprobs");
    cJSON *lpc = cJSON_IsObject(lp) ? cJSON_GetObjectItemCaseSensitive(lp, "content") : NULL;
    if (cJSON_IsArray(lpc)) {
        read_logprobs(lpc, out);
        align_tokens(out);
    }
    read_usage(o, out);
out:
    cJSON_Delete(o);
    if (rc) chat_response_free(out);
    return rc;
}

/* ---- error bodies --------------------------------------------------------------- */

static void field_text(const cJSON *o, const char *k, char *buf, size_t n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsString(v)) snprintf(buf, n, "%s", v->valuestring);
    else if (cJSON_IsNumber(v)) snprintf(buf, n, "%.0f", v->valuedouble);
}

static void one_line(char *s) {
    for (; *s; s++)
        if (*s == '\n' || *s == '\r' || *s == '\t') *s = ' ';
}

int chat_error_parse(const char *body, size_t len, ChatError *out) {
    memset(out, 0, sizeof *out);
    cJSON *o = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return 0;
    }
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(o, "object");
    const cJSON *detail = cJSON_GetObjectItemCaseSensitive(o, "detail");
    const cJSON *src = NULL;
    if (cJSON_IsObject(err)) src = err;
    else if (cJSON_IsString(obj) && !strcmp(obj->valuestring, "error")) src = o;
    if (src) {
        field_text(src, "message", out->message, sizeof out->message);
        field_text(src, "type", out->type, sizeof out->type);
        field_text(src, "param", out->param, sizeof out->param);
        field_text(src, "code", out->code, sizeof out->code);
    } else if (cJSON_IsString(err)) {
        snprintf(out->message, sizeof out->message, "%s", err->valuestring);
    } else if (cJSON_IsString(detail)) {
        snprintf(out->message, sizeof out->message, "%s", detail->valuestring);
    } else if (cJSON_IsArray(detail) && cJSON_GetArraySize(detail) > 0) { /* FastAPI validation */
        const cJSON *d0 = cJSON_GetArrayItem(detail, 0);
        const cJSON *loc = cJSON_GetObjectItemCaseSensitive(d0, "loc");
        field_text(d0, "msg", out->message, sizeof out->message);
        field_text(d0, "type", out->type, sizeof out->type);
        const cJSON *last = cJSON_IsArray(loc) ? cJSON_GetArrayItem(loc, cJSON_GetArraySize(loc) - 1) : NULL;
        if (cJSON_IsString(last)) snprintf(out->param, sizeof out->param, "%s", last->valuestring);
    } else {
        field_text(o, "message", out->message, sizeof out->message);
    }
    cJSON_Delete(o);
    /* every field: a server's type or code with a line break made a
     * multi-line error (found by fuzz_chat_response) */
    one_line(out->message), one_line(out->type), one_line(out->param), one_line(out->code);
    if (out->message[0] || out->code[0] || out->type[0]) return 1;
    memset(out, 0, sizeof *out); /* as the header says (a param alone was left: found by fuzz_chat_response) */
    return 0;
}

void chat_error_format(const ChatError *er, char *buf, size_t n) {
    char suffix[256] = "";
    const char *names[3] = {"type", "param", "code"};
    const char *vals[3] = {er->type, er->param, er->code};
    size_t k = 0;
    for (int i = 0; i < 3; i++) {
        if (!vals[i][0]) continue;
        int w = snprintf(suffix + k, sizeof suffix - k, "%s%s %.60s", k ? ", " : " (", names[i], vals[i]);
        if (w > 0) k += (size_t)w < sizeof suffix - k ? (size_t)w : sizeof suffix - k - 1;
    }
    if (k && k < sizeof suffix - 1) suffix[k++] = ')', suffix[k] = 0;
    /* the message is cut (with "...") so that type, param and code always fit */
    const char *msg = er->message[0] ? er->message : "(no message)";
    size_t room = n > k + 1 ? n - k - 1 : 0, ml = strlen(msg);
    if (ml <= room) snprintf(buf, n, "%s%s", msg, suffix);
    else if (room > 3) snprintf(buf, n, "%.*s...%s", (int)(room - 3), msg, suffix);
    else snprintf(buf, n, "%s", suffix);
}

/* ---- prompts ------------------------------------------------------------------------ */

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
    if (ec->token_param == TOKEN_PARAM_MAX_COMPLETION_TOKENS)
        out->token_param = CHAT_TOKENS_MAX_COMPLETION_TOKENS;
    if (ec->reasoning_effort && ec->reasoning_effort[0] && strcmp(ec->reasoning_effort, "none"))
        out->reasoning_effort = xstrdup(ec->reasoning_effort);
    Err e;
    CHECK(chat_request_set_extra(out, ec->extra_body, &e) == 0, "%s (check the endpoint with chat_endpoint_check)",
          e.msg);
}

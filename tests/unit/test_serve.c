/* test_serve -- the stand-in endpoint through real HTTP (libcurl): models,
 * teacher answers (count, quality spread under h, formats, determinism,
 * refusals), critic probabilities (agreement with h, position and length
 * bias, log-probs iff asked), every fault kind, latency without
 * serialisation, the request log, serve_main under SIGTERM, clean stop and
 * an indicative throughput figure; the dialects' body shapes and the quirk
 * faults' documented bodies; the Files and Batch API (upload, create, poll,
 * output and error files, list, cancel, failed validation). */
#include <cJSON.h>
#include <curl/curl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "llm/chat.h"
#include "standin/serve.h"
#include "standin/standin.h"
#include "standin/dialect.h"
#include "test.h"
#include <time.h>

static const char *TEACHER_TMPL =
    "Rewrite the sentence below in {n} different humorous ways. Keep its meaning. Answer with a numbered "
    "list and nothing else.\nSentence: {input}";
static const char *CRITIC_TMPL =
    "Here is a sentence and two humorous paraphrases of it.\nSentence: {input}\n1. {a}\n2. {b}\nWhich "
    "paraphrase is funnier while keeping the meaning of the sentence? First write \"Reason:\" and one short "
    "sentence, then \"Answer:\" and the number of the better paraphrase (1 or 2).";

static StandinWorld *W;
static char TMP[256];

/* ---- HTTP helpers ----------------------------------------------------------- */

typedef struct {
    CURLcode rc;
    long status;
    ByteBuf body, headers;
    double secs;
} Http;

static size_t on_data(char *p, size_t sz, size_t n, void *ud) {
    bytebuf_put(ud, p, sz * n);
    return sz * n;
}

static CURL *easy_new(const char *url, const char *post, long timeout_ms, Http *h) {
    memset(h, 0, sizeof *h);
    bytebuf_put(&h->body, "", 0);
    bytebuf_put(&h->headers, "", 0);
    CURL *c = curl_easy_init();
    CHECK(c, "curl_easy_init");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &h->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &h->headers);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (timeout_ms > 0) curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    if (post) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
        static struct curl_slist *hdr = NULL;
        if (!hdr) {
            hdr = curl_slist_append(NULL, "Content-Type: application/json");
            hdr = curl_slist_append(hdr, "Expect:");
        }
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    }
    return c;
}

static void http_do(const char *url, const char *post, long timeout_ms, Http *h) {
    CURL *c = easy_new(url, post, timeout_ms, h);
    double t0 = util_now();
    h->rc = curl_easy_perform(c);
    h->secs = util_now() - t0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &h->status);
    curl_easy_cleanup(c);
}

static void http_free(Http *h) {
    bytebuf_free(&h->body);
    bytebuf_free(&h->headers);
}

static char *url_of(const Server *s, const char *path) { return xasprintf("%s%s", serve_base_url(s), path); }

/* POSTs n bodies with at most conc connections at once (curl multi, keep-
 * alive); fills status[i] (0 on a transport error); returns the seconds. */
static double multi_post(const char *url, char **bodies, int n, int conc, long *status) {
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)conc);
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)conc);
    Http *hs = xcalloc((size_t)conc, sizeof *hs);
    CURL **cs = xcalloc((size_t)conc, sizeof *cs);
    int *which = xcalloc((size_t)conc, sizeof *which);
    int next = 0, running = 0, done = 0;
    double t0 = util_now();
    for (int k = 0; k < conc && next < n; k++, next++) {
        cs[k] = easy_new(url, bodies[next], 30000, &hs[k]);
        curl_easy_setopt(cs[k], CURLOPT_PRIVATE, (void *)(intptr_t)k);
        which[k] = next;
        curl_multi_add_handle(m, cs[k]);
    }
    while (done < n) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            char *pv = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &pv);
            intptr_t k = (intptr_t)pv;
            long st = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &st);
            status[which[k]] = msg->data.result == CURLE_OK ? st : 0;
            done++;
            curl_multi_remove_handle(m, cs[k]);
            if (next < n) {
                hs[k].body.n = 0;
                curl_easy_setopt(cs[k], CURLOPT_POSTFIELDS, bodies[next]);
                which[k] = next++;
                curl_multi_add_handle(m, cs[k]);
            }
        }
        if (done < n) curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    double secs = util_now() - t0;
    for (int k = 0; k < conc; k++) {
        if (cs[k]) curl_easy_cleanup(cs[k]);
        http_free(&hs[k]);
    }
    free(hs);
    free(cs);
    free(which);
    curl_multi_cleanup(m);
    return secs;
}

/* ---- requests -------------------------------------------------------------------- */

typedef struct {
    char *body;
    char key[65];
} Body;

static void body_make(Body *b, const char *user, int logprobs, int top, int max_tokens) {
    ChatRequest q;
    chat_request_init(&q, "gpt-test");
    chat_request_add_message(&q, "system", "You are a witty writer.");
    chat_request_add_message(&q, "user", user);
    q.temperature = 0.8;
    q.top_p = 1;
    q.logprobs = logprobs;
    q.top_logprobs = top;
    q.max_tokens = max_tokens;
    b->body = chat_request_body(&q);
    chat_request_key(&q, b->key);
    chat_request_free(&q);
}

static void teacher_body(Body *b, const char *literal, int n) {
    char *msg = chat_fill_template(TEACHER_TMPL, literal, n, NULL, NULL);
    body_make(b, msg, 0, 0, 0);
    free(msg);
}

static void critic_body(Body *b, const char *literal, const char *a, const char *x, int logprobs, int top) {
    char *msg = chat_fill_template(CRITIC_TMPL, literal, 0, a, x);
    body_make(b, msg, logprobs, top, 0);
    free(msg);
}

/* Sends body and parses the response; returns 0 or -1. */
static int chat(const Server *s, const char *body, ChatResponse *out, long *status) {
    char *url = url_of(s, "/chat/completions");
    Http h;
    http_do(url, body, 10000, &h);
    free(url);
    *status = h.status;
    Err e;
    int rc = (h.rc == CURLE_OK && h.status == 200) ? chat_response_parse(h.body.a, h.body.n, out, &e) : -1;
    http_free(&h);
    return rc;
}

/* A numbered/bulleted list -> items (malloc'd); returns the count. */
static int parse_list(const char *text, char **items, int max) {
    int n = 0;
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        const char *p = line, *end = line + len;
        while (p < end && *p == ' ') p++;
        const char *item = NULL;
        if (p < end && *p >= '0' && *p <= '9') {
            while (p < end && *p >= '0' && *p <= '9') p++;
            if (p < end && (*p == '.' || *p == ')')) item = p + 1;
        } else if (p + 1 < end && *p == '-' && p[1] == ' ') {
            item = p + 1;
        }
        if (item) {
            while (item < end && *item == ' ') item++;
            if (item < end && n < max) items[n++] = xstrndup(item, (size_t)(end - item));
        }
        line = nl ? nl + 1 : NULL;
    }
    return n;
}

static void free_items(char **items, int n) {
    for (int i = 0; i < n; i++) free(items[i]);
}

/* Literals of 5..20 words, spread over the WordNet list. */
static const char *literal_at(int i) {
    int n = standin_world_n_literals(W);
    for (int k = 0;; k++) {
        const char *l = standin_world_literal(W, (int)((uint64_t)(i * 7919 + k) * 104729 % (uint64_t)n));
        int w = standin_count_words(l);
        if (w >= 5 && w <= 20) return l;
    }
}

static Server *start(ServeOptions *o) {
    o->world = W;
    o->quiet = 1;
    if (o->threads == 0) o->threads = 2;
    Err e;
    Server *s = serve_start(o, &e);
    if (!s) fprintf(stderr, "serve_start: %s\n", e.msg);
    CHECK(s, "serve_start failed");
    return s;
}

static double p1_of(const ChatResponse *r) {
    if (r->n_tokens == 0) return NAN;
    const ChatTokenLogprob *t = &r->tokens[r->n_tokens - 1];
    for (int k = 0; k < t->n_top; k++)
        if (strcmp(t->top[k].token, "1") == 0) return exp(t->top[k].logprob);
    return NAN;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_world(void) {
    Err e;
    StandinWorld *bad = standin_world_create("/nonexistent/fortunes", NULL, &e);
    EXPECT(!bad && strstr(e.msg, "fortunes"), "missing fortunes: %s", e.msg);
    bad = standin_world_create(NULL, "/nonexistent/wordnet", &e);
    EXPECT(!bad && strstr(e.msg, "wordnet-base"), "missing WordNet: %s", e.msg);

    const char *lit = "the committee approved the new budget after a long debate";
    StandinHumorParts p;
    standin_humor_parts(W, lit, lit, &p);
    EXPECT(fabs(p.h - 0.55) < 1e-9 && p.keep == 1 && p.joke == 0, "h(literal, literal) = %g", p.h);
    EXPECT(standin_humor(W, lit, "") == 0, "empty paraphrase scores 0");
    char *funny = xasprintf("As my programmer likes to say, %s -- and the hacker never saw it coming.", lit);
    double hf = standin_humor(W, lit, funny);
    EXPECT(hf > 0.8, "joke words + kept meaning score high: %g", hf);
    EXPECT(standin_humor(W, lit, "the hacker and the programmer drank beer") < 0.5, "meaning lost scores low");
    EXPECT(standin_humor(W, lit, "the committee committee committee approved approved the budget budget") < 0.4,
           "repetition is penalised");
    free(funny);
    EXPECT(standin_lexicon_weight(W, "the") == 0 && standin_lexicon_weight(W, "programmer") >= 0.5,
           "lexicon holds joke words, not stop words");

    StandinPrompt pr;
    char *t = chat_fill_template(TEACHER_TMPL, lit, 4, NULL, NULL);
    EXPECT(standin_prompt_parse(t, &pr) == STANDIN_ROLE_TEACHER && pr.n == 4 && strcmp(pr.literal, lit) == 0,
           "teacher prompt parsed (n=%d)", pr.n);
    standin_prompt_free(&pr);
    free(t);
    t = chat_fill_template(CRITIC_TMPL, lit, 0, "A one", "B two");
    EXPECT(standin_prompt_parse(t, &pr) == STANDIN_ROLE_CRITIC && strcmp(pr.option_a, "A one") == 0 &&
               strcmp(pr.option_b, "B two") == 0,
           "critic prompt parsed");
    standin_prompt_free(&pr);
    free(t);
    EXPECT(standin_prompt_parse("hello there", &pr) == STANDIN_ROLE_UNKNOWN, "unknown prompt");
    standin_prompt_free(&pr);
}

static void test_protocol(const Server *s) {
    Http h;
    char *u = url_of(s, "/models");
    http_do(u, NULL, 5000, &h);
    free(u);
    cJSON *o = cJSON_Parse(h.body.a);
    cJSON *d0 = o ? cJSON_GetArrayItem(cJSON_GetObjectItem(o, "data"), 0) : NULL;
    cJSON *id = d0 ? cJSON_GetObjectItem(d0, "id") : NULL;
    EXPECT(h.status == 200 && cJSON_IsString(id) && strcmp(id->valuestring, SERVE_MODEL_ID) == 0, "GET /v1/models: %ld %s",
           h.status, h.body.a);
    cJSON_Delete(o);
    http_free(&h);

    u = url_of(s, "/nothing/here");
    http_do(u, NULL, 5000, &h);
    free(u);
    EXPECT(h.status == 404 && strstr(h.body.a, "\"error\""), "unknown path: %ld", h.status);
    http_free(&h);

    u = url_of(s, "/chat/completions");
    http_do(u, "{\"model\": \"x\", \"messages\": [", 5000, &h);
    o = cJSON_Parse(h.body.a);
    cJSON *msg = o ? cJSON_GetObjectItem(cJSON_GetObjectItem(o, "error"), "message") : NULL;
    EXPECT(h.status == 400 && cJSON_IsString(msg), "bad JSON: %ld %s", h.status, h.body.a);
    cJSON_Delete(o);
    http_free(&h);
    http_do(u, NULL, 5000, &h);
    EXPECT(h.status == 405, "GET on chat/completions: %ld", h.status);
    http_free(&h);

    /* a full response in OpenAI's format */
    Body b;
    teacher_body(&b, literal_at(0), 3);
    http_do(u, b.body, 5000, &h);
    o = cJSON_Parse(h.body.a);
    cJSON *c0 = o ? cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0) : NULL;
    cJSON *usage = o ? cJSON_GetObjectItem(o, "usage") : NULL;
    EXPECT(o && strcmp(cJSON_GetObjectItem(o, "object")->valuestring, "chat.completion") == 0 &&
               cJSON_IsString(cJSON_GetObjectItem(o, "id")) && cJSON_IsNumber(cJSON_GetObjectItem(o, "created")) &&
               strcmp(cJSON_GetObjectItem(o, "model")->valuestring, "gpt-test") == 0,
           "response envelope: %s", h.body.a);
    EXPECT(c0 && strcmp(cJSON_GetObjectItem(c0, "finish_reason")->valuestring, "stop") == 0 &&
               cJSON_IsNull(cJSON_GetObjectItem(c0, "logprobs")) &&
               strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "message"), "role")->valuestring, "assistant") == 0,
           "choice: finish_reason stop, logprobs null when not asked");
    EXPECT(usage && cJSON_GetObjectItem(usage, "prompt_tokens")->valueint > 20 &&
               cJSON_GetObjectItem(usage, "completion_tokens")->valueint > 10 &&
               cJSON_GetObjectItem(usage, "total_tokens")->valueint ==
                   cJSON_GetObjectItem(usage, "prompt_tokens")->valueint +
                       cJSON_GetObjectItem(usage, "completion_tokens")->valueint,
           "usage counts");
    cJSON_Delete(o);
    http_free(&h);
    free(b.body);

    /* max_tokens cuts the answer and says so */
    char *msg2 = chat_fill_template(TEACHER_TMPL, literal_at(1), 3, NULL, NULL);
    body_make(&b, msg2, 0, 0, 5);
    free(msg2);
    ChatResponse r;
    long st;
    EXPECT(chat(s, b.body, &r, &st) == 0 && strcmp(r.finish_reason, "length") == 0 && r.completion_tokens == 5,
           "max_tokens=5: finish_reason length, 5 tokens");
    chat_response_free(&r);
    free(b.body);
    free(u);
}

static void test_teacher(const Server *s, const Server *s_seed2) {
    const int N = 200;
    int ok_count = 0, styles[4] = {0};
    double sum_best = 0, sum_worst = 0, sum_lit = 0;
    int n_scored = 0, same = 0, differ = 0;
    for (int i = 0; i < N; i++) {
        const char *lit = literal_at(i);
        Body b;
        teacher_body(&b, lit, 3);
        ChatResponse r;
        long st;
        if (chat(s, b.body, &r, &st) != 0) {
            free(b.body);
            continue;
        }
        char *items[16];
        int n = parse_list(r.content, items, 16);
        ok_count += n == 3;
        if (strstr(r.content, "1. ")) styles[0] = 1;
        if (strstr(r.content, "1) ")) styles[1] = 1;
        if (strncmp(r.content, "- ", 2) == 0) styles[2] = 1;
        if (strstr(r.content, "Here are")) styles[3] = 1;
        if (n == 3) {
            double best = -1, worst = 2;
            for (int k = 0; k < 3; k++) {
                double h = standin_humor(W, lit, items[k]);
                if (h > best) best = h;
                if (h < worst) worst = h;
            }
            sum_best += best;
            sum_worst += worst;
            sum_lit += standin_humor(W, lit, lit);
            n_scored++;
        }
        free_items(items, n);
        if (i < 20) { /* determinism: same request, same content; other seed, other content */
            ChatResponse r2, r3;
            if (chat(s, b.body, &r2, &st) == 0) {
                same += strcmp(r.content, r2.content) == 0;
                chat_response_free(&r2);
            }
            if (chat(s_seed2, b.body, &r3, &st) == 0) {
                differ += strcmp(r.content, r3.content) != 0;
                chat_response_free(&r3);
            }
        }
        chat_response_free(&r);
        free(b.body);
    }
    EXPECT(ok_count == N, "teacher answers parse into 3 items: %d of %d", ok_count, N);
    double mb = sum_best / n_scored, mw = sum_worst / n_scored, ml = sum_lit / n_scored;
    printf("teacher: mean h best %.3f worst %.3f literal %.3f over %d inputs\n", mb, mw, ml, n_scored);
    EXPECT(mb - mw > 0.3, "quality spread under h: best %.3f worst %.3f", mb, mw);
    EXPECT(mb > ml + 0.15 && mw < ml, "best beats the literal, worst falls below it");
    EXPECT(styles[0] && styles[1] && styles[2] && styles[3], "list formats vary: 1. %d 1) %d - %d intro %d", styles[0],
           styles[1], styles[2], styles[3]);
    EXPECT(same == 20, "same request -> same content (%d of 20)", same);
    EXPECT(differ >= 18, "other seed -> other content (%d of 20)", differ);

    int counts[2] = {0, 0}, asks[2] = {5, 20}, want[2] = {5, STANDIN_MAX_N};
    for (int k = 0; k < 2; k++) {
        Body b;
        teacher_body(&b, literal_at(300 + k), asks[k]);
        ChatResponse r;
        long st;
        if (chat(s, b.body, &r, &st) == 0) {
            char *items[32];
            counts[k] = parse_list(r.content, items, 32);
            free_items(items, counts[k]);
            chat_response_free(&r);
        }
        free(b.body);
        EXPECT(counts[k] == want[k], "n=%d -> %d items (want %d)", asks[k], counts[k], want[k]);
    }
}

static void test_refusals(void) {
    ServeOptions o;
    serve_options_init(&o);
    o.seed = 3;
    o.refusal_rate = 0.2;
    Server *s = start(&o);
    int refused = 0, n = 400, mentions = 0;
    for (int i = 0; i < n; i++) {
        Body b;
        teacher_body(&b, literal_at(i), 3);
        ChatResponse r;
        long st;
        if (chat(s, b.body, &r, &st) == 0) {
            refused += strcmp(r.content, STANDIN_REFUSAL) == 0;
            mentions += strstr(r.content, "I'm sorry") != NULL;
            chat_response_free(&r);
        }
        free(b.body);
    }
    ServeStats st;
    serve_stats(s, &st);
    EXPECT(refused > 0.14 * n && refused < 0.26 * n, "refusals %d of %d at rate 0.2", refused, n);
    EXPECT(mentions == refused, "refusals are exactly \"%s\" (%d mention \"I'm sorry\")", STANDIN_REFUSAL, mentions);
    EXPECT(st.refusals == refused, "refusal counter %lld", (long long)st.refusals);
    serve_stop(s);
}

/* Teacher items for literal i (best and worst under h). */
static int teacher_pair(const Server *s, int i, char **best, char **worst, double *dh) {
    const char *lit = literal_at(i);
    Body b;
    teacher_body(&b, lit, 3);
    ChatResponse r;
    long st;
    int ok = chat(s, b.body, &r, &st) == 0;
    free(b.body);
    if (!ok) return 0;
    char *items[8];
    int n = parse_list(r.content, items, 8);
    chat_response_free(&r);
    if (n < 2) {
        free_items(items, n);
        return 0;
    }
    int bi = 0, wi = 0;
    for (int k = 1; k < n; k++) {
        if (standin_humor(W, lit, items[k]) > standin_humor(W, lit, items[bi])) bi = k;
        if (standin_humor(W, lit, items[k]) < standin_humor(W, lit, items[wi])) wi = k;
    }
    *best = xstrdup(items[bi]);
    *worst = xstrdup(items[wi]);
    *dh = standin_humor(W, lit, items[bi]) - standin_humor(W, lit, items[wi]);
    free_items(items, n);
    return 1;
}

static double critic_p1(const Server *s, const char *lit, const char *a, const char *b, int *answer) {
    Body q;
    critic_body(&q, lit, a, b, 1, 2);
    ChatResponse r;
    long st;
    double p = NAN;
    if (chat(s, q.body, &r, &st) == 0) {
        p = p1_of(&r);
        const char *ans = strstr(r.content, "Answer: ");
        if (answer) *answer = ans ? ans[8] - '0' : 0;
        EXPECT(strncmp(r.content, "Reason: ", 8) == 0 && ans, "critic format: %s", r.content);
        chat_response_free(&r);
    }
    free(q.body);
    return p;
}

static void test_critic(const Server *s) {
    ServeOptions o;
    serve_options_init(&o);
    o.position_bias = 1.0;
    Server *sb = start(&o);
    serve_options_init(&o);
    o.length_bias = 2.0;
    Server *sl = start(&o);

    int clear = 0, agree = 0, agree_avg_b = 0, pairs = 0, exact = 1, len_ok = 1, ans_ok = 1, n_shift = 0;
    double sum_shift_b = 0;
    StandinCriticParams cp;
    standin_critic_params_init(&cp);
    for (int i = 0; i < 120; i++) {
        char *best, *worst;
        double dh;
        if (!teacher_pair(s, i, &best, &worst, &dh)) continue;
        const char *lit = literal_at(i);
        /* alternate which position the better one takes */
        const char *a = i % 2 ? best : worst, *b = i % 2 ? worst : best;
        int ans = 0;
        double p = critic_p1(s, lit, a, b, &ans);
        double want = standin_sigmoid(standin_critic_logit(W, &cp, lit, a, b));
        exact &= fabs(p - want) < 1e-9;
        ans_ok &= ans == (p >= 0.5 ? 1 : 2);
        double ha = standin_humor(W, lit, a), hb = standin_humor(W, lit, b);
        if (fabs(ha - hb) >= 0.2) {
            clear++;
            agree += (p > 0.5) == (ha > hb);
        }
        /* position bias 1: single order leans to 1; both orders average it away */
        double pab = critic_p1(sb, lit, a, b, NULL), pba = critic_p1(sb, lit, b, a, NULL);
        double avg = 0.5 * (pab + (1 - pba));
        if (fabs(pab - 0.5) < 0.49999 && fabs(pba - 0.5) < 0.49999) {
            sum_shift_b += 0.5 * (log(pab / (1 - pab)) + log(pba / (1 - pba)));
            n_shift++;
        }
        if (fabs(ha - hb) >= 0.2) agree_avg_b += (avg > 0.5) == (ha > hb);
        /* length bias 2: the logit moves by 2 (words(a) - words(b)) / words(literal) */
        double pl = critic_p1(sl, lit, a, b, NULL);
        double shift = log(pl / (1 - pl)) - log(p / (1 - p));
        double want_shift =
            2.0 * (standin_count_words(a) - standin_count_words(b)) / (double)standin_count_words(lit);
        if (isfinite(shift) && fabs(p - 0.5) < 0.49999) len_ok &= fabs(shift - want_shift) < 1e-6;
        pairs++;
        free(best);
        free(worst);
    }
    printf("critic: %d pairs, %d clear; agreement %d; both-order agreement under position bias %d\n", pairs, clear,
           agree, agree_avg_b);
    EXPECT(pairs >= 100 && clear >= 50, "enough critic pairs: %d (%d clear)", pairs, clear);
    EXPECT(agree >= 0.9 * clear, "critic prefers the higher-h option in clear cases: %d of %d", agree, clear);
    EXPECT(exact, "served p(1) = sigmoid((h(a)-h(b))/tau)");
    EXPECT(ans_ok, "written answer is the likelier one");
    EXPECT(n_shift > 20 && fabs(sum_shift_b / n_shift - 1.0) < 1e-6,
           "position bias 1 adds 1 to the logit of the first option in either order: %.6f over %d",
           n_shift ? sum_shift_b / n_shift : 0, n_shift);
    EXPECT(agree_avg_b >= 0.9 * clear, "both-order average cancels position bias: %d of %d", agree_avg_b, clear);
    EXPECT(len_ok, "length bias shifts the logit by L*(wa-wb)/wl");

    /* identical options: p1 = sigmoid(position bias), averaged 0.5 */
    const char *lit = literal_at(7);
    double p_same = critic_p1(sb, lit, lit, lit, NULL);
    EXPECT(fabs(p_same - standin_sigmoid(1.0)) < 1e-9, "identical options under bias 1: %g", p_same);
    EXPECT(fabs(critic_p1(s, lit, lit, lit, NULL) - 0.5) < 1e-12, "identical options unbiased: 0.5");

    /* log-probs iff requested, top_logprobs bounded by the request */
    char *best, *worst;
    double dh;
    CHECK(teacher_pair(s, 3, &best, &worst, &dh), "teacher pair");
    for (int mode = 0; mode < 3; mode++) {
        Body q;
        critic_body(&q, literal_at(3), best, worst, mode > 0, mode);
        ChatResponse r;
        long st;
        if (chat(s, q.body, &r, &st) == 0) {
            if (mode == 0) {
                EXPECT(r.n_tokens == 0 && r.tokens == NULL, "no logprobs unless asked");
            } else {
                const ChatTokenLogprob *t = r.n_tokens ? &r.tokens[r.n_tokens - 1] : NULL;
                EXPECT(t && (strcmp(t->token, "1") == 0 || strcmp(t->token, "2") == 0) && t->n_top == mode,
                       "answer token with %d top_logprobs (got %d)", mode, t ? t->n_top : -1);
                if (t && mode == 2)
                    EXPECT(t->top[0].logprob >= t->top[1].logprob &&
                               fabs(exp(t->top[0].logprob) + exp(t->top[1].logprob) - 1) < 1e-9,
                           "top_logprobs ordered and normalised");
                ByteBuf joined = {0};
                for (int k = 0; k < r.n_tokens; k++) bytebuf_put(&joined, r.tokens[k].token, strlen(r.tokens[k].token));
                EXPECT(joined.a && strcmp(joined.a, r.content) == 0, "tokens concatenate to the content");
                bytebuf_free(&joined);
            }
            chat_response_free(&r);
        }
        free(q.body);
    }
    free(best);
    free(worst);
    serve_stop(sb);
    serve_stop(sl);
}

static void test_faults(void) {
    const char *lit = literal_at(11);
    Body b;
    teacher_body(&b, lit, 3);
    for (int f = 1; f < SERVE_FAULT_KINDS; f++) {
        ServeOptions o;
        serve_options_init(&o);
        o.fault_rate[f] = 1.0;
        o.retry_after_s = 7;
        Server *s = start(&o);
        char *u = url_of(s, "/chat/completions");
        Http h;
        http_do(u, b.body, f == SERVE_FAULT_HANG ? 400 : 5000, &h);
        ChatResponse r;
        Err e;
        switch (f) {
        case SERVE_FAULT_429:
            EXPECT(h.status == 429 && strstr(h.headers.a, "Retry-After: 7\r\n") && strstr(h.body.a, "\"error\""),
                   "429 with Retry-After: %ld %s", h.status, h.headers.a);
            break;
        case SERVE_FAULT_500:
        case SERVE_FAULT_503:
            EXPECT(h.status == (f == SERVE_FAULT_500 ? 500 : 503) && strstr(h.body.a, "\"error\""), "%s: %ld",
                   serve_fault_name(f), h.status);
            break;
        case SERVE_FAULT_HANG: {
            EXPECT(h.rc == CURLE_OPERATION_TIMEDOUT, "hang: no answer within the timeout (curl %d)", (int)h.rc);
            ServeStats st;
            double t0 = util_now();
            do {
                usleep(20000);
                serve_stats(s, &st);
            } while (st.hung && util_now() - t0 < 3);
            EXPECT(st.hung == 0 && st.ended == 1, "hung connection released when the client gave up (%.2f s)",
                   util_now() - t0);
            break;
        }
        case SERVE_FAULT_MALFORMED: {
            cJSON *o2 = cJSON_ParseWithLength(h.body.a, h.body.n);
            EXPECT(h.rc == CURLE_OK && h.status == 200 && !o2 && h.body.n > 10, "malformed: 200 with non-JSON body");
            cJSON_Delete(o2);
            break;
        }
        case SERVE_FAULT_TRUNCATED:
            EXPECT(h.rc == CURLE_PARTIAL_FILE && h.status == 200 && h.body.n > 0, "truncated: curl %d after %zu bytes",
                   (int)h.rc, h.body.n);
            break;
        case SERVE_FAULT_EMPTY:
            EXPECT(h.status == 200 && chat_response_parse(h.body.a, h.body.n, &r, &e) == 0 && r.content[0] == 0,
                   "empty: 200 with empty content");
            chat_response_free(&r);
            break;
        case SERVE_FAULT_SCHEMA: {
            cJSON *o2 = cJSON_ParseWithLength(h.body.a, h.body.n);
            EXPECT(h.status == 200 && o2 && !cJSON_GetObjectItem(o2, "choices") &&
                       chat_response_parse(h.body.a, h.body.n, &r, &e) != 0,
                   "schema: valid JSON without choices");
            cJSON_Delete(o2);
            break;
        }
        }
        http_free(&h);
        ServeStats st;
        serve_stats(s, &st);
        EXPECT(st.by_fault[f] == 1, "fault counter for %s", serve_fault_name(f));
        free(u);
        serve_stop(s);
    }

    /* hung connections are capped: the oldest is closed when one more arrives */
    {
        ServeOptions o;
        serve_options_init(&o);
        o.fault_rate[SERVE_FAULT_HANG] = 1.0;
        o.max_hung = 2;
        Server *s = start(&o);
        char *u = url_of(s, "/chat/completions");
        CURLM *m = curl_multi_init();
        Http hs[3];
        CURL *cs[3];
        Body bs[3];
        ServeStats st;
        int running = 1;
        for (int i = 0; i < 3; i++) {
            teacher_body(&bs[i], literal_at(90 + i), 3);
            cs[i] = easy_new(u, bs[i].body, 20000, &hs[i]);
            curl_multi_add_handle(m, cs[i]);
            double t0 = util_now();
            do { /* one at a time, so "oldest" is well defined */
                curl_multi_perform(m, &running);
                curl_multi_poll(m, NULL, 0, 10, NULL);
                serve_stats(s, &st);
            } while (st.requests < i + 1 && util_now() - t0 < 3);
        }
        double t0 = util_now();
        int msgs = 0;
        CURLMsg *msg;
        CURL *closed = NULL;
        do {
            curl_multi_perform(m, &running);
            while ((msg = curl_multi_info_read(m, &msgs)))
                if (msg->msg == CURLMSG_DONE) closed = msg->easy_handle;
            if (!closed) curl_multi_poll(m, NULL, 0, 10, NULL);
        } while (!closed && util_now() - t0 < 3);
        serve_stats(s, &st);
        EXPECT(closed == cs[0] && st.hung == 2, "max_hung 2: oldest closed (%s), %lld still held",
               closed == cs[0] ? "yes" : "no", (long long)st.hung);
        serve_stop(s);
        for (int i = 0; i < 3; i++) {
            curl_multi_remove_handle(m, cs[i]);
            curl_easy_cleanup(cs[i]);
            http_free(&hs[i]);
            free(bs[i].body);
        }
        curl_multi_cleanup(m);
        free(u);
    }

    /* mixed faults: a retried request draws afresh; the same seed replays */
    long seq[2][40];
    for (int run = 0; run < 2; run++) {
        ServeOptions o;
        serve_options_init(&o);
        o.seed = 5;
        o.fault_rate[SERVE_FAULT_429] = 0.3;
        o.fault_rate[SERVE_FAULT_503] = 0.2;
        Server *s = start(&o);
        char *u = url_of(s, "/chat/completions");
        for (int i = 0; i < 40; i++) {
            Http h;
            http_do(u, b.body, 5000, &h);
            seq[run][i] = h.status;
            http_free(&h);
        }
        free(u);
        serve_stop(s);
    }
    int n200 = 0, n429 = 0, n503 = 0, same = 1;
    for (int i = 0; i < 40; i++) {
        n200 += seq[0][i] == 200;
        n429 += seq[0][i] == 429;
        n503 += seq[0][i] == 503;
        same &= seq[0][i] == seq[1][i];
    }
    EXPECT(n200 > 8 && n429 > 4 && n503 > 2 && n200 + n429 + n503 == 40, "retries draw afresh: %d/%d/%d", n200, n429, n503);
    EXPECT(same, "same seed -> same fault sequence");
    free(b.body);
}

static void test_latency(void) {
    ServeOptions o;
    serve_options_init(&o);
    o.latency_ms = 200;
    Server *s = start(&o);
    char *u = url_of(s, "/chat/completions");
    Body b;
    teacher_body(&b, literal_at(20), 3);
    Http h;
    http_do(u, b.body, 5000, &h);
    EXPECT(h.status == 200 && h.secs >= 0.2 && h.secs < 0.5, "one request at 200 ms took %.3f s", h.secs);
    http_free(&h);
    char *bodies[32];
    long status[32];
    for (int i = 0; i < 32; i++) {
        Body bi;
        teacher_body(&bi, literal_at(40 + i), 3);
        bodies[i] = bi.body;
    }
    double secs = multi_post(u, bodies, 32, 32, status);
    int ok = 0;
    for (int i = 0; i < 32; i++) {
        ok += status[i] == 200;
        free(bodies[i]);
    }
    printf("latency: 32 parallel requests at 200 ms in %.3f s\n", secs);
    EXPECT(ok == 32 && secs >= 0.2 && secs < 1.0, "32 parallel at 200 ms: %d ok in %.3f s", ok, secs);
    free(u);
    free(b.body);
    serve_stop(s);

    /* jitter: delays in [X, X+J), as logged and as measured */
    char *log = xasprintf("%s/jitter.jsonl", TMP);
    serve_options_init(&o);
    o.latency_ms = 30;
    o.latency_jitter_ms = 60;
    o.request_log = log;
    s = start(&o);
    u = url_of(s, "/chat/completions");
    double measured[12];
    for (int i = 0; i < 12; i++) {
        Body bi;
        teacher_body(&bi, literal_at(80 + i), 3);
        http_do(u, bi.body, 5000, &h);
        measured[i] = h.secs;
        http_free(&h);
        free(bi.body);
    }
    free(u);
    serve_stop(s);
    char *txt = util_read_file(log, NULL, NULL);
    int lines = 0, in_band = 0, spread = 0;
    double lo = 1e9, hi = 0;
    for (char *line = txt; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        cJSON *j = cJSON_Parse(line);
        double l = j ? cJSON_GetObjectItem(j, "latency_ms")->valuedouble : -1;
        in_band += l >= 30 && l < 90 && lines < 12 && measured[lines] * 1000 >= l - 1;
        if (l < lo) lo = l;
        if (l > hi) hi = l;
        cJSON_Delete(j);
        lines++;
        line = nl ? nl + 1 : NULL;
    }
    spread = hi - lo > 10;
    EXPECT(lines == 12 && in_band == 12 && spread, "jitter: %d lines, %d in [30, 90) ms and honoured, spread %.1f ms",
           lines, in_band, hi - lo);
    free(txt);
    free(log);
}

static void test_request_log(void) {
    char *log = xasprintf("%s/requests.jsonl", TMP);
    ServeOptions o;
    serve_options_init(&o);
    o.request_log = log;
    o.fault_rate[SERVE_FAULT_500] = 0.5;
    Server *s = start(&o);
    char *u = url_of(s, "/chat/completions");
    Body bs[4];
    teacher_body(&bs[0], literal_at(50), 3);
    teacher_body(&bs[1], literal_at(51), 3);
    critic_body(&bs[2], literal_at(52), "one", "two", 1, 2);
    bs[3] = bs[0];
    long status[6];
    const char *roles[6] = {"teacher", "teacher", "critic", "teacher", "unknown", "unknown"};
    for (int i = 0; i < 4; i++) {
        Http h;
        http_do(u, bs[i].body, 5000, &h);
        status[i] = h.status;
        http_free(&h);
    }
    Http h;
    http_do(u, "not json", 5000, &h);
    status[4] = h.status;
    http_free(&h);
    char *mu = url_of(s, "/models");
    http_do(mu, NULL, 5000, &h);
    status[5] = h.status;
    http_free(&h);
    free(mu);
    serve_stop(s);
    /* lines come in the order requests ended: match them by key, path and repeat */
    const char *keys[6] = {bs[0].key, bs[1].key, bs[2].key, bs[3].key, NULL, NULL};
    const char *paths[6] = {"/v1/chat/completions", "/v1/chat/completions", "/v1/chat/completions",
                            "/v1/chat/completions", "/v1/chat/completions", "/v1/models"};
    int used[6] = {0};
    char *txt = util_read_file(log, NULL, NULL);
    int lines = 0, good = 0;
    for (char *line = txt; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        cJSON *j = cJSON_Parse(line);
        cJSON *key = j ? cJSON_GetObjectItem(j, "key") : NULL, *st = j ? cJSON_GetObjectItem(j, "status") : NULL;
        cJSON *role = j ? cJSON_GetObjectItem(j, "role") : NULL, *rep = j ? cJSON_GetObjectItem(j, "repeat") : NULL;
        cJSON *fault = j ? cJSON_GetObjectItem(j, "fault") : NULL, *path = j ? cJSON_GetObjectItem(j, "path") : NULL;
        int i = 0;
        for (; j && i < 6; i++) {
            int key_ok = keys[i] ? cJSON_IsString(key) && strcmp(key->valuestring, keys[i]) == 0 : cJSON_IsNull(key);
            if (!used[i] && key_ok && cJSON_IsString(path) && strcmp(path->valuestring, paths[i]) == 0 &&
                cJSON_IsNumber(rep) && rep->valueint == (i == 3))
                break;
        }
        int ok = j && i < 6 && cJSON_IsNumber(st) && st->valueint == status[i] && cJSON_IsString(role) &&
                 strcmp(role->valuestring, roles[i]) == 0 && cJSON_IsString(fault) &&
                 (strcmp(fault->valuestring, "500") == 0) == (status[i] == 500) &&
                 cJSON_IsTrue(cJSON_GetObjectItem(j, "completed")) && cJSON_IsNumber(cJSON_GetObjectItem(j, "time")) &&
                 cJSON_IsNumber(cJSON_GetObjectItem(j, "latency_ms"));
        if (ok) used[i] = 1;
        else fprintf(stderr, "log line %d: %s\n", lines, line);
        good += ok;
        cJSON_Delete(j);
        lines++;
        line = nl ? nl + 1 : NULL;
    }
    EXPECT(lines == 6 && good == 6, "request log: %d lines, %d right", lines, good);
    free(txt);
    free(log);
    free(u);
    for (int i = 0; i < 3; i++) free(bs[i].body);
}

static void test_stop_with_pending(void) {
    char *log = xasprintf("%s/stop.jsonl", TMP);
    ServeOptions o;
    serve_options_init(&o);
    o.request_log = log;
    o.fault_rate[SERVE_FAULT_HANG] = 0.5;
    o.latency_ms = 5000;
    Server *s = start(&o);
    char *u = url_of(s, "/chat/completions");
    CURLM *m = curl_multi_init();
    Http hs[8];
    CURL *cs[8];
    Body bs[8];
    for (int i = 0; i < 8; i++) {
        teacher_body(&bs[i], literal_at(60 + i), 3);
        cs[i] = easy_new(u, bs[i].body, 20000, &hs[i]);
        curl_multi_add_handle(m, cs[i]);
    }
    ServeStats st;
    double t0 = util_now();
    int running = 1;
    do {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 20, NULL);
        serve_stats(s, &st);
    } while (st.pending + st.hung < 8 && util_now() - t0 < 5);
    EXPECT(st.pending + st.hung == 8 && st.hung > 0 && st.pending > 0, "8 requests held: %lld delayed, %lld hung",
           (long long)st.pending, (long long)st.hung);
    t0 = util_now();
    serve_stop(s);
    double stop_secs = util_now() - t0;
    EXPECT(stop_secs < 1.0, "stop with pending and hung requests took %.3f s", stop_secs);
    do {
        curl_multi_perform(m, &running);
        if (running) curl_multi_poll(m, NULL, 0, 20, NULL);
    } while (running && util_now() - t0 < 5);
    int answered = 0;
    for (int i = 0; i < 8; i++) {
        long code = 0;
        curl_easy_getinfo(cs[i], CURLINFO_RESPONSE_CODE, &code);
        answered += code == 200;
        curl_multi_remove_handle(m, cs[i]);
        curl_easy_cleanup(cs[i]);
        http_free(&hs[i]);
        free(bs[i].body);
    }
    curl_multi_cleanup(m);
    char *txt = util_read_file(log, NULL, NULL);
    int lines = 0;
    for (char *p = txt; p && *p; p++) lines += *p == '\n';
    EXPECT(lines == 8, "every request logged at stop: %d lines", lines);
    EXPECT(answered == (int)(8 - st.hung), "delayed answers sent at stop: %d", answered);
    free(txt);
    free(log);
    free(u);
}

static void test_throughput(const Server *s) {
    const int n = 6000, conc = 64;
    char **bodies = xmalloc(n * sizeof *bodies);
    Body crit[64];
    for (int i = 0; i < 64; i++) {
        char *best, *worst;
        double dh;
        if (!teacher_pair(s, 200 + i, &best, &worst, &dh)) best = xstrdup("a"), worst = xstrdup("b");
        critic_body(&crit[i], literal_at(200 + i), best, worst, 1, 2);
        free(best);
        free(worst);
    }
    for (int i = 0; i < n; i++) bodies[i] = crit[i % 64].body;
    long *status = xcalloc(n, sizeof *status);
    char *u = url_of(s, "/chat/completions");
    double secs = multi_post(u, bodies, n, conc, status);
    int ok = 0;
    for (int i = 0; i < n; i++) ok += status[i] == 200;
    printf("throughput: %d critic requests, 64 connections, 0 ms latency: %.0f requests/s (%d ok)\n", n, n / secs, ok);
    EXPECT(ok == n && n / secs > 1000, "throughput %.0f req/s", n / secs);
    for (int i = 0; i < 64; i++) free(crit[i].body);
    free(bodies);
    free(status);
    free(u);
}

/* serve_main in a child: port file, ready line, request log, SIGTERM -> 0. */
static void test_serve_main(void) {
    char *pf = xasprintf("%s/port", TMP), *out = xasprintf("%s/stdout", TMP), *log = xasprintf("%s/main.jsonl", TMP);
    char *bad[] = {"serve", "--port", "80000", NULL};
    EXPECT(serve_main(3, bad) == EXIT_USAGE, "bad options -> usage error");
    char *nostandin[] = {"serve", NULL};
    EXPECT(serve_main(1, nostandin) == EXIT_USAGE, "--standin is required");
    char *badfault[] = {"serve", "--standin", "--fault", "teapot=0.1", NULL};
    EXPECT(serve_main(4, badfault) == EXIT_USAGE, "unknown fault kind");
    char *toomuch[] = {"serve", "--standin", "--fault", "429=0.7", "--fault=500=0.7", NULL};
    EXPECT(serve_main(5, toomuch) == EXIT_USAGE, "fault rates above 1 in sum");
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        if (!freopen(out, "w", stdout)) _exit(99);
        char *argv[] = {"serve", "--standin", "--port", "0", "--port-file", pf, "--request-log", log, "--seed", "9",
                        "--fault", "429=0", "--latency-ms=1", NULL};
        _exit(serve_main(13, argv));
    }
    char *port = NULL;
    double t0 = util_now();
    while (!port && util_now() - t0 < 10) {
        usleep(20000);
        port = util_read_file(pf, NULL, NULL);
    }
    EXPECT(port && atoi(port) > 0, "port file written");
    if (port) {
        char *u = xasprintf("http://127.0.0.1:%d/v1/models", atoi(port));
        Http h;
        http_do(u, NULL, 5000, &h);
        EXPECT(h.status == 200, "serve_main answers: %ld", h.status);
        http_free(&h);
        free(u);
    }
    kill(pid, SIGTERM);
    int wst = 0;
    waitpid(pid, &wst, 0);
    EXPECT(WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "SIGTERM -> clean exit 0 (status %d)", wst);
    char *txt = util_read_file(out, NULL, NULL);
    char want[128];
    snprintf(want, sizeof want, "hdistill serve: stand-in listening on http://127.0.0.1:%d/v1\n", port ? atoi(port) : -1);
    EXPECT(txt && strstr(txt, want), "ready line on stdout: %s", txt ? txt : "(none)");
    free(txt);
    txt = util_read_file(log, NULL, NULL);
    EXPECT(txt && strstr(txt, "\"path\":\"/v1/models\""), "request log written by serve_main");
    free(txt);
    free(port);
    free(pf);
    free(out);
    free(log);
}

/* ---- dialects and quirks --------------------------------------------------------------- */

static cJSON *jget(const cJSON *o, const char *path) { /* "a.b.0.c" */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *x = o;
    char *save = NULL;
    for (char *t = strtok_r(buf, ".", &save); t && x; t = strtok_r(NULL, ".", &save))
        x = (t[0] >= '0' && t[0] <= '9') ? cJSON_GetArrayItem(x, atoi(t)) : cJSON_GetObjectItemCaseSensitive(x, t);
    return (cJSON *)x;
}

static void test_dialects(void) {
    char *msg = chat_fill_template(CRITIC_TMPL, literal_at(3), 0, "As my programmer says, the cat sat", "The cat.");
    Body b;
    body_make(&b, msg, 1, 2, 0);
    for (int d = 0; d < DIALECT_N; d++) {
        if (d == DIALECT_OPENAI_REASONING) continue; /* rejects logprobs: below */
        ServeOptions o;
        serve_options_init(&o);
        o.dialect = d;
        Server *s = start(&o);
        char *u = url_of(s, "/chat/completions");
        Http h;
        http_do(u, b.body, 5000, &h);
        cJSON *j = cJSON_Parse(h.body.a);
        const cJSON *m = jget(j, "choices.0.message"), *lp = jget(j, "choices.0.logprobs.content");
        ChatResponse r;
        Err e;
        int parsed = chat_response_parse(h.body.a, h.body.n, &r, &e) == 0;
        EXPECT(h.status == 200 && m && parsed && strstr(r.content, "Answer: ") == r.content + strlen(r.content) - 9,
               "%s: a chat completion with the answer last: %.200s", dialect_name(d), h.body.a);
        /* the concatenated log-prob tokens spell the whole generation */
        if (cJSON_IsArray(lp)) {
            ByteBuf all = {0};
            const cJSON *t;
            cJSON_ArrayForEach(t, lp) bytebuf_put(&all, cJSON_GetObjectItem(t, "token")->valuestring,
                                                  strlen(cJSON_GetObjectItem(t, "token")->valuestring));
            bytebuf_putc(&all, 0);
            EXPECT(parsed && r.aligned && util_ends_with(all.a, r.content), "%s: tokens end with the answer",
                   dialect_name(d));
            bytebuf_free(&all);
        }
        switch (d) {
        case DIALECT_OPENAI:
        case DIALECT_AZURE:
            EXPECT(cJSON_IsNull(jget(m, "refusal")) && cJSON_IsArray(jget(m, "annotations")) &&
                       cJSON_IsNumber(jget(j, "usage.completion_tokens_details.reasoning_tokens")) &&
                       cJSON_IsArray(jget(lp, "0.bytes")) &&
                       (d != DIALECT_AZURE || (jget(j, "prompt_filter_results.0.content_filter_results") &&
                                               jget(j, "choices.0.content_filter_results"))),
                   "%s fields", dialect_name(d));
            break;
        case DIALECT_VLLM:
            EXPECT(!strncmp(cJSON_GetStringValue(jget(m, "content")), "<think>\n", 8) && cJSON_IsNull(jget(m, "reasoning_content")) &&
                       parsed && strstr(r.reasoning, "Answer: "),
                   "vllm: <think> in content");
            break;
        case DIALECT_VLLM_REASONING:
        case DIALECT_LLAMA_SERVER:
            EXPECT(cJSON_IsString(jget(m, "reasoning_content")) && !strstr(cJSON_GetStringValue(jget(m, "content")), "think") &&
                       (d != DIALECT_LLAMA_SERVER || (cJSON_IsNumber(jget(lp, "0.id")) && cJSON_IsArray(jget(lp, "0.bytes")) &&
                                                      jget(j, "timings"))),
                   "%s: reasoning_content", dialect_name(d));
            break;
        case DIALECT_OLLAMA:
            EXPECT(cJSON_IsNull(jget(j, "choices.0.logprobs")) && cJSON_IsString(jget(m, "reasoning")) &&
                       !strcmp(cJSON_GetStringValue(jget(j, "system_fingerprint")), "fp_ollama"),
                   "ollama: reasoning, no log-probs");
            break;
        }
        if (parsed) chat_response_free(&r);
        cJSON_Delete(j);
        http_free(&h);
        free(u);
        serve_stop(s);
    }
    free(b.body), free(msg);
    /* openai-reasoning: max_tokens, temperature and logprobs refused; max_completion_tokens and effort counted */
    ServeOptions o;
    serve_options_init(&o);
    o.dialect = DIALECT_OPENAI_REASONING;
    Server *s = start(&o);
    char *u = url_of(s, "/chat/completions");
    const char *bad[3][2] = {
        {"\"max_tokens\":50", "max_tokens"}, {"\"temperature\":0.8", "temperature"}, {"\"logprobs\":true", "logprobs"}};
    for (int k = 0; k < 3; k++) {
        char *body = xasprintf("{\"model\":\"o3\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],%s}", bad[k][0]);
        Http h;
        http_do(u, body, 5000, &h);
        cJSON *j = cJSON_Parse(h.body.a);
        EXPECT(h.status == 400 && !strcmp(cJSON_GetStringValue(jget(j, "error.param")), bad[k][1]),
               "openai-reasoning refuses %s: %s", bad[k][1], h.body.a);
        cJSON_Delete(j);
        http_free(&h);
        free(body);
    }
    char *body = xasprintf("{\"model\":\"o3\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                           "\"max_completion_tokens\":1000,\"reasoning_effort\":\"low\"}");
    Http h;
    http_do(u, body, 5000, &h);
    cJSON *j = cJSON_Parse(h.body.a);
    EXPECT(h.status == 200 && cJSON_GetNumberValue(jget(j, "usage.completion_tokens_details.reasoning_tokens")) == 64 &&
               cJSON_GetNumberValue(jget(j, "usage.completion_tokens")) > 64,
           "openai-reasoning usage: %s", h.body.a);
    cJSON_Delete(j);
    http_free(&h);
    free(body);
    body = xasprintf("{\"model\":\"o3\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_completion_tokens\":100}");
    http_do(u, body, 5000, &h);
    j = cJSON_Parse(h.body.a);
    EXPECT(h.status == 200 && !strcmp(cJSON_GetStringValue(jget(j, "choices.0.message.content")), "") &&
               !strcmp(cJSON_GetStringValue(jget(j, "choices.0.finish_reason")), "length"),
           "openai-reasoning: the limit spent on reasoning: %s", h.body.a);
    cJSON_Delete(j);
    http_free(&h);
    free(body);
    free(u);
    serve_stop(s);
}

static void test_quirk_bodies(void) {
    Body b;
    teacher_body(&b, literal_at(5), 3);
    struct { int fault; long status; const char *want; } q[] = {
        {SERVE_FAULT_QUOTA, 429, "\"code\":\"insufficient_quota\""},
        {SERVE_FAULT_FILTER_400, 400, "\"code\":\"content_filter\""},
        {SERVE_FAULT_FILTERED, 200, "\"finish_reason\":\"content_filter\""},
        {SERVE_FAULT_REFUSAL, 200, "\"refusal\":\"I'm sorry"},
        {SERVE_FAULT_THINK, 200, "\"content\":\"<think>\\n"},
        {SERVE_FAULT_LONE_THINK, 200, "\\n</think>\\n\\n"},
        {SERVE_FAULT_PARTS, 200, "\"type\":\"thinking\""},
        {SERVE_FAULT_EXHAUSTED, 200, "\"finish_reason\":\"length\""}};
    for (size_t k = 0; k < sizeof q / sizeof q[0]; k++) {
        ServeOptions o;
        serve_options_init(&o);
        o.fault_rate[q[k].fault] = 1;
        Server *s = start(&o);
        char *u = url_of(s, "/chat/completions");
        Http h;
        http_do(u, b.body, 5000, &h);
        EXPECT(h.status == q[k].status && strstr(h.body.a, q[k].want), "%s: %ld %.300s", serve_fault_name(q[k].fault),
               h.status, h.body.a);
        http_free(&h);
        free(u);
        serve_stop(s);
    }
    /* Retry-After as an HTTP date */
    ServeOptions o;
    serve_options_init(&o);
    o.fault_rate[SERVE_FAULT_RETRY_DATE] = 1;
    o.retry_after_s = 30;
    Server *s = start(&o);
    char *u = url_of(s, "/chat/completions");
    Http h;
    http_do(u, b.body, 5000, &h);
    const char *ra = strstr(h.headers.a, "Retry-After: ");
    char date[64] = "";
    if (ra) sscanf(ra + 13, "%63[^\r\n]", date);
    time_t t = curl_getdate(date, NULL);
    EXPECT(h.status == 429 && t > time(NULL) + 25 && t <= time(NULL) + 31, "Retry-After date '%s'", date);
    http_free(&h);
    free(u);
    serve_stop(s);
    free(b.body);
}

/* ---- the Files and Batch API ------------------------------------------------------------- */

static long upload(const Server *s, const char *data, ByteBuf *out) {
    CURL *c = curl_easy_init();
    char *u = url_of(s, "/files");
    curl_mime *m = curl_mime_init(c);
    curl_mimepart *p = curl_mime_addpart(m);
    curl_mime_name(p, "purpose");
    curl_mime_data(p, "batch", CURL_ZERO_TERMINATED);
    p = curl_mime_addpart(m);
    curl_mime_name(p, "file");
    curl_mime_filename(p, "in.jsonl");
    curl_mime_data(p, data, strlen(data));
    curl_easy_setopt(c, CURLOPT_URL, u);
    curl_easy_setopt(c, CURLOPT_MIMEPOST, m);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_perform(c);
    long st = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st);
    bytebuf_putc(out, 0);
    curl_easy_cleanup(c);
    curl_mime_free(m);
    free(u);
    return st;
}

static cJSON *get_json(const Server *s, const char *path, const char *post, long *status) {
    char *u = url_of(s, path);
    Http h;
    http_do(u, post, 5000, &h);
    *status = h.status;
    cJSON *o = cJSON_Parse(h.body.a);
    http_free(&h);
    free(u);
    return o;
}

static void test_batch_api(void) {
    ServeOptions o;
    serve_options_init(&o);
    o.batch_delay_s = 0.3;
    o.batch_fail_rate = 0.25;
    Server *s = start(&o);
    ByteBuf in = {0};
    for (int i = 0; i < 12; i++) {
        Body b;
        teacher_body(&b, literal_at(40 + i), 3);
        bytebuf_printf(&in, "{\"custom_id\":\"req-%d\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":%s}\n", i,
                       b.body);
        free(b.body);
    }
    ByteBuf up = {0};
    long st = upload(s, in.a, &up);
    cJSON *f = cJSON_Parse(up.a);
    const char *fid = cJSON_GetStringValue(jget(f, "id"));
    EXPECT(st == 200 && fid && !strncmp(fid, "file-", 5) && cJSON_GetNumberValue(jget(f, "bytes")) == (double)in.n,
           "upload: %ld %s", st, up.a);
    char *req = xasprintf("{\"input_file_id\":\"%s\",\"endpoint\":\"/v1/chat/completions\",\"completion_window\":\"24h\"}", fid);
    cJSON *bt = get_json(s, "/batches", req, &st);
    const char *bid = cJSON_GetStringValue(jget(bt, "id"));
    EXPECT(st == 200 && bid && !strcmp(cJSON_GetStringValue(jget(bt, "status")), "validating") &&
               cJSON_GetNumberValue(jget(bt, "request_counts.total")) == 12,
           "create: %ld", st);
    char *path = xasprintf("/batches/%s", bid);
    cJSON *b2 = NULL;
    double t0 = util_now();
    do {
        cJSON_Delete(b2);
        usleep(50000);
        b2 = get_json(s, path, NULL, &st);
    } while (strcmp(cJSON_GetStringValue(jget(b2, "status")), "completed") && util_now() - t0 < 5);
    const char *out = cJSON_GetStringValue(jget(b2, "output_file_id")), *err = cJSON_GetStringValue(jget(b2, "error_file_id"));
    double done = cJSON_GetNumberValue(jget(b2, "request_counts.completed")), failed = cJSON_GetNumberValue(jget(b2, "request_counts.failed"));
    EXPECT(out && err && done + failed == 12 && failed > 0 && done > 0, "completed with output and error files (%g + %g)",
           done, failed);
    char *cp = xasprintf("/files/%s/content", out);
    char *u = url_of(s, cp);
    Http h;
    http_do(u, NULL, 5000, &h);
    int lines = 0, good = 1;
    char *save = NULL;
    for (char *line = strtok_r(h.body.a, "\n", &save); line; line = strtok_r(NULL, "\n", &save), lines++) {
        cJSON *l = cJSON_Parse(line);
        ChatResponse r;
        Err e;
        char *body = cJSON_PrintUnformatted(jget(l, "response.body"));
        good &= cJSON_GetNumberValue(jget(l, "response.status_code")) == 200 && !strncmp(cJSON_GetStringValue(jget(l, "custom_id")), "req-", 4) &&
                body && chat_response_parse(body, strlen(body), &r, &e) == 0;
        if (good) chat_response_free(&r);
        cJSON_free(body);
        cJSON_Delete(l);
    }
    EXPECT(lines == (int)done && good, "output lines: %d, all chat completions", lines);
    http_free(&h);
    free(u), free(cp), free(path), free(req);
    cJSON_Delete(b2), cJSON_Delete(bt), cJSON_Delete(f);
    bytebuf_free(&up);
    /* list, newest first, paged */
    cJSON *l = get_json(s, "/batches?limit=1", NULL, &st);
    EXPECT(st == 200 && cJSON_GetArraySize(jget(l, "data")) == 1 && cJSON_IsFalse(jget(l, "has_more")), "list");
    cJSON_Delete(l);
    /* a duplicate custom_id: the batch fails validation */
    bytebuf_printf(&in, "%.*s", (int)(strchr(in.a, '\n') - in.a + 1), in.a);
    ByteBuf up2 = {0};
    upload(s, in.a, &up2);
    f = cJSON_Parse(up2.a);
    req = xasprintf("{\"input_file_id\":\"%s\",\"endpoint\":\"/v1/chat/completions\",\"completion_window\":\"24h\"}",
                    cJSON_GetStringValue(jget(f, "id")));
    bt = get_json(s, "/batches", req, &st);
    EXPECT(st == 200 && !strcmp(cJSON_GetStringValue(jget(bt, "status")), "failed") &&
               !strcmp(cJSON_GetStringValue(jget(bt, "errors.data.0.code")), "duplicate_custom_id"),
           "duplicate custom_id fails the batch");
    cJSON_Delete(bt);
    free(req);
    /* wrong endpoint / window: 400 naming the parameter; cancel */
    req = xasprintf("{\"input_file_id\":\"%s\",\"endpoint\":\"/v1/embeddings\",\"completion_window\":\"24h\"}",
                    cJSON_GetStringValue(jget(f, "id")));
    bt = get_json(s, "/batches", req, &st);
    EXPECT(st == 400 && !strcmp(cJSON_GetStringValue(jget(bt, "error.param")), "endpoint"), "bad endpoint: %ld", st);
    cJSON_Delete(bt);
    free(req);
    cJSON *nf = get_json(s, "/batches/batch_nope", NULL, &st);
    EXPECT(st == 404 && jget(nf, "error.message"), "unknown batch: 404");
    cJSON_Delete(nf);
    cJSON_Delete(f);
    bytebuf_free(&up2);
    bytebuf_free(&in);
    ServeStats ss;
    serve_stats(s, &ss);
    EXPECT(ss.files >= 3 && ss.batches == 2 && ss.batch_lines == 12, "batch stats: %lld files %lld batches",
           (long long)ss.files, (long long)ss.batches);
    serve_stop(s);
}

int main(void) {
    snprintf(TMP, sizeof TMP, "/tmp/test_serve.XXXXXX");
    CHECK(mkdtemp(TMP), "mkdtemp");
    test_serve_main(); /* forks: before any thread exists */
    CHECK(curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK, "curl_global_init");
    Err e;
    double t0 = util_now();
    W = standin_world_create(NULL, NULL, &e);
    if (!W) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    printf("world: %d fortunes, %d literals, %d tags in %.2f s\n", standin_world_n_jokes(W), standin_world_n_literals(W),
           standin_world_n_tags(W), util_now() - t0);
    test_world();
    ServeOptions o;
    serve_options_init(&o);
    o.seed = 1;
    Server *s = start(&o);
    o.seed = 2;
    Server *s2 = start(&o);
    test_protocol(s);
    test_teacher(s, s2);
    test_refusals();
    test_critic(s);
    test_faults();
    test_latency();
    test_request_log();
    test_stop_with_pending();
    test_dialects();
    test_quirk_bodies();
    test_batch_api();
    test_throughput(s);
    serve_stop(s);
    serve_stop(s2);
    standin_world_destroy(W);
    curl_global_cleanup();
    char *cmd = xasprintf("rm -rf '%s'", TMP);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", TMP);
    free(cmd);
    return test_summary();
}

/* test_critic -- the critic role (critic.c): critic_parse on documented
 * bodies (the verdict, log-probs of the verdict token only, never a digit in
 * the reasoning, no verdict when cut, refused or filtered); critic_judge
 * against the stand-in, end to end over HTTP: the preference follows the
 * hidden humor score, equals the stand-in's logistic model when log-probs
 * are given, falls back to the written answer without them, asking in both
 * orders cancels a position bias, and every server dialect and reasoning
 * shape gives the same preference as the plain answer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "llm/critic.h"
#include "llm/teacher.h"
#include "standin/serve.h"
#include "standin/dialect.h"
#include "test.h"
#include "base/util.h"

enum { N = 80 };

static Server *start_as(const StandinWorld *w, double bias, int dialect, int fault, Err *e) {
    ServeOptions o;
    serve_options_init(&o);
    o.world = w;
    o.quiet = 1;
    o.position_bias = bias;
    o.seed = 11;
    o.dialect = dialect;
    if (fault) o.fault_rate[fault] = 1.0;
    return serve_start(&o, e);
}

static Server *start(const StandinWorld *w, double bias, Err *e) { return start_as(w, bias, DIALECT_STANDIN, 0, e); }

static CriticJudgement *judge_ec(Server *s, const EndpointConfig *ec, const CriticItem *items, int n) {
    char *url = xasprintf("http://127.0.0.1:%d/v1", serve_port(s));
    LlmEndpoint ep = {.name = "critic", .base_url = url, .api_key_env = "", .ca_bundle = "",
                      .concurrency = 16, .connect_timeout = 5, .timeout = 30, .retries = 2,
                      .backoff = 0.05, .backoff_max = 0.2, .ec = ec};
    Err e;
    LlmClient *c = llm_client_create(&ep, NULL, &e);
    CHECK(c, "%s", e.msg);
    CriticJudgement *j = xcalloc((size_t)n, sizeof *j);
    critic_judge(c, ec, items, (size_t)n, j, NULL);
    llm_client_destroy(c);
    free(url);
    return j;
}

static CriticJudgement *judge(Server *s, const Config *cfg, const CriticItem *items, int logprobs) {
    char *url = xasprintf("http://127.0.0.1:%d/v1", serve_port(s));
    LlmEndpoint ep = {.name = "critic", .base_url = url, .api_key_env = "", .ca_bundle = "",
                      .concurrency = 16, .connect_timeout = 5, .timeout = 30, .retries = 2,
                      .backoff = 0.05, .backoff_max = 0.2};
    Err e;
    LlmClient *c = llm_client_create(&ep, NULL, &e);
    CHECK(c, "%s", e.msg);
    EndpointConfig ec = cfg->critic;
    ec.logprobs = logprobs;
    CriticJudgement *j = xcalloc(N, sizeof *j);
    size_t got = critic_judge(c, &ec, items, N, j, NULL);
    EXPECT(got == N, "judged %zu of %d", got, N);
    llm_client_destroy(c);
    free(url);
    return j;
}

static ChatResponse parsed(const char *body) {
    ChatResponse r;
    Err e;
    CHECK(chat_response_parse(body, strlen(body), &r, &e) == 0, "%s", e.msg);
    return r;
}

/* critic_parse on fixed bodies. */
static void test_parse(void) {
    /* top_logprobs of the verdict token: P(1) = e^l1 / (e^l1 + e^l2) */
    ChatResponse r = parsed(
        "{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
        "\"Reason: funnier.\\nAnswer: 2\"},\"finish_reason\":\"stop\",\"logprobs\":{\"content\":["
        "{\"token\":\"Reason\",\"logprob\":0},{\"token\":\":\",\"logprob\":0},"
        "{\"token\":\" funnier.\\n\",\"logprob\":-0.1},{\"token\":\"Answer\",\"logprob\":0},"
        "{\"token\":\":\",\"logprob\":0},{\"token\":\" 2\",\"logprob\":-0.2231,\"top_logprobs\":["
        "{\"token\":\" 2\",\"logprob\":-0.2231},{\"token\":\" 1\",\"logprob\":-1.6094}]}]}}],"
        "\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":7,\"total_tokens\":47}}");
    double p1 = -1;
    EXPECT(critic_parse(&r, &p1) == CRITIC_SRC_LOGPROBS && fabs(p1 - 0.2) < 1e-3, "p1 %g (0.2 expected)", p1);
    chat_response_free(&r);
    /* a decoy verdict inside the reasoning, with its own (wrong) log-probs: never read */
    r = parsed("{\"choices\":[{\"message\":{\"reasoning_content\":\"so Answer: 1? no\",\"content\":\"Answer: 2\"},"
               "\"logprobs\":{\"content\":[{\"token\":\"so Answer:\",\"logprob\":0},{\"token\":\" 1\",\"logprob\":-0.01,"
               "\"top_logprobs\":[{\"token\":\" 1\",\"logprob\":-0.01},{\"token\":\" 2\",\"logprob\":-4.6}]},"
               "{\"token\":\"? no\\n</think>\\n\\n\",\"logprob\":0},{\"token\":\"Answer:\",\"logprob\":0},"
               "{\"token\":\" 2\",\"logprob\":-0.105,\"top_logprobs\":[{\"token\":\" 2\",\"logprob\":-0.105},"
               "{\"token\":\" 1\",\"logprob\":-2.303}]}]},\"finish_reason\":\"stop\"}]}");
    EXPECT(critic_parse(&r, &p1) == CRITIC_SRC_LOGPROBS && fabs(p1 - 0.1) < 1e-3, "decoy read: p1 %g", p1);
    chat_response_free(&r);
    const char *text_cases[][2] = {
        {"Reason: shorter.\nAnswer: 1", "1"}, {"**Answer:** 2", "0"}, {"The answer is 2.", "0"},
        {"Answer - paraphrase 1", "1"}, {"I like both.", "n"}, {"Answer: 12", "n"}, {"Answer: 3", "n"},
        {"Reason: the answer 2 was long. Answer:", "n"}};
    for (size_t k = 0; k < sizeof text_cases / sizeof text_cases[0]; k++) {
        char *b = xasprintf("{\"choices\":[{\"message\":{\"content\":\"%s\"},\"finish_reason\":\"stop\"}]}", text_cases[k][0]);
        r = parsed(b);
        p1 = -1;
        int src = critic_parse(&r, &p1);
        char want = text_cases[k][1][0];
        EXPECT(want == 'n' ? src == CRITIC_SRC_NONE : src == CRITIC_SRC_TEXT && p1 == (want == '1' ? 1.0 : 0.0),
               "'%s': src %d p1 %g", text_cases[k][0], src, p1);
        chat_response_free(&r);
        free(b);
    }
    /* no verdict: cut by the token limit, refused, filtered */
    const char *none[] = {
        "{\"choices\":[{\"message\":{\"content\":\"Reason: long. Answer: 1\"},\"finish_reason\":\"length\"}]}",
        "{\"choices\":[{\"message\":{\"content\":null,\"refusal\":\"I can't.\"},\"finish_reason\":\"stop\"}]}",
        "{\"choices\":[{\"message\":{\"content\":\"Answer: 1\"},\"finish_reason\":\"content_filter\"}]}"};
    for (int k = 0; k < 3; k++) {
        r = parsed(none[k]);
        EXPECT(critic_parse(&r, &p1) == CRITIC_SRC_NONE, "no verdict expected: %s", none[k]);
        chat_response_free(&r);
    }
    EXPECT(critic_verdict_offset("Reason: a\nAnswer: 2") == 18, "verdict offset");
    /* a positive log-prob of the only answer token is probability 1, so P(1 better) stays in [0, 1]
     * (it was 1 - exp(0.22) = -0.25 and exp(1e-7) > 1: found by fuzz_chat_response) */
    r = parsed("{\"choices\":[{\"message\":{\"content\":\"Answer: 2\"},\"logprobs\":{\"content\":["
               "{\"token\":\"Answer:\",\"logprob\":0},{\"token\":\" 2\",\"logprob\":0.2231,\"top_logprobs\":["
               "{\"token\":\" 2\",\"logprob\":0.2231},{\"token\":\" 0\",\"logprob\":-1.6}]}]}}]}");
    EXPECT(critic_parse(&r, &p1) == CRITIC_SRC_LOGPROBS && p1 == 0.0, "positive log-prob of 2: p1 %g", p1);
    chat_response_free(&r);
    r = parsed("{\"choices\":[{\"message\":{\"content\":\"Answer: 1\"},\"logprobs\":{\"content\":["
               "{\"token\":\"Answer:\",\"logprob\":0},{\"token\":\" 1\",\"logprob\":1e-7}]}}]}");
    EXPECT(critic_parse(&r, &p1) == CRITIC_SRC_LOGPROBS && p1 == 1.0, "positive log-prob of 1: p1 %g", p1);
    chat_response_free(&r);
}

/* Every dialect and reasoning shape gives the preference of the plain answer. */
static void test_dialects(const StandinWorld *w, const Config *cfg, const CriticItem *items, const CriticJudgement *plain) {
    enum { M = 12 };
    struct { int dialect, fault, logprobs; const char *what; } cases[] = {
        {DIALECT_OPENAI, 0, 1, "openai"}, {DIALECT_AZURE, 0, 1, "azure"}, {DIALECT_VLLM, 0, 1, "vllm (<think> in content)"},
        {DIALECT_VLLM_REASONING, 0, 1, "vllm reasoning_content"}, {DIALECT_LLAMA_SERVER, 0, 1, "llama-server"},
        {DIALECT_OLLAMA, 0, 0, "ollama"}, {DIALECT_STANDIN, SERVE_FAULT_THINK, 1, "<think> quirk"},
        {DIALECT_STANDIN, SERVE_FAULT_LONE_THINK, 1, "lone </think>"}, {DIALECT_STANDIN, SERVE_FAULT_PARTS, 1, "parts"},
        {DIALECT_OPENAI_REASONING, 0, 0, "openai-reasoning"}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        Err e;
        Server *s = start_as(w, 0.0, cases[k].dialect, cases[k].fault, &e);
        CHECK(s, "%s", e.msg);
        EndpointConfig ec = cfg->critic;
        ec.logprobs = cases[k].logprobs;
        if (cases[k].dialect == DIALECT_OPENAI_REASONING) {
            ec.temperature = -1;
            ec.token_param = TOKEN_PARAM_MAX_COMPLETION_TOKENS;
            ec.max_tokens = 400;
        }
        CriticJudgement *j = judge_ec(s, &ec, items, M);
        int same = 1, reasoned = 1, clean = 1;
        for (int i = 0; i < M; i++) {
            double want = cases[k].logprobs ? plain[i].p_ab : plain[i].p_ab > 0.5 ? 1.0 : 0.0;
            same &= j[i].st_ab == LLM_OK && fabs(j[i].p_ab - want) < 1e-9;
            reasoned &= dialect_reasons(cases[k].dialect) || cases[k].fault ? strstr(j[i].reasoning_ab, "Answer: ") != NULL
                                                                           : !j[i].reasoning_ab[0];
            clean &= !strstr(j[i].raw_ab, "Wait") && !strstr(j[i].raw_ab, "</think>");
        }
        EXPECT(same, "%s: preference differs from the plain answer (p_ab %g vs %g, status %s: %s)", cases[k].what,
               j[0].p_ab, plain[0].p_ab, llm_status_name(j[0].st_ab), j[0].raw_ab);
        EXPECT(reasoned && clean, "%s: reasoning kept apart (%s | %s)", cases[k].what, j[0].reasoning_ab, j[0].raw_ab);
        for (int i = 0; i < M; i++) critic_judgement_free(&j[i]);
        free(j);
        serve_stop(s);
    }
}

/* Refused and filtered orders are unjudged, not failures. */
static void test_unjudged(const StandinWorld *w, const Config *cfg, const CriticItem *items) {
    int faults[2] = {SERVE_FAULT_REFUSAL, SERVE_FAULT_FILTERED};
    for (int k = 0; k < 2; k++) {
        Err e;
        Server *s = start_as(w, 0.0, DIALECT_AZURE, faults[k], &e);
        CHECK(s, "%s", e.msg);
        CriticJudgement *j = judge_ec(s, &cfg->critic, items, 4);
        int stopped;
        LlmStatus first;
        EXPECT(critic_failures(j, 4, &stopped, &first) == 0 && critic_unjudged(j, 4) == 8 && isnan(j[0].p) &&
                   j[0].st_ab == (k ? LLM_E_FILTERED : LLM_E_REFUSED),
               "%s: unjudged, not failed", serve_fault_name(faults[k]));
        for (int i = 0; i < 4; i++) critic_judgement_free(&j[i]);
        free(j);
        serve_stop(s);
    }
}

int main(void) {
    test_parse();
    Err e;
    StandinWorld *w = standin_world_create(NULL, NULL, &e);
    CHECK(w, "%s", e.msg);
    Config cfg;
    config_init(&cfg);
    /* items: the best and the worst teacher paraphrase of N literals, in random order */
    CriticItem items[N];
    double dh[N];
    char *keep[3 * N];
    int nk = 0;
    Rng r;
    rng_seed(&r, 5);
    for (int i = 0; i < N; i++) {
        const char *lit = standin_world_literal(w, 13 * i + 1);
        char *ans = standin_teach(w, lit, 3, (uint64_t)i, 0.0);
        StrVec v = {0};
        teacher_parse_list(ans, 3, &v);
        CHECK(v.n >= 2, "teacher gave %zu items", v.n);
        size_t hi = 0, lo = 0;
        for (size_t k = 1; k < v.n; k++) {
            if (standin_humor(w, lit, v.a[k]) > standin_humor(w, lit, v.a[hi])) hi = k;
            if (standin_humor(w, lit, v.a[k]) < standin_humor(w, lit, v.a[lo])) lo = k;
        }
        int swap = rng_below(&r, 2);
        keep[nk++] = xstrdup(lit);
        keep[nk++] = xstrdup(v.a[swap ? lo : hi]);
        keep[nk++] = xstrdup(v.a[swap ? hi : lo]);
        items[i] = (CriticItem){keep[nk - 3], keep[nk - 2], keep[nk - 1]};
        dh[i] = standin_humor(w, lit, items[i].a) - standin_humor(w, lit, items[i].b);
        strvec_free(&v);
        free(ans);
    }
    Server *fair = start(w, 0.0, &e), *biased = start(w, 1.5, &e);
    CHECK(fair && biased, "%s", e.msg);
    CriticJudgement *jf = judge(fair, &cfg, items, 1), *jb = judge(biased, &cfg, items, 1);
    CriticJudgement *jt = judge(fair, &cfg, items, 0);
    StandinCriticParams cp;
    standin_critic_params_init(&cp);
    int agree = 0, clear = 0, src_lp = 0, src_txt = 0;
    double model_err = 0, bias_ab = 0, err_one = 0, err_avg = 0;
    for (int i = 0; i < N; i++) {
        if (fabs(dh[i]) > 0.1) {
            clear++;
            agree += (jf[i].p > 0.5) == (dh[i] > 0);
        }
        src_lp += jf[i].src_ab == CRITIC_SRC_LOGPROBS && jf[i].src_ba == CRITIC_SRC_LOGPROBS;
        src_txt += jt[i].src_ab == CRITIC_SRC_TEXT && jt[i].src_ba == CRITIC_SRC_TEXT;
        double z = standin_critic_logit(w, &cp, items[i].input, items[i].a, items[i].b);
        double e1 = fabs(jf[i].p_ab - standin_sigmoid(z));
        if (e1 > model_err) model_err = e1;
        bias_ab += jb[i].p_ab - jb[i].p_ba;
        err_one += fabs(jb[i].p_ab - jf[i].p);
        err_avg += fabs(jb[i].p - jf[i].p);
    }
    printf("agreement with h on clear pairs: %d/%d; max |p - sigmoid(z)| %.2g; biased critic: mean p_ab - p_ba "
           "%.3f, mean error one order %.3f, both orders %.3f\n",
           agree, clear, model_err, bias_ab / N, err_one / N, err_avg / N);
    EXPECT(clear >= N / 2 && agree >= 0.9 * clear, "agreement %d of %d", agree, clear);
    EXPECT(src_lp == N, "log-prob source for %d of %d", src_lp, N);
    EXPECT(src_txt == N, "text fallback for %d of %d", src_txt, N);
    EXPECT(model_err < 2e-3, "preference differs from the stand-in's model by %g", model_err);
    EXPECT(bias_ab / N > 0.05, "position bias not visible: %g", bias_ab / N);
    EXPECT(err_avg < 0.6 * err_one, "both orders do not reduce the bias error (%g vs %g)", err_avg, err_one);
    int raw_ok = 1;
    for (int i = 0; i < N; i++) raw_ok &= strstr(jf[i].raw_ab, "Answer") && strstr(jf[i].raw_ba, "Answer");
    EXPECT(raw_ok, "raw answers kept");
    test_dialects(w, &cfg, items, jf);
    test_unjudged(w, &cfg, items);
    for (int i = 0; i < N; i++) {
        critic_judgement_free(&jf[i]);
        critic_judgement_free(&jb[i]);
        critic_judgement_free(&jt[i]);
    }
    free(jf), free(jb), free(jt);
    for (int i = 0; i < nk; i++) free(keep[i]);
    serve_stop(fair);
    serve_stop(biased);
    standin_world_destroy(w);
    config_free(&cfg);
    return test_summary();
}

/* test_critic -- critic_judge against the stand-in, end to end over HTTP:
 * the preference follows the hidden humor score, equals the stand-in's
 * logistic model when log-probs are given, falls back to the written answer
 * without them, and asking in both orders cancels a position bias. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "llm/critic.h"
#include "llm/teacher.h"
#include "standin/serve.h"
#include "test.h"
#include "base/util.h"

enum { N = 80 };

static Server *start(const StandinWorld *w, double bias, Err *e) {
    ServeOptions o;
    serve_options_init(&o);
    o.world = w;
    o.quiet = 1;
    o.position_bias = bias;
    o.seed = 11;
    return serve_start(&o, e);
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

int main(void) {
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

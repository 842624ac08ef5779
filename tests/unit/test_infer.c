/* test_infer -- stages/infer.h and stages/modelsrv.h without HTTP.
 * infer_open reads a run directory (the newest checkpoint, its stored
 * configuration, then the assignments) and a checkpoint file, and fails
 * with one line naming the path for a missing path, a directory that is
 * neither a run nor a model directory, a run without checkpoints and a file
 * that is not a checkpoint.  infer_score's log-probabilities sum to the
 * decoder's (a KV cache against a full forward pass), its first one equals a
 * float64 log-softmax of model_decode's logits, greedy decoding picks its
 * top alternative every time, and the alternatives are ordered.
 * infer_token_text makes a broken character U+FFFD and keeps the raw byte.
 * modelsrv_answer: a good request (n, logprobs, top_logprobs, usage), beam
 * for temperature 0 equal to student_decode's best, the same seed the same
 * answer, content as text parts, the system message ignored by the plain
 * format, a token limit beyond the context cut to it; every bad field a
 * 400 naming it in OpenAI's shape, another model 404, a prompt beyond the
 * context 400; two threads asking at once get the answers one thread gets. */
#include <cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "base/util.h"
#include "io/ckpt.h"
#include "stages/infer.h"
#include "stages/modelsrv.h"
#include "test.h"
#include "test_run.h"

static char *root, *run_dir;


/* run_dir/ckpt/step_00000007.h5: a random 2-layer GPT-2 of 32 positions, its configuration stored */
static void write_run(void) {
    const char *kv[] = {"eval.beam=3", "eval.max_new=8", "critique.k=2", "critique.max_new=6", NULL};
    free(test_write_run(run_dir, 7, 7, kv, "test_infer"));
}

static void opening(void) {
    Infer m;
    Err e = {{0}};
    char *sets[] = {"eval.beam=4"};
    EXPECT(infer_open(&m, run_dir, sets, 1, &e) == 0, "%s", e.msg);
    EXPECT(m.kind == INFER_RUN && !strcmp(m.name, "run") && strstr(m.path, "step_00000007.h5"), "run dir: %s %s", m.name, m.path);
    EXPECT(m.cfg.eval.max_new == 8 && m.cfg.critique.k == 2 && m.cfg.eval.beam == 4, "stored configuration + --set");
    EXPECT(m.s.model.cfg.max_seq_len == 32 && m.s.tok && m.s.eot == tokenizer_eot_id(m.s.tok), "model and tokenizer");
    GenOptions o;
    infer_gen_options(&m, GEN_SAMPLE, &o);
    EXPECT(o.mode == GEN_SAMPLE && o.k == 2 && o.max_new == 6, "sampling defaults = critique.*");
    infer_gen_options(&m, GEN_BEAM, &o);
    EXPECT(o.mode == GEN_BEAM && o.k == 1 && o.beam == 4 && o.max_new == 8, "beam defaults = eval.*");
    infer_close(&m);
    infer_close(&m);
    infer_close(NULL);

    char *ck = xasprintf("%s/ckpt/step_00000007.h5", run_dir);
    EXPECT(infer_open(&m, ck, NULL, 0, &e) == 0 && m.kind == INFER_CHECKPOINT && !strcmp(m.name, "step_00000007"),
           "checkpoint file: %s", e.msg);
    infer_close(&m);
    char *bad[] = {"student.format=rhyme"};
    EXPECT(infer_open(&m, ck, bad, 1, &e) != 0 && strstr(e.msg, "student.format"), "a bad --set: %s", e.msg);

    struct { const char *what; char *path; const char *want; } cases[] = {
        {"missing", xasprintf("%s/nothere", root), "no such file or directory"},
        {"neither", xasprintf("%s/empty", root), "neither a run directory"},
        {"no checkpoint", xasprintf("%s/norun", root), "no readable checkpoint"},
        {"not a checkpoint", xasprintf("%s/junk.h5", root), "junk.h5"},
    };
    util_mkdir_p(cases[1].path, &e);
    char *nc = xasprintf("%s/norun/ckpt", root);
    util_mkdir_p(nc, &e);
    test_write_file(cases[3].path, "not hdf5", -1);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        memset(&e, 0, sizeof e);
        int rc = infer_open(&m, cases[i].path, NULL, 0, &e);
        EXPECT(rc != 0 && strstr(e.msg, cases[i].want) && strstr(e.msg, cases[i].path) && !strchr(e.msg, '\n'),
               "%s: %s", cases[i].what, e.msg);
        free(cases[i].path);
    }
    free(nc), free(ck);
}

/* float64 log-softmax of the KV decoder's logits after the prompt, at id */
static double kv_logprob(const Infer *m, const IntVec *prompt, int id) {
    const Model *md = &m->s.model;
    int V = md->cfg.vocab_size;
    ModelKV *big = model_kv_create_pool(md, 1, md->cfg.max_seq_len, 0, (int)prompt->n);
    float *lg = xmalloc(sizeof(float) * (size_t)V);
    int slot = 0, cnt = (int)prompt->n;
    model_decode(md, big, &slot, prompt->a, &cnt, 1, lg);
    double mx = -INFINITY, s = 0;
    for (int v = 0; v < V; v++) mx = lg[v] > mx ? lg[v] : mx;
    for (int v = 0; v < V; v++) s += exp(lg[v] - mx);
    double r = lg[id] - mx - log(s);
    free(lg);
    model_kv_destroy(big);
    return r;
}

static void scoring(void) {
    Infer m;
    Err e;
    CHECK(infer_open(&m, run_dir, NULL, 0, &e) == 0, "%s", e.msg);
    char *texts[] = {"the cat sat", "a dog on the log", "caf\xC3\xA9"};
    for (int mode = 0; mode < 3; mode++) {
        GenOptions o;
        infer_gen_options(&m, mode == 2 ? GEN_SAMPLE : GEN_BEAM, &o);
        if (mode == 0) o.mode = GEN_GREEDY;
        int k = o.mode == GEN_GREEDY ? 1 : o.k;
        GenSeq g[3 * 8];
        IntVec pr[3];
        student_decode(&m.s, &o, texts, 3, 0, pr, g);
        double worst = 0, kvd = 0;
        int ordered = 1, argmax = 1, n = 0;
        for (int i = 0; i < 3 * k; i++) {
            const IntVec *p = &pr[i / k];
            InferToken tk[40];
            infer_score(&m, p->a, (int)p->n, g[i].ids, g[i].n, g[i].finished, INFER_MAX_TOP, tk);
            double sum = 0;
            for (int j = 0; j < g[i].n + g[i].finished; j++) {
                sum += tk[j].logprob;
                ordered &= tk[j].n_top == INFER_MAX_TOP && tk[j].top_logprob[0] >= tk[j].logprob - 1e-12;
                for (int a = 1; a < tk[j].n_top; a++) ordered &= tk[j].top_logprob[a] <= tk[j].top_logprob[a - 1];
                if (mode == 0) argmax &= tk[j].top_id[0] == tk[j].id;
            }
            if (g[i].n + g[i].finished > 0) kvd = fmax(kvd, fabs(tk[0].logprob - kv_logprob(&m, p, tk[0].id)));
            worst = fmax(worst, fabs(sum - g[i].logp));
            n += g[i].n;
            gen_seq_free(&g[i]);
        }
        for (int i = 0; i < 3; i++) intvec_free(&pr[i]);
        EXPECT(n > 0 && worst < 1e-4, "mode %d: sum of scored tokens = decoder's logp (worst %.2e)", mode, worst);
        EXPECT(kvd < 1e-4, "mode %d: first token = float64 log-softmax of the KV logits (%.2e)", mode, kvd);
        EXPECT(ordered, "mode %d: alternatives ordered, the first the most probable", mode);
        EXPECT(argmax, "greedy picks the top alternative");
    }
    ByteBuf t = {0}, raw = {0};
    infer_token_text(&m, 0xC3, &t, &raw); /* the byte tokens come first in a trained BPE */
    EXPECT(t.n == 3 && !memcmp(t.a, "\xEF\xBF\xBD", 3) && raw.n == 1 && (unsigned char)raw.a[0] == 0xC3,
           "half a character: U+FFFD, raw byte kept");
    bytebuf_free(&t), bytebuf_free(&raw);
    infer_token_text(&m, 'a', &t, NULL);
    EXPECT(t.n == 1 && t.a[0] == 'a', "a plain token");
    bytebuf_free(&t);
    infer_close(&m);
}

/* ---- modelsrv -------------------------------------------------------------------- */

static cJSON *ask(ModelSrv *ms, const char *body, int *status) {
    char *resp = NULL;
    *status = modelsrv_answer(ms, body, strlen(body), &resp);
    cJSON *j = cJSON_Parse(resp);
    CHECK(j, "not JSON: %s", resp);
    free(resp);
    return j;
}

static const char *str_at(const cJSON *j, const char *a, const char *b) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, a);
    x = b ? cJSON_GetObjectItemCaseSensitive(x, b) : x;
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static const cJSON *choice(const cJSON *j, int i) { return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), i); }

static double usage(const cJSON *j, const char *k) {
    return cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "usage"), k)->valuedouble;
}

#define MSG "\"messages\":[{\"role\":\"user\",\"content\":\"the cat sat\"}]"

static void bad_requests(ModelSrv *ms) {
    static const struct { const char *body; int status; const char *param; } cases[] = {
        {"{", 400, NULL},
        {"[1]", 400, NULL},
        {"{" MSG "}", 400, "model"},
        {"{\"model\":7," MSG "}", 400, "model"},
        {"{\"model\":\"gpt-4o\"," MSG "}", 404, "model"},
        {"{\"model\":\"m\"}", 400, "messages"},
        {"{\"model\":\"m\",\"messages\":[]}", 400, "messages"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}", 400, "messages"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}", 400, "messages"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", 400, "messages"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}", 400, "messages"},
        {"{\"model\":\"m\"," MSG ",\"temperature\":2.5}", 400, "temperature"},
        {"{\"model\":\"m\"," MSG ",\"temperature\":\"hot\"}", 400, "temperature"},
        {"{\"model\":\"m\"," MSG ",\"top_p\":1.5}", 400, "top_p"},
        {"{\"model\":\"m\"," MSG ",\"n\":0}", 400, "n"},
        {"{\"model\":\"m\"," MSG ",\"n\":17}", 400, "n"},
        {"{\"model\":\"m\"," MSG ",\"n\":1.5}", 400, "n"},
        {"{\"model\":\"m\"," MSG ",\"max_tokens\":0}", 400, "max_tokens"},
        {"{\"model\":\"m\"," MSG ",\"max_completion_tokens\":-1}", 400, "max_completion_tokens"},
        {"{\"model\":\"m\"," MSG ",\"top_logprobs\":3}", 400, "top_logprobs"},
        {"{\"model\":\"m\"," MSG ",\"logprobs\":true,\"top_logprobs\":21}", 400, "top_logprobs"},
        {"{\"model\":\"m\"," MSG ",\"logprobs\":\"yes\"}", 400, "logprobs"},
        {"{\"model\":\"m\"," MSG ",\"seed\":1.5}", 400, "seed"},
        {"{\"model\":\"m\"," MSG ",\"stream\":true}", 400, "stream"},
        {"{\"model\":\"m\"," MSG ",\"stop\":[\"\\n\"]}", 400, "stop"},
        {"{\"model\":\"m\"," MSG ",\"tools\":[{\"type\":\"function\"}]}", 400, "tools"},
        {"{\"model\":\"m\"," MSG ",\"presence_penalty\":1}", 400, "presence_penalty"},
        {"{\"model\":\"m\"," MSG ",\"response_format\":{\"type\":\"json_object\"}}", 400, "response_format"},
        {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"the cat sat on the mat, the dog on the log; "
         "a cat and a dog, caf\u00e9 au lait. The cat sat on the mat, the dog on the log; a cat and a dog, caf\u00e9 au lait. "
         "THE CAT SAT ON THE MAT, THE DOG ON THE LOG\"}]}", 400, "messages"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int st;
        cJSON *j = ask(ms, cases[i].body, &st);
        const cJSON *er = cJSON_GetObjectItemCaseSensitive(j, "error");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(er, "param");
        int param_ok = cases[i].param ? cJSON_IsString(p) && !strcmp(p->valuestring, cases[i].param) : cJSON_IsNull(p);
        EXPECT(st == cases[i].status && str_at(er, "message", NULL) && str_at(er, "type", NULL) &&
                   cJSON_HasObjectItem(er, "code") && param_ok,
               "%s -> %d, param %s", cases[i].body, st, cJSON_IsString(p) ? p->valuestring : "null");
        cJSON_Delete(j);
    }
    int st;
    cJSON *j = ask(ms, "{\"model\":\"m\"," MSG ",\"stop\":null,\"tools\":[],\"presence_penalty\":0,\"user\":\"u\"}", &st);
    EXPECT(st == 200, "defaults of unsupported fields and unknown fields are accepted");
    cJSON_Delete(j);
}

typedef struct {
    ModelSrv *ms;
    char *content[5];
} Asker;

static void *asker(void *v) {
    Asker *a = v;
    for (int i = 0; i < 5; i++) {
        char *body = xasprintf("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"the dog %d\"}],\"seed\":%d}", i, i);
        int st;
        cJSON *j = ask(a->ms, body, &st);
        a->content[i] = xstrdup(st == 200 ? str_at(choice(j, 0), "message", "content") : "?");
        cJSON_Delete(j);
        free(body);
    }
    return NULL;
}

static void serving(void) {
    Infer m;
    Err e;
    CHECK(infer_open(&m, run_dir, NULL, 0, &e) == 0, "%s", e.msg);
    ModelSrv *ms = modelsrv_create(&m, "m");
    int st;
    const char *req = "{\"model\":\"m\"," MSG ",\"n\":2,\"temperature\":0.9,\"seed\":3,\"logprobs\":true,\"top_logprobs\":3}";
    cJSON *j = ask(ms, req, &st);
    EXPECT(st == 200 && !strcmp(str_at(j, "object", NULL), "chat.completion") && !strcmp(str_at(j, "model", NULL), "m"),
           "200 chat.completion");
    int completion = 0;
    for (int i = 0; i < 2; i++) {
        const cJSON *c = choice(j, i), *lc = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c, "logprobs"), "content");
        const char *fr = str_at(c, "finish_reason", NULL);
        int nt = cJSON_GetArraySize(lc);
        completion += nt + !strcmp(fr, "stop");
        const cJSON *t0 = cJSON_GetArrayItem(lc, 0);
        EXPECT(c && str_at(c, "message", "content") && nt > 0 &&
                   cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(t0, "top_logprobs")) == 3 &&
                   cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(t0, "bytes")),
               "choice %d: content, logprobs with 3 alternatives and bytes", i);
    }
    EXPECT(usage(j, "completion_tokens") == completion && usage(j, "total_tokens") == usage(j, "prompt_tokens") + completion &&
               usage(j, "total_tokens") <= 32,
           "usage (the end token counted)");
    cJSON *again = ask(ms, req, &st);
    EXPECT(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(j, "choices"), cJSON_GetObjectItemCaseSensitive(again, "choices"), 1),
           "the same seed, the same choices");
    cJSON_Delete(again), cJSON_Delete(j);

    /* temperature 0: beam search of width max(eval.beam, n), the best = student_decode's */
    j = ask(ms, "{\"model\":\"m\"," MSG ",\"temperature\":0,\"max_tokens\":1000}", &st);
    GenOptions o;
    infer_gen_options(&m, GEN_BEAM, &o);
    IntVec pr = {0};
    student_prompt(&m.s, "the cat sat", &pr);
    o.max_new = 32 - (int)pr.n;
    intvec_free(&pr);
    GenSeq g[1];
    char *texts[] = {"the cat sat"};
    student_decode(&m.s, &o, texts, 1, 0, NULL, g);
    char *want = student_text(&m.s, g[0].ids, g[0].n);
    EXPECT(st == 200 && !strcmp(str_at(choice(j, 0), "message", "content"), want) &&
               cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(choice(j, 0), "logprobs")) && usage(j, "total_tokens") <= 32,
           "temperature 0 = beam search's best, max_tokens cut to the context");
    free(want), gen_seq_free(&g[0]), cJSON_Delete(j);

    /* text parts, and a system message the plain format ignores */
    cJSON *a = ask(ms, "{\"model\":\"m\"," MSG ",\"temperature\":0}", &st);
    cJSON *b = ask(ms, "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"be funny\"},{\"role\":\"user\","
                       "\"content\":[{\"type\":\"text\",\"text\":\"the cat \"},{\"type\":\"text\",\"text\":\"sat\"}]}],"
                       "\"temperature\":0}", &st);
    EXPECT(st == 200 && cJSON_Compare(cJSON_GetObjectItemCaseSensitive(a, "choices"), cJSON_GetObjectItemCaseSensitive(b, "choices"), 1) &&
               usage(a, "prompt_tokens") == usage(b, "prompt_tokens"),
           "text parts = a string; the plain format ignores the system message");
    cJSON_Delete(a), cJSON_Delete(b);
    bad_requests(ms);

    /* two threads at once: the answers one thread gets */
    Asker x = {ms, {0}}, y = {ms, {0}}, z = {ms, {0}};
    pthread_t tx, ty;
    pthread_create(&tx, NULL, asker, &x);
    pthread_create(&ty, NULL, asker, &y);
    pthread_join(tx, NULL), pthread_join(ty, NULL);
    asker(&z);
    int same = 1;
    for (int i = 0; i < 5; i++) {
        same &= !strcmp(x.content[i], z.content[i]) && !strcmp(y.content[i], z.content[i]) && strcmp(z.content[i], "?");
        free(x.content[i]), free(y.content[i]), free(z.content[i]);
    }
    EXPECT(same, "concurrent requests: the serial answers");
    modelsrv_destroy(ms);
    modelsrv_destroy(NULL);
    infer_close(&m);
}

int main(void) {
    log_set_quiet(1);
    root = test_tmpdir("test_infer");
    run_dir = xasprintf("%s/run", root);
    write_run();
    opening();
    scoring();
    serving();
    test_rm_rf(root);
    free(root), free(run_dir);
    par_shutdown();
    return test_summary();
}

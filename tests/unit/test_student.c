/* test_student -- stages/student.h.  student_set_tokenizer: the plain
 * format's separator is <|sep|> when the tokenizer has one, else the
 * encoding of tokenizer.separator; student.format=chat of a tokenizer
 * without chat tokens is -1 naming the key; student_prompt = prompt ids +
 * separator; student_text decodes, makes invalid UTF-8 valid and collapses
 * white space.  student_load (in one-rank children) reads the newest
 * checkpoint (parameters, moments, state, logs, tokenizer; the train.*
 * AdamW settings but no weight decay); when the newest is truncated it
 * falls back to the previous one and renames the bad one "<path>.bad" with
 * quarantine = 1 and leaves it alone with quarantine = 0; the same for a
 * checkpoint whose metadata reads but whose state does not; no checkpoint
 * gives -1 with a message naming the directory (and an optimizer the caller
 * never initialised is not freed).  student_generate gives the same
 * outputs, in input order, on 1 and 2 ranks (under mpirun). */
#define TEST_STAGES
#include <stdlib.h>
#include <string.h>

#include "base/text.h"
#include "base/util.h"
#include "engine/optim.h"
#include "io/ckpt.h"
#include "io/store.h"
#include "stages/student.h"
#include "test.h"

static Tokenizer *small_tokenizer(void) {
    const char *texts[] = {"the cat sat on the mat", "the dog sat on the log", "a cat and a dog", "caf\xC3\xA9 au lait"};
    size_t lens[4];
    for (int i = 0; i < 4; i++) lens[i] = strlen(texts[i]);
    Err e;
    Tokenizer *t = tokenizer_train(texts, lens, 4, 272, &e);
    CHECK(t, "%s", e.msg);
    return t;
}

static void tokenizer_side(void) {
    Tokenizer *t = small_tokenizer();
    Err e;
    /* the tokenizer has <|sep|>: the plain format's separator is that one id */
    Student s;
    memset(&s, 0, sizeof s);
    tokenizer_to_data(t, &s.td);
    Config d;
    config_init(&d);
    EXPECT(student_set_tokenizer(&s, &d, &e) == 0, "%s", e.msg);
    EXPECT(s.tok && s.fmt.kind == PROMPT_PLAIN && s.fmt.prefix.n == 0 && s.fmt.suffix.n == 1 &&
               s.fmt.suffix.a[0] == tokenizer_sep_id(t) && tokenizer_sep_id(t) >= 0 &&
               s.eot == tokenizer_eot_id(t) && s.fmt.end == s.eot,
           "set_tokenizer: plain, <|sep|>, <|endoftext|>");
    /* the same tokenizer without a separator token: the configured text */
    Student ns;
    memset(&ns, 0, sizeof ns);
    tokenizer_to_data(t, &ns.td);
    ns.td.sep_id = -1;
    Config c;
    config_init(&c);
    const char *kv[] = {"tokenizer.separator= => ", NULL};
    test_config_set(&c, kv);
    EXPECT(student_set_tokenizer(&ns, &c, &e) == 0, "%s", e.msg);
    if (ns.tok) {
        IntVec want = {0}, got = {0}, in = {0};
        tokenizer_encode(ns.tok, " => ", 4, &want);
        EXPECT(tokenizer_sep_id(ns.tok) < 0 && ns.fmt.suffix.n == want.n && want.n > 0 &&
                   !memcmp(ns.fmt.suffix.a, want.a, sizeof(int) * want.n),
               "text separator: %zu ids", ns.fmt.suffix.n);
        student_prompt(&ns, "the cat", &got);
        tokenizer_encode(ns.tok, "the cat", 7, &in);
        EXPECT(got.n == in.n + want.n && !memcmp(got.a, in.a, sizeof(int) * in.n) &&
                   !memcmp(got.a + in.n, want.a, sizeof(int) * want.n),
               "prompt ids + the text separator's ids");
        intvec_free(&want), intvec_free(&got), intvec_free(&in);
    }
    student_free(&ns);
    /* student.format=chat of a tokenizer without chat tokens: -1 naming the key */
    Student cs;
    memset(&cs, 0, sizeof cs);
    tokenizer_to_data(t, &cs.td);
    const char *kc[] = {"student.format=chat", NULL};
    test_config_set(&c, kc);
    e.msg[0] = 0;
    EXPECT(student_set_tokenizer(&cs, &c, &e) != 0 && strstr(e.msg, "student.format"), "chat without chat tokens: %s",
           e.msg);
    student_free(&cs);
    /* prompt and text through a Student */
    IntVec p = {0}, q = {0};
    student_prompt(&s, "the cat", &p);
    tokenizer_encode(t, "the cat", 7, &q);
    EXPECT(p.n == q.n + 1 && !memcmp(p.a, q.a, sizeof(int) * q.n) && p.a[q.n] == s.fmt.suffix.a[0], "prompt ids + separator");
    intvec_free(&p);
    q.n = 0;
    tokenizer_encode(t, "  the\t cat \n sat  ", 18, &q);
    char *txt = student_text(&s, q.a, (int)q.n);
    EXPECT(!strcmp(txt, "the cat sat"), "white space collapsed and trimmed: \"%s\"", txt);
    free(txt);
    intvec_free(&q);
    /* byte tokens: 'a', the first byte of "é" alone, 'b' */
    int byte_id[256];
    for (int b = 0; b < 256; b++) byte_id[b] = -1;
    for (int id = 0; id < tokenizer_vocab_size(t); id++) {
        size_t len;
        const uint8_t *by = tokenizer_token_bytes(t, id, &len);
        if (by && len == 1 && byte_id[by[0]] < 0) byte_id[by[0]] = id;
    }
    int ids[3] = {byte_id['a'], byte_id[0xC3], byte_id['b']};
    EXPECT(ids[0] >= 0 && ids[1] >= 0 && ids[2] >= 0, "byte tokens exist");
    txt = student_text(&s, ids, 3);
    EXPECT(!strcmp(txt, "a\xEF\xBF\xBD" "b"), "a broken character becomes U+FFFD: \"%s\"", txt);
    free(txt);
    txt = student_text(&s, ids, 0);
    EXPECT(txt && txt[0] == 0, "no ids: \"\"");
    free(txt);
    student_free(&s);
    student_free(NULL);
    tokenizer_destroy(t);
    config_free(&c), config_free(&d);
}

/* ---- checkpoints ---- */
static char *root;
static ModelConfig mc;

static void write_ckpts(const char *run_dir, int64_t const *steps, int n) {
    char *ck = xasprintf("%s/ckpt", run_dir);
    Err e;
    util_mkdir_p(ck, &e);
    Tokenizer *t = small_tokenizer();
    TokenizerData td;
    tokenizer_to_data(t, &td);
    mc = model_config_gpt2(2, 2, 16, tokenizer_vocab_size(t), 32);
    Model m;
    model_init(&m, &mc);
    float *mm = xmalloc(sizeof(float) * m.n_params), *vv = xmalloc(sizeof(float) * m.n_params);
    Provenance prov;
    char *argv[] = {"test_student", NULL};
    prov_collect(&prov, 1, argv, 1);
    for (int k = 0; k < n; k++) {
        model_init_weights(&m, (uint64_t)steps[k]);
        for (size_t i = 0; i < m.n_params; i++) mm[i] = (float)steps[k] + 1e-3f * (float)(i % 97), vv[i] = 1e-4f * (float)steps[k];
        TrainState st = {.step = steps[k], .rng = {1, 2, 3, 4}, .cursor = {0, steps[k]}, .tokens = 100 * steps[k]};
        MetricLog log = {0};
        ValLog val = {0};
        for (int64_t s = 1; s <= steps[k]; s++) metrics_push(&log, s, 5.0 / (double)s, 1e-3, 1, 10 * s, 0.1 * (double)s);
        CHECK(ckpt_write(ck, &m, mm, vv, &st, &td, "{}", &prov, &log, &val, NULL, &e) == 0, "%s", e.msg);
        metrics_free(&log);
    }
    prov_free(&prov);
    free(mm), free(vv);
    model_free(&m);
    tokenizer_data_free(&td);
    tokenizer_destroy(t);
    free(ck);
}

typedef struct {
    const char *run_dir;
    int quarantine, with_opt;
    int64_t want_step; /* -1: expect failure */
} LoadCase;

static int load_child(const Comm *comm, void *v) {
    LoadCase *lc = v;
    Config c;
    char *kv = xasprintf("run.dir=%s", lc->run_dir);
    const char *set[] = {kv, "train.beta1=0.8", "train.beta2=0.9", "train.eps=1e-7", "train.weight_decay=0.3",
                         "train.grad_clip=2.5", NULL};
    config_init(&c);
    test_config_set(&c, set);
    Student s;
    Optim o;
    memset(&o, 0xA5, sizeof o); /* never initialised by the caller: student_load must not free it */
    Err e = {{0}};
    int rc = student_load(&s, &c, comm, lc->with_opt ? &o : NULL, lc->quarantine, &e);
    if (lc->want_step < 0) {
        char *dir = xasprintf("%s/ckpt", lc->run_dir);
        EXPECT(rc != 0 && strstr(e.msg, dir), "no checkpoint: rc %d, %s", rc, e.msg);
        free(dir);
    } else {
        EXPECT(rc == 0, "student_load: %s", e.msg);
        if (rc == 0) {
            char *want = xasprintf("step_%08lld.h5", (long long)lc->want_step);
            EXPECT(s.st.step == lc->want_step && s.path && util_ends_with(s.path, want), "loaded %s (step %lld)",
                   s.path ? s.path : "-", (long long)s.st.step);
            free(want);
            Model ref;
            model_init(&ref, &mc);
            model_init_weights(&ref, (uint64_t)lc->want_step);
            EXPECT(!memcmp(&s.model.cfg, &mc, sizeof mc) &&
                       !memcmp(s.model.params, ref.params, sizeof(float) * ref.n_params),
                   "parameters of the checkpoint");
            model_free(&ref);
            EXPECT(s.st.tokens == 100 * lc->want_step && s.st.cursor.index == lc->want_step && s.log.n == lc->want_step,
                   "state and log");
            EXPECT(s.tok && s.fmt.suffix.n == 1 && s.fmt.suffix.a[0] == tokenizer_sep_id(s.tok) && s.eot == tokenizer_eot_id(s.tok),
                   "tokenizer and separator");
            if (lc->with_opt) {
                EXPECT(o.m[5] == (float)lc->want_step + 5e-3f && o.v[0] == 1e-4f * (float)lc->want_step,
                       "moments of the checkpoint");
                EXPECT(o.beta1 == 0.8 && o.beta2 == 0.9 && o.eps == 1e-7 && o.grad_clip == 2.5,
                       "the train.* AdamW settings");
                EXPECT(o.weight_decay == 0, "no weight decay (train.weight_decay=0.3 is SFT's): %g", o.weight_decay);
                optim_free(&o);
            }
            student_free(&s);
        }
    }
    free(kv);
    config_free(&c);
    return 0;
}

static void scenario(const char *name, int quarantine, int damage, int64_t want_step) {
    char *run = xasprintf("%s/%s", root, name);
    int64_t steps[2] = {5, 9};
    write_ckpts(run, steps, 2);
    char *newest = xasprintf("%s/ckpt/step_00000009.h5", run), *bad = xasprintf("%s.bad", newest);
    if (damage == 1) { /* truncated: not even the metadata reads */
        size_t len;
        free(test_read_file(newest, &len));
        char *tmp = xasprintf("%s.cut", newest);
        test_copy_prefix(newest, tmp, (long)len / 2);
        rename(tmp, newest);
        free(tmp);
    } else if (damage == 2) { /* metadata fine, a parameter tensor missing */
        Err e;
        StoreFile *f = store_open(newest, 1, &e);
        if (f) store_delete(f, "/params/wte", &e);
        store_close(f, NULL);
    }
    LoadCase lc = {run, quarantine, 1, want_step};
    EXPECT(test_with_mpi(load_child, &lc, NULL) == 0, "%s: the child failed", name);
    if (damage) {
        if (quarantine)
            EXPECT(!util_file_exists(newest) && util_file_exists(bad), "%s: the bad checkpoint is renamed .bad", name);
        else
            EXPECT(util_file_exists(newest) && !util_file_exists(bad), "%s: quarantine 0 renames nothing", name);
    } else {
        EXPECT(util_file_exists(newest) && !util_file_exists(bad), "%s: a good checkpoint stays", name);
    }
    free(run), free(newest), free(bad);
}

/* ---- generation on 1 and 2 ranks ---- */
static int gen_write(const Comm *comm, const char *run_dir, const char *out_path) {
    Config c;
    config_init(&c);
    char *kv = xasprintf("run.dir=%s", run_dir);
    const char *set[] = {kv, NULL};
    test_config_set(&c, set);
    Student s;
    Err e;
    if (student_load(&s, &c, comm, NULL, 0, &e) != 0) return 3;
    GenOptions o;
    gen_options_init(&o);
    o.mode = GEN_SAMPLE, o.k = 2, o.max_new = 6, o.temperature = 1.0, o.top_p = 1.0, o.seed = 11;
    char *texts[5] = {"the cat", "a dog", "the log", "caf\xC3\xA9", "sat on"};
    char **outs = NULL;
    int *tl = NULL;
    student_generate(&s, &o, comm, texts, 5, &outs, &tl);
    int rc = 0;
    if (comm->rank == 0) {
        FILE *f = fopen(out_path, "w");
        if (!f) rc = 4;
        for (int i = 0; f && i < 10; i++) fprintf(f, "%d\t%s\n", tl[i], outs[i]);
        if (f) fclose(f);
        for (int i = 0; i < 10; i++) free(outs[i]);
        free(outs), free(tl);
    } else if (outs || tl) {
        rc = 5;
    }
    student_free(&s);
    config_free(&c);
    free(kv);
    return rc;
}

typedef struct {
    const char *run, *out;
} GenCase;
static int gen_child(const Comm *comm, void *v) {
    GenCase *g = v;
    return gen_write(comm, g->run, g->out);
}

int main(int argc, char **argv) {
    if (test_under_mpirun() && argc == 4 && !strcmp(argv[1], "--gen")) {
        Comm comm;
        comm_init(&comm, &argc, &argv);
        int rc = gen_write(&comm, argv[2], argv[3]);
        comm_finalize();
        return rc;
    }
    tokenizer_side();
    root = test_tmpdir("student");
    scenario("healthy", 1, 0, 9);
    scenario("truncated-q1", 1, 1, 5);
    scenario("truncated-q0", 0, 1, 5);
    scenario("state-q1", 1, 2, 5);
    scenario("state-q0", 0, 2, 5);
    char *empty = xasprintf("%s/empty", root);
    LoadCase lc = {empty, 1, 1, -1};
    EXPECT(test_with_mpi(load_child, &lc, NULL) == 0, "no checkpoint: the child failed");
    LoadCase nopt = {NULL, 1, 0, 9};
    char *r2 = xasprintf("%s/healthy", root);
    nopt.run_dir = r2;
    EXPECT(test_with_mpi(load_child, &nopt, NULL) == 0, "student_load without an optimizer");
    /* the same samples on 1 and 2 ranks */
    char *o1 = xasprintf("%s/gen1.txt", root), *o2 = xasprintf("%s/gen2.txt", root);
    GenCase g = {r2, o1};
    EXPECT(test_with_mpi(gen_child, &g, NULL) == 0, "generate on one rank");
    const char *args[] = {"--gen", r2, o2, NULL};
    char *out = NULL;
    int rc = test_mpirun_self(2, args, &out, NULL);
    EXPECT(rc == 0, "generate on two ranks: %s", out);
    free(out);
    char *a = test_read_file(o1, NULL), *b = test_read_file(o2, NULL);
    int lines = 0;
    for (char *p = a; p && *p; p++) lines += *p == '\n';
    EXPECT(a && b && !strcmp(a, b) && lines == 10, "outputs differ between 1 and 2 ranks (%d lines)", lines);
    free(a), free(b), free(o1), free(o2), free(r2), free(empty);
    test_rm_rf(root);
    free(root);
    return test_summary();
}

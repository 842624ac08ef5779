/* test_generate -- `hdistill generate` (stages/generate.h): generate_main
 * run in forked children (it reads stdin, writes stdout and ends the
 * process's kernel threads), on a run directory holding a random 2-layer
 * GPT-2 of 32 positions with eval.beam 3, eval.max_new 8, critique.k 2 and
 * critique.max_new 6 in its stored configuration.  The outputs are compared
 * with the library's decoding (infer.h + student_decode, the decoding of
 * evaluation) and with what the header documents:
 *  - default beam search: one line per input, the best beam; the same from a
 *    run directory, its checkpoint file, --file and stdin; --beam N and
 *    --set eval.beam=N; --opt=value;
 *  - --json: one object per input with input, prompt_ids (the prompt in the
 *    run's format), outputs[] of text, logprob = the sum of the tokens'
 *    log-probabilities, finish_reason "stop" (the end token last in tokens)
 *    or "length" (max_new tokens), token ids and texts;
 *  - --sample: k lines per input, reproducible for a seed, equal whether the
 *    inputs come from --input, --file or stdin (input i seeds as input i),
 *    another seed another draw; --temperature 0 is the argmax (k equal
 *    greedy outputs); --max-new 1 gives one token;
 *  - input lines: a trailing \r dropped, an empty line an input;
 *  - --help exits 0 with the usage on stdout;
 *  - bad arguments and unreadable sources exit 2 with one line on stderr
 *    ("error: generate: ...") naming the option or path, nothing on stdout;
 *    an output that cannot be written (stdout on /dev/full) exits 1. */
#include <cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "base/util.h"
#include "io/ckpt.h"
#include "stages/generate.h"
#include "stages/infer.h"
#include "test.h"
#include "test_run.h"

static char *root, *run_dir, *ckpt_file;

/* ---- the run -------------------------------------------------------------------------- */


/* run_dir/ckpt/step_00000005.h5: a random 2-layer GPT-2 of 32 positions, its configuration stored */
static void write_run(void) {
    const char *kv[] = {"eval.beam=3", "eval.max_new=8", "critique.k=2", "critique.max_new=6", "run.threads=1", NULL};
    ckpt_file = test_write_run(run_dir, 5, 11, kv, "test_generate");
}

/* ---- the library's answers (the reference) ---------------------------------------------- */

static Infer REF;

/* The outputs of texts[0..n) decoded as mode with the configuration's options and the changes given;
 * k lines per input, as generate prints them. */
static StrVec reference(GenMode mode, char **texts, int n, int beam, int max_new, uint64_t seed) {
    GenOptions o;
    infer_gen_options(&REF, mode == GEN_GREEDY ? GEN_SAMPLE : mode, &o);
    o.mode = mode;
    if (beam) o.beam = beam;
    if (max_new) o.max_new = max_new;
    o.seed = seed;
    int k = mode == GEN_GREEDY ? 1 : o.k;
    GenSeq *g = xcalloc((size_t)(n * k), sizeof *g);
    student_decode(&REF.s, &o, texts, n, 0, NULL, g);
    StrVec out = {0};
    for (int i = 0; i < n * k; i++) {
        char *t = student_text(&REF.s, g[i].ids, g[i].n);
        strvec_push(&out, t, (size_t)-1);
        free(t);
        gen_seq_free(&g[i]);
    }
    free(g);
    return out;
}

/* ---- running generate --------------------------------------------------------------------- */

typedef struct {
    int argc;
    char *argv[40];
    const char *in;  /* stdin from this file (NULL: /dev/null) */
    const char *out; /* stdout to this file instead of a capture (/dev/full) */
} Call;

typedef struct {
    int rc;
    char *out, *err;
    StrVec lines;
} Result;

static int run_generate(void *v) {
    Call *c = v;
    int fd = open(c->in ? c->in : "/dev/null", O_RDONLY);
    if (fd < 0) return 98;
    dup2(fd, 0), close(fd);
    if (c->out) {
        fd = open(c->out, O_WRONLY);
        if (fd < 0) return 98;
        dup2(fd, 1), close(fd);
    }
    return generate_main(c->argc, c->argv);
}

/* Runs `hdistill generate ARGS...` (NULL-terminated) with stdin from in. */
static Result gen(const char *in, const char *stdout_to, ...) {
    Call c = {.in = in, .out = stdout_to};
    c.argv[c.argc++] = "hdistill";
    c.argv[c.argc++] = "generate";
    va_list ap;
    va_start(ap, stdout_to);
    for (const char *a; (a = va_arg(ap, const char *)) && c.argc < 39;) c.argv[c.argc++] = (char *)a;
    va_end(ap);
    c.argv[c.argc] = NULL;
    char op[600], ep[600];
    snprintf(op, sizeof op, "%s/stdout", root), snprintf(ep, sizeof ep, "%s/stderr", root);
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) abort();
    if (pid == 0) {
        int o = open(op, O_WRONLY | O_CREAT | O_TRUNC, 0644), e = open(ep, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0) _exit(97);
        dup2(o, 1), dup2(e, 2), close(o), close(e);
        log_set_quiet(0); /* as the program runs it */
        int rc = run_generate(&c);
        fflush(stdout), fflush(stderr);
        _exit(rc);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    Result r = {test_status_(st), test_read_file(op, NULL), test_read_file(ep, NULL), {0}};
    if (!r.out) r.out = strdup("");
    if (!r.err) r.err = strdup("");
    for (char *p = r.out; *p;) {
        char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        strvec_push(&r.lines, p, len);
        p += len + (nl ? 1 : 0);
    }
    return r;
}

static void result_free(Result *r) {
    free(r->out), free(r->err);
    strvec_free(&r->lines);
}

static int same_lines(const StrVec *a, const StrVec *b) {
    if (a->n != b->n) return 0;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->a[i], b->a[i])) return 0;
    return 1;
}

static int one_line(const char *s) {
    const char *nl = strchr(s, '\n');
    return *s && nl && !nl[1];
}

static char *file_of(const char *name, const char *text) {
    char *p = xasprintf("%s/%s", root, name);
    CHECK(test_write_file(p, text, -1) == 0, "write %s", p);
    return p;
}

/* ---- beam search (the default) --------------------------------------------------------------- */

static char *IN[] = {"the cat sat", "a dog on the log", "caf\xC3\xA9 au lait"};

static void beam(void) {
    StrVec want = reference(GEN_BEAM, IN, 3, 0, 0, 0);
    Result r = gen(NULL, NULL, run_dir, "--input", IN[0], "--input", IN[1], "--input", IN[2], NULL);
    printf("beam outputs:\n%s", r.out);
    EXPECT(r.rc == 0 && r.err[0] == 0 && same_lines(&r.lines, &want) && r.lines.n == 3,
           "default: beam 3, the best output of each input, one line each (rc %d, %zu lines)\n%s%s", r.rc, r.lines.n,
           r.out, r.err);
    result_free(&r);
    r = gen(NULL, NULL, ckpt_file, "--input", IN[0], "--input", IN[1], "--input", IN[2], NULL);
    EXPECT(r.rc == 0 && same_lines(&r.lines, &want), "the checkpoint file: the same outputs");
    result_free(&r);
    char *f = file_of("inputs.txt", "the cat sat\na dog on the log\ncaf\xC3\xA9 au lait\n");
    r = gen(NULL, NULL, run_dir, "--file", f, NULL);
    EXPECT(r.rc == 0 && same_lines(&r.lines, &want), "--file: the same outputs");
    result_free(&r);
    r = gen(f, NULL, run_dir, NULL);
    EXPECT(r.rc == 0 && same_lines(&r.lines, &want), "stdin: the same outputs");
    result_free(&r);
    strvec_free(&want);

    want = reference(GEN_BEAM, IN, 3, 1, 4, 0);
    r = gen(NULL, NULL, run_dir, "--beam=1", "--max-new", "4", "--file", f, NULL);
    Result r2 = gen(f, NULL, run_dir, "--set", "eval.beam=1", "--set=eval.max_new=4", NULL);
    EXPECT(r.rc == 0 && same_lines(&r.lines, &want) && r2.rc == 0 && same_lines(&r2.lines, &want),
           "--beam=1 --max-new 4 = --set eval.beam=1 --set=eval.max_new=4 = beam 1 of at most 4 tokens");
    result_free(&r), result_free(&r2), strvec_free(&want);
    free(f);
}

/* ---- --json ------------------------------------------------------------------------------------ */

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

/* Checks one output object against the documented fields; returns its text (borrowed) or NULL. */
static const char *check_output(const cJSON *o, int max_new, const char *what) {
    const cJSON *text = get(o, "text"), *lp = get(o, "logprob"), *fr = get(o, "finish_reason"), *tk = get(o, "tokens");
    if (!cJSON_IsString(text) || !cJSON_IsNumber(lp) || !cJSON_IsString(fr) || !cJSON_IsArray(tk)) {
        EXPECT(0, "%s: an output needs text, logprob, finish_reason and tokens", what);
        return NULL;
    }
    int nt = cJSON_GetArraySize(tk), stop = !strcmp(fr->valuestring, "stop"), ok_ids = 1;
    double sum = 0;
    for (int j = 0; j < nt; j++) {
        const cJSON *t = cJSON_GetArrayItem(tk, j);
        const cJSON *id = get(t, "id"), *tt = get(t, "text"), *tl = get(t, "logprob");
        ok_ids &= cJSON_IsNumber(id) && cJSON_IsString(tt) && cJSON_IsNumber(tl) && tl->valuedouble <= 0 &&
                  id->valueint >= 0 && id->valueint < tokenizer_vocab_size(REF.s.tok);
        if (!ok_ids) break;
        sum += tl->valuedouble;
        int is_eot = id->valueint == REF.s.eot;
        ok_ids &= is_eot == (stop && j == nt - 1); /* the end token only last, and only when "stop" */
        ByteBuf b = {0};
        infer_token_text(&REF, id->valueint, &b, NULL);
        ok_ids &= !strcmp(b.a ? b.a : "", tt->valuestring);
        bytebuf_free(&b);
    }
    EXPECT(ok_ids, "%s: token ids in range with their texts, the end token last iff stop", what);
    EXPECT(stop || (!strcmp(fr->valuestring, "length") && nt == max_new),
           "%s: finish_reason %s with %d tokens (max_new %d)", what, fr->valuestring, nt, max_new);
    EXPECT(fabs(sum - lp->valuedouble) < 1e-4, "%s: logprob %.9g = sum of the tokens' %.9g", what, lp->valuedouble, sum);
    /* the text is the tokens' text (without the end token) as generate prints it */
    int *ids = xcalloc((size_t)nt + 1, sizeof(int));
    for (int j = 0; j < nt; j++) ids[j] = get(cJSON_GetArrayItem(tk, j), "id")->valueint;
    char *want = student_text(&REF.s, ids, nt - stop);
    EXPECT(!strcmp(want, text->valuestring), "%s: text '%s' = the tokens' '%s'", what, text->valuestring, want);
    free(want), free(ids);
    return text->valuestring;
}

static void json(void) {
    StrVec want = reference(GEN_BEAM, IN, 3, 0, 0, 0);
    Result r = gen(NULL, NULL, run_dir, "--json", "--input", IN[0], "--input", IN[1], "--input", IN[2], NULL);
    EXPECT(r.rc == 0 && r.lines.n == 3, "--json: one line per input (rc %d, %zu lines)", r.rc, r.lines.n);
    for (size_t i = 0; i < r.lines.n && i < 3; i++) {
        cJSON *o = cJSON_Parse(r.lines.a[i]);
        const cJSON *in = get(o, "input"), *pids = get(o, "prompt_ids"), *outs = get(o, "outputs");
        EXPECT(o && cJSON_IsString(in) && !strcmp(in->valuestring, IN[i]), "line %zu: input", i);
        IntVec p = {0};
        student_prompt(&REF.s, IN[i], &p);
        int same = cJSON_IsArray(pids) && cJSON_GetArraySize(pids) == (int)p.n;
        for (size_t j = 0; same && j < p.n; j++) same &= cJSON_GetArrayItem(pids, (int)j)->valueint == p.a[j];
        EXPECT(same, "line %zu: prompt_ids = the prompt in the run's format (%zu ids)", i, p.n);
        intvec_free(&p);
        EXPECT(cJSON_IsArray(outs) && cJSON_GetArraySize(outs) == 1, "line %zu: beam search has one output", i);
        char what[64];
        snprintf(what, sizeof what, "beam input %zu", i);
        const char *t = cJSON_IsArray(outs) ? check_output(cJSON_GetArrayItem(outs, 0), 8, what) : NULL;
        EXPECT(t && !strcmp(t, want.a[i]), "line %zu: the text of the plain output", i);
        cJSON_Delete(o);
    }
    result_free(&r), strvec_free(&want);

    /* sampling: k outputs per input; --max-new 1: one token each */
    r = gen(NULL, NULL, run_dir, "--json", "--sample", "--k", "4", "--seed", "9", "--input", IN[1], NULL);
    cJSON *o = r.lines.n == 1 ? cJSON_Parse(r.lines.a[0]) : NULL;
    EXPECT(o && cJSON_GetArraySize(get(o, "outputs")) == 4, "--json --sample --k 4: four outputs\n%s%s", r.out, r.err);
    for (int j = 0; o && j < cJSON_GetArraySize(get(o, "outputs")); j++)
        check_output(cJSON_GetArrayItem(get(o, "outputs"), j), 6, "sample");
    cJSON_Delete(o), result_free(&r);
    r = gen(NULL, NULL, run_dir, "--json", "--max-new", "1", "--input", IN[0], "--input", IN[2], NULL);
    int ones = r.rc == 0 && r.lines.n == 2;
    for (size_t i = 0; ones && i < r.lines.n; i++) {
        o = cJSON_Parse(r.lines.a[i]);
        const cJSON *out0 = cJSON_GetArrayItem(get(o, "outputs"), 0);
        ones &= out0 && cJSON_GetArraySize(get(out0, "tokens")) == 1 && check_output(out0, 1, "max-new 1") != NULL;
        cJSON_Delete(o);
    }
    EXPECT(ones, "--max-new 1: one token per output\n%s%s", r.out, r.err);
    result_free(&r);
}

/* ---- sampling ------------------------------------------------------------------------------------ */

static void sampling(void) {
    char *f = file_of("two.txt", "the cat sat\na dog on the log\n");
    Result a = gen(NULL, NULL, run_dir, "--sample", "--k", "3", "--temperature", "2", "--seed", "5", "--input", IN[0],
                   "--input", IN[1], NULL);
    Result b = gen(NULL, NULL, run_dir, "--sample", "--k=3", "--temperature=2", "--seed=5", "--file", f, NULL);
    Result c = gen(f, NULL, run_dir, "--sample", "--k", "3", "--temperature", "2", "--seed", "5", NULL);
    Result d = gen(NULL, NULL, run_dir, "--sample", "--k", "3", "--temperature", "2", "--seed", "6", "--input", IN[0],
                   "--input", IN[1], NULL);
    printf("samples (seed 5, then 6):\n%s%s", a.out, d.out);
    EXPECT(a.rc == 0 && a.lines.n == 6, "--sample --k 3: three lines per input (%zu)\n%s", a.lines.n, a.err);
    EXPECT(same_lines(&a.lines, &b.lines) && same_lines(&a.lines, &c.lines),
           "the same draws from --input, --file and stdin (input i seeds as input i)");
    EXPECT(d.rc == 0 && d.lines.n == 6 && !same_lines(&a.lines, &d.lines), "another seed, other draws");
    GenOptions o;
    infer_gen_options(&REF, GEN_SAMPLE, &o);
    o.k = 3, o.temperature = 2, o.seed = 5;
    GenSeq g[6];
    student_decode(&REF.s, &o, IN, 2, 0, NULL, g);
    int same = a.lines.n == 6;
    for (int i = 0; i < 6; i++) {
        char *t = student_text(&REF.s, g[i].ids, g[i].n);
        same &= i < (int)a.lines.n && !strcmp(t, a.lines.a[i]);
        free(t), gen_seq_free(&g[i]);
    }
    EXPECT(same, "the samples of the critique rounds' decoder with the same seed");
    result_free(&a), result_free(&b), result_free(&c), result_free(&d);

    /* temperature 0: the argmax, k times */
    StrVec want = reference(GEN_GREEDY, IN, 3, 0, 0, 0);
    a = gen(NULL, NULL, run_dir, "--sample", "--temperature", "0", "--k", "2", "--input", IN[0], "--input", IN[1],
            "--input", IN[2], NULL);
    int argmax = a.rc == 0 && a.lines.n == 6;
    for (size_t i = 0; argmax && i < 6; i++) argmax &= !strcmp(a.lines.a[i], want.a[i / 2]);
    EXPECT(argmax, "--temperature 0: every sample the greedy output\n%s", a.out);
    result_free(&a), strvec_free(&want);
    free(f);
}

/* ---- input lines --------------------------------------------------------------------------------- */

static void input_lines(void) {
    char *f = file_of("crlf.txt", "the cat sat\r\n\na dog on the log");
    Result r = gen(NULL, NULL, run_dir, "--json", "--file", f, NULL);
    const char *want[] = {"the cat sat", "", "a dog on the log"};
    int ok = r.rc == 0 && r.lines.n == 3;
    for (size_t i = 0; ok && i < 3; i++) {
        cJSON *o = cJSON_Parse(r.lines.a[i]);
        ok &= o && cJSON_IsString(get(o, "input")) && !strcmp(get(o, "input")->valuestring, want[i]);
        cJSON_Delete(o);
    }
    EXPECT(ok, "\\r dropped, an empty line an input, a last line without \\n read (%zu lines)\n%s%s", r.lines.n, r.out, r.err);
    result_free(&r);
    char *empty = file_of("empty.txt", "");
    r = gen(NULL, NULL, run_dir, "--file", empty, NULL);
    EXPECT(r.rc == 0 && !r.out[0] && !r.err[0], "an empty file: nothing to do, exit 0 (%d)", r.rc);
    result_free(&r);
    free(f), free(empty);
}

/* ---- errors -------------------------------------------------------------------------------------- */

static void check_error(Result r, int code, const char *want, const char *what) {
    EXPECT(r.rc == code && one_line(r.err) && !strncmp(r.err, "error: generate: ", 17) && strstr(r.err, want) &&
               !r.out[0],
           "%s: exit %d (want %d), stderr '%s' (want one line with '%s'), stdout '%s'", what, r.rc, code, r.err, want,
           r.out);
    result_free(&r);
}

static void errors(void) {
    Result r = gen(NULL, NULL, "--help", NULL);
    EXPECT(r.rc == 0 && !strncmp(r.out, "usage: hdistill generate", 24) && strstr(r.out, "--json") && !r.err[0],
           "--help: usage on stdout, exit 0");
    result_free(&r);
    r = gen(NULL, NULL, run_dir, "-h", "--beam", "banana", NULL);
    EXPECT(r.rc == 0 && !strncmp(r.out, "usage:", 6), "-h before a bad option: the usage");
    result_free(&r);

    check_error(gen(NULL, NULL, "--input", "x", NULL), 2, "the student is missing", "no source");
    check_error(gen(NULL, NULL, run_dir, ckpt_file, NULL), 2, "more than one source", "two sources");
    check_error(gen(NULL, NULL, run_dir, "--frobnicate", "1", NULL), 2, "unknown option '--frobnicate'", "unknown option");
    check_error(gen(NULL, NULL, run_dir, "--beam", NULL), 2, "--beam needs a value", "a value missing");
    check_error(gen(NULL, NULL, run_dir, "--beam", "0", NULL), 2, "--beam 0", "beam 0");
    check_error(gen(NULL, NULL, run_dir, "--beam", "65", NULL), 2, "--beam 65", "beam 65");
    check_error(gen(NULL, NULL, run_dir, "--beam", "2.5", NULL), 2, "not an integer", "beam 2.5");
    check_error(gen(NULL, NULL, run_dir, "--beam", "3x", NULL), 2, "--beam 3x", "beam 3x");
    check_error(gen(NULL, NULL, run_dir, "--sample", "--k", "0", NULL), 2, "--k 0", "k 0");
    check_error(gen(NULL, NULL, run_dir, "--sample", "--temperature", "11", NULL), 2, "--temperature 11", "temperature 11");
    check_error(gen(NULL, NULL, run_dir, "--sample", "--temperature", "-0.5", NULL), 2, "--temperature -0.5", "negative temperature");
    check_error(gen(NULL, NULL, run_dir, "--sample", "--top-p", "0", NULL), 2, "--top-p 0", "top-p 0");
    check_error(gen(NULL, NULL, run_dir, "--sample", "--top-p", "1.5", NULL), 2, "--top-p 1.5", "top-p 1.5");
    check_error(gen(NULL, NULL, run_dir, "--seed", "-1", NULL), 2, "--seed -1", "negative seed");
    check_error(gen(NULL, NULL, run_dir, "--seed", "99999999999999999999999", NULL), 2, "--seed", "seed beyond 64 bits");
    check_error(gen(NULL, NULL, run_dir, "--max-new", "0", NULL), 2, "--max-new 0", "max-new 0");
    check_error(gen(NULL, NULL, run_dir, "--k", "2", NULL), 2, "need --sample", "--k without --sample");
    check_error(gen(NULL, NULL, run_dir, "--temperature", "1", NULL), 2, "need --sample", "--temperature without --sample");
    check_error(gen(NULL, NULL, run_dir, "--beam", "2", "--sample", NULL), 2, "--beam and --sample", "beam and sample");
    check_error(gen(NULL, NULL, run_dir, "--input", "x", "--file", "y", NULL), 2, "--input and --file", "input and file");
    /* the model's positions: 32, and the prompt needs one */
    check_error(gen(NULL, NULL, run_dir, "--max-new", "32", "--input", "x", NULL), 2, "--max-new 31 or less", "max-new 32");
    check_error(gen(NULL, NULL, run_dir, "--set", "eval.max_new=40", "--input", "x", NULL), 2, "eval.max_new 40",
                "eval.max_new beyond the positions");
    /* sources and files */
    char *missing = xasprintf("%s/nothere", root);
    check_error(gen(NULL, NULL, missing, "--input", "x", NULL), 2, missing, "a missing source");
    char *junk = file_of("junk.h5", "not hdf5 at all");
    check_error(gen(NULL, NULL, junk, "--input", "x", NULL), 2, junk, "a file that is not a checkpoint");
    check_error(gen(NULL, NULL, run_dir, "--file", missing, NULL), 2, missing, "a missing --file");
    check_error(gen(NULL, NULL, run_dir, "--set", "eval.bogus=1", "--input", "x", NULL), 2, "eval.bogus", "a bad --set key");
    check_error(gen(NULL, NULL, run_dir, "--set", "student.format=rhyme", "--input", "x", NULL), 2, "student.format",
                "a bad --set value");
    /* an output that cannot be written */
    r = gen(NULL, "/dev/full", run_dir, "--input", IN[0], NULL);
    EXPECT(r.rc == 1 && one_line(r.err) && strstr(r.err, "cannot write the outputs"),
           "stdout on /dev/full: exit %d, '%s'", r.rc, r.err);
    result_free(&r);
    free(missing), free(junk);
}

int main(void) {
    log_set_quiet(1);
    root = test_tmpdir("test_generate");
    run_dir = xasprintf("%s/run", root);
    write_run();
    Err e;
    char *one[] = {"run.threads=1"};
    CHECK(infer_open(&REF, run_dir, one, 1, &e) == 0, "%s", e.msg);
    beam();
    json();
    sampling();
    input_lines();
    errors();
    infer_close(&REF);
    par_shutdown();
    test_rm_rf(root);
    free(root), free(run_dir), free(ckpt_file);
    return test_summary();
}

/* generate -- `hdistill generate`; see include/stages/generate.h and
 * docs/generate.md. */
#include "stages/generate.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stages/infer.h"

#define CHUNK 64 /* inputs decoded together when reading a file or a pipe */

static const char GENERATE_HELP[] =
    "usage: hdistill generate RUN_DIR|CHECKPOINT.h5|HF_DIR [--input TEXT]... [--file FILE]\n"
    "                         [--beam N | --sample [--k N] [--temperature T] [--top-p P]]\n"
    "                         [--seed S] [--max-new N] [--json] [--set section.key=value]...\n"
    "\n"
    "Prints the student's paraphrases of each input: the student of RUN_DIR's newest\n"
    "readable checkpoint (or of the checkpoint given, or of a Hugging Face model directory\n"
    "as model.init_from reads one), each input put to it in the run's prompt format\n"
    "(student.format, student.instruction, tokenizer.separator).  One process; no mpirun.\n"
    "\n"
    "  --input TEXT      an input (repeatable); else --file FILE (one input per line);\n"
    "                    else the lines of stdin\n"
    "  --beam N          beam search of width N, the best output per input (default: beam\n"
    "                    search with eval.beam and eval.max_new, as evaluation decodes)\n"
    "  --sample          sampling: --k outputs per input (critique.k), --temperature T\n"
    "                    (critique.temperature), --top-p P (critique.top_p), at most\n"
    "                    critique.max_new tokens, as the critique rounds sample\n"
    "  --seed S          sampling seed (default 0); input i (from 0) draws as input i of a split\n"
    "  --max-new N       tokens generated at most (the end token included)\n"
    "  --json            one JSON object per input: {\"input\",\"prompt_ids\",\"outputs\":[{\"text\",\n"
    "                    \"logprob\",\"finish_reason\",\"tokens\":[{\"id\",\"text\",\"logprob\"}]}]}\n"
    "  --set k=v         change the configuration read with the student (repeatable), e.g.\n"
    "                    student.format=chat for a Hugging Face directory of a chat student\n"
    "\n"
    "Output: beam search one line per input, sampling k lines per input (--json: one line\n"
    "per input).  Exit codes: 0 done, 1 output error, 2 bad arguments or a source that\n"
    "cannot be read (docs/generate.md).\n";

typedef struct {
    const char *src, *file;
    StrVec inputs, sets;
    int beam, sample, k, max_new, json;
    int has_temperature, has_top_p, has_k;
    double temperature, top_p;
    uint64_t seed;
} GenArgs;

static int parse_num(const char *opt, const char *v, double lo, double hi, double *out, Err *e) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!*v || *end || errno || !(x >= lo && x <= hi)) return err_set(e, "%s %s: not a number in [%g, %g]", opt, v, lo, hi);
    *out = x;
    return 0;
}

static int parse_int(const char *opt, const char *v, int lo, int hi, int *out, Err *e) {
    double x = 0;
    if (parse_num(opt, v, lo, hi, &x, e) != 0 || x != floor(x)) return err_set(e, "%s %s: not an integer in [%d, %d]", opt, v, lo, hi);
    *out = (int)x;
    return 0;
}

/* the options with a value */
enum { OPT_INPUT, OPT_FILE, OPT_SET, OPT_BEAM, OPT_K, OPT_MAX_NEW, OPT_TEMPERATURE, OPT_TOP_P, OPT_SEED };
static const char *const VALUED[] = {
    [OPT_INPUT] = "--input", [OPT_FILE] = "--file", [OPT_SET] = "--set", [OPT_BEAM] = "--beam", [OPT_K] = "--k",
    [OPT_MAX_NEW] = "--max-new", [OPT_TEMPERATURE] = "--temperature", [OPT_TOP_P] = "--top-p", [OPT_SEED] = "--seed",
    NULL};

/* option `opt` (an index in VALUED) with the value v; -1 with e set */
static int parse_valued(GenArgs *a, int opt, const char *v, Err *e) {
    const char *name = VALUED[opt];
    switch (opt) {
    case OPT_INPUT: strvec_push(&a->inputs, v, (size_t)-1); break;
    case OPT_FILE: a->file = v; break;
    case OPT_SET: strvec_push(&a->sets, v, (size_t)-1); break;
    case OPT_BEAM: return parse_int(name, v, 1, 64, &a->beam, e);
    case OPT_K: return a->has_k = 1, parse_int(name, v, 1, 64, &a->k, e);
    case OPT_MAX_NEW: return parse_int(name, v, 1, 1 << 20, &a->max_new, e);
    case OPT_TEMPERATURE: return a->has_temperature = 1, parse_num(name, v, 0, 10, &a->temperature, e);
    case OPT_TOP_P:
        a->has_top_p = 1;
        if (parse_num(name, v, 0, 1, &a->top_p, e) != 0 || !(a->top_p > 0)) return err_set(e, "--top-p %s: not in (0, 1]", v);
        break;
    case OPT_SEED: {
        char *end;
        errno = 0;
        unsigned long long x = strtoull(v, &end, 10);
        if (!*v || *end || errno || v[0] == '-') return err_set(e, "--seed %s: not a non-negative integer", v);
        a->seed = x;
        break;
    }
    }
    return 0;
}

/* 1 for --help, 0, or -1 with e set */
static int parse_args(int argc, char **argv, GenArgs *a, Err *e) {
    memset(a, 0, sizeof *a);
    for (int i = 2; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) return 1;
        if (!strcmp(s, "--json")) { a->json = 1; continue; }
        if (!strcmp(s, "--sample")) { a->sample = 1; continue; }
        if (s[0] != '-' || !s[1]) {
            if (a->src) return err_set(e, "more than one source ('%s' and '%s')", a->src, s);
            a->src = s;
            continue;
        }
        const char *v;
        int opt = util_parse_option(argc, argv, &i, VALUED, &v, " (hint: hdistill generate --help)", e);
        if (opt < 0 || parse_valued(a, opt, v, e) != 0) return -1;
    }
    if (!a->src) return err_set(e, "the student is missing: RUN_DIR, CHECKPOINT.h5 or HF_DIR (hint: hdistill generate --help)");
    if (a->file && a->inputs.n) return err_set(e, "--input and --file: give one of them");
    if (a->sample && a->beam) return err_set(e, "--beam and --sample: give one of them");
    if (!a->sample && (a->has_k || a->has_temperature || a->has_top_p))
        return err_set(e, "--k, --temperature and --top-p need --sample");
    return 0;
}

/* The decoding options: the configuration's, then the arguments'. */
static int gen_options(const Infer *m, const GenArgs *a, GenOptions *o, Err *e) {
    infer_gen_options(m, a->sample ? GEN_SAMPLE : GEN_BEAM, o);
    if (a->beam) o->beam = a->beam;
    if (a->has_k) o->k = a->k;
    if (a->has_temperature) o->temperature = a->temperature;
    if (a->has_top_p) o->top_p = a->top_p;
    if (a->max_new) o->max_new = a->max_new;
    o->seed = a->seed;
    int P = m->s.model.cfg.max_seq_len;
    if (o->max_new >= P)
        return err_set(e, "%s %d: the model has %d positions, and the prompt needs at least one (hint: "
                          "--max-new %d or less)", a->max_new ? "--max-new" : a->sample ? "critique.max_new" : "eval.max_new",
                       o->max_new, P, P - 1);
    return 0;
}

/* One output as JSON: text, logprob, finish_reason, the tokens scored again. */
static cJSON *output_json(Infer *m, const IntVec *prompt, const GenSeq *g) {
    cJSON *o = cJSON_CreateObject();
    char *text = student_text(&m->s, g->ids, g->n);
    cJSON_AddStringToObject(o, "text", text);
    free(text);
    cJSON_AddNumberToObject(o, "logprob", g->logp);
    cJSON_AddStringToObject(o, "finish_reason", g->finished ? "stop" : "length");
    int nt = g->n + (g->finished ? 1 : 0);
    InferToken *tk = xcalloc((size_t)nt + 1, sizeof *tk);
    infer_score(m, prompt->a, (int)prompt->n, g->ids, g->n, g->finished, 0, tk);
    cJSON *arr = cJSON_AddArrayToObject(o, "tokens");
    for (int j = 0; j < nt; j++) {
        cJSON *t = cJSON_CreateObject();
        ByteBuf b = {0};
        infer_token_text(m, tk[j].id, &b, NULL);
        cJSON_AddNumberToObject(t, "id", tk[j].id);
        cJSON_AddStringToObject(t, "text", b.a);
        cJSON_AddNumberToObject(t, "logprob", tk[j].logprob);
        cJSON_AddItemToArray(arr, t);
        bytebuf_free(&b);
    }
    free(tk);
    return o;
}

/* Decodes texts[0..n) (global indices first..) and prints them. */
static int decode_chunk(Infer *m, const GenOptions *o, char **texts, int n, int64_t first, int json) {
    int k = o->mode == GEN_GREEDY ? 1 : o->k;
    GenSeq *g = xcalloc((size_t)n * (size_t)k + 1, sizeof *g);
    IntVec *pr = xcalloc((size_t)n + 1, sizeof *pr);
    student_decode(&m->s, o, texts, n, first, pr, g);
    for (int i = 0; i < n; i++) {
        if (json) {
            cJSON *obj = cJSON_CreateObject(), *outs;
            cJSON_AddStringToObject(obj, "input", texts[i]);
            cJSON_AddItemToObject(obj, "prompt_ids", cJSON_CreateIntArray(pr[i].a, (int)pr[i].n));
            outs = cJSON_AddArrayToObject(obj, "outputs");
            for (int j = 0; j < k; j++) cJSON_AddItemToArray(outs, output_json(m, &pr[i], &g[(size_t)i * k + j]));
            char *s = cJSON_PrintUnformatted(obj);
            CHECK(s, "cJSON_PrintUnformatted failed");
            printf("%s\n", s);
            free(s);
            cJSON_Delete(obj);
        } else {
            for (int j = 0; j < k; j++) {
                const GenSeq *q = &g[(size_t)i * k + j];
                char *t = student_text(&m->s, q->ids, q->n);
                printf("%s\n", t);
                free(t);
            }
        }
        intvec_free(&pr[i]);
    }
    for (int i = 0; i < n * k; i++) gen_seq_free(&g[i]);
    free(g), free(pr);
    return fflush(stdout) == 0 && !ferror(stdout) ? 0 : -1;
}

/* Lines of f, decoded CHUNK at a time (one at a time from a terminal). */
static int decode_stream(Infer *m, const GenOptions *o, FILE *f, int json) {
    int chunk = isatty(fileno(f)) ? 1 : CHUNK, rc = 0;
    int64_t first = 0;
    StrVec v = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while (rc == 0) {
        len = getline(&line, &cap, f);
        if (len >= 0) {
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
            strvec_push(&v, line, (size_t)len);
        }
        if ((len < 0 && v.n) || (int)v.n == chunk) {
            rc = decode_chunk(m, o, v.a, (int)v.n, first, json);
            first += (int64_t)v.n;
            strvec_free(&v);
        }
        if (len < 0) break;
    }
    free(line);
    strvec_free(&v);
    return rc;
}

int generate_main(int argc, char **argv) {
    GenArgs a;
    Err e = {{0}};
    int rc = parse_args(argc, argv, &a, &e);
    if (rc == 1) fputs(GENERATE_HELP, stdout);
    if (rc == -1) fprintf(stderr, "error: generate: %s\n", e.msg);
    if (rc != 0) {
        strvec_free(&a.inputs), strvec_free(&a.sets);
        return rc == 1 ? EXIT_OK : EXIT_USAGE;
    }
    Infer m;
    GenOptions o;
    FILE *f = NULL;
    int code = EXIT_OK;
    if (infer_open(&m, a.src, a.sets.a, (int)a.sets.n, &e) != 0) {
        code = EXIT_USAGE;
    } else if (gen_options(&m, &a, &o, &e) != 0) {
        code = EXIT_USAGE;
    } else if (a.file && !(f = fopen(a.file, "r"))) {
        err_set(&e, "%s: %s (hint: --file names a text file of one input per line)", a.file, strerror(errno));
        code = EXIT_USAGE;
    } else if (a.inputs.n) {
        code = decode_chunk(&m, &o, a.inputs.a, (int)a.inputs.n, 0, a.json) ? EXIT_RUNTIME : EXIT_OK;
    } else {
        code = decode_stream(&m, &o, f ? f : stdin, a.json) ? EXIT_RUNTIME : EXIT_OK;
        if (f && ferror(f)) code = EXIT_RUNTIME, err_set(&e, "%s: read error", a.file);
    }
    if (code == EXIT_RUNTIME && !e.msg[0]) err_set(&e, "cannot write the outputs: %s", strerror(errno));
    if (code != EXIT_OK) fprintf(stderr, "error: generate: %s\n", e.msg);
    if (f) fclose(f);
    infer_close(&m);
    strvec_free(&a.inputs), strvec_free(&a.sets);
    par_shutdown();
    return code;
}

/* cli -- see include/stages/cli.h. */
#include "stages/cli.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/tokenizer.h"
#include "stages/student.h"

void cli_load_config(Config *cfg, const Comm *comm, int argc, char **argv, int first, int *dry_run) {
    Err e = {{0}};
    int rc = 0;
    const char *path = NULL;
    *dry_run = 0;
    config_init(cfg);
    /* every rank parses the flags (cheap, identical); only rank 0 reads files */
    for (int i = first; i < argc && rc == 0; i++) {
        if (strcmp(argv[i], "--dry-run") == 0) *dry_run = 1;
        else if (strcmp(argv[i], "--set") == 0) {
            if (i + 1 >= argc) rc = err_set(&e, "--set needs section.key=value");
            i++;
        } else if (strncmp(argv[i], "--set=", 6) == 0) {
        } else if (argv[i][0] == '-' && argv[i][1]) {
            rc = err_set(&e, "unknown option '%s' (hint: hdistill %s --help)", argv[i], argv[1]);
        } else if (!path) {
            path = argv[i];
        } else {
            rc = err_set(&e, "more than one configuration file ('%s' and '%s')", path, argv[i]);
        }
    }
    if (comm->rank == 0 && rc == 0) {
        if (path) rc = config_load_file(cfg, path, &e);
        for (int i = first; i < argc && rc == 0; i++) {
            if (strcmp(argv[i], "--set") == 0) rc = config_set(cfg, argv[++i], &e);
            else if (strncmp(argv[i], "--set=", 6) == 0) rc = config_set(cfg, argv[i] + 6, &e);
        }
        if (rc == 0) rc = config_validate(cfg, &e);
        ModelConfig mc;
        if (rc == 0) rc = student_model_config(cfg, 0, &mc, &e); /* the model: preset, overrides, init_from's config */
    }
    comm_check(rc, e.msg, EXIT_USAGE);
    char *json = comm->rank == 0 ? config_to_json(cfg) : NULL;
    char *source = comm->rank == 0 ? xstrdup(cfg->source) : NULL;
    comm_bcast_string(&json);
    comm_bcast_string(&source);
    if (comm->rank != 0) {
        if (config_load_json(cfg, json, source, &e) != 0) DIE("resolved configuration: %s", e.msg);
    }
    free(json);
    free(source);
}

/* tokenize --decode: each record is space-separated ids; writes their bytes
 * and the delimiter.  Returns an exit code. */
static int tokenize_decode_stream(const Tokenizer *t, int delim) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long rec = 0;
    IntVec ids = {0};
    ByteBuf out = {0};
    int rc = EXIT_OK;
    while (rc == EXIT_OK && (n = getdelim(&line, &cap, delim, stdin)) >= 0) {
        rec++;
        if (n > 0 && line[n - 1] == (char)delim) line[--n] = 0;
        ids.n = 0;
        for (char *p = line, *end; *p;) {
            long v = strtol(p, &end, 10);
            if (end == p || v < INT32_MIN || v > INT32_MAX) {
                fprintf(stderr, "error: tokenize --decode: record %ld: expected space-separated "
                                "token ids\n", rec);
                rc = EXIT_USAGE;
                break;
            }
            intvec_push(&ids, (int)v);
            for (p = end; *p == ' ' || *p == '\t' || *p == '\r'; p++) {}
        }
        Err e;
        out.n = 0;
        if (rc == EXIT_OK && tokenizer_decode(t, ids.a, ids.n, &out, &e) != 0) {
            fprintf(stderr, "error: tokenize --decode: record %ld: %s\n", rec, e.msg);
            rc = EXIT_USAGE;
        }
        if (rc == EXIT_OK) {
            bytebuf_putc(&out, (char)delim);
            fwrite(out.a, 1, out.n, stdout);
        }
    }
    free(line);
    intvec_free(&ids);
    bytebuf_free(&out);
    return rc;
}

int cli_tokenize(int argc, char **argv) {
    const char *vocab = NULL, *merges = NULL, *hf = NULL;
    int decode = 0, delim = '\n';
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--gpt2-vocab") == 0 && i + 1 < argc) vocab = argv[++i];
        else if (strcmp(argv[i], "--gpt2-merges") == 0 && i + 1 < argc) merges = argv[++i];
        else if (strcmp(argv[i], "--hf") == 0 && i + 1 < argc) hf = argv[++i];
        else if (strcmp(argv[i], "--decode") == 0) decode = 1;
        else if (strcmp(argv[i], "-z") == 0 || strcmp(argv[i], "--null-data") == 0) delim = 0;
        else {
            fprintf(stderr, "error: tokenize: unknown argument '%s' (hint: hdistill tokenize --help)\n",
                    argv[i]);
            return EXIT_USAGE;
        }
    }
    if (hf ? (vocab || merges) : (!vocab || !merges)) {
        fprintf(stderr, "error: tokenize needs --hf TOKENIZER_JSON (a file or its directory), or "
                        "--gpt2-vocab FILE and --gpt2-merges FILE\n");
        return EXIT_USAGE;
    }
    /* --decode: records of ids -> text; else records of text -> a line of ids.
     * Records end at \n, or at NUL with -z (text with newlines). */
    Err e;
    Tokenizer *t = hf ? tokenizer_load_hf(hf, &e) : tokenizer_load_gpt2(vocab, merges, &e);
    if (!t) {
        fprintf(stderr, "error: %s\n", e.msg);
        return EXIT_USAGE;
    }
    int rc = decode ? tokenize_decode_stream(t, delim) : EXIT_OK;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    IntVec ids = {0};
    ByteBuf out = {0};
    while (!decode && (n = getdelim(&line, &cap, delim, stdin)) >= 0) {
        if (n > 0 && line[n - 1] == (char)delim) n--;
        ids.n = 0;
        tokenizer_encode(t, line, (size_t)n, &ids);
        out.n = 0;
        for (size_t i = 0; i < ids.n; i++) bytebuf_printf(&out, i ? " %d" : "%d", ids.a[i]);
        bytebuf_putc(&out, '\n');
        fwrite(out.a, 1, out.n, stdout);
    }
    free(line);
    intvec_free(&ids);
    bytebuf_free(&out);
    tokenizer_destroy(t);
    if (fflush(stdout) != 0 && rc == EXIT_OK) rc = EXIT_RUNTIME;
    return rc;
}


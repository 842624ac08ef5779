/* test_cli -- stages/cli.h.  cli_tokenize prints the ids of each stdin line
 * for a small GPT-2-format vocabulary written here, and its argument errors
 * (none, one file only, an unknown argument, unreadable files) exit 2.
 * cli_load_config (in one-rank children): file < --set / --set= precedence,
 * --dry-run; a bad value, an unknown key, an unknown option, two files, a
 * dangling --set and a missing file end the process with exit 2 and one
 * error line naming the problem; under mpirun -np 2 every rank holds rank
 * 0's resolved configuration. */
#define TEST_STAGES
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "stages/cli.h"
#include "test.h"

static char *dir;

/* GPT-2's byte -> character alphabet (bytes_to_unicode), as UTF-8 */
static void byte_char(int b, char out[4]) {
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    int cp = b;
    if (!printable) {
        int n = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) n++;
        cp = 256 + n;
    }
    if (cp < 0x80) out[0] = (char)cp, out[1] = 0;
    else out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
}

static void write_gpt2(const char *vocab, const char *merges) {
    ByteBuf b = {0};
    bytebuf_putc(&b, '{');
    for (int x = 0; x < 256; x++) {
        char ch[4];
        byte_char(x, ch);
        bytebuf_printf(&b, "\"%s%s\": %d, ", (ch[0] == '"' || ch[0] == '\\') && !ch[1] ? "\\" : "", ch, x);
    }
    bytebuf_printf(&b, "\"he\": 256, \"ll\": 257, \"<|endoftext|>\": 258}");
    test_write_file(vocab, b.a, (long)b.n);
    bytebuf_free(&b);
    test_write_file(merges, "#version: 0.2\nh e\nl l\n", -1);
}

static int tokenize(char **argv, const char *input, char **out) {
    int argc = 0;
    while (argv[argc]) argc++;
    char *in = xasprintf("%s/stdin.txt", dir);
    test_write_file(in, input, -1);
    int saved = dup(0), fd = open(in, O_RDONLY);
    dup2(fd, 0), close(fd);
    test_capture_begin(1);
    int rc = cli_tokenize(argc, argv);
    *out = test_capture_end();
    dup2(saved, 0), close(saved);
    clearerr(stdin);
    unlink(in);
    free(in);
    return rc;
}

static void tokenize_tests(void) {
    char *v = xasprintf("%s/vocab.json", dir), *m = xasprintf("%s/merges.txt", dir);
    write_gpt2(v, m);
    char *out = NULL;
    char *ok[] = {"hdistill", "tokenize", "--gpt2-vocab", v, "--gpt2-merges", m, NULL};
    EXPECT(tokenize(ok, "hello\n hello\n\nA\n", &out) == 0 && !strcmp(out, "256 257 111\n32 256 257 111\n\n65\n"),
           "ids per line: \"%s\"", out);
    free(out);
    char *a1[] = {"hdistill", "tokenize", NULL};
    char *a2[] = {"hdistill", "tokenize", "--gpt2-vocab", v, NULL};
    char *a3[] = {"hdistill", "tokenize", "--gpt2-vocab", v, "--gpt2-merges", m, "--lower", NULL};
    char *a4[] = {"hdistill", "tokenize", "--gpt2-vocab", v, "--gpt2-merges", NULL};
    char *a5[] = {"hdistill", "tokenize", "--gpt2-vocab", "/nonexistent/v.json", "--gpt2-merges", m, NULL};
    char *a6[] = {"hdistill", "tokenize", "--gpt2-vocab", m, "--gpt2-merges", m, NULL};
    char **cases[] = {a1, a2, a3, a4, a5, a6};
    const char *why[] = {"--gpt2-vocab FILE and --gpt2-merges", "--gpt2-merges", "--lower", "--gpt2-merges",
                         "/nonexistent/v.json", "merges.txt"};
    for (int k = 0; k < 6; k++) {
        EXPECT(tokenize(cases[k], "hello\n", &out) == EXIT_USAGE && strstr(out, why[k]) && strstr(out, "error:"),
               "tokenize case %d: exit 2 naming %s: %s", k + 1, why[k], out);
        free(out);
    }
    free(v), free(m);
}

typedef struct {
    char **argv;
    int argc, first;
} CliCase;

static int load_child(const Comm *comm, void *v) {
    CliCase *cc = v;
    Config c;
    int dry = -1;
    cli_load_config(&c, comm, cc->argc, cc->argv, cc->first, &dry);
    EXPECT(c.train.lr == 0.5 && c.train.steps == 7 && c.train.batch_size == 8 && dry == 1 && !strcmp(c.source, cc->argv[2]),
           "file < --set: lr %g steps %lld batch %d dry %d source %s", c.train.lr, (long long)c.train.steps,
           c.train.batch_size, dry, c.source);
    config_free(&c);
    return 0;
}

static int err_child(const Comm *comm, void *v) {
    CliCase *cc = v;
    Config c;
    int dry;
    cli_load_config(&c, comm, cc->argc, cc->argv, cc->first, &dry);
    return 0; /* not reached when the configuration is refused */
}

static int count(const char *s, const char *sub) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, sub)); p += strlen(sub)) n++;
    return n;
}

static int ranked(int argc, char **argv) {
    Comm comm;
    comm_init(&comm, &argc, &argv);
    Config c;
    int dry;
    cli_load_config(&c, &comm, argc, argv, 2, &dry);
    char *json = config_to_json(&c);
    size_t *lens = NULL;
    char *all = comm_gather_bytes(json, strlen(json), &lens);
    int rc = 0;
    if (comm.rank == 0) rc = !(lens[0] == lens[1] && !memcmp(all, all + lens[0], lens[0]) && c.train.steps == 11);
    free(all), free(lens), free(json);
    config_free(&c);
    comm_finalize();
    return rc;
}

int main(int argc, char **argv) {
    if (test_under_mpirun() && argc > 2 && !strcmp(argv[1], "--bcast")) return ranked(argc, argv);
    dir = test_tmpdir("cli");
    tokenize_tests();
    char *cfg = xasprintf("%s/c.json", dir), *bad = xasprintf("%s/bad.json", dir);
    test_write_file(cfg, "{\"train\": {\"lr\": 0.01, \"batch_size\": 8, \"steps\": 3}}", -1);
    test_write_file(bad, "{\"train\": {\"learning_rate\": 0.01}}", -1);
    char *good[] = {"hdistill", "train", cfg, "--set", "train.lr=0.5", "--set=train.steps=7", "--dry-run", NULL};
    CliCase g = {good, 7, 2};
    EXPECT(test_with_mpi(load_child, &g, NULL) == 0, "cli_load_config of a good command line");
    char *b1[] = {"hdistill", "train", cfg, "--set", "train.batch_size=0", NULL};
    char *b2[] = {"hdistill", "train", bad, NULL};
    char *b3[] = {"hdistill", "train", cfg, "--frobnicate", NULL};
    char *b4[] = {"hdistill", "train", cfg, bad, NULL};
    char *b5[] = {"hdistill", "train", cfg, "--set", NULL};
    char *b6[] = {"hdistill", "train", "/nonexistent/c.json", NULL};
    char *b7[] = {"hdistill", "train", cfg, "--set", "train.nothing=1", NULL};
    char **cases[] = {b1, b2, b3, b4, b5, b6, b7};
    int argcs[] = {5, 3, 4, 4, 4, 3, 5};
    const char *why[] = {"train.batch_size", "learning_rate", "--frobnicate", "more than one", "--set needs",
                         "/nonexistent/c.json", "train.nothing"};
    for (int k = 0; k < 7; k++) {
        CliCase cc = {cases[k], argcs[k], 2};
        char *out = NULL;
        int rc = test_with_mpi(err_child, &cc, &out);
        EXPECT(rc == EXIT_USAGE && strstr(out, why[k]) && count(out, "error:") == 1, "case %d: exit %d, want 2 naming %s: %s",
               k + 1, rc, why[k], out);
        free(out);
    }
    /* the resolved configuration on every rank */
    const char *args[] = {"--bcast", cfg, "--set", "train.steps=11", NULL};
    char *out = NULL;
    int rc = test_mpirun_self(2, args, &out, NULL);
    EXPECT(rc == 0, "two ranks hold the same configuration: %s", out);
    free(out);
    free(cfg), free(bad);
    test_rm_rf(dir);
    free(dir);
    return test_summary();
}

/* test_dataset -- io/dataset.h.  dataset_load_pairs from JSONL (blank and
 * CRLF lines, source line numbers, max; malformed JSON, missing or
 * non-string fields, empty strings, a truncated last line, trailing junk,
 * NUL bytes and \u0000 are errors naming file:line; a missing or empty file
 * names the file) and from HDF5 (/pairs/{prompt,target}, a teach data.h5
 * with refused inputs, empty paraphrases and the items of truncated answers
 * skipped (those only with DATASET_TRUNCATED), mismatched shapes and
 * files with neither are errors).  Under mpirun -np 2 (re-run
 * automatically): dataset_bcast_examples and dataset_bcast_tokenizer give
 * every rank rank 0's data bitwise, replacing what the others held. */
#include <stdlib.h>
#include <string.h>

#include "base/comm.h"
#include "base/util.h"
#include "engine/tokenizer.h"
#include "io/dataset.h"
#include "io/store.h"
#include "test.h"
#include "test_mpi.h"

static char *dir;

static char *file_with(const char *name, const char *text, long n) {
    char *p = xasprintf("%s/%s", dir, name);
    test_write_file(p, text, n);
    return p;
}

static int load_err(const char *name, const char *text, long n, const char *want_at, const char *want) {
    char *p = file_with(name, text, n);
    Pairs pr;
    Err e = {{0}};
    int rc = dataset_load_pairs(p, 0, &pr, &e);
    char *where = xasprintf("%s%s", p, want_at);
    int ok = rc != 0 && strstr(e.msg, where) && strstr(e.msg, want) && pr.n == 0 && pr.prompt == NULL;
    if (!ok) fprintf(stderr, "%s: rc %d: %s (want \"%s\" and \"%s\")\n", name, rc, e.msg, where, want);
    free(where), free(p);
    return ok;
}

static void jsonl(void) {
    char *p = file_with("ok.jsonl",
                        "{\"prompt\": \"a cat\", \"target\": \"a funny cat\"}\n"
                        "\n"
                        "   \t\r\n"
                        "{\"target\": \"t2 \\u00e9\", \"prompt\": \"p2\", \"extra\": 1}\r\n"
                        "{\"prompt\":\"p3\",\"target\":\"line\\nbreak\"}   \n"
                        "{\"prompt\": \"p4\", \"target\": \"t4\"}",
                        -1);
    Pairs pr;
    Err e = {{0}};
    EXPECT(dataset_load_pairs(p, 0, &pr, &e) == 0, "%s", e.msg);
    EXPECT(pr.n == 4 && !strcmp(pr.prompt[0], "a cat") && !strcmp(pr.target[0], "a funny cat") &&
               !strcmp(pr.prompt[1], "p2") && !strcmp(pr.target[1], "t2 \xC3\xA9") && !strcmp(pr.target[2], "line\nbreak") &&
               !strcmp(pr.prompt[3], "p4"),
           "4 pairs read (%lld)", (long long)pr.n);
    EXPECT(pr.n == 4 && pr.line[0] == 1 && pr.line[1] == 4 && pr.line[2] == 5 && pr.line[3] == 6,
           "source line numbers count blank lines");
    data_pairs_free(&pr);
    EXPECT(dataset_load_pairs(p, 2, &pr, &e) == 0 && pr.n == 2 && !strcmp(pr.prompt[1], "p2"), "max 2 keeps the first 2");
    data_pairs_free(&pr);
    free(p);
    EXPECT(load_err("m1.jsonl", "{\"prompt\": \"a\", \"target\": \"b\"}\n{\"prompt\": \"a\", \"target\": \n", -1, ":2:",
                    "malformed JSON"),
           "malformed line 2");
    EXPECT(load_err("m2.jsonl", "{\"prompt\": \"a\", \"target\": \"b\"}\n\n{\"prompt\": \"a\"}\n", -1, ":3:",
                    "expected string fields \"prompt\" and \"target\""),
           "missing target on line 3");
    EXPECT(load_err("m3.jsonl", "{\"prompt\": \"a\", \"target\": 5}\n", -1, ":1:", "expected string fields"),
           "a number is not a string");
    EXPECT(load_err("m4.jsonl", "{\"prompt\": \"\", \"target\": \"b\"}\n", -1, ":1:", "empty prompt or target"),
           "empty prompt");
    EXPECT(load_err("m5.jsonl", "{\"prompt\": \"a\", \"target\": \"b\"}\n{\"prompt\": \"a\", \"tar", -1, ":2:",
                    "truncated last line"),
           "truncated last line");
    EXPECT(load_err("m6.jsonl", "{\"prompt\": \"a\", \"target\": \"b\"} junk\n", -1, ":1:", "malformed JSON"),
           "junk after the object");
    EXPECT(load_err("m7.jsonl", "{\"prompt\": \"a\", \"target\": \"b\"}\n{\"prompt\": \"a\0\", \"target\": \"b\"}\n", 64,
                    ":2:", "NUL byte"),
           "a NUL byte");
    EXPECT(load_err("m8.jsonl", "{\"prompt\": \"a\\u0000b\", \"target\": \"b\"}\n", -1, ":1:", "\\u0000"), "\\u0000");
    EXPECT(load_err("m9.jsonl", "[1, 2]\n", -1, ":1:", "expected string fields"), "an array is not a pair");
    EXPECT(load_err("empty.jsonl", "\n\n", -1, ": no pairs", "no pairs found"), "no pairs");
    char *missing = xasprintf("%s/missing.jsonl", dir);
    Pairs pr2;
    EXPECT(dataset_load_pairs(missing, 0, &pr2, &e) != 0 && strstr(e.msg, missing) && strstr(e.msg, "data.pairs"),
           "missing file: %s", e.msg);
    EXPECT(dataset_load_pairs("", 0, &pr2, &e) != 0 && strstr(e.msg, "data.pairs is not set"), "no path: %s", e.msg);
    free(missing);
}

static void hdf5(void) {
    Err e = {{0}};
    /* /pairs */
    char *p = xasprintf("%s/pairs.h5", dir);
    StoreFile *f = store_create(p, &e);
    const char *pp[3] = {"p0", "p1 \xC3\xA9", "p2"}, *tt[3] = {"t0", "t1", "t2"};
    int64_t n3 = 3;
    store_write_strings(f, "/pairs/prompt", pp, 1, &n3, NULL, &e);
    store_write_strings(f, "/pairs/target", tt, 1, &n3, NULL, &e);
    store_close(f, NULL);
    Pairs pr;
    EXPECT(dataset_load_pairs(p, 0, &pr, &e) == 0 && pr.n == 3 && !strcmp(pr.prompt[1], "p1 \xC3\xA9") &&
               !strcmp(pr.target[2], "t2") && pr.line[2] == 2,
           "/pairs: %s", e.msg);
    data_pairs_free(&pr);
    EXPECT(dataset_load_pairs(p, 1, &pr, &e) == 0 && pr.n == 1, "/pairs with max 1");
    data_pairs_free(&pr);
    /* mismatched /pairs and an empty row */
    f = store_open(p, 1, &e);
    int64_t n2 = 2;
    store_write_strings(f, "/pairs/target", tt, 1, &n2, NULL, &e);
    store_close(f, NULL);
    EXPECT(dataset_load_pairs(p, 0, &pr, &e) != 0 && strstr(e.msg, p) && strstr(e.msg, "3 rows") && pr.n == 0,
           "mismatched /pairs: %s", e.msg);
    f = store_open(p, 1, &e);
    const char *tt2[3] = {"t0", "", "t2"};
    store_write_strings(f, "/pairs/target", tt2, 1, &n3, NULL, &e);
    store_close(f, NULL);
    EXPECT(dataset_load_pairs(p, 0, &pr, &e) != 0 && strstr(e.msg, p) && strstr(e.msg, "row 1"), "empty row: %s", e.msg);
    free(p);

    /* a teach data.h5: input 1 refused, input 2's second paraphrase empty */
    p = xasprintf("%s/data.h5", dir);
    f = store_create(p, &e);
    const char *in[4] = {"in0", "in1", "in2", "in3"};
    const char *para[8] = {"a0", "b0", "a1", "b1", "a2", "", "", ""};
    uint8_t refused[4] = {0, 1, 0, 0};
    int64_t n4 = 4, d2[2] = {4, 2};
    store_write_strings(f, "/inputs/train", in, 1, &n4, NULL, &e);
    store_write_strings(f, "/teacher/paraphrases", para, 2, d2, NULL, &e);
    store_write_u8(f, "/teacher/refused", refused, 1, &n4, NULL, &e);
    store_close(f, NULL);
    EXPECT(dataset_load_pairs(p, 0, &pr, &e) == 0, "%s", e.msg);
    EXPECT(pr.n == 3 && !strcmp(pr.prompt[0], "in0") && !strcmp(pr.target[0], "a0") && !strcmp(pr.target[1], "b0") &&
               !strcmp(pr.prompt[2], "in2") && !strcmp(pr.target[2], "a2") && pr.line[2] == 2,
           "teach data: refused and empty skipped (%lld pairs)", (long long)pr.n);
    data_pairs_free(&pr);
    EXPECT(dataset_load_pairs(p, 2, &pr, &e) == 0 && pr.n == 2, "teach data with max 2");
    data_pairs_free(&pr);
    /* input 3's answer was cut by the token limit: its items kept apart, used only on request */
    f = store_open(p, 1, &e);
    const char *cut[8] = {"", "", "", "", "", "", "c3", "d3"};
    store_write_strings(f, "/teacher/truncated_paraphrases", cut, 2, d2, NULL, &e);
    store_close(f, NULL);
    EXPECT(dataset_load_pairs(p, 0, &pr, &e) == 0 && pr.n == 3, "truncated items left out by default (%lld)",
           (long long)pr.n);
    data_pairs_free(&pr);
    EXPECT(dataset_load_pairs_with(p, 0, DATASET_TRUNCATED, &pr, &e) == 0 && pr.n == 5 && !strcmp(pr.prompt[3], "in3") &&
               !strcmp(pr.target[3], "c3") && !strcmp(pr.target[4], "d3"),
           "DATASET_TRUNCATED adds them (%lld): %s", (long long)pr.n, e.msg);
    data_pairs_free(&pr);
    /* paraphrases of another shape */
    f = store_open(p, 1, &e);
    int64_t d3[2] = {3, 2};
    store_write_strings(f, "/teacher/paraphrases", para, 2, d3, NULL, &e);
    store_close(f, NULL);
    EXPECT(dataset_load_pairs(p, 0, &pr, &e) != 0 && strstr(e.msg, p) && strstr(e.msg, "/teacher/paraphrases"),
           "mismatched shapes: %s", e.msg);
    /* every input refused: no pairs */
    f = store_open(p, 1, &e);
    uint8_t all[4] = {1, 1, 1, 1};
    store_write_strings(f, "/teacher/paraphrases", para, 2, d2, NULL, &e);
    store_write_u8(f, "/teacher/refused", all, 1, &n4, NULL, &e);
    store_close(f, NULL);
    EXPECT(dataset_load_pairs(p, 0, &pr, &e) != 0 && strstr(e.msg, "no pairs"), "all refused: %s", e.msg);
    free(p);
    /* neither layout; not HDF5; missing */
    p = xasprintf("%s/other.h5", dir);
    f = store_create(p, &e);
    store_write_string(f, "/something", "x", NULL, &e);
    store_close(f, NULL);
    EXPECT(dataset_load_pairs(p, 0, &pr, &e) != 0 && strstr(e.msg, p) && strstr(e.msg, "/pairs"), "neither: %s", e.msg);
    free(p);
    p = file_with("text.h5", "{\"prompt\": \"a\", \"target\": \"b\"}\n", -1);
    EXPECT(dataset_load_pairs(p, 0, &pr, &e) != 0 && strstr(e.msg, p) && strstr(e.msg, "not a readable HDF5"),
           "JSONL named .h5: %s", e.msg);
    free(p);
    p = xasprintf("%s/missing.hdf5", dir);
    EXPECT(dataset_load_pairs(p, 0, &pr, &e) != 0 && strstr(e.msg, p), "missing .hdf5: %s", e.msg);
    free(p);
}

/* ---- under mpirun ---- */

static void truth_examples(Examples *x) {
    memset(x, 0, sizeof *x);
    x->n = 300;
    x->off = xmalloc(sizeof(int64_t) * 301);
    x->n_prompt = xmalloc(sizeof(int32_t) * 300);
    x->off[0] = 0;
    for (int i = 0; i < 300; i++) x->off[i + 1] = x->off[i] + 3 + i % 11, x->n_prompt[i] = 1 + i % 3;
    x->ids = xmalloc(sizeof(int32_t) * x->off[300]);
    for (int64_t j = 0; j < x->off[300]; j++) x->ids[j] = (int32_t)(j * 7919 % 50257);
}

static void truth_tokenizer(TokenizerData *td) {
    const char *texts[] = {"the cat sat on the mat", "caf\xC3\xA9 au lait \xE4\xB8\xAD", "a cat and a dog"};
    size_t lens[3];
    for (int i = 0; i < 3; i++) lens[i] = strlen(texts[i]);
    Err e;
    Tokenizer *t = tokenizer_train(texts, lens, 3, 262, &e);
    CHECK(t, "%s", e.msg);
    tokenizer_to_data(t, td);
    tokenizer_destroy(t);
}

static int ranked(int argc, char **argv) {
    Comm c;
    comm_init(&c, &argc, &argv);
    Examples want, x;
    truth_examples(&want);
    if (c.rank == 0) truth_examples(&x);
    else { /* something else, to be replaced */
        memset(&x, 0, sizeof x);
        x.n = 2;
        x.off = xcalloc(3, sizeof(int64_t));
        x.ids = xcalloc(1, sizeof(int32_t));
        x.n_prompt = xcalloc(2, sizeof(int32_t));
    }
    dataset_bcast_examples(&x);
    EXPECT(x.n == want.n && !memcmp(x.off, want.off, sizeof(int64_t) * 301) &&
               !memcmp(x.ids, want.ids, sizeof(int32_t) * (size_t)want.off[300]) &&
               !memcmp(x.n_prompt, want.n_prompt, sizeof(int32_t) * 300),
           "rank %d: examples differ from rank 0's", c.rank);
    data_examples_free(&x), data_examples_free(&want);
    TokenizerData tw, td;
    truth_tokenizer(&tw);
    if (c.rank == 0) truth_tokenizer(&td);
    else memset(&td, 0, sizeof td), td.n_vocab = 1, td.offsets = xcalloc(2, 8), td.blob = xcalloc(1, 1),
         td.special = xcalloc(1, 1), td.merges = xcalloc(1, 4), td.eot_id = 99, td.sep_id = 98;
    dataset_bcast_tokenizer(&td);
    EXPECT(td.n_vocab == tw.n_vocab && td.n_merges == tw.n_merges && td.eot_id == tw.eot_id && td.sep_id == tw.sep_id &&
               !memcmp(td.offsets, tw.offsets, sizeof(int64_t) * (size_t)(tw.n_vocab + 1)) &&
               !memcmp(td.blob, tw.blob, (size_t)tw.offsets[tw.n_vocab]) && !memcmp(td.special, tw.special, (size_t)tw.n_vocab) &&
               !memcmp(td.merges, tw.merges, sizeof(int32_t) * 2 * (size_t)tw.n_merges),
           "rank %d: tokenizer differs from rank 0's", c.rank);
    Err e;
    Tokenizer *t = tokenizer_from_data(&td, &e);
    EXPECT(t != NULL, "rank %d: the broadcast tokenizer does not rebuild: %s", c.rank, e.msg);
    tokenizer_destroy(t);
    tokenizer_data_free(&td), tokenizer_data_free(&tw);
    return test_ranks_finish(&c);
}

int main(int argc, char **argv) {
    if (test_under_mpirun()) return ranked(argc, argv);
    dir = test_tmpdir("dataset");
    jsonl();
    hdf5();
    test_rm_rf(dir);
    free(dir);
    char *out = NULL;
    int rc = test_mpirun_self(2, NULL, &out, NULL);
    fputs(out, stdout);
    EXPECT(rc == 0 && test_absorb(out) == 0, "the broadcasts under mpirun -np 2 (exit %d)", rc);
    free(out);
    return test_summary();
}

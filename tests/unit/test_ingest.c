/* test_ingest -- stages/ingest.h.  The readers: ingest_read_file for text,
 * JSONL (a field), CSV (a header column, RFC 4180 quoting) and "auto" by
 * extension, with errors naming file:line; ingest_read_wordnet on a file
 * in WordNet's data format.  The stage, in one-rank children: inputs are
 * normalised, filtered by words and de-duplicated case-insensitively
 * (out-of-distribution inputs against the others too; of spellings equal
 * up to case the smallest is kept, whatever the file's order), the counts are
 * attributes; running it again changes nothing; other settings are refused
 * (exit 2) without touching data.h5; the file's order and ingest.limit do
 * not change which split an input lands in; a missing source exits 2 and
 * writes nothing; --dry-run writes nothing. */
#define TEST_STAGES
#include <stdlib.h>
#include <string.h>

#include "base/text.h"
#include "base/util.h"
#include "io/store.h"
#include "stages/ingest.h"
#include "test.h"

static char *dir;

static char *write_in(const char *name, const char *text) {
    char *p = xasprintf("%s/%s", dir, name);
    test_write_file(p, text, -1);
    return p;
}

static void readers(void) {
    Err e = {{0}};
    StrVec v = {0};
    char *p = write_in("a.txt", "first line\n\nthird line\r\nlast without newline");
    EXPECT(ingest_read_file(p, "text", "text", &v, &e) == 0 && v.n == 4 && !strcmp(v.a[0], "first line") &&
               !strcmp(v.a[1], "") && !strcmp(v.a[3], "last without newline"),
           "text: one input per line (%zu)", v.n);
    strvec_free(&v), free(p);
    p = write_in("a.jsonl", "{\"text\": \"one\", \"n\": 1}\n\n{\"text\": \"two \\u00e9\"}\n");
    EXPECT(ingest_read_file(p, "auto", "text", &v, &e) == 0 && v.n == 2 && !strcmp(v.a[1], "two \xC3\xA9"),
           "jsonl by extension: %s", e.msg);
    strvec_free(&v);
    EXPECT(ingest_read_file(p, "jsonl", "sentence", &v, &e) != 0 && strstr(e.msg, p) && strstr(e.msg, ":1:") &&
               strstr(e.msg, "sentence"),
           "missing field: %s", e.msg);
    strvec_free(&v), free(p);
    p = write_in("b.jsonl", "{\"text\": \"one\"}\n{\"text\": \n");
    EXPECT(ingest_read_file(p, "jsonl", "text", &v, &e) != 0 && strstr(e.msg, ":2:") && strstr(e.msg, "malformed"),
           "malformed line 2: %s", e.msg);
    strvec_free(&v), free(p);
    p = write_in("a.csv", "id,text,other\n1,plain,x\n2,\"with, comma\",y\r\n3,\"a \"\"quoted\"\" word\",z\n\n"
                          "4,\"two\nlines\",w\n");
    EXPECT(ingest_read_file(p, "auto", "text", &v, &e) == 0 && v.n == 4 && !strcmp(v.a[0], "plain") &&
               !strcmp(v.a[1], "with, comma") && !strcmp(v.a[2], "a \"quoted\" word") && !strcmp(v.a[3], "two\nlines"),
           "csv column with RFC 4180 quoting (%zu): %s", v.n, e.msg);
    strvec_free(&v);
    EXPECT(ingest_read_file(p, "csv", "sentence", &v, &e) != 0 && strstr(e.msg, p) && strstr(e.msg, "sentence"),
           "missing column: %s", e.msg);
    strvec_free(&v), free(p);
    p = write_in("short.csv", "a,text\n1,ok\n2\n");
    EXPECT(ingest_read_file(p, "csv", "text", &v, &e) != 0 && strstr(e.msg, p) && strstr(e.msg, "record 3"),
           "a short record: %s", e.msg);
    strvec_free(&v), free(p);
    char *missing = xasprintf("%s/missing.txt", dir);
    EXPECT(ingest_read_file(missing, "auto", "text", &v, &e) != 0 && strstr(e.msg, missing) &&
               strstr(e.msg, "ingest.source"),
           "missing file: %s", e.msg);
    free(missing);
    p = write_in("data.noun", "  1 This software and database is being provided \"as is\" (licence header)\n"
                              "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which exists; \"the entity is "
                              "here\"; \"another example\"\n"
                              "00002137 03 n 02 abstraction 0 abstract_entity 0 | a general concept\n"
                              "00002452 03 n 01 thing 0 | a separate entity; \"a thing of beauty\"\n");
    EXPECT(ingest_read_wordnet(p, &v, &e) == 0 && v.n == 3 && !strcmp(v.a[0], "the entity is here") &&
               !strcmp(v.a[1], "another example") && !strcmp(v.a[2], "a thing of beauty"),
           "wordnet examples (%zu), the indented header skipped", v.n);
    strvec_free(&v), free(p);
}

static char **read_split(const char *h5, const char *obj, int64_t *n) {
    Err e;
    StoreFile *f = store_open(h5, 0, &e);
    char **s = f ? store_read_strings(f, obj, n, &e) : NULL;
    store_close(f, NULL);
    if (!s) *n = 0;
    return s;
}

static int has(char **s, int64_t n, const char *x) {
    for (int64_t i = 0; i < n; i++)
        if (!strcmp(s[i], x)) return 1;
    return 0;
}

static const char *const sentences[] = {
    "The old man walked slowly to the market.", "She painted the fence a bright green.",
    "Our neighbours adopted two small kittens.", "The train arrived ten minutes late.",
    "He forgot his umbrella at the office.", "A strong wind blew the leaves away.",
    "The children built a castle of sand.", "My sister plays the violin every evening.",
    "The soup needs a little more salt.", "They watched the sunset from the hill.",
    "The library closes early on Sundays.", "A cat slept on the warm windowsill.",
    "The baker sold out of bread by noon.", "We hiked along the river all morning.",
    "The printer ran out of ink again.", "His phone rang during the quiet concert.",
    "The garden is full of tall sunflowers.", "She answered every question correctly.",
    "The bus driver waved at the students.", "Fresh snow covered the empty streets.",
};
enum { NS = sizeof sentences / sizeof sentences[0] };

typedef struct {
    char *path;
    int n_train, n_eval;
} Made;

static char *inputs_file(const char *name, int reversed) {
    ByteBuf b = {0};
    for (int k = 0; k < NS; k++) bytebuf_printf(&b, "%s\n", sentences[reversed ? NS - 1 - k : k]);
    bytebuf_printf(&b, "hi there\n");                                              /* too short */
    bytebuf_printf(&b, "one two three four five six seven eight nine ten eleven twelve thirteen\n"); /* too long */
    bytebuf_printf(&b, "  \"Wrapped   in\xC2\xA0quotes and  spaces.\"  \n");       /* normalised */
    bytebuf_printf(&b, "Broken \xFF bytes are replaced here.\n");
    bytebuf_printf(&b, "\n   \n");                                                 /* empty */
    bytebuf_printf(&b, "%s\n", sentences[3]);                                      /* exact duplicate */
    /* equal up to case, in the file's order: the smallest spelling ("The Cat ...") is kept either way */
    bytebuf_printf(&b, "%s\n", reversed ? "The Cat sat on the mat today." : "the cat sat on the mat today.");
    bytebuf_printf(&b, "%s\n", reversed ? "the cat sat on the mat today." : "The Cat sat on the mat today.");
    char *p = xasprintf("%s/%s", dir, name);
    test_write_file(p, b.a, (long)b.n);
    bytebuf_free(&b);
    return p;
}

static void stage(void) {
    char *src = inputs_file("inputs.txt", 0), *rev = inputs_file("reversed.txt", 1);
    char *ood = write_in("ood.txt", "Purple ideas sleep very furiously tonight.\nthe old man walked slowly to the "
                                    "market.\nQuick brown foxes jump over lazy dogs.\n");
    char s_src[600], s_ood[600];
    snprintf(s_src, sizeof s_src, "ingest.source=%s", src);
    snprintf(s_ood, sizeof s_ood, "ingest.ood_source=%s", ood);
    const char *kv[] = {s_src, s_ood, "ingest.limit=0", "ingest.ood_limit=10", "ingest.eval_fraction=0.25",
                        "ingest.min_words=3", "ingest.max_words=12", NULL};
    Config c;
    test_stage_config(&c, dir, kv);
    char *out = NULL;
    /* dry run: nothing written */
    EXPECT(test_stage("ingest", &c, 1, &out) == 0 && !util_file_exists(c.data.path), "dry run writes nothing");
    free(out);
    EXPECT(test_stage("ingest", &c, 0, &out) == 0, "ingest exits 0");
    free(out);
    int64_t nt = 0, ne = 0, no = 0;
    char **tr = read_split(c.data.path, "/inputs/train", &nt), **ev = read_split(c.data.path, "/inputs/eval", &ne),
         **od = read_split(c.data.path, "/inputs/ood", &no);
    EXPECT(nt + ne == NS + 3 && ne > 0 && nt > 0, "%lld train + %lld eval, want %d", (long long)nt, (long long)ne, NS + 3);
    int normal = 1, words = 1;
    for (int64_t i = 0; i < nt + ne; i++) {
        const char *s = i < nt ? tr[i] : ev[i - nt];
        char *nz = text_normalize(s, strlen(s));
        normal &= !strcmp(nz, s);
        free(nz);
        words &= text_word_count(s) >= 3 && text_word_count(s) <= 12;
    }
    EXPECT(normal && words, "inputs are normalised and within [min_words, max_words]");
    EXPECT(has(tr, nt, "Wrapped in quotes and spaces.") || has(ev, ne, "Wrapped in quotes and spaces."),
           "quotes, NBSP and white space normalised");
    EXPECT((has(tr, nt, "The Cat sat on the mat today.") || has(ev, ne, "The Cat sat on the mat today.")) &&
               !has(tr, nt, "the cat sat on the mat today.") && !has(ev, ne, "the cat sat on the mat today."),
           "of inputs equal up to case, the smallest spelling is kept");
    EXPECT(has(tr, nt, "Broken \xEF\xBF\xBD bytes are replaced here.") ||
               has(ev, ne, "Broken \xEF\xBF\xBD bytes are replaced here."),
           "invalid UTF-8 replaced");
    EXPECT(no == 2 && has(od, no, "Purple ideas sleep very furiously tonight.") && !has(od, no, "the old man walked slowly to the market."),
           "ood inputs, de-duplicated against the others case-insensitively (%lld)", (long long)no);
    Err e;
    StoreFile *f = store_open(c.data.path, 0, &e);
    int64_t read = 0, dup = 0, sh = 0, lo = 0;
    char *sig = NULL, *source = NULL;
    if (f) {
        store_get_attr_i64(f, "/inputs", "read", &read, &e), store_get_attr_i64(f, "/inputs", "duplicates", &dup, &e);
        store_get_attr_i64(f, "/inputs", "too_short", &sh, &e), store_get_attr_i64(f, "/inputs", "too_long", &lo, &e);
        sig = store_get_attr_str(f, "/inputs", "ingest_signature", &e);
        source = store_get_attr_str(f, "/inputs", "source", &e);
        EXPECT(store_exists(f, "/config") && store_exists(f, "/provenance"), "/config and /provenance");
    }
    EXPECT(read == NS + 9 && dup == 3 && sh == 1 && lo == 1, "counts: read %lld dup %lld short %lld long %lld",
           (long long)read, (long long)dup, (long long)sh, (long long)lo);
    EXPECT(sig && sig[0] && source && !strcmp(source, src), "signature and source attributes");
    free(sig), free(source);
    store_close(f, NULL);
    char *tmp = xasprintf("%s.tmp", c.data.path);
    EXPECT(!util_file_exists(tmp), "no temporary file left");
    free(tmp);

    /* again: nothing changes; other settings: refused, nothing changes */
    size_t len0, len1;
    char *bytes0 = test_read_file(c.data.path, &len0);
    EXPECT(test_stage("ingest", &c, 0, &out) == 0 && strstr(out, "nothing to do"), "same settings: nothing to do");
    free(out);
    char *bytes1 = test_read_file(c.data.path, &len1);
    EXPECT(len0 == len1 && !memcmp(bytes0, bytes1, len0), "data.h5 changed by a repeated ingest");
    free(bytes1);
    Config c2;
    const char *kv2[] = {s_src, s_ood, "ingest.limit=5", "ingest.ood_limit=10", "ingest.eval_fraction=0.25",
                         "ingest.min_words=3", "ingest.max_words=12", NULL};
    test_stage_config(&c2, dir, kv2);
    EXPECT(test_stage("ingest", &c2, 0, &out) == EXIT_USAGE && strstr(out, c.data.path) && strstr(out, "other inputs"),
           "other settings on an existing data.h5: exit 2");
    free(out);
    bytes1 = test_read_file(c.data.path, &len1);
    EXPECT(len0 == len1 && !memcmp(bytes0, bytes1, len0), "a refused ingest changed data.h5");
    free(bytes1), free(bytes0);
    config_free(&c2);

    /* the file's order and the limit do not move an input to another split */
    char *d2 = xasprintf("%s/rev", dir);
    util_mkdir_p(d2, &e);
    char s_rev[600];
    snprintf(s_rev, sizeof s_rev, "ingest.source=%s", rev);
    const char *kv3[] = {s_rev, s_ood, "ingest.limit=0", "ingest.ood_limit=10", "ingest.eval_fraction=0.25",
                         "ingest.min_words=3", "ingest.max_words=12", NULL};
    test_stage_config(&c2, d2, kv3);
    EXPECT(test_stage("ingest", &c2, 0, &out) == 0, "reversed file");
    free(out);
    int64_t rt = 0, re = 0;
    char **rtr = read_split(c2.data.path, "/inputs/train", &rt), **rev_ev = read_split(c2.data.path, "/inputs/eval", &re);
    int same = rt == nt && re == ne;
    for (int64_t i = 0; same && i < nt; i++) same = !strcmp(tr[i], rtr[i]);
    for (int64_t i = 0; same && i < ne; i++) same = !strcmp(ev[i], rev_ev[i]);
    EXPECT(same, "the file's order changed the inputs or their order");
    store_free_strings(rtr, rt), store_free_strings(rev_ev, re);
    config_free(&c2);
    char *d3 = xasprintf("%s/lim", dir);
    util_mkdir_p(d3, &e);
    const char *kv4[] = {s_src, s_ood, "ingest.limit=9", "ingest.ood_limit=10", "ingest.eval_fraction=0.25",
                         "ingest.min_words=3", "ingest.max_words=12", NULL};
    test_stage_config(&c2, d3, kv4);
    EXPECT(test_stage("ingest", &c2, 0, &out) == 0, "limit 9");
    free(out);
    rtr = read_split(c2.data.path, "/inputs/train", &rt), rev_ev = read_split(c2.data.path, "/inputs/eval", &re);
    int sub = rt + re == 9;
    for (int64_t i = 0; sub && i < rt; i++) sub = has(tr, nt, rtr[i]);
    for (int64_t i = 0; sub && i < re; i++) sub = has(ev, ne, rev_ev[i]);
    EXPECT(sub, "limit 9: %lld + %lld, each in the split it has without the limit", (long long)rt, (long long)re);
    store_free_strings(rtr, rt), store_free_strings(rev_ev, re);
    config_free(&c2);

    /* a missing source: exit 2 naming it, nothing written */
    char *d4 = xasprintf("%s/missing", dir);
    char s_miss[600];
    snprintf(s_miss, sizeof s_miss, "ingest.source=%s/none.txt", dir);
    const char *kv5[] = {s_miss, NULL};
    test_stage_config(&c2, d4, kv5);
    EXPECT(test_stage("ingest", &c2, 0, &out) == EXIT_USAGE && strstr(out, "none.txt"), "missing source: exit 2");
    EXPECT(!util_file_exists(c2.data.path), "nothing written for a missing source");
    free(out);
    config_free(&c2);
    store_free_strings(tr, nt), store_free_strings(ev, ne), store_free_strings(od, no);
    free(src), free(rev), free(ood), free(d2), free(d3), free(d4);
    config_free(&c);
}

int main(void) {
    dir = test_tmpdir("ingest");
    readers();
    stage();
    test_rm_rf(dir);
    free(dir);
    return test_summary();
}

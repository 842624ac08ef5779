/* fuzz_ingest -- the input readers of ingest (stages/ingest.h) and the
 * normalisation of one line (base/text.h) on arbitrary files.  The first
 * byte chooses the reader: ingest_read_file as jsonl, csv, text, or auto
 * on a .jsonl/.csv/.txt name (field "text"), or ingest_read_wordnet; the
 * rest is the file.  Every input read, and the file itself, then goes
 * through text_normalize, whose result must keep its contract: valid UTF-8
 * without control characters, trimmed, unchanged by a second pass. */
#include "base/text.h"
#include "base/unicode.h"
#include "stages/ingest.h"
#include "fuzz.h"

static void check_normal(const char *s, size_t len) {
    char *a = text_normalize(s, len);
    size_t n = strlen(a);
    FUZZ_CHECK(n == 0 || (a[0] != ' ' && a[n - 1] != ' '), "not trimmed: '%s'", a);
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t k = unicode_decode_utf8((const uint8_t *)a + i, n - i, &cp);
        FUZZ_CHECK(k > 0 && cp != UNICODE_INVALID, "invalid UTF-8 at %zu of '%s'", i, a);
        FUZZ_CHECK(cp >= 0x20 && cp != 0x7F && cp != 0xA0, "control or no-break space U+%04X in '%s'", cp, a);
        FUZZ_CHECK(!(cp == ' ' && a[i + 1] == ' '), "two spaces in '%s'", a);
        i += k;
    }
    char *b = text_normalize(a, n);
    FUZZ_CHECK(strcmp(a, b) == 0, "not idempotent: '%s' -> '%s'", a, b);
    free(b);
    free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const char *const FORMAT[] = {"jsonl", "csv", "text", "auto", "auto", "auto", "wordnet"};
    static const char *const NAME[] = {"in.jsonl", "in.csv", "in.txt", "in.jsonl", "in.csv", "in.txt", "data.noun"};
    int k = data[0] % 7;
    char *path = fuzz_write(NAME[k], data + 1, size - 1);
    StrVec out = {0};
    Err e;
    if (k == 6) ingest_read_wordnet(path, &out, &e);
    else ingest_read_file(path, FORMAT[k], "text", &out, &e);
    for (size_t i = 0; i < out.n; i++) check_normal(out.a[i], strlen(out.a[i]));
    check_normal((const char *)data + 1, size - 1);
    strvec_free(&out);
    free(path);
    return 0;
}

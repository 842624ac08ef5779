/* fuzz.h -- what every libFuzzer target in tests/fuzz needs: the entry
 * points, a NUL-terminated copy of the input, a private temporary directory
 * for the loaders that take a path (removed at exit), and FUZZ_CHECK, which
 * turns a broken property (a round trip that does not come back) into a
 * crash libFuzzer records.  Targets must not leak: libFuzzer checks each
 * input for leaks.  tests/README.md says how to add a target. */
#ifndef HDISTILL_FUZZ_H
#define HDISTILL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A broken property: print it and abort (libFuzzer saves the input). */
#define FUZZ_CHECK(cond, ...)                                                    \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "FUZZ_CHECK failed %s:%d: %s -- ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
            abort();                                                             \
        }                                                                        \
    } while (0)

/* The input as a NUL-terminated string (caller frees). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size) {
    char *s = xmalloc(size + 1);
    if (size) memcpy(s, data, size);
    s[size] = 0;
    return s;
}

static char fuzz_dir_[512];

static inline void fuzz_rmdir_(void) {
    if (!fuzz_dir_[0]) return;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir_);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: cannot remove %s\n", fuzz_dir_);
}

/* A private directory for this process (created on first use). */
static inline const char *fuzz_dir(void) {
    if (!fuzz_dir_[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fuzz_dir_, sizeof fuzz_dir_, "%s/hdistill-fuzz.XXXXXX", t && *t ? t : "/tmp");
        CHECK(mkdtemp(fuzz_dir_), "mkdtemp %s", fuzz_dir_);
        atexit(fuzz_rmdir_);
    }
    return fuzz_dir_;
}

/* Writes data to fuzz_dir()/name; returns the path (caller frees). */
static inline char *fuzz_write(const char *name, const uint8_t *data, size_t size) {
    char *path = xasprintf("%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    CHECK(f, "cannot write %s", path);
    CHECK(fwrite(data, 1, size, f) == size && fclose(f) == 0, "cannot write %s", path);
    return path;
}

#endif

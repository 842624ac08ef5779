/* test.h -- the tiny harness every test program uses.
 * EXPECT(cond, fmt, ...) counts one check; a failing one prints where and why.
 * test_summary() prints "N passed, N failed" last and returns the exit code. */
#ifndef HDISTILL_TEST_H
#define HDISTILL_TEST_H

#include <math.h>
#include <stdio.h>

static int test_passed = 0, test_failed = 0;

#define EXPECT(cond, ...)                                                   \
    do {                                                                    \
        if (cond) {                                                         \
            test_passed++;                                                  \
        } else {                                                            \
            test_failed++;                                                  \
            fprintf(stderr, "FAIL %s:%d: %s -- ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
        }                                                                   \
    } while (0)

/* max |a-b| / max(|b|, floor) over n values */
static inline double test_max_rel_err(const float *a, const float *b, long n, double floor_) {
    double worst = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        double s = fabs((double)b[i]);
        if (s < floor_) s = floor_;
        if (d / s > worst || d != d) worst = (d != d) ? INFINITY : d / s;
    }
    return worst;
}

static inline int test_summary(void) {
    fflush(stdout);
    printf("%d passed, %d failed\n", test_passed, test_failed);
    fflush(stdout);
    return test_failed ? 1 : 0;
}

#endif

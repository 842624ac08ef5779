/* test_store -- io/store.h on files the fuzzers made (tests/fuzz/corpus):
 * a run.h5 whose string dataset fails to read half-way (a corrupt global
 * heap) is an error naming the dataset, and the strings HDF5 converted
 * before failing are freed (store_read_strings leaked them: found by
 * fuzz_h5_run; make test-asan checks the leak); the other datasets of the
 * file still read.  Run from the repository's root. */
#include <stdlib.h>
#include <string.h>

#include "io/store.h"
#include "test.h"
#include "base/util.h"

static void test_vlen_read_fails_midway(void) {
    const char *path = "tests/fuzz/corpus/h5_run/crash_vlen_read_fails_midway.h5";
    Err e = {{0}};
    StoreFile *f = store_open(path, 0, &e);
    EXPECT(f != NULL, "%s", e.msg);
    if (!f) return;
    int64_t n = -1;
    char **s = store_read_strings(f, "/rounds/0/student/candidates", &n, &e);
    EXPECT(s == NULL && strstr(e.msg, "cannot read strings /rounds/0/student/candidates"), "corrupt strings: %s",
           s ? "read" : e.msg);
    store_free_strings(s, n);
    n = -1;
    s = store_read_strings(f, "/rounds/0/pairs/prompt", &n, &e);
    EXPECT(s != NULL && n == 2 && s[0][0], "an intact dataset of the same file: %s", s ? "" : e.msg);
    store_free_strings(s, n);
    char *obj = store_get_attr_str(f, "/eval", "objective", &e);
    EXPECT(obj && !strcmp(obj, "dpo"), "string attribute: %s", obj ? obj : e.msg);
    free(obj);
    store_close(f, NULL);
}

int main(void) {
    test_vlen_read_fails_midway();
    return test_summary();
}

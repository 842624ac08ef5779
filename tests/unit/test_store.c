/* test_store -- io/store.h round trips: every numeric type written and read
 * back (scalars, 1-D, 2-D, conversion between types, the element count
 * check), variable-length UTF-8 strings (1-D, 2-D, empty and NULL entries,
 * scalars) and fixed-length ones written by h5py, "description"
 * attributes, overwriting, attributes of every kind on the root, groups and
 * datasets, extendible series across the chunk size with truncation,
 * store_delete / store_list (an empty group: an empty list, not NULL) /
 * store_dims / store_exists, staged files (store_open_staged, commit,
 * abandon, close), and the errors:
 * missing, truncated and non-HDF5 files name the file, a missing object or
 * attribute names it, type mismatches are refused; and a file the fuzzers
 * made (tests/fuzz/corpus/h5_run): a run.h5 whose string dataset fails to
 * read half-way (a corrupt global heap) is an error naming the dataset, the
 * strings HDF5 converted before failing are freed (store_read_strings
 * leaked them: found by fuzz_h5_run; make test-asan checks the leak), and
 * the other datasets of the file still read; a dataspace larger than the
 * file can hold (a chunked dataset never written, dimensions whose product
 * overflows) is an error, not an allocation (store_read_alloc died asking
 * for 83 PB: found by fuzz_h5_run).  Run from the repository's root. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "base/util.h"
#include "io/store.h"
#include "test.h"

static char dir[256];

static char *path_in(const char *name) { return xasprintf("%s/%s", dir, name); }

static void numeric(void) {
    Err e = {{0}};
    char *p = path_in("num.h5");
    StoreFile *f = store_create(p, &e);
    EXPECT(f != NULL, "%s", e.msg);
    if (!f) return;
    EXPECT(!strcmp(store_path(f), p), "store_path");
    float f32[6] = {1.5f, -2.25f, 3e-30f, INFINITY, -0.0f, 7};
    double f64[3] = {M_PI, -1e300, 5e-324};
    int32_t i32[6] = {INT32_MIN, -1, 0, 1, INT32_MAX, 42};
    int64_t i64[2] = {INT64_MIN, INT64_MAX};
    uint64_t u64[4] = {0, 1, 0xffffffffffffffffULL, 0x8000000000000000ULL};
    uint8_t u8[5] = {0, 1, 127, 128, 255};
    int64_t d1 = 6, d2[2] = {2, 3}, d3 = 3, dd2 = 2, d4 = 4, d5 = 5;
    int rc = store_write_f32(f, "/a/b/f32", f32, 2, d2, "floats [2,3]", &e) ||
             store_write_f64(f, "/f64", f64, 1, &d3, "doubles", &e) ||
             store_write_i32(f, "/g/i32", i32, 1, &d1, NULL, &e) ||
             store_write_i64(f, "/g/i64", i64, 1, &dd2, "int64 extremes", &e) ||
             store_write_u64(f, "/g/u64", u64, 1, &d4, "uint64 extremes", &e) ||
             store_write_u8(f, "/g/u8", u8, 1, &d5, "bytes", &e);
    double sc = 2.5;
    int64_t sci = -77;
    rc = rc || store_write_f64(f, "/scalar", &sc, 0, NULL, "a scalar", &e) ||
         store_write_i64(f, "/scalar_i", &sci, 0, NULL, NULL, &e);
    EXPECT(rc == 0, "writes: %s", e.msg);
    EXPECT(store_close(f, &e) == 0, "%s", e.msg);
    f = store_open(p, 0, &e);
    EXPECT(f != NULL, "reopen: %s", e.msg);
    if (!f) return;
    float rf[6];
    double rd[3];
    int32_t ri[6];
    int64_t rl[2];
    uint64_t ru[4];
    EXPECT(store_read_f32(f, "/a/b/f32", rf, 6, &e) == 0 && !memcmp(rf, f32, sizeof f32), "f32 2-D: %s", e.msg);
    EXPECT(store_read_f64(f, "/f64", rd, 3, &e) == 0 && !memcmp(rd, f64, sizeof f64), "f64: %s", e.msg);
    EXPECT(store_read_i32(f, "/g/i32", ri, 6, &e) == 0 && !memcmp(ri, i32, sizeof i32), "i32: %s", e.msg);
    EXPECT(store_read_i64(f, "/g/i64", rl, 2, &e) == 0 && !memcmp(rl, i64, sizeof i64), "i64: %s", e.msg);
    EXPECT(store_read_u64(f, "/g/u64", ru, 4, &e) == 0 && !memcmp(ru, u64, sizeof u64), "u64: %s", e.msg);
    int64_t n = -1;
    uint8_t *rb = store_read_alloc(f, "/g/u8", 'b', &n, &e);
    EXPECT(rb && n == 5 && !memcmp(rb, u8, 5), "u8 via read_alloc: %s", e.msg);
    free(rb);
    float *af = store_read_alloc(f, "/a/b/f32", 'f', &n, &e);
    EXPECT(af && n == 6 && !memcmp(af, f32, sizeof f32), "read_alloc f");
    free(af);
    int64_t *al = store_read_alloc(f, "/g/i32", 'l', &n, &e);
    int conv = al && n == 6;
    for (int i = 0; conv && i < 6; i++) conv = al[i] == i32[i];
    EXPECT(conv, "int32 read as int64");
    free(al);
    double *ad = store_read_alloc(f, "/g/i32", 'd', &n, &e);
    EXPECT(ad && ad[0] == (double)INT32_MIN && ad[5] == 42.0, "int32 read as double");
    free(ad);
    int32_t *ai = store_read_alloc(f, "/g/u8", 'i', &n, &e);
    EXPECT(ai && ai[4] == 255 && ai[3] == 128, "uint8 read as int32 (unsigned)");
    free(ai);
    double rsc = 0;
    int64_t rsci = 0;
    EXPECT(store_read_f64(f, "/scalar", &rsc, 1, &e) == 0 && rsc == 2.5, "scalar: %s", e.msg);
    EXPECT(store_read_i64(f, "/scalar_i", &rsci, -1, &e) == 0 && rsci == -77, "scalar, any count: %s", e.msg);
    int nd = -1;
    int64_t dims[4];
    EXPECT(store_dims(f, "/a/b/f32", &nd, dims, &e) == 0 && nd == 2 && dims[0] == 2 && dims[1] == 3, "dims 2-D");
    EXPECT(store_dims(f, "/scalar", &nd, dims, &e) == 0 && nd == 0, "dims of a scalar: %d", nd);
    char *desc = store_get_attr_str(f, "/a/b/f32", "description", &e);
    EXPECT(desc && !strcmp(desc, "floats [2,3]"), "description attribute: %s", desc ? desc : e.msg);
    free(desc);
    EXPECT(store_get_attr_str(f, "/g/i32", "description", &e) == NULL && strstr(e.msg, "/g/i32") &&
               strstr(e.msg, "description"),
           "no description when desc is NULL: %s", e.msg);
    /* errors */
    e.msg[0] = 0;
    EXPECT(store_read_f32(f, "/a/b/f32", rf, 5, &e) != 0 && strstr(e.msg, p) && strstr(e.msg, "/a/b/f32") &&
               strstr(e.msg, "6 elements, expected 5"),
           "count mismatch: %s", e.msg);
    EXPECT(store_read_f64(f, "/nope/x", rd, 3, &e) != 0 && strstr(e.msg, p) && strstr(e.msg, "/nope/x"),
           "missing dataset: %s", e.msg);
    EXPECT(store_read_alloc(f, "/missing", 'd', &n, &e) == NULL && strstr(e.msg, "/missing"), "read_alloc missing: %s",
           e.msg);
    EXPECT(store_dims(f, "/missing", &nd, dims, &e) != 0 && strstr(e.msg, "/missing"), "dims missing: %s", e.msg);
    EXPECT(store_dims(f, "/g", &nd, dims, &e) != 0 && strstr(e.msg, "/g"), "dims of a group: %s", e.msg);
    EXPECT(store_read_strings(f, "/f64", &n, &e) == NULL && strstr(e.msg, "not a string"), "numbers as strings: %s",
           e.msg);
    EXPECT(store_read_f64(f, "/g", rd, -1, &e) != 0, "a group is not a dataset");
    /* writing to a read-only file fails with a message */
    EXPECT(store_write_f64(f, "/new", f64, 1, &d3, NULL, &e) != 0 && strstr(e.msg, p), "read-only write: %s", e.msg);
    store_close(f, NULL);
    /* overwrite with another shape and type */
    f = store_open(p, 1, &e);
    int64_t d7 = 7;
    double seven[7] = {1, 2, 3, 4, 5, 6, 7};
    EXPECT(f && store_write_f64(f, "/a/b/f32", seven, 1, &d7, "now doubles", &e) == 0, "overwrite: %s", e.msg);
    double r7[7];
    EXPECT(f && store_read_f64(f, "/a/b/f32", r7, 7, &e) == 0 && !memcmp(r7, seven, sizeof seven) &&
               store_dims(f, "/a/b/f32", &nd, dims, &e) == 0 && nd == 1 && dims[0] == 7,
           "overwritten dataset: %s", e.msg);
    desc = f ? store_get_attr_str(f, "/a/b/f32", "description", &e) : NULL;
    EXPECT(desc && !strcmp(desc, "now doubles"), "new description");
    free(desc);
    store_close(f, NULL);
    free(p);
    EXPECT(store_close(NULL, NULL) == 0, "store_close(NULL)");
}

static void strings(void) {
    Err e = {{0}};
    char *p = path_in("str.h5");
    StoreFile *f = store_create(p, &e);
    const char *s1[5] = {"plain", "", NULL, "caf\xC3\xA9 \xE4\xB8\xAD \xF0\x9F\x98\x80", "tab\tand\nnewline"};
    const char *s2[6] = {"a", "b", "", "d", NULL, "f\xC3\xBC"};
    int64_t d1 = 5, d2[2] = {3, 2};
    int rc = store_write_strings(f, "/s/one", s1, 1, &d1, "strings", &e) ||
             store_write_strings(f, "/s/two", s2, 2, d2, NULL, &e) ||
             store_write_string(f, "/s/scalar", "je\xC3\xBB", "one string", &e) ||
             store_write_string(f, "/s/empty", "", NULL, &e);
    EXPECT(rc == 0, "string writes: %s", e.msg);
    int64_t d0 = 0;
    EXPECT(store_write_strings(f, "/s/none", NULL, 1, &d0, NULL, &e) == 0, "no strings: %s", e.msg);
    store_close(f, NULL);
    f = store_open(p, 0, &e);
    int64_t n = -1;
    char **r = store_read_strings(f, "/s/one", &n, &e);
    int ok = r && n == 5;
    for (int i = 0; ok && i < 5; i++) ok = !strcmp(r[i], s1[i] ? s1[i] : "");
    EXPECT(ok, "1-D strings with UTF-8, \"\" and NULL -> \"\"");
    store_free_strings(r, n);
    r = store_read_strings(f, "/s/two", &n, &e);
    ok = r && n == 6;
    for (int i = 0; ok && i < 6; i++) ok = !strcmp(r[i], s2[i] ? s2[i] : "");
    EXPECT(ok, "2-D strings row-major");
    store_free_strings(r, n);
    int nd;
    int64_t dims[4];
    EXPECT(store_dims(f, "/s/two", &nd, dims, &e) == 0 && nd == 2 && dims[0] == 3 && dims[1] == 2, "2-D string dims");
    char *one = store_read_string(f, "/s/scalar", &e);
    EXPECT(one && !strcmp(one, "je\xC3\xBB"), "scalar string");
    free(one);
    one = store_read_string(f, "/s/empty", &e);
    EXPECT(one && !strcmp(one, ""), "empty scalar string");
    free(one);
    EXPECT(store_read_string(f, "/s/one", &e) == NULL && strstr(e.msg, "/s/one") && strstr(e.msg, "single"),
           "5 strings are not one: %s", e.msg);
    r = store_read_strings(f, "/s/none", &n, &e);
    EXPECT(r && n == 0, "an empty string dataset reads as 0 strings");
    store_free_strings(r, n);
    float x;
    EXPECT(store_read_f32(f, "/s/one", &x, -1, &e) != 0 && strstr(e.msg, "not numeric"), "strings as numbers: %s",
           e.msg);
    store_close(f, NULL);
    store_free_strings(NULL, 3);
    /* fixed-length strings and attributes written by h5py */
    char *q = path_in("fixed.h5");
    const char *py = "import h5py, numpy as np, sys\n"
                     "f = h5py.File(sys.argv[1], 'w')\n"
                     "f['fixed'] = np.array([b'ab', b'cde', b''], dtype='S3')\n"
                     "f['fixed'].attrs['vattr'] = 'variable \\u00e9'\n"
                     "f.attrs['fattr'] = np.bytes_(b'fixed')\n";
    char *argv[] = {"/usr/bin/python3", "-c", (char *)py, q, NULL};
    char *out = NULL;
    int st = test_run(argv, &out);
    EXPECT(st == 0, "h5py: %s", out);
    free(out);
    f = st == 0 ? store_open(q, 0, &e) : NULL;
    r = f ? store_read_strings(f, "/fixed", &n, &e) : NULL;
    EXPECT(r && n == 3 && !strcmp(r[0], "ab") && !strcmp(r[1], "cde") && !strcmp(r[2], ""), "fixed-length strings: %s",
           e.msg);
    store_free_strings(r, n);
    char *va = f ? store_get_attr_str(f, "/fixed", "vattr", &e) : NULL;
    char *fa = f ? store_get_attr_str(f, "/", "fattr", &e) : NULL;
    EXPECT(va && !strcmp(va, "variable \xC3\xA9") && fa && !strcmp(fa, "fixed"), "h5py string attributes: %s / %s",
           va ? va : "-", fa ? fa : "-");
    free(va), free(fa);
    store_close(f, NULL);
    free(q), free(p);
}

static void attributes_and_series(void) {
    Err e = {{0}};
    char *p = path_in("attr.h5");
    StoreFile *f = store_create(p, &e);
    double one = 1;
    int64_t d1 = 1;
    store_write_f64(f, "/grp/ds", &one, 1, &d1, NULL, &e);
    int rc = store_set_attr_str(f, "/", "format", "hdistill-test", &e) ||
             store_set_attr_i64(f, "/", "big", INT64_MIN, &e) || store_set_attr_f64(f, "/grp", "pi", M_PI, &e) ||
             store_set_attr_f64(f, "/grp", "nan", NAN, &e) || store_set_attr_str(f, "/grp/ds", "utf8", "\xC3\xA9t\xC3\xA9", &e) ||
             store_set_attr_str(f, "/grp/ds", "empty", "", &e) || store_set_attr_i64(f, "/grp/ds", "n", 5, &e);
    EXPECT(rc == 0, "attributes: %s", e.msg);
    /* replace an attribute with another type */
    EXPECT(store_set_attr_i64(f, "/grp/ds", "utf8", 9, &e) == 0 && store_set_attr_str(f, "/", "big", "text", &e) == 0,
           "retyped attributes: %s", e.msg);
    EXPECT(store_set_attr_i64(f, "/nothing", "x", 1, &e) != 0 && strstr(e.msg, "/nothing") && strstr(e.msg, p),
           "attribute on a missing object: %s", e.msg);
    store_close(f, NULL);
    f = store_open(p, 1, &e);
    char *s = store_get_attr_str(f, "/", "format", &e);
    EXPECT(s && !strcmp(s, "hdistill-test"), "root string attribute");
    free(s);
    s = store_get_attr_str(f, "/", "big", &e);
    EXPECT(s && !strcmp(s, "text"), "retyped to a string");
    free(s);
    s = store_get_attr_str(f, "/grp/ds", "empty", &e);
    EXPECT(s && !strcmp(s, ""), "empty string attribute");
    free(s);
    int64_t v = 0;
    double dv = 0;
    EXPECT(store_get_attr_i64(f, "/grp/ds", "utf8", &v, &e) == 0 && v == 9, "retyped to an integer");
    EXPECT(store_get_attr_i64(f, "/grp/ds", "n", &v, &e) == 0 && v == 5, "integer attribute");
    EXPECT(store_get_attr_f64(f, "/grp", "pi", &dv, &e) == 0 && dv == M_PI, "double attribute");
    EXPECT(store_get_attr_f64(f, "/grp", "nan", &dv, &e) == 0 && isnan(dv), "NaN attribute");
    EXPECT(store_get_attr_f64(f, "/grp/ds", "n", &dv, &e) == 0 && dv == 5.0, "integer attribute read as double");
    EXPECT(store_get_attr_i64(f, "/grp", "absent", &v, &e) != 0 && strstr(e.msg, "/grp") && strstr(e.msg, "absent") &&
               strstr(e.msg, p),
           "missing attribute: %s", e.msg);
    EXPECT(store_get_attr_f64(f, "/nope", "x", &dv, &e) != 0 && strstr(e.msg, "/nope"), "attribute of a missing object");
    EXPECT(store_get_attr_str(f, "/grp/ds", "n", &e) == NULL && strstr(e.msg, "n"), "an integer is not a string");

    /* series: appended in pieces across the 1024 chunk, truncated, appended again */
    double *x = xmalloc(sizeof(double) * 3000);
    int64_t *k = xmalloc(sizeof(int64_t) * 3000);
    for (int i = 0; i < 3000; i++) x[i] = i * 0.5, k[i] = (int64_t)i * 1000000007LL;
    rc = store_append_f64(f, "/m/x", x, 3, "series x", &e) || store_append_f64(f, "/m/x", x + 3, 1500, NULL, &e) ||
         store_append_f64(f, "/m/x", x + 1503, 1, NULL, &e) || store_append_i64(f, "/m/k", k, 2000, "series k", &e);
    EXPECT(rc == 0, "appends: %s", e.msg);
    int nd;
    int64_t dims[4], n;
    EXPECT(store_dims(f, "/m/x", &nd, dims, &e) == 0 && nd == 1 && dims[0] == 1504, "series length %lld",
           (long long)dims[0]);
    double *rx = store_read_alloc(f, "/m/x", 'd', &n, &e);
    EXPECT(rx && n == 1504 && !memcmp(rx, x, sizeof(double) * 1504), "series values");
    free(rx);
    s = store_get_attr_str(f, "/m/x", "description", &e);
    EXPECT(s && !strcmp(s, "series x"), "a series is described on creation");
    free(s);
    EXPECT(store_truncate(f, "/m/x", 10, &e) == 0 && store_dims(f, "/m/x", &nd, dims, &e) == 0 && dims[0] == 10,
           "truncate to 10: %lld", (long long)dims[0]);
    EXPECT(store_truncate(f, "/m/x", 100, &e) == 0 && store_dims(f, "/m/x", &nd, dims, &e) == 0 && dims[0] == 10,
           "truncate to more is a no-op");
    EXPECT(store_truncate(f, "/m/absent", 3, &e) == 0 && !store_exists(f, "/m/absent"), "truncate of nothing");
    EXPECT(store_append_f64(f, "/m/x", x + 500, 2, NULL, &e) == 0, "append after truncate");
    rx = store_read_alloc(f, "/m/x", 'd', &n, &e);
    EXPECT(rx && n == 12 && !memcmp(rx, x, sizeof(double) * 10) && rx[10] == x[500] && rx[11] == x[501],
           "appending continues at the truncated end");
    free(rx);
    int64_t *rk = store_read_alloc(f, "/m/k", 'l', &n, &e);
    EXPECT(rk && n == 2000 && !memcmp(rk, k, sizeof(int64_t) * 2000), "int64 series");
    free(rk);
    EXPECT(store_truncate(f, "/m/k", 0, &e) == 0 && store_dims(f, "/m/k", &nd, dims, &e) == 0 && dims[0] == 0,
           "truncate to 0");
    free(x), free(k);

    /* exists, list, delete */
    EXPECT(store_exists(f, "/") && store_exists(f, "/grp") && store_exists(f, "/grp/ds") && !store_exists(f, "/grp/no") &&
               !store_exists(f, "/no/deeper/path"),
           "store_exists");
    int nl = -1;
    char **names = store_list(f, "/", &nl);
    EXPECT(names && nl == 2 && !strcmp(names[0], "grp") && !strcmp(names[1], "m"), "list of / (%d)", nl);
    for (int i = 0; i < nl; i++) free(names[i]);
    free(names);
    names = store_list(f, "/m", &nl);
    EXPECT(names && nl == 2 && !strcmp(names[0], "k") && !strcmp(names[1], "x"), "list of /m, sorted");
    for (int i = 0; i < nl; i++) free(names[i]);
    free(names);
    nl = 5;
    EXPECT(store_list(f, "/grp/ds", &nl) == NULL && nl == 0, "a dataset is not a group");
    nl = 5;
    EXPECT(store_list(f, "/absent", &nl) == NULL && nl == 0, "list of a missing group");
    EXPECT(store_delete(f, "/grp/ds", &e) == 0 && !store_exists(f, "/grp/ds") && store_exists(f, "/grp"),
           "delete a dataset: %s", e.msg);
    nl = 5;
    names = store_list(f, "/grp", &nl);
    EXPECT(names != NULL && nl == 0, "an empty group: an empty list, not NULL (%d)", nl);
    free(names);
    EXPECT(store_delete(f, "/m", &e) == 0 && !store_exists(f, "/m/x") && !store_exists(f, "/m"), "delete a group");
    EXPECT(store_delete(f, "/m", &e) == 0 && store_delete(f, "/x/y/z", &e) == 0, "delete of nothing is a no-op");
    EXPECT(store_flush(f, &e) == 0, "flush: %s", e.msg);
    store_close(f, NULL);
    free(p);
}

static void bad_files(void) {
    Err e = {{0}};
    char *good = path_in("good.h5"), *cut = path_in("cut.h5"), *cut2 = path_in("cut2.h5"), *text = path_in("text.h5"),
         *missing = path_in("missing.h5");
    StoreFile *f = store_create(good, &e);
    double *x = xcalloc(20000, sizeof(double));
    int64_t n = 20000;
    store_write_f64(f, "/x", x, 1, &n, "zeros", &e);
    store_close(f, NULL);
    free(x);
    size_t len = 0;
    free(test_read_file(good, &len));
    test_copy_prefix(good, cut, (long)len / 2);
    test_copy_prefix(good, cut2, 100);
    test_write_file(text, "this is not HDF5\n", -1);
    const char *bad[] = {cut, cut2, text};
    for (int i = 0; i < 3; i++) {
        e.msg[0] = 0;
        f = store_open(bad[i], 0, &e);
        double y[20000];
        int rc = f ? store_read_f64(f, "/x", y, 20000, &e) : -1;
        EXPECT(rc != 0 && strstr(e.msg, bad[i]), "%s: %s", bad[i], e.msg);
        if (!f) EXPECT(strstr(e.msg, "not a readable HDF5 file") != NULL, "%s", e.msg);
        store_close(f, NULL);
    }
    EXPECT(store_open(missing, 0, &e) == NULL && strstr(e.msg, missing) && strstr(e.msg, "no such file"), "%s", e.msg);
    char *nodir = path_in("no/such/dir/x.h5");
    EXPECT(store_create(nodir, &e) == NULL && strstr(e.msg, nodir), "create in a missing directory: %s", e.msg);
    char ver[64];
    store_hdf5_version(ver, sizeof ver);
    EXPECT(!strncmp(ver, "HDF5 1.", 7), "version %s", ver);
    free(good), free(cut), free(cut2), free(text), free(missing), free(nodir);
}

/* store_open_staged: nothing at path before the first commit; a commit
 * publishes the copy's state and the writer goes on; a reader sees the last
 * commit while the writer has more; abandon drops the uncommitted part and
 * its copy; reopening starts from the file, close commits. */
static void staged(void) {
    Err e = {{0}};
    char *p = path_in("staged.h5"), *tmp = path_in("staged.h5.tmp");
    int64_t one = 1, v = 0;
    EXPECT(store_open_staged(p, 0, &e) == NULL && strstr(e.msg, p), "staged open of a missing file: %s", e.msg);
    StoreFile *f = store_open_staged(p, 1, &e);
    EXPECT(f != NULL, "staged create: %s", e.msg);
    if (!f) return;
    int64_t a = 1;
    EXPECT(store_write_i64(f, "/a", &a, 1, &one, NULL, &e) == 0 && !util_file_exists(p) && util_file_exists(tmp),
           "before the first commit only the copy exists");
    EXPECT(store_commit(f, &e) == 0 && util_file_exists(p) && store_since_commit(f) < 60, "commit: %s", e.msg);
    a = 2;
    int64_t b = 3;
    store_write_i64(f, "/a", &a, 1, &one, NULL, &e), store_write_i64(f, "/b", &b, 1, &one, NULL, &e);
    StoreFile *r = store_open(p, 0, &e);
    EXPECT(r && store_read_i64(r, "/a", &v, 1, &e) == 0 && v == 1 && !store_exists(r, "/b"),
           "a reader sees the last commit, not the writer's later changes (a = %lld)", (long long)v);
    store_close(r, NULL);
    store_abandon(f);
    r = store_open(p, 0, &e);
    EXPECT(r && store_read_i64(r, "/a", &v, 1, &e) == 0 && v == 1 && !store_exists(r, "/b") && !util_file_exists(tmp),
           "abandon drops the uncommitted changes and the copy");
    store_close(r, NULL);
    f = store_open_staged(p, 0, &e);
    EXPECT(f && store_read_i64(f, "/a", &v, 1, &e) == 0 && v == 1, "a reopened staged file starts from the file");
    if (f) store_write_i64(f, "/b", &b, 1, &one, NULL, &e);
    EXPECT(store_close(f, &e) == 0 && !util_file_exists(tmp), "close commits: %s", e.msg);
    r = store_open(p, 0, &e);
    EXPECT(r && store_read_i64(r, "/b", &v, 1, &e) == 0 && v == 3, "the closed file holds the last changes");
    store_close(r, NULL);
    free(p), free(tmp);
}

/* found by fuzz_h5_run: HDF5 1.10 loses the strings it converted before a
 * read fails half-way; store_read_strings frees them itself */
static void vlen_read_fails_midway(void) {
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

/* found by fuzz_h5_run: the dataspace of a corrupt run.h5 claimed 2^53
 * doubles and store_read_alloc died in xmalloc; a claim beyond 64 elements
 * per byte of the file is now an error naming the dataset */
static void huge_dataspace(void) {
    char *p = path_in("huge.h5");
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t big[1] = {(hsize_t)1 << 40}, chunk[1] = {1024}, two[2] = {(hsize_t)1 << 40, (hsize_t)1 << 40};
    hsize_t chunk2[2] = {32, 32}, small[1] = {10}, many[1] = {(hsize_t)1 << 30};
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE), pl2 = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(pl, 1, chunk), H5Pset_chunk(pl2, 2, chunk2);
    hid_t s1 = H5Screate_simple(1, big, NULL), s2 = H5Screate_simple(2, two, NULL);
    hid_t s3 = H5Screate_simple(1, small, NULL), s4 = H5Screate_simple(1, many, NULL);
    hid_t str = H5Tcopy(H5T_C_S1);
    H5Tset_size(str, H5T_VARIABLE);
    hid_t d1 = H5Dcreate2(f, "/big", H5T_NATIVE_DOUBLE, s1, H5P_DEFAULT, pl, H5P_DEFAULT);
    hid_t d2 = H5Dcreate2(f, "/overflow", H5T_NATIVE_FLOAT, s2, H5P_DEFAULT, pl2, H5P_DEFAULT);
    hid_t d3 = H5Dcreate2(f, "/small", H5T_NATIVE_FLOAT, s3, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t d4 = H5Dcreate2(f, "/strings", str, s4, H5P_DEFAULT, pl, H5P_DEFAULT);
    EXPECT(f >= 0 && d1 >= 0 && d2 >= 0 && d3 >= 0 && d4 >= 0, "creating huge.h5");
    H5Dclose(d1), H5Dclose(d2), H5Dclose(d3), H5Dclose(d4), H5Tclose(str);
    H5Sclose(s1), H5Sclose(s2), H5Sclose(s3), H5Sclose(s4), H5Pclose(pl), H5Pclose(pl2), H5Fclose(f);
    Err e = {{0}};
    StoreFile *sf = store_open(p, 0, &e);
    EXPECT(sf != NULL, "%s", e.msg);
    if (sf) {
        int64_t n = -1;
        double *x = store_read_alloc(sf, "/big", 'd', &n, &e);
        EXPECT(!x && strstr(e.msg, "/big claims more elements than the file can hold"), "2^40 doubles: %s", e.msg);
        free(x);
        float *y = store_read_alloc(sf, "/overflow", 'f', &n, &e);
        EXPECT(!y && strstr(e.msg, "/overflow claims"), "2^80 floats: %s", e.msg);
        free(y);
        char **s = store_read_strings(sf, "/strings", &n, &e);
        EXPECT(!s && strstr(e.msg, "/strings claims"), "2^30 strings: %s", e.msg);
        store_free_strings(s, n);
        float *z = store_read_alloc(sf, "/small", 'f', &n, &e);
        EXPECT(z && n == 10 && z[0] == 0, "a small unwritten dataset still reads (its fill values): %s", z ? "" : e.msg);
        free(z);
        store_close(sf, NULL);
    }
    free(p);
}

int main(void) {
    char *d = test_tmpdir("store");
    snprintf(dir, sizeof dir, "%s", d);
    numeric();
    strings();
    attributes_and_series();
    bad_files();
    staged();
    vlen_read_fails_midway();
    huge_dataspace();
    test_rm_rf(d);
    free(d);
    return test_summary();
}

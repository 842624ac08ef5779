/* fuzz_h5_run -- the loaders of a mutated run.h5: `hdistill report DIR
 * --json` (stages/report.h: /eval and its judges), the training and
 * validation logs (metrics_read, metrics_val_read: io/metrics.h), and the
 * string datasets of the rounds and the evaluation as critique and the
 * analysis read them (store_read_strings, store_read_alloc).  Errors are
 * fine, but every HDF5 file and object is closed again afterwards; a crash
 * in our code is a bug (one inside HDF5 is HDF5's: see tests/README.md). */
#include "io/metrics.h"
#include "io/store.h"
#include "stages/report.h"
#include "fuzz.h"

#include <hdf5.h>

static const char *const STRINGS[] = {"/rounds/0/pairs/prompt", "/rounds/0/pairs/chosen", "/rounds/0/pairs/rejected",
                                      "/rounds/0/student/input", "/rounds/0/student/candidates",
                                      "/rounds/0/student/raw_ab", "/eval/eval/student", "/eval/eval/input", "/config"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *path = fuzz_write("run.h5", data, size);
    char *argv[] = {"hdistill", "report", (char *)fuzz_dir(), "--json", NULL}; /* main's argv */
    report_main(4, argv);
    Err e;
    StoreFile *f = store_open(path, 0, &e);
    if (f) {
        MetricLog log = {0};
        ValLog val = {0};
        metrics_read(f, "/metrics/train", &log, &e);
        metrics_val_read(f, &val, &e);
        metrics_free(&log);
        metrics_val_free(&val);
        for (size_t k = 0; k < sizeof STRINGS / sizeof *STRINGS; k++) {
            int64_t n = 0;
            char **s = store_read_strings(f, STRINGS[k], &n, &e);
            store_free_strings(s, n);
        }
        int64_t n = 0;
        double *p = store_read_alloc(f, "/rounds/0/student/p", 'd', &n, &e);
        free(p);
        int nl = 0;
        char **names = store_list(f, "/rounds", &nl);
        for (int i = 0; i < nl; i++) free(names[i]);
        free(names);
        store_close(f, NULL);
    }
    ssize_t open = H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL);
    FUZZ_CHECK(open == 0, "%zd HDF5 files or objects left open", open);
    free(path);
    return 0;
}

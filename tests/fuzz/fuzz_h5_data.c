/* fuzz_h5_data -- the loaders of a mutated data.h5 (ingest + teach):
 * dataset_load_pairs (io/dataset.h: /pairs or /inputs/train x
 * /teacher/paraphrases, refusals skipped), as train reads it, and
 * store_read_strings / store_dims of the datasets teach, critique and eval
 * read (io/store.h).  Errors are fine, but every HDF5 file and object is
 * closed again afterwards; a crash in our code is a bug (one inside HDF5 is
 * HDF5's: see tests/README.md). */
#include "engine/data.h"
#include "io/dataset.h"
#include "io/store.h"
#include "fuzz.h"

#include <hdf5.h>

static const char *const STRINGS[] = {"/inputs/train", "/inputs/eval", "/inputs/ood", "/teacher/paraphrases",
                                      "/teacher/eval/paraphrases", "/config", "/pairs/prompt"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *path = fuzz_write("data.h5", data, size);
    Pairs p;
    Err e;
    if (dataset_load_pairs(path, 0, &p, &e) == 0) {
        for (int64_t i = 0; i < p.n; i++) FUZZ_CHECK(p.prompt[i] && p.target[i], "pair %lld has no strings", (long long)i);
    }
    data_pairs_free(&p);
    StoreFile *f = store_open(path, 0, &e);
    if (f) {
        for (size_t k = 0; k < sizeof STRINGS / sizeof *STRINGS; k++) {
            int nd;
            int64_t dims[4], n = 0;
            store_dims(f, STRINGS[k], &nd, dims, &e);
            char **s = store_read_strings(f, STRINGS[k], &n, &e);
            if (s)
                for (int64_t i = 0; i < n; i++) FUZZ_CHECK(s[i], "%s[%lld] is NULL", STRINGS[k], (long long)i);
            store_free_strings(s, n);
        }
        int64_t v = 0;
        store_get_attr_i64(f, "/inputs", "n_train", &v, NULL);
        char *sig = store_get_attr_str(f, "/", "ingest_signature", NULL);
        free(sig);
        store_close(f, NULL);
    }
    ssize_t open = H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL);
    FUZZ_CHECK(open == 0, "%zd HDF5 files or objects left open", open);
    free(path);
    return 0;
}

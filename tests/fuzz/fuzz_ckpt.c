/* fuzz_ckpt -- the checkpoint loaders (io/ckpt.h) on a mutated checkpoint
 * file: ckpt_read_meta (model configuration, tokenizer, stored
 * configuration), the tokenizer rebuilt from what was read
 * (tokenizer_from_data), and, when the configuration is valid and small
 * (up to 4 Mi parameters), ckpt_read of parameters, AdamW moments, state and
 * both logs into a model of that configuration -- as resume does.  Errors
 * are fine, but every HDF5 file and object is closed again afterwards; a
 * crash in our code is a bug (one inside HDF5 is HDF5's: see
 * tests/README.md). */
#include "io/ckpt.h"
#include "fuzz.h"

#include <hdf5.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *path = fuzz_write("step_00000001.h5", data, size);
    ModelConfig cfg;
    TokenizerData td;
    char *json = NULL;
    Err e;
    if (ckpt_read_meta(path, &cfg, &td, &json, &e) == 0) {
        Tokenizer *t = tokenizer_from_data(&td, &e);
        tokenizer_destroy(t);
        tokenizer_data_free(&td);
        free(json);
        char why[256];
        if (model_config_check(&cfg, why, sizeof why) == 0 && model_param_count(&cfg) <= (4u << 20)) {
            Model m;
            model_init(&m, &cfg);
            float *mm = xmalloc(sizeof(float) * m.n_params), *vv = xmalloc(sizeof(float) * m.n_params);
            TrainState st;
            MetricLog log = {0};
            ValLog val = {0};
            ckpt_read(path, &m, mm, vv, &st, &log, &val, &e);
            metrics_free(&log);
            metrics_val_free(&val);
            free(mm), free(vv);
            model_free(&m);
        }
    }
    ssize_t open = H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL);
    FUZZ_CHECK(open == 0, "%zd HDF5 files or objects left open", open);
    free(path);
    return 0;
}

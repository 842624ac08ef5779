/* fuzz_safetensors -- the safetensors reader (io/safetensors.h) on an
 * arbitrary file: safetensors_open validates the header and tensor table;
 * every tensor's name, dtype and shape are read back, each readable one
 * (up to 1 Mi values) converted to float32; and the GPT-2 check of the
 * file against a tiny configuration (1 layer, d_model 8, 16 positions). */
#include "io/safetensors.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *path = fuzz_write("model.safetensors", data, size);
    Err e;
    SafetensorsFile *f = safetensors_open(path, &e);
    if (f) {
        int n = safetensors_count(f);
        FUZZ_CHECK(n >= 0, "count %d", n);
        for (int i = 0; i < n; i++) {
            const char *name = safetensors_name(f, i);
            FUZZ_CHECK(name && safetensors_dtype(f, i), "tensor %d without name or dtype", i);
            FUZZ_CHECK(safetensors_find(f, name) >= 0, "tensor %s not found by name", name);
            int64_t shape[4];
            int nd = safetensors_shape(f, i, shape);
            FUZZ_CHECK(nd >= 0 && nd <= 4, "ndim %d", nd);
            int64_t numel = 1;
            for (int k = 0; k < nd; k++) numel *= shape[k];
            if (!safetensors_readable(f, i) || numel > (1 << 20)) continue;
            float *x = xmalloc(sizeof(float) * (size_t)(numel ? numel : 1));
            safetensors_read_f32(f, i, x, &e);
            free(x);
        }
        safetensors_close(f);
    }
    ModelConfig c = model_config_gpt2(1, 2, 8, 0, 16);
    safetensors_check_gpt2(path, &c, &e);
    free(path);
    return 0;
}

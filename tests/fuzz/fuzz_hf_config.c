/* fuzz_hf_config -- hf_model_read_config (io/hfmodel.h) on arbitrary text
 * as a Hugging Face config.json: it must never crash; a configuration it
 * accepts must pass model_config_check (its contract). */
#include "io/hfmodel.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *path = fuzz_write("config.json", data, size);
    ModelConfig c;
    Err e;
    if (hf_model_read_config(fuzz_dir(), &c, &e) == 0) {
        char why[256];
        FUZZ_CHECK(model_config_check(&c, why, sizeof why) == 0, "accepted an invalid configuration: %s", why);
    } else {
        FUZZ_CHECK(e.msg[0] && !strchr(e.msg, '\n'), "error not one line: '%s'", e.msg);
    }
    free(path);
    return 0;
}

/* test_run.h -- a tiny trained-looking run for the tests of the student you can try (test_infer,
 * test_generate, test_modelsrv): run_dir/ckpt/step_<step>.h5 holding a random 2-layer GPT-2 of 32
 * positions (weights x20: sharper distributions than N(0, 0.02)), a BPE tokenizer trained on four
 * short texts, and the configuration with the overrides kv (NULL-terminated "key=value"). */
#ifndef HDISTILL_TEST_RUN_H
#define HDISTILL_TEST_RUN_H

#include <string.h>

#include "base/config.h"
#include "base/util.h"
#include "io/ckpt.h"

/* Writes the checkpoint; returns its path (malloc'd). */
static inline char *test_write_run(const char *run_dir, int64_t step, uint64_t seed, const char *const *kv,
                                   const char *argv0) {
    char *ck = xasprintf("%s/ckpt", run_dir);
    Err e;
    CHECK(util_mkdir_p(ck, &e) == 0, "%s", e.msg);
    const char *texts[] = {"the cat sat on the mat", "the dog sat on the log", "a cat and a dog", "caf\xC3\xA9 au lait"};
    size_t lens[4];
    for (int i = 0; i < 4; i++) lens[i] = strlen(texts[i]);
    Tokenizer *t = tokenizer_train(texts, lens, 4, 272, &e);
    CHECK(t, "%s", e.msg);
    TokenizerData td;
    tokenizer_to_data(t, &td);
    ModelConfig mc = model_config_gpt2(2, 2, 16, tokenizer_vocab_size(t), 32);
    Model m;
    model_init(&m, &mc);
    model_init_weights(&m, seed);
    for (size_t i = 0; i < m.n_params; i++) m.params[i] *= 20;
    Config c;
    config_init(&c);
    for (int i = 0; kv[i]; i++) CHECK(config_set(&c, kv[i], &e) == 0, "%s", e.msg);
    char *json = config_to_json(&c);
    Provenance prov;
    char *argv[] = {(char *)argv0, NULL};
    prov_collect(&prov, 1, argv, 1);
    TrainState st = {.step = step};
    MetricLog log = {0};
    ValLog val = {0};
    CHECK(ckpt_write(ck, &m, NULL, NULL, &st, &td, json, &prov, &log, &val, NULL, &e) == 0, "%s", e.msg);
    char *path = xasprintf("%s/step_%08lld.h5", ck, (long long)step);
    prov_free(&prov);
    free(json);
    config_free(&c);
    model_free(&m);
    tokenizer_data_free(&td);
    tokenizer_destroy(t);
    free(ck);
    return path;
}

#endif

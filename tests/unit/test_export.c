/* test_export -- stages/export.h on a tiny trained run (SFT in a one-rank
 * child): export_main writes DIR/model.safetensors, which reads back into
 * the checkpoint's parameters bitwise, and DIR/config.json describing
 * GPT2LMHeadModel with the checkpoint's dimensions and end-of-text id; a
 * checkpoint file may be given instead of the run, and --out=DIR works;
 * a truncated newest checkpoint is skipped but never renamed; a missing
 * --out, run directory or checkpoint, two sources or an unknown option exit
 * 2. */
#define TEST_STAGES
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "io/ckpt.h"
#include "io/safetensors.h"
#include "stages/export.h"
#include "test.h"

static int run_export(char **argv, char **out) {
    int argc = 0;
    while (argv[argc]) argc++;
    test_capture_begin(1);
    int rc = export_main(argc, argv);
    *out = test_capture_end();
    return rc;
}

static int num(const cJSON *j, const char *k, double want) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    return cJSON_IsNumber(v) && v->valuedouble == want;
}

/* the export in out_dir equals checkpoint ck */
static void check_export(const char *out_dir, const char *ck, const char *what) {
    Err e = {{0}};
    ModelConfig mc;
    TokenizerData td;
    if (ckpt_read_meta(ck, &mc, &td, NULL, &e) != 0) {
        EXPECT(0, "%s: %s", what, e.msg);
        return;
    }
    Model want, got;
    model_init(&want, &mc), model_init(&got, &mc);
    EXPECT(ckpt_read(ck, &want, NULL, NULL, NULL, NULL, NULL, &e) == 0, "%s", e.msg);
    char *st = xasprintf("%s/model.safetensors", out_dir), *cf = xasprintf("%s/config.json", out_dir);
    EXPECT(safetensors_read_gpt2(st, &got, NULL, 0, &e) == 0 && !memcmp(want.params, got.params, sizeof(float) * want.n_params),
           "%s: model.safetensors reads back bitwise: %s", what, e.msg);
    char *text = test_read_file(cf, NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    const cJSON *arch = j ? cJSON_GetObjectItemCaseSensitive(j, "architectures") : NULL;
    const cJSON *a0 = arch ? cJSON_GetArrayItem(arch, 0) : NULL;
    EXPECT(j && cJSON_IsString(a0) && !strcmp(a0->valuestring, "GPT2LMHeadModel") && num(j, "n_layer", mc.n_layer) &&
               num(j, "n_head", mc.n_head) && num(j, "n_embd", mc.d_model) && num(j, "vocab_size", mc.vocab_size) &&
               num(j, "n_positions", mc.max_seq_len) && num(j, "eos_token_id", td.eot_id),
           "%s: config.json describes the checkpoint's model", what);
    cJSON_Delete(j);
    free(text), free(st), free(cf);
    model_free(&want), model_free(&got);
    tokenizer_data_free(&td);
}

int main(void) {
    char *dir = test_tmpdir("export");
    char *pairs = xasprintf("%s/pairs.jsonl", dir), *setp = xasprintf("data.pairs=%s", pairs);
    ByteBuf b = {0};
    for (int i = 0; i < 24; i++) bytebuf_printf(&b, "{\"prompt\": \"item %d is here\", \"target\": \"here is item %d, ha\"}\n", i, i);
    test_write_file(pairs, b.a, (long)b.n);
    bytebuf_free(&b);
    const char *kv[] = {setp, "tokenizer.vocab_size=280", "train.seq_len=32", "train.steps=4", "train.ckpt_every=2",
                        "train.ckpt_keep=3", NULL};
    Config c;
    test_stage_config(&c, dir, kv);
    char *out = NULL;
    EXPECT(test_stage("train", &c, 0, NULL) == 0, "train a tiny run");
    char *ck2 = xasprintf("%s/ckpt/step_00000002.h5", c.run.dir), *ck4 = xasprintf("%s/ckpt/step_00000004.h5", c.run.dir);
    EXPECT(util_file_exists(ck2) && util_file_exists(ck4), "checkpoints 2 and 4");
    char *o1 = xasprintf("%s/out1", dir), *o2 = xasprintf("%s/out2/nested", dir), *o2eq = xasprintf("--out=%s", o2);
    char *a1[] = {"hdistill", "export", c.run.dir, "--out", o1, NULL};
    EXPECT(run_export(a1, &out) == 0 && strstr(out, "step 4"), "export of the run: %s", out);
    free(out);
    check_export(o1, ck4, "run directory");
    char *a2[] = {"hdistill", "export", ck2, o2eq, NULL};
    EXPECT(run_export(a2, &out) == 0, "export of a checkpoint file with --out=: %s", out);
    free(out);
    check_export(o2, ck2, "checkpoint file");
    /* a truncated newest checkpoint: the older one, and nothing renamed */
    size_t len;
    free(test_read_file(ck4, &len));
    char *cut = xasprintf("%s.cut", ck4), *bad = xasprintf("%s.bad", ck4), *o3 = xasprintf("%s/out3", dir);
    test_copy_prefix(ck4, cut, (long)len / 3);
    rename(cut, ck4);
    char *a3[] = {"hdistill", "export", c.run.dir, "--out", o3, NULL};
    EXPECT(run_export(a3, &out) == 0 && strstr(out, "step 2"), "truncated newest: the older one is exported: %s", out);
    free(out);
    check_export(o3, ck2, "after a truncated newest");
    EXPECT(util_file_exists(ck4) && !util_file_exists(bad), "export never renames a checkpoint");
    /* errors */
    char *empty = xasprintf("%s/emptyrun", dir), *nowhere = xasprintf("%s/nowhere", dir), *o4 = xasprintf("%s/out4", dir);
    Err e;
    util_mkdir_p(empty, &e);
    char *e1[] = {"hdistill", "export", c.run.dir, NULL};
    char *e2[] = {"hdistill", "export", c.run.dir, "--out", NULL};
    char *e3[] = {"hdistill", "export", nowhere, "--out", o4, NULL};
    char *e4[] = {"hdistill", "export", empty, "--out", o4, NULL};
    char *e5[] = {"hdistill", "export", c.run.dir, ck2, "--out", o4, NULL};
    char *e6[] = {"hdistill", "export", c.run.dir, "--out", o4, "--fp16", NULL};
    char *e7[] = {"hdistill", "export", "--out", o4, NULL};
    char **cases[] = {e1, e2, e3, e4, e5, e6, e7};
    const char *why[] = {"--out", "--out", "nowhere", "emptyrun", "more than one", "--fp16", "RUN_DIR"};
    for (int k = 0; k < 7; k++) {
        EXPECT(run_export(cases[k], &out) == EXIT_USAGE && strstr(out, why[k]), "case %d: exit 2 naming %s: %s", k + 1,
               why[k], out);
        free(out);
    }
    EXPECT(!util_file_exists(o4), "nothing written by a refused export");
    free(ck2), free(ck4), free(o1), free(o2), free(o2eq), free(cut), free(bad), free(o3), free(empty), free(nowhere), free(o4);
    free(pairs), free(setp);
    config_free(&c);
    test_rm_rf(dir);
    free(dir);
    return test_summary();
}

/* test_safetensors -- GPT-2 weights in the Hugging Face layout against an
 * independent reference (tests/ref/hf_gpt2.py: its own safetensors writer and
 * reader, and a float64 numpy GPT-2 forward with Conv1D [in, out] weights):
 *  - reading F32/F16/BF16/F64 files, with or without the "transformer."
 *    prefix and with the attention-mask buffers and a tied lm_head present,
 *    gives our model the reference's logits;
 *  - fewer token embeddings in the file than the model has (the extra rows
 *    keep their own values) and more positions (the first ones are used);
 *  - export (safetensors_write_gpt2 + config.json) read back by the
 *    reference is bitwise the same weights, in the same layout;
 *  - mismatched dimensions, truncated and corrupt files are one-line errors
 *    naming the file and the tensor. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/model.h"
#include "io/safetensors.h"
#include "io/store.h"
#include "test.h"
#include "base/util.h"

#define DIR "build/tmp"

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...) {
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    if (st != 0) fprintf(stderr, "command failed (%d): %s\n", st, cmd);
    return st;
}

/* make a reference file: L H C V P, dtype, prefix, extra flags */
static int make_ref(const char *name, int L, int H, int C, int V, int P, int ntok, const char *dtype,
                    const char *extra) {
    return sh("OMP_NUM_THREADS=1 /usr/bin/python3 tests/ref/hf_gpt2.py make " DIR "/%s.safetensors " DIR
              "/%s.ref.h5 --layers %d --heads %d --embd %d --vocab %d --positions %d --tokens %d --seed 7 "
              "--dtype %s %s >/dev/null",
              name, name, L, H, C, V, P, ntok, dtype, extra);
}

/* our logits for the reference's token sequence vs its float64 logits */
static double logits_error(Model *m, const char *name) {
    char path[256];
    snprintf(path, sizeof path, DIR "/%s.ref.h5", name);
    Err e;
    StoreFile *f = store_open(path, 0, &e);
    if (!f) {
        fprintf(stderr, "%s\n", e.msg);
        return INFINITY;
    }
    int nd;
    int64_t dims[4];
    store_dims(f, "/tokens", &nd, dims, &e);
    int T = (int)dims[0], V = m->cfg.vocab_size;
    int64_t rdims[4];
    store_dims(f, "/logits", &nd, rdims, &e);
    int Vr = (int)rdims[1];
    int32_t *tok = xmalloc(sizeof(int32_t) * (size_t)T);
    double *ref = xmalloc(sizeof(double) * (size_t)T * (size_t)Vr);
    store_read_i32(f, "/tokens", tok, T, &e);
    store_read_f64(f, "/logits", ref, (int64_t)T * Vr, &e);
    store_close(f, NULL);
    int *pos = xmalloc(sizeof(int) * (size_t)T), *seg = xcalloc((size_t)T, sizeof(int)),
        *tgt = xmalloc(sizeof(int) * (size_t)T);
    for (int t = 0; t < T; t++) pos[t] = t, tgt[t] = 0;
    model_alloc_acts(m, 1, T);
    ModelBatch b = {1, T, tok, pos, seg, tgt};
    int M = model_forward(m, &b);
    double worst = M == T ? 0 : INFINITY, scale = 1e-3;
    for (long i = 0; i < (long)T * Vr; i++)
        if (fabs(ref[i]) > scale) scale = fabs(ref[i]);
    /* the reference's vocabulary is the file's; ours may have extra rows at the end */
    for (int t = 0; t < T && M == T; t++)
        for (int v = 0; v < Vr && v < V; v++) {
            double d = fabs((double)m->logits[(size_t)t * V + v] - ref[(size_t)t * Vr + v]) / scale;
            if (d > worst || d != d) worst = d != d ? INFINITY : d;
        }
    free(tok), free(ref), free(pos), free(seg), free(tgt);
    return worst;
}

static void test_read(const char *dtype, const char *extra, double tol) {
    char name[64];
    snprintf(name, sizeof name, "st_%s%s", dtype, extra[0] ? "_x" : "");
    if (make_ref(name, 2, 4, 32, 97, 16, 16, dtype, extra) != 0) {
        EXPECT(0, "reference %s not made", name);
        return;
    }
    ModelConfig c = model_config_gpt2(2, 4, 32, 97, 16);
    Model m;
    model_init(&m, &c);
    model_init_weights(&m, 1);
    char path[256], info[256] = "";
    snprintf(path, sizeof path, DIR "/%s.safetensors", name);
    Err e;
    int rc = safetensors_read_gpt2(path, &m, info, sizeof info, &e);
    EXPECT(rc == 0, "%s: %s", path, e.msg);
    if (rc == 0) {
        double err = logits_error(&m, name);
        printf("%-5s %-40s logits max error %.2g (%s)\n", dtype, extra, err, info);
        EXPECT(err <= tol, "%s %s: logits error %g > %g", dtype, extra, err, tol);
        EXPECT(strstr(info, dtype) != NULL, "info names the dtype: %s", info);
    }
    model_free(&m);
}

/* a file with fewer tokens and more positions than the model */
static void test_rows(void) {
    if (make_ref("st_rows", 2, 2, 32, 90, 40, 12, "F32", "") != 0) {
        EXPECT(0, "reference not made");
        return;
    }
    ModelConfig c = model_config_gpt2(2, 2, 32, 95, 12);
    Model m;
    model_init(&m, &c);
    model_init_weights(&m, 5);
    const ModelTensor *wte = model_find_tensor(&m, "wte");
    float *keep = xmalloc(sizeof(float) * 5 * 32);
    memcpy(keep, m.params + wte->offset + 90 * 32, sizeof(float) * 5 * 32);
    Err e;
    char info[256] = "";
    int rc = safetensors_read_gpt2(DIR "/st_rows.safetensors", &m, info, sizeof info, &e);
    EXPECT(rc == 0, "%s", e.msg);
    EXPECT(strstr(info, "90 of 95 token embeddings") && strstr(info, "12 of 40 positions"), "info: %s", info);
    EXPECT(memcmp(keep, m.params + wte->offset + 90 * 32, sizeof(float) * 5 * 32) == 0,
           "the 5 token rows the file lacks keep their values");
    double err = logits_error(&m, "st_rows");
    printf("rows: logits max error %.2g over the file's 90 tokens (%s)\n", err, info);
    EXPECT(err <= 1e-5, "rows: logits error %g", err);
    free(keep);
    model_free(&m);
}

/* write -> the reference reads back bitwise the same weights */
static void test_export(void) {
    if (make_ref("st_rt", 3, 2, 24, 61, 20, 8, "F32", "") != 0) {
        EXPECT(0, "reference not made");
        return;
    }
    ModelConfig c = model_config_gpt2(3, 2, 24, 61, 20);
    Model m;
    model_init(&m, &c);
    Err e;
    EXPECT(safetensors_read_gpt2(DIR "/st_rt.safetensors", &m, NULL, 0, &e) == 0, "%s", e.msg);
    EXPECT(safetensors_write_gpt2(DIR "/st_rt_out.safetensors", &m, &e) == 0, "%s", e.msg);
    EXPECT(safetensors_write_hf_config(DIR "/st_rt_config.json", &c, 60, &e) == 0, "%s", e.msg);
    EXPECT(access(DIR "/st_rt_out.safetensors.tmp", F_OK) != 0, "no .tmp left behind");
    EXPECT(sh("/usr/bin/python3 tests/ref/hf_gpt2.py check " DIR "/st_rt_out.safetensors " DIR
              "/st_rt.ref.h5 --config " DIR "/st_rt_config.json") == 0,
           "the reference reads the export back as the same weights and configuration");
    /* and we read our own export to the same parameters */
    Model m2;
    model_init(&m2, &c);
    EXPECT(safetensors_read_gpt2(DIR "/st_rt_out.safetensors", &m2, NULL, 0, &e) == 0, "%s", e.msg);
    EXPECT(memcmp(m.params, m2.params, sizeof(float) * m.n_params) == 0, "read(write(m)) == m, bitwise");
    model_free(&m2);
    model_free(&m);
}

static void expect_error(const char *path, ModelConfig c, const char *want1, const char *want2) {
    Err e = {{0}};
    int rc = safetensors_check_gpt2(path, &c, &e);
    EXPECT(rc != 0, "%s: accepted for L%d d%d V%d P%d", path, c.n_layer, c.d_model, c.vocab_size, c.max_seq_len);
    EXPECT(rc != 0 && strstr(e.msg, path) && strstr(e.msg, want1) && (!want2 || strstr(e.msg, want2)) &&
               !strchr(e.msg, '\n'),
           "message '%s' should name the file, '%s'%s%s", e.msg, want1, want2 ? " and " : "", want2 ? want2 : "");
    if (rc != 0) printf("  error as expected: %s\n", e.msg);
}

static void copy_file(const char *from, const char *to, long keep_bytes, long flip_at) {
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    int ch;
    long i = 0;
    while (a && b && (ch = fgetc(a)) != EOF && (keep_bytes < 0 || i < keep_bytes)) {
        if (i == flip_at) ch ^= 0x5a;
        fputc(ch, b);
        i++;
    }
    if (a) fclose(a);
    if (b) fclose(b);
}

static void test_errors(void) {
    const char *p = DIR "/st_F32.safetensors"; /* L2 H4 C32 V97 P16 */
    ModelConfig ok = model_config_gpt2(2, 4, 32, 97, 16);
    Err e;
    EXPECT(safetensors_check_gpt2(p, &ok, &e) == 0, "%s", e.msg);
    expect_error(p, model_config_gpt2(1, 4, 32, 97, 16), "h.1.", "more layers");
    expect_error(p, model_config_gpt2(3, 4, 32, 97, 16), "no tensor h.2.ln_1.weight", NULL);
    expect_error(p, model_config_gpt2(2, 4, 48, 97, 16), "has shape", "needs");
    expect_error(p, model_config_gpt2(2, 4, 32, 80, 16), "97 token embeddings", "tokenizer");
    expect_error(p, model_config_gpt2(2, 4, 32, 97, 64), "16 positions", "max_seq_len");
    struct stat sb;
    stat(p, &sb);
    copy_file(p, DIR "/st_trunc.safetensors", (long)sb.st_size - 100, -1);
    expect_error(DIR "/st_trunc.safetensors", ok, "truncated", NULL);
    copy_file(p, DIR "/st_short.safetensors", 5, -1);
    expect_error(DIR "/st_short.safetensors", ok, "not a safetensors file", NULL);
    copy_file(p, DIR "/st_hdr.safetensors", -1, 12); /* a byte inside the JSON header */
    expect_error(DIR "/st_hdr.safetensors", ok, "header", NULL);
    FILE *f = fopen(DIR "/st_text.safetensors", "w");
    fputs("this is not a safetensors file at all\n", f);
    fclose(f);
    expect_error(DIR "/st_text.safetensors", ok, "not a safetensors file", NULL);
    expect_error(DIR "/st_missing.safetensors", ok, "cannot open", NULL);
    /* hand-made headers: overlapping tensors, junk after the JSON, a control character in a name */
    const char *hdrs[][2] = {
        {"{\"wte.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"wpe.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "overlapping"},
        {"{\"wte.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", "not a JSON object"},
        {"{\"a\\nb\":{\"dtype\":\"F32\"}}", "tensor a?b: header entry without"},
        {"{\"wte.weight\":{\"dtype\":\"F32\",\"shape\":[1e300, 1e300],\"data_offsets\":[0,8]}}", "bad shape"},
    };
    for (size_t k = 0; k < sizeof hdrs / sizeof hdrs[0]; k++) {
        char path[128];
        snprintf(path, sizeof path, DIR "/st_hand%zu.safetensors", k);
        FILE *h = fopen(path, "wb");
        size_t n = strlen(hdrs[k][0]), padded = (n + 7) / 8 * 8;
        unsigned char len[8] = {0};
        for (int i = 0; i < 8; i++) len[i] = (unsigned char)(padded >> (8 * i));
        fwrite(len, 1, 8, h);
        fputs(hdrs[k][0], h);
        for (size_t i = n; i < padded + 8; i++) fputc(i < padded ? ' ' : 0, h); /* padding, then 8 data bytes */
        fclose(h);
        expect_error(path, ok, hdrs[k][1], NULL);
    }
}

int main(void) {
    mkdir("build", 0775);
    mkdir(DIR, 0775);
    test_read("F32", "", 1e-5);
    test_read("F32", "--prefix transformer. --buffers --lm-head", 1e-5);
    test_read("F16", "", 1e-5);
    test_read("BF16", "--prefix transformer.", 1e-5);
    test_read("F64", "--buffers", 1e-5);
    test_rows();
    test_export();
    test_errors();
    return test_summary();
}

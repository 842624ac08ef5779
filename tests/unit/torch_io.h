/* torch_io.h -- writes the input file of the PyTorch references
 * (tests/ref/torch_ref.py, tests/ref/torch_pref.py, tests/ref/torch_llama.py):
 * the model's dimensions as root attributes (for a Llama-style model also
 * arch "llama" and every Llama field of ModelConfig), every parameter under
 * /params, and one batch under /input (doc ids made from the packing
 * segments).  Returns an open file for the
 * caller to add to and close, or NULL (message printed). */
#ifndef HDISTILL_TORCH_IO_H
#define HDISTILL_TORCH_IO_H

#include <stdio.h>
#include <stdlib.h>

#include "engine/model.h"
#include "io/store.h"

static StoreFile *torch_io_write(const char *path, const Model *m, int B, int T, const int *tok, const int *tgt,
                                 const int *pos, const int *seg, const float *w) {
    Err e;
    StoreFile *f = store_create(path, &e);
    if (!f) {
        fprintf(stderr, "%s\n", e.msg);
        return NULL;
    }
    const ModelConfig *c = &m->cfg;
    const char *an[] = {"n_layer", "n_head", "d_model", "vocab_size", "max_seq_len", "B", "T"};
    int64_t av[] = {c->n_layer, c->n_head, c->d_model, c->vocab_size, c->max_seq_len, B, T};
    int rc = 0;
    for (int i = 0; i < 7 && rc == 0; i++) rc = store_set_attr_i64(f, "/", an[i], av[i], &e);
    if (c->arch == MODEL_LLAMA) { /* tests/ref/torch_llama.py reads these too */
        const char *ln[] = {"n_kv_head", "head_dim", "d_ff", "qkv_bias", "qk_norm", "tie_embeddings", "rope_llama3",
                            "rope_original_max_pos"};
        int64_t lv[] = {c->n_kv_head, c->head_dim, c->d_ff, c->qkv_bias, c->qk_norm, c->tie_embeddings,
                        c->rope_llama3, c->rope_original_max_pos};
        const char *rn[] = {"norm_eps", "rope_theta", "rope_factor", "rope_low_freq_factor", "rope_high_freq_factor"};
        double rv[] = {c->norm_eps, c->rope_theta, c->rope_factor, c->rope_low_freq_factor, c->rope_high_freq_factor};
        if (rc == 0) rc = store_set_attr_str(f, "/", "arch", "llama", &e);
        for (int i = 0; i < 8 && rc == 0; i++) rc = store_set_attr_i64(f, "/", ln[i], lv[i], &e);
        for (int i = 0; i < 5 && rc == 0; i++) rc = store_set_attr_f64(f, "/", rn[i], rv[i], &e);
    }
    for (int i = 0; i < m->n_tensors && rc == 0; i++) {
        const ModelTensor *t = &m->tensors[i];
        char obj[96];
        snprintf(obj, sizeof obj, "/params/%s", t->name);
        int64_t dims[2] = {t->shape[0], t->shape[1]};
        rc = store_write_f32(f, obj, m->params + t->offset, t->ndim, dims, NULL, &e);
    }
    int32_t *doc = malloc(sizeof(int32_t) * (size_t)B * T);
    for (int i = 0; i < B * T; i++) doc[i] = (i / T) * T + seg[i];
    int64_t dims[2] = {B, T};
    rc = rc || store_write_i32(f, "/input/tokens", tok, 2, dims, NULL, &e) ||
         store_write_i32(f, "/input/targets", tgt, 2, dims, NULL, &e) ||
         store_write_i32(f, "/input/pos", pos, 2, dims, NULL, &e) || store_write_i32(f, "/input/doc", doc, 2, dims, NULL, &e) ||
         store_write_f32(f, "/input/weights", w, 2, dims, NULL, &e);
    free(doc);
    if (rc) {
        fprintf(stderr, "%s\n", e.msg);
        store_close(f, NULL);
        return NULL;
    }
    return f;
}

#endif

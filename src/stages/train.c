/* train -- data-parallel supervised fine-tuning with checkpoint/resume; see
 * include/stages/train.h.  The step loop's protocol (stop agreement,
 * bookkeeping, checkpoints) is the trainer's (trainer.h). */
#include "stages/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/model.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/packer.h"
#include "io/ckpt.h"
#include "io/dataset.h"
#include "io/prov.h"
#include "io/safetensors.h"
#include "io/store.h"
#include "stages/student.h"
#include "stages/trainer.h"

/* ---- setup helpers -------------------------------------------------------- */

Tokenizer *train_build_tokenizer(const Config *cfg, const Pairs *pairs, Err *e) {
    if (cfg->tokenizer.type != TOKENIZER_TYPE_BPE) return student_load_tokenizer(cfg, e);
    size_t n = (size_t)pairs->n * 2;
    const char **texts = xmalloc(sizeof(char *) * n);
    size_t *lens = xmalloc(sizeof(size_t) * n);
    for (int64_t i = 0; i < pairs->n; i++) {
        texts[2 * i] = pairs->prompt[i];
        texts[2 * i + 1] = pairs->target[i];
        lens[2 * i] = strlen(pairs->prompt[i]);
        lens[2 * i + 1] = strlen(pairs->target[i]);
    }
    Tokenizer *t = tokenizer_train(texts, lens, n, cfg->tokenizer.vocab_size, e);
    if (!t)
        err_prefix(e, "%s: ", cfg->data.pairs), err_suffix(e, " (hint: lower tokenizer.vocab_size or give more pairs)");
    free(texts);
    free(lens);
    return t;
}

double train_lr_at(const Config *cfg, int64_t s, int64_t total) {
    return optim_lr(cfg->train.lr, cfg->train.min_lr_frac, cfg->train.warmup_steps,
                    cfg->train.schedule == SCHEDULE_COSINE, s, total);
}

/* ---- the run ---------------------------------------------------------------- */

/* How a global batch is cut: train.batch_size rows, rows_per_rank per rank,
 * in accum micro-batches of micro rows. */
typedef struct {
    int T, B_global, rows_per_rank, micro, accum;
} BatchLayout;

typedef struct {
    Trainer t;
    BatchLayout L;
    int64_t total_steps, rows_epoch, n_pairs, skipped;
    Examples train_ex, val_ex;
    /* the global batch */
    int *gtok, *gpos, *gseg, *gtgt;
    float *g;
    /* validation rows (packed once, unshuffled) */
    int64_t val_rows;
    int *vtok, *vpos, *vseg, *vtgt;
} Sft;

/* The batch layout; -1 with e set when the sizes do not divide (same on every rank). */
static int batch_layout(const Config *cfg, int W, BatchLayout *L, Err *e) {
    memset(L, 0, sizeof *L);
    L->T = cfg->train.seq_len;
    L->B_global = cfg->train.batch_size;
    if (L->B_global % W != 0)
        return err_set(e, "%s: train.batch_size %d is not divisible by the %d ranks", cfg->source, L->B_global, W);
    L->rows_per_rank = L->B_global / W;
    L->micro = cfg->train.micro_batch ? cfg->train.micro_batch : L->rows_per_rank;
    if (L->rows_per_rank % L->micro != 0)
        return err_set(e,
                       "%s: train.micro_batch %d does not divide the %d rows per rank "
                       "(batch_size %d / %d ranks)",
                       cfg->source, L->micro, L->rows_per_rank, L->B_global, W);
    L->accum = L->rows_per_rank / L->micro;
    return 0;
}

/* Rank 0: the tokenizer (the checkpoint's when resuming, else built) and the
 * tokenized pairs.  -1 with e set. */
static int load_examples(Sft *r, const CkptMeta *meta, Examples *all, Err *e) {
    const Config *cfg = r->t.cfg;
    Student *s = &r->t.s;
    Pairs pairs = {0};
    int rc = dataset_load_pairs(cfg->data.pairs, cfg->data.max_examples, &pairs, e);
    if (rc == 0 && meta->path) {
        s->tok = tokenizer_from_data(&meta->td, e);
        if (!s->tok) rc = -1;
        else tokenizer_to_data(s->tok, &s->td);
    } else if (rc == 0) {
        s->tok = train_build_tokenizer(cfg, &pairs, e);
        if (!s->tok) rc = -1;
        else tokenizer_to_data(s->tok, &s->td);
    }
    PromptFormat fmt = {0};
    if (rc == 0)
        rc = prompt_format_init(&fmt, s->tok, (PromptKind)cfg->student.format, cfg->student.instruction,
                                cfg->tokenizer.separator, e);
    if (rc == 0)
        rc = data_tokenize(&pairs, s->tok, &fmt, r->L.T, cfg->data.too_long == TOO_LONG_SKIP, cfg->data.pairs, all,
                           &r->skipped, e);
    prompt_format_free(&fmt);
    r->n_pairs = pairs.n;
    data_pairs_free(&pairs);
    return rc;
}

/* Collective: the examples on every rank, split into training and validation. */
static void share_examples(Sft *r, const CkptMeta *meta, int dry_run) {
    const Config *cfg = r->t.cfg;
    Err e = {{0}};
    Examples all = {0};
    int rc = r->t.comm->rank == 0 ? load_examples(r, meta, &all, &e) : 0;
    (void)dry_run;
    comm_check(rc, e.msg, EXIT_USAGE);
    dataset_bcast_tokenizer(&r->t.s.td);
    if (student_set_tokenizer(&r->t.s, cfg, &e) != 0) DIE("%s", e.msg); /* rank 0 built the same format above */
    dataset_bcast_examples(&all);
    comm_bcast_i64(&r->n_pairs, 1);
    comm_bcast_i64(&r->skipped, 1);
    data_split(&all, cfg->data.val_fraction, (uint64_t)cfg->train.seed, &r->train_ex, &r->val_ex);
    data_examples_free(&all);
}

/* Warns about options that differ from the checkpoint's configuration and
 * change the training trajectory (a resumed curve is then not the curve of
 * either configuration). */
static void warn_config_changes(const char *old_json, const char *new_json, const char *path) {
    static const char *keys[] = {"data.pairs", "data.max_examples", "data.val_fraction", "tokenizer.type",
                                 "tokenizer.vocab_size", "tokenizer.separator", "train.seq_len",
                                 "train.batch_size", "train.lr", "train.min_lr_frac", "train.warmup_steps",
                                 "train.schedule", "train.weight_decay", "train.beta1", "train.beta2",
                                 "train.eps", "train.grad_clip", "train.seed", "train.steps", "train.epochs",
                                 "model.preset", "model.init_from", "tokenizer.path", "student.format",
                                 "student.instruction"};
    Config a, b;
    Err e;
    config_init(&a);
    config_init(&b);
    if (config_load_json(&a, old_json, path, &e) == 0 && config_load_json(&b, new_json, "now", &e) == 0) {
        ByteBuf diff = {0};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            char va[512], vb[512];
            config_get_string(&a, keys[i], va, sizeof va);
            config_get_string(&b, keys[i], vb, sizeof vb);
            if (strcmp(va, vb)) bytebuf_printf(&diff, "%s%s %s -> %s", diff.n ? ", " : "", keys[i], va, vb);
        }
        if (diff.n)
            log_warn("resuming %s with changed options (%s): the curve is no longer that of one configuration",
                     path, diff.a);
        bytebuf_free(&diff);
    } else {
        log_warn("%s: cannot compare its configuration: %s", path, e.msg);
    }
    config_free(&a);
    config_free(&b);
}

/* Collective: the checks that need the model's configuration, before anything is allocated. */
static void check_model(const Sft *r, const ModelConfig *mc, const CkptMeta *meta) {
    const Config *cfg = r->t.cfg;
    const Comm *comm = r->t.comm;
    Err e = {{0}};
    int rc = 0;
    if (comm->rank == 0 && meta->path &&
        (meta->cfg.n_layer != mc->n_layer || meta->cfg.n_head != mc->n_head || meta->cfg.d_model != mc->d_model ||
         meta->cfg.vocab_size != mc->vocab_size || meta->cfg.max_seq_len != mc->max_seq_len ||
         meta->cfg.arch != mc->arch))
        rc = err_set(&e,
                     "%s holds a checkpoint of a different model (L%d d%d V%d vs L%d d%d V%d) "
                     "(hint: use a new run.dir)",
                     meta->path, meta->cfg.n_layer, meta->cfg.d_model, meta->cfg.vocab_size, mc->n_layer,
                     mc->d_model, mc->vocab_size);
    /* the model, optimizer and activations must fit: check before allocating */
    double need = (double)model_param_count(mc) * 16.0 + (double)model_activation_bytes(mc, r->L.micro, r->L.T);
    double phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (rc == 0 && phys > 0 && need * comm->local_size > 0.9 * phys)
        rc = err_set(&e,
                     "%s: %d rank(s) on this node need %.1f GiB each (model, AdamW, activations) but the node "
                     "has %.1f GiB (hint: lower train.micro_batch or train.seq_len, or use fewer ranks per node)",
                     cfg->source, comm->local_size, need / (1 << 30), phys / (1 << 30));
    /* pretrained weights to start from: check their shapes now (a fresh run only) */
    if (rc == 0 && comm->rank == 0 && !meta->path && cfg->model.init_from[0]) {
        if (student_check_init_from(cfg, mc, &e) != 0)
            rc = -1;
        else if (cfg->tokenizer.type == TOKENIZER_TYPE_BPE)
            log_warn("model.init_from with tokenizer.type %s: the weights' token embeddings are used as they "
                     "are, so the tokenizer must be the one they were trained with",
                     config_enum_name("tokenizer.type", cfg->tokenizer.type));
    }
    comm_check(rc, e.msg, EXIT_USAGE);
    if (comm->rank == 0 && meta->config_json) warn_config_changes(meta->config_json, r->t.config_json, meta->path);
}

static void print_plan(const Sft *r, const ModelConfig *c) {
    const BatchLayout *L = &r->L;
    size_t np = model_param_count(c);
    double state_gib = (double)np * 16 / (1 << 30);
    double act_gib = (double)model_activation_bytes(c, L->micro, L->T) / (1 << 30);
    double tok_mean = 0;
    int64_t tok_max = 0;
    for (int64_t i = 0; i < r->train_ex.n; i++) {
        int64_t len = r->train_ex.off[i + 1] - r->train_ex.off[i];
        tok_mean += (double)len;
        if (len > tok_max) tok_max = len;
    }
    tok_mean /= r->train_ex.n ? (double)r->train_ex.n : 1;
    log_info("plan:");
    log_info("parameters: %zu", np);
    log_info("  model: %s, %d layers, d_model %d, %d heads, vocab %d, %d positions", model_arch_name(c->arch),
             c->n_layer, c->d_model, c->n_head, c->vocab_size, c->max_seq_len);
    if (c->arch == MODEL_LLAMA)
        log_info("  llama: %d key/value heads, head_dim %d, ffn %d, rope theta %g%s, %s head%s%s", c->n_kv_head,
                 c->head_dim, c->d_ff, c->rope_theta, c->rope_llama3 ? " (llama3 scaling)" : "",
                 c->tie_embeddings ? "tied" : "untied", c->qkv_bias ? ", q/k/v biases" : "", c->qk_norm ? ", q/k norms" : "");
    log_info("  tokenizer: %s, %d ids", config_enum_name("tokenizer.type", r->t.cfg->tokenizer.type), c->vocab_size);
    log_info("  data: %lld pairs -> %lld train + %lld validation examples (%lld too long, skipped); "
             "tokens per example mean %.1f, max %lld",
             (long long)r->n_pairs, (long long)r->train_ex.n, (long long)r->val_ex.n, (long long)r->skipped, tok_mean,
             (long long)tok_max);
    log_info("  ranks: %d, threads per rank: %d", r->t.comm->size, r->t.threads);
    log_info("  batch: %d rows x %d tokens per step; per rank %d rows = %d micro-batches x %d rows", L->B_global,
             L->T, L->rows_per_rank, L->accum, L->micro);
    log_info("  steps: %lld (%lld rows per epoch, %.2f epochs)", (long long)r->total_steps, (long long)r->rows_epoch,
             r->rows_epoch ? (double)r->total_steps * L->B_global / (double)r->rows_epoch : 0.0);
    log_info("  memory per rank: %.3f GiB parameters+gradients+AdamW, %.3f GiB activations, %.3f GiB "
             "in all",
             state_gib, act_gib, state_gib + act_gib);
    log_info("  FLOPs per token (fwd+bwd): %.4g", model_flops_per_token(c, L->T));
}

int train_check_init_from(const Config *cfg, Err *e) {
    if (!cfg->model.init_from[0]) return 0;
    ModelConfig mc;
    if (student_model_config(cfg, 0, &mc, e) != 0) return -1; /* vocabulary 0: not known yet, not checked */
    return student_check_init_from(cfg, &mc, e);
}


/* Rank 0: create the run directory, open or create run.h5 and make its
 * metrics exactly the checkpoint's history.  -1 with e set. */
static int open_run_file(Sft *s, int resumed, Err *ep) {
    Trainer *r = &s->t;
    Err e;
    if (util_mkdir_p(r->ckpt_dir, ep) != 0) return -1;
    /* without a checkpoint nothing in an old run.h5 is worth keeping (it may
     * even describe another tokenizer): start it afresh */
    if (util_file_exists(r->run_path) && resumed) {
        r->run = store_open_staged(r->run_path, 0, &e);
        if (!r->run) { /* it opens and fails its checks: we own the run (its lock), so it is corrupt, not busy */
            char *aside = xasprintf("%s.corrupt.%ld", r->run_path, (long)util_wall());
            log_warn("%s; moving it to %s and rebuilding it from the checkpoint", e.msg, aside);
            int bad = rename(r->run_path, aside) != 0;
            free(aside);
            if (bad) return err_set(ep, "%s: unreadable and cannot be moved aside", r->run_path);
        }
    }
    int fresh = 0;
    if (!r->run) {
        r->run = store_open_staged(r->run_path, 1, ep);
        if (!r->run) return -1;
        fresh = 1;
    }
    int rc = 0;
    if (fresh) {
        rc = store_set_attr_str(r->run, "/", "format", "hdistill-run", &e) ||
             store_set_attr_i64(r->run, "/", "format_version", 1, &e) ||
             prov_write(r->run, "/provenance", &r->prov, &e) ||
             ckpt_write_tokenizer(r->run, "/tokenizer", &r->s.td, &e);
    } else if (resumed) {
        int64_t k = 0;
        while (1) {
            char g[64];
            snprintf(g, sizeof g, "/resumes/%lld", (long long)k);
            if (!store_exists(r->run, g)) break;
            k++;
        }
        char g[64];
        snprintf(g, sizeof g, "/resumes/%lld", (long long)k);
        rc = prov_write(r->run, g, &r->prov, &e) ||
             store_set_attr_i64(r->run, g, "from_step", r->s.st.step, &e);
    }
    if (rc == 0)
        rc = store_write_string(r->run, "/config", r->config_json, "resolved configuration (JSON)", &e);
    /* metrics: exactly the checkpoint's history, then append from there */
    const char *series[] = {"step", "loss", "lr", "grad_norm", "tokens", "time"};
    for (int i = 0; rc == 0 && i < 6; i++) {
        char obj[64];
        snprintf(obj, sizeof obj, "/metrics/train/%s", series[i]);
        rc = store_truncate(r->run, obj, fresh ? 0 : r->s.log.n, &e);
    }
    /* validation: exactly the checkpoint's series */
    if (rc == 0) rc = store_delete(r->run, "/metrics/val", &e);
    if (rc == 0 && r->s.val.n > 0)
        rc = store_append_i64(r->run, "/metrics/val/step", r->s.val.step, r->s.val.n, "optimizer step", &e) ||
             store_append_f64(r->run, "/metrics/val/loss", r->s.val.loss, r->s.val.n,
                              "mean cross-entropy per target token on the held-out pairs, nats", &e);
    if (rc == 0) {
        r->log_flushed = fresh ? 0 : r->s.log.n;
        if (metrics_append_to(r->run, "/metrics/train", &r->s.log, r->log_flushed, &e) != 0 ||
            store_commit(r->run, &e) != 0)
            rc = -1;
        r->log_flushed = r->s.log.n;
    }
    if (rc != 0) {
        *ep = e;
        store_abandon(r->run);
        r->run = NULL;
        return -1;
    }
    return 0;
}

/* Rank 0: what was resumed, and warnings when the arithmetic will differ. */
static void report_resume(const Sft *r) {
    const TrainState *st = &r->t.s.st;
    log_info("resuming from %s (step %lld)", r->t.s.path, (long long)st->step);
    if (st->world_size != r->t.comm->size)
        log_warn("checkpoint was written by %lld ranks, now %d: the data order is the "
                 "same, sums are rounded differently",
                 (long long)st->world_size, r->t.comm->size);
    if (st->threads != r->t.threads)
        log_warn("checkpoint was written with %lld threads per rank, now %d: OpenBLAS "
                 "rounds differently, so the curve will not be bitwise identical",
                 (long long)st->threads, r->t.threads);
}


/* ---- state -------------------------------------------------------------------- */

/* Rank 0: a fresh model (seeded, then model.init_from over it) and state.  -1 with e set. */
static int fresh_state(Sft *r, Err *e) {
    const Config *cfg = r->t.cfg;
    Student *s = &r->t.s;
    model_init_weights(&s->model, (uint64_t)cfg->train.seed);
    if (cfg->model.init_from[0]) { /* over the seeded ones: extra token rows keep those */
        char info[256];
        if (student_load_init_from(cfg, &s->model, info, sizeof info, e) != 0) return -1;
        log_info("initial weights from %s: %s", cfg->model.init_from, info);
    }
    memset(r->t.opt.m, 0, (r->t.opt.hi - r->t.opt.lo) * sizeof(float));
    memset(r->t.opt.v, 0, (r->t.opt.hi - r->t.opt.lo) * sizeof(float));
    memset(&s->st, 0, sizeof s->st);
    Rng rng;
    rng_seed(&rng, rng_derive((uint64_t)cfg->train.seed, 0x7a17, 0));
    memcpy(s->st.rng, rng.s, sizeof rng.s);
    metrics_free(&s->log);
    metrics_val_free(&s->val);
    return 0;
}

/* Collective: allocates the model and optimizer, resumes from the newest
 * readable checkpoint or starts fresh (rank 0), opens run.h5 and hands the
 * state to every rank. */
static void start_state(Sft *r, const ModelConfig *mc, CkptMeta *meta) {
    const Config *cfg = r->t.cfg;
    const Comm *comm = r->t.comm;
    Student *s = &r->t.s;
    Err e = {{0}};
    int rc = 0;
    model_init(&s->model, mc);
    optim_init(&r->t.opt, &s->model, cfg->train.beta1, cfg->train.beta2, cfg->train.eps, cfg->train.weight_decay,
               cfg->train.grad_clip);
    model_alloc_acts(&s->model, r->L.micro, r->L.T);
    int64_t resumed = 0;
    if (comm->rank == 0) {
        if (meta->path) {
            resumed = student_read_newest(s, &r->t.opt, r->t.ckpt_dir, meta, 1) == 0;
            if (resumed) report_resume(r);
            else log_warn("no checkpoint could be read back; starting from scratch");
        }
        if (!resumed) rc = fresh_state(r, &e);
        int made_dir = !util_file_exists(cfg->run.dir);
        if (rc == 0) rc = open_run_file(r, (int)resumed, &e);
        if (rc != 0 && made_dir) { /* leave nothing behind */
            rmdir(r->t.ckpt_dir);
            rmdir(cfg->run.dir);
        }
    }
    comm_check(rc, e.msg, EXIT_RUNTIME);
    comm_bcast_i64(&resumed, 1);
    student_bcast_state(s, &r->t.opt);
    r->t.last_ckpt = resumed ? s->st.step : -1;
    trainer_start_sync(&r->t);
}

/* Buffers of the global batch and the validation rows (packed once). */
static void alloc_rows(Sft *r) {
    int T = r->L.T;
    size_t gN = (size_t)r->L.B_global * T;
    r->gtok = xmalloc(sizeof(int) * gN), r->gpos = xmalloc(sizeof(int) * gN);
    r->gseg = xmalloc(sizeof(int) * gN), r->gtgt = xmalloc(sizeof(int) * gN);
    r->g = xmalloc(sizeof(float) * (size_t)r->L.micro * T);
    if (r->val_ex.n == 0) return;
    r->val_rows = packer_rows_for_epochs(&r->val_ex, 0, T, 0, 1.0);
    size_t vn = (size_t)r->val_rows * T;
    r->vtok = xmalloc(sizeof(int) * vn), r->vpos = xmalloc(sizeof(int) * vn);
    r->vseg = xmalloc(sizeof(int) * vn), r->vtgt = xmalloc(sizeof(int) * vn);
    Packer vp;
    packer_init(&vp, &r->val_ex, 0, T, 0);
    vp.one_pass = 1; /* every validation example exactly once */
    packer_next_rows(&vp, (int)r->val_rows, r->vtok, r->vpos, r->vseg, r->vtgt, r->t.s.eot);
    packer_free(&vp);
}

static void sft_free(Sft *r) {
    free(r->gtok), free(r->gpos), free(r->gseg), free(r->gtgt), free(r->g);
    free(r->vtok), free(r->vpos), free(r->vseg), free(r->vtgt);
    data_examples_free(&r->train_ex);
    data_examples_free(&r->val_ex);
    trainer_free(&r->t);
}

/* ---- steps ---------------------------------------------------------------------- */

/* Mean validation loss over all validation rows (collective). */
static double validate(Sft *r) {
    int W = r->t.comm->size, T = r->L.T, micro = r->L.micro;
    Model *m = &r->t.s.model;
    double acc[2] = {0, 0};
    for (int64_t row0 = (int64_t)r->t.comm->rank * micro; row0 < r->val_rows; row0 += (int64_t)W * micro) {
        int nb = (int)(r->val_rows - row0 < micro ? r->val_rows - row0 : micro);
        ModelBatch b = {nb, T, r->vtok + row0 * T, r->vpos + row0 * T, r->vseg + row0 * T, r->vtgt + row0 * T};
        int M = model_forward(m, &b);
        for (int k = 0; k < M; k++) acc[0] -= m->logp[k];
        acc[1] += M;
    }
    comm_allreduce_sum_f64(acc, 2);
    return acc[1] > 0 ? acc[0] / acc[1] : NAN;
}

static void record_validation(Sft *r) {
    if (r->val_rows == 0) return;
    double vl = validate(r);
    int64_t step = r->t.s.st.step;
    log_info("step %lld  validation loss %.4f", (long long)step, vl);
    if (r->t.comm->rank == 0) {
        Err e;
        metrics_val_push(&r->t.s.val, step, vl);
        if (store_append_i64(r->t.run, "/metrics/val/step", &step, 1, "optimizer step", &e) ||
            store_append_f64(r->t.run, "/metrics/val/loss", &vl, 1,
                             "mean cross-entropy per target token on the held-out pairs, nats", &e))
            DIE("%s", e.msg);
    }
}

/* One optimizer step on the global batch in g*; returns the global mean loss. */
static double train_step(Sft *r, double *gnorm_out, double *lr_out, int64_t *nloss_out) {
    const Config *cfg = r->t.cfg;
    const BatchLayout *L = &r->L;
    Model *m = &r->t.s.model;
    int T = L->T;
    int64_t nloss = 0;
    /* the global batch's loss-token count, known to every rank */
    for (int64_t i = 0; i < (int64_t)L->B_global * T; i++) nloss += r->gtgt[i] >= 0;
    model_zero_grad(m);
    double lsum = 0;
    float scale = nloss > 0 ? -1.0f / (float)nloss : 0.0f;
    gradsync_begin(r->t.gs);
    for (int k = 0; k < L->accum; k++) {
        int64_t row0 = (int64_t)r->t.comm->rank * L->rows_per_rank + (int64_t)k * L->micro;
        ModelBatch b = {L->micro, T, r->gtok + row0 * T, r->gpos + row0 * T, r->gseg + row0 * T, r->gtgt + row0 * T};
        int M = model_forward(m, &b);
        for (int q = 0; q < M; q++) {
            r->g[q] = scale;
            lsum -= m->logp[q];
        }
        if (k == L->accum - 1) gradsync_arm(r->t.gs); /* accumulation: only the last one reduces */
        model_backward(m, &b, r->g);
    }
    gradsync_finish(r->t.gs);
    if (r->t.comm->size > 1) comm_allreduce_sum_f64(&lsum, 1);
    double loss = nloss > 0 ? lsum / (double)nloss : 0.0;
    double lr = train_lr_at(cfg, r->t.s.st.step, r->total_steps);
    *gnorm_out = gradsync_step(r->t.gs, &r->t.opt, lr, r->t.s.st.step + 1);
    *lr_out = lr;
    *nloss_out = nloss;
    return loss;
}

static void progress_line(Sft *r, double loss, double lr, double gnorm) {
    Trainer *t = &r->t;
    int64_t step = t->s.st.step;
    double now = util_now();
    double eta = t->step_avg * (double)(r->total_steps - step);
    log_info("step %6lld/%lld  loss %.4f  lr %.3g  gnorm %.3f  %.0f tok/s  %.2f s/step  ETA %.0f s", (long long)step,
             (long long)r->total_steps, loss, lr, gnorm, t->tok_window / (now - t->t_window), t->step_avg, eta);
    t->tok_window = 0;
    t->t_window = now;
    trainer_flush(t);
}

/* The step loop; returns EXIT_OK or EXIT_STOPPED. */
static int train_loop(Sft *r) {
    const Config *cfg = r->t.cfg;
    Trainer *t = &r->t;
    Packer pk;
    packer_init(&pk, &r->train_ex, (uint64_t)cfg->train.seed, r->L.T, 1);
    pk.cur = t->s.st.cursor;
    int code = EXIT_OK;
    t->t_window = util_now();
    log_info("training: steps %lld..%lld", (long long)t->s.st.step + 1, (long long)r->total_steps);
    while (t->s.st.step < r->total_steps) {
        if (trainer_should_stop(t)) {
            code = EXIT_STOPPED;
            break;
        }
        double t0 = util_now();
        packer_next_rows(&pk, r->L.B_global, r->gtok, r->gpos, r->gseg, r->gtgt, t->s.eot);
        double gnorm, lr;
        int64_t nloss;
        double loss = train_step(r, &gnorm, &lr, &nloss);
        if (!isfinite(loss)) {
            if (t->comm->rank == 0)
                log_error("loss is %g at step %lld (hint: lower train.lr or raise train.warmup_steps)", loss,
                          (long long)t->s.st.step + 1);
            comm_exit(EXIT_RUNTIME);
        }
        t->s.st.cursor = pk.cur;
        trainer_step_done(t, loss, lr, gnorm, nloss, util_now() - t0);
        t->tok_window += (double)r->L.B_global * r->L.T;
        if (t->s.st.step % cfg->run.log_every == 0 || t->s.st.step == r->total_steps) progress_line(r, loss, lr, gnorm);
        /* validation first, so the checkpoint of the same step holds it */
        if (cfg->train.eval_every > 0 && t->s.st.step % cfg->train.eval_every == 0) record_validation(r);
        if (cfg->train.ckpt_every > 0 && t->s.st.step % cfg->train.ckpt_every == 0) trainer_checkpoint(t);
    }
    packer_free(&pk);
    return code;
}

/* After the loop: the last validation and checkpoint, the completion mark. */
static void train_finish(Sft *r, int code, int64_t start_step) {
    const Config *cfg = r->t.cfg;
    Trainer *t = &r->t;
    if (code == EXIT_OK && t->s.st.step > start_step && r->val_rows > 0 &&
        (cfg->train.eval_every == 0 || t->s.st.step % cfg->train.eval_every != 0)) {
        record_validation(r);
        t->last_ckpt = -1; /* the final checkpoint must hold it */
    }
    trainer_checkpoint(t);
    if (code == EXIT_OK) trainer_mark(t, "sft_complete", 1);
    if (t->comm->rank == 0 && t->s.log.n > 0)
        log_info("%s: step %lld, loss %.4f, %lld target tokens, %.1f s training", code == EXIT_OK ? "done" : "stopped",
                 (long long)t->s.st.step, t->s.log.loss[t->s.log.n - 1], (long long)t->s.st.tokens, t->s.st.elapsed);
    trainer_log_comm(t);
    trainer_close_run(t);
}

int train_main(const Config *cfg, const Comm *comm, int argc, char **argv, int dry_run) {
    Sft R;
    memset(&R, 0, sizeof R);
    Sft *r = &R;
    Err e = {{0}};
    comm_check(batch_layout(cfg, comm->size, &r->L, &e), e.msg, EXIT_USAGE);
    if (!dry_run) trainer_lock_run(cfg, comm);
    trainer_init(&r->t, cfg, comm, argc, argv);
    CkptMeta meta = {0};
    if (comm->rank == 0) ckpt_find_newest(r->t.ckpt_dir, !dry_run, -1, &meta);
    share_examples(r, &meta, dry_run);
    ModelConfig mc;
    int rc = comm->rank == 0 ? student_model_config(cfg, tokenizer_vocab_size(r->t.s.tok), &mc, &e) : 0;
    comm_check(rc, e.msg, EXIT_USAGE);
    comm_bcast(&mc, sizeof mc);
    check_model(r, &mc, &meta);
    r->rows_epoch = packer_rows_for_epochs(&r->train_ex, (uint64_t)cfg->train.seed, r->L.T, 1, 1.0);
    if (cfg->train.steps > 0) r->total_steps = cfg->train.steps;
    else {
        int64_t rows = packer_rows_for_epochs(&r->train_ex, (uint64_t)cfg->train.seed, r->L.T, 1, cfg->train.epochs);
        r->total_steps = (rows + r->L.B_global - 1) / r->L.B_global;
    }
    if (dry_run) {
        print_plan(r, &mc);
        if (meta.path) log_info("  resume: from %s", meta.path);
        log_info("dry run: configuration and data are valid; nothing was computed or written");
        ckpt_meta_free(&meta);
        sft_free(r);
        return EXIT_OK;
    }
    if (comm->rank == 0) {
        log_info("configuration (%s):", cfg->source);
        config_print(cfg, stdout);
        print_plan(r, &mc);
    }
    start_state(r, &mc, &meta);
    ckpt_meta_free(&meta);
    alloc_rows(r);
    if (r->t.s.st.step >= r->total_steps) {
        log_info("run %s is already complete (step %lld of %lld); nothing to do", cfg->run.dir,
                 (long long)r->t.s.st.step, (long long)r->total_steps);
        r->t.last_ckpt = r->t.s.st.step;
    }
    int64_t start_step = r->t.s.st.step;
    int code = train_loop(r);
    train_finish(r, code, start_step);
    sft_free(r);
    return code;
}

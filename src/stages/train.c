/* train -- data-parallel SFT with checkpoint/resume; see include/train.h. */
#include "stages/train.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/ckpt.h"
#include "engine/model.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "io/prov.h"
#include "io/safetensors.h"
#include "io/store.h"

/* ---- setup helpers -------------------------------------------------------- */

int train_pick_threads(const Config *cfg, const Comm *comm) {
    if (cfg->run.threads > 0) return cfg->run.threads;
    const char *envs[] = {"OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"};
    for (int i = 0; i < 2; i++) {
        const char *v = getenv(envs[i]);
        if (v && atoi(v) > 0) return atoi(v);
    }
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int t = (int)(cores / (comm->local_size > 0 ? comm->local_size : 1));
    return t > 0 ? t : 1;
}

Tokenizer *train_build_tokenizer(const Config *cfg, const Pairs *pairs, Err *e) {
    if (strcmp(cfg->tokenizer.type, "gpt2") == 0)
        return tokenizer_load_gpt2(cfg->tokenizer.gpt2_vocab, cfg->tokenizer.gpt2_merges, e);
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

int train_separator_ids(const Config *cfg, const Tokenizer *t, int *sep) {
    if (tokenizer_sep_id(t) >= 0) {
        sep[0] = tokenizer_sep_id(t);
        return 1;
    }
    IntVec v = {0};
    tokenizer_encode(t, cfg->tokenizer.separator, strlen(cfg->tokenizer.separator), &v);
    int n = (int)(v.n < 64 ? v.n : 64);
    for (int i = 0; i < n; i++) sep[i] = v.a[i];
    intvec_free(&v);
    return n;
}

double train_lr_at(const Config *cfg, int64_t s, int64_t total) {
    return optim_lr(cfg->train.lr, cfg->train.min_lr_frac, cfg->train.warmup_steps,
                    strcmp(cfg->train.schedule, "cosine") == 0, s, total);
}

/* ---- the run ---------------------------------------------------------------- */

typedef struct {
    const Config *cfg;
    const Comm *comm;
    int T, B_global, rows_per_rank, micro, accum;
    int64_t total_steps;
    Model model;
    Optim opt;
    TrainState st;
    MetricLog log; /* rank 0 */
    ValLog val;    /* rank 0 */
    int threads;
    int64_t log_flushed;
    Examples train_ex, val_ex;
    Tokenizer *tok;
    TokenizerData td;
    char *config_json;
    Provenance prov;
    StoreFile *run; /* rank 0 */
    char *ckpt_dir, *run_path, *stop_path;
    int64_t last_ckpt_step;
    double ckpt_seconds;
    /* global batch buffers */
    int *gtok, *gpos, *gseg, *gtgt;
    float *g;
    /* validation rows (packed once, unshuffled) */
    int64_t val_rows;
    int *vtok, *vpos, *vseg, *vtgt;
} Run;

static void flush_metrics(Run *r) {
    if (r->comm->rank != 0 || !r->run) return;
    Err e;
    if (metriclog_append_to(r->run, "/metrics/train", &r->log, r->log_flushed, &e) != 0 ||
        store_flush(r->run, &e) != 0)
        DIE("%s (hint: is the disk full?)", e.msg);
    r->log_flushed = r->log.n;
}

static void write_checkpoint(Run *r) {
    if (r->st.step == r->last_ckpt_step) return;
    flush_metrics(r);
    if (r->comm->rank == 0) {
        double t0 = util_now();
        Err e;
        char *path = NULL;
        r->st.world_size = r->comm->size;
        r->st.threads = r->threads;
        if (ckpt_write(r->ckpt_dir, &r->model, r->opt.m, r->opt.v, &r->st, &r->td, r->config_json,
                       &r->prov, &r->log, &r->val, &path, &e) != 0)
            DIE("checkpoint failed: %s (hint: is the disk full?)", e.msg);
        ckpt_prune(r->ckpt_dir, r->cfg->train.ckpt_keep, path);
        r->ckpt_seconds = util_now() - t0;
        log_info("checkpoint %s (%.2f s)", path, r->ckpt_seconds);
        free(path);
    }
    r->last_ckpt_step = r->st.step;
}

/* Mean validation loss over all validation rows (collective). */
static double validate(Run *r) {
    int W = r->comm->size, T = r->T;
    double acc[2] = {0, 0};
    for (int64_t row0 = (int64_t)r->comm->rank * r->micro; row0 < r->val_rows;
         row0 += (int64_t)W * r->micro) {
        int nb = (int)(r->val_rows - row0 < r->micro ? r->val_rows - row0 : r->micro);
        ModelBatch b = {nb, T, r->vtok + row0 * T, r->vpos + row0 * T, r->vseg + row0 * T,
                      r->vtgt + row0 * T};
        int M = model_forward(&r->model, &b);
        for (int m = 0; m < M; m++) acc[0] -= r->model.logp[m];
        acc[1] += M;
    }
    comm_allreduce_sum_f64(acc, 2);
    return acc[1] > 0 ? acc[0] / acc[1] : NAN;
}

static void record_validation(Run *r) {
    if (r->val_rows == 0) return;
    double vl = validate(r);
    log_info("step %lld  validation loss %.4f", (long long)r->st.step, vl);
    if (r->comm->rank == 0) {
        Err e;
        vallog_push(&r->val, r->st.step, vl);
        if (store_append_i64(r->run, "/metrics/val/step", &r->st.step, 1, "optimizer step", &e) ||
            store_append_f64(r->run, "/metrics/val/loss", &vl, 1,
                             "mean cross-entropy per target token on the held-out pairs, nats", &e))
            DIE("%s", e.msg);
    }
}

/* One optimizer step; returns the global mean loss. */
static double train_step(Run *r, double *gnorm_out, double *lr_out, int64_t *nloss_out) {
    const Config *cfg = r->cfg;
    int T = r->T;
    int64_t nloss = 0;
    /* the global batch's loss-token count, known to every rank */
    for (int64_t i = 0; i < (int64_t)r->B_global * T; i++) nloss += r->gtgt[i] >= 0;
    model_zero_grad(&r->model);
    double lsum = 0;
    float scale = nloss > 0 ? -1.0f / (float)nloss : 0.0f;
    for (int k = 0; k < r->accum; k++) {
        int64_t row0 = (int64_t)r->comm->rank * r->rows_per_rank + (int64_t)k * r->micro;
        ModelBatch b = {r->micro, T, r->gtok + row0 * T, r->gpos + row0 * T, r->gseg + row0 * T,
                      r->gtgt + row0 * T};
        int M = model_forward(&r->model, &b);
        for (int m = 0; m < M; m++) {
            r->g[m] = scale;
            lsum -= r->model.logp[m];
        }
        model_backward(&r->model, &b, r->g);
    }
    if (r->comm->size > 1) {
        comm_allreduce_sum_f32(r->model.grads, r->model.n_params);
        comm_allreduce_sum_f64(&lsum, 1);
    }
    double loss = nloss > 0 ? lsum / (double)nloss : 0.0;
    double lr = train_lr_at(cfg, r->st.step, r->total_steps);
    *gnorm_out = optim_step(&r->opt, &r->model, lr, r->st.step + 1);
    *lr_out = lr;
    *nloss_out = nloss;
    return loss;
}

/* Rank 0: create the run directory, open or create run.h5 and make its
 * metrics exactly the checkpoint's history.  -1 with e set. */
static int open_run_file(Run *r, int resumed, Err *ep) {
    Err e;
    if (util_mkdir_p(r->ckpt_dir, ep) != 0) return -1;
    /* without a checkpoint nothing in an old run.h5 is worth keeping (it may
     * even describe another tokenizer): start it afresh */
    if (util_file_exists(r->run_path) && resumed) {
        r->run = store_open(r->run_path, 1, &e);
        if (!r->run) {
            char *aside = xasprintf("%s.corrupt.%ld", r->run_path, (long)util_wall());
            log_warn("%s; moving it to %s and rebuilding it from the checkpoint", e.msg, aside);
            int bad = rename(r->run_path, aside) != 0;
            free(aside);
            if (bad) return err_set(ep, "%s: unreadable and cannot be moved aside", r->run_path);
        }
    }
    int fresh = 0;
    if (!r->run) {
        r->run = store_create(r->run_path, ep);
        if (!r->run) return -1;
        fresh = 1;
    }
    int rc = 0;
    if (fresh) {
        rc = store_set_attr_str(r->run, "/", "format", "hdistill-run", &e) ||
             store_set_attr_i64(r->run, "/", "format_version", 1, &e) ||
             prov_write(r->run, "/provenance", &r->prov, &e) ||
             ckpt_write_tokenizer(r->run, "/tokenizer", &r->td, &e);
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
             store_set_attr_i64(r->run, g, "from_step", r->st.step, &e);
    }
    if (rc == 0)
        rc = store_write_string(r->run, "/config", r->config_json, "resolved configuration (JSON)", &e);
    /* metrics: exactly the checkpoint's history, then append from there */
    const char *series[] = {"step", "loss", "lr", "grad_norm", "tokens", "time"};
    for (int i = 0; rc == 0 && i < 6; i++) {
        char obj[64];
        snprintf(obj, sizeof obj, "/metrics/train/%s", series[i]);
        rc = store_truncate(r->run, obj, fresh ? 0 : r->log.n, &e);
    }
    /* validation: exactly the checkpoint's series */
    if (rc == 0) rc = store_delete(r->run, "/metrics/val", &e);
    if (rc == 0 && r->val.n > 0)
        rc = store_append_i64(r->run, "/metrics/val/step", r->val.step, r->val.n, "optimizer step", &e) ||
             store_append_f64(r->run, "/metrics/val/loss", r->val.loss, r->val.n,
                              "mean cross-entropy per target token on the held-out pairs, nats", &e);
    if (rc == 0) {
        r->log_flushed = fresh ? 0 : r->log.n;
        if (metriclog_append_to(r->run, "/metrics/train", &r->log, r->log_flushed, &e) != 0 ||
            store_flush(r->run, &e) != 0)
            rc = -1;
        r->log_flushed = r->log.n;
    }
    if (rc != 0) {
        *ep = e;
        store_close(r->run, NULL);
        r->run = NULL;
        return -1;
    }
    return 0;
}

static void print_plan(const Run *r, const ModelDims *d, int64_t n_pairs, int64_t skipped,
                       int threads, int64_t rows_epoch) {
    const ModelConfig *c = &r->model.cfg;
    size_t np = model_param_count(c);
    double state_gib = (double)np * 16 / (1 << 30);
    double act_gib = (double)model_activation_bytes(c, r->micro, r->T) / (1 << 30);
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
    log_info("  model: %d layers, d_model %d, %d heads, vocab %d, %d positions", d->n_layer,
             d->d_model, d->n_head, c->vocab_size, c->max_seq_len);
    log_info("  tokenizer: %s, %d ids", r->cfg->tokenizer.type, c->vocab_size);
    log_info("  data: %lld pairs -> %lld train + %lld validation examples (%lld too long, skipped); "
             "tokens per example mean %.1f, max %lld",
             (long long)n_pairs, (long long)r->train_ex.n, (long long)r->val_ex.n, (long long)skipped,
             tok_mean, (long long)tok_max);
    log_info("  ranks: %d, threads per rank: %d", r->comm->size, threads);
    log_info("  batch: %d rows x %d tokens per step; per rank %d rows = %d micro-batches x %d rows",
             r->B_global, r->T, r->rows_per_rank, r->accum, r->micro);
    log_info("  steps: %lld (%lld rows per epoch, %.2f epochs)", (long long)r->total_steps,
             (long long)rows_epoch,
             rows_epoch ? (double)r->total_steps * r->B_global / (double)rows_epoch : 0.0);
    log_info("  memory per rank: %.3f GiB parameters+gradients+AdamW, %.3f GiB activations, %.3f GiB "
             "in all",
             state_gib, act_gib, state_gib + act_gib);
    log_info("  FLOPs per token (fwd+bwd): %.4g", model_flops_per_token(c, r->T));
}

/* Warns about options that differ from the checkpoint's configuration and
 * change the training trajectory (a resumed curve is then not the curve of
 * either configuration). */
static void warn_config_changes(const char *old_json, const char *new_json, const char *path) {
    static const char *keys[] = {"data.pairs", "data.max_examples", "data.val_fraction", "tokenizer.type",
                                 "tokenizer.vocab_size", "tokenizer.separator", "train.seq_len",
                                 "train.batch_size", "train.lr", "train.min_lr_frac", "train.warmup_steps",
                                 "train.schedule", "train.weight_decay", "train.beta1", "train.beta2",
                                 "train.eps", "train.grad_clip", "train.seed", "train.steps", "train.epochs"};
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

int train_check_init_from(const Config *cfg, Err *e) {
    if (!cfg->model.init_from[0]) return 0;
    ModelDims d;
    if (config_model_dims(cfg, &d, e) != 0) return -1;
    ModelConfig gc = model_config_gpt2(d.n_layer, d.n_head, d.d_model, strcmp(cfg->tokenizer.type, "bpe") ? 0 : cfg->tokenizer.vocab_size,
                    d.max_seq_len);
    if (safetensors_check_gpt2(cfg->model.init_from, &gc, e) != 0) return err_prefix(e, "model.init_from: ");
    return 0;
}

int train_main(const Config *cfg, const Comm *comm, int argc, char **argv, int dry_run) {
    double t_begin = util_now();
    util_install_stop_signals();
    Run R;
    memset(&R, 0, sizeof R);
    Run *r = &R;
    r->cfg = cfg;
    r->comm = comm;
    r->T = cfg->train.seq_len;
    r->B_global = cfg->train.batch_size;
    Err e = {{0}};
    int rc = 0;
    int W = comm->size;

    /* batch layout (every rank checks the same numbers) */
    if (r->B_global % W != 0)
        rc = err_set(&e, "%s: train.batch_size %d is not divisible by the %d ranks", cfg->source,
                     r->B_global, W);
    if (rc == 0) {
        r->rows_per_rank = r->B_global / W;
        r->micro = cfg->train.micro_batch ? cfg->train.micro_batch : r->rows_per_rank;
        if (r->rows_per_rank % r->micro != 0)
            rc = err_set(&e,
                         "%s: train.micro_batch %d does not divide the %d rows per rank "
                         "(batch_size %d / %d ranks)",
                         cfg->source, r->micro, r->rows_per_rank, r->B_global, W);
        r->accum = r->micro ? r->rows_per_rank / r->micro : 0;
    }
    comm_check(rc, e.msg, EXIT_USAGE);

    int threads = train_pick_threads(cfg, comm);
    r->threads = threads;
    par_init(threads);
    openblas_set_num_threads(threads);

    r->run_path = xasprintf("%s/run.h5", cfg->run.dir);
    r->ckpt_dir = xasprintf("%s/ckpt", cfg->run.dir);
    r->stop_path = xasprintf("%s/STOP", cfg->run.dir);
    r->config_json = config_to_json(cfg);

    /* rank 0: resume point, tokenizer, data */
    char *resume_path = NULL;
    char *ck_json = NULL;
    Pairs pairs = {0};
    Examples all = {0};
    int64_t skipped = 0;
    ModelConfig ck_cfg = {0};
    if (comm->rank == 0) {
        int n = 0;
        char **list = ckpt_list(r->ckpt_dir, &n);
        for (int i = 0; i < n && !resume_path; i++) {
            Err e2;
            if (ckpt_read_meta(list[i], &ck_cfg, &r->td, &ck_json, &e2) == 0) {
                resume_path = xstrdup(list[i]);
            } else {
                log_warn("unreadable checkpoint: %s", e2.msg);
                if (!dry_run) ckpt_quarantine(list[i]);
            }
        }
        ckpt_list_free(list, n);
        rc = data_load_pairs(cfg->data.pairs, cfg->data.max_examples, &pairs, &e);
        if (rc == 0 && resume_path) {
            r->tok = tokenizer_from_data(&r->td, &e);
            if (!r->tok) rc = -1;
        } else if (rc == 0) {
            r->tok = train_build_tokenizer(cfg, &pairs, &e);
            if (!r->tok) rc = -1;
            else tokenizer_to_data(r->tok, &r->td);
        }
        if (rc == 0) {
            int sep[64];
            int ns = train_separator_ids(cfg, r->tok, sep);
            rc = data_tokenize(&pairs, r->tok, sep, ns, r->T, strcmp(cfg->data.too_long, "skip") == 0,
                               cfg->data.pairs, &all, &skipped, &e);
        }
    }
    comm_check(rc, e.msg, EXIT_USAGE);
    data_tokenizer_bcast(&r->td);
    if (comm->rank != 0) {
        r->tok = tokenizer_from_data(&r->td, &e);
        if (!r->tok) DIE("%s", e.msg);
    }
    data_examples_bcast(&all);
    int64_t n_pairs = pairs.n;
    comm_bcast_i64(&n_pairs, 1);
    comm_bcast_i64(&skipped, 1);
    data_pairs_free(&pairs);
    data_split(&all, cfg->data.val_fraction, (uint64_t)cfg->train.seed, &r->train_ex, &r->val_ex);
    data_examples_free(&all);

    /* model configuration */
    ModelDims d;
    if (config_model_dims(cfg, &d, &e) != 0) DIE("%s", e.msg); /* validated before */
    ModelConfig gc = model_config_gpt2(d.n_layer, d.n_head, d.d_model, tokenizer_vocab_size(r->tok), d.max_seq_len);
    if (comm->rank == 0 && resume_path &&
        (ck_cfg.n_layer != gc.n_layer || ck_cfg.n_head != gc.n_head || ck_cfg.d_model != gc.d_model ||
         ck_cfg.vocab_size != gc.vocab_size || ck_cfg.max_seq_len != gc.max_seq_len))
        rc = err_set(&e,
                     "%s holds a checkpoint of a different model (L%d d%d V%d vs L%d d%d V%d) "
                     "(hint: use a new run.dir)",
                     resume_path, ck_cfg.n_layer, ck_cfg.d_model, ck_cfg.vocab_size, gc.n_layer,
                     gc.d_model, gc.vocab_size);
    /* the model, optimizer and activations must fit: check before allocating */
    double need = (double)model_param_count(&gc) * 16.0 + (double)model_activation_bytes(&gc, r->micro, r->T);
    double phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (rc == 0 && phys > 0 && need * comm->local_size > 0.9 * phys)
        rc = err_set(&e,
                     "%s: %d rank(s) on this node need %.1f GiB each (model, AdamW, activations) but the node "
                     "has %.1f GiB (hint: lower train.micro_batch or train.seq_len, or use fewer ranks per node)",
                     cfg->source, comm->local_size, need / (1 << 30), phys / (1 << 30));
    /* pretrained weights to start from: check their shapes now (a fresh run only) */
    if (rc == 0 && comm->rank == 0 && !resume_path && cfg->model.init_from[0]) {
        if (safetensors_check_gpt2(cfg->model.init_from, &gc, &e) != 0)
            rc = err_prefix(&e, "model.init_from: ");
        else if (strcmp(cfg->tokenizer.type, "gpt2") != 0)
            log_warn("model.init_from with tokenizer.type %s: the weights' token embeddings are used as they "
                     "are, so the tokenizer must be the one they were trained with",
                     cfg->tokenizer.type);
    }
    comm_check(rc, e.msg, EXIT_USAGE);
    if (comm->rank == 0 && ck_json) warn_config_changes(ck_json, r->config_json, resume_path);
    free(ck_json);

    int64_t rows_epoch = packer_rows_for_epochs(&r->train_ex, (uint64_t)cfg->train.seed, r->T, 1, 1.0);
    if (cfg->train.steps > 0) r->total_steps = cfg->train.steps;
    else {
        int64_t rows = packer_rows_for_epochs(&r->train_ex, (uint64_t)cfg->train.seed, r->T, 1,
                                              cfg->train.epochs);
        r->total_steps = (rows + r->B_global - 1) / r->B_global;
    }
    r->model.cfg = gc; /* for the plan */
    if (dry_run) {
        print_plan(r, &d, n_pairs, skipped, threads, rows_epoch);
        if (resume_path) log_info("  resume: from %s", resume_path);
        log_info("dry run: configuration and data are valid; nothing was computed or written");
        tokenizer_destroy(r->tok);
        tokenizer_data_free(&r->td);
        data_examples_free(&r->train_ex);
        data_examples_free(&r->val_ex);
        free(r->run_path), free(r->ckpt_dir), free(r->stop_path), free(r->config_json);
        free(resume_path);
        return EXIT_OK;
    }
    if (comm->rank == 0) {
        log_info("configuration (%s):", cfg->source);
        if (util_rank() == 0) config_print(cfg, stdout);
        print_plan(r, &d, n_pairs, skipped, threads, rows_epoch);
    }

    /* model, optimizer, state (allocated before anything is written) */
    model_init(&r->model, &gc);
    optim_init(&r->opt, &r->model, cfg->train.beta1, cfg->train.beta2, cfg->train.eps,
               cfg->train.weight_decay, cfg->train.grad_clip);
    model_alloc_acts(&r->model, r->micro, r->T);
    int resumed = 0;
    int made_dir = 0;
    if (comm->rank == 0) {
        prov_collect(&r->prov, argc, argv, W);
        if (resume_path) {
            int n = 0;
            char **list = ckpt_list(r->ckpt_dir, &n);
            for (int i = 0; i < n && !resumed; i++) {
                Err e2;
                if (ckpt_read(list[i], &r->model, r->opt.m, r->opt.v, &r->st, &r->log, &r->val, &e2) == 0) {
                    resumed = 1;
                    log_info("resuming from %s (step %lld)", list[i], (long long)r->st.step);
                    if (r->st.world_size != W)
                        log_warn("checkpoint was written by %lld ranks, now %d: the data order is the "
                                 "same, sums are rounded differently",
                                 (long long)r->st.world_size, W);
                    if (r->st.threads != threads)
                        log_warn("checkpoint was written with %lld threads per rank, now %d: OpenBLAS "
                                 "rounds differently, so the curve will not be bitwise identical",
                                 (long long)r->st.threads, threads);
                } else {
                    log_warn("unreadable checkpoint: %s", e2.msg);
                    ckpt_quarantine(list[i]);
                }
            }
            ckpt_list_free(list, n);
            if (!resumed) log_warn("no checkpoint could be read back; starting from scratch");
        }
        if (!resumed) {
            /* a failed read may have filled some buffers: start clean */
            model_init_weights(&r->model, (uint64_t)cfg->train.seed);
            if (cfg->model.init_from[0]) { /* over the seeded ones: extra token rows keep those */
                char info[256];
                if (safetensors_read_gpt2(cfg->model.init_from, &r->model, info, sizeof info, &e) != 0) {
                    err_prefix(&e, "model.init_from: ");
                    rc = -1;
                } else {
                    log_info("initial weights from %s: %s", cfg->model.init_from, info);
                }
            }
            memset(r->opt.m, 0, r->model.n_params * sizeof(float));
            memset(r->opt.v, 0, r->model.n_params * sizeof(float));
            memset(&r->st, 0, sizeof r->st);
            Rng rng;
            rng_seed(&rng, rng_derive((uint64_t)cfg->train.seed, 0x7a17, 0));
            memcpy(r->st.rng, rng.s, sizeof rng.s);
            metriclog_free(&r->log);
            vallog_free(&r->val);
        }
        made_dir = !util_file_exists(cfg->run.dir);
        if (rc == 0) rc = open_run_file(r, resumed, &e);
        if (rc != 0 && made_dir) { /* leave nothing behind */
            rmdir(r->ckpt_dir);
            rmdir(cfg->run.dir);
        }
    }
    comm_check(rc, e.msg, EXIT_RUNTIME);
    int64_t has_resume = resumed;
    comm_bcast_i64(&has_resume, 1);
    comm_bcast(r->model.params, r->model.n_params * sizeof(float));
    comm_bcast(r->opt.m, r->model.n_params * sizeof(float));
    comm_bcast(r->opt.v, r->model.n_params * sizeof(float));
    comm_bcast(&r->st, sizeof r->st);
    r->last_ckpt_step = has_resume ? r->st.step : -1;

    /* buffers */
    size_t gN = (size_t)r->B_global * r->T;
    r->gtok = xmalloc(sizeof(int) * gN), r->gpos = xmalloc(sizeof(int) * gN);
    r->gseg = xmalloc(sizeof(int) * gN), r->gtgt = xmalloc(sizeof(int) * gN);
    r->g = xmalloc(sizeof(float) * (size_t)r->micro * r->T);
    int eot = tokenizer_eot_id(r->tok);
    if (r->val_ex.n > 0) {
        r->val_rows = packer_rows_for_epochs(&r->val_ex, 0, r->T, 0, 1.0);
        size_t vn = (size_t)r->val_rows * r->T;
        r->vtok = xmalloc(sizeof(int) * vn), r->vpos = xmalloc(sizeof(int) * vn);
        r->vseg = xmalloc(sizeof(int) * vn), r->vtgt = xmalloc(sizeof(int) * vn);
        Packer vp;
        packer_init(&vp, &r->val_ex, 0, r->T, 0);
        vp.one_pass = 1; /* every validation example exactly once */
        packer_next_rows(&vp, (int)r->val_rows, r->vtok, r->vpos, r->vseg, r->vtgt, eot);
        packer_free(&vp);
    }
    Packer pk;
    packer_init(&pk, &r->train_ex, (uint64_t)cfg->train.seed, r->T, 1);
    pk.cur = r->st.cursor;

    if (r->st.step >= r->total_steps) {
        log_info("run %s is already complete (step %lld of %lld); nothing to do", cfg->run.dir,
                 (long long)r->st.step, (long long)r->total_steps);
        r->last_ckpt_step = r->st.step;
    }
    int64_t start_step = r->st.step;
    double run_t0 = t_begin, step_avg = 0; /* max_run_time counts from the start of the process's work */
    int exit_code = EXIT_OK;
    double tok_window = 0, t_window = util_now();
    log_info("training: steps %lld..%lld", (long long)r->st.step + 1, (long long)r->total_steps);
    while (r->st.step < r->total_steps) {
        /* stop requests, agreed by all ranks at the step boundary */
        int want = util_stop_signal() != 0;
        if (comm->rank == 0) {
            if (util_file_exists(r->stop_path)) want = 1;
            double ran = util_now() - run_t0;
            if (cfg->train.max_run_time > 0 &&
                ran + step_avg + (r->ckpt_seconds > 0 ? r->ckpt_seconds : 1.0) > cfg->train.max_run_time)
                want = 1;
        }
        if (comm_any(want)) {
            if (comm->rank == 0 && util_file_exists(r->stop_path)) unlink(r->stop_path); /* consumed */
            log_info("stop requested (%s) at step %lld: checkpointing and exiting with code %d",
                     util_stop_signal() ? "signal" : "STOP file or time limit", (long long)r->st.step,
                     EXIT_STOPPED);
            exit_code = EXIT_STOPPED;
            break;
        }
        double t0 = util_now();
        packer_next_rows(&pk, r->B_global, r->gtok, r->gpos, r->gseg, r->gtgt, eot);
        double gnorm, lr;
        int64_t nloss;
        double loss = train_step(r, &gnorm, &lr, &nloss);
        if (!isfinite(loss)) {
            if (comm->rank == 0)
                log_error("loss is %g at step %lld (hint: lower train.lr or raise train.warmup_steps)",
                          loss, (long long)r->st.step + 1);
            comm_exit(EXIT_RUNTIME);
        }
        r->st.step++;
        r->st.cursor = pk.cur;
        r->st.tokens += nloss;
        double dt = util_now() - t0;
        r->st.elapsed += dt;
        step_avg = step_avg > 0 ? 0.8 * step_avg + 0.2 * dt : dt;
        tok_window += (double)r->B_global * r->T;
        if (comm->rank == 0)
            metriclog_push(&r->log, r->st.step, loss, lr, gnorm, r->st.tokens, r->st.elapsed);
        if (r->st.step % cfg->run.log_every == 0 || r->st.step == r->total_steps) {
            double now = util_now();
            double eta = step_avg * (double)(r->total_steps - r->st.step);
            log_info("step %6lld/%lld  loss %.4f  lr %.3g  gnorm %.3f  %.0f tok/s  %.2f s/step  ETA %.0f s",
                     (long long)r->st.step, (long long)r->total_steps, loss, lr, gnorm,
                     tok_window / (now - t_window), step_avg, eta);
            tok_window = 0;
            t_window = now;
            flush_metrics(r);
        }
        /* validation first, so the checkpoint of the same step holds it */
        if (cfg->train.eval_every > 0 && r->st.step % cfg->train.eval_every == 0) record_validation(r);
        if (cfg->train.ckpt_every > 0 && r->st.step % cfg->train.ckpt_every == 0) write_checkpoint(r);
    }
    int did_work = r->st.step > start_step;
    if (exit_code == EXIT_OK && did_work && r->val_rows > 0 &&
        (cfg->train.eval_every == 0 || r->st.step % cfg->train.eval_every != 0)) {
        record_validation(r);
        r->last_ckpt_step = -1; /* the final checkpoint must hold it */
    }
    write_checkpoint(r);
    if (comm->rank == 0) {
        Err e2;
        flush_metrics(r);
        if (r->log.n > 0)
            log_info("%s: step %lld, loss %.4f, %lld target tokens, %.1f s training",
                     exit_code == EXIT_OK ? "done" : "stopped",
                     (long long)r->st.step, r->log.loss[r->log.n - 1], (long long)r->st.tokens,
                     r->st.elapsed);
        if (store_close(r->run, &e2) != 0) DIE("%s", e2.msg);
        r->run = NULL;
    }

    packer_free(&pk);
    free(r->gtok), free(r->gpos), free(r->gseg), free(r->gtgt), free(r->g);
    free(r->vtok), free(r->vpos), free(r->vseg), free(r->vtgt);
    optim_free(&r->opt);
    model_free(&r->model);
    metriclog_free(&r->log);
    vallog_free(&r->val);
    tokenizer_destroy(r->tok);
    tokenizer_data_free(&r->td);
    data_examples_free(&r->train_ex);
    data_examples_free(&r->val_ex);
    prov_free(&r->prov);
    free(r->run_path), free(r->ckpt_dir), free(r->stop_path), free(r->config_json);
    free(resume_path);
    return exit_code;
}

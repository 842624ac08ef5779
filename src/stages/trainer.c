/* trainer -- the shared training protocol; see include/stages/trainer.h. */
#include "stages/trainer.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/ckpt.h"
#include "io/lock.h"

void trainer_lock_run(const Config *cfg, const Comm *comm) {
    Err e = {{0}};
    int rc = comm->rank == 0 ? lock_acquire(cfg->run.dir, LOCK_RUN_DIR, cfg->run.lock_wait, &e) : 0;
    comm_check(rc, e.msg, EXIT_USAGE);
}

int trainer_setup_threads(const Config *cfg, const Comm *comm) {
    int t = cfg->run.threads;
    const char *envs[] = {"OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK"};
    for (int i = 0; i < 2 && t <= 0; i++) {
        const char *v = getenv(envs[i]);
        if (v && atoi(v) > 0) t = atoi(v);
    }
    if (t <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        t = (int)(cores / (comm->local_size > 0 ? comm->local_size : 1));
    }
    if (t <= 0) t = 1;
    par_init(t);
    openblas_set_num_threads(t);
    return t;
}

void trainer_init(Trainer *t, const Config *cfg, const Comm *comm, int argc, char **argv) {
    memset(t, 0, sizeof *t);
    t->cfg = cfg;
    t->comm = comm;
    t->t0 = util_now();
    util_install_stop_signals();
    t->threads = trainer_setup_threads(cfg, comm);
    t->run_path = xasprintf("%s/run.h5", cfg->run.dir);
    t->ckpt_dir = xasprintf("%s/ckpt", cfg->run.dir);
    t->stop_path = xasprintf("%s/STOP", cfg->run.dir);
    t->config_json = config_to_json(cfg);
    t->last_ckpt = -1;
    t->t_window = util_now();
    if (comm->rank == 0) prov_collect(&t->prov, argc, argv, comm->size);
}

void trainer_free(Trainer *t) {
    if (!t) return;
    store_abandon(t->run); /* after a failure; trainer_close_run commits */
    gradsync_free(t->gs);
    optim_free(&t->opt);
    student_free(&t->s);
    if (t->comm && t->comm->rank == 0) prov_free(&t->prov);
    free(t->run_path), free(t->ckpt_dir), free(t->stop_path), free(t->config_json);
    memset(t, 0, sizeof *t);
}

int trainer_open_run(Trainer *t, Err *e) {
    t->run = store_open_staged(t->run_path, 0, e);
    return t->run ? 0 : -1;
}

void trainer_flush(Trainer *t) {
    if (t->comm->rank != 0 || !t->run) return;
    Err e;
    if (metrics_append_to(t->run, "/metrics/train", &t->s.log, t->log_flushed, &e) != 0)
        DIE("%s (hint: is the disk full?)", e.msg);
    t->log_flushed = t->s.log.n;
    trainer_commit(t, 0);
}

void trainer_commit(Trainer *t, int force) {
    if (t->comm->rank != 0 || !t->run) return;
    if (!force && store_since_commit(t->run) < t->cfg->run.commit_seconds) return;
    Err e;
    if (store_commit(t->run, &e) != 0) DIE("%s (hint: is the disk full?)", e.msg);
}

void trainer_close_run(Trainer *t) {
    if (t->comm->rank != 0 || !t->run) return;
    trainer_flush(t);
    Err e;
    if (store_close(t->run, &e) != 0) DIE("%s", e.msg);
    t->run = NULL;
}

int trainer_should_stop(Trainer *t) {
    const Config *cfg = t->cfg;
    int want = util_stop_signal() != 0;
    if (t->comm->rank == 0) {
        if (util_file_exists(t->stop_path)) want = 1;
        double ran = util_now() - t->t0;
        double reserve = t->step_avg + (t->ckpt_seconds > 0 ? t->ckpt_seconds : 1.0);
        if (cfg->train.max_run_time > 0 && ran + reserve > cfg->train.max_run_time) want = 1;
    }
    if (!comm_any(want)) return 0;
    if (t->comm->rank == 0 && util_file_exists(t->stop_path)) unlink(t->stop_path); /* consumed */
    log_info("stop requested (%s) at step %lld: checkpointing and exiting with code %d",
             util_stop_signal() ? "signal" : "STOP file or time limit", (long long)t->s.st.step, EXIT_STOPPED);
    return 1;
}

void trainer_step_done(Trainer *t, double loss, double lr, double gnorm, int64_t ntok, double dt) {
    TrainState *st = &t->s.st;
    st->step++;
    st->tokens += ntok;
    st->elapsed += dt;
    t->step_avg = t->step_avg > 0 ? 0.8 * t->step_avg + 0.2 * dt : dt;
    if (t->comm->rank == 0) metrics_push(&t->s.log, st->step, loss, lr, gnorm, st->tokens, st->elapsed);
    Err e = {{0}};
    int rc = t->gs ? gradsync_trace_flush(t->gs, t->run, st->step, &e) : 0;
    if (rc != 0) DIE("%s: cannot append the trace: %s (hint: is the disk full?)", t->run_path, e.msg);
}

GradSyncOptions trainer_sync_options(const Config *cfg) {
    return (GradSyncOptions){.overlap = cfg->train.overlap,
                             .progress_thread = cfg->train.progress_thread,
                             .bucket = (size_t)(cfg->train.bucket_mb * 1e6 / sizeof(float)),
                             .shard = cfg->train.shard_optimizer,
                             .trace = cfg->train.trace};
}

void trainer_start_sync(Trainer *t) {
    gradsync_free(t->gs);
    GradSyncOptions o = trainer_sync_options(t->cfg);
    t->gs = gradsync_create(&t->s.model, t->comm, &o, t->t0);
}

void trainer_log_comm(const Trainer *t) {
    if (!t->gs || t->comm->size <= 1) return;
    double comm, hidden;
    gradsync_totals(t->gs, &comm, &hidden);
    log_info("gradient reduction: %.2f s on rank %d, %.0f %% of it hidden behind the backward pass (train.overlap=%d, "
             "%d ranks, train.progress_thread=%d)",
             comm, t->comm->rank, comm > 0 ? 100.0 * hidden / comm : 0.0, t->cfg->train.overlap, t->comm->size,
             t->cfg->train.progress_thread);
}

void trainer_checkpoint(Trainer *t) {
    if (t->s.st.step == t->last_ckpt) return;
    trainer_flush(t);
    trainer_commit(t, 1); /* run.h5 as complete as the checkpoint */
    t->s.st.world_size = t->comm->size;
    t->s.st.threads = t->threads;
    double t0 = util_now();
    Err e = {{0}};
    char *path = NULL;
    if (t->cfg->train.shard_optimizer && t->comm->size > 1) { /* sharded moments (gradsync_range): every rank writes its slice */
        size_t *bounds = xmalloc(sizeof(size_t) * (size_t)(t->comm->size + 1));
        model_shard_bounds(&t->s.model, t->comm->size, bounds);
        int rc = ckpt_write_sharded(t->comm, t->ckpt_dir, &t->s.model, bounds, t->opt.m, t->opt.v, &t->s.st,
                                    &t->s.td, t->config_json, &t->prov, &t->s.log, &t->s.val, &path, &e);
        free(bounds);
        if (rc) err_suffix(&e, " (hint: is the disk full? every rank must see %s)", t->ckpt_dir);
        comm_check_all(rc, e.msg, EXIT_RUNTIME); /* the same status and message on every rank */
    } else if (t->comm->rank == 0 && ckpt_write(t->ckpt_dir, &t->s.model, t->opt.m, t->opt.v, &t->s.st, &t->s.td,
                                                t->config_json, &t->prov, &t->s.log, &t->s.val, &path, &e) != 0) {
        DIE("checkpoint failed: %s (hint: is the disk full?)", e.msg);
    }
    if (t->comm->rank == 0) {
        ckpt_prune(t->ckpt_dir, t->cfg->train.ckpt_keep, path);
        t->ckpt_seconds = util_now() - t0;
        log_info("checkpoint %s (%.2f s)", path, t->ckpt_seconds);
    }
    free(path);
    t->last_ckpt = t->s.st.step;
}

void trainer_mark(Trainer *t, const char *name, int64_t value) {
    if (t->comm->rank != 0) return;
    Err e;
    if (!t->run || store_set_attr_i64(t->run, "/", name, value, &e) != 0 || store_commit(t->run, &e) != 0)
        DIE("%s: cannot mark %s: %s", t->run_path, name, t->run ? e.msg : "run.h5 is not open");
}

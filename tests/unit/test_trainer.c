/* test_trainer -- stages/trainer.h.  trainer_setup_threads: run.threads >
 * OMP_NUM_THREADS > SLURM_CPUS_PER_TASK > cores / ranks on the node (at
 * least 1), unusable values skipped, the pool set to it.  In a one-rank
 * child: trainer_init's paths; trainer_should_stop is 0 normally, 1 with a
 * STOP file (which it consumes), 1 when train.max_run_time (with its
 * reserve) is exceeded and 0 when it is far, 1 after SIGUSR1;
 * trainer_step_done's bookkeeping (step, tokens, elapsed, the step-time
 * average, the log entry); trainer_checkpoint writes once per step, records
 * world size and threads, prunes to train.ckpt_keep and flushes the metrics
 * into run.h5; trainer_mark sets a root attribute; trainer_open_run of a
 * missing run.h5 fails with a message. */
#define TEST_STAGES
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "io/ckpt.h"
#include "io/store.h"
#include "stages/trainer.h"
#include "test.h"

static void threads(void) {
    Config c;
    config_init(&c);
    Comm comm = {.rank = 0, .size = 1, .local_rank = 0, .local_size = 1};
    setenv("OMP_NUM_THREADS", "2", 1);
    setenv("SLURM_CPUS_PER_TASK", "4", 1);
    const char *t3[] = {"run.threads=3", NULL};
    test_config_set(&c, t3);
    EXPECT(trainer_setup_threads(&c, &comm) == 3 && par_nthreads() == 3, "run.threads wins");
    const char *t0[] = {"run.threads=0", NULL};
    test_config_set(&c, t0);
    EXPECT(trainer_setup_threads(&c, &comm) == 2 && par_nthreads() == 2, "then OMP_NUM_THREADS");
    unsetenv("OMP_NUM_THREADS");
    EXPECT(trainer_setup_threads(&c, &comm) == 4 && par_nthreads() == 4, "then SLURM_CPUS_PER_TASK");
    setenv("OMP_NUM_THREADS", "0", 1);
    EXPECT(trainer_setup_threads(&c, &comm) == 4, "OMP_NUM_THREADS=0 is skipped");
    setenv("OMP_NUM_THREADS", "lots", 1);
    EXPECT(trainer_setup_threads(&c, &comm) == 4, "OMP_NUM_THREADS=lots is skipped");
    unsetenv("OMP_NUM_THREADS"), unsetenv("SLURM_CPUS_PER_TASK");
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    EXPECT(trainer_setup_threads(&c, &comm) == (int)cores, "then the online cores (%ld)", cores);
    comm.local_size = 1000;
    EXPECT(trainer_setup_threads(&c, &comm) == 1 && par_nthreads() == 1, "at least 1 with many ranks per node");
    par_shutdown(); /* no pool across fork() */
    config_free(&c);
}

static char *dir;

static int child(const Comm *comm, void *ctx) {
    (void)ctx;
    Config c;
    char *rd = xasprintf("run.dir=%s/run", dir);
    const char *kv[] = {rd, "run.threads=1", "train.ckpt_keep=2", NULL};
    config_init(&c);
    test_config_set(&c, kv);
    char *argv[] = {"test_trainer", NULL};
    Trainer t;
    trainer_init(&t, &c, comm, 1, argv);
    char *want = xasprintf("%s/run/run.h5", dir), *wck = xasprintf("%s/run/ckpt", dir), *wstop = xasprintf("%s/run/STOP", dir);
    char *json = config_to_json(&c);
    EXPECT(!strcmp(t.run_path, want) && !strcmp(t.ckpt_dir, wck) && !strcmp(t.stop_path, wstop) &&
               !strcmp(t.config_json, json) && t.last_ckpt == -1 && t.threads == 1 && t.prov.n > 0,
           "trainer_init: paths, configuration, threads, provenance");
    free(json);
    Err e;
    util_mkdir_p(wck, &e);
    EXPECT(trainer_open_run(&t, &e) != 0 && strstr(e.msg, "run.h5"), "open of a missing run.h5: %s", e.msg);
    /* stop requests */
    EXPECT(trainer_should_stop(&t) == 0, "no reason to stop");
    test_write_file(wstop, "", 0);
    EXPECT(trainer_should_stop(&t) == 1, "a STOP file stops");
    EXPECT(!util_file_exists(wstop), "the STOP file is consumed");
    EXPECT(trainer_should_stop(&t) == 0, "and stops only once");
    c.train.max_run_time = 1e6;
    EXPECT(trainer_should_stop(&t) == 0, "a distant time limit does not stop");
    c.train.max_run_time = 0.5; /* less than the 1 s checkpoint reserve */
    EXPECT(trainer_should_stop(&t) == 1, "a time limit within the reserve stops");
    c.train.max_run_time = 0;
    /* bookkeeping */
    trainer_step_done(&t, 2.5, 1e-3, 0.7, 100, 0.25);
    trainer_step_done(&t, 2.0, 2e-3, 0.5, 50, 0.5);
    MetricLog *l = &t.s.log;
    EXPECT(t.s.st.step == 2 && t.s.st.tokens == 150 && t.s.st.elapsed == 0.75 && fabs(t.step_avg - 0.3) < 1e-12,
           "step %lld tokens %lld elapsed %g avg %g", (long long)t.s.st.step, (long long)t.s.st.tokens, t.s.st.elapsed,
           t.step_avg);
    EXPECT(l->n == 2 && l->step[1] == 2 && l->loss[1] == 2.0 && l->lr[1] == 2e-3 && l->grad_norm[1] == 0.5 &&
               l->tokens[1] == 150 && l->time[1] == 0.75 && l->step[0] == 1 && l->tokens[0] == 100,
           "log entries");
    /* checkpoints */
    const char *texts[] = {"the cat sat on the mat", "a cat and a dog"};
    size_t lens[2] = {22, 15};
    Tokenizer *tok = tokenizer_train(texts, lens, 2, 262, &e);
    CHECK(tok, "%s", e.msg);
    tokenizer_to_data(tok, &t.s.td);
    ModelConfig mc = model_config_gpt2(1, 2, 16, tokenizer_vocab_size(tok), 16);
    model_init(&t.s.model, &mc);
    model_init_weights(&t.s.model, 1);
    optim_init(&t.opt, &t.s.model, 0.9, 0.95, 1e-8, 0.1, 1.0);
    StoreFile *f = store_create(t.run_path, &e);
    store_close(f, NULL);
    EXPECT(trainer_open_run(&t, &e) == 0, "%s", e.msg);
    trainer_checkpoint(&t);
    char *c2 = xasprintf("%s/step_00000002.h5", wck);
    EXPECT(util_file_exists(c2) && t.last_ckpt == 2 && t.log_flushed == 2, "checkpoint of step 2, log flushed");
    TrainState st;
    Model m2;
    model_init(&m2, &mc);
    EXPECT(ckpt_read(c2, &m2, NULL, NULL, &st, NULL, NULL, &e) == 0 && st.step == 2 && st.world_size == 1 &&
               st.threads == 1 && !memcmp(m2.params, t.s.model.params, sizeof(float) * m2.n_params),
           "the checkpoint holds the state: %s", e.msg);
    model_free(&m2);
    unlink(c2);
    trainer_checkpoint(&t);
    EXPECT(!util_file_exists(c2), "a second checkpoint of the same step is not written");
    for (int s = 3; s <= 5; s++) {
        trainer_step_done(&t, 1.0, 1e-3, 0.1, 10, 0.1);
        trainer_checkpoint(&t);
    }
    int n = 0;
    char **list = ckpt_list(wck, &n);
    EXPECT(n == 2 && strstr(list[0], "step_00000005.h5") && strstr(list[1], "step_00000004.h5"),
           "pruned to train.ckpt_keep = 2 (%d)", n);
    ckpt_list_free(list, n);
    trainer_mark(&t, "sft_complete", 1);
    trainer_mark(&t, "custom_mark", -7);
    trainer_step_done(&t, 1.0, 1e-3, 0.1, 10, 0.1); /* flushed on close */
    trainer_close_run(&t);
    EXPECT(t.run == NULL, "closed");
    f = store_open(want, 0, &e);
    int64_t v1 = 0, v2 = 0, nst = 0;
    int64_t *steps = f ? store_read_alloc(f, "/metrics/train/step", 'l', &nst, &e) : NULL;
    EXPECT(f && store_get_attr_i64(f, "/", "sft_complete", &v1, &e) == 0 && v1 == 1 &&
               store_get_attr_i64(f, "/", "custom_mark", &v2, &e) == 0 && v2 == -7,
           "marks on run.h5's root");
    EXPECT(steps && nst == 6 && steps[0] == 1 && steps[5] == 6, "every step's metrics in run.h5 once (%lld)", (long long)nst);
    free(steps);
    store_close(f, NULL);
    /* a signal stops (last: the flag stays set) */
    raise(SIGUSR1);
    EXPECT(trainer_should_stop(&t) == 1, "SIGUSR1 stops");
    trainer_free(&t);
    tokenizer_destroy(tok);
    free(want), free(wck), free(wstop), free(c2), free(rd);
    config_free(&c);
    return 0;
}

int main(void) {
    threads();
    dir = test_tmpdir("trainer");
    EXPECT(test_with_mpi(child, NULL, NULL) == 0, "the child failed");
    test_rm_rf(dir);
    free(dir);
    return test_summary();
}

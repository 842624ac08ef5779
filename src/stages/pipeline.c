/* pipeline -- `hdistill run`; see include/stages/pipeline.h. */
#include "stages/pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "stages/critique.h"
#include "stages/eval.h"
#include "stages/ingest.h"
#include "io/ckpt.h"
#include "io/store.h"
#include "stages/teach.h"
#include "stages/train.h"
#include "stages/trainer.h"

/* rank 0 reads an integer attribute of a file (0 if absent); broadcast */
static int64_t flag(const Comm *comm, const char *path, const char *obj, const char *name) {
    int64_t v = 0;
    if (comm->rank == 0 && util_file_exists(path)) {
        Err e;
        StoreFile *f = store_open(path, 0, &e);
        if (f) {
            if (store_exists(f, obj)) store_get_attr_i64(f, obj, name, &v, NULL);
            store_close(f, NULL);
        }
    }
    comm_bcast_i64(&v, 1);
    return v;
}

int pipeline_main(const Config *cfg0, const Comm *comm, int argc, char **argv, int dry_run) {
    Config cfg = *cfg0; /* shallow: data.pairs may point at data.path; never freed here */
    if (!cfg.data.pairs[0]) cfg.data.pairs = cfg.data.path;
    char *run_path = xasprintf("%s/run.h5", cfg.run.dir);
    if (!dry_run) trainer_lock_run(&cfg, comm); /* one owner for the whole method; the stages take it again */
    /* pretrained weights that cannot be used must fail now, not after the teacher has been paid
     * (not once SFT has a checkpoint: a resumed run no longer needs them) */
    if (cfg.model.init_from[0] && !flag(comm, run_path, "/", "sft_complete")) {
        Err e = {{0}};
        int rc = 0;
        if (comm->rank == 0) {
            char *ck = xasprintf("%s/ckpt", cfg.run.dir);
            int n = 0;
            char **list = ckpt_list(ck, &n);
            ckpt_list_free(list, n);
            free(ck);
            if (n == 0) rc = train_check_init_from(&cfg, &e);
        }
        comm_check(rc, e.msg, EXIT_USAGE);
    }
    int code = ingest_main(&cfg, comm, argc, argv, dry_run);
    if (code == EXIT_OK) {
        int64_t have_data = comm->rank == 0 ? util_file_exists(cfg.data.path) : 0;
        comm_bcast_i64(&have_data, 1);
        if (flag(comm, cfg.data.path, "/teacher", "complete")) log_info("run: teach is complete; skipped");
        else if (dry_run && !have_data)
            log_info("run: dry run: teach is planned once ingest has written %s (the inputs above)", cfg.data.path);
        else code = teach_main(&cfg, comm, argc, argv, dry_run);
    }
    if (code == EXIT_OK && dry_run) {
        log_info("run: dry run stops before training (the teacher's answers are needed to plan it)");
        free(run_path);
        return EXIT_OK;
    }
    if (code == EXIT_OK) {
        if (flag(comm, run_path, "/", "sft_complete")) log_info("run: supervised fine-tuning is complete; skipped");
        else code = train_main(&cfg, comm, argc, argv, 0); /* marks sft_complete when it completes */
    }
    if (code == EXIT_OK) code = critique_main(&cfg, comm, argc, argv);
    if (code == EXIT_OK) code = eval_main(&cfg, comm, argc, argv);
    free(run_path);
    return code;
}

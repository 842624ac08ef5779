/* metrics -- the training logs: per optimizer step (loss, learning rate,
 * gradient norm, tokens, time) and validation losses, kept in memory on
 * rank 0 and written to run.h5 and checkpoints as extendible 1-D series
 * under /metrics/train/<series> and /metrics/val/{step,loss} (each series
 * with its units: docs/file-formats.md, "run.h5").
 */
#ifndef HDISTILL_METRICS_H
#define HDISTILL_METRICS_H

#include <stdint.h>

#include "io/store.h"

/* The per-step training log kept in memory on rank 0. */
typedef struct {
    int64_t n, cap;
    int64_t *step, *tokens;
    double *loss, *lr, *grad_norm, *time;
} MetricLog;

/* Validation losses (rank 0), also kept in checkpoints. */
typedef struct {
    int64_t n, cap;
    int64_t *step;
    double *loss;
} ValLog;

void metrics_val_push(ValLog *l, int64_t step, double loss);
void metrics_val_free(ValLog *l);
/* Drops entries after step. */
void metrics_val_truncate_after(ValLog *l, int64_t step);

void metrics_push(MetricLog *l, int64_t step, double loss, double lr, double gnorm,
                    int64_t tokens, double time);
void metrics_truncate(MetricLog *l, int64_t n);
void metrics_free(MetricLog *l);
/* Appends entries [from, l->n) as 1-D series under group (e.g. "/metrics/train"). */
int metrics_append_to(StoreFile *f, const char *group, const MetricLog *l, int64_t from, Err *e);
/* Reads the series of group into l (replacing it). */
int metrics_read(StoreFile *f, const char *group, MetricLog *l, Err *e);
/* /metrics/val/{step,loss}: appends l / reads it (replacing l; none is empty). */
int metrics_val_write(StoreFile *f, const ValLog *l, Err *e);
int metrics_val_read(StoreFile *f, ValLog *l, Err *e);

#endif

/* metrics -- the training logs kept in memory and in HDF5; see
 * include/io/metrics.h. */
#include "io/metrics.h"

#include <stdlib.h>
#include <string.h>

void metrics_push(MetricLog *l, int64_t step, double loss, double lr, double gnorm,
                    int64_t tokens, double time) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->step = xrealloc(l->step, sizeof(int64_t) * (size_t)l->cap);
        l->tokens = xrealloc(l->tokens, sizeof(int64_t) * (size_t)l->cap);
        l->loss = xrealloc(l->loss, sizeof(double) * (size_t)l->cap);
        l->lr = xrealloc(l->lr, sizeof(double) * (size_t)l->cap);
        l->grad_norm = xrealloc(l->grad_norm, sizeof(double) * (size_t)l->cap);
        l->time = xrealloc(l->time, sizeof(double) * (size_t)l->cap);
    }
    l->step[l->n] = step;
    l->loss[l->n] = loss;
    l->lr[l->n] = lr;
    l->grad_norm[l->n] = gnorm;
    l->tokens[l->n] = tokens;
    l->time[l->n] = time;
    l->n++;
}

void metrics_val_push(ValLog *l, int64_t step, double loss) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->step = xrealloc(l->step, sizeof(int64_t) * (size_t)l->cap);
        l->loss = xrealloc(l->loss, sizeof(double) * (size_t)l->cap);
    }
    l->step[l->n] = step;
    l->loss[l->n] = loss;
    l->n++;
}

void metrics_val_free(ValLog *l) {
    if (!l) return;
    free(l->step);
    free(l->loss);
    memset(l, 0, sizeof *l);
}

void metrics_val_truncate_after(ValLog *l, int64_t step) {
    while (l->n > 0 && l->step[l->n - 1] > step) l->n--;
}

int metrics_val_write(StoreFile *f, const ValLog *l, Err *e) {
    if (l->n == 0) return 0;
    return store_append_i64(f, "/metrics/val/step", l->step, l->n, "optimizer step", e) ||
           store_append_f64(f, "/metrics/val/loss", l->loss, l->n,
                            "mean cross-entropy per target token on the held-out pairs, nats", e);
}

int metrics_val_read(StoreFile *f, ValLog *l, Err *e) {
    metrics_val_free(l);
    if (!store_exists(f, "/metrics/val/step")) return 0;
    int64_t n = 0, n2 = 0;
    int64_t *s = store_read_alloc(f, "/metrics/val/step", 'l', &n, e);
    double *v = s ? store_read_alloc(f, "/metrics/val/loss", 'd', &n2, e) : NULL;
    int rc = (s && v && n == n2) ? 0 : -1;
    if (s && v && n != n2) err_set(e, "%s: /metrics/val has series of different lengths", store_path(f));
    for (int64_t i = 0; rc == 0 && i < n; i++) metrics_val_push(l, s[i], v[i]);
    free(s);
    free(v);
    return rc;
}

void metrics_truncate(MetricLog *l, int64_t n) {
    if (n < l->n) l->n = n;
}

void metrics_free(MetricLog *l) {
    if (!l) return;
    free(l->step), free(l->tokens), free(l->loss), free(l->lr), free(l->grad_norm), free(l->time);
    memset(l, 0, sizeof *l);
}

int metrics_append_to(StoreFile *f, const char *group, const MetricLog *l, int64_t from, Err *e) {
    if (from >= l->n) return 0;
    int64_t k = l->n - from;
    char obj[256];
#define APP(kind, name, arr, desc)                                                   \
    do {                                                                             \
        snprintf(obj, sizeof obj, "%s/%s", group, name);                             \
        if (store_append_##kind(f, obj, l->arr + from, k, desc, e) != 0) return -1;  \
    } while (0)
    APP(i64, "step", step, "optimizer step (1-based: the step just completed)");
    APP(f64, "loss", loss,
        "loss of the step, nats: mean cross-entropy per target token (supervised fine-tuning, ft, sd) or the "
        "critique objective (dpo, brio; see /rounds/<r> start_step/end_step)");
    APP(f64, "lr", lr, "learning rate used for the step");
    APP(f64, "grad_norm", grad_norm, "global L2 norm of the gradient before clipping");
    APP(i64, "tokens", tokens, "cumulative target (loss) tokens consumed");
    APP(f64, "time", time, "cumulative training wall time, seconds");
#undef APP
    return 0;
}

int metrics_read(StoreFile *f, const char *group, MetricLog *l, Err *e) {
    metrics_free(l);
    char obj[256];
    snprintf(obj, sizeof obj, "%s/step", group);
    if (!store_exists(f, obj)) return 0;
    int64_t n = 0, n2;
    int64_t *step = store_read_alloc(f, obj, 'l', &n, e);
    if (!step) return -1;
    void *arr[5] = {0};
    const char *names[5] = {"loss", "lr", "grad_norm", "tokens", "time"};
    const char types[5] = {'d', 'd', 'd', 'l', 'd'};
    int rc = 0;
    for (int i = 0; i < 5 && rc == 0; i++) {
        snprintf(obj, sizeof obj, "%s/%s", group, names[i]);
        arr[i] = store_read_alloc(f, obj, types[i], &n2, e);
        if (!arr[i]) rc = -1;
        else if (n2 != n) rc = err_set(e, "%s: %s has %lld entries, step has %lld", store_path(f), obj,
                                       (long long)n2, (long long)n);
    }
    if (rc == 0)
        for (int64_t i = 0; i < n; i++)
            metrics_push(l, step[i], ((double *)arr[0])[i], ((double *)arr[1])[i],
                           ((double *)arr[2])[i], ((int64_t *)arr[3])[i], ((double *)arr[4])[i]);
    free(step);
    for (int i = 0; i < 5; i++) free(arr[i]);
    return rc;
}

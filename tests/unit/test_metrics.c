/* test_metrics -- io/metrics.h: MetricLog push (past the first capacity),
 * truncate, append_to in two installments and metrics_read back (replacing
 * what the log held); ValLog push, truncate_after, write/read; a group or
 * /metrics/val that is absent reads as empty; series of different lengths
 * are an error naming the file and series. */
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "io/metrics.h"
#include "test.h"

static int logs_equal(const MetricLog *a, const MetricLog *b) {
    if (a->n != b->n) return 0;
    size_t n = (size_t)a->n;
    return !memcmp(a->step, b->step, 8 * n) && !memcmp(a->tokens, b->tokens, 8 * n) && !memcmp(a->loss, b->loss, 8 * n) &&
           !memcmp(a->lr, b->lr, 8 * n) && !memcmp(a->grad_norm, b->grad_norm, 8 * n) && !memcmp(a->time, b->time, 8 * n);
}

int main(void) {
    char *dir = test_tmpdir("metrics");
    char *p = xasprintf("%s/m.h5", dir);
    Err e = {{0}};
    MetricLog l = {0};
    for (int i = 1; i <= 600; i++) metrics_push(&l, i, 10.0 / i, 1e-3 * i, 0.5 + i, 100LL * i, 0.25 * i);
    int ok = l.n == 600 && l.cap >= 600;
    for (int i = 0; ok && i < 600; i++)
        ok = l.step[i] == i + 1 && l.loss[i] == 10.0 / (i + 1) && l.lr[i] == 1e-3 * (i + 1) && l.grad_norm[i] == 1.5 + i &&
             l.tokens[i] == 100LL * (i + 1) && l.time[i] == 0.25 * (i + 1);
    EXPECT(ok, "600 pushes kept in order (n %lld)", (long long)l.n);
    metrics_truncate(&l, 700);
    EXPECT(l.n == 600, "truncate to more is a no-op");
    /* written in two installments, as trainer_flush does */
    StoreFile *f = store_create(p, &e);
    EXPECT(f && metrics_append_to(f, "/metrics/train", &l, 0, &e) == 0, "append 600: %s", e.msg);
    for (int i = 601; i <= 650; i++) metrics_push(&l, i, 1.0 / i, 0, 0, 100LL * i, 0.25 * i);
    EXPECT(metrics_append_to(f, "/metrics/train", &l, 600, &e) == 0, "append 50 more: %s", e.msg);
    EXPECT(metrics_append_to(f, "/metrics/train", &l, 650, &e) == 0, "appending nothing");
    store_close(f, NULL);
    f = store_open(p, 1, &e);
    MetricLog r = {0};
    metrics_push(&r, 99, 99, 99, 99, 99, 99); /* replaced by the read */
    EXPECT(metrics_read(f, "/metrics/train", &r, &e) == 0, "%s", e.msg);
    EXPECT(logs_equal(&l, &r), "read back %lld entries, wrote %lld", (long long)r.n, (long long)l.n);
    int nd;
    int64_t dims[4];
    const char *series[] = {"step", "loss", "lr", "grad_norm", "tokens", "time"};
    int all = 1;
    for (int i = 0; i < 6; i++) {
        char obj[64];
        snprintf(obj, sizeof obj, "/metrics/train/%s", series[i]);
        all &= store_dims(f, obj, &nd, dims, &e) == 0 && nd == 1 && dims[0] == 650;
        char *d = store_get_attr_str(f, obj, "description", &e);
        all &= d && d[0];
        free(d);
    }
    EXPECT(all, "six described 1-D series of 650");
    /* truncate in memory */
    metrics_truncate(&r, 10);
    EXPECT(r.n == 10 && r.step[9] == 10, "truncate to 10");
    /* an absent group reads as empty */
    metrics_push(&r, 1, 1, 1, 1, 1, 1);
    EXPECT(metrics_read(f, "/metrics/other", &r, &e) == 0 && r.n == 0, "absent group -> empty log");
    /* a series of another length is an error naming it */
    double extra = 1;
    store_append_f64(f, "/metrics/train/lr", &extra, 1, NULL, &e);
    e.msg[0] = 0;
    EXPECT(metrics_read(f, "/metrics/train", &r, &e) != 0 && strstr(e.msg, p) && strstr(e.msg, "/metrics/train/lr"),
           "mismatched lengths: %s", e.msg);
    metrics_free(&r);

    /* validation log */
    ValLog v = {0}, w = {0};
    for (int i = 1; i <= 100; i++) metrics_val_push(&v, 10 * i, 5.0 - 0.01 * i);
    EXPECT(v.n == 100 && v.step[99] == 1000 && v.loss[0] == 4.99, "val push");
    metrics_val_truncate_after(&v, 505);
    EXPECT(v.n == 50 && v.step[49] == 500, "truncate_after drops later steps: %lld", (long long)v.n);
    metrics_val_truncate_after(&v, 10000);
    EXPECT(v.n == 50, "truncate_after a later step keeps all");
    EXPECT(metrics_val_read(f, &w, &e) == 0 && w.n == 0, "no /metrics/val -> empty");
    EXPECT(metrics_val_write(f, &v, &e) == 0, "%s", e.msg);
    metrics_val_push(&w, 1, 1);
    EXPECT(metrics_val_read(f, &w, &e) == 0 && w.n == 50 && !memcmp(w.step, v.step, 8 * 50) &&
               !memcmp(w.loss, v.loss, 8 * 50),
           "val round trip (%lld)", (long long)w.n);
    ValLog empty = {0};
    EXPECT(metrics_val_write(f, &empty, &e) == 0 && metrics_val_read(f, &w, &e) == 0 && w.n == 50,
           "writing an empty ValLog changes nothing");
    double x = 2;
    store_append_f64(f, "/metrics/val/loss", &x, 1, NULL, &e);
    e.msg[0] = 0;
    EXPECT(metrics_val_read(f, &w, &e) != 0 && strstr(e.msg, p) && strstr(e.msg, "different lengths"),
           "mismatched val series: %s", e.msg);
    metrics_val_truncate_after(&v, 0);
    EXPECT(v.n == 0, "truncate_after 0");
    metrics_val_free(&v), metrics_val_free(&w), metrics_val_free(NULL);
    EXPECT(v.step == NULL && v.n == 0, "metrics_val_free resets");
    store_close(f, NULL);
    metrics_free(&l);
    EXPECT(l.step == NULL && l.n == 0 && l.cap == 0, "metrics_free resets");
    metrics_free(NULL);
    test_rm_rf(dir);
    free(dir), free(p);
    return test_summary();
}

/* pref -- DPO, BRIO and self-distillation losses; see include/engine/pref.h. */
#include "engine/pref.h"

#include <math.h>

#include "base/util.h"

/* log sigma(z) and sigma(-z), without overflow */
static double log_sigmoid(double z) { return z >= 0 ? -log1p(exp(-z)) : z - log1p(exp(z)); }
static double sigmoid(double z) { return z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z)); }

double pref_loss_sum(const PrefParams *p, const PrefPair *pairs, int n, double norm, double *dw, double *dl) {
    double loss = 0;
    CHECK(norm > 0, "pref loss normaliser %g", norm);
    for (int i = 0; i < n; i++) {
        const PrefPair *q = &pairs[i];
        double gw = 0, gl = 0, li = 0;
        switch (p->obj) {
        case PREF_DPO: {
            double z = p->beta * ((q->lw - q->rw) - (q->ll - q->rl));
            li = -log_sigmoid(z);
            double s = sigmoid(-z); /* dL/dz = -sigma(-z) */
            gw = -p->beta * s;
            gl = p->beta * s;
            break;
        }
        case PREF_BRIO: {
            CHECK(q->len_w > 0 && q->len_l > 0, "empty sequence in a BRIO pair");
            double sw = q->lw / q->len_w, sl = q->ll / q->len_l;
            double h = p->margin - (sw - sl);
            if (h > 0) {
                li += p->rank_weight * h;
                gw += -p->rank_weight / q->len_w;
                gl += p->rank_weight / q->len_l;
            }
            li += p->ce_weight * (-q->lw / q->len_w);
            gw += -p->ce_weight / q->len_w;
            break;
        }
        case PREF_SD:
            CHECK(q->len_w > 0, "empty chosen sequence");
            li = -q->lw / q->len_w;
            gw = -1.0 / q->len_w;
            break;
        }
        loss += li;
        if (dw) dw[i] = gw / norm;
        if (dl) dl[i] = gl / norm;
    }
    return loss / norm;
}

double pref_loss(const PrefParams *p, const PrefPair *pairs, int n, double *dw, double *dl) {
    return pref_loss_sum(p, pairs, n, n > 0 ? (double)n : 1.0, dw, dl);
}

double pref_accuracy(const PrefParams *p, const PrefPair *pairs, int n) {
    if (n <= 0) return NAN;
    int ok = 0;
    for (int i = 0; i < n; i++) {
        const PrefPair *q = &pairs[i];
        if (p->obj == PREF_DPO) ok += (q->lw - q->rw) - (q->ll - q->rl) > 0;
        else ok += q->lw / (q->len_w ? q->len_w : 1) > q->ll / (q->len_l ? q->len_l : 1);
    }
    return (double)ok / n;
}

/* judgestats -- evaluation statistics; see include/engine/judgestats.h. */
#include "engine/judgestats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

static int verdict_of(double p, double margin) {
    if (isnan(p)) return JUDGE_UNJUDGED;
    return p > 0.5 + margin ? 1 : p < 0.5 - margin ? -1 : 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double judge_lc_winrate(const double *p, const double *z, int64_t n) {
    if (n <= 0) return NAN;
    /* Newton's method on the soft-label logistic log-likelihood of (a, b), a small ridge keeping it finite
     * when the preferences separate */
    double a = 0, b = 0, ridge = 1e-6 * (double)n;
    for (int it = 0; it < 50; it++) {
        double ga = -ridge * a, gb = -ridge * b, haa = ridge, hab = 0, hbb = ridge;
        for (int64_t i = 0; i < n; i++) {
            double s = 1.0 / (1.0 + exp(-(a + b * z[i]))), w = s * (1 - s), r = p[i] - s;
            ga += r, gb += r * z[i];
            haa += w, hab += w * z[i], hbb += w * z[i] * z[i];
        }
        double det = haa * hbb - hab * hab;
        if (!(det > 0)) break;
        double da = (hbb * ga - hab * gb) / det, db = (haa * gb - hab * ga) / det;
        a += da, b += db;
        if (fabs(da) + fabs(db) < 1e-12) break;
    }
    return 100.0 / (1.0 + exp(-a));
}

/* normalised length differences of the judged inputs */
static void length_z(const int *ws, const int *wr, const int64_t *idx, int64_t m, double *z) {
    double mean = 0, var = 0;
    for (int64_t k = 0; k < m; k++) mean += ws[idx[k]] - wr[idx[k]];
    mean /= m ? (double)m : 1;
    for (int64_t k = 0; k < m; k++) {
        double d = ws[idx[k]] - wr[idx[k]] - mean;
        var += d * d;
    }
    double sd = m > 1 ? sqrt(var / (double)(m - 1)) : 0;
    for (int64_t k = 0; k < m; k++) z[k] = sd > 0 ? tanh((ws[idx[k]] - wr[idx[k]]) / sd) : 0;
}

/* percentile bootstrap of the win-or-tie and length-controlled rates over the m judged inputs */
static void bootstrap(const int *v, const double *p, const double *z, const int64_t *idx, int64_t m, int B, uint64_t seed,
                      JudgeStats *o) {
    o->ci_low = o->ci_high = o->lc_low = o->lc_high = NAN;
    if (m <= 0 || B <= 0) return;
    double *w = xmalloc(sizeof(double) * (size_t)B), *lc = xmalloc(sizeof(double) * (size_t)B);
    double *bp = xmalloc(sizeof(double) * (size_t)m), *bz = xmalloc(sizeof(double) * (size_t)m);
    Rng r;
    rng_seed(&r, seed);
    for (int b = 0; b < B; b++) {
        int64_t k = 0;
        for (int64_t i = 0; i < m; i++) {
            int64_t j = (int64_t)rng_below(&r, (uint64_t)m);
            k += v[idx[j]] >= 0;
            bp[i] = p[idx[j]], bz[i] = z[j];
        }
        w[b] = 100.0 * (double)k / (double)m;
        lc[b] = judge_lc_winrate(bp, bz, m);
    }
    qsort(w, (size_t)B, sizeof(double), cmp_double);
    qsort(lc, (size_t)B, sizeof(double), cmp_double);
    int lo = (int)floor(0.025 * (B - 1)), hi = (int)ceil(0.975 * (B - 1));
    o->ci_low = w[lo], o->ci_high = w[hi], o->lc_low = lc[lo], o->lc_high = lc[hi];
    free(w), free(lc), free(bp), free(bz);
}

void judge_stats(const double *p_ab, const double *p_ba, const int *ws, const int *wr, int64_t n, double tm,
                 int B, uint64_t seed, JudgeStats *o, int *verdict, double *pout) {
    memset(o, 0, sizeof *o);
    o->n = n;
    int *v = xmalloc(sizeof(int) * (size_t)(n + 1));
    double *p = xmalloc(sizeof(double) * (size_t)(n + 1)), sw = 0, sr = 0;
    int64_t *idx = xmalloc(sizeof(int64_t) * (size_t)(n + 1)), both = 0, flips = 0, same = 0, dlen = 0, longer = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = p_ab[i], b = p_ba[i];
        p[i] = !isnan(a) && !isnan(b) ? 0.5 * (a + b) : isnan(a) ? b : a;
        v[i] = verdict_of(p[i], tm);
        sw += ws[i], sr += wr[i];
        if (v[i] == JUDGE_UNJUDGED) {
            o->unjudged++;
            continue;
        }
        idx[o->judged++] = i;
        o->wins += v[i] > 0, o->ties += v[i] == 0, o->losses += v[i] < 0;
        if (!isnan(a) && !isnan(b)) {
            int va = verdict_of(a, tm), vb = verdict_of(b, tm);
            both++, same += va == vb, flips += va != 0 && vb != 0 && va != vb;
        }
        if (v[i] != 0 && ws[i] != wr[i]) dlen++, longer += (v[i] > 0) == (ws[i] > wr[i]);
    }
    int64_t m = o->judged;
    o->wtr = m ? 100.0 * (double)(o->wins + o->ties) / (double)m : NAN;
    o->position_bias = both ? (double)flips / (double)both : NAN;
    o->position_consistency = both ? (double)same / (double)both : NAN;
    o->length_bias = dlen ? (double)longer / (double)dlen : NAN;
    o->student_words = n ? sw / (double)n : NAN;
    o->reference_words = n ? sr / (double)n : NAN;
    double *z = xmalloc(sizeof(double) * (size_t)(m + 1)), *pj = xmalloc(sizeof(double) * (size_t)(m + 1));
    length_z(ws, wr, idx, m, z);
    for (int64_t k = 0; k < m; k++) pj[k] = p[idx[k]];
    o->lc_winrate = judge_lc_winrate(pj, z, m);
    bootstrap(v, p, z, idx, m, B, seed, o);
    if (verdict) memcpy(verdict, v, sizeof(int) * (size_t)n);
    if (pout) memcpy(pout, p, sizeof(double) * (size_t)n);
    free(v), free(p), free(idx), free(z), free(pj);
}

double judge_kappa(const int *va, const int *vb, int64_t n) {
    int64_t m = 0, agree = 0, ca[3] = {0}, cb[3] = {0};
    for (int64_t i = 0; i < n; i++) {
        if (va[i] == JUDGE_UNJUDGED || vb[i] == JUDGE_UNJUDGED) continue;
        m++, agree += va[i] == vb[i];
        ca[va[i] + 1]++, cb[vb[i] + 1]++;
    }
    if (!m) return NAN;
    double po = (double)agree / (double)m, pe = 0;
    for (int k = 0; k < 3; k++) pe += (double)ca[k] * (double)cb[k] / ((double)m * (double)m);
    return pe < 1 ? (po - pe) / (1 - pe) : NAN;
}

double judge_kendall_tau(const double *pa, const double *pb, int64_t n) {
    int64_t conc = 0, disc = 0, ta = 0, tb = 0, pairs = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(pa[i]) || isnan(pb[i])) continue;
        for (int64_t j = i + 1; j < n; j++) {
            if (isnan(pa[j]) || isnan(pb[j])) continue;
            double da = pa[i] - pa[j], db = pb[i] - pb[j];
            pairs++;
            if (da == 0 && db == 0) continue;
            if (da == 0) ta++;
            else if (db == 0) tb++;
            else if ((da > 0) == (db > 0)) conc++;
            else disc++;
        }
    }
    double n1 = (double)(conc + disc + ta), n2 = (double)(conc + disc + tb);
    if (pairs < 1 || n1 <= 0 || n2 <= 0) return NAN;
    return (double)(conc - disc) / sqrt(n1 * n2);
}

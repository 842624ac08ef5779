/* pairs -- pair selection for the critic; see include/engine/pairs.h. */
#include "engine/pairs.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/text.h"
#include "base/util.h"

/* hashes of the word n-grams of s; returns the count */
static int ngram_hashes(const char *s, int n, uint64_t **out) {
    int nw = text_word_count(s);
    uint64_t *w = xmalloc(sizeof(uint64_t) * (size_t)(nw ? nw : 1));
    int k = 0;
    const char *p = s;
    while (*p) {
        while (*p && isspace((unsigned char)*p)) p++;
        if (!*p) break;
        uint64_t h = 1469598103934665603ULL;
        while (*p && !isspace((unsigned char)*p)) h = (h ^ (unsigned char)*p++) * 1099511628211ULL;
        w[k++] = h;
    }
    int ng = nw >= n ? nw - n + 1 : (nw > 0 ? 1 : 0);
    uint64_t *g = xmalloc(sizeof(uint64_t) * (size_t)(ng ? ng : 1));
    for (int i = 0; i < ng; i++) {
        uint64_t h = 0x9e3779b97f4a7c15ULL;
        for (int j = i; j < i + n && j < nw; j++) h = (h ^ w[j]) * 0x100000001b3ULL + (uint64_t)j - (uint64_t)i;
        g[i] = h;
    }
    free(w);
    *out = g;
    return ng;
}

int pairs_ngram_distance(const char *a, const char *b, int n) {
    if (n < 1) n = 1;
    uint64_t *x, *y;
    int nx = ngram_hashes(a, n, &x), ny = ngram_hashes(b, n, &y);
    int *prev = xmalloc(sizeof(int) * (size_t)(ny + 1)), *cur = xmalloc(sizeof(int) * (size_t)(ny + 1));
    for (int j = 0; j <= ny; j++) prev[j] = j;
    for (int i = 1; i <= nx; i++) {
        cur[0] = i;
        for (int j = 1; j <= ny; j++) {
            int sub = prev[j - 1] + (x[i - 1] != y[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        int *t = prev;
        prev = cur;
        cur = t;
    }
    int d = prev[ny];
    free(prev), free(cur), free(x), free(y);
    return d;
}

static int comparable(const char *const *cands, const int *tok_len, const PairRule *rule, int i, int j) {
    double la = rule->len_tokens ? tok_len[i] : text_word_count(cands[i]);
    double lb = rule->len_tokens ? tok_len[j] : text_word_count(cands[j]);
    if (la <= 0 || lb <= 0) return 0;
    double r = la / lb, q = lb / la;
    return r >= rule->lo && r <= rule->hi && q >= rule->lo && q <= rule->hi;
}

int pairs_select(const char *const *cands, const int *tok_len, int k, const PairRule *rule, int *bi, int *bj) {
    int best = 0;
    *bi = *bj = -1;
    for (int i = 0; i < k; i++)
        for (int j = i + 1; j < k; j++) {
            if (!cands[i][0] || !cands[j][0] || !strcmp(cands[i], cands[j])) continue;
            if (rule->filter_first && !comparable(cands, tok_len, rule, i, j)) continue;
            int d = pairs_ngram_distance(cands[i], cands[j], rule->ngram);
            if (d > best) best = d, *bi = i, *bj = j;
        }
    if (*bi < 0) return 0;
    return comparable(cands, tok_len, rule, *bi, *bj);
}

int pairs_verdict(double p, double margin) {
    if (isnan(p)) return 0;
    if (p > 0.5 + margin) return 1;
    if (p < 0.5 - margin) return -1;
    return 0;
}

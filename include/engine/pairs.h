/* pairs -- choosing which two candidates the critic compares (Ravi et al.
 * 2024, critique phase): of the k candidates of an input, the pair with the
 * largest n-gram edit distance (Levenshtein distance between their
 * sequences of word n-grams), kept only if their lengths are comparable
 * (or, with filter_first, the most distant of the comparable pairs):
 * both len(a)/len(b) and len(b)/len(a) must lie in [lo, hi] (lengths in
 * words or in tokens).  Identical candidates never make a pair.  And the
 * tie rule that turns the critic's preference p = P(a better) into a label.
 */
#ifndef HDISTILL_PAIRS_H
#define HDISTILL_PAIRS_H

/* Levenshtein distance between the word n-gram sequences of a and b. */
int pairs_ngram_distance(const char *a, const char *b, int n);

typedef struct {
    int ngram;        /* n of the n-grams (1 = words) */
    int len_tokens;   /* 1: lengths in tokens (tok_len), 0: in words */
    double lo, hi;    /* length-ratio bounds */
    int filter_first; /* 1: the most distant pair AMONG the comparable ones */
} PairRule;

/* Index pair (*i < *j) of the most distant candidates among cands[0..k)
 * (ties: the first in index order); returns 1 if it passes the length
 * filter, 0 if there is no usable pair (fewer than two distinct candidates,
 * or the most distant pair fails the filter).  tok_len may be NULL when
 * lengths are in words. */
int pairs_select(const char *const *cands, const int *tok_len, int k, const PairRule *rule, int *i, int *j);

/* Tie rule: 1 if a is preferred (p > 0.5 + margin), -1 if b (p < 0.5 -
 * margin), 0 for a tie (NaN p is a tie). */
int pairs_verdict(double p, double margin);

#endif

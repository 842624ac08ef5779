/* test_pairs -- n-gram edit distance against a naive string-based
 * Levenshtein, pair selection (most distant pair, length filter, identical
 * candidates), and the tie rule. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/pairs.h"
#include "test.h"
#include "base/util.h"

/* naive: word n-grams as strings, classic DP */
static int naive(const char *a, const char *b, int n) {
    char wa[64][32], wb[64][32];
    int na = 0, nb = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", a);
    for (char *t = strtok(buf, " "); t; t = strtok(NULL, " ")) snprintf(wa[na++], 32, "%s", t);
    snprintf(buf, sizeof buf, "%s", b);
    for (char *t = strtok(buf, " "); t; t = strtok(NULL, " ")) snprintf(wb[nb++], 32, "%s", t);
    char ga[64][128], gb[64][128];
    int xa = na >= n ? na - n + 1 : (na ? 1 : 0), xb = nb >= n ? nb - n + 1 : (nb ? 1 : 0);
    for (int i = 0; i < xa; i++) {
        ga[i][0] = 0;
        for (int j = i; j < i + n && j < na; j++) strcat(ga[i], wa[j]), strcat(ga[i], "|");
    }
    for (int i = 0; i < xb; i++) {
        gb[i][0] = 0;
        for (int j = i; j < i + n && j < nb; j++) strcat(gb[i], wb[j]), strcat(gb[i], "|");
    }
    int d[65][65];
    for (int i = 0; i <= xa; i++) d[i][0] = i;
    for (int j = 0; j <= xb; j++) d[0][j] = j;
    for (int i = 1; i <= xa; i++)
        for (int j = 1; j <= xb; j++) {
            int s = d[i - 1][j - 1] + (strcmp(ga[i - 1], gb[j - 1]) != 0);
            int m = d[i - 1][j] + 1 < d[i][j - 1] + 1 ? d[i - 1][j] + 1 : d[i][j - 1] + 1;
            d[i][j] = s < m ? s : m;
        }
    return d[xa][xb];
}

int main(void) {
    EXPECT(pairs_ngram_distance("a b c", "a b c", 1) == 0, "same");
    EXPECT(pairs_ngram_distance("a b c", "a x c", 1) == 1, "one substitution");
    EXPECT(pairs_ngram_distance("a b c", "a x c", 2) == 2, "bigrams: two differ");
    EXPECT(pairs_ngram_distance("", "a b", 1) == 2, "empty");
    EXPECT(pairs_ngram_distance("  a   b ", "a b", 1) == 0, "spaces do not count");
    Rng r;
    rng_seed(&r, 4);
    const char *words[] = {"the", "cat", "sat", "on", "mat", "dog", "ran"};
    int agree = 1;
    for (int t = 0; t < 300; t++) {
        char a[256] = "", b[256] = "";
        int la = (int)rng_below(&r, 10), lb = (int)rng_below(&r, 10);
        for (int i = 0; i < la; i++) strcat(a, words[rng_below(&r, 7)]), strcat(a, " ");
        for (int i = 0; i < lb; i++) strcat(b, words[rng_below(&r, 7)]), strcat(b, " ");
        for (int n = 1; n <= 3; n++) agree &= pairs_ngram_distance(a, b, n) == naive(a, b, n);
    }
    EXPECT(agree, "n-gram distance differs from the naive reference");
    PairRule rule = {1, 0, 0.8, 1.2, 0};
    const char *c1[] = {"the cat sat on the mat", "the cat sat on a mat", "a dog ran over the big hill", "the cat sat"};
    int i, j;
    /* the chosen pair is a most distant one (6 vs 7 words: ratios 0.857/1.167 pass) */
    int ok = pairs_select(c1, NULL, 4, &rule, &i, &j), dmax = 0;
    for (int x = 0; x < 4; x++)
        for (int y = x + 1; y < 4; y++) dmax = naive(c1[x], c1[y], 1) > dmax ? naive(c1[x], c1[y], 1) : dmax;
    EXPECT(ok == 1 && i >= 0 && naive(c1[i], c1[j], 1) == dmax && (j == 2 || i == 2), "select %d %d", i, j);
    const char *c2[] = {"one two three four five six seven eight", "x y z", "one two three four five six seven nine"};
    EXPECT(pairs_select(c2, NULL, 3, &rule, &i, &j) == 0 && i == 0 && j == 1, "length filter: %d %d", i, j);
    PairRule ff = rule;
    ff.filter_first = 1; /* the comparable pair (0, 2) instead */
    EXPECT(pairs_select(c2, NULL, 3, &ff, &i, &j) == 1 && i == 0 && j == 2, "filter first: %d %d", i, j);
    const char *c3[] = {"same words here", "same words here", ""};
    EXPECT(pairs_select(c3, NULL, 3, &rule, &i, &j) == 0, "identical candidates make no pair");
    /* 4 vs 6 words fails in words, 10 vs 11 tokens passes in tokens */
    int tl[] = {10, 11};
    const char *c4[] = {"a b c d", "e f g h i j"};
    PairRule rt = {1, 1, 0.8, 1.2, 0};
    EXPECT(pairs_select(c4, NULL, 2, &rule, &i, &j) == 0, "word lengths should fail");
    EXPECT(pairs_select(c4, tl, 2, &rt, &i, &j) == 1 && i == 0 && j == 1, "token lengths: %d %d", i, j);
    EXPECT(pairs_verdict(0.7, 0.05) == 1 && pairs_verdict(0.3, 0.05) == -1 && pairs_verdict(0.52, 0.05) == 0 &&
               pairs_verdict(NAN, 0.05) == 0,
           "tie rule");
    return test_summary();
}

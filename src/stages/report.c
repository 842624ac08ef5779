/* report -- `hdistill report RUN_DIR [--json]`; see include/stages/report.h. */
#include "stages/report.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/store.h"

int report_main(int argc, char **argv) {
    const char *dir = NULL;
    int json = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "error: report: unknown option '%s' (hint: hdistill report --help)\n", argv[i]);
            return EXIT_USAGE;
        } else dir = argv[i];
    }
    if (!dir) {
        fprintf(stderr, "error: report needs a run directory (hint: hdistill report runs/NAME --json)\n");
        return EXIT_USAGE;
    }
    char *path = xasprintf("%s/run.h5", dir);
    Err e;
    StoreFile *f = store_open(path, 0, &e);
    if (!f) {
        fprintf(stderr, "error: %s\n", e.msg);
        free(path);
        return EXIT_USAGE;
    }
    int64_t step = 0, seed = 0, complete = 0;
    char *objective = NULL;
    if (!store_exists(f, "/eval") || store_get_attr_i64(f, "/eval", "complete", &complete, NULL) != 0 || !complete) {
        fprintf(stderr, "error: %s: no complete evaluation (hint: hdistill run CONFIG evaluates at the end)\n", path);
        store_close(f, NULL);
        free(path);
        return EXIT_USAGE;
    }
    store_get_attr_i64(f, "/eval", "step", &step, NULL);
    store_get_attr_i64(f, "/eval", "seed", &seed, NULL);
    objective = store_get_attr_str(f, "/eval", "objective", NULL);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "run", dir);
    cJSON_AddStringToObject(root, "objective", objective ? objective : "");
    cJSON_AddNumberToObject(root, "seed", (double)seed);
    cJSON_AddNumberToObject(root, "step", (double)step);
    cJSON *splits = cJSON_AddObjectToObject(root, "splits");
    if (!json) {
        printf("run %s: objective %s, seed %lld, evaluated at step %lld\n\n", dir, objective ? objective : "?",
               (long long)seed, (long long)step);
        printf("| split | judge | n | win-or-tie %% | 95%% CI | position bias | length bias | judged | LC win %% | 95%% CI |\n"
               "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    }
    const char *names[2] = {"eval", "ood"};
    static const char *keys[] = {"wtr",           "wtr_ci_low",      "wtr_ci_high", "position_bias",
                                 "length_bias",   "student_words",   "reference_words", "lc_winrate",
                                 "lc_ci_low",     "lc_ci_high",      "position_consistency"};
    enum { NKEYS = sizeof keys / sizeof keys[0] };
    for (int k = 0; k < 2; k++) {
        char g[64];
        snprintf(g, sizeof g, "/eval/%s", names[k]);
        if (!store_exists(f, g)) continue;
        int nj = 0;
        char **judges = store_list(f, g, &nj);
        cJSON *sj = cJSON_AddObjectToObject(splits, names[k]);
        for (int q = 0; q < nj; q++) {
            char jg[192];
            snprintf(jg, sizeof jg, "%s/%s", g, judges[q]);
            double wtr;
            if (store_get_attr_f64(f, jg, "wtr", &wtr, NULL) != 0) continue; /* a dataset, not a judge */
            cJSON *o = cJSON_AddObjectToObject(sj, judges[q]);
            double v[NKEYS];
            for (int x = 0; x < NKEYS; x++) {
                v[x] = NAN;
                store_get_attr_f64(f, jg, keys[x], &v[x], NULL);
                if (isnan(v[x])) cJSON_AddNullToObject(o, keys[x]);
                else cJSON_AddNumberToObject(o, keys[x], v[x]);
            }
            int64_t n = 0, judged = -1;
            store_get_attr_i64(f, jg, "n", &n, NULL);
            cJSON_AddNumberToObject(o, "n", (double)n);
            /* runs before the length-controlled rate have no judged count: missing, not n */
            if (store_get_attr_i64(f, jg, "judged", &judged, NULL) == 0) cJSON_AddNumberToObject(o, "judged", (double)judged);
            else cJSON_AddNullToObject(o, "judged");
            char js[32] = "-";
            if (judged >= 0) snprintf(js, sizeof js, "%lld", (long long)judged);
            if (!json)
                printf("| %s | %s | %lld | %.1f | [%.1f, %.1f] | %.3f | %.3f | %s | %.1f | [%.1f, %.1f] |\n", names[k],
                       judges[q], (long long)n, v[0], v[1], v[2], v[3], v[4], js, v[7], v[8], v[9]);
        }
        for (int q = 0; q < nj; q++) free(judges[q]);
        free(judges);
    }
    if (json) {
        char *s = cJSON_Print(root);
        printf("%s\n", s);
        cJSON_free(s);
    }
    cJSON_Delete(root);
    free(objective);
    store_close(f, NULL);
    free(path);
    return EXIT_OK;
}

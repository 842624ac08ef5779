/* test_report -- stages/report.h on crafted run.h5 files: the Markdown
 * table and the --json values equal the /eval attributes (NaN -> null,
 * datasets beside the judges ignored, both splits and every judge); a run
 * without a complete evaluation, a missing run, no directory or an unknown
 * option exit 2; report changes nothing. */
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "io/store.h"
#include "stages/report.h"
#include "test.h"

static const char *keys[] = {"wtr", "wtr_ci_low", "wtr_ci_high", "position_bias", "length_bias", "student_words",
                             "reference_words"};

static void judge(StoreFile *f, const char *g, double base, int64_t n, int nan_length) {
    Err e;
    double one = 1;
    int64_t d1 = 1;
    char o[160];
    snprintf(o, sizeof o, "%s/p", g);
    store_write_f64(f, o, &one, 1, &d1, NULL, &e);
    for (int k = 0; k < 7; k++)
        store_set_attr_f64(f, g, keys[k], nan_length && k == 4 ? NAN : base + 1.0 / (k + 3.0), &e);
    store_set_attr_i64(f, g, "n", n, &e);
}

static char *make_run(const char *dir, const char *name, int complete) {
    char *rd = xasprintf("%s/%s", dir, name), *p = xasprintf("%s/run.h5", rd);
    Err e;
    util_mkdir_p(rd, &e);
    StoreFile *f = store_create(p, &e);
    if (complete >= 0) {
        const char *in[2] = {"a", "b"};
        int64_t two = 2;
        store_write_strings(f, "/eval/eval/input", in, 1, &two, NULL, &e); /* a dataset, not a judge */
        judge(f, "/eval/eval/critic", 41.25, 40, 0);
        judge(f, "/eval/eval/gpt-judge", 12.0, 40, 1);
        judge(f, "/eval/ood/critic", 7.5, 12, 0);
        store_set_attr_i64(f, "/eval", "step", 123, &e);
        store_set_attr_i64(f, "/eval", "seed", 9, &e);
        store_set_attr_str(f, "/eval", "objective", "brio-dpo", &e);
        if (complete) store_set_attr_i64(f, "/eval", "complete", 1, &e);
    }
    store_close(f, NULL);
    free(p);
    return rd;
}

static int report(const char *dir, int json, char **out) {
    char *argv[] = {"hdistill", "report", (char *)dir, json ? "--json" : NULL, NULL};
    test_capture_begin(1);
    int rc = report_main(json ? 4 : 3, argv);
    *out = test_capture_end();
    return rc;
}

/* cJSON prints 15 significant digits when they read back within an ulp or so,
 * so "equal" is to 1e-14 relative (16 digits would be exact) */
static int num_is(const cJSON *o, const char *k, double want) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    int ok = cJSON_IsNumber(v) && fabs(v->valuedouble - want) <= 1e-14 * fabs(want);
    if (!ok) fprintf(stderr, "%s: %.17g, want %.17g\n", k, v ? v->valuedouble : NAN, want);
    return ok;
}

int main(void) {
    char *dir = test_tmpdir("report");
    char *rd = make_run(dir, "ok", 1);
    char *run = xasprintf("%s/run.h5", rd);
    size_t l0, l1;
    char *before = test_read_file(run, &l0);
    char *out = NULL;
    EXPECT(report(rd, 0, &out) == 0, "report exits 0: %s", out);
    EXPECT(strstr(out, "objective brio-dpo") && strstr(out, "seed 9") && strstr(out, "step 123"), "header: %s", out);
    char line[256];
    snprintf(line, sizeof line, "| eval | critic | 40 | %.1f | [%.1f, %.1f] | %.3f | %.3f |", 41.25 + 1 / 3.0,
             41.25 + 1 / 4.0, 41.25 + 1 / 5.0, 41.25 + 1 / 6.0, 41.25 + 1 / 7.0);
    EXPECT(strstr(out, line) != NULL, "table row %s in\n%s", line, out);
    snprintf(line, sizeof line, "| ood | critic | 12 | %.1f |", 7.5 + 1 / 3.0);
    EXPECT(strstr(out, line) && strstr(out, "| eval | gpt-judge | 40 |") && !strstr(out, "| input |"),
           "every split and judge, datasets skipped");
    free(out);
    EXPECT(report(rd, 1, &out) == 0, "report --json exits 0");
    cJSON *j = cJSON_Parse(out);
    EXPECT(j != NULL, "--json output parses: %s", out);
    if (j) {
        const cJSON *ob = cJSON_GetObjectItemCaseSensitive(j, "objective");
        EXPECT(cJSON_IsString(ob) && !strcmp(ob->valuestring, "brio-dpo") && num_is(j, "seed", 9) && num_is(j, "step", 123),
               "objective, seed, step");
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(j, "splits");
        const cJSON *ec = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sp, "eval"), "critic");
        const cJSON *eg = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sp, "eval"), "gpt-judge");
        const cJSON *oc = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sp, "ood"), "critic");
        int eq = ec && eg && oc && num_is(ec, "n", 40) && num_is(oc, "n", 12);
        for (int k = 0; eq && k < 7; k++)
            eq = num_is(ec, keys[k], 41.25 + 1.0 / (k + 3.0)) && num_is(oc, keys[k], 7.5 + 1.0 / (k + 3.0)) &&
                 (k == 4 ? cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(eg, keys[k]))
                         : num_is(eg, keys[k], 12.0 + 1.0 / (k + 3.0)));
        EXPECT(eq, "JSON values equal the attributes (NaN as null)");
        EXPECT(!cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sp, "eval"), "input"),
               "a dataset is not a judge");
        cJSON_Delete(j);
    }
    free(out);
    char *after = test_read_file(run, &l1);
    EXPECT(l0 == l1 && !memcmp(before, after, l0), "report changed run.h5");
    free(before), free(after), free(run);

    char *inc = make_run(dir, "incomplete", 0), *none = make_run(dir, "none", -1), *missing = xasprintf("%s/nowhere", dir);
    EXPECT(report(inc, 0, &out) == EXIT_USAGE && strstr(out, "no complete evaluation"), "incomplete: %s", out);
    free(out);
    EXPECT(report(none, 1, &out) == EXIT_USAGE && strstr(out, "no complete evaluation"), "no /eval: %s", out);
    free(out);
    EXPECT(report(missing, 0, &out) == EXIT_USAGE && strstr(out, "nowhere/run.h5"), "missing run: %s", out);
    free(out);
    char *a1[] = {"hdistill", "report", NULL};
    test_capture_begin(1);
    int rc = report_main(2, a1);
    out = test_capture_end();
    EXPECT(rc == EXIT_USAGE && strstr(out, "run directory"), "no directory: %s", out);
    free(out);
    char *a2[] = {"hdistill", "report", rd, "--yaml", NULL};
    test_capture_begin(1);
    rc = report_main(4, a2);
    out = test_capture_end();
    EXPECT(rc == EXIT_USAGE && strstr(out, "--yaml"), "unknown option: %s", out);
    free(out);
    free(rd), free(inc), free(none), free(missing);
    test_rm_rf(dir);
    free(dir);
    return test_summary();
}

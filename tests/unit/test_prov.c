/* test_prov -- io/prov.h: the keys collected (version, git SHA, the five
 * libraries, host, UTC time, world size, command), argv joined into
 * "command", Slurm ids only when set, and no other environment value: a
 * fake API key in the environment appears nowhere in the written file;
 * prov_write stores every entry as an attribute of the group, read back
 * equal. */
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "io/prov.h"
#include "test.h"

static const char *get(const Provenance *p, const char *k) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->key[i], k)) return p->value[i];
    return NULL;
}

int main(void) {
    const char *secret = "sk-hdistill-test-SECRET-9f8e7d6c5b4a";
    setenv("OPENAI_API_KEY", secret, 1);
    setenv("HDISTILL_FAKE_TOKEN", secret, 1);
    const char *slurm[] = {"SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_RESTART_COUNT"};
    for (int i = 0; i < 4; i++) unsetenv(slurm[i]);
    setenv("SLURM_JOB_NAME", "not-recorded-job-name", 1);
    char *argv[] = {"hdistill", "train", "cfg.json", "--set", "train.lr=0.1", NULL};
    Provenance p;
    prov_collect(&p, 5, argv, 3);
    const char *keys[] = {"hdistill_version", "git_sha", "mpi", "hdf5", "openblas", "libcurl", "cjson", "host",
                          "created_utc", "world_size", "command"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *v = get(&p, keys[i]);
        EXPECT(v && v[0], "key %s missing or empty", keys[i]);
    }
    EXPECT(p.n == (int)(sizeof keys / sizeof keys[0]), "%d entries without Slurm, want %zu", p.n,
           sizeof keys / sizeof keys[0]);
    const char *cmd = get(&p, "command");
    EXPECT(cmd && !strcmp(cmd, "hdistill train cfg.json --set train.lr=0.1"), "command %s", cmd ? cmd : "-");
    EXPECT(get(&p, "world_size") && !strcmp(get(&p, "world_size"), "3"), "world_size");
    const char *t = get(&p, "created_utc");
    EXPECT(t && strlen(t) == 20 && t[4] == '-' && t[7] == '-' && t[10] == 'T' && t[13] == ':' && t[19] == 'Z',
           "created_utc %s", t ? t : "-");
    EXPECT(get(&p, "git_sha") && !strcmp(get(&p, "git_sha"), prov_git_sha()) && prov_git_sha()[0], "git_sha");
    EXPECT(get(&p, "hdf5") && !strncmp(get(&p, "hdf5"), "HDF5 1.", 7), "hdf5 %s", get(&p, "hdf5"));
    EXPECT(get(&p, "openblas") && !strncmp(get(&p, "openblas"), "OpenBLAS", 8), "openblas");
    EXPECT(get(&p, "cjson") && !strncmp(get(&p, "cjson"), "cJSON ", 6), "cjson");
    EXPECT(get(&p, "mpi") && strstr(get(&p, "mpi"), "MPI") && !strchr(get(&p, "mpi"), '\n'), "mpi %s", get(&p, "mpi"));
    for (int i = 0; i < 4; i++) EXPECT(get(&p, slurm[i]) == NULL, "%s recorded although unset", slurm[i]);
    prov_free(&p);
    EXPECT(p.n == 0, "prov_free resets");

    /* with Slurm: exactly the four ids, nothing else from the environment */
    setenv("SLURM_JOB_ID", "4242", 1);
    setenv("SLURM_ARRAY_TASK_ID", "7", 1);
    char *argv1[] = {"hdistill", NULL};
    prov_collect(&p, 1, argv1, 1);
    EXPECT(get(&p, "SLURM_JOB_ID") && !strcmp(get(&p, "SLURM_JOB_ID"), "4242") && get(&p, "SLURM_ARRAY_TASK_ID") &&
               !strcmp(get(&p, "SLURM_ARRAY_TASK_ID"), "7") && !get(&p, "SLURM_ARRAY_JOB_ID") &&
               !get(&p, "SLURM_RESTART_COUNT") && !get(&p, "SLURM_JOB_NAME"),
           "Slurm ids when set");
    EXPECT(get(&p, "command") && !strcmp(get(&p, "command"), "hdistill"), "one-word command");
    int leak = 0;
    for (int i = 0; i < p.n; i++) leak += strstr(p.value[i], secret) != NULL || strstr(p.value[i], "not-recorded") != NULL;
    EXPECT(leak == 0, "an environment value was collected");

    char *dir = test_tmpdir("prov");
    char *path = xasprintf("%s/p.h5", dir);
    Err e = {{0}};
    StoreFile *f = store_create(path, &e);
    EXPECT(f && prov_write(f, "/provenance", &p, &e) == 0 && prov_write(f, "/deep/er/prov", &p, &e) == 0, "%s", e.msg);
    int same = f != NULL;
    for (int i = 0; same && i < p.n; i++) {
        char *v = store_get_attr_str(f, "/provenance", p.key[i], &e);
        same = v && !strcmp(v, p.value[i]);
        free(v);
    }
    EXPECT(same, "attributes read back equal");
    char *v = f ? store_get_attr_str(f, "/deep/er/prov", "SLURM_JOB_ID", &e) : NULL;
    EXPECT(v && !strcmp(v, "4242"), "a nested group is created");
    free(v);
    store_close(f, NULL);
    size_t len = 0;
    char *bytes = test_read_file(path, &len);
    EXPECT(bytes && len > 0 && !memmem(bytes, len, secret, strlen(secret)) && !memmem(bytes, len, "not-recorded", 12),
           "the fake API key or another environment value is in the file");
    EXPECT(bytes && memmem(bytes, len, "4242", 4), "the Slurm id is in the file (the scan can see values)");
    free(bytes);
    prov_free(&p);
    prov_free(NULL);
    test_rm_rf(dir);
    free(dir), free(path);
    return test_summary();
}

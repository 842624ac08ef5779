/* test_config -- the option table: defaults, file < --set precedence, the
 * JSON dump read back gives the same configuration, errors name the key
 * and the file, model presets, and the extra-judges file. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "stages/student.h"
#include "test.h"
#include "base/util.h"

static char *write_tmp(const char *text) {
    char *path = xstrdup("/tmp/hdistill-config-XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text), "write");
    close(fd);
    return path;
}

int main(void) {
    Config c;
    Err e;
    config_init(&c);
    EXPECT(c.train.batch_size == 16 && c.train.lr == 3e-4 && !strcmp(c.model.preset, "tiny") &&
               c.critic.logprobs == 1 && c.teacher.temperature == 0.8,
           "defaults");
    char *f = write_tmp("{\"train\": {\"lr\": 0.01, \"steps\": 7}, \"model\": {\"preset\": \"mini\"}}");
    EXPECT(config_load_file(&c, f, &e) == 0, "%s", e.msg);
    EXPECT(config_set(&c, "train.lr=0.5", &e) == 0, "%s", e.msg);
    EXPECT(c.train.lr == 0.5 && c.train.steps == 7 && !strcmp(c.model.preset, "mini"), "precedence");
    EXPECT(config_validate(&c, &e) == 0, "%s", e.msg);
    ModelConfig mc;
    EXPECT(student_model_config(&c, 300, &mc, &e) == 0 && mc.n_layer == 4 && mc.d_model == 256 && mc.vocab_size == 300,
           "mini preset: %s", e.msg);
    /* dump and read back: the same configuration */
    char *json = config_to_json(&c);
    Config c2;
    config_init(&c2);
    EXPECT(config_load_json(&c2, json, "dump", &e) == 0, "%s", e.msg);
    char *json2 = config_to_json(&c2);
    EXPECT(!strcmp(json, json2), "round trip differs");
    EXPECT(strstr(json, "\"teacher\"") && strstr(json, "\"prompt\""), "dump has every section");
    char buf[64];
    EXPECT(config_get_string(&c, "train.steps", buf, sizeof buf) == 0 && !strcmp(buf, "7"), "get %s", buf);
    /* reasoning_effort is a string kept as given (it once was written over its pointer as an enum index) */
    EXPECT(c.teacher.reasoning_effort && !c.teacher.reasoning_effort[0], "reasoning_effort defaults to \"\"");
    EXPECT(config_set(&c, "teacher.reasoning_effort=low", &e) == 0 && !strcmp(c.teacher.reasoning_effort, "low") &&
               config_get_string(&c, "teacher.reasoning_effort", buf, sizeof buf) == 0 && !strcmp(buf, "low"),
           "reasoning_effort low: %s", e.msg);
    EXPECT(config_set(&c, "critic.reasoning_effort=extreme", &e) != 0 && strstr(e.msg, "critic.reasoning_effort"),
           "a bad reasoning_effort names the key: %s", e.msg);
    EXPECT(c.data.use_truncated == 0 && config_set(&c, "data.use_truncated=1", &e) == 0 && c.data.use_truncated == 1,
           "data.use_truncated");
    /* errors name key and source */
    EXPECT(config_set(&c, "train.batch_size=0", &e) != 0 && strstr(e.msg, "train.batch_size") &&
               strstr(e.msg, "out of range"),
           "%s", e.msg);
    EXPECT(config_set(&c, "model.preset=huge", &e) != 0 && strstr(e.msg, "not one of"), "%s", e.msg);
    EXPECT(config_load_json(&c, "{\"train\": {\"lr\": \"fast\"}}", "x.json", &e) != 0 &&
               strstr(e.msg, "x.json: train.lr: expected a number"),
           "%s", e.msg);
    EXPECT(config_load_json(&c, "{\"train\": {\"lr\": 1e400}}", "x.json", &e) != 0, "infinite accepted");
    EXPECT(config_load_json(&c, "[1]", "x.json", &e) != 0 && strstr(e.msg, "object"), "%s", e.msg);
    EXPECT(config_load_json(&c, "{\"model\": {\"n_head\": 3}}", "y.json", &e) == 0 &&
               student_model_config(&c, 0, &mc, &e) != 0 && strstr(e.msg, "not divisible"),
           "%s", e.msg);
    /* reasoning_effort is a string field: a named choice is stored as its text (it was parsed as an
     * enum index written into the pointer -- "low" made it 0x3 and the first request crashed; found
     * with make test-asan, whose leak reports showed the strings config_free never freed) */
    Config r;
    config_init(&r);
    EXPECT(r.teacher.reasoning_effort && !strcmp(r.teacher.reasoning_effort, ""), "reasoning_effort default");
    EXPECT(config_set(&r, "teacher.reasoning_effort=low", &e) == 0 && r.teacher.reasoning_effort &&
               !strcmp(r.teacher.reasoning_effort, "low"),
           "reasoning_effort low: %s", e.msg);
    EXPECT(config_set(&r, "critic.reasoning_effort=none", &e) == 0 && !strcmp(r.critic.reasoning_effort, "none"),
           "reasoning_effort none");
    EXPECT(config_set(&r, "teacher.reasoning_effort=extreme", &e) != 0 && strstr(e.msg, "teacher.reasoning_effort") &&
               !strcmp(r.teacher.reasoning_effort, "low"),
           "bad reasoning_effort: %s", e.msg);
    char *rj = config_to_json(&r);
    Config r2;
    config_init(&r2);
    EXPECT(config_load_json(&r2, rj, "dump", &e) == 0 && !strcmp(r2.teacher.reasoning_effort, "low") &&
               !strcmp(r2.critic.reasoning_effort, "none"),
           "dump of reasoning_effort read back: %s", e.msg);
    config_free(&r2);
    free(rj);
    config_free(&r);
    /* typed choices and lists: stored as values, an unknown item is an error naming the key */
    EXPECT(c.critique.objective == OBJECTIVE_DPO && c.teach.splits == (SPLIT_TRAIN | SPLIT_EVAL | SPLIT_OOD) &&
               c.eval.splits == (EVAL_SPLIT_EVAL | EVAL_SPLIT_OOD) && c.tokenizer.type == TOKENIZER_TYPE_BPE,
           "typed defaults");
    EXPECT(config_set(&c, "critique.objective=brio-dpo", &e) == 0 && c.critique.objective == OBJECTIVE_BRIO_DPO &&
               !strcmp(config_enum_name("critique.objective", c.critique.objective), "brio-dpo"),
           "objective");
    EXPECT(config_set(&c, "teach.splits=eval, ood", &e) == 0 && c.teach.splits == (SPLIT_EVAL | SPLIT_OOD), "%s",
           e.msg);
    EXPECT(config_get_string(&c, "teach.splits", buf, sizeof buf) == 0 && !strcmp(buf, "eval,ood"), "list %s", buf);
    EXPECT(config_set(&c, "teach.splits=retrain", &e) != 0 && strstr(e.msg, "teach.splits") &&
               strstr(e.msg, "'retrain' is not one of"),
           "unknown split: %s", e.msg);
    EXPECT(config_set(&c, "eval.splits=train", &e) != 0 && strstr(e.msg, "eval.splits"), "train is no eval split: %s",
           e.msg);
    EXPECT(config_set(&c, "teach.splits=,", &e) != 0 && strstr(e.msg, "names none"), "empty list: %s", e.msg);
    EXPECT(config_set(&c, "critique.objective=DPO", &e) != 0 && strstr(e.msg, "not one of"), "case: %s", e.msg);
    char *json3 = config_to_json(&c);
    EXPECT(strstr(json3, "\"eval,ood\"") && strstr(json3, "\"brio-dpo\""),
           "choices dumped by name");
    free(json3);
    /* judges */
    char *jf = write_tmp("{\"judges\": [{\"name\": \"big\", \"base_url\": \"http://h:1/v1\", \"model\": \"m1\","
                         " \"temperature\": 0.2}, {\"name\": \"small\", \"concurrency\": 4}]}");
    JudgeConfig *j;
    int n;
    EXPECT(config_load_judges(&c2, jf, &j, &n, &e) == 0, "%s", e.msg);
    if (n == 2) {
        EXPECT(!strcmp(j[0].name, "big") && !strcmp(j[0].ep.model, "m1") && j[0].ep.temperature == 0.2 &&
                   !strcmp(j[0].ep.base_url, "http://h:1/v1") && j[0].ep.logprobs == c2.critic.logprobs,
               "judge 1");
        EXPECT(j[1].ep.concurrency == 4 && !strcmp(j[1].ep.model, c2.critic.model) &&
                   !strcmp(j[1].ep.prompt, c2.critic.prompt),
               "judge 2 inherits the critic");
    }
    EXPECT(n == 2, "judges %d", n);
    config_free_judges(j, n);
    const char *bad[][2] = {
        {"{\"judges\": [{\"name\": \"a\", \"modle\": \"x\"}]}", "judge 'a': unknown key 'modle'"},
        {"{\"judges\": [{\"name\": \"a\", \"concurrency\": 0}]}", "out of range"},
        {"{\"judges\": [{\"base_url\": \"x\"}]}", "judge 1: needs a non-empty string \"name\""},
        {"{\"judges\": [{\"name\": \"a\"}, {\"name\": \"a\"}]}", "name 'a' used twice"},
        {"{\"judge\": []}", "expected {\"judges\""},
        {"{\"judges\": [", "malformed JSON"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char *p = write_tmp(bad[k][0]);
        int rc = config_load_judges(&c2, p, &j, &n, &e);
        EXPECT(rc != 0 && strstr(e.msg, bad[k][1]) && strstr(e.msg, p), "judges case %zu: %s", k, rc ? e.msg : "accepted");
        unlink(p);
        free(p);
    }
    EXPECT(config_load_judges(&c2, "/nonexistent/j.json", &j, &n, &e) != 0 && strstr(e.msg, "j.json"), "%s", e.msg);
    unlink(f), unlink(jf);
    free(f), free(jf), free(json), free(json2);
    config_free(&c), config_free(&c2);
    return test_summary();
}

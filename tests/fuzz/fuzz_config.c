/* fuzz_config -- the configuration table (base/config.h) on arbitrary text.
 * Input: a JSON configuration, optionally followed by a line "--set" and then
 * one "section.key=value" override per line.  The JSON goes to
 * config_load_json, each line to config_set (errors are fine), then
 * config_validate; whatever was accepted must survive the dump:
 * config_to_json of the result loads back into a fresh configuration
 * without error and dumps to the same text. */
#include "base/config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_cstr(data, size);
    char *sets = strstr(text, "\n--set\n");
    if (sets) *sets = 0, sets += 7;
    Config c;
    config_init(&c);
    Err e;
    config_load_json(&c, text, "fuzz.json", &e);
    for (char *line = sets; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        config_set(&c, line, &e);
        line = nl ? nl + 1 : NULL;
    }
    config_validate(&c, &e);
    char buf[256];
    config_get_string(&c, "critique.objective", buf, sizeof buf);
    char *json = config_to_json(&c);
    Config back;
    config_init(&back);
    int rc = config_load_json(&back, json, "dump", &e);
    FUZZ_CHECK(rc == 0, "the dump does not load back: %s\n%s", e.msg, json);
    char *again = config_to_json(&back);
    FUZZ_CHECK(strcmp(json, again) == 0, "the dump changes on reloading:\n%s\n---\n%s", json, again);
    free(again);
    free(json);
    config_free(&back);
    config_free(&c);
    free(text);
    return 0;
}

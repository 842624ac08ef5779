/* fuzz_teacher -- the teacher's answer readers (llm/teacher.h) on arbitrary
 * content: teacher_parse_list (at most max items, each trimmed, of two
 * words or more and not ending in ':', as its contract says) and
 * teacher_is_refusal.  The first byte is max (0..31), the rest the
 * content. */
#include "base/text.h"
#include "llm/teacher.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int max = data[0] & 31;
    char *content = fuzz_cstr(data + 1, size - 1);
    StrVec items = {0};
    int n = teacher_parse_list(content, max, &items);
    FUZZ_CHECK(n >= 0 && n <= max && (size_t)n == items.n, "%d items of at most %d (%zu stored)", n, max, items.n);
    for (size_t i = 0; i < items.n; i++) {
        const char *s = items.a[i];
        FUZZ_CHECK(s[0] && s[0] != ' ' && s[strlen(s) - 1] != ' ', "item %zu not trimmed: '%s'", i, s);
        FUZZ_CHECK(text_word_count(s) >= 2 && s[strlen(s) - 1] != ':', "item %zu: '%s'", i, s);
    }
    strvec_free(&items);
    teacher_is_refusal(content);
    free(content);
    return 0;
}

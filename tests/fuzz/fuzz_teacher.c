/* fuzz_teacher -- the teacher's answer readers (llm/teacher.h) on arbitrary
 * content: teacher_parse_list (at most max items, each of two words or
 * more) and teacher_is_refusal; and the critic's written-answer fallback
 * (critic_parse, llm/critic.h) on a response with that content and no
 * log-probs.  The first byte is max (0..31), the rest the content. */
#include "llm/critic.h"
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
    }
    strvec_free(&items);
    teacher_is_refusal(content);
    ChatResponse r = {0};
    r.content = content;
    double p1 = -1;
    int src = critic_parse(&r, &p1);
    FUZZ_CHECK(src == CRITIC_SRC_NONE || (src == CRITIC_SRC_TEXT && (p1 == 0 || p1 == 1)), "source %d p %g", src, p1);
    free(content);
    return 0;
}

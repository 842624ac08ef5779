/* test_teacher -- the teacher role (teacher.c): the request (template, the
 * role's token_param / reasoning_effort / extra_body), the numbered-list
 * parser (markers, intro and closing prose, quotes, bold titles, bold and
 * quotes together, continuation lines, reasoning drafts never taken) and
 * refusal detection. */
#include <stdlib.h>
#include <string.h>

#include "base/config.h"
#include "base/util.h"
#include "llm/chat.h"
#include "llm/teacher.h"
#include "test.h"

static void expect_list(const char *content, int max, int want, const char *first, const char *last) {
    StrVec v = {0};
    int n = teacher_parse_list(content, max, &v);
    EXPECT(n == want, "list of %d, wanted %d: <<%s>>", n, want, content);
    if (n == want && want > 0) {
        EXPECT(!strcmp(v.a[0], first), "first item '%s' wanted '%s'", v.a[0], first);
        EXPECT(!strcmp(v.a[n - 1], last), "last item '%s' wanted '%s'", v.a[n - 1], last);
    }
    strvec_free(&v);
}

static void test_teacher_parsing(void) {
    expect_list("1. The cat sat.\n2. A cat was sitting.\n3. Feline, seated.", 3, 3, "The cat sat.", "Feline, seated.");
    expect_list("Here are three takes:\n\n1) One two\n2) Three four\n3) Five six\n\n", 3, 3, "One two", "Five six");
    expect_list("- \"Alpha beta\"\n- Gamma delta\n* Epsilon zeta", 3, 3, "Alpha beta", "Epsilon zeta");
    expect_list("**1.** Bold one here\n**2.** Bold two here", 3, 2, "Bold one here", "Bold two here");
    expect_list("(1) first one\n(2) second one\n(3) third one\n(4) fourth one", 3, 3, "first one", "third one");
    expect_list("Sure! These are funny.\n1. With prose\n2. Around it\nHope you like them!", 3, 2, "With prose", "Around it");
    expect_list("No numbers at all\nJust lines of text\nThird line here", 3, 3, "No numbers at all", "Third line here");
    expect_list("1. \xE2\x80\x9C" "Curly quoted" "\xE2\x80\x9D\n2. x", 3, 1, "Curly quoted", "Curly quoted");
    expect_list("", 3, 0, "", "");
    EXPECT(teacher_is_refusal("I'm sorry, but I can't help with that."), "refusal");
    EXPECT(teacher_is_refusal("As an AI, I cannot do this."), "refusal 2");
    EXPECT(!teacher_is_refusal("1. I'm sorry, said the cat\n2. Sorry not sorry\n3. Whoops"), "list with apology");
    EXPECT(!teacher_is_refusal("1. The cat sat.\n2. The cat sat again."), "plain list");
}

static void test_markdown(void) {
    /* a bold title before the text: the text is kept */
    expect_list("1. **The Bureaucrat:** The committee approved the budget, then napped.\n"
                "2. **Office Drama**: The budget passed; the stapler wept.\n"
                "3. **Just bold, nothing after**",
                3, 3, "The committee approved the budget, then napped.", "Just bold, nothing after");
    /* bold and quotes nested, both orders */
    expect_list("1. **\"The cat sat, as cats do.\"**\n2. \"**The dog sat too, sadly.**\"\n3. *\"Italic and quoted item\"*",
                3, 3, "The cat sat, as cats do.", "Italic and quoted item");
    expect_list("1. **Title:** \"Quoted after a title, fine.\"", 3, 1, "Quoted after a title, fine.",
                "Quoted after a title, fine.");
    /* an item wrapped onto the next line(s) */
    expect_list("1. The committee approved the budget and\nthen went out for pizza.\n2. Second item here.\n"
                "   indented continuation of it.\n3. Third item.",
                3, 3, "The committee approved the budget and then went out for pizza.", "Third item.");
    StrVec v = {0};
    teacher_parse_list("1. First, and\n   more of it\n2. Second line.\nHope these make you smile!", 5, &v);
    EXPECT(v.n == 2 && !strcmp(v.a[0], "First, and more of it") && !strcmp(v.a[1], "Second line."),
           "continuation vs closing prose: %zu items", v.n);
    strvec_free(&v);
    /* a blank line ends an item: the line after it is prose, not a continuation */
    expect_list("1. One two three\n\nand this is prose", 3, 1, "One two three", "One two three");
    /* CRLF line ends */
    expect_list("1. Windows line one\r\n2. Windows line two\r\n", 3, 2, "Windows line one", "Windows line two");
}

/* The parser reads ChatResponse.content, from which reasoning was removed:
 * numbered drafts written while thinking are never items. */
static void test_reasoning_not_parsed(void) {
    const char *body = "{\"choices\":[{\"message\":{\"content\":\"<think>\\nDrafts:\\n1. Draft one is bad\\n2. Draft two "
                       "is worse\\n</think>\\n\\n1. Final joke number one\\n2. Final joke number two\"}}]}";
    ChatResponse r;
    Err e;
    EXPECT(chat_response_parse(body, strlen(body), &r, &e) == 0, "%s", e.msg);
    StrVec v = {0};
    int n = teacher_parse_list(r.content, 3, &v);
    EXPECT(n == 2 && !strcmp(v.a[0], "Final joke number one"), "drafts in reasoning parsed: %d", n);
    strvec_free(&v);
    chat_response_free(&r);
}

static void test_request(void) {
    Config c;
    config_init(&c);
    free(c.teacher.extra_body);
    c.teacher.token_param = TOKEN_PARAM_MAX_COMPLETION_TOKENS;
    c.teacher.extra_body = xstrdup("{\"chat_template_kwargs\":{\"enable_thinking\":false}}");
    ChatRequest r;
    teacher_request(&c.teacher, "the cat sat", 4, &r);
    char *body = chat_request_body(&r);
    EXPECT(strstr(body, "Rewrite the sentence below in 4 different humorous ways") && strstr(body, "the cat sat") &&
               strstr(body, "\"max_completion_tokens\":256") && !strstr(body, "\"max_tokens\"") &&
               strstr(body, "\"chat_template_kwargs\":{\"enable_thinking\":false}"),
           "teacher body %s", body);
    free(body);
    chat_request_free(&r);
    config_free(&c);
}

int main(void) {
    test_teacher_parsing();
    test_markdown();
    test_reasoning_not_parsed();
    test_request();
    return test_summary();
}

/* teacher -- the teacher's requests and answers; see include/llm/teacher.h. */
#include "llm/teacher.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void teacher_request(const EndpointConfig *ec, const char *input, int n, ChatRequest *out) {
    char *u = chat_fill_template(ec->prompt, input, n, "", "");
    chat_request_for(ec, u, out);
    free(u);
}

/* Length of a list marker at the start of s ("1.", "1)", "(1)", "1:", "-",
 * "*", "•", "**1.**"), including following spaces; 0 if none. */
static size_t marker_len(const char *s) {
    const char *p = s;
    int bold = 0;
    if (p[0] == '*' && p[1] == '*') p += 2, bold = 1;
    if (*p == '(' && isdigit((unsigned char)p[1])) {
        p++;
        while (isdigit((unsigned char)*p)) p++;
        if (*p != ')') return 0;
        p++;
    } else if (isdigit((unsigned char)*p)) {
        while (isdigit((unsigned char)*p)) p++;
        if (*p != '.' && *p != ')' && *p != ':') return 0;
        p++;
    } else if (!bold && (*p == '-' || *p == '*') && p[1] == ' ') {
        p++;
    } else if (!bold && !strncmp(p, "\xE2\x80\xA2", 3)) { /* bullet */
        p += 3;
    } else {
        return 0;
    }
    if (bold && p[0] == '*' && p[1] == '*') p += 2;
    if (*p != ' ' && *p != '\t') return 0;
    while (*p == ' ' || *p == '\t') p++;
    return (size_t)(p - s);
}

/* Trims spaces, wrapping quotes and markdown bold/italic from an item. */
static char *clean_item(const char *s, size_t n) {
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    for (int pass = 0; pass < 2; pass++) {
        if (n >= 2 && ((s[0] == '"' && s[n - 1] == '"') || (s[0] == '*' && s[n - 1] == '*') ||
                       (s[0] == '_' && s[n - 1] == '_')))
            s++, n -= 2;
        else if (n >= 6 && !strncmp(s, "\xE2\x80\x9C", 3) && !strncmp(s + n - 3, "\xE2\x80\x9D", 3))
            s += 3, n -= 6; /* curly quotes */
        while (n && isspace((unsigned char)*s)) s++, n--;
        while (n && isspace((unsigned char)s[n - 1])) n--;
    }
    return xstrndup(s, n);
}

static int word_count(const char *s) {
    int n = 0, in = 0;
    for (; *s; s++) {
        if (isspace((unsigned char)*s)) in = 0;
        else if (!in) in = 1, n++;
    }
    return n;
}

int teacher_parse_list(const char *content, int max, StrVec *items) {
    StrVec lines = {0};
    for (const char *p = content; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        strvec_push(&lines, p, n);
        p = nl ? nl + 1 : NULL;
    }
    int any_marker = 0;
    for (size_t i = 0; i < lines.n; i++) {
        const char *l = lines.a[i];
        while (*l == ' ' || *l == '\t') l++;
        if (marker_len(l)) any_marker = 1;
    }
    int added = 0;
    for (size_t i = 0; i < lines.n && added < max; i++) {
        const char *l = lines.a[i];
        while (*l == ' ' || *l == '\t') l++;
        size_t m = marker_len(l);
        if (any_marker && !m) continue; /* prose around a list */
        char *item = clean_item(l + m, strlen(l + m));
        size_t il = strlen(item);
        /* skip intro lines ("Here are three takes:") and fragments */
        int intro = il > 0 && item[il - 1] == ':';
        if (!intro && word_count(item) >= 2) {
            strvec_push(items, item, il);
            added++;
        }
        free(item);
    }
    strvec_free(&lines);
    return added;
}

int teacher_is_refusal(const char *content) {
    static const char *pat[] = {"i'm sorry", "i am sorry", "i cannot", "i can't", "i can\xE2\x80\x99t",
                                "i won't", "as an ai", "i'm not able", "i am not able", "i'm unable",
                                "i am unable", "cannot help with", "can't help with"};
    char head[160];
    size_t n = 0;
    for (const char *p = content; *p && n < sizeof head - 1; p++) head[n++] = (char)tolower((unsigned char)*p);
    head[n] = 0;
    int apology = 0;
    for (size_t k = 0; k < sizeof pat / sizeof pat[0]; k++)
        if (strstr(head, pat[k])) apology = 1;
    if (!apology) return 0;
    StrVec items = {0};
    int listed = teacher_parse_list(content, 10, &items);
    strvec_free(&items);
    return listed < 2; /* an apology followed by a real list is not a refusal */
}


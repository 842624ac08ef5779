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

/* Cuts s[0..n) to its trimmed core. */
static void trim(const char **s, size_t *n) {
    while (*n && isspace((unsigned char)**s)) (*s)++, (*n)--;
    while (*n && isspace((unsigned char)(*s)[*n - 1])) (*n)--;
}

/* Drops a bold title: "**Title:** text" or "**Title**: text" -> "text"
 * (only when text follows). */
static void drop_bold_title(const char **s, size_t *n) {
    if (*n < 5 || strncmp(*s, "**", 2) != 0) return;
    const char *close = NULL;
    for (const char *p = *s + 2; p + 1 < *s + *n; p++)
        if (p[0] == '*' && p[1] == '*') {
            close = p;
            break;
        }
    if (!close) return;
    const char *after = close + 2;
    int colon = close[-1] == ':';
    if (!colon && after < *s + *n && *after == ':') after++, colon = 1;
    if (!colon) return;
    size_t rest = (size_t)(*s + *n - after);
    const char *r = after;
    trim(&r, &rest);
    if (!rest) return;
    *s = r;
    *n = rest;
}

/* Trims spaces, a bold title, wrapping quotes and markdown bold/italic from
 * an item, as often as they nest. */
static char *clean_item(const char *s, size_t n) {
    trim(&s, &n);
    drop_bold_title(&s, &n);
    for (int changed = 1; changed;) {
        changed = 0;
        if (n >= 2 && ((s[0] == '"' && s[n - 1] == '"') || (s[0] == '*' && s[n - 1] == '*') ||
                       (s[0] == '_' && s[n - 1] == '_') || (s[0] == '\'' && s[n - 1] == '\'')))
            s++, n -= 2, changed = 1;
        else if (n >= 6 && !strncmp(s, "\xE2\x80\x9C", 3) && !strncmp(s + n - 3, "\xE2\x80\x9D", 3))
            s += 3, n -= 6, changed = 1; /* curly quotes */
        trim(&s, &n);
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

/* 1 if line (not a list item) continues the item text before it: it is
 * indented, or the item does not end a sentence and the line starts with a
 * lowercase letter. */
static int continues(const char *line, const ByteBuf *item) {
    if (!item->n) return 0;
    if (line[0] == ' ' || line[0] == '\t') return 1;
    size_t n = item->n;
    while (n && isspace((unsigned char)item->a[n - 1])) n--;
    char last = n ? item->a[n - 1] : '.';
    int ended = last == '.' || last == '!' || last == '?' || last == '"' || last == ':' ||
                (n >= 3 && !strncmp(item->a + n - 3, "\xE2\x80\x9D", 3));
    return !ended && islower((unsigned char)line[0]);
}

/* Appends the cleaned item text to items (when it is a real item). */
static int flush_item(ByteBuf *item, StrVec *items) {
    if (!item->n) return 0;
    char *it = clean_item(item->a, item->n);
    item->n = 0;
    size_t il = strlen(it);
    /* skip intro lines ("Here are three takes:") and fragments */
    int ok = !(il > 0 && it[il - 1] == ':') && word_count(it) >= 2;
    if (ok) strvec_push(items, it, il);
    free(it);
    return ok;
}

int teacher_parse_list(const char *content, int max, StrVec *items) {
    StrVec lines = {0};
    for (const char *p = content; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n && p[n - 1] == '\r') n--;
        strvec_push(&lines, p, n);
        p = nl ? nl + 1 : NULL;
    }
    int any_marker = 0;
    for (size_t i = 0; i < lines.n; i++) {
        const char *l = lines.a[i];
        while (*l == ' ' || *l == '\t') l++;
        if (marker_len(l)) any_marker = 1;
    }
    int added = 0, in_item = 0;
    ByteBuf item = {0};
    for (size_t i = 0; i < lines.n && added < max; i++) {
        const char *raw = lines.a[i], *l = raw;
        while (*l == ' ' || *l == '\t') l++;
        size_t m = marker_len(l);
        if (!*l) { /* a blank line ends an item */
            added += flush_item(&item, items);
            in_item = 0;
            continue;
        }
        if (any_marker && !m) {
            if (in_item && continues(raw, &item)) {
                bytebuf_putc(&item, ' ');
                bytebuf_put(&item, l, strlen(l));
            } else { /* prose around a list */
                added += flush_item(&item, items);
                in_item = 0;
            }
            continue;
        }
        added += flush_item(&item, items);
        if (added >= max) break;
        bytebuf_put(&item, l + m, strlen(l + m));
        in_item = any_marker;
        if (!any_marker) added += flush_item(&item, items); /* plain lines: one item each */
    }
    if (added < max) added += flush_item(&item, items);
    bytebuf_free(&item);
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


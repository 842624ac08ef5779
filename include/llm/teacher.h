/* teacher -- the teacher role of "Small But Funny" (Ravi et al. 2024): the
 * request for one literal input (template with {input} and {n}), parsing of
 * the numbered list it answers with, and refusal detection.  Pure functions
 * over the protocol (chat.h); no I/O.  They read the answer only:
 * ChatResponse.content, from which chat_response_parse removed any
 * reasoning, so list items written while "thinking" are never taken.
 */
#ifndef HDISTILL_TEACHER_H
#define HDISTILL_TEACHER_H

#include "base/config.h"
#include "base/util.h"
#include "llm/chat.h"

/* The request asking for n paraphrases of input (caller frees with
 * chat_request_free). */
void teacher_request(const EndpointConfig *ec, const char *input, int n, ChatRequest *out);

/* Items of a numbered/bulleted list, at most max (appended to items);
 * returns how many were added.  Accepted, line by line:
 *  - item markers "1.", "1)", "1:", "(1)", "**1.**", "- ", "* ", "• ",
 *    after optional indentation; when no line has a marker, every non-blank
 *    line is an item;
 *  - a bold title before the text is dropped: "1. **Title:** text" and
 *    "1. **Title**: text" give "text" (a bold item with nothing after it
 *    is kept, without the asterisks);
 *  - wrapping quotes ("", '', “”) and markdown emphasis (**, *, _)
 *    are removed, as deeply as they nest ("**\"text\"**" gives text);
 *  - continuation lines: a line without a marker right after an item (no
 *    blank line between) is joined to it with a space when it is indented,
 *    or when the item does not end a sentence (. ! ? : or a closing quote)
 *    and the line starts with a lowercase letter;
 *  - other lines without a marker (an intro, a closing remark) are prose and
 *    skipped, as are items ending in ':' and items of fewer than 2 words. */
int teacher_parse_list(const char *content, int max, StrVec *items);
/* 1 if the answer is a refusal (an apology or "I can't" and no list). */
int teacher_is_refusal(const char *content);

#endif

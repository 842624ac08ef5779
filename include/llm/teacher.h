/* teacher -- the teacher role of "Small But Funny" (Ravi et al. 2024): the
 * request for one literal input (template with {input} and {n}), parsing of
 * the numbered list it answers with (robust to "1.", "1)", "(1)", "**1.**",
 * bullets, missing numbers, an intro line, quotes), and refusal detection.
 * Pure functions over the protocol (chat.h); no I/O.
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
 * returns how many were added. */
int teacher_parse_list(const char *content, int max, StrVec *items);
/* 1 if the answer is a refusal (an apology or "I can't" and no list). */
int teacher_is_refusal(const char *content);

#endif

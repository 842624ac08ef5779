/* prompt -- how an input is put to the student and where its answer ends.
 *
 *   plain  input ids, separator ids  ->  target ids, end of text
 *          (the separator: the tokenizer's <|sep|> when it has one, else the
 *          encoding of tokenizer.separator; the end: the tokenizer's
 *          end-of-text id)
 *   chat   the family's chat turns built from the tokenizer's own special
 *          tokens, an instruction as the system turn, the input as the user
 *          turn; the target is the assistant reply, ended by the turn's end
 *          token.  Two layouts, found from the tokenizer:
 *            ChatML (Qwen, SmolLM2):
 *              <|im_start|>system\nINSTRUCTION<|im_end|>\n<|im_start|>user\nINPUT<|im_end|>\n
 *              <|im_start|>assistant\n  ->  TARGET <|im_end|>
 *            Llama 3:
 *              <|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nINSTRUCTION<|eot_id|>
 *              <|start_header_id|>user<|end_header_id|>\n\nINPUT<|eot_id|>
 *              <|start_header_id|>assistant<|end_header_id|>\n\n  ->  TARGET <|eot_id|>
 *          Text between two special tokens is encoded as one piece, as
 *          Hugging Face's chat templates are.
 * The loss covers the target and its end token only; decoding stops at the
 * end token.  Pure computation over a tokenizer (no I/O).
 */
#ifndef HDISTILL_PROMPT_H
#define HDISTILL_PROMPT_H

#include "base/util.h"
#include "engine/tokenizer.h"

typedef enum { PROMPT_PLAIN = 0, PROMPT_CHAT = 1 } PromptKind;
typedef enum { CHAT_NONE = 0, CHAT_CHATML = 1, CHAT_LLAMA3 = 2 } ChatLayout;

typedef struct {
    PromptKind kind;
    ChatLayout layout;
    IntVec prefix;  /* ids before the input's piece */
    char *lead;     /* text that opens the input's piece ("user\n", "\n\n"; "" plain) */
    IntVec suffix;  /* ids after it, up to where the answer starts */
    int end;        /* the id that ends an answer */
} PromptFormat;

/* Builds the format of kind for tokenizer t; instruction: the system turn
 * (chat); separator: the text between input and target (plain, when t has no
 * <|sep|>).  -1 with e set when chat is asked of a tokenizer without the
 * tokens of a known layout. */
int prompt_format_init(PromptFormat *f, const Tokenizer *t, PromptKind kind, const char *instruction,
                       const char *separator, Err *e);
void prompt_format_free(PromptFormat *f); /* accepts NULL */

/* Appends the prompt of input (everything before the answer) to out. */
void prompt_encode(const PromptFormat *f, const Tokenizer *t, const char *input, IntVec *out);
/* Appends target's ids and the end id to out. */
void prompt_encode_answer(const PromptFormat *f, const Tokenizer *t, const char *target, IntVec *out);

#endif

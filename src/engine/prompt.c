/* prompt -- plain and chat prompts; see include/engine/prompt.h. */
#include "engine/prompt.h"

#include <stdlib.h>
#include <string.h>

static void put_text(IntVec *v, const Tokenizer *t, const char *s) { tokenizer_encode(t, s, strlen(s), v); }

/* the ids of named special tokens, all present? */
static int ids_of(const Tokenizer *t, const char *const *names, int n, int *ids) {
    for (int i = 0; i < n; i++)
        if ((ids[i] = tokenizer_token_id(t, names[i])) < 0) return 0;
    return 1;
}

static void chatml(PromptFormat *f, const Tokenizer *t, const int *id, const char *instruction) {
    enum { START, END };
    char *sys = xasprintf("system\n%s", instruction);
    intvec_push(&f->prefix, id[START]);
    put_text(&f->prefix, t, sys);
    intvec_push(&f->prefix, id[END]);
    put_text(&f->prefix, t, "\n");
    intvec_push(&f->prefix, id[START]);
    f->lead = xstrdup("user\n");
    intvec_push(&f->suffix, id[END]);
    put_text(&f->suffix, t, "\n");
    intvec_push(&f->suffix, id[START]);
    put_text(&f->suffix, t, "assistant\n");
    f->end = id[END];
    free(sys);
}

static void llama3(PromptFormat *f, const Tokenizer *t, const int *id, const char *instruction) {
    enum { BOT, SH, EH, EOT };
    char *sys = xasprintf("\n\n%s", instruction);
    intvec_push(&f->prefix, id[BOT]);
    intvec_push(&f->prefix, id[SH]);
    put_text(&f->prefix, t, "system");
    intvec_push(&f->prefix, id[EH]);
    put_text(&f->prefix, t, sys);
    intvec_push(&f->prefix, id[EOT]);
    intvec_push(&f->prefix, id[SH]);
    put_text(&f->prefix, t, "user");
    intvec_push(&f->prefix, id[EH]);
    f->lead = xstrdup("\n\n");
    intvec_push(&f->suffix, id[EOT]);
    intvec_push(&f->suffix, id[SH]);
    put_text(&f->suffix, t, "assistant");
    intvec_push(&f->suffix, id[EH]);
    put_text(&f->suffix, t, "\n\n");
    f->end = id[EOT];
    free(sys);
}

int prompt_format_init(PromptFormat *f, const Tokenizer *t, PromptKind kind, const char *instruction,
                       const char *separator, Err *e) {
    memset(f, 0, sizeof *f);
    f->kind = kind;
    if (kind == PROMPT_PLAIN) {
        f->lead = xstrdup("");
        if (tokenizer_sep_id(t) >= 0) intvec_push(&f->suffix, tokenizer_sep_id(t));
        else put_text(&f->suffix, t, separator);
        f->end = tokenizer_eot_id(t);
        return 0;
    }
    static const char *const CHATML[] = {"<|im_start|>", "<|im_end|>"};
    static const char *const LLAMA3[] = {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                                         "<|eot_id|>"};
    int id[4];
    if (ids_of(t, CHATML, 2, id)) {
        f->layout = CHAT_CHATML;
        chatml(f, t, id, instruction);
    } else if (ids_of(t, LLAMA3, 4, id)) {
        f->layout = CHAT_LLAMA3;
        llama3(f, t, id, instruction);
    } else {
        prompt_format_free(f);
        return err_set(e, "student.format chat: the tokenizer has neither ChatML (<|im_start|>, <|im_end|>) nor "
                          "Llama 3 (<|start_header_id|>, <|end_header_id|>, <|eot_id|>) chat tokens (hint: "
                          "student.format=plain)");
    }
    return 0;
}

void prompt_format_free(PromptFormat *f) {
    if (!f) return;
    intvec_free(&f->prefix);
    intvec_free(&f->suffix);
    free(f->lead);
    memset(f, 0, sizeof *f);
}

void prompt_encode(const PromptFormat *f, const Tokenizer *t, const char *input, IntVec *out) {
    for (size_t i = 0; i < f->prefix.n; i++) intvec_push(out, f->prefix.a[i]);
    if (f->lead && f->lead[0]) {
        char *piece = xasprintf("%s%s", f->lead, input);
        put_text(out, t, piece);
        free(piece);
    } else {
        put_text(out, t, input);
    }
    for (size_t i = 0; i < f->suffix.n; i++) intvec_push(out, f->suffix.a[i]);
}

void prompt_encode_answer(const PromptFormat *f, const Tokenizer *t, const char *target, IntVec *out) {
    put_text(out, t, target);
    intvec_push(out, f->end);
}

/* test_prompt -- engine/prompt.h: the plain and chat formats built from a
 * tokenizer's own special tokens, checked id by id against the layouts the
 * header documents (written out here from the chat templates of Qwen /
 * SmolLM2 and Llama 3), on byte-level tokenizer.json files made by the test
 * (every byte its own id, no merges, so a text's ids are its bytes):
 * ChatML and Llama 3 prompts and answers, the end id, the plain format's
 * text separator when the tokenizer has no <|sep|>, and the errors: chat
 * asked of a tokenizer without a known layout, or with half of one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/prompt.h"
#include "engine/tokenizer.h"
#include "test.h"

/* GPT-2's byte -> code point map, written out independently of the module */
static unsigned byte_cp(int b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) return (unsigned)b;
    int n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255))) n++;
    return 256u + (unsigned)n;
}

/* a tokenizer.json: ids 0..255 the bytes, then the added special tokens from id 256 */
static Tokenizer *load(const char *dir, const char *name, const char *const *special, int n_special) {
    ByteBuf b = {0};
    bytebuf_printf(&b, "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null, \"added_tokens\": [");
    for (int i = 0; i < n_special; i++)
        bytebuf_printf(&b, "%s{\"id\": %d, \"content\": \"%s\", \"single_word\": false, \"lstrip\": false, "
                           "\"rstrip\": false, \"normalized\": false, \"special\": true}",
                       i ? ", " : "", 256 + i, special[i]);
    bytebuf_printf(&b, "], \"normalizer\": null, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": "
                       "false, \"trim_offsets\": false, \"use_regex\": true}, \"post_processor\": null, "
                       "\"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, "
                       "\"use_regex\": false}, \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, "
                       "\"continuing_subword_prefix\": null, \"end_of_word_suffix\": null, \"fuse_unk\": false, "
                       "\"byte_fallback\": false, \"ignore_merges\": false, \"vocab\": {");
    for (int i = 0; i < 256; i++) bytebuf_printf(&b, "%s\"\\u%04x\": %d", i ? ", " : "", byte_cp(i), i);
    bytebuf_printf(&b, "}, \"merges\": []}}");
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f, "cannot write %s", path);
    fwrite(b.a, 1, b.n, f);
    fclose(f);
    bytebuf_free(&b);
    Err e = {{0}};
    Tokenizer *t = tokenizer_load_hf(path, &e);
    EXPECT(t != NULL, "loading %s: %s", path, e.msg);
    free(path);
    return t;
}

/* the expected ids, from a spec: "<n>" is special id 256+n, anything else a text of byte ids */
static void spec_ids(IntVec *v, const char *const *spec) {
    for (; *spec; spec++) {
        const char *s = *spec;
        if (s[0] == '<' && s[1] >= '0' && s[1] <= '9' && s[2] == '>' && !s[3]) intvec_push(v, 256 + (s[1] - '0'));
        else
            for (; *s; s++) intvec_push(v, (unsigned char)*s);
    }
}

static int ids_equal(const IntVec *got, const char *const *spec, const char *what) {
    IntVec want = {0};
    spec_ids(&want, spec);
    int ok = got->n == want.n && !memcmp(got->a, want.a, sizeof(int) * want.n);
    if (!ok) {
        fprintf(stderr, "%s: got", what);
        for (size_t i = 0; i < got->n; i++) fprintf(stderr, " %d", got->a[i]);
        fprintf(stderr, "\n%s: want", what);
        for (size_t i = 0; i < want.n; i++) fprintf(stderr, " %d", want.a[i]);
        fputc('\n', stderr);
    }
    intvec_free(&want);
    return ok;
}

#define INSTR "Rewrite it funnier."
#define INPUT "the dog barked"
#define TARGET "the hound yodelled"

static void test_chatml(const char *dir) {
    const char *sp[] = {"<|im_start|>", "<|im_end|>", "<|endoftext|>"};
    Tokenizer *t = load(dir, "chatml.json", sp, 3);
    if (!t) return;
    PromptFormat f;
    Err e = {{0}};
    EXPECT(prompt_format_init(&f, t, PROMPT_CHAT, INSTR, " => ", &e) == 0, "ChatML format: %s", e.msg);
    EXPECT(f.kind == PROMPT_CHAT && f.layout == CHAT_CHATML && f.end == 257, "ChatML found, <|im_end|> ends (%d)",
           f.end);
    IntVec v = {0};
    prompt_encode(&f, t, INPUT, &v);
    const char *prompt[] = {"<0>", "system\n" INSTR, "<1>", "\n", "<0>", "user\n" INPUT, "<1>", "\n", "<0>",
                            "assistant\n", NULL};
    EXPECT(ids_equal(&v, prompt, "ChatML prompt"), "ChatML prompt: system, user turns, assistant header");
    v.n = 0;
    prompt_encode_answer(&f, t, TARGET, &v);
    const char *answer[] = {TARGET, "<1>", NULL};
    EXPECT(ids_equal(&v, answer, "ChatML answer"), "ChatML answer: the reply, <|im_end|>");
    intvec_free(&v);
    prompt_format_free(&f);

    EXPECT(prompt_format_init(&f, t, PROMPT_PLAIN, INSTR, " => ", &e) == 0, "plain format: %s", e.msg);
    prompt_encode(&f, t, INPUT, &v);
    const char *plain[] = {INPUT " => ", NULL};
    EXPECT(ids_equal(&v, plain, "plain prompt"), "plain: the input, then the text separator (no <|sep|>)");
    v.n = 0;
    prompt_encode_answer(&f, t, TARGET, &v);
    EXPECT(v.n == strlen(TARGET) + 1 && v.a[v.n - 1] == tokenizer_eot_id(t) && f.end == tokenizer_eot_id(t),
           "plain answer ends with the tokenizer's end of text (%d)", tokenizer_eot_id(t));
    intvec_free(&v);
    prompt_format_free(&f);
    prompt_format_free(NULL);
    tokenizer_destroy(t);
}

static void test_llama3(const char *dir) {
    const char *sp[] = {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                        "<|end_of_text|>"};
    Tokenizer *t = load(dir, "llama3.json", sp, 5);
    if (!t) return;
    PromptFormat f;
    Err e = {{0}};
    EXPECT(prompt_format_init(&f, t, PROMPT_CHAT, INSTR, " => ", &e) == 0, "Llama 3 format: %s", e.msg);
    EXPECT(f.layout == CHAT_LLAMA3 && f.end == 259, "Llama 3 found, <|eot_id|> ends (%d)", f.end);
    IntVec v = {0};
    prompt_encode(&f, t, INPUT, &v);
    const char *prompt[] = {"<0>", "<1>", "system", "<2>", "\n\n" INSTR, "<3>", "<1>", "user", "<2>",
                            "\n\n" INPUT, "<3>", "<1>", "assistant", "<2>", "\n\n", NULL};
    EXPECT(ids_equal(&v, prompt, "Llama 3 prompt"), "Llama 3 prompt: headers, system, user, assistant header");
    v.n = 0;
    prompt_encode_answer(&f, t, TARGET, &v);
    const char *answer[] = {TARGET, "<3>", NULL};
    EXPECT(ids_equal(&v, answer, "Llama 3 answer"), "Llama 3 answer: the reply, <|eot_id|>");
    intvec_free(&v);
    prompt_format_free(&f);
    tokenizer_destroy(t);
}

static void test_errors(const char *dir) {
    const char *none[] = {"<|endoftext|>"};
    const char *half[] = {"<|im_start|>", "<|endoftext|>"};
    const char *halfl[] = {"<|start_header_id|>", "<|end_header_id|>", "<|endoftext|>"};
    const char *const *sets[] = {none, half, halfl};
    int ns[] = {1, 2, 3};
    const char *names[] = {"none.json", "half.json", "halfl.json"};
    for (int i = 0; i < 3; i++) {
        Tokenizer *t = load(dir, names[i], sets[i], ns[i]);
        if (!t) continue;
        PromptFormat f;
        Err e = {{0}};
        EXPECT(prompt_format_init(&f, t, PROMPT_CHAT, INSTR, " => ", &e) != 0 && strstr(e.msg, "student.format") &&
                   !strchr(e.msg, '\n'),
               "%s: chat refused in one line naming student.format: \"%s\"", names[i], e.msg);
        tokenizer_destroy(t);
    }
}

int main(void) {
    char *dir = test_tmpdir("prompt");
    test_chatml(dir);
    test_llama3(dir);
    test_errors(dir);
    test_rm_rf(dir);
    free(dir);
    return test_summary();
}

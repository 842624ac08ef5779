/* export -- `hdistill export`; see include/stages/export.h. */
#include "stages/export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/hfmodel.h"
#include "io/safetensors.h"
#include "stages/student.h"

/* The arguments: SRC and --out DIR.  EXIT_OK, or EXIT_USAGE after a message. */
static int parse_args(int argc, char **argv, const char **src, const char **out) {
    *src = *out = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "error: export: --out needs a directory\n");
                return EXIT_USAGE;
            }
            *out = argv[++i];
        } else if (strncmp(argv[i], "--out=", 6) == 0) {
            *out = argv[i] + 6;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "error: export: unknown option '%s' (hint: hdistill export --help)\n", argv[i]);
            return EXIT_USAGE;
        } else if (!*src) {
            *src = argv[i];
        } else {
            fprintf(stderr, "error: export: more than one source ('%s' and '%s')\n", *src, argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!*src || !*out || !**out) {
        fprintf(stderr, "error: export needs RUN_DIR (or CHECKPOINT.h5) and --out DIR (hint: hdistill export --help)\n");
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* The tokenizer beside a Hugging Face export: its tokenizer.json verbatim and a
 * tokenizer_config.json naming the end token, so transformers loads both. */
static int export_tokenizer(const char *out, const Student *s, Err *e) {
    if (!s->td.source) return 0; /* a tokenizer trained here or GPT-2's files: no tokenizer.json */
    char *tj = xasprintf("%s/tokenizer.json", out), *tc = xasprintf("%s/tokenizer_config.json", out);
    size_t len;
    const uint8_t *end = tokenizer_token_bytes(s->tok, s->td.eot_id, &len);
    char *name = xstrndup(end ? (const char *)end : "", end ? len : 0);
    char *cfg = xasprintf("{\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n  \"eos_token\": \"%s\",\n"
                          "  \"clean_up_tokenization_spaces\": false\n}\n",
                          name);
    int rc = util_write_file_durable(tj, s->td.source, (size_t)s->td.source_len, e) ||
             util_write_file_durable(tc, cfg, strlen(cfg), e);
    free(tj), free(tc), free(name), free(cfg);
    return rc ? -1 : 0;
}

int export_main(int argc, char **argv) {
    const char *src, *out;
    if (parse_args(argc, argv, &src, &out) != EXIT_OK) return EXIT_USAGE;
    Err e = {{0}};
    Student s;
    if (student_read_source(src, &s, NULL, &e) != 0) {
        fprintf(stderr, "error: %s\n", e.msg);
        student_free(&s);
        return EXIT_USAGE;
    }
    const ModelConfig *gc = &s.model.cfg;
    int rc = 0;
    s.tok = tokenizer_from_data(&s.td, &e);
    if (!s.tok) rc = -1;
    if (rc == 0) rc = util_mkdir_p(out, &e);
    if (rc == 0 && gc->arch == MODEL_LLAMA) {
        rc = hf_model_export(out, &s.model, tokenizer_token_id(s.tok, "<|begin_of_text|>"), s.td.eot_id, &e);
        if (rc == 0) rc = export_tokenizer(out, &s, &e);
        if (rc == 0)
            printf("exported %s (step %lld): %s/config.json, model.safetensors%s (%s, L%d d%d, %d tokens)\n", s.path,
                   (long long)s.st.step, out, s.td.source ? ", tokenizer.json" : "", model_arch_name(gc->arch),
                   gc->n_layer, gc->d_model, gc->vocab_size);
    } else if (rc == 0) {
        char *st_path = xasprintf("%s/model.safetensors", out), *cf_path = xasprintf("%s/config.json", out);
        rc = safetensors_write_gpt2(st_path, &s.model, &e);
        if (rc == 0) rc = safetensors_write_hf_config(cf_path, gc, s.td.eot_id, &e);
        if (rc == 0) rc = export_tokenizer(out, &s, &e);
        if (rc == 0)
            printf("exported %s (step %lld): %s, %s (GPT-2 L%d H%d d%d, %d tokens, %d positions)\n", s.path,
                   (long long)s.st.step, st_path, cf_path, gc->n_layer, gc->n_head, gc->d_model, gc->vocab_size,
                   gc->max_seq_len);
        free(st_path), free(cf_path);
    }
    if (rc != 0) fprintf(stderr, "error: %s\n", e.msg);
    student_free(&s);
    return rc == 0 ? EXIT_OK : EXIT_RUNTIME;
}

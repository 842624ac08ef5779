/* config -- the typed run configuration.
 *
 * One table (config.c: OPTIONS) declares every option: key "section.name",
 * type, default, bounds or choices, and help.  It drives parsing of JSON
 * files, "--set section.key=value" overrides, validation, --help, the dump
 * stored in every output file and the broadcast to other ranks (as JSON).
 * Precedence: defaults < config file < --set.  Unknown keys, wrong types and
 * out-of-range values are errors naming the key and the file.
 */
#ifndef HDISTILL_CONFIG_H
#define HDISTILL_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "base/util.h"

/* One LLM endpoint role (teacher, critic): transport + sampling + prompt. */
typedef struct {
    char *base_url;     /* ".../v1", or "standin" = start the built-in stand-in */
    char *model;
    char *api_key_env;  /* NAME of the environment variable holding the key */
    char *ca_bundle;
    int concurrency, retries;
    double rate_rps, rate_tpm, connect_timeout, timeout, backoff, backoff_max;
    double temperature, top_p;
    int max_tokens, logprobs, top_logprobs;
    int64_t seed;       /* -1 = not sent */
    char *system;       /* system message ("" = none) */
    char *prompt;       /* user message template: {input} {n} {a} {b} */
    char *token_param;  /* "max_tokens" | "max_completion_tokens": the name the token limit is sent as */
    char *reasoning_effort; /* "" | "none" (neither sent) | minimal | low | medium | high */
    char *extra_body;   /* JSON object (as text) merged into every request body; "" = none */
    char *mode;         /* "sync" | "batch" (the OpenAI Batch API) */
    double batch_poll;  /* batch mode: seconds between the first polls of a batch */
    double price_in, price_out; /* USD per million prompt / completion tokens; 0 = unknown */
} EndpointConfig;

typedef struct {
    struct {
        char *dir;       /* run directory: run.h5, ckpt/ */
        int threads;     /* kernel + OpenBLAS threads per rank; 0 = auto */
        int log_every;   /* print a progress line every N steps */
    } run;
    struct {
        char *path;      /* the shared data.h5 (ingest, teach) */
        char *pairs;     /* training pairs: .jsonl or .h5 */
        int64_t max_examples; /* 0 = all */
        char *too_long;  /* "error" | "skip" */
        double val_fraction; /* held-out share of the pairs for validation loss */
    } data;
    struct {
        char *type;      /* "bpe" (trained on the run's text) | "gpt2" */
        int vocab_size;  /* bpe: ids in all, including 256 bytes and 2 specials */
        char *gpt2_vocab;
        char *gpt2_merges;
        char *separator; /* gpt2: text between prompt and target */
    } tokenizer;
    struct {
        char *preset;    /* tiny | mini | small | gpt2-124m | gpt2-350m */
        int n_layer, n_head, d_model, max_seq_len; /* 0 = from the preset */
        char *init_from; /* GPT-2 weights (Hugging Face model.safetensors) to start from; "" = random */
    } model;
    struct {
        int seq_len;     /* T: tokens per row */
        int batch_size;  /* rows per optimizer step, over all ranks */
        int micro_batch; /* rows per rank per forward/backward; 0 = batch_size/ranks */
        int64_t steps;   /* optimizer steps; 0 = from epochs */
        double epochs;
        double lr, min_lr_frac;
        int64_t warmup_steps;
        char *schedule;  /* "cosine" | "constant" */
        double weight_decay, beta1, beta2, eps, grad_clip;
        int64_t seed;
        int64_t ckpt_every;
        int ckpt_keep;
        int64_t eval_every;
        double max_run_time; /* seconds; 0 = no limit */
    } train;
    struct {
        char *source;    /* "wordnet" | a file path */
        char *format;    /* auto | jsonl | csv | text */
        char *field;     /* JSONL key / CSV column of the text */
        int64_t limit;   /* keep at most N inputs (after de-duplication); 0 = all */
        double eval_fraction;
        int64_t ood_limit;   /* wordnet: out-of-distribution inputs */
        char *ood_source;    /* file with out-of-distribution inputs ("" = none / wordnet's) */
        int min_words, max_words;
        int64_t seed;
    } ingest;
    struct {
        int n;           /* paraphrases per input */
        char *splits;    /* comma list of train,eval,ood */
    } teach;
    struct {
        char *cache;     /* response cache file; "" = next to the output */
        double sync_seconds;
        double stop_grace; /* seconds in-flight requests may finish after a stop signal */
        double budget_usd;     /* spend limit of the run, USD; 0 = none */
        int64_t budget_tokens; /* token limit (prompt + completion) of the run; 0 = none */
        char *budget_file;     /* file holding the amount spent, shared by concurrent runs; "" = none */
    } llm;
    struct {
        int64_t seed;
        double refusal_rate, position_bias, length_bias, latency_ms;
    } standin;
    struct {
        char *objective; /* ft | sd | dpo | brio | brio-dpo */
        int rounds;      /* feedback collected this many times */
        double epochs;   /* passes over a round's pairs */
        int k;           /* candidates sampled per input */
        double temperature, top_p;
        int max_new;
        int64_t inputs;  /* training inputs per round; 0 = all */
        int ngram;
        char *len_unit;  /* words | tokens */
        double len_lo, len_hi, tie_margin;
        int filter_first; /* length filter before choosing the most distant pair */
        double beta, brio_rank_weight, brio_ce_weight;
        double lr;
        int64_t warmup_steps;
        int batch_pairs, micro_rows;
        int64_t ckpt_every;
        int eval_each_round; /* evaluate after every round (WTR by round) */
    } critique;
    struct {
        char *judges;    /* JSON file of extra judge endpoints ("" = the critic only) */
        char *splits;    /* comma list of eval,ood */
        int beam, max_new;
        int64_t limit;
        int bootstrap;
        double tie_margin;
    } eval;
    EndpointConfig teacher, critic;
    char *source; /* the file the configuration came from (for messages) */
} Config;

/* Fills every option with its default. */
void config_init(Config *c);
void config_free(Config *c);

/* Applies a JSON object {"section": {"key": value}} from a file / a string.
 * source names the origin in error messages.  Returns 0 or -1 with e set. */
int config_load_file(Config *c, const char *path, Err *e);
int config_load_json(Config *c, const char *text, const char *source, Err *e);
/* Applies one "section.key=value" override. */
int config_set(Config *c, const char *assignment, Err *e);
/* Cross-field checks (heads divide d_model, ...). */
int config_validate(const Config *c, Err *e);

/* The resolved configuration as a JSON object (caller frees). */
char *config_to_json(const Config *c);
/* The value of option key as text (as in config_print); -1 if unknown. */
int config_get_string(const Config *c, const char *key, char *buf, size_t n);
/* Prints "section.key = value" lines. */
void config_print(const Config *c, FILE *f);
/* Prints the option table (all sections, or those named in the comma list);
 * returns the number of options printed. */
int config_print_help(FILE *f, const char *sections);

/* Extra judges for evaluation, from a JSON file
 *   {"judges": [{"name": "gpt-4o", "base_url": "...", "model": "...", ...}, ...]}
 * Each judge starts from the critic's settings and takes the critic
 * section's keys (checked by the same table: unknown keys, wrong types and
 * out-of-range values are errors naming the file, judge and key). */
typedef struct {
    char *name;
    Config holder; /* owns the strings of ep */
    EndpointConfig ep;
} JudgeConfig;
int config_load_judges(const Config *c, const char *path, JudgeConfig **out, int *n, Err *e);
void config_free_judges(JudgeConfig *j, int n);

/* Resolved model dimensions from preset + explicit values. */
typedef struct {
    int n_layer, n_head, d_model, max_seq_len;
} ModelDims;
int config_model_dims(const Config *c, ModelDims *d, Err *e);

#endif

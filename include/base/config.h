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
typedef enum { TOKEN_PARAM_MAX_TOKENS = 0, TOKEN_PARAM_MAX_COMPLETION_TOKENS } TokenParam; /* <role>.token_param */
typedef enum { ENDPOINT_MODE_SYNC = 0, ENDPOINT_MODE_BATCH } EndpointMode;                /* <role>.mode */

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
    int token_param;    /* TokenParam: the name the token limit is sent as */
    char *reasoning_effort; /* "" | "none" (neither sent) | minimal | low | medium | high */
    char *extra_body;   /* JSON object (as text) merged into every request body; "" = none */
    int mode;           /* EndpointMode: sync | batch (the OpenAI Batch API) */
    double batch_poll;  /* batch mode: seconds between the first polls of a batch */
    double price_in, price_out; /* USD per million prompt / completion tokens; 0 = unknown */
} EndpointConfig;

/* Enum options are stored as the index of their value among the option's
 * choices (config_enum_name gives the name back); list options as a bit set
 * of the choices (bit i = choice i). */
typedef enum { TOO_LONG_ERROR = 0, TOO_LONG_SKIP } TooLong;                 /* data.too_long */
typedef enum { TOKENIZER_TYPE_BPE = 0, TOKENIZER_TYPE_GPT2, TOKENIZER_TYPE_HF } TokenizerType;          /* tokenizer.type */
typedef enum { SCHEDULE_COSINE = 0, SCHEDULE_CONSTANT } Schedule;          /* train.schedule */
typedef enum { FORMAT_AUTO = 0, FORMAT_JSONL, FORMAT_CSV, FORMAT_TEXT } InputFormat; /* ingest.format */
typedef enum { OBJECTIVE_FT = 0, OBJECTIVE_SD, OBJECTIVE_DPO, OBJECTIVE_BRIO, OBJECTIVE_BRIO_DPO } CritiqueObjective;
typedef enum { LEN_WORDS = 0, LEN_TOKENS } LenUnit;                        /* critique.len_unit */
enum { SPLIT_TRAIN = 1u << 0, SPLIT_EVAL = 1u << 1, SPLIT_OOD = 1u << 2 }; /* teach.splits */
enum { EVAL_SPLIT_EVAL = 1u << 0, EVAL_SPLIT_OOD = 1u << 1 };              /* eval.splits */

typedef struct {
    struct {
        char *dir;       /* run directory: run.h5, ckpt/ */
        int threads;     /* kernel + OpenBLAS threads per rank; 0 = auto */
        int log_every;   /* print a progress line every N steps */
        double commit_seconds; /* run.h5 is republished at most this often (and at checkpoints) */
        double lock_wait;      /* seconds to wait for another process's lock on run.dir / data.path */
    } run;
    struct {
        char *path;      /* the shared data.h5 (ingest, teach) */
        char *pairs;     /* training pairs: .jsonl or .h5 */
        int64_t max_examples; /* 0 = all */
        int too_long;    /* TooLong */
        int use_truncated; /* 1: teacher paraphrases of answers cut by the token limit are trained on too */
        double val_fraction; /* held-out share of the pairs for validation loss */
    } data;
    struct {
        int type;        /* TokenizerType: bpe (trained on the run's text) | gpt2 */
        int vocab_size;  /* bpe: ids in all, including 256 bytes and 2 specials */
        char *gpt2_vocab;
        char *gpt2_merges;
        char *separator; /* gpt2: text between prompt and target */
        char *path;      /* hf: tokenizer.json or its directory ("" = model.init_from's) */
    } tokenizer;
    struct {
        char *preset;    /* tiny | mini | small | gpt2-124m | gpt2-350m */
        int n_layer, n_head, d_model, max_seq_len; /* 0 = from the preset */
        char *init_from; /* a Hugging Face model directory, or GPT-2 weights (model.safetensors); "" = random */
    } model;
    struct {
        int format;      /* PromptKind (engine/prompt.h): plain | chat */
        char *instruction; /* chat: the system turn */
    } student;
    struct {
        int seq_len;     /* T: tokens per row */
        int batch_size;  /* rows per optimizer step, over all ranks */
        int micro_batch; /* rows per rank per forward/backward; 0 = batch_size/ranks */
        int64_t steps;   /* optimizer steps; 0 = from epochs */
        double epochs;
        double lr, min_lr_frac;
        int64_t warmup_steps;
        int schedule;    /* Schedule */
        double weight_decay, beta1, beta2, eps, grad_clip;
        int64_t seed;
        int64_t ckpt_every;
        int ckpt_keep;
        int64_t eval_every;
        double max_run_time; /* seconds; 0 = no limit */
        int overlap;         /* 1: bucketed non-blocking gradient reduction during backward */
        double bucket_mb;    /* MB of gradient per bucket */
        int progress_thread; /* 1: a thread moves the non-blocking reductions on during backward */
        int shard_optimizer; /* 1: ZeRO stage 1 */
        int trace;           /* 1: compute/communication intervals in run.h5 /trace */
    } train;
    struct {
        char *source;    /* "wordnet" | a file path */
        int format;      /* InputFormat */
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
        unsigned splits; /* SPLIT_* bits of train,eval,ood */
    } teach;
    struct {
        char *cache;     /* response cache file; "" = next to the output */
        double sync_seconds;
        double stop_grace; /* seconds in-flight requests may finish after a stop signal */
        double budget_usd;     /* spend limit of the run, USD; 0 = none */
        int64_t budget_tokens; /* token limit (prompt + completion) of the run; 0 = none */
        char *budget_file;     /* file holding the amount spent, shared by concurrent runs; "" = run.dir/llm-budget */
    } llm;
    struct {
        int64_t seed;
        double refusal_rate, position_bias, length_bias, latency_ms;
    } standin;
    struct {
        int objective;   /* CritiqueObjective */
        int rounds;      /* feedback collected this many times */
        double epochs;   /* passes over a round's pairs */
        int k;           /* candidates sampled per input */
        double temperature, top_p;
        int max_new;
        int64_t inputs;  /* training inputs per round; 0 = all */
        int ngram;
        int len_unit;    /* LenUnit */
        double len_lo, len_hi, tie_margin;
        int filter_first; /* length filter before choosing the most distant pair */
        double beta, brio_rank_weight, brio_ce_weight;
        double lr;
        int64_t warmup_steps;
        int batch_pairs, micro_rows;
        int64_t ckpt_every;
        int pipeline;        /* 1: judge each chunk of inputs while later ones are sampled; 0: after all */
        int eval_each_round; /* evaluate after every round (WTR by round) */
    } critique;
    struct {
        char *judges;    /* JSON file of extra judge endpoints ("" = the critic only) */
        unsigned splits; /* EVAL_SPLIT_* bits of eval,ood */
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
/* The name of value v of enum option key ("critique.objective", 3 ->
 * "brio"); "?" if either is unknown. */
const char *config_enum_name(const char *key, int v);
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


#endif

/* config -- see include/base/config.h.  The OPTIONS table below is the single
 * declaration of every option; parsing, validation, help and dumps all walk
 * it. */
#include "base/config.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* OT_ENUM: an int, the index of the value among choices; OT_LIST: an
 * unsigned bit set of choices, written as a comma list (at least one);
 * OT_NAME: a string that must be one of choices (for open-ended tables such
 * as the model presets, looked up by name). */
typedef enum { OT_INT, OT_I64, OT_FLOAT, OT_STRING, OT_ENUM, OT_LIST, OT_NAME } OptType;

typedef struct {
    const char *key;
    OptType type;
    size_t off;
    const char *def;
    double lo, hi;       /* numbers: inclusive bounds */
    const char *choices; /* enums: "a|b|c" */
    const char *help;
} OptSpec;

#define F(field) offsetof(Config, field)
#define BIG 9.0e15


#define TEACHER_PROMPT                                                                        \
    "Rewrite the sentence below in {n} different humorous ways. Keep its meaning. Answer "   \
    "with a numbered list and nothing else.\nSentence: {input}"
#define CRITIC_PROMPT                                                                         \
    "Here is a sentence and two humorous paraphrases of it.\nSentence: {input}\n1. {a}\n2. "  \
    "{b}\nWhich paraphrase is funnier while keeping the meaning of the sentence? First write " \
    "\"Reason:\" and one short sentence, then \"Answer:\" and the number of the better "        \
    "paraphrase (1 or 2)."

#define ENDPOINT_OPTIONS(R, TEMP, TOPP, MAXTOK, LP, TOPLP, PROMPT, WHAT)                                     \
    {#R ".base_url", OT_STRING, F(R.base_url), "standin", 0, 0, NULL,                                        \
     WHAT " endpoint: OpenAI-compatible base URL ending in /v1, or \"standin\" (built-in stand-in)"},       \
    {#R ".model", OT_STRING, F(R.model), "hdistill-standin", 0, 0, NULL, "model name sent in requests"},    \
    {#R ".api_key_env", OT_STRING, F(R.api_key_env), "", 0, 0, NULL,                                         \
     "NAME of the environment variable holding the API key (the key itself is never stored)"},             \
    {#R ".ca_bundle", OT_STRING, F(R.ca_bundle), "", 0, 0, NULL, "CA bundle file for TLS (\"\" = system)"},  \
    {#R ".concurrency", OT_INT, F(R.concurrency), "16", 1, 4096, NULL, "requests in flight"},                \
    {#R ".rate_rps", OT_FLOAT, F(R.rate_rps), "0", 0, 1e6, NULL, "requests per second; 0 = unlimited"},    \
    {#R ".rate_tpm", OT_FLOAT, F(R.rate_tpm), "0", 0, 1e12, NULL, "tokens per minute; 0 = unlimited"},     \
    {#R ".connect_timeout", OT_FLOAT, F(R.connect_timeout), "10", 0.001, 3600, NULL, "seconds"},           \
    {#R ".timeout", OT_FLOAT, F(R.timeout), "120", 0.001, 86400, NULL, "seconds for a whole request"},     \
    {#R ".retries", OT_INT, F(R.retries), "5", 0, 1000, NULL,                                               \
     "further attempts on 429/5xx/timeouts/connection errors/unusable answers"},                           \
    {#R ".backoff", OT_FLOAT, F(R.backoff), "1", 0, 3600, NULL,                                             \
     "seconds before the first retry (doubles each time, with jitter; Retry-After wins if longer)"},      \
    {#R ".backoff_max", OT_FLOAT, F(R.backoff_max), "60", 0, 86400, NULL, "cap on one retry delay, s"},     \
    {#R ".temperature", OT_FLOAT, F(R.temperature), TEMP, -1, 2, NULL, "sampling temperature; -1 = not sent"}, \
    {#R ".top_p", OT_FLOAT, F(R.top_p), TOPP, -1, 1, NULL, "nucleus sampling; -1 = not sent"},              \
    {#R ".max_tokens", OT_INT, F(R.max_tokens), MAXTOK, 0, 1000000, NULL, "0 = not sent"},                  \
    {#R ".seed", OT_I64, F(R.seed), "-1", -1, BIG, NULL, "sampling seed sent to the endpoint; -1 = not sent"}, \
    {#R ".logprobs", OT_INT, F(R.logprobs), LP, 0, 1, NULL, "1 = ask for token log-probabilities"},         \
    {#R ".top_logprobs", OT_INT, F(R.top_logprobs), TOPLP, 0, 20, NULL, "alternatives per token"},          \
    {#R ".system", OT_STRING, F(R.system), "", 0, 0, NULL, "system message (\"\" = none)"},                  \
    {#R ".prompt", OT_STRING, F(R.prompt), PROMPT, 0, 0, NULL,                                              \
     "user message template; {input} {n} (teacher), {input} {a} {b} (critic)"},                            \
    {#R ".token_param", OT_ENUM, F(R.token_param), "max_tokens", 0, 0, "max_tokens|max_completion_tokens",    \
     "the name the token limit is sent as (OpenAI o-series and gpt-5 models want max_completion_tokens)"},    \
    {#R ".reasoning_effort", OT_NAME, F(R.reasoning_effort), "", 0, 0, "|none|minimal|low|medium|high",       \
     "reasoning models: reasoning_effort sent with every request; \"\" or none = not sent"},                  \
    {#R ".extra_body", OT_STRING, F(R.extra_body), "", 0, 0, NULL,                                           \
     "a JSON object merged into every request body, e.g. {\"chat_template_kwargs\":{\"enable_thinking\":false}}"}, \
    {#R ".mode", OT_ENUM, F(R.mode), "sync", 0, 0, "sync|batch",                                             \
     "sync: requests in flight at once; batch: the OpenAI Batch API (files + /v1/batches, half price, <= 24 h)"}, \
    {#R ".batch_poll", OT_FLOAT, F(R.batch_poll), "30", 0.01, 86400, NULL,                                   \
     "batch mode: seconds between the first polls of a batch (grows to 10x)"},                               \
    {#R ".price_in", OT_FLOAT, F(R.price_in), "0", 0, 1e6, NULL,                                            \
     "list price, USD per million prompt tokens (batch mode counts half); 0 = unknown"},                     \
    {#R ".price_out", OT_FLOAT, F(R.price_out), "0", 0, 1e6, NULL,                                           \
     "list price, USD per million completion tokens (reasoning tokens included; batch mode counts half); 0 = unknown"}

static const OptSpec OPTIONS[] = {
    {"run.dir", OT_STRING, F(run.dir), "runs/default", 0, 0, NULL,
     "run directory (run.h5, ckpt/); created on first use"},
    {"run.threads", OT_INT, F(run.threads), "0", 0, 1024, NULL,
     "kernel and OpenBLAS threads per rank; 0 = OMP_NUM_THREADS, else SLURM_CPUS_PER_TASK, else cores/ranks"},
    {"run.log_every", OT_INT, F(run.log_every), "10", 1, 1e9, NULL, "progress line every N steps"},
    {"run.lock_wait", OT_FLOAT, F(run.lock_wait), "0", 0, 86400, NULL,
     "seconds to wait when another process owns run.dir or data.path (a requeued job's old step may still be "
     "exiting); then exit 2 naming the owner"},
    {"run.commit_seconds", OT_FLOAT, F(run.commit_seconds), "10", 0, 1e6, NULL,
     "run.h5 is rewritten atomically (readable at every moment, even after a kill) at most this often, and at "
     "every checkpoint, round and evaluation; readers see the state of the last rewrite"},

    {"data.path", OT_STRING, F(data.path), "data.h5", 0, 0, NULL,
     "the shared data file: ingest writes /inputs, teach adds /teacher"},
    {"data.pairs", OT_STRING, F(data.pairs), "", 0, 0, NULL,
     "training pairs: JSONL of {\"prompt\",\"target\"}, or HDF5 with /pairs/{prompt,target} or a teach data.h5"},
    {"data.max_examples", OT_I64, F(data.max_examples), "0", 0, BIG, NULL, "use the first N pairs; 0 = all"},
    {"data.too_long", OT_ENUM, F(data.too_long), "error", 0, 0, "error|skip",
     "a pair longer than train.seq_len: stop with an error, or skip it (counted)"},
    {"data.use_truncated", OT_INT, F(data.use_truncated), "0", 0, 1, NULL,
     "1 = also train on the paraphrases of teacher answers cut by the token limit (finish_reason length; kept "
     "apart in data.h5 /teacher/truncated_paraphrases)"},
    {"data.val_fraction", OT_FLOAT, F(data.val_fraction), "0", 0, 0.5, NULL,
     "share of the pairs held out for validation loss (deterministic by train.seed)"},

    {"tokenizer.type", OT_ENUM, F(tokenizer.type), "bpe", 0, 0, "bpe|gpt2|hf",
     "bpe: byte-level BPE trained on the run's text; gpt2: GPT-2's vocabulary files; hf: a Hugging Face "
     "tokenizer.json"},
    {"tokenizer.path", OT_STRING, F(tokenizer.path), "", 0, 0, NULL,
     "hf: tokenizer.json or its directory; \"\" = model.init_from's directory"},
    {"tokenizer.vocab_size", OT_INT, F(tokenizer.vocab_size), "2048", 258, 1000000, NULL,
     "bpe: vocabulary size (256 bytes + merges + 2 special tokens)"},
    {"tokenizer.gpt2_vocab", OT_STRING, F(tokenizer.gpt2_vocab), "", 0, 0, NULL,
     "gpt2: vocab.json / encoder.json"},
    {"tokenizer.gpt2_merges", OT_STRING, F(tokenizer.gpt2_merges), "", 0, 0, NULL,
     "gpt2: merges.txt / vocab.bpe"},
    {"tokenizer.separator", OT_STRING, F(tokenizer.separator), " =>", 0, 0, NULL,
     "gpt2: text put between prompt and target (bpe uses its <|sep|> token)"},

    {"model.preset", OT_NAME, F(model.preset), "tiny", 0, 0,
     "tiny|mini|small|gpt2-124m|gpt2-350m|llama-tiny|smollm2-135m|smollm2-360m|qwen2.5-0.5b|qwen3-0.6b|"
     "llama3.2-1b",
     "architecture and size: GPT-2 (tiny L2 d64, mini L4 d256, small L6 d512, gpt2-124m, gpt2-350m) or "
     "Llama-style (llama-tiny; the published shapes of SmolLM2, Qwen2.5, Qwen3, Llama 3.2); ignored when "
     "model.init_from is a Hugging Face directory (its config.json decides)"},
    {"model.n_layer", OT_INT, F(model.n_layer), "0", 0, 256, NULL, "layers; 0 = preset"},
    {"model.n_head", OT_INT, F(model.n_head), "0", 0, 256, NULL, "attention heads; 0 = preset"},
    {"model.d_model", OT_INT, F(model.d_model), "0", 0, 16384, NULL, "channels; 0 = preset"},
    {"model.max_seq_len", OT_INT, F(model.max_seq_len), "0", 0, 65536, NULL,
     "positions in the position embedding; 0 = preset"},
    {"model.init_from", OT_STRING, F(model.init_from), "", 0, 0, NULL,
     "start SFT from pretrained weights instead of random ones: a Hugging Face model directory (config.json + "
     "model.safetensors or shards; Llama, Qwen2, Qwen3, SmolLM2: the architecture comes from it) or GPT-2 "
     "weights as one model.safetensors file (the dimensions must match model.preset)"},

    {"student.format", OT_ENUM, F(student.format), "plain", 0, 0, "plain|chat",
     "plain: input, separator -> answer, end of text; chat: the tokenizer family's chat turns (ChatML or Llama 3) "
     "with student.instruction as the system turn; the loss covers the reply and its end token"},
    {"student.instruction", OT_STRING, F(student.instruction),
     "Rewrite the sentence in a funny way, keeping its meaning.", 0, 0, NULL, "chat: the system turn"},

    {"train.seq_len", OT_INT, F(train.seq_len), "128", 2, 65536, NULL,
     "T: tokens per row; pairs are packed into rows without attending to each other"},
    {"train.batch_size", OT_INT, F(train.batch_size), "16", 1, 1e9, NULL,
     "rows per optimizer step over all ranks (the global batch)"},
    {"train.micro_batch", OT_INT, F(train.micro_batch), "0", 0, 1e9, NULL,
     "rows per rank per forward/backward; 0 = batch_size/ranks (no accumulation)"},
    {"train.steps", OT_I64, F(train.steps), "0", 0, BIG, NULL, "optimizer steps; 0 = from train.epochs"},
    {"train.epochs", OT_FLOAT, F(train.epochs), "1", 0, 10000, NULL,
     "passes over the pairs when train.steps is 0"},
    {"train.lr", OT_FLOAT, F(train.lr), "3e-4", 0, 10, NULL, "peak learning rate"},
    {"train.min_lr_frac", OT_FLOAT, F(train.min_lr_frac), "0.1", 0, 1, NULL,
     "cosine schedule ends at lr * min_lr_frac"},
    {"train.warmup_steps", OT_I64, F(train.warmup_steps), "10", 0, BIG, NULL, "linear warm-up steps"},
    {"train.schedule", OT_ENUM, F(train.schedule), "cosine", 0, 0, "cosine|constant",
     "learning-rate schedule after warm-up"},
    {"train.weight_decay", OT_FLOAT, F(train.weight_decay), "0.1", 0, 10, NULL,
     "AdamW decoupled weight decay of SFT (matrices and embeddings only; the critique phase uses none)"},
    {"train.beta1", OT_FLOAT, F(train.beta1), "0.9", 0, 0.999999, NULL, "AdamW beta1"},
    {"train.beta2", OT_FLOAT, F(train.beta2), "0.95", 0, 0.999999, NULL, "AdamW beta2"},
    {"train.eps", OT_FLOAT, F(train.eps), "1e-8", 1e-30, 1, NULL, "AdamW epsilon"},
    {"train.grad_clip", OT_FLOAT, F(train.grad_clip), "1.0", 0, 1e9, NULL,
     "clip the global gradient norm to this; 0 = off"},
    {"train.seed", OT_I64, F(train.seed), "1337", 0, BIG, NULL, "seed of initialisation and data order"},
    {"train.ckpt_every", OT_I64, F(train.ckpt_every), "100", 0, BIG, NULL,
     "checkpoint every N steps (and always at the end); 0 = only at the end"},
    {"train.ckpt_keep", OT_INT, F(train.ckpt_keep), "2", 1, 1000000, NULL,
     "checkpoints kept (the newest)"},
    {"train.eval_every", OT_I64, F(train.eval_every), "0", 0, BIG, NULL,
     "validation loss every N steps (needs data.val_fraction > 0); 0 = only at the end"},
    {"train.overlap", OT_INT, F(train.overlap), "1", 0, 1, NULL,
     "1 = reduce gradients in buckets with non-blocking allreduces started while the backward pass goes on; "
     "0 = one blocking allreduce after it (same result)"},
    {"train.bucket_mb", OT_FLOAT, F(train.bucket_mb), "25", 0.001, 1e6, NULL,
     "MB of gradient per bucket (train.overlap=1)"},
    {"train.progress_thread", OT_INT, F(train.progress_thread), "1", 0, 1, NULL,
     "1 = with train.overlap=1, a thread per rank moves the non-blocking reductions on while the backward pass "
     "computes (MPI advances them only inside MPI calls; it tests them every 200 us); 0 = only between layers "
     "(same result)"},
    {"train.shard_optimizer", OT_INT, F(train.shard_optimizer), "0", 0, 1, NULL,
     "1 = ZeRO stage 1: each rank keeps the AdamW moments of its 1/N slice of the parameters; gradients are "
     "reduce-scattered, parameters all-gathered; checkpoints written by all ranks at once"},
    {"train.trace", OT_INT, F(train.trace), "0", 0, 1, NULL,
     "1 = record per-step compute and communication intervals of every rank in run.h5 /trace "
     "(analysis/plots.py draws them)"},
    ENDPOINT_OPTIONS(teacher, "0.8", "1", "256", "0", "0", TEACHER_PROMPT, "teacher"),
    ENDPOINT_OPTIONS(critic, "0", "-1", "128", "1", "5", CRITIC_PROMPT, "critic"),

    {"llm.cache", OT_STRING, F(llm.cache), "", 0, 0, NULL,
     "LLM response cache (append-only); \"\" = data.path + \".llm-cache\" for teach, run.dir/llm-cache for the "
     "critic and judges of a run"},
    {"llm.sync_seconds", OT_FLOAT, F(llm.sync_seconds), "1", 0, 3600, NULL,
     "fsync the cache at most this often (every answer is written at once)"},
    {"llm.stop_grace", OT_FLOAT, F(llm.stop_grace), "20", 0, 3600, NULL,
     "on SIGTERM/SIGUSR1: seconds the requests in flight may still finish (their answers are cached); "
     "nothing new is sent"},
    {"llm.budget_usd", OT_FLOAT, F(llm.budget_usd), "0", 0, 1e9, NULL,
     "spend limit in USD (needs the roles' price_in/price_out and max_tokens); a request that could cross it is "
     "not sent; 0 = none"},
    {"llm.budget_tokens", OT_I64, F(llm.budget_tokens), "0", 0, BIG, NULL,
     "limit on prompt + completion tokens, counted like llm.budget_usd; 0 = none"},
    {"llm.budget_file", OT_STRING, F(llm.budget_file), "", 0, 0, NULL,
     "file holding what was spent, shared (under flock) by concurrent runs so a sweep has one cap; \"\" = "
     "run.dir/llm-budget (kept across resumes)"},

    {"ingest.source", OT_STRING, F(ingest.source), "wordnet", 0, 0, NULL,
     "\"wordnet\" (WordNet example sentences) or a file of literal inputs"},
    {"ingest.format", OT_ENUM, F(ingest.format), "auto", 0, 0, "auto|jsonl|csv|text",
     "file format (auto: by extension .jsonl/.csv, else one input per line)"},
    {"ingest.field", OT_STRING, F(ingest.field), "text", 0, 0, NULL, "JSONL key or CSV column of the input"},
    {"ingest.limit", OT_I64, F(ingest.limit), "0", 0, BIG, NULL,
     "keep the first N inputs after normalisation and de-duplication; 0 = all"},
    {"ingest.eval_fraction", OT_FLOAT, F(ingest.eval_fraction), "0.05", 0, 0.9, NULL,
     "share of inputs in the eval split (deterministic by ingest.seed)"},
    {"ingest.ood_source", OT_STRING, F(ingest.ood_source), "", 0, 0, NULL,
     "file of out-of-distribution inputs (wordnet source: adjective/adverb examples when \"\")"},
    {"ingest.ood_limit", OT_I64, F(ingest.ood_limit), "200", 0, BIG, NULL, "at most N ood inputs"},
    {"ingest.min_words", OT_INT, F(ingest.min_words), "3", 1, 10000, NULL, "drop shorter inputs"},
    {"ingest.max_words", OT_INT, F(ingest.max_words), "40", 1, 10000, NULL, "drop longer inputs"},
    {"ingest.seed", OT_I64, F(ingest.seed), "1", 0, BIG, NULL, "seed of the split and the order"},

    {"teach.n", OT_INT, F(teach.n), "3", 1, 20, NULL, "paraphrases asked per input (the {n} of the prompt)"},
    {"teach.splits", OT_LIST, F(teach.splits), "train,eval,ood", 0, 0, "train|eval|ood",
     "splits to teach (eval/ood answers are the teacher references of the evaluation)"},

    {"standin.seed", OT_I64, F(standin.seed), "1", 0, BIG, NULL, "seed of the built-in stand-in endpoint"},
    {"standin.refusal_rate", OT_FLOAT, F(standin.refusal_rate), "0.02", 0, 1, NULL, "stand-in teacher refusals"},
    {"standin.position_bias", OT_FLOAT, F(standin.position_bias), "0.3", -10, 10, NULL,
     "stand-in critic's log-odds bonus for option 1"},
    {"standin.length_bias", OT_FLOAT, F(standin.length_bias), "0", -10, 10, NULL,
     "stand-in critic's log-odds bonus per relative extra length of option 1"},
    {"standin.latency_ms", OT_FLOAT, F(standin.latency_ms), "0", 0, 600000, NULL, "stand-in answer delay"},

    {"critique.objective", OT_ENUM, F(critique.objective), "dpo", 0, 0, "ft|sd|dpo|brio|brio-dpo",
     "critique-phase objective: ft (more imitation), sd (CE on preferred samples), dpo, brio, brio-dpo"},
    {"critique.rounds", OT_INT, F(critique.rounds), "1", 0, 1000, NULL,
     "feedback rounds (candidates re-sampled and re-judged each round); 0 = SFT only"},
    {"critique.epochs", OT_FLOAT, F(critique.epochs), "2", 0.01, 1000, NULL, "passes over a round's pairs"},
    {"critique.k", OT_INT, F(critique.k), "6", 2, 64, NULL, "candidates sampled per input"},
    {"critique.temperature", OT_FLOAT, F(critique.temperature), "1.0", 0.01, 10, NULL, "sampling temperature"},
    {"critique.top_p", OT_FLOAT, F(critique.top_p), "0.95", 0.01, 1, NULL, "nucleus sampling"},
    {"critique.max_new", OT_INT, F(critique.max_new), "40", 1, 4096, NULL, "tokens generated at most"},
    {"critique.inputs", OT_I64, F(critique.inputs), "0", 0, BIG, NULL,
     "training inputs sampled per round (a different subset each round); 0 = all"},
    {"critique.ngram", OT_INT, F(critique.ngram), "1", 1, 8, NULL, "n of the n-gram edit distance of pair selection"},
    {"critique.len_unit", OT_ENUM, F(critique.len_unit), "words", 0, 0, "words|tokens", "length unit of the ratio filter"},
    {"critique.len_lo", OT_FLOAT, F(critique.len_lo), "0.8", 0, 1, NULL, "a pair is kept if both length ratios are >= this"},
    {"critique.len_hi", OT_FLOAT, F(critique.len_hi), "1.2", 1, 100, NULL, "... and <= this"},
    {"critique.filter_first", OT_INT, F(critique.filter_first), "0", 0, 1, NULL,
     "0: the most distant pair, dropped if its lengths differ too much (the paper); "
     "1: the most distant of the pairs of comparable length"},
    {"critique.tie_margin", OT_FLOAT, F(critique.tie_margin), "0.05", 0, 0.5, NULL,
     "|P(a better) - 0.5| <= margin is a tie: the pair is dropped"},
    {"critique.beta", OT_FLOAT, F(critique.beta), "0.1", 1e-6, 1000, NULL, "DPO beta"},
    {"critique.brio_rank_weight", OT_FLOAT, F(critique.brio_rank_weight), "1", 0, 1e6, NULL, "BRIO ranking-loss weight"},
    {"critique.brio_ce_weight", OT_FLOAT, F(critique.brio_ce_weight), "0.1", 0, 1e6, NULL, "BRIO cross-entropy weight"},
    {"critique.lr", OT_FLOAT, F(critique.lr), "3e-4", 0, 10, NULL, "learning rate of the critique phase (constant after warm-up)"},
    {"critique.warmup_steps", OT_I64, F(critique.warmup_steps), "5", 0, BIG, NULL, "warm-up steps of each round"},
    {"critique.batch_pairs", OT_INT, F(critique.batch_pairs), "16", 1, 1000000, NULL,
     "pairs per optimizer step over all ranks (ft/sd: sequences)"},
    {"critique.micro_rows", OT_INT, F(critique.micro_rows), "16", 1, 1000000, NULL, "rows per forward/backward"},
    {"critique.ckpt_every", OT_I64, F(critique.ckpt_every), "0", 0, BIG, NULL,
     "checkpoint every N critique steps (and at every round's end); 0 = round ends only"},

    {"critique.pipeline", OT_INT, F(critique.pipeline), "1", 0, 1, NULL,
     "1: the critic judges each chunk of inputs while later ones are sampled (a round takes about the longer "
     "of the two); 0: after all are sampled; the same results"},
    {"critique.eval_each_round", OT_INT, F(critique.eval_each_round), "0", 0, 1, NULL,
     "1: evaluate the SFT model into /sft/eval and the model after every round into /rounds/<r>/eval "
     "(the win-or-tie rate by round)"},

    {"eval.splits", OT_LIST, F(eval.splits), "eval,ood", 0, 0, "eval|ood", "splits evaluated"},
    {"eval.beam", OT_INT, F(eval.beam), "5", 1, 64, NULL, "beam width of the student's outputs"},
    {"eval.max_new", OT_INT, F(eval.max_new), "40", 1, 4096, NULL, "tokens generated at most"},
    {"eval.limit", OT_I64, F(eval.limit), "0", 0, BIG, NULL, "evaluate the first N inputs of a split; 0 = all"},
    {"eval.bootstrap", OT_INT, F(eval.bootstrap), "1000", 10, 1000000, NULL, "bootstrap resamples of the 95% interval"},
    {"eval.tie_margin", OT_FLOAT, F(eval.tie_margin), "0.05", 0, 0.5, NULL,
     "|P(student better) - 0.5| <= margin is a tie (both orders averaged)"},
    {"eval.judges", OT_STRING, F(eval.judges), "", 0, 0, NULL,
     "JSON file of extra judge endpoints {\"judges\": [{\"name\": ..., critic keys...}]}; \"\" = critic only"},

    {"train.max_run_time", OT_FLOAT, F(train.max_run_time), "0", 0, 1e9, NULL,
     "seconds; checkpoint and stop (exit 3, resumable) before this much wall time"},
};
#define N_OPTIONS (sizeof OPTIONS / sizeof OPTIONS[0])

static const OptSpec *find_opt(const char *key) {
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strcmp(OPTIONS[i].key, key) == 0) return &OPTIONS[i];
    return NULL;
}

static int has_section(const char *section, size_t len) {
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (strncmp(OPTIONS[i].key, section, len) == 0 && OPTIONS[i].key[len] == '.') return 1;
    return 0;
}

/* The index of v[0..n) among choices "a|b|c", or -1. */
static int choice_index(const char *choices, const char *v, size_t n) {
    const char *p = choices;
    for (int i = 0; *p; i++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0) return i;
        if (!bar) break;
        p = bar + 1;
    }
    return -1;
}

/* Choice i of choices into buf ("?" if out of range). */
static const char *choice_name(const char *choices, int i, char *buf, size_t n) {
    const char *p = choices;
    for (int k = 0; *p; k++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (k == i) {
            snprintf(buf, n, "%.*s", (int)len, p);
            return buf;
        }
        if (!bar) break;
        p = bar + 1;
    }
    snprintf(buf, n, "?");
    return buf;
}

/* A comma list of choices into a bit set; -1 with e naming the key and item. */
static int parse_list(const OptSpec *o, const char *v, const char *source, unsigned *out, Err *e) {
    unsigned bits = 0;
    for (const char *p = v; *p;) {
        while (*p == ' ' || *p == ',') p++;
        if (!*p) break;
        const char *q = p;
        while (*q && *q != ',' && *q != ' ') q++;
        int i = choice_index(o->choices, p, (size_t)(q - p));
        if (i < 0)
            return err_set(e, "%s: %s: '%.*s' is not one of %s (a comma list)", source, o->key, (int)(q - p), p,
                           o->choices);
        bits |= 1u << i;
        p = q;
    }
    if (!bits) return err_set(e, "%s: %s: names none of %s", source, o->key, o->choices);
    *out = bits;
    return 0;
}

/* Sets option o from a string (defaults and --set); source for messages. */
static int set_from_string(Config *c, const OptSpec *o, const char *v, const char *source, Err *e) {
    char *base = (char *)c;
    switch (o->type) {
    case OT_INT:
    case OT_I64: {
        errno = 0;
        char *end;
        double d = strtod(v, &end);
        if (end == v || *end || errno || d != floor(d))
            return err_set(e, "%s: %s: expected an integer, got '%s'", source, o->key, v);
        if (d < o->lo || d > o->hi)
            return err_set(e, "%s: %s = %s is out of range [%.17g, %.17g]", source, o->key, v, o->lo,
                           o->hi);
        if (o->type == OT_INT)
            *(int *)(base + o->off) = (int)d;
        else
            *(int64_t *)(base + o->off) = (int64_t)d;
        return 0;
    }
    case OT_FLOAT: {
        errno = 0;
        char *end;
        double d = strtod(v, &end);
        if (end == v || *end || errno || !isfinite(d))
            return err_set(e, "%s: %s: expected a number, got '%s'", source, o->key, v);
        if (d < o->lo || d > o->hi)
            return err_set(e, "%s: %s = %s is out of range [%g, %g]", source, o->key, v, o->lo, o->hi);
        *(double *)(base + o->off) = d;
        return 0;
    }
    case OT_ENUM: {
        int i = choice_index(o->choices, v, strlen(v));
        if (i < 0) return err_set(e, "%s: %s = '%s' is not one of %s", source, o->key, v, o->choices);
        *(int *)(base + o->off) = i;
        return 0;
    }
    case OT_LIST: return parse_list(o, v, source, (unsigned *)(base + o->off), e);
    case OT_NAME:
        if (choice_index(o->choices, v, strlen(v)) < 0)
            return err_set(e, "%s: %s = '%s' is not one of %s", source, o->key, v, o->choices);
        /* fall through */
    case OT_STRING: {
        char **s = (char **)(base + o->off);
        free(*s);
        *s = xstrdup(v);
        return 0;
    }
    }
    return err_set(e, "internal: bad option type");
}

void config_init(Config *c) {
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        Err e;
        if (set_from_string(c, &OPTIONS[i], OPTIONS[i].def, "defaults", &e) != 0) DIE("%s", e.msg);
    }
    c->source = xstrdup("defaults");
}

void config_free(Config *c) {
    if (!c) return;
    for (size_t i = 0; i < N_OPTIONS; i++)
        if (OPTIONS[i].type == OT_STRING || OPTIONS[i].type == OT_NAME) {
            char **s = (char **)((char *)c + OPTIONS[i].off);
            free(*s);
            *s = NULL;
        }
    free(c->source);
    c->source = NULL;
}

static int set_from_json(Config *c, const OptSpec *o, const cJSON *v, const char *source, Err *e) {
    char buf[64];
    switch (o->type) {
    case OT_INT:
    case OT_I64:
    case OT_FLOAT:
        if (!cJSON_IsNumber(v)) {
            /* numbers written as strings are accepted only if they parse */
            if (cJSON_IsString(v)) return set_from_string(c, o, v->valuestring, source, e);
            return err_set(e, "%s: %s: expected a number", source, o->key);
        }
        snprintf(buf, sizeof buf, "%.17g", v->valuedouble);
        return set_from_string(c, o, buf, source, e);
    case OT_STRING:
    case OT_ENUM:
    case OT_LIST:
    case OT_NAME:
        if (!cJSON_IsString(v)) return err_set(e, "%s: %s: expected a string", source, o->key);
        return set_from_string(c, o, v->valuestring, source, e);
    }
    return err_set(e, "internal: bad option type");
}

int config_load_json(Config *c, const char *text, const char *source, Err *e) {
    cJSON *root = cJSON_Parse(text);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        int line = 1;
        if (at)
            for (const char *p = text; p < at && *p; p++) line += (*p == '\n');
        return err_set(e, "%s: malformed JSON near line %d (hint: check commas and quotes)", source,
                       line);
    }
    int rc = 0;
    if (!cJSON_IsObject(root)) {
        rc = err_set(e, "%s: expected a JSON object of sections", source);
        goto out;
    }
    for (cJSON *sec = root->child; sec; sec = sec->next) {
        if (!has_section(sec->string, strlen(sec->string))) {
            rc = err_set(e, "%s: unknown section '%s' (hint: hdistill help-config lists them)", source,
                         sec->string);
            goto out;
        }
        if (!cJSON_IsObject(sec)) {
            rc = err_set(e, "%s: section '%s' must be an object", source, sec->string);
            goto out;
        }
        for (cJSON *kv = sec->child; kv; kv = kv->next) {
            char key[256];
            snprintf(key, sizeof key, "%s.%s", sec->string, kv->string);
            const OptSpec *o = find_opt(key);
            if (!o) {
                rc = err_set(e, "%s: unknown key '%s' (hint: hdistill help-config lists them)", source,
                             key);
                goto out;
            }
            if ((rc = set_from_json(c, o, kv, source, e)) != 0) goto out;
        }
    }
    free(c->source);
    c->source = xstrdup(source);
out:
    cJSON_Delete(root);
    return rc;
}

int config_load_file(Config *c, const char *path, Err *e) {
    size_t len;
    char *text = util_read_file(path, &len, e);
    if (!text) return err_suffix(e, " (hint: the configuration file must exist)");
    if (strlen(text) != len) {
        free(text);
        return err_set(e, "%s: contains a NUL byte; not a JSON configuration", path);
    }
    int rc = config_load_json(c, text, path, e);
    free(text);
    return rc;
}

int config_set(Config *c, const char *assignment, Err *e) {
    const char *eq = strchr(assignment, '=');
    if (!eq) return err_set(e, "--set %s: expected section.key=value", assignment);
    char key[256];
    size_t n = (size_t)(eq - assignment);
    if (n >= sizeof key) return err_set(e, "--set: key too long");
    memcpy(key, assignment, n);
    key[n] = 0;
    const OptSpec *o = find_opt(key);
    if (!o) return err_set(e, "--set: unknown key '%s' (hint: hdistill help-config lists them)", key);
    return set_from_string(c, o, eq + 1, "--set", e);
}

int config_load_judges(const Config *c, const char *path, JudgeConfig **out, int *n, Err *e) {
    *out = NULL;
    *n = 0;
    size_t len;
    char *text = util_read_file(path, &len, e);
    if (!text) return err_suffix(e, " (hint: eval.judges must name a JSON file of judges)");
    cJSON *root = cJSON_Parse(text);
    free(text);
    cJSON *arr = root ? cJSON_GetObjectItemCaseSensitive(root, "judges") : NULL;
    if (!root) return err_set(e, "%s: malformed JSON", path);
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(root);
        return err_set(e, "%s: expected {\"judges\": [ ... ]}", path);
    }
    int cnt = cJSON_GetArraySize(arr), rc = 0;
    JudgeConfig *j = xcalloc((size_t)(cnt ? cnt : 1), sizeof(JudgeConfig));
    char *base = config_to_json(c);
    int k = 0;
    for (cJSON *it = arr->child; it && rc == 0; it = it->next, k++) {
        char src[600];
        cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
        snprintf(src, sizeof src, "%s: judge %d", path, k + 1);
        if (!cJSON_IsObject(it) || !cJSON_IsString(nm) || !nm->valuestring[0]) {
            rc = err_set(e, "%s: needs a non-empty string \"name\"", src);
            break;
        }
        const char *nv = nm->valuestring;
        if (strspn(nv, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") != strlen(nv) ||
            !strcmp(nv, "critic") || !strcmp(nv, "agreement") || nv[0] == '.')
            rc = err_set(e, "%s: name '%s' cannot name a judge (hint: letters, digits, '_', '.', '-'; not 'critic' or "
                            "'agreement', which run.h5 uses)",
                         src, nv);
        for (int m = 0; m < k && rc == 0; m++)
            if (!strcmp(j[m].name, nv)) rc = err_set(e, "%s: name '%s' used twice", src, nv);
        if (rc) break;
        snprintf(src, sizeof src, "%s: judge '%s'", path, nm->valuestring);
        config_init(&j[k].holder);
        j[k].name = xstrdup(nm->valuestring);
        *n = k + 1;
        if ((rc = config_load_json(&j[k].holder, base, "resolved configuration", e)) != 0) break;
        for (cJSON *kv = it->child; kv && rc == 0; kv = kv->next) {
            if (!strcmp(kv->string, "name")) continue;
            char key[256];
            snprintf(key, sizeof key, "critic.%s", kv->string);
            const OptSpec *o = find_opt(key);
            if (!o) rc = err_set(e, "%s: unknown key '%s' (hint: the keys of the critic section)", src, kv->string);
            else rc = set_from_json(&j[k].holder, o, kv, src, e);
        }
        j[k].ep = j[k].holder.critic;
    }
    free(base);
    cJSON_Delete(root);
    if (rc) {
        config_free_judges(j, *n);
        *n = 0;
        return -1;
    }
    *out = j;
    return 0;
}

void config_free_judges(JudgeConfig *j, int n) {
    if (!j) return;
    for (int i = 0; i < n; i++) {
        free(j[i].name);
        config_free(&j[i].holder);
    }
    free(j);
}

int config_validate(const Config *c, Err *e) {
    if (c->tokenizer.type == TOKENIZER_TYPE_GPT2 &&
        (!c->tokenizer.gpt2_vocab[0] || !c->tokenizer.gpt2_merges[0]))
        return err_set(e, "%s: tokenizer.type gpt2 needs tokenizer.gpt2_vocab and tokenizer.gpt2_merges",
                       c->source);
    if (c->tokenizer.type == TOKENIZER_TYPE_HF && !c->tokenizer.path[0] && !c->model.init_from[0])
        return err_set(e, "%s: tokenizer.type hf needs tokenizer.path (a tokenizer.json or its directory) or a "
                          "Hugging Face model directory in model.init_from", c->source);
    if (!c->run.dir[0]) return err_set(e, "%s: run.dir is empty (hint: a directory for run.h5 and ckpt/)", c->source);
    if (!c->data.path[0]) return err_set(e, "%s: data.path is empty (hint: the data.h5 file to use)", c->source);
    if (c->train.steps == 0 && c->train.epochs <= 0)
        return err_set(e, "%s: set train.steps or train.epochs > 0", c->source);
    if (c->train.eval_every > 0 && c->data.val_fraction <= 0)
        return err_set(e, "%s: train.eval_every needs data.val_fraction > 0", c->source);
    return 0;
}

/* s with newlines and tabs shown as \n and \t (for one-line listings) */
static void escaped(const char *s, char *buf, size_t n) {
    size_t k = 0;
    for (; *s && k + 3 < n; s++) {
        if (*s == '\n' || *s == '\t') {
            buf[k++] = '\\';
            buf[k++] = *s == '\n' ? 'n' : 't';
        } else {
            buf[k++] = *s;
        }
    }
    buf[k] = 0;
}

static void value_string(const Config *c, const OptSpec *o, char *buf, size_t n) {
    const char *base = (const char *)c;
    switch (o->type) {
    case OT_INT: snprintf(buf, n, "%d", *(const int *)(base + o->off)); break;
    case OT_I64: snprintf(buf, n, "%lld", (long long)*(const int64_t *)(base + o->off)); break;
    case OT_FLOAT: snprintf(buf, n, "%.17g", *(const double *)(base + o->off)); break;
    case OT_STRING:
    case OT_NAME: escaped(*(char *const *)(base + o->off), buf, n); break;
    case OT_ENUM: choice_name(o->choices, *(const int *)(base + o->off), buf, n); break;
    case OT_LIST: {
        unsigned bits = *(const unsigned *)(base + o->off);
        size_t k = 0;
        buf[0] = 0;
        for (int i = 0; i < 32 && k < n; i++)
            if (bits & (1u << i)) {
                char nm[64];
                k += (size_t)snprintf(buf + k, n - k, "%s%s", k ? "," : "", choice_name(o->choices, i, nm, sizeof nm));
            }
        break;
    }
    }
}

const char *config_enum_name(const char *key, int v) {
    static _Thread_local char buf[64];
    const OptSpec *o = find_opt(key);
    if (!o || o->type != OT_ENUM) return "?";
    return choice_name(o->choices, v, buf, sizeof buf);
}

int config_get_string(const Config *c, const char *key, char *buf, size_t n) {
    const OptSpec *o = find_opt(key);
    if (!o) return -1;
    value_string(c, o, buf, n);
    return 0;
}

char *config_to_json(const Config *c) {
    cJSON *root = cJSON_CreateObject();
    CHECK(root, "cJSON alloc");
    const char *base = (const char *)c;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const OptSpec *o = &OPTIONS[i];
        const char *dot = strchr(o->key, '.');
        char sec[64];
        snprintf(sec, sizeof sec, "%.*s", (int)(dot - o->key), o->key);
        cJSON *s = cJSON_GetObjectItemCaseSensitive(root, sec);
        if (!s) s = cJSON_AddObjectToObject(root, sec);
        CHECK(s, "cJSON alloc");
        cJSON *v = NULL;
        switch (o->type) {
        case OT_INT: v = cJSON_CreateNumber(*(const int *)(base + o->off)); break;
        case OT_I64: v = cJSON_CreateNumber((double)*(const int64_t *)(base + o->off)); break;
        case OT_FLOAT: v = cJSON_CreateNumber(*(const double *)(base + o->off)); break;
        case OT_STRING:
        case OT_NAME: v = cJSON_CreateString(*(char *const *)(base + o->off)); break;
        case OT_ENUM:
        case OT_LIST: {
            char buf[256];
            value_string(c, o, buf, sizeof buf);
            v = cJSON_CreateString(buf);
            break;
        }
        }
        CHECK(v, "cJSON alloc");
        cJSON_AddItemToObject(s, dot + 1, v);
    }
    char *out = cJSON_Print(root);
    CHECK(out, "cJSON print");
    cJSON_Delete(root);
    char *copy = xstrdup(out);
    cJSON_free(out);
    return copy;
}

void config_print(const Config *c, FILE *f) {
    char buf[1024];
    for (size_t i = 0; i < N_OPTIONS; i++) {
        value_string(c, &OPTIONS[i], buf, sizeof buf);
        fprintf(f, "  %-24s = %s\n", OPTIONS[i].key, buf);
    }
}

static int in_sections(const char *key, const char *sections) {
    if (!sections || !*sections) return 1;
    const char *dot = strchr(key, '.');
    size_t n = (size_t)(dot - key);
    const char *p = sections;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, key, n) == 0) return 1;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

int config_print_help(FILE *f, const char *sections) {
    static const char *tname[] = {"int", "int", "float", "string", "choice", "list", "choice"};
    int printed = 0;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const OptSpec *o = &OPTIONS[i];
        if (!in_sections(o->key, sections)) continue;
        char def[1024];
        escaped(o->def[0] ? o->def : "\"\"", def, sizeof def);
        fprintf(f, "  %-22s %-6s default %-14s %s", o->key, tname[o->type], def, o->help);
        if (o->type == OT_ENUM || o->type == OT_NAME) fprintf(f, " [%s]", o->choices);
        else if (o->type == OT_LIST) fprintf(f, " [comma list of %s]", o->choices);
        else if (o->type != OT_STRING) fprintf(f, " [%g..%g]", o->lo, o->hi);
        fputc('\n', f);
        printed++;
    }
    return printed;
}

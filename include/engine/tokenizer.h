/* tokenizer -- byte-level BPE (Sennrich et al. 2016; GPT-2's byte-level
 * variant, Radford et al. 2019).
 *
 * Any byte string (valid UTF-8 or not) encodes to ids and decodes back to the
 * same bytes (after NFC for a tokenizer.json that asks for it).  Three ways
 * to get a tokenizer:
 *  - tokenizer_train: learn merges on a text corpus up to a vocabulary size;
 *  - tokenizer_load_gpt2: import GPT-2's vocab.json (encoder.json) and
 *    merges.txt (vocab.bpe), giving exactly GPT-2's token ids;
 *  - tokenizer_load_hf: import a Hugging Face tokenizer.json of a byte-level
 *    BPE (SmolLM2, Qwen2.5, Qwen3, Llama 3.x, GPT-2), giving the ids of
 *    Hugging Face tokenizers' encode(text, add_special_tokens=False).
 * The first two ("GPT-2 kind") pre-split text with GPT-2's pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * and merge as GPT-2's encoder.py does (all occurrences of the best pair per
 * pass).  A tokenizer.json ("HF kind") says its own pre-tokenizer: GPT-2's
 * pattern, Llama 3's, or Qwen2's (Llama 3's with \p{N} for \p{N}{1,3}),
 * optionally after a Digits split (SmolLM2), each a hand-written scanner;
 * optionally NFC first (Qwen); and merges as Hugging Face's BPE does (one
 * merge at a time: lowest rank, then leftmost).  Unicode letter/number/space
 * classes and NFC tables are Unicode 14.0.0 (unicode.h, nfc.h); bytes that
 * are not valid UTF-8 count as single "other" characters.
 *
 * Special tokens (end-of-text, separator, chat markers such as <|im_end|>
 * or <|begin_of_text|>) are ids that encode() NEVER produces: their text in
 * the input is encoded as plain text, unlike Hugging Face's default; the
 * caller adds them by id (tokenizer_token_id looks them up by name).
 * Non-special added tokens of a tokenizer.json (e.g. Qwen's <think>,
 * <tool_call>) ARE produced when their text occurs, as Hugging Face does.
 * A tokenizer.json's post_processor (BOS/EOS templates) is not applied.
 *
 * This module knows nothing of HDF5 or MPI: ckpt.c saves a TokenizerData
 * and data.c broadcasts it.
 */
#ifndef HDISTILL_TOKENIZER_H
#define HDISTILL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

typedef struct Tokenizer Tokenizer;

/* Kinds of tokenizer (TokenizerData.kind). */
enum {
    TOKENIZER_GPT2 = 0, /* trained here or GPT-2's files: GPT-2's pattern and merge passes */
    TOKENIZER_HF = 1,   /* a Hugging Face tokenizer.json (byte-level BPE) */
};
/* Split pattern of the pre-tokenizer (TokenizerData.pattern). */
enum {
    TOKENIZER_PATTERN_GPT2 = 0,   /* GPT-2's (above) */
    /* Llama 3's: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
     *            ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
    TOKENIZER_PATTERN_LLAMA3 = 1,
    TOKENIZER_PATTERN_QWEN2 = 2,  /* Llama 3's with \p{N} instead of \p{N}{1,3} */
};
/* Digits pre-tokenizer applied before the pattern (TokenizerData.digits). */
enum {
    TOKENIZER_DIGITS_NONE = 0,
    TOKENIZER_DIGITS_INDIVIDUAL = 1, /* every \p{N} character apart (SmolLM2) */
    TOKENIZER_DIGITS_RUNS = 2,       /* runs of \p{N} apart */
};
/* Normalizer (TokenizerData.normalizer). */
enum { TOKENIZER_NORM_NONE = 0, TOKENIZER_NORM_NFC = 1 };
/* Token flags (TokenizerData.special[i]); 0 is an ordinary model token. */
enum {
    TOKEN_SPECIAL = 1,    /* special: never produced by encode() (alone, no other flag) */
    TOKEN_ADDED = 2,      /* HF non-special added token: its text in the input gives its id */
    TOKEN_NORMALIZED = 4, /* with TOKEN_ADDED: matched in the normalized (NFC) text */
    TOKEN_IN_MODEL = 8,   /* with TOKEN_ADDED: also a model.vocab token (merges may make it) */
};

/* Plain, flat description of a tokenizer: enough to rebuild it exactly.
 * Token i's bytes are blob[offsets[i] .. offsets[i+1]).  Merge k (rank k,
 * lower merges first) joins ids merges[2k], merges[2k+1] into the token whose
 * bytes are their concatenation.  Special and added tokens' bytes are their
 * text (e.g. "<|endoftext|>"); the others' are the bytes they stand for.
 * The HF fields are 0 (and source NULL) for the GPT-2 kind. */
typedef struct {
    int n_vocab;
    int64_t *offsets;  /* n_vocab + 1 */
    uint8_t *blob;     /* offsets[n_vocab] bytes */
    uint8_t *special;  /* n_vocab TOKEN_* flags (0/1 in files of the GPT-2 kind) */
    int n_merges;
    int32_t *merges;   /* 2 * n_merges */
    int eot_id;        /* end-of-text id */
    int sep_id;        /* separator id, or -1 if the separator is text */
    int kind;          /* TOKENIZER_GPT2 or TOKENIZER_HF */
    int pattern;       /* TOKENIZER_PATTERN_* */
    int digits;        /* TOKENIZER_DIGITS_* */
    int normalizer;    /* TOKENIZER_NORM_* */
    int ignore_merges; /* 1: a chunk that is a whole model token is that token (Llama 3) */
    char *source;      /* HF: the tokenizer.json text verbatim (NUL-terminated), or NULL */
    int64_t source_len;
} TokenizerData;

void tokenizer_data_free(TokenizerData *d);

/* Learns a byte-level BPE on texts[0..n) (lens[i] bytes each) until the
 * vocabulary has vocab_size ids: 256 byte tokens, merges, then the two
 * special tokens <|endoftext|> and <|sep|> as the last two ids.  Ties
 * between equally frequent pairs break on the smaller (left id, right id),
 * so training is deterministic.  A merge whose bytes an earlier merge
 * already made reuses that id, so n_merges can exceed vocab_size - 258.
 * Fails (returns NULL, e set) when the corpus cannot support vocab_size (no
 * pair occurs twice before it is reached) or vocab_size < 258. */
Tokenizer *tokenizer_train(const char *const *texts, const size_t *lens, size_t n, int vocab_size,
                           Err *e);

/* Imports GPT-2's files: vocab_path is the JSON object token-string -> id
 * (GPT-2's "encoder.json"/"vocab.json"), merges_path the merge list
 * ("vocab.bpe"/"merges.txt": a "#version" line, then "left right" lines).
 * "<|endoftext|>" is the special end-of-text token; sep_id is -1 (the
 * caller's separator is text).  NULL with e naming the file and line on
 * malformed input. */
Tokenizer *tokenizer_load_gpt2(const char *vocab_path, const char *merges_path, Err *e);

/* Imports a Hugging Face tokenizer.json (path is the file or a directory
 * holding it): model.type "BPE" over GPT-2's byte alphabet (vocab, merges
 * as "a b" strings or ["a", "b"] pairs, ignore_merges), added_tokens,
 * normalizer null / NFC / a Sequence of NFC, pre_tokenizer ByteLevel
 * (use_regex: GPT-2's pattern), or a Sequence of an optional Digits and then
 * ByteLevel(use_regex) or Split(GPT-2's, Llama 3's or Qwen2's exact
 * regex, Isolated) + ByteLevel(use_regex=false), and decoder ByteLevel.
 * Anything else -- another model, pattern, normalizer or option, byte
 * fallback / SentencePiece "\u2581" vocabularies, ids with gaps or twice,
 * merges of unknown tokens, malformed JSON -- fails (NULL) with e a single
 * line "FILE: FIELD: problem (hint: ...)".
 * The end-of-text id is the eos_token of tokenizer_config.json beside the
 * file if there is one, else the first special token of <|endoftext|>,
 * <|end_of_text|>, <|im_end|>; else it fails.  sep_id is -1.
 * tokenizer_vocab_size counts model.vocab and added_tokens; a model's
 * embedding may have more rows (Qwen2.5 pads to 151936): the caller's concern. */
Tokenizer *tokenizer_load_hf(const char *path, Err *e);

/* Rebuilds from a TokenizerData (deep copy; d stays the caller's). NULL with
 * e set if d is inconsistent (a merge whose result is not in the vocab, ...). */
Tokenizer *tokenizer_from_data(const TokenizerData *d, Err *e);
/* Fills d with a deep copy of t's description (free with tokenizer_data_free). */
void tokenizer_to_data(const Tokenizer *t, TokenizerData *d);

void tokenizer_destroy(Tokenizer *t);

int tokenizer_vocab_size(const Tokenizer *t);
int tokenizer_eot_id(const Tokenizer *t);
int tokenizer_sep_id(const Tokenizer *t); /* -1 if none */
int tokenizer_kind(const Tokenizer *t);   /* TOKENIZER_GPT2 or TOKENIZER_HF */

/* Makes id the end-of-text id; 0, or -1 (t unchanged) if id is not a
 * special token. */
int tokenizer_set_eot(Tokenizer *t, int id);

/* The id of the token named name (NUL-terminated): a special or added token
 * whose text is name, else the ordinary token whose bytes are name; -1 if
 * none.  E.g. tokenizer_token_id(t, "<|im_end|>"). */
int tokenizer_token_id(const Tokenizer *t, const char *name);

/* Appends the ids of text[0..len) to out.  Never produces special ids (see
 * the top of this file).  Thread-safe for concurrent calls on the same
 * tokenizer. */
void tokenizer_encode(const Tokenizer *t, const char *text, size_t len, IntVec *out);

/* Appends the bytes of ids[0..n) to out; special and added tokens decode to
 * their text.  Returns -1 (e set) on an id outside the vocabulary. */
int tokenizer_decode(const Tokenizer *t, const int *ids, size_t n, ByteBuf *out, Err *e);

/* Bytes of one token (not NUL-terminated); NULL if id is out of range. */
const uint8_t *tokenizer_token_bytes(const Tokenizer *t, int id, size_t *len);

#endif

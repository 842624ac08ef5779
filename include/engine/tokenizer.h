/* tokenizer -- byte-level BPE (Sennrich et al. 2016; GPT-2's byte-level
 * variant, Radford et al. 2019).
 *
 * Any byte string (valid UTF-8 or not) encodes to ids and decodes back to the
 * same bytes.  Two ways to get a tokenizer:
 *  - tokenizer_train: learn merges on a text corpus up to a vocabulary size;
 *  - tokenizer_load_gpt2: import GPT-2's vocab.json (encoder.json) and
 *    merges.txt (vocab.bpe), giving exactly GPT-2's token ids.
 * Both pre-split text with GPT-2's pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * (Unicode letter/number/space classes from tools/gen_unicode.py, see
 * unicode.h); bytes that are not valid UTF-8 count as single "other"
 * characters.
 *
 * Special tokens (end-of-text, separator) are ids that encode() never
 * produces from text; they are added by the caller with their ids.
 *
 * This module knows nothing of HDF5 or MPI: store.c saves a TokenizerData
 * and comm broadcasts it.
 */
#ifndef HDISTILL_TOKENIZER_H
#define HDISTILL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

typedef struct Tokenizer Tokenizer;

/* Plain, flat description of a tokenizer: enough to rebuild it exactly.
 * Token i's bytes are blob[offsets[i] .. offsets[i+1]).  Merge k (rank k,
 * lower merges first) joins ids merges[2k], merges[2k+1] into the token whose
 * bytes are their concatenation.  Special tokens have kind 1 and their bytes
 * are their name (e.g. "<|endoftext|>"), never produced by encode(). */
typedef struct {
    int n_vocab;
    int64_t *offsets;  /* n_vocab + 1 */
    uint8_t *blob;     /* offsets[n_vocab] bytes */
    uint8_t *special;  /* n_vocab flags: 1 = special token */
    int n_merges;
    int32_t *merges;   /* 2 * n_merges */
    int eot_id;        /* end-of-text id */
    int sep_id;        /* separator id, or -1 if the separator is text */
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

/* Rebuilds from a TokenizerData (deep copy; d stays the caller's). NULL with
 * e set if d is inconsistent (a merge whose result is not in the vocab, ...). */
Tokenizer *tokenizer_from_data(const TokenizerData *d, Err *e);
/* Fills d with a deep copy of t's description (free with tokenizer_data_free). */
void tokenizer_to_data(const Tokenizer *t, TokenizerData *d);

void tokenizer_destroy(Tokenizer *t);

int tokenizer_vocab_size(const Tokenizer *t);
int tokenizer_eot_id(const Tokenizer *t);
int tokenizer_sep_id(const Tokenizer *t); /* -1 if none */

/* Appends the ids of text[0..len) to out.  Never produces special ids.
 * Thread-safe for concurrent calls on the same tokenizer. */
void tokenizer_encode(const Tokenizer *t, const char *text, size_t len, IntVec *out);

/* Appends the bytes of ids[0..n) to out; special tokens decode to their
 * names.  Returns -1 (e set) on an id outside the vocabulary. */
int tokenizer_decode(const Tokenizer *t, const int *ids, size_t n, ByteBuf *out, Err *e);

/* Bytes of one token (not NUL-terminated); NULL if id is out of range. */
const uint8_t *tokenizer_token_bytes(const Tokenizer *t, int id, size_t *len);

#endif

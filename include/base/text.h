/* text -- small text helpers shared by the layers above: normalisation of
 * one line of input text, word counts, and FNV-1a hashes.  Knows nothing of
 * tokenizers or Unicode classes (see unicode.h). */
#ifndef HDISTILL_TEXT_H
#define HDISTILL_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

/* Normalised copy of s[0..len) (malloc'd): invalid UTF-8 bytes become U+FFFD,
 * control characters (C0, DEL, C1: U+0000-U+001F, U+007F-U+009F), no-break
 * spaces (U+00A0) and runs of white space one space, trimmed, wrapping ASCII
 * quotes removed (repeatedly); "" if nothing is left. */
char *text_normalize(const char *s, size_t len);

/* Words of s: maximal runs of non-space characters (isspace, C locale). */
int text_word_count(const char *s);
/* Cuts s in place after max words (and the white space before the cut);
 * returns 1 if it cut. */
int text_cut_words(char *s, int max);

/* FNV-1a (Fowler, Noll, Vo): 64-bit over n bytes; 32-bit over a string. */
uint64_t text_fnv1a64(const void *p, size_t n);
uint32_t text_fnv1a32(const char *s);

#endif

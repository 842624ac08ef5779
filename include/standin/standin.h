/* standin -- the deterministic "humor world" behind the stand-in endpoint
 * (serve.h): a hidden humor score over real text Debian ships, and the
 * answers of a stand-in teacher and critic built on it.  It is a stand-in
 * for testing and demos, never a language model; docs/standin.md documents
 * every formula and constant.
 *
 * Text: jokes from /usr/share/games/fortunes (packages fortunes-min /
 * fortunes) and literal sentences from the quoted example sentences of
 * WordNet 3.0 (/usr/share/wordnet/data.{noun,verb,adj,adv}, package
 * wordnet-base).  From them the world derives, once at start-up:
 *  - a joke lexicon: the STANDIN_LEXICON_SIZE words with the highest
 *    smoothed log-odds of occurring in fortunes rather than in WordNet
 *    examples (dictionary words only, no stop words, no names), each with a
 *    weight in [0.5, 1];
 *  - joke nouns (lexicon words that are mostly nouns in WordNet) for the
 *    teacher's templates, and short one-line fortunes ("tags").
 * The world does not depend on any seed: the seed only steers the answers.
 *
 * Thread safety: a world is immutable after creation; every function below
 * may be called from many threads at once.
 */
#ifndef HDISTILL_STANDIN_H
#define HDISTILL_STANDIN_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

#define STANDIN_DEFAULT_FORTUNES "/usr/share/games/fortunes"
#define STANDIN_DEFAULT_WORDNET "/usr/share/wordnet"
#define STANDIN_LEXICON_SIZE 400
#define STANDIN_MAX_N 10           /* teacher answers at most this many items */
#define STANDIN_DEFAULT_TAU 0.1    /* critic temperature on the h scale */
#define STANDIN_REFUSAL "I'm sorry, but I can't help with that."

typedef struct StandinWorld StandinWorld;

/* Builds the world from the fortunes and WordNet directories (NULL: the
 * Debian defaults above).  Returns NULL with a one-line message in e when a
 * source is missing or unreadable (naming the Debian package to install).
 * Takes well under a second.  Free with standin_world_destroy. */
StandinWorld *standin_world_create(const char *fortunes_dir, const char *wordnet_dir, Err *e);
void standin_world_destroy(StandinWorld *w); /* accepts NULL */

/* Sizes, for start-up messages and tests. */
int standin_world_n_literals(const StandinWorld *w);
int standin_world_n_jokes(const StandinWorld *w);   /* fortune records read */
int standin_world_n_tags(const StandinWorld *w);
/* The i-th distinct WordNet example sentence, in file order (noun, verb,
 * adj, adv); the pointer lives as long as the world. */
const char *standin_world_literal(const StandinWorld *w, int i);
/* Weight in [0.5, 1] of a lowercase word in the joke lexicon, or 0. */
double standin_lexicon_weight(const StandinWorld *w, const char *word);
/* The i-th lexicon word (0 = highest log-odds), i < STANDIN_LEXICON_SIZE. */
const char *standin_lexicon_word(const StandinWorld *w, int i);

/* ---- the hidden humor score -------------------------------------------- */

typedef struct {
    double joke;   /* 1 - exp(-J/1.2), J = summed weights of new lexicon words */
    double keep;   /* share of the literal's content words kept */
    double len;    /* 1 inside the length band, falling to 0 outside */
    double rep;    /* share of content tokens that are excess repeats */
    double h;      /* clamp(0.45 joke + 0.35 keep + 0.20 len - 0.5 rep, 0, 1) */
    int words_literal, words_paraphrase;
} StandinHumorParts;

/* h(literal, paraphrase) in [0, 1]; 0 for an empty paraphrase. */
double standin_humor(const StandinWorld *w, const char *literal, const char *paraphrase);
void standin_humor_parts(const StandinWorld *w, const char *literal, const char *paraphrase,
                         StandinHumorParts *out);
/* Words as the score counts them: runs of ASCII letters (with inner
 * apostrophes), case-folded. */
int standin_count_words(const char *text);

/* ---- prompts --------------------------------------------------------------- */

typedef enum { STANDIN_ROLE_UNKNOWN = 0, STANDIN_ROLE_TEACHER, STANDIN_ROLE_CRITIC } StandinRole;

/* What a prompt asks.  literal/option_a/option_b are malloc'd copies (NULL
 * when absent); free with standin_prompt_free. */
typedef struct {
    StandinRole role;
    int n;            /* teacher: items asked for, clamped to [1, STANDIN_MAX_N] */
    char *literal;    /* the text after "Sentence:" on its line, trimmed */
    char *option_a;   /* critic: the text after "1." (or "1)") */
    char *option_b;   /* critic: the text after "2." (or "2)") */
} StandinPrompt;

/* Classifies one user message: a line "Sentence: <literal>" followed by
 * lines "1. <a>" and "2. <b>" is a critic prompt; with no such lines after
 * it, a teacher prompt (n = the first integer before the Sentence line,
 * default 3); anything else is UNKNOWN. */
StandinRole standin_prompt_parse(const char *message, StandinPrompt *out);
void standin_prompt_free(StandinPrompt *p);

/* ---- teacher ----------------------------------------------------------------- */

/* The teacher's answer to a request for n paraphrases of literal (malloc'd):
 * a list of mixed quality under h, in one of several list formats, or
 * STANDIN_REFUSAL when the draw falls under refusal_rate.  A pure function
 * of (literal, n, draw, refusal_rate). */
char *standin_teach(const StandinWorld *w, const char *literal, int n, uint64_t draw,
                    double refusal_rate);

/* ---- critic -------------------------------------------------------------------- */

typedef struct {
    double tau;           /* > 0; default STANDIN_DEFAULT_TAU */
    double position_bias; /* added to the logit of answer 1 */
    double length_bias;   /* times (words(a) - words(b)) / words(literal) */
    int sample;           /* 0: write the likelier answer; 1: sample it from the draw */
} StandinCriticParams;

void standin_critic_params_init(StandinCriticParams *p);

/* The critic's logit z of answer 1 over answer 2:
 *   z = (h(a) - h(b))/tau + position_bias
 *       + length_bias * (words(a) - words(b)) / max(1, words(literal)),
 * so p(answer 1) = sigmoid(z). */
double standin_critic_logit(const StandinWorld *w, const StandinCriticParams *p,
                            const char *literal, const char *a, const char *b);
/* sigmoid(z) and log sigmoid(z), computed without overflow or log(0). */
double standin_sigmoid(double z);
double standin_log_sigmoid(double z);

/* The critic's answer "Reason: <sentence>\nAnswer: <1|2>" (malloc'd); *logit
 * receives z above and *answer the number written. */
char *standin_critique(const StandinWorld *w, const StandinCriticParams *p, const char *literal,
                       const char *a, const char *b, uint64_t draw, double *logit, int *answer);

/* ---- reasoning ------------------------------------------------------------------ */

/* What a "thinking" model writes before its answer, for the dialects and
 * fault kinds that show reasoning (dialect.h, serve.h) -- made to trap a
 * client that parses it: a critic's reasoning holds the decoy verdict
 * "Answer: <3 - answer>" (*decoy_at: the offset of that digit); a
 * teacher's holds two numbered draft lines that are not part of the answer.
 * malloc'd; answer is the critic's verdict (1 or 2), n the items asked. */
char *standin_reasoning(StandinRole role, const char *literal, int n, int answer, long *decoy_at);

#endif

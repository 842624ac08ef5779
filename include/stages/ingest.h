/* ingest -- literal inputs into data.h5.
 *
 * Sources: WordNet's example sentences (Debian wordnet-base: the quoted
 * examples in the glosses of data.noun and data.verb; out-of-distribution
 * inputs from data.adj and data.adv), or a file: JSONL (a string field),
 * CSV (a column named in the header; RFC 4180 quoting) or plain text (one
 * input per line).  Each input is normalised (invalid UTF-8 replaced by
 * U+FFFD, control characters and runs of white space made one space,
 * trimmed, wrapping quotes removed), filtered by word count, and
 * de-duplicated case-insensitively (of inputs equal up to case, the
 * smallest spelling in byte order is kept; an out-of-distribution input
 * equal up to case to one of the main source is dropped).  Inputs are
 * ordered by a keyed hash of their text (seeded), so `ingest.limit` takes a
 * random but reproducible subset, and the eval split is the inputs whose
 * hash falls under `ingest.eval_fraction` -- independent of file order and
 * of the limit.
 *
 * data.h5 gets /inputs/train, /inputs/eval, /inputs/ood (UTF-8 strings),
 * counts and the ingest signature as attributes, /config and /provenance
 * (layout: docs/file-formats.md, "data.h5"); it is written to a temporary name and renamed.  Running ingest again with
 * the same ingest settings does nothing; with other settings it refuses to
 * overwrite the file (it may hold paid teacher answers).
 */
#ifndef HDISTILL_INGEST_H
#define HDISTILL_INGEST_H

#include "base/comm.h"
#include "base/config.h"
#include "base/util.h"

int ingest_main(const Config *cfg, const Comm *comm, int argc, char **argv, int dry_run);

/* Example sentences of WordNet data files (appended to out). */
int ingest_read_wordnet(const char *path, StrVec *out, Err *e);
/* Inputs of a file; format "auto"|"jsonl"|"csv"|"text"; field for JSONL/CSV. */
int ingest_read_file(const char *path, const char *format, const char *field, StrVec *out, Err *e);

#endif

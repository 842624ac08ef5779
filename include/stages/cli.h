/* cli -- subcommands that are not a stage of their own: tokenize, and the
 * shared parsing of "CONFIG [--set k=v]... [--dry-run]" into a resolved,
 * validated Config on every rank. */
#ifndef HDISTILL_CLI_H
#define HDISTILL_CLI_H

#include "base/comm.h"
#include "base/config.h"

/* Parses argv[first..] (CONFIG, --set, --dry-run) on rank 0, validates (the
 * option table, the model, the roles' request options), and
 * broadcasts the resolved configuration; on error every rank exits with
 * EXIT_USAGE after rank 0 prints one line. */
void cli_load_config(Config *cfg, const Comm *comm, int argc, char **argv, int first, int *dry_run);

/* hdistill tokenize --gpt2-vocab FILE --gpt2-merges FILE: stdin lines -> ids. */
int cli_tokenize(int argc, char **argv);

#endif

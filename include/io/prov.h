/* prov -- provenance of an output file: git SHA of the build, library
 * versions (Open MPI, HDF5, OpenBLAS, libcurl, cJSON), host, time, Slurm job,
 * world size and the command line.  Stored as attributes of a group
 * ("/provenance") in every file hdistill writes (the attributes:
 * docs/file-formats.md, "Provenance groups").  Never records environment
 * values other than the Slurm ids (no API keys). */
#ifndef HDISTILL_PROV_H
#define HDISTILL_PROV_H

#include "io/store.h"

#define PROV_MAX 24

typedef struct {
    int n;
    char *key[PROV_MAX];
    char *value[PROV_MAX];
} Provenance;

/* Collects; argv is joined into "command".  Free with prov_free. */
void prov_collect(Provenance *p, int argc, char **argv, int world_size);
void prov_free(Provenance *p);
/* Writes the attributes on group `group` (created if missing). */
int prov_write(StoreFile *f, const char *group, const Provenance *p, Err *e);
/* The build's git SHA ("unknown" outside a git checkout; "-dirty" suffix). */
const char *prov_git_sha(void);

#endif

/* store -- HDF5 files without HDF5 in the header.
 *
 * A thin, checked layer over HDF5 1.10 (Debian's parallel build, used
 * serially by rank 0, and by all ranks at once through MPI-IO for the
 * tensors of a sharded checkpoint: see "parallel files" below): named
 * datasets created with their intermediate groups, each with a
 * "description" attribute (meaning and units), string datasets as
 * variable-length UTF-8, extendible 1-D series for metrics, and
 * provenance.  Every HDF5 call is checked; failures return -1 with an Err
 * naming the file and object.  HDF5's own error stack printing is off.
 *
 * Ownership: StoreFile handles are opaque; store_close accepts NULL.  Read
 * functions that allocate say so.
 */
#ifndef HDISTILL_STORE_H
#define HDISTILL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "base/util.h"

typedef struct StoreFile StoreFile;

/* Creates (truncating) / opens a file.  NULL with e set; an unreadable or
 * truncated file gives "PATH: not a readable HDF5 file (...)". */
StoreFile *store_create(const char *path, Err *e);
StoreFile *store_open(const char *path, int writable, Err *e);
/* A file kept readable at every moment (run.h5 during a run): the writer
 * works on a private copy "<path>.tmp" and store_commit makes the copy's
 * state the file at path (flush, close, fsync, rename over path, then a
 * fresh copy to go on with).  Readers, and a process that finds the file
 * after a SIGKILL at any moment, see the last committed state; the writer
 * never holds path open, so a reader's lock never blocks it.  create: start
 * from an empty file instead of a copy of path (which need not exist).
 * Nothing is visible at path before the first commit.  NULL with e set. */
StoreFile *store_open_staged(const char *path, int create, Err *e);
/* Commits a staged file (see above); 0 for other files.  -1 with e set. */
int store_commit(StoreFile *f, Err *e);
/* Seconds since the last commit (or since a staged file was opened). */
double store_since_commit(const StoreFile *f);
/* Flushes and closes (a staged file is committed first); returns 0 or -1
 * (e may be NULL).  Accepts NULL. */
int store_close(StoreFile *f, Err *e);
/* Closes without committing: a staged file's uncommitted changes are
 * dropped (its copy removed).  Accepts NULL. */
void store_abandon(StoreFile *f);
int store_flush(StoreFile *f, Err *e);
const char *store_path(const StoreFile *f);

int store_exists(StoreFile *f, const char *obj);
/* Removes a dataset or group link (no-op if absent). */
int store_delete(StoreFile *f, const char *obj, Err *e);
/* Dimensions of a dataset: *ndim (<= 4) and dims. */
int store_dims(StoreFile *f, const char *obj, int *ndim, int64_t dims[4], Err *e);

/* Whole datasets; dims has ndim entries (ndim 0 = scalar).  desc (may be
 * NULL) becomes the "description" attribute.  Overwrites an existing
 * dataset of the same name. */
int store_write_f32(StoreFile *f, const char *obj, const float *x, int ndim, const int64_t *dims,
                    const char *desc, Err *e);
int store_write_f64(StoreFile *f, const char *obj, const double *x, int ndim, const int64_t *dims,
                    const char *desc, Err *e);
int store_write_i32(StoreFile *f, const char *obj, const int32_t *x, int ndim, const int64_t *dims,
                    const char *desc, Err *e);
int store_write_i64(StoreFile *f, const char *obj, const int64_t *x, int ndim, const int64_t *dims,
                    const char *desc, Err *e);
int store_write_u64(StoreFile *f, const char *obj, const uint64_t *x, int ndim, const int64_t *dims,
                    const char *desc, Err *e);
int store_write_u8(StoreFile *f, const char *obj, const uint8_t *x, int ndim, const int64_t *dims,
                   const char *desc, Err *e);
/* Variable-length UTF-8 strings; s has prod(dims) entries (NULL = ""). */
int store_write_strings(StoreFile *f, const char *obj, const char *const *s, int ndim,
                        const int64_t *dims, const char *desc, Err *e);
int store_write_string(StoreFile *f, const char *obj, const char *s, const char *desc, Err *e);

/* Reads a whole numeric dataset, converting to the requested type.  The
 * dataset must have exactly n elements (n < 0: any; the count goes to *n_out).
 * Returned buffers (the _alloc variants) are the caller's to free.  A
 * dataset (numeric or string) claiming more than 64 elements per byte of
 * the file is an error (a corrupt file), never an allocation. */
int store_read_f32(StoreFile *f, const char *obj, float *x, int64_t n, Err *e);
int store_read_f64(StoreFile *f, const char *obj, double *x, int64_t n, Err *e);
int store_read_i32(StoreFile *f, const char *obj, int32_t *x, int64_t n, Err *e);
int store_read_i64(StoreFile *f, const char *obj, int64_t *x, int64_t n, Err *e);
int store_read_u64(StoreFile *f, const char *obj, uint64_t *x, int64_t n, Err *e);
void *store_read_alloc(StoreFile *f, const char *obj, char type, int64_t *n_out, Err *e);
/* type: 'f' float, 'd' double, 'i' int32, 'l' int64, 'b' uint8 */

/* Reads a string dataset (variable- or fixed-length) as n malloc'd strings
 * (an array the caller frees with store_free_strings). */
char **store_read_strings(StoreFile *f, const char *obj, int64_t *n_out, Err *e);
void store_free_strings(char **s, int64_t n);
/* A scalar string dataset; malloc'd. */
char *store_read_string(StoreFile *f, const char *obj, Err *e);

/* Attributes on an object (group or dataset; "/" is the root). */
int store_set_attr_str(StoreFile *f, const char *obj, const char *name, const char *v, Err *e);
int store_set_attr_i64(StoreFile *f, const char *obj, const char *name, int64_t v, Err *e);
int store_set_attr_f64(StoreFile *f, const char *obj, const char *name, double v, Err *e);
int store_get_attr_i64(StoreFile *f, const char *obj, const char *name, int64_t *v, Err *e);
int store_get_attr_f64(StoreFile *f, const char *obj, const char *name, double *v, Err *e);
char *store_get_attr_str(StoreFile *f, const char *obj, const char *name, Err *e); /* malloc'd */

/* Extendible 1-D series (chunked): appended in place, created on first use. */
int store_append_f64(StoreFile *f, const char *obj, const double *x, int64_t n, const char *desc,
                     Err *e);
int store_append_i64(StoreFile *f, const char *obj, const int64_t *x, int64_t n, const char *desc,
                     Err *e);
/* Shrinks a 1-D series to n elements (no-op if shorter or absent). */
int store_truncate(StoreFile *f, const char *obj, int64_t n, Err *e);

/* ---- float32 element ranges and parallel files --------------------------------
 * A range [lo, hi) of a dataset is in its row-major order (a flat slice of a
 * 1-D or 2-D dataset); it is selected as at most three rectangular blocks
 * (one when lo and hi fall on rows), and only its elements are read or
 * written.  x has hi - lo elements. */
int store_read_f32_range(StoreFile *f, const char *obj, int64_t lo, int64_t hi, float *x, Err *e);
/* Writes r[i].x[0, hi - lo) to the elements [r[i].lo, r[i].hi) of r[i].obj,
 * for i < n, one H5Dwrite per dataset (none where lo == hi; x may then be
 * NULL), stopping at the first failure.  On a file from
 * store_open_parallel the call is COLLECTIVE only in its status: every rank
 * calls it, writes its own ranges with independent MPI-IO (no rank waits
 * for another: a synchronisation per dataset cost up to 7x the time on a
 * loaded machine, and a flat range of a contiguous dataset is one block of
 * the file, where collective buffering gains nothing), and every rank
 * returns the same status (a failure on any rank is every rank's, with the
 * lowest failing rank's message). */
typedef struct {
    const char *obj;
    int64_t lo, hi;
    const float *x;
} StoreRange;
int store_write_f32_ranges(StoreFile *f, int n, const StoreRange *r, Err *e);
/* Creates a float32 dataset (1-D or 2-D) whose storage is allocated now
 * (contiguous, no fill value ever written) and writes nothing: parallel
 * writers fill it later, and every element must be written by someone. */
int store_create_f32(StoreFile *f, const char *obj, int ndim, const int64_t *dims, const char *desc, Err *e);
/* Parallel files: COLLECTIVE over all ranks (MPI_COMM_WORLD).  Opens an
 * existing file (made and closed by one process, on a file system every
 * rank sees) for writing through MPI-IO (HDF5's mpio driver, independent
 * data transfers).  Only store_write_f32_ranges, store_flush (collective:
 * MPI_File_sync on every rank, so each rank's data reaches the disk) and
 * store_close (collective too) may be used on it.  NULL with e set (MPI-IO
 * opens collectively: a failure is normally every rank's). */
StoreFile *store_open_parallel(const char *path, Err *e);

/* Names of the links in a group (malloc'd array of malloc'd names; *n set;
 * an empty group gives a non-NULL array and *n = 0), or NULL (*n = 0) if it
 * is not a group. */
char **store_list(StoreFile *f, const char *group, int *n);

/* Library version string: "HDF5 x.y.z". */
void store_hdf5_version(char *buf, size_t n);

#endif

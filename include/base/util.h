/* util -- errors, logging, allocation, growable arrays, RNG, timing, files,
 * command-line options and a small thread pool.  Everything else in hdistill builds on this; it
 * knows nothing of MPI or HDF5 (comm installs an abort hook so that DIE
 * takes every rank down instead of hanging the others).
 *
 * Three kinds of error (STYLE.md):
 *  - programmer errors: CHECK(cond, fmt, ...) -- always on, never assert();
 *  - fatal environment errors: DIE(fmt, ...) prints "[rank r] file:line: msg"
 *    and calls the abort hook (MPI_Abort once comm is up);
 *  - recoverable errors: functions return a negative status and fill an Err
 *    with a one-line message naming the file/field and a hint.
 */
#ifndef HDISTILL_UTIL_H
#define HDISTILL_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Process exit codes (documented in README.md and docs/pipeline.md). */
enum {
    EXIT_OK = 0,
    EXIT_RUNTIME = 1,   /* an environment error during the run (I/O, MPI)   */
    EXIT_USAGE = 2,     /* bad command line, configuration or input data    */
    EXIT_STOPPED = 3,   /* stopped early (signal, STOP file, time); resumable */
    EXIT_BUDGET = 4,    /* stopped at the LLM spend limit (llm.budget_usd/budget_tokens): nothing
                           more was sent; raise the limit and run again to carry on */
};

/* ---- errors ------------------------------------------------------------ */

/* The outcome of a stage, or of one of its phases: done; stopped early by a
 * stop request (a signal, the STOP file, the time limit: resumable, exit 3);
 * failed (an Err says why); or stopped at the LLM spend limit (an Err says
 * what was spent and what is left to do; exit 4).  Functions that can be
 * stopped return a Status; "stopped" is never encoded otherwise. */
typedef enum { STATUS_OK = 0, STATUS_STOPPED = 1, STATUS_FAILED = 2, STATUS_BUDGET = 3 } Status;
/* EXIT_OK, EXIT_STOPPED, EXIT_BUDGET, or failed_code for STATUS_FAILED. */
int status_exit_code(Status s, int failed_code);

typedef struct {
    char msg[768];
} Err;

/* Formats a message into e (if e is non-NULL) and returns -1.  The message
 * is one line: line breaks (in a value quoted from a file) become spaces. */
int err_set(Err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Adds text before / after e's message (safe: no aliasing). Return -1. */
int err_prefix(Err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int err_suffix(Err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Called by DIE/CHECK after printing; defaults to abort().  comm installs one
 * that calls MPI_Abort so all ranks stop. */
void util_set_abort_hook(void (*hook)(int code));
void util_set_rank(int rank);
int util_rank(void);

void util_die(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

void util_check_failed(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));

#define DIE(...) util_die(__FILE__, __LINE__, __VA_ARGS__)
#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond)) util_check_failed(__FILE__, __LINE__, #cond, __VA_ARGS__);   \
    } while (0)

/* ---- logging ------------------------------------------------------------ */

/* log_info prints on rank 0 only, to stdout, flushed line by line. */
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* log_warn/log_error print on any rank to stderr with a "[rank r]" prefix. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* When quiet, log_info prints nothing (used by tests and --json output). */
void log_set_quiet(int quiet);

/* ---- allocation (DIE on failure) ---------------------------------------- */

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* 64-byte aligned, zeroed; free with free(). */
void *xmalloc_aligned(size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- growable arrays ------------------------------------------------------ */

typedef struct {
    int *a;
    size_t n, cap;
} IntVec;
void intvec_push(IntVec *v, int x);
void intvec_reserve(IntVec *v, size_t cap);
void intvec_free(IntVec *v);

typedef struct {
    char **a; /* each element malloc'd */
    size_t n, cap;
} StrVec;
/* Appends a copy of s[0..len) (len (size_t)-1: strlen). */
void strvec_push(StrVec *v, const char *s, size_t len);
void strvec_free(StrVec *v);

typedef struct {
    char *a; /* always NUL-terminated when n > 0 or after bytebuf_putc */
    size_t n, cap;
} ByteBuf;
void bytebuf_put(ByteBuf *b, const void *p, size_t n);
void bytebuf_putc(ByteBuf *b, char c);
void bytebuf_printf(ByteBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a JSON string literal (quotes, escapes; control bytes as \u00XX; other bytes as they are). */
void bytebuf_put_json_string(ByteBuf *b, const char *s);
void bytebuf_free(ByteBuf *b);

/* ---- random numbers --------------------------------------------------------
 * xoshiro256** (Blackman & Vigna 2018), seeded through splitmix64.  The state
 * is four words so checkpoints can store and restore it exactly. */
typedef struct {
    uint64_t s[4];
} Rng;
void rng_seed(Rng *r, uint64_t seed);
uint64_t rng_u64(Rng *r);
/* uniform in [0, 1) with 24 random bits (float) / 53 bits (double) */
float rng_float(Rng *r);
double rng_double(Rng *r);
/* standard normal (Box-Muller, one value per call, no cached spare) */
double rng_normal(Rng *r);
/* uniform integer in [0, n) without modulo bias; n > 0 */
uint64_t rng_below(Rng *r, uint64_t n);
/* Seed derived from (seed, stream, index) so independent streams need no
 * shared state (e.g. the shuffle of epoch e). */
uint64_t rng_derive(uint64_t seed, uint64_t stream, uint64_t index);

/* ---- time ---------------------------------------------------------------- */
double util_now(void); /* monotonic seconds */
double util_wall(void); /* seconds since the epoch */

/* ---- files ----------------------------------------------------------------- */

/* Reads a whole file; returns a NUL-terminated buffer (caller frees) or NULL
 * with e set ("PATH: No such file or directory"). */
char *util_read_file(const char *path, size_t *len, Err *e);
/* mkdir -p; returns 0 or -1 with e set. */
int util_mkdir_p(const char *path, Err *e);
int util_file_exists(const char *path);
/* fsync a file by path and then its directory; returns 0 or -1. */
int util_fsync_path(const char *path);
/* Copies the file from to the file to (created or truncated, mode 0644),
 * in the kernel where it can (copy_file_range); not fsynced.  -1 with e set. */
int util_copy_file(const char *from, const char *to, Err *e);
/* Writes n bytes to path through "<path>.tmp", fsynced and renamed (a
 * reader never sees a partial file).  -1 with e set. */
int util_write_file_durable(const char *path, const void *data, size_t n, Err *e);
/* rename(tmp, final) and fsync the directory; returns 0 or -1 with e set. */
int util_rename_durable(const char *tmp, const char *final, Err *e);
const char *util_basename(const char *path);
int util_ends_with(const char *s, const char *suffix);

/* ---- command-line options -------------------------------------------------------
 * The options with a value of a subcommand (generate, serve, serve --model). */

/* argv[*i] is an option, "--name=value" or "--name value"; names (NULL-terminated)
 * are the options that take a value.  The value is what follows the first '='
 * ("--x=" gives "") or else the next argument, whatever it looks like ("--input
 * --json" gives "--json"; *i then moves to it).  Returns the index of the name in
 * names and points *value into argv; or -1 with e set to "unknown option 'NAME'"
 * (NAME without its "=value") or "NAME needs a value", hint appended to either
 * (e.g. " (hint: hdistill generate --help)", or "").  A repeated option is
 * returned each time: the caller keeps the last value, or all. */
int util_parse_option(int argc, char **argv, int *i, const char *const *names, const char **value, const char *hint,
                      Err *e);

/* ---- exit hooks ---------------------------------------------------------------
 * Cleanups that must run however the process ends normally: each hook runs
 * once, newest first, from util_run_exit_hooks() (which comm_exit calls
 * before MPI finalizes, so under mpirun every rank's hooks finish before any
 * rank is gone) or else at exit(). */
void util_on_exit(void (*fn)(void));
void util_run_exit_hooks(void);

/* ---- stop signals -----------------------------------------------------------
 * SIGTERM, SIGINT, SIGUSR1 (Slurm's --signal) set a flag instead of killing
 * the process; long loops poll it and stop at a step boundary. */
void util_install_stop_signals(void);
/* The first stop signal received, or 0. */
int util_stop_signal(void);

/* ---- thread pool ------------------------------------------------------------
 * A fixed pool of worker threads for the non-GEMM kernels (LayerNorm, GELU,
 * attention, softmax, cross-entropy).  Workers spin briefly and then block,
 * so they give the cores back to OpenBLAS between parallel regions (docs/performance.md:
 * two spinning runtimes on two cores fight).  The calling thread takes part.
 */
typedef void (*ParFn)(void *ctx, long begin, long end, int tid);

/* Starts the pool with nthreads threads in all (>= 1).  Idempotent for the
 * same count; changing the count restarts the pool. */
void par_init(int nthreads);
int par_nthreads(void);
void par_shutdown(void);
/* Calls fn on [0, n) split into par_nthreads() contiguous chunks, chunk k on
 * thread k (deterministic partition for a given thread count); returns when
 * all are done.  Runs inline when n < grain or the pool has one thread. */
void par_for(long n, long grain, ParFn fn, void *ctx);

#endif

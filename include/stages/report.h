/* report -- `hdistill report RUN_DIR [--json]`: the stored evaluation of a
 * run (run.h5 /eval, written by eval.h) as a Markdown table or JSON.  Reads
 * only; never changes the run. */
#ifndef HDISTILL_REPORT_H
#define HDISTILL_REPORT_H

/* Returns the process exit code (EXIT_USAGE for a missing or unevaluated run). */
int report_main(int argc, char **argv);

#endif

/* export -- `hdistill export RUN_DIR|CHECKPOINT.h5 --out DIR`: the student's
 * weights in the Hugging Face layout (model.safetensors + config.json), from
 * the newest checkpoint of RUN_DIR that reads back whole, or the checkpoint
 * file given.  Reads only: an unreadable checkpoint is skipped with a
 * warning, never renamed. */
#ifndef HDISTILL_EXPORT_H
#define HDISTILL_EXPORT_H

/* Returns the process exit code. */
int export_main(int argc, char **argv);

#endif

/* pipeline -- `hdistill run`: the whole method in one command.
 *   ingest -> teach -> tokenizer + supervised fine-tuning -> critique rounds -> evaluation
 * Each stage is skipped when its complete output already exists (data.h5
 * inputs with the same settings; /teacher marked complete; run.h5 marked
 * sft_complete; rounds marked complete; /eval of the newest checkpoint), so
 * a killed run started again carries on where it stopped.  data.pairs
 * defaults to data.path (train on the teacher's paraphrases). */
#ifndef HDISTILL_PIPELINE_H
#define HDISTILL_PIPELINE_H

#include "base/comm.h"
#include "base/config.h"

int pipeline_main(const Config *cfg, const Comm *comm, int argc, char **argv, int dry_run);

#endif

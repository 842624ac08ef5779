/* teach -- the teacher stage: N humorous paraphrases of every literal input.
 *
 * For each split in teach.splits (train, eval, ood) and each input of
 * data.path:/inputs/<split>, asks the teacher once (template teacher.prompt
 * with {input} and {n} = teach.n), parses the numbered list, detects
 * refusals, and writes /teacher into data.path (paraphrases, refusals,
 * request outcomes, raw answers per split, and the usage record; layout in
 * docs/file-formats.md, "data.h5") through a temporary copy renamed over the
 * original.  Every answer goes
 * to the durable LLM cache first (llm.cache, default data.path +
 * ".llm-cache"), so a stage killed at any point and started again pays for
 * nothing twice.  Exit 0 when every input has a final answer; 1 when some
 * requests failed for reasons worth retrying (run again); 3 when stopped.
 */
#ifndef HDISTILL_TEACH_H
#define HDISTILL_TEACH_H

#include "base/comm.h"
#include "base/config.h"

int teach_main(const Config *cfg, const Comm *comm, int argc, char **argv, int dry_run);

#endif

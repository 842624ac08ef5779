/* teach -- the teacher stage: N humorous paraphrases of every literal input.
 *
 * For each split in teach.splits (train, eval, ood) and each input of
 * data.path:/inputs/<split>, asks the teacher once (template teacher.prompt
 * with {input} and {n} = teach.n), parses the numbered list, detects
 * refusals, and writes into data.path
 *   /teacher/paraphrases [n_train, N]  (train split at the top level)
 *   /teacher/refused [n_train], /teacher/n_parsed, /teacher/status, /teacher/raw
 *   /teacher/eval/..., /teacher/ood/...  (the same for the other splits)
 *   /teacher/usage  (attributes: the session's usage schema, session.h; summed
 *                    over every teach run that wrote this file)
 * through a temporary copy renamed over the original.  Every answer goes
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

/* teach -- the teacher stage: N humorous paraphrases of every literal input.
 *
 * For each split in teach.splits (train, eval, ood) and each input of
 * data.path:/inputs/<split>, asks the teacher once (template teacher.prompt
 * with {input} and {n} = teach.n), parses the numbered list, detects
 * refusals, and writes /teacher into data.path (paraphrases, refusals,
 * content filters, answers cut by the token limit (their items kept apart),
 * request outcomes and errors, raw answers and any reasoning per split, and
 * the usage record; layout in docs/file-formats.md, "data.h5") through a
 * temporary copy renamed over the original.  teacher.mode=batch sends the
 * requests through the OpenAI Batch API (llm/batch.h).  Every answer goes
 * to the durable LLM cache first (llm.cache, default data.path +
 * ".llm-cache"), so a stage killed at any point and started again pays for
 * nothing twice.  Refusals and filtered answers are final answers, not
 * failures.  Exit 0 when every input has a final answer; 1 when requests
 * failed (a 4xx, insufficient_quota or a reasoning-exhausted answer stop
 * the stage at once; other kinds after their retries: run again), the last
 * line quoting the client's error; 3 when stopped by a signal; 4 at the
 * spend limit (llm.budget_*).  --dry-run prints the requests to send and
 * cached, their estimated tokens and cost, and sends nothing.
 */
#ifndef HDISTILL_TEACH_H
#define HDISTILL_TEACH_H

#include "base/comm.h"
#include "base/config.h"

int teach_main(const Config *cfg, const Comm *comm, int argc, char **argv, int dry_run);

#endif

/* budget -- a spend limit shared by every request of a run (and, through a
 * file, by concurrent runs of a sweep): llm.budget_usd / llm.budget_tokens.
 *
 * The client never sends a request that could cross the limit: before
 * sending it reserves the request's largest possible cost (an upper bound
 * of its prompt tokens + its token limit, at the role's prices), and when
 * the answer arrives it settles: the reservation is released and the
 * answer's usage is counted as spent.  A request whose reservation could
 * never fit (what is spent + its cost > limit) is refused (LLM_E_BUDGET);
 * one that fits only once requests in flight have settled waits.
 *
 * Budget file (llm.budget_file): a small text file, rewritten whole under
 * flock(LOCK_EX) at every reservation and settlement:
 *     hdistill-budget 1
 *     spent <usd> <tokens>
 *     reserved <host> <pid> <usd> <tokens>      (one line per live process)
 * A reservation line of a process that died on this host (kill(pid, 0)
 * fails with ESRCH) is dropped by the next writer; one left by a process of
 * another host that died stays until removed by hand (the cap stays safe:
 * it only counts too much).  Without a file the budget lives in this
 * process only.
 */
#ifndef HDISTILL_BUDGET_H
#define HDISTILL_BUDGET_H

#include <stdint.h>

#include "base/config.h"
#include "base/util.h"

typedef struct LlmBudget LlmBudget;

/* limit_usd, limit_tokens: 0 = no limit of that kind.  file: NULL or "" =
 * in memory.  NULL with e set when the file cannot be opened or read. */
LlmBudget *budget_open(double limit_usd, int64_t limit_tokens, const char *file, Err *e);
/* The budget of cfg->llm, or *out = NULL when none is set.  -1 with e set. */
int budget_open_config(const Config *cfg, LlmBudget **out, Err *e);
/* Drops this process's reservations from the file and frees b (NULL ok). */
void budget_close(LlmBudget *b);

typedef enum { BUDGET_OK = 0, BUDGET_WAIT = 1, BUDGET_NEVER = 2 } BudgetVerdict;

/* Reserves usd and tokens.  BUDGET_OK: reserved; BUDGET_WAIT: it fits only
 * once reservations now held settle (nothing reserved); BUDGET_NEVER: it
 * cannot fit even then.  -1 with e set on a file error (send nothing). */
int budget_reserve(LlmBudget *b, double usd, int64_t tokens, Err *e);
/* Releases a reservation and counts (spent_usd, spent_tokens) as spent.
 * -1 with e set on a file error. */
int budget_settle(LlmBudget *b, double reserved_usd, int64_t reserved_tokens, double spent_usd,
                  int64_t spent_tokens, Err *e);
/* What was spent (by every process sharing the file) as last read, and the
 * limits. */
void budget_state(const LlmBudget *b, double *spent_usd, int64_t *spent_tokens, double *limit_usd,
                  int64_t *limit_tokens);
/* 1 if a USD limit is set (then prices are needed), else 0. */
int budget_limits_usd(const LlmBudget *b);

#endif

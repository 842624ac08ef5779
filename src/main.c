/* hdistill -- distil humor from a large language model into a small student
 * (Ravi et al., "Small But Funny", ACL 2024) on CPU nodes with MPI.
 * main only parses the subcommand and dispatches; see README.md. */
#include <stdio.h>
#include <string.h>

#include "stages/cli.h"
#include "base/comm.h"
#include "base/config.h"
#include "stages/critique.h"
#include "stages/eval.h"
#include "stages/export.h"
#include "stages/report.h"
#include "stages/ingest.h"
#include "stages/pipeline.h"
#include "io/prov.h"
#include "standin/serve.h"
#include "stages/teach.h"
#include "stages/train.h"
#include "base/util.h"

static const char USAGE[] =
    "usage: hdistill SUBCOMMAND [ARGS]\n"
    "\n"
    "subcommands:\n"
    "  train CONFIG [--set section.key=value]... [--dry-run]\n"
    "        supervised fine-tuning of the student on (prompt, target) pairs, data parallel\n"
    "        under mpirun/srun; resumes from the newest checkpoint in run.dir\n"
    "  ingest CONFIG [--set section.key=value]... [--dry-run]\n"
    "        literal inputs (WordNet examples, JSONL/CSV/text) -> data.path /inputs/{train,eval,ood}\n"
    "  teach CONFIG [--set section.key=value]... [--dry-run]\n"
    "        the teacher writes teach.n humorous paraphrases of every input -> data.path /teacher\n"
    "  serve --standin --port P [--seed S] [--request-log FILE] [--latency-ms X] [--fault KIND=RATE]...\n"
    "        the built-in stand-in OpenAI-compatible endpoint (a test world, not a model)\n"
    "  critique CONFIG [--set ...] [--dry-run]\n"
    "        the critique rounds (sample, pair, critic, DPO/BRIO/SD/FT) on the trained student\n"
    "  eval CONFIG [--set ...] [--dry-run]\n"
    "        win-or-tie rate of the newest checkpoint vs the teacher, per judge, both orders\n"
    "  run CONFIG [--set ...] [--dry-run]\n"
    "        the whole method: ingest -> teach -> train -> critique -> eval (completed stages skipped)\n"
    "  report RUN_DIR [--json]\n"
    "        the stored evaluation of a run as a table or JSON\n"
    "  check CONFIG [--set section.key=value]...\n"
    "        validate a configuration without reading data (exit 0, or 2 naming the key)\n"
    "  export RUN_DIR|CHECKPOINT.h5 --out DIR\n"
    "        the student as a Hugging Face model directory (config.json, model.safetensors, tokenizer.json)\n"
    "  tokenize (--hf TOKENIZER_JSON | --gpt2-vocab FILE --gpt2-merges FILE) [--decode]\n"
    "        print the token ids of each stdin line (or the text of ids)\n"
    "  help-config [SECTION,...]\n"
    "        every configuration option with type, default, bounds and meaning\n"
    "  version\n"
    "        version, git SHA and library versions\n"
    "\n"
    "exit codes: 0 done, 1 runtime error, 2 bad usage/configuration/input,\n"
    "            3 stopped early (signal, STOP file, train.max_run_time): run again to resume\n"
    "'hdistill SUBCOMMAND --help' describes one subcommand.\n";

static const char TRAIN_HELP[] =
    "usage: hdistill train CONFIG [--set section.key=value]... [--dry-run]\n"
    "\n"
    "Trains the student on pairs from data.pairs (JSONL of {\"prompt\",\"target\"}, or\n"
    "HDF5) with the loss on target tokens only.  Run with mpirun -np N / srun for data\n"
    "parallelism: train.batch_size rows per step are split over the ranks.  Writes\n"
    "run.dir/run.h5 (configuration, provenance, tokenizer, /metrics/train/{step,loss,...})\n"
    "and run.dir/ckpt/step_NNNNNNNN.h5; started again it resumes from the newest\n"
    "complete checkpoint.  SIGTERM/SIGUSR1, a file run.dir/STOP or train.max_run_time\n"
    "checkpoint and exit with code 3.\n"
    "\n"
    "  --set k=v   override one option (after the file; repeatable)\n"
    "  --dry-run   validate configuration and data, print the plan (parameters: N,\n"
    "              memory per rank, batch layout, steps) and exit 0 without computing\n"
    "\n"
    "options (hdistill help-config for all):\n";

static const char INGEST_HELP[] =
    "usage: hdistill ingest CONFIG [--set section.key=value]... [--dry-run]\n"
    "\n"
    "Reads literal inputs from ingest.source (\"wordnet\": WordNet's example sentences;\n"
    "or a JSONL/CSV/text file), normalises, filters by word count, de-duplicates, and\n"
    "splits them reproducibly into train/eval (and ood) in data.path (an HDF5 file:\n"
    "/inputs/train, /inputs/eval, /inputs/ood).  Run again with the same settings it does\n"
    "nothing; it never overwrites a data.h5 made with other settings.  Runs on rank 0.\n"
    "\n"
    "options:\n";

static const char TEACH_HELP[] =
    "usage: hdistill teach CONFIG [--set section.key=value]... [--dry-run]\n"
    "\n"
    "Asks the teacher endpoint (teacher.base_url; \"standin\" starts the built-in stand-in)\n"
    "for teach.n humorous paraphrases of every input of the splits in teach.splits, parses\n"
    "the numbered lists, detects refusals, and writes /teacher into data.path.  Every\n"
    "answer is first appended to the durable cache (llm.cache; default data.path +\n"
    "\".llm-cache\"), so a stage killed at any point and started again pays for nothing\n"
    "twice.  Exit 0 when every input has a final answer, 1 when some requests failed and\n"
    "should be retried (run again), 3 when stopped by a signal.  --dry-run counts what is\n"
    "cached and what would be sent, and sends nothing.  Runs on rank 0.\n"
    "\n"
    "options:\n";

static const char CRITIQUE_HELP[] =
    "usage: hdistill critique CONFIG [--set section.key=value]...\n"
    "\n"
    "Runs the critique rounds not yet complete on the newest checkpoint of run.dir: sample\n"
    "critique.k candidates per training input, keep the most distant pair of comparable\n"
    "length, ask the critic in both orders, train with critique.objective (ft, sd, dpo,\n"
    "brio, brio-dpo).  Everything a round decides is stored in run.h5 /rounds/<r> before\n"
    "training, so a killed round resumes without re-sampling or paying the critic again.\n"
    "\n"
    "options:\n";

static const char EVAL_HELP[] =
    "usage: hdistill eval CONFIG [--set section.key=value]...\n"
    "\n"
    "Evaluates the newest checkpoint: beam-search outputs on eval.splits against the\n"
    "teacher's reference, judged by the critic and the judges of eval.judges in both\n"
    "orders; win-or-tie rate with a bootstrap 95% interval, position-bias and length-bias\n"
    "rates, into run.h5 /eval, printed as a table.\n"
    "\n"
    "options:\n";

static const char RUN_HELP[] =
    "usage: hdistill run CONFIG [--set section.key=value]... [--dry-run]\n"
    "\n"
    "The whole method: ingest -> teach -> tokenizer + supervised fine-tuning -> critique\n"
    "rounds -> evaluation, each stage skipped when its complete output exists, so a killed\n"
    "run started again carries on.  Endpoints \"standin\" start the built-in stand-in.\n"
    "data.pairs defaults to data.path (the teacher's paraphrases).\n"
    "\n"
    "options:\n";

static const char TOKENIZE_HELP[] =
    "usage: hdistill tokenize (--hf TOKENIZER_JSON | --gpt2-vocab FILE --gpt2-merges FILE) [--decode] [-z]\n"
    "\n"
    "Reads records on stdin (a line ending in \\n, or with -z/--null-data a NUL-ended\n"
    "record; the delimiter is not part of the text) and prints each record's token ids,\n"
    "space-separated, one output record per input record; with --decode, reads ids and\n"
    "prints the text.  --hf: a Hugging Face tokenizer.json (or its directory); --gpt2-*:\n"
    "GPT-2's vocab.json/encoder.json and merges.txt/vocab.bpe.\n";

static const char EXPORT_HELP[] =
    "usage: hdistill export RUN_DIR|CHECKPOINT.h5 --out DIR\n"
    "\n"
    "Writes the student of the newest readable checkpoint of RUN_DIR/ckpt (or of the\n"
    "checkpoint given) as a Hugging Face model directory, for other tools or for\n"
    "model.init_from of another run:\n"
    "  Llama-style students: DIR/config.json (LlamaForCausalLM, Qwen2ForCausalLM or\n"
    "      Qwen3ForCausalLM), DIR/model.safetensors (float32), and the run's\n"
    "      tokenizer.json byte for byte with a tokenizer_config.json\n"
    "  GPT-2 students: DIR/model.safetensors (names transformer.*, Conv1D matrices\n"
    "      [in, out], the LM head tied to wte) and DIR/config.json (GPT2LMHeadModel);\n"
    "      a tokenizer.json only when the run used tokenizer.type hf\n"
    "Exit codes: 0 done, 1 write error, 2 no readable checkpoint or bad arguments.\n";

static int critique_stage(const Config *cfg, const Comm *comm, int argc, char **argv, int dry_run) {
    return dry_run ? critique_plan(cfg, comm) : critique_main(cfg, comm, argc, argv);
}

static int eval_stage(const Config *cfg, const Comm *comm, int argc, char **argv, int dry_run) {
    return dry_run ? eval_plan(cfg, comm) : eval_main(cfg, comm, argc, argv);
}

/* The stages: "hdistill NAME CONFIG [--set k=v]... [--dry-run]" under MPI. */
typedef struct {
    const char *name, *help, *sections; /* sections listed by NAME --help */
    int (*run)(const Config *cfg, const Comm *comm, int argc, char **argv, int dry_run);
} Stage;

static const char CHECK_HELP[] =
    "usage: hdistill check CONFIG [--set section.key=value]...\n"
    "\n"
    "Validates the configuration with its overrides (keys, types, bounds, model\n"
    "dimensions, the shapes in model.init_from) without reading any data; exit 0,\n"
    "or 2 with one line naming the file and key.  jobs/submit.sh checks every sweep\n"
    "row this way before submitting.\n\n";

static int check_stage(const Config *cfg, const Comm *comm, int argc, char **argv, int dry_run) {
    (void)argc, (void)argv, (void)dry_run;
    Err e = {{0}};
    int rc = comm->rank == 0 ? train_check_init_from(cfg, &e) : 0;
    comm_check(rc, e.msg, EXIT_USAGE);
    if (comm->rank == 0) printf("configuration valid: %s\n", cfg->source);
    return EXIT_OK;
}

static const Stage STAGES[] = {
    {"ingest", INGEST_HELP, "data,ingest", ingest_main},
    {"teach", TEACH_HELP, "data,teach,teacher,llm,standin", teach_main},
    {"train", TRAIN_HELP, "run,data,tokenizer,model,student,train", train_main},
    {"critique", CRITIQUE_HELP, "run,critique,critic,llm,standin", critique_stage},
    {"eval", EVAL_HELP, "run,eval,critic,llm,standin", eval_stage},
    {"run", RUN_HELP, "", pipeline_main},
    {"check", CHECK_HELP, "", check_stage},
};

static int wants_help(int argc, char **argv) {
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(USAGE, stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    const char *cmd = argv[1];
    if ((strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) && wants_help(argc, argv)) {
        fputs("usage: hdistill version\n\nPrints the version, the git SHA of the build and the library versions.\n",
              stdout);
        return EXIT_OK;
    }
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        Comm comm;
        comm_init(&comm, &argc, &argv);
        Provenance p;
        prov_collect(&p, 0, NULL, comm.size);
        if (comm.rank == 0)
            for (int i = 0; i < p.n; i++)
                if (strcmp(p.key[i], "command") && strcmp(p.key[i], "created_utc"))
                    printf("%-16s %s\n", p.key[i], p.value[i]);
        prov_free(&p);
        comm_finalize();
        return EXIT_OK;
    }
    if (strcmp(cmd, "help-config") == 0) {
        if (wants_help(argc, argv)) {
            fputs("usage: hdistill help-config [SECTION,...]\n\nLists every configuration option (or those of the "
                  "named sections) with type, default, bounds and meaning.\n",
                  stdout);
            return EXIT_OK;
        }
        if (config_print_help(stdout, argc > 2 ? argv[2] : NULL) == 0) {
            fprintf(stderr, "error: help-config: no section '%s' (hint: hdistill help-config lists all)\n", argv[2]);
            return EXIT_USAGE;
        }
        return EXIT_OK;
    }
    if (strcmp(cmd, "tokenize") == 0) {
        if (wants_help(argc, argv)) {
            fputs(TOKENIZE_HELP, stdout);
            return EXIT_OK;
        }
        return cli_tokenize(argc, argv);
    }
    if (strcmp(cmd, "serve") == 0) return serve_main(argc - 1, argv + 1);
    if (strcmp(cmd, "export") == 0) {
        if (wants_help(argc, argv)) {
            fputs(EXPORT_HELP, stdout);
            return EXIT_OK;
        }
        return export_main(argc, argv);
    }
    if (strcmp(cmd, "report") == 0) {
        if (wants_help(argc, argv)) {
            fputs("usage: hdistill report RUN_DIR [--json]\n\nThe stored evaluation of a run: per split and judge the "
                  "win-or-tie rate with its 95% interval,\nposition and length bias; --json adds objective, seed and "
                  "step as one JSON object.\n",
                  stdout);
            return EXIT_OK;
        }
        return report_main(argc, argv);
    }
    for (size_t i = 0; i < sizeof STAGES / sizeof STAGES[0]; i++) {
        const Stage *st = &STAGES[i];
        if (strcmp(cmd, st->name) != 0) continue;
        if (wants_help(argc, argv)) {
            fputs(st->help, stdout);
            config_print_help(stdout, st->sections);
            return EXIT_OK;
        }
        Comm comm;
        comm_init(&comm, &argc, &argv);
        Config cfg;
        int dry = 0;
        cli_load_config(&cfg, &comm, argc, argv, 2, &dry);
        int code = st->run(&cfg, &comm, argc, argv, dry);
        config_free(&cfg);
        par_shutdown();
        comm_exit(code);
    }
    fprintf(stderr, "error: unknown subcommand '%s' (hint: hdistill --help)\n", cmd);
    return EXIT_USAGE;
}

# hdistill -- build with Debian's Open MPI, OpenBLAS, parallel HDF5, libcurl, cJSON.
# make            build/hdistill and the static library build/libhdistill.a
# make deps       install missing Debian packages (no-op when present)
# make test       every test program, ends with "N passed, N failed"
# make test-asan  unit tests and a short run under ASan + UBSan (build-asan/)
# make test-tsan  the progress thread's unit test under ThreadSanitizer (build-tsan/)
# make fuzz-run [FUZZ_SECONDS=10] [FUZZ_JOBS=1]   libFuzzer targets (clang; build-fuzz/)
# make bench      benchmarks (never part of the tests); make bench-ckpt (not in
#                 make bench: writes ~6 GB) checkpoint writes vs dd
# make install PREFIX=DIR [DESTDIR=STAGE]   program, library, headers, hdistill.pc,
#                 configs, jobs, analysis, docs (docs/cluster.md); make uninstall
# Site installs: make PKG_CONFIG_PATH=... or PKGS=... (see docs/cluster.md).
# Opt-in tuning: make OPT="-O3 -march=native"

PKGS      ?= ompi-c openblas hdf5-openmpi libcurl libcjson libmicrohttpd
PKG_CONFIG ?= pkg-config
CC        ?= gcc
OPT       ?= -O3
CFLAGS    += -std=c11 -D_GNU_SOURCE $(OPT) -g -Wall -Wextra -pthread -fno-math-errno \
             -Iinclude $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
LDLIBS    += $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null) -lm -pthread
DEPFLAGS   = -MMD -MP

BUILD     := build
LAYERS    := base engine io llm standin stages
LIB_SRC   := $(foreach l,$(LAYERS),$(wildcard src/$(l)/*.c))
LIB_OBJ   := $(LIB_SRC:src/%.c=$(BUILD)/obj/%.o)
TEST_SRC  := $(wildcard tests/unit/test_*.c)
TEST_BIN  := $(TEST_SRC:tests/unit/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
LIB       := $(BUILD)/libhdistill.a
BIN       := $(BUILD)/hdistill

.PHONY: all test test-slurm test-cluster check-layers bench bench-scale bench-train bench-decode bench-client bench-memory bench-ckpt bench-round ablation clean deps tests quickstart install uninstall FORCE
.PHONY: test-asan test-tsan fuzz fuzz-targets fuzz-run
all: $(BIN)

VERSION   := 0.1.0
GIT_SHA   := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)
CFLAGS    += -I$(BUILD)
# version.h changes only when the SHA does, so prov.o is rebuilt only then
$(BUILD)/version.h: FORCE | $(BUILD)/obj
	@printf '#define HDISTILL_GIT_SHA "%s"\n#define HDISTILL_VERSION "%s"\n' '$(GIT_SHA)' '$(VERSION)' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@
$(BUILD)/obj/io/prov.o: $(BUILD)/version.h

$(BUILD)/obj/%.o: src/%.c | $(BUILD)/obj
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@
$(LIB): $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^
$(BIN): $(BUILD)/obj/main.o $(LIB)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)
$(BUILD)/tests/%: tests/unit/%.c $(LIB) | $(BUILD)/tests
	$(CC) $(CFLAGS) $(DEPFLAGS) -Itests/unit $< $(LIB) -o $@ $(LDLIBS)
$(BUILD)/bench/%: bench/%.c $(LIB) | $(BUILD)/bench
	$(CC) $(CFLAGS) $(DEPFLAGS) $< $(LIB) -o $@ $(LDLIBS)
$(BUILD)/obj $(BUILD)/tests $(BUILD)/bench:
	mkdir -p $@

tests: $(BIN) $(TEST_BIN)
test: tests
	tests/run_all.sh

# includes go only down the layers (base < engine < io < llm < standin < stages), no
# function over 150 lines (both also run by make test)
check-layers:
	tools/check_layers.sh
	/usr/bin/python3 tools/check_functions.py 150

# the jobs/ scripts on a private one-node Slurm cluster (also part of make test)
test-slurm: tests
	tests/run_all.sh t_slurm

# hdistill across the nodes of a private 3-node Slurm cluster made of network
# namespaces on this machine (also part of make test; needs root, else skipped)
test-cluster: tests
	tests/run_all.sh t_multinode

# AddressSanitizer + UndefinedBehaviorSanitizer build of the library, the unit
# tests and the program in build-asan/, then every unit test and a short
# end-to-end run (1 rank and mpirun -np 2) with leak detection
# (tests/asan/run.sh, suppressions tests/asan/lsan.supp; tests/README.md)
ASAN_BUILD := build-asan
ASAN_OPT   := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
test-asan:
	$(MAKE) BUILD=$(ASAN_BUILD) OPT='$(ASAN_OPT)' tests
	tests/asan/run.sh $(ASAN_BUILD)

# ThreadSanitizer build in build-tsan/ and the unit test of the threaded MPI
# code (gradsync's progress thread; 2 ranks) under it, with Open MPI's own
# reports suppressed (tests/tsan/tsan.supp; tests/README.md)
TSAN_BUILD := build-tsan
TSAN_OPT   := -O1 -g -fno-omit-frame-pointer -fsanitize=thread
test-tsan:
	$(MAKE) BUILD=$(TSAN_BUILD) OPT='$(TSAN_OPT)' $(TSAN_BUILD)/tests/test_gradsync_progress
	TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan/tsan.supp halt_on_error=1" $(TSAN_BUILD)/tests/test_gradsync_progress
# TSan instruments the IFUNC resolvers of the kernels' target_clones, which the loader runs before TSan
# is set up (a crash at start): the kernels stay uninstrumented in that build
ifneq ($(findstring sanitize=thread,$(OPT)),)
$(BUILD)/obj/engine/ops.o $(BUILD)/obj/engine/ops_llama.o: CFLAGS += -fno-sanitize=thread
endif

# libFuzzer targets tests/fuzz/fuzz_*.c (clang) over the library built with
# coverage, ASan and UBSan in build-fuzz/; make fuzz-run runs each for
# FUZZ_SECONDS on its corpus tests/fuzz/corpus/<target>/, FUZZ_JOBS at a time
# (tests/fuzz/run.sh; tests/README.md)
FUZZ_BUILD   := build-fuzz
FUZZ_CC      ?= clang
FUZZ_OPT     := -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
FUZZ_SECONDS ?= 10
FUZZ_JOBS    ?= 1
FUZZ_SRC     := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN     := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
fuzz:
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) OPT='$(FUZZ_OPT)' fuzz-targets
fuzz-targets: $(FUZZ_BIN)
$(BUILD)/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(DEPFLAGS) -Itests/fuzz $< $(LIB) -o $@ $(LDLIBS)
fuzz-run: fuzz
	FUZZ_JOBS=$(FUZZ_JOBS) tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)
-include $(FUZZ_BIN:=.d)

bench: bench-train bench-decode bench-client
bench-train: $(BIN) $(BENCH_BIN)
	bench/train.sh
bench-decode: $(BIN) $(BENCH_BIN)
	bench/decode.sh
bench-client: $(BIN) $(BENCH_BIN)
	bench/client.sh
# sharded checkpoint writes (parallel HDF5) of a 0.5B-parameter state vs dd on the same disk (~6 GB written)
bench-ckpt: $(BENCH_BIN)
	bench/ckpt.sh
# peak RSS per rank of qwen2.5-0.5b training on 2 ranks (about 9 GiB each; not part of make bench)
bench-memory: $(BIN) $(BENCH_BIN)
	bench/memory.sh
# step time of gpt2-124m and qwen2.5-0.5b on 2 nodes of the test cluster: link unshaped vs tbf-shaped,
# train.overlap=0 vs 1, with and without the progress thread (needs root; about 30 minutes,
# 2 x 9 GiB for qwen2.5-0.5b; SCALE_PRESETS=gpt2-124m about 6; not part of make bench)
bench-scale: $(BIN)
	bench/scale.sh
# one critique round, the critic (stand-in, 500 ms per answer) overlapped with the sampling vs after it
# (critique.pipeline=1 vs 0, 3 times each: about 7 minutes; ROUND_TINY=1 checks the script; not part of make bench)
bench-round: $(BIN)
	bench/round.sh
# the five critique objectives x 3 seeds on the stand-in (about 5 minutes on 2 cores)
ablation: $(BIN)
	bench/ablation.sh

deps:
	tools/deps.sh

# installs what is missing, builds, and runs the whole method on the built-in
# stand-in endpoint: ingest -> teach -> SFT -> DPO rounds -> evaluation
quickstart:
	tools/deps.sh
	$(MAKE) all
	OMP_NUM_THREADS=1 mpirun --allow-run-as-root --oversubscribe -np 2 $(BIN) run configs/quickstart.json
	$(BIN) report runs/quickstart
	/usr/bin/python3 analysis/train_curves.py runs/quickstart --png runs/quickstart/loss.png

# make install PREFIX=DIR [DESTDIR=STAGE]: bin/hdistill, lib/libhdistill.a,
# lib/pkgconfig/hdistill.pc, include/hdistill/<layer>/*.h and share/hdistill/
# (configs, jobs, analysis, docs, README.md, install-manifest.txt); make
# uninstall removes what the manifest lists (packaging/install.sh)
PREFIX    ?= /usr/local
DESTDIR   ?=
install: $(BIN) $(LIB) $(BUILD)/hdistill.pc
	PREFIX='$(PREFIX)' DESTDIR='$(DESTDIR)' BUILD='$(BUILD)' packaging/install.sh install
uninstall:
	PREFIX='$(PREFIX)' DESTDIR='$(DESTDIR)' packaging/install.sh uninstall

# hdistill.pc for PREFIX: a static library, so Libs carries the libraries of
# PKGS as this build resolved them (nothing to find again at link time); the
# headers include only standard headers.  Rewritten only when it changes.
$(BUILD)/hdistill.pc: FORCE | $(BUILD)/obj
	@printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib' 'includedir=$${prefix}/include' '' \
	  'Name: hdistill' 'Description: humor distillation from an LLM into a small student (static library)' \
	  'Version: $(VERSION)' 'Cflags: -I$${includedir}/hdistill -I$${includedir}' \
	  'Libs: -L$${libdir} -lhdistill $(strip $(LDLIBS))' > $@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

clean:
	rm -rf $(BUILD)

-include $(LIB_OBJ:.o=.d) $(BUILD)/obj/main.d $(TEST_BIN:=.d) $(BENCH_BIN:=.d)

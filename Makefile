# The README's two commands:
#   make demo   install dependencies, build, run the federated demo on the built-in phantom data
#   make test   install dependencies, build, run the whole test suite
# Everything else here is a step of those two.

BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
DEMO_OUT ?= demo-out
EXPERIMENTS_OUT ?= bench-out/experiments
# e.g. EXPERIMENTS_ARGS=--quick (a CI smoke size), or --steps/--folds/--subjects
EXPERIMENTS_ARGS ?=
# LibTorch's OpenMP threads busy-wait by default; on a shared 2-core machine that made training
# ~10x slower (bench/model_bench.cc). It must be set before the library loads.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: demo experiments scarce-site test deps configure build format format-check clean

demo: build
	scripts/demo.sh --build-dir "$(BUILD_DIR)" --out "$(DEMO_OUT)"

# The scheme comparison, scarcity curve and plots of docs/results.md (about 1.5 hours on 2 cores).
experiments: build
	/usr/bin/python3 bench/experiments/run_experiments.py --build-dir "$(BUILD_DIR)" \
	  --out "$(EXPERIMENTS_OUT)" $(EXPERIMENTS_ARGS)

# Does the scarce site gain by joining? Four sites, folds x seeds (docs/results.md; ~1.5 h on 2 cores).
# The larger budget of docs/results.md: SCARCE_ARGS="--rounds 50 --personal-steps 100
# --test-subjects 6 --baselines central" (the 9 target units alone took 89 min).
SCARCE_OUT ?= bench-out/scarce-site
SCARCE_ARGS ?=
scarce-site: build
	/usr/bin/python3 bench/experiments/scarce_site.py --build-dir "$(BUILD_DIR)" \
	  --out "$(SCARCE_OUT)" $(SCARCE_ARGS)

test: build
	ctest --test-dir "$(BUILD_DIR)" -j$(JOBS) --output-on-failure --timeout 900

deps:
	scripts/install-deps.sh

configure: deps
	@if [ ! -f "$(BUILD_DIR)/build.ninja" ]; then \
	  cmake -S . -B "$(BUILD_DIR)" -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE); \
	fi

build: configure
	cmake --build "$(BUILD_DIR)" -j$(JOBS)

format:
	git ls-files '*.h' '*.cc' | xargs clang-format -i

format-check:
	git ls-files '*.h' '*.cc' | xargs clang-format --dry-run --Werror

clean:
	rm -rf "$(BUILD_DIR)"

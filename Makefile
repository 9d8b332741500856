# segval — two commands on a fresh clone:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
export NO_ALBUMENTATIONS_UPDATE := 1
export WANDB_MODE ?= offline
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install install-test demo test test-fast bench interop clean

# torch first, pinned: the CPU wheel (a bare `torch` would pull a multi-GB CUDA build).
$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.torch: $(BIN)/activate
	$(BIN)/python -m pip install -q "torch==$(TORCH_VERSION)"
	touch $@

$(VENV)/.installed: $(VENV)/.torch pyproject.toml
	$(BIN)/python -m pip install -q -e ".[demo]"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[demo,test]"
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

DEMO_RUN ?= outputs/demo/$(shell date +%Y-%m-%d_%H-%M-%S)

## demo: the whole loop on CPU, offline (`segval demo run`, each stage a real segval command): render demo
## tabletop data, inject known label errors, QA, train a small SegFormer, analyze, relabel queue with SAM 2
## proposals, an oracle answers it with the clean truth, import as a new version, retrain, compare, gate,
## the annotation guideline of the new version; prints errors injected / found in the queue, mIoU before ->
## after, per-class deltas, the gate verdict and where the guideline is
demo: install
	$(BIN)/segval demo run hydra.run.dir=$(DEMO_RUN)

## test: install test dependencies when missing, run the whole suite
test: install-test
	OMP_NUM_THREADS=2 $(BIN)/python -m pytest tests

test-fast: install-test
	$(BIN)/python -m pytest tests -m "not slow"

bench: install-test
	$(BIN)/python benchmarks/train_overhead.py
	$(BIN)/python benchmarks/loader.py

## interop: real tools in the loop, not part of `make test` (they install large tools: Label Studio and Datumaro
## into throwaway venvs under .interop/, Chromium from Debian): a Label Studio server round trip, CVAT's importer
## (Datumaro) both ways, segval's HTML pages in headless Chromium; each prints its figures and a PASS|FAIL line
INTEROP_SCRIPTS := labelstudio_roundtrip datumaro_check browser_check
interop: install-test
	@if [ ! -x /usr/bin/chromium ]; then apt-get update -q && apt-get install -y -q chromium; fi
	@rc=0; for s in $(INTEROP_SCRIPTS); do OMP_NUM_THREADS=2 $(BIN)/python scripts/interop/$$s.py || rc=1; done; exit $$rc

clean:
	rm -rf $(VENV) outputs build *.egg-info

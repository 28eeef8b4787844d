# openiai: `make serve` and `make test` are the two commands a fresh machine needs.
# Python 3.11 is required (pyproject: >=3.11,<3.12); override with `make PY=/path/to/python3.11`.
PY ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test install eval bench calibrate heads clean

$(STAMP): pyproject.toml
	@test -n "$(PY)" || { echo "Python 3.11 not found; install it or run make PY=/path/to/python3.11"; exit 1; }
	@$(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
		{ echo "$(PY) is not Python 3.11; run make PY=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "Installing openiai and its dependencies into $(VENV) (first run only)..."
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Creates ./data (OPENIAI_DATA_DIR) and, on the first start, an account `default` with a key
# that is printed with a Python SDK example; serves on OPENIAI_HOST:OPENIAI_PORT
# (127.0.0.1:8000 by default).
serve: $(STAMP)
	$(BIN)/openiai serve

# The import-linter contracts (pyproject: layers only point down, no module cycles) first.
test: $(STAMP)
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q tests/

eval: $(STAMP)
	$(BIN)/openiai eval lfw
	$(BIN)/openiai eval attributes

calibrate: $(STAMP)
	$(BIN)/openiai calibrate

bench: $(STAMP)
	$(BIN)/openiai bench search --n 100000 --n 1000000
	$(BIN)/openiai bench startup --n 1000000
	$(BIN)/openiai bench api
	$(BIN)/openiai bench attributes

# Re-trains the attribute heads shipped in openiai/vision/trained/ from the shared labelled
# sets (scikit-learn comes with the `train` extra; the server never trains).
heads: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[train]'
	$(BIN)/python tools/train_attribute_heads.py
	$(BIN)/python tools/train_age_gender.py --mask
	$(BIN)/python tools/train_smile_mouth.py

clean:
	rm -rf $(VENV) build *.egg-info

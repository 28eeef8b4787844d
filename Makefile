# openiai: `make serve` and `make test` are the two commands a fresh machine needs.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test install eval bench calibrate clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY)"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

serve: $(STAMP)
	$(BIN)/openiai serve

test: $(STAMP)
	$(BIN)/python -m pytest -q

eval: $(STAMP)
	$(BIN)/openiai eval lfw

calibrate: $(STAMP)
	$(BIN)/openiai calibrate

bench: $(STAMP)
	$(BIN)/openiai eval lfw

clean:
	rm -rf $(VENV) build *.egg-info

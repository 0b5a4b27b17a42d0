# The README's two commands: `make up` and `make test`. Each builds .venv when it is missing.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: up test lint demo schemas

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet --editable '.[embedded,test]'
	touch $(STAMP)

up: $(STAMP)
	$(VENV)/bin/kizashi up

test: $(STAMP)
	sh deploy/install-test-tools.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -p no:cacheprovider --durations=30

demo: $(STAMP)
	$(VENV)/bin/kizashi demo

schemas: $(STAMP)
	$(VENV)/bin/kizashi schemas --write

# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000

# Secrets for the test run only: tests never read a developer's .env secrets.
TEST_ENV := SECRET_KEY=test-secret-key-not-for-production \
	JWT_KEY_ENCRYPTION_KEYS=dGVzdC1vbmx5LWZlcm5ldC1rZXktMzItYnl0ZXMhISE= \
	DEBUG=False DJANGO_READ_DOT_ENV=0

.PHONY: run test lint format serve bench clean install install-dev

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(VENV)/bin/activate
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(VENV)/bin/activate
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

.env:
	$(PY) scripts/new_env.py

## run: venv, install, .env with fresh secrets, migrate (first signing key), serve on http://127.0.0.1:8000
run: $(VENV)/.installed .env
	$(PY) manage.py migrate --no-input
	$(PY) manage.py runserver $(HOST):$(PORT)

## serve: production-style server (gunicorn, gunicorn.conf.py)
serve: $(VENV)/.installed .env
	$(PY) manage.py migrate --no-input
	$(PY) manage.py collectstatic --no-input --verbosity 0
	$(VENV)/bin/gunicorn -c gunicorn.conf.py config.wsgi

## test: install dev requirements and run the whole suite on $$DATABASE_URL (SQLite by default)
test: $(VENV)/.installed-dev
	env $(TEST_ENV) $(PY) -m pytest $(PYTEST_ARGS)

## lint: ruff (lint + format check) and mypy
lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	env $(TEST_ENV) $(VENV)/bin/mypy .

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

## bench: load benchmark against gunicorn on PostgreSQL (see bench/README.md)
bench: $(VENV)/.installed-dev
	$(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache staticfiles

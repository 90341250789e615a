# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: install run test lint format worker beat clean

$(STAMP): pyproject.toml
	rm -f $(VENV)/.installed-*
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Serve the application on http://127.0.0.1:8000 (development profile, SQLite).
run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py sandbox_migrate
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py runserver 127.0.0.1:8000

## Run the whole test suite (PostgreSQL/Redis tests run when DATABASE_URL/REDIS_URL point at them).
test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Celery worker and beat (need REDIS_URL).
worker: $(STAMP)
	$(BIN)/celery -A config worker --loglevel INFO --queues slotpay

beat: $(STAMP)
	$(BIN)/celery -A config beat --loglevel INFO

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache

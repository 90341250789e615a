# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip --disable-pip-version-check
# Every runtime and dev dependency, pinned with the hash of each file (make lock).
LOCK := requirements.lock
# A new lock or pyproject.toml means a new stamp, so the next target reinstalls.
STAMP := $(VENV)/.installed-$(shell cat $(LOCK) pyproject.toml | cksum | cut -d' ' -f1)

# What bandit scans: the packages that ship (pyproject's packages.find), deploy/, manage.py.
SHIPPED := config core accounts audit bookings payments webhooks sandbox deploy manage.py

.PHONY: install lock audit-deps bandit run test lint format worker beat clean

$(STAMP): $(LOCK) pyproject.toml
	rm -f $(VENV)/.installed-*
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --require-hashes -r $(LOCK)
	# The project itself: its dependencies came from the lock, and so did setuptools,
	# which builds it here (no unpinned build environment is downloaded).
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

## Re-resolve requirements.lock from pyproject.toml, hashes included; then commit it.
## Versions already locked are kept: LOCK_ARGS=--upgrade moves everything to the newest
## allowed, LOCK_ARGS="--upgrade-package NAME" one package.
lock: $(STAMP)
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --generate-hashes \
	  --allow-unsafe --strip-extras --extra dev --no-emit-index-url --no-emit-find-links \
	  $(LOCK_ARGS) --output-file $(LOCK) pyproject.toml

## Known vulnerabilities in the locked packages (pip-audit). Fails when some are found
## and when it could not check ("could not check: the vulnerability service is
## unreachable"): .ci/audit_deps.py exits 1 and 2 for them, make 2 for either.
audit-deps: $(STAMP)
	$(BIN)/python .ci/audit_deps.py $(LOCK)

## Static security analysis of the code that ships (configuration: [tool.bandit]).
bandit: $(STAMP)
	$(BIN)/bandit -q -c pyproject.toml -r $(SHIPPED)

## Serve the application on http://127.0.0.1:8000 (development profile, SQLite).
run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py sandbox_migrate
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py runserver 127.0.0.1:8000

## Run the whole test suite (PostgreSQL/Redis tests run when DATABASE_URL/REDIS_URL point at them),
## one pytest-xdist worker per core (TEST_WORKERS=0: in this process, one test at a time).
TEST_WORKERS ?= auto
test: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/bandit -q -c pyproject.toml -r $(SHIPPED)

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

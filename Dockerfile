# One image for every callmatch process: the receiver (api), the worker, beat and flower.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

# Build and install from /src, then drop the source: every process imports the installed
# package, exactly as tests/test_packaging.py runs a plain install (which reads the COPY
# lines above `RUN pip install` as its build context). Only the runtime dependencies and
# the ops extra (flower) are installed, never the dev extra.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY adapters ./adapters
RUN pip install '.[ops]' && pip check && rm -rf /src

WORKDIR /app
COPY config ./config

RUN useradd --system --uid 10001 callmatch && mkdir -p /metrics && chown callmatch /metrics
USER callmatch

ENV CALLMATCH_TENANTS=/app/config/tenants.yaml \
    CALLMATCH_HOST=0.0.0.0 \
    CALLMATCH_PORT=8000
EXPOSE 8000
CMD ["python", "-m", "worker.ingest.server"]

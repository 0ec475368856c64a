# Tuanlian (团联) — the entry points. Needs only Python 3.11+ and make: uv is bootstrapped
# into .tools/ from PyPI, and uv builds the locked environment (.venv) from uv.lock.
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)

.PHONY: env run test bench up lint docs clean

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv

# --compile-bytecode: the sandboxes and CI set PYTHONDONTWRITEBYTECODE, so without it every process
# (each test's service or CLI subprocess, a rebuild's reader) compiled its imports anew: ~3 s of CPU
# each, the first ~3 s of a rebuild.
env: $(if $(findstring .tools,$(UV)),.tools/bin/uv)
	$(UV) sync --frozen --quiet --compile-bytecode

run: env
	$(UV) run --frozen tuanlian run

test: env
	$(UV) run --frozen pytest

bench: env
	$(UV) run --frozen python benchmarks/run.py

up:
	docker compose -f deploy/docker-compose.yml up --build

lint: env
	$(UV) run --frozen ruff check .
	$(UV) run --frozen mypy shared/src cli/src services/contacts/src services/wishes/src services/scoring/src services/notify/src

docs: env
	for s in contacts wishes scoring notify; do $(UV) run --frozen tuanlian asyncapi $$s; done

clean:
	rm -rf .venv .tools

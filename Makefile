# edgematte: `make demo` runs the main job on built-in defaults, `make test` runs the tests.
# Both create .venv with Python 3.10 (paddlelite has wheels up to cp310 only) and install the pinned set.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
LOCK   := requirements/lock.txt
STAMP  := $(VENV)/.installed
OUT    ?= out/demo
# Tests run in two pytest-xdist workers (the machines have 2 cores), one test file per worker at a time so a
# file's module fixtures (a conversion) are built once. `make test PYTEST_ARGS="-k zoo"` runs one process.
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: help demo test test-python test-java venv clean

help:
	@echo "make demo   PP-MattingV2 (official weights, else seeded): convert (incl. INT8), check, matte, benchmark; outputs in $(OUT)/"
	@echo "make test   lint (ruff), then the test suite (Python and the Android core on the host JVM)"
	@echo "make venv   only create .venv and install the pinned toolchain"

# Python 3.10: on PATH if it runs, else the newest pyenv 3.10.x.
define find_python310
	if command -v python3.10 >/dev/null 2>&1 && python3.10 -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then \
		command -v python3.10; \
	elif command -v pyenv >/dev/null 2>&1 && ls -d "$$(pyenv root)"/versions/3.10.*/bin/python >/dev/null 2>&1; then \
		ls -d "$$(pyenv root)"/versions/3.10.*/bin/python | sort -V | tail -n 1; \
	fi
endef

$(PY):
	@py=$$($(find_python310)); \
	if [ -z "$$py" ]; then \
		echo "error: Python 3.10 not found. Install it (Debian/Ubuntu: 'apt install python3.10 python3.10-venv', or 'pyenv install 3.10') and re-run." >&2; \
		exit 1; \
	fi; \
	echo "creating $(VENV) with $$py"; \
	"$$py" -m venv $(VENV)

# Reinstall only when the pins or the package metadata change.
$(STAMP): $(PY) $(LOCK) setup.cfg pyproject.toml
	$(PY) -m pip install --quiet --disable-pip-version-check -c $(LOCK) -e '.[convert,fg,test]'
	$(PY) -m pip check
	@touch $(STAMP)

venv: $(STAMP)

test: test-python test-java

# The ssh/qemu bench-target and adb tests need sshd, qemu-user-static and adb: installed here when missing and
# possible (root + apt-get); otherwise those tests skip with the reason (and fail under CI=true).
test-python: $(STAMP)
	-@bash .ci/setup-test-hosts.sh
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

# The Android app's pure-Java core: compiled and its JUnit tests run on the host JVM against the
# Python runtime's golden vectors (installs Debian's JDK/junit4 when missing and possible).
test-java: $(STAMP)
	bash android_demo/host-test.sh --python $(PY)

# The main job on built-in defaults: PP-MattingV2 -> every artefact incl. INT8, checked -> mattes -> benchmark.
# Weights: the official checkpoint (`edgematte zoo fetch`: cached, or downloaded with DEMO_FETCH_TIMEOUT-second
# connect/read timeouts so a machine without a network falls back at once); without it (no network,
# EDGEMATTE_OFFLINE=1, a refused download) seeded weights, said at the start, at the end and in $(OUT)/demo.md.
DEMO_FETCH_TIMEOUT ?= 10
EM := $(VENV)/bin/edgematte

demo: $(STAMP)
	@set -e; mkdir -p $(OUT); \
	if checkpoint=$$(EDGEMATTE_FETCH_TIMEOUT=$${EDGEMATTE_FETCH_TIMEOUT:-$(DEMO_FETCH_TIMEOUT)} $(EM) zoo fetch ppmattingv2); then \
		weights="--pretrained"; \
		note="weights: the official PP-MattingV2 checkpoint ($$checkpoint)"; \
	else \
		weights="--seed 0"; \
		note="weights: SEEDED (--seed 0), no official checkpoint: these mattes are not meaningful; fetch the real weights with 'edgematte zoo fetch ppmattingv2' (needs the network; see docs/weights.md) and run make demo again"; \
	fi; \
	echo "demo $$note"; \
	set -x; \
	$(EM) convert ppmattingv2 $$weights --int8 -o $(OUT)/ppmattingv2; \
	$(EM) runtime samples -o $(OUT)/samples; \
	$(EM) matte $(OUT)/samples --model $(OUT)/ppmattingv2 --background blur --save alpha,composite -o $(OUT)/mattes; \
	$(EM) bench $(OUT)/ppmattingv2 --threads 2 --runs 10 --warmup 2 -o $(OUT)/bench; \
	{ set +x; } 2>/dev/null; \
	printf '%s\n' "# edgematte demo" "" "- $$note" \
		"- conversion: ppmattingv2/report.md (its source line names the weights: pretrained=URL and sha256, or seed=0)" \
		"- mattes: mattes/; benchmark: bench/bench.md" > $(OUT)/demo.md; \
	echo "demo $$note"; \
	echo "demo outputs: $(OUT)/demo.md, $(OUT)/ppmattingv2/report.md, $(OUT)/mattes/, $(OUT)/bench/bench.md"

clean:
	rm -rf $(VENV) out .pytest_cache

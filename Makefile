# Two commands matter: `make run` and `make test`. Both install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
LOCK   := requirements/dev.lock
SYSTEM_STAMP := .cache/system-deps-stamp

# Debian packages the tests need: a real browser, a real X server and tools to drive it;
# HAProxy and a redis-server of their own for the several-node tests (tests/live).
DEBIAN_PACKAGES := chromium xvfb xdotool x11-utils x11-xkb-utils xauth x11vnc x11-xserver-utils imagemagick \
	haproxy redis-server openssl

NPM_STAMP := node_modules/.installed-stamp

# The one-file Support client that `make test` runs (the Chromium story test downloads it
# from the server): rebuilt when it is missing or older than what it is made of, which is
# the package less the server's parts (support/build.py leaves those out of it too).
SUPPORT_CLIENT_STAMP := dist/.support-client-stamp
SUPPORT_CLIENT_SOURCES := pyproject.toml $(shell find src/fjernhjelp \
	\( -path src/fjernhjelp/server -o -path src/fjernhjelp/web -o -path src/fjernhjelp/db \
	   -o -path src/fjernhjelp/portal -o -path src/fjernhjelp/cli \) -prune \
	-o -type f \( -name '*.py' -o -name '*.toml' -o -name '*.txt' \) -print)

# `make deb`: the fjernhjelp-server and fjernhjelp-agent .deb files (docs/packaging.md),
# rebuilt when what they are made of changed. Debian's packaging tools come from apt-get;
# debootstrap makes the throwaway Debian (.cache/deb-root) that tests/packaging installs
# them into (once: a few minutes).
DEB_TOOLS := debhelper dpkg-dev fakeroot lintian debootstrap
DEB_STAMP := dist/deb/.stamp
DEB_ROOT := .cache/deb-root/.complete
DEB_SOURCES := pyproject.toml scripts/deb.sh $(shell find src/fjernhjelp packaging -type f \
	! -name '*.pyc' -print)

.PHONY: run serve test test-sqlite test-deps lint lock advisories audit security-doc fuzz bench bench-desktop bench-support bench-relay bench-relay-cost bench-fleet system-deps npm-deps clean support-client deb deb-tools deb-root

run: $(STAMP) npm-deps
	$(BIN)/fjernhjelp demo

serve: $(STAMP) npm-deps
	$(BIN)/fjernhjelp serve

# Exactly the audited versions: every package of requirements/dev.lock (the server's
# dependencies and the dev, desktop and build extras, pip and setuptools too), each file
# checked against its hash; then this checkout itself, editable, adding nothing (setuptools
# from the lock builds it, so no unlocked build environment is fetched either).
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@$(BIN)/pip check || { echo "requirements/dev.lock lacks what pyproject.toml asks for: make lock"; exit 1; }
	touch $@

# Refreshes the lock from pyproject.toml (after changing a dependency: the pins it can keep
# stay; LOCK_FLAGS=--upgrade takes the newest of everything), then the advisory snapshot's
# list of packages must follow: see `make advisories`. pip-tools runs from a venv of its
# own, not .venv: .venv is installed from the lock, which is what is out of date here.
# pip-compile keeps a dependency only if its marker holds for the interpreter pip-compile
# runs on, so the lock is made with the one the .deb files run on, Debian's python3.11
# (3.11.2 in bookworm), where it is installed: redis needs async-timeout below 3.11.3.
LOCK_VENV := .cache/lock-venv
LOCK_FLAGS ?=
LOCK_PYTHON ?= $(or $(wildcard /usr/bin/python3.11),$(PYTHON))
lock:
	$(LOCK_PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet 'pip-tools>=7.4'
	$(LOCK_VENV)/bin/pip-compile --quiet $(LOCK_FLAGS) --generate-hashes --allow-unsafe \
	  --strip-extras --no-emit-index-url --no-emit-find-links \
	  --extra dev --extra desktop --extra build -o $(LOCK) pyproject.toml

# The advisory snapshot `make audit` reads offline (security/advisories/, docs/SECURITY.md
# "Dependencies"): records for exactly the packages of the two lock files, from a checkout
# of the PyPA advisory database (ADVISORY_DB=path) and PyPI's JSON API.
ADVISORY_DB ?=
advisories: $(STAMP)
	$(BIN)/python scripts/advisory_snapshot.py --pypa-db "$(ADVISORY_DB)"

system-deps: $(SYSTEM_STAMP)

$(SYSTEM_STAMP):
	@missing=""; \
	for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@mkdir -p $(dir $@) && touch $@

# Browser libraries (noVNC, xterm.js) from the npm registry, at the versions in package-lock.json.
npm-deps: $(NPM_STAMP)

# Node.js and npm fetch the browser libraries the server serves (make run needs them too).
# Machines that ship Node.js from NodeSource have npm inside it; Debian splits the two.
$(NPM_STAMP): package.json package-lock.json
	@command -v npm >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# What the suite needs built. `make -j2 test-deps` builds them two at a time (as .ci/run
# does): debootstrap's Debian overlaps the Support client and the packages. Run the Debian
# and npm steps first on their own (`make system-deps deb-tools npm-deps`): apt-get holds
# a lock that a second apt-get fails on.
TEST_DEPS := $(STAMP) system-deps npm-deps $(SUPPORT_CLIENT_STAMP) $(DEB_STAMP) $(DEB_ROOT)

test-deps: $(TEST_DEPS)

test: $(TEST_DEPS)
	scripts/test.sh

test-sqlite: $(TEST_DEPS)
	FJERNHJELP_TEST_BACKENDS=sqlite scripts/test.sh

# mypy's settings (which files, how strict) live in pyproject.toml; its incremental cache
# in .mypy_cache makes a second run quick.
lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

# Known vulnerabilities in requirements/dev.lock and package-lock.json: the committed
# advisory snapshot offline, and PyPI, pip-audit and npm audit wherever they answer. Fails on
# a finding not in security/audit-allow.toml (exit 1); a package no fresh source covered is
# exit 3, "not audited" (.ci/run warns on that unless FJERNHJELP_AUDIT_REQUIRED=1).
audit: $(STAMP)
	$(BIN)/python scripts/audit.py

# docs/SECURITY.md's authorisation matrix, printed from the table the test holds.
security-doc: $(STAMP)
	$(BIN)/python -m tests.authz.table --write docs/SECURITY.md

# Every protocol fuzz target (tests/fuzz) for FUZZ_SECONDS each; prints inputs tried and
# exec/s per target, exits 1 on a finding (kept in .cache/fuzz/findings). atheris where it
# installs (the `fuzz` extra), else hypothesis. The CI suite runs a short pass of each.
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	@$(BIN)/python -c "import atheris" 2>/dev/null || $(BIN)/pip install --quiet -e '.[fuzz]' \
	  || echo "atheris does not install here: fuzzing with hypothesis"
	FUZZ_SECONDS=$(FUZZ_SECONDS) $(BIN)/python -m tests.fuzz

bench: $(STAMP)
	$(BIN)/python bench/login.py

# 20,000 simulated agents across 2 nodes behind HAProxy (Debian's), PostgreSQL and Redis
# on 127.0.0.1 as for the tests; ratios to bare websockets servers in the same run.
bench-fleet: $(STAMP)
	@dpkg -s haproxy >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >/dev/null)
	$(BIN)/python bench/fleet.py

bench-desktop: $(STAMP) system-deps npm-deps
	$(BIN)/python bench/desktop.py

# The relay under load: 50 desktop sessions, then with 2 bulk copies through the same
# node; and its CPU per GB against a bare websockets relay (docs/BENCHMARKS.md, "Relay").
bench-relay: $(STAMP)
	$(BIN)/python bench/relay_load.py --relay all

bench-relay-cost: $(STAMP)
	$(BIN)/python bench/relay_cost.py

# A Support session's start (code entered to first frame) against an Access session's,
# real server, agent and one-time client on Xvfb (docs/BENCHMARKS.md, "Support").
bench-support: $(STAMP) system-deps
	$(BIN)/python bench/support.py

# The end user's one-time Support client, one executable file (docs/support-client.md),
# which is also the agent's one-file installer once the portal appends a package to it
# (docs/agent.md, "One file from the portal"):
# PyInstaller from the `build` extra; binutils' objcopy puts the archive in an ELF section.
# About a minute on a 2-core machine. The file is generic: the server stamps it when served.
support-client: $(STAMP)
	@command -v objcopy >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends binutils >/dev/null; }
	$(BIN)/python -m fjernhjelp.support.build --out dist

$(SUPPORT_CLIENT_STAMP): $(STAMP) $(SUPPORT_CLIENT_SOURCES)
	$(MAKE) support-client
	touch $@

deb-tools:
	@missing=""; \
	for p in $(DEB_TOOLS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

deb: $(STAMP) deb-tools npm-deps $(SUPPORT_CLIENT_STAMP)
	scripts/deb.sh

$(DEB_STAMP): $(STAMP) $(SUPPORT_CLIENT_STAMP) $(NPM_STAMP) $(DEB_SOURCES)
	$(MAKE) deb
	touch $@

deb-root: $(DEB_ROOT)

$(DEB_ROOT):
	$(MAKE) deb-tools
	scripts/deb-root.sh .cache/deb-root

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache node_modules dist

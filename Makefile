# Two commands matter: `make run` and `make test`. Both install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
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

.PHONY: run serve test test-sqlite lint audit security-doc fuzz bench bench-desktop bench-support system-deps npm-deps clean support-client

run: $(STAMP) npm-deps
	$(BIN)/fjernhjelp demo

serve: $(STAMP) npm-deps
	$(BIN)/fjernhjelp serve

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,desktop]'
	touch $@

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

test: $(STAMP) system-deps npm-deps $(SUPPORT_CLIENT_STAMP)
	scripts/test.sh

test-sqlite: $(STAMP) system-deps npm-deps $(SUPPORT_CLIENT_STAMP)
	FJERNHJELP_TEST_BACKENDS=sqlite scripts/test.sh

# mypy's settings (which files, how strict) live in pyproject.toml; its incremental cache
# in .mypy_cache makes a second run quick.
lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

# Known vulnerabilities in .venv's Python packages (pip-audit; there is no lock file) and in
# package-lock.json (npm audit). Fails on a finding not in security/audit-allow.toml (exit 1),
# and on a run that could not check everything (exit 3: no vulnerability service answering;
# .ci/run warns on that unless FJERNHJELP_AUDIT_REQUIRED=1).
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

bench-desktop: $(STAMP) system-deps npm-deps
	$(BIN)/python bench/desktop.py

# A Support session's start (code entered to first frame) against an Access session's,
# real server, agent and one-time client on Xvfb (docs/BENCHMARKS.md, "Support").
bench-support: $(STAMP) system-deps
	$(BIN)/python bench/support.py

# The end user's one-time Support client, one executable file (docs/support-client.md):
# PyInstaller from the `build` extra; binutils' objcopy puts the archive in an ELF section.
# About a minute on a 2-core machine. The file is generic: the server stamps it when served.
support-client: $(STAMP)
	@command -v objcopy >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends binutils >/dev/null; }
	$(BIN)/pip install --quiet -e '.[build]'
	$(BIN)/python -m fjernhjelp.support.build --out dist

$(SUPPORT_CLIENT_STAMP): $(STAMP) $(SUPPORT_CLIENT_SOURCES)
	$(MAKE) support-client
	touch $@

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache node_modules dist

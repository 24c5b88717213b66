#!/usr/bin/env bash
# `make deb`: the fjernhjelp-server and fjernhjelp-agent .deb files in dist/deb/, built by
# dpkg-buildpackage (debhelper) from packaging/debian/, then checked with lintian.
#
# What goes in: each package holds a private virtual environment in /usr/lib/<package>,
# made with the Debian python3.11 both depend on (not the python3 that runs this script)
# from the project's wheel and, for its dependencies, exactly the lines of
# requirements/dev.lock it needs (scripts/lock_subset.py), installed with --require-hashes:
# what ships is what `make audit` checked and the tests ran with. Why: docs/packaging.md. The server package also gets the browser libraries (node_modules, as
# `npm ci` installed them) and the one-file Support client (`make support-client`).
#
# DEB_VERSION overrides the version (default: pyproject.toml's); DEB_OUT the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="$PWD/.venv/bin"
OUT="${DEB_OUT:-dist/deb}"
TARGET_PYTHON=/usr/bin/python3.11

version="${DEB_VERSION:-$($BIN/python -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')}"
work="$PWD/.cache/deb-build"
src="$work/fjernhjelp-$version"
rm -rf "$work"
mkdir -p "$src" "$OUT"
cp -a packaging/debian "$src/debian"

# The date of the last commit, so two builds of one commit say the same.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
cat >"$src/debian/changelog" <<CHANGELOG
fjernhjelp ($version) unstable; urgency=medium

  * Built from the repository by make deb.

 -- fjernhjelp developers <fjernhjelp@example.org>  $(date -R -d "@$SOURCE_DATE_EPOCH")
CHANGELOG

echo "deb: building the wheel"
$BIN/pip wheel --quiet --no-deps -w "$work/wheels" .
wheel="$(ls "$work"/wheels/fjernhjelp-*.whl)"
python_version="$($TARGET_PYTHON -c 'import platform; print(platform.python_version())')"

# make_venv NAME [EXTRA...]: debian/venv/NAME, to be installed as /usr/lib/fjernhjelp-NAME.
make_venv() {
  local name="$1" dir="$src/debian/venv/$1" final="/usr/lib/fjernhjelp-$1" extra args=()
  shift
  for extra in "$@"; do args+=(--extra "$extra"); done
  echo "deb: virtual environment for fjernhjelp-$name"
  $TARGET_PYTHON -m venv --without-pip "$dir"
  # The run-time part of the lock, every file checked against its hash, nothing resolved
  # (--no-deps); then the program's own wheel, alone. pip from this checkout's environment,
  # installing for the target interpreter (its wheels are chosen for Debian's python3.11);
  # no bytecode: the postinst compiles it.
  $BIN/python scripts/lock_subset.py "${args[@]}" >"$work/$name.lock"
  local pip=($BIN/pip --python "$dir/bin/python" --disable-pip-version-check)
  "${pip[@]}" install --quiet --no-compile --require-hashes --no-deps -r "$work/$name.lock"
  "${pip[@]}" install --quiet --no-compile --no-deps --no-index "$wheel"
  # A dependency the subset missed would surface only at run time: fail the build now.
  "${pip[@]}" check
  # Only the program's own command; the others (uvicorn, alembic, ...) would carry the
  # build folder in their first line. The one kept is pointed at where it is installed.
  find "$dir/bin" -mindepth 1 ! -name 'python*' ! -name fjernhjelp -delete
  sed -i "1s|.*|#!$final/bin/python|" "$dir/bin/fjernhjelp"
  printf 'home = /usr/bin\ninclude-system-site-packages = false\nversion = %s\n' \
    "$python_version" >"$dir/pyvenv.cfg"
  find "$dir" -name direct_url.json -delete
  # A few wheels mark modules executable that are not programs (lintian says so).
  find "$dir/lib" -name '*.py' -perm /111 -exec chmod a-x {} +
  find "$dir" -name __pycache__ -prune -exec rm -rf {} +
}
make_venv server
make_venv agent desktop

echo "deb: browser libraries and the Support client for fjernhjelp-server"
$BIN/python - "$src/debian/browser-libs" <<'PY'
import shutil, sys
from pathlib import Path
from fjernhjelp.server.browser_libs import ROUTES

target = Path(sys.argv[1])
for folder in ROUTES.values():
    shutil.copytree(Path("node_modules") / folder, target / folder)
    package = Path(folder).parts[:2]
    for licence in Path("node_modules", *package).glob("LICENSE*"):
        shutil.copy(licence, target.joinpath(*package, licence.name))
PY
client="$($BIN/python -c 'from fjernhjelp.support.build import target_name; print(target_name())')"
mkdir -p "$src/debian/support-client"
cp "dist/$client" "$src/debian/support-client/"

echo "deb: dpkg-buildpackage"
(cd "$src" && dpkg-buildpackage --build=binary --no-sign -Zgzip >"$work/build.log" 2>&1) || {
  tail -n 40 "$work/build.log"; exit 1; }
rm -f "$OUT"/fjernhjelp-*.deb
mv "$work"/fjernhjelp-*_"$version"_*.deb "$OUT/"

echo "deb: lintian"
lintian --fail-on error "$OUT"/fjernhjelp-*_"$version"_*.deb
ls -l "$OUT"

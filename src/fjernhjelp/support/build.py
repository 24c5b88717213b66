"""Build the generic one-file Support client: ``python -m fjernhjelp.support.build``.

``make support-client`` runs this with the venv's Python after installing the ``build``
extra (PyInstaller). The result, ``dist/fjernhjelp-support-linux-x86_64``, is unstamped:
the server appends its stamp when it hands the file out (``support.stamp``), and an
unstamped one-file client refuses to run. Why PyInstaller: docs/support-client.md.

The same file is the agent's installer (agent/onefile.py): the portal appends an installer
package to it (control/agent_file.py) and the file then installs and runs the agent. One
build for both, so ``make test`` builds once.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import fjernhjelp

PACKAGE = Path(fjernhjelp.__file__).parent
ENTRY = PACKAGE / "support" / "__main__.py"

# What the client never needs: the server, its database layer and web stack. PyInstaller
# follows every import it can see; these keep a stray one from pulling half the server in.
EXCLUDES = (
    "fjernhjelp.server",
    "fjernhjelp.db",
    "fjernhjelp.portal",
    "fjernhjelp.cli",
    "fjernhjelp.support.build",
    "sqlalchemy",
    "alembic",
    "fastapi",
    "starlette",
    "uvicorn",
    "psycopg",
    "PyInstaller",
    "pytest",
)
# Loaded at run time by the window switch rather than seen by PyInstaller's import scan.
HIDDEN = ("fjernhjelp.agent.windows.consent", "fjernhjelp.agent.windows.indicator")


def target_name() -> str:
    machine = {"amd64": "x86_64"}.get(platform.machine().lower(), platform.machine().lower())
    return f"fjernhjelp-support-{sys.platform.removesuffix('2')}-{machine}"


def build(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    name = target_name()
    with tempfile.TemporaryDirectory(prefix="fjernhjelp-build-") as work:
        command = [
            sys.executable,
            "-m",
            "PyInstaller",
            "--onefile",
            "--noconfirm",
            "--clean",
            "--log-level=WARN",
            f"--name={name}",
            f"--distpath={out_dir}",
            f"--workpath={work}/build",
            f"--specpath={work}",
            # The message catalogue is read from beside fjernhjelp/i18n/__init__.py.
            f"--add-data={PACKAGE / 'i18n' / 'messages.toml'}:fjernhjelp/i18n",
            # The check-word list (docs/tunnel.md §18), read beside tunnel/sas.py.
            f"--add-data={PACKAGE / 'tunnel' / 'sas_words_nb.txt'}:fjernhjelp/tunnel",
            *(f"--exclude-module={m}" for m in EXCLUDES),
            *(f"--hidden-import={m}" for m in HIDDEN),
            str(ENTRY),
        ]
        subprocess.run(command, check=True)  # noqa: S603 - our own fixed command line
    built = out_dir / name
    if not built.is_file():
        raise SystemExit(f"PyInstaller made no {built}")
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("dist"), help="output folder")
    args = parser.parse_args()
    if shutil.which("objcopy") is None:
        # PyInstaller puts the archive into an ELF section with binutils' objcopy.
        raise SystemExit("objcopy (Debian package binutils) is needed to build the client")
    built = build(args.out)
    print(f"{built} ({built.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()

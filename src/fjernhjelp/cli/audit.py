"""``fjernhjelp audit``: verify the hash chain (and against signed checkpoints), export events,
make a checkpoint."""

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fjernhjelp.cli.common import (
    DatabaseUrl,
    DataDir,
    console,
    err,
    load_models,
    real,
    settings_from,
    sub_app,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from fjernhjelp.audit.checkpoint import Checkpoint
    from fjernhjelp.config import Settings

# Database modules are imported inside the commands (`fjernhjelp --help` stays quick).

app = sub_app("The audit log.")


def _trusted_key(settings: "Settings", server_key: str | None) -> "str | Ed25519PublicKey":
    """The key checkpoints must be signed by: --server-key, else the server's own key
    file. Never the key the checkpoint file names: a forger would name their own."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from fjernhjelp.audit.checkpoint import CheckpointError, parse_server_key

    if server_key:
        try:
            return parse_server_key(server_key)
        except CheckpointError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
    path = settings.keys_dir / "signing.key"
    try:
        raw = path.read_bytes()  # read, never created: verifying must not make a new key
        return Ed25519PrivateKey.from_private_bytes(raw).public_key()
    except (OSError, ValueError) as exc:
        err.print(
            f"[red]cannot read the server key {path}: give --server-key (the fingerprint the "
            f"portal shows, or the public key)[/red]"
        )
        raise typer.Exit(2) from exc


def _checkpoints(file: Path, trusted: "str | Ed25519PublicKey") -> "list[Checkpoint]":
    from fjernhjelp.audit.checkpoint import CheckpointError, parse_file, verified

    try:
        return verified(parse_file(file.read_bytes()), trusted)
    except OSError as exc:
        err.print(f"[red]cannot read {file}: {exc.strerror}[/red]")
        raise typer.Exit(2) from exc
    except CheckpointError as exc:
        err.print(f"[red]checkpoint file refused: {exc}[/red]")
        raise typer.Exit(1) from exc


@app.command()
def verify(
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            "--checkpoint",
            help="A signed checkpoint file (portal, API or `audit checkpoint -o`): the log "
            "must still match it.",
        ),
    ] = None,
    server_key: Annotated[
        str | None,
        typer.Option(
            help="With --checkpoint: the server key's SHA256: fingerprint or base64url public "
            "key (default: the key file in the data directory).",
        ),
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Check that no event was edited, deleted or reordered. Exits 1 if one was.

    With --checkpoint, also that the log still holds the history the server signed: a
    log rewritten and re-hashed by whoever owns the database passes the plain check but
    not this one, which names the first event that no longer matches."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from fjernhjelp.audit.checkpoint_store import check_chain
    from fjernhjelp.audit.verify import count_events, verify_chain
    from fjernhjelp.db.engine import make_engine, make_session_factory

    load_models()
    settings = settings_from(data_dir, database_url)
    checkpoints = None
    if checkpoint is not None:
        checkpoints = _checkpoints(checkpoint, _trusted_key(settings, server_key))
    factory = make_session_factory(make_engine(settings.effective_database_url), deferred=True)
    with factory() as db:
        total = count_events(db)
        with Progress(
            TextColumn("verifying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=real(err),
            transient=True,
        ) as bar:
            task = bar.add_task("verify", total=total)
            result = verify_chain(db, progress=lambda n: bar.advance(task, n))
        against = check_chain(db, checkpoints) if checkpoints is not None else None
    if not result.ok:
        err.print(f"[red]audit log broken at event {result.first_bad_seq}: {result.problem}[/red]")
        err.print(f"{result.checked} events before it are intact.")
        raise typer.Exit(1)
    if against is not None and not against.ok:
        err.print(
            f"[red]audit log does not match its signed checkpoints: first event that no "
            f"longer matches: {against.first_bad_seq}[/red]"
        )
        err.print(str(against.problem))
        raise typer.Exit(1)
    console.print(f"audit log intact: {result.checked} events")
    if against is not None:
        console.print(
            f"and it matches all {against.checked} signed checkpoints "
            f"(the newest at event {against.last_good_seq})"
        )


@app.command("checkpoint")
def make_checkpoint(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Also write every checkpoint to this file."),
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Sign the audit chain's head now (the server also does every
    FJERNHJELP_AUDIT_CHECKPOINT_INTERVAL_SECONDS)."""
    from fjernhjelp.audit import checkpoint_store, forward
    from fjernhjelp.control.package import fingerprint
    from fjernhjelp.server.state import build_state

    load_models()
    settings = settings_from(data_dir, database_url)
    state = build_state(settings)
    if settings.audit_syslog:
        forward.install(
            state.db_sessions,
            forward.SyslogForwarder(settings.audit_syslog),
            fingerprint(state.keys.signing.public_key()),
        )
    with state.db_sessions() as db:
        made = checkpoint_store.make_checkpoint(db, state.keys.signing, state.now())
        db.commit()
        data = checkpoint_store.checkpoint_file(db, state.keys.signing) if output else b""
    if made is None:
        err.print("the audit log is empty: nothing to sign")
        raise typer.Exit(1)
    console.print(
        f"checkpoint at event {made.seq}, head {made.head}, signed "
        f"{made.signed_at.isoformat()} by {fingerprint(state.keys.signing.public_key())}"
    )
    if output:
        output.write_bytes(data)
        console.print(f"checkpoints written to {output}")


@app.command()
def export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default stdout).")
    ] = None,
    org_number: Annotated[str | None, typer.Option(help="Only this organisation's events.")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write events as JSON Lines, oldest first."""
    from sqlalchemy import select

    from fjernhjelp.audit.export import export_lines
    from fjernhjelp.db.engine import make_engine, make_session_factory
    from fjernhjelp.portal.models import Organisation

    load_models()
    settings = settings_from(data_dir, database_url)
    factory = make_session_factory(make_engine(settings.effective_database_url), deferred=True)
    with factory() as db:
        org_id = None
        if org_number:
            org_id = db.execute(
                select(Organisation.id).where(Organisation.orgnr == org_number)
            ).scalar_one_or_none()
            if org_id is None:
                err.print(f"[red]no organisation {org_number}[/red]")
                raise typer.Exit(2)
        out = output.open("w", encoding="utf-8") if output else sys.stdout
        count = 0
        try:
            for line in export_lines(db, org_id):
                out.write(line + "\n")
                count += 1
        finally:
            if output:
                out.close()
    if output:
        console.print(f"{count} events written to {output}")

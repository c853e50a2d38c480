"""The `video-analyzer` command."""

import argparse
import asyncio
import getpass
import ipaddress
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import uvicorn
from pydantic import ValidationError

from service.config import Settings
from service.observability.logs import configure_logging


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    from service.db.embedded import in_use_message, store_in_use
    from service.http.access_log import hide_media_tokens
    from service.main import create_app

    if settings.uses_embedded_store and store_in_use(settings.embedded_dir):
        raise SystemExit(f"video-analyzer serve: {in_use_message(settings.embedded_dir)}")
    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    certfile = args.ssl_certfile or settings.ssl_certfile
    keyfile = args.ssl_keyfile or settings.ssl_keyfile
    if keyfile and not certfile:
        raise SystemExit("video-analyzer serve: --ssl-keyfile (SSL_KEYFILE) needs --ssl-certfile (SSL_CERTFILE) too")
    if not settings.auth_enabled and not _is_loopback(host):
        logging.getLogger("service").warning(
            "!!! AUTH_ENABLED=false while listening on %s: anyone who can reach this address can read, "
            "change and delete every video. Set AUTH_ENABLED=true and SECRET_KEY, or bind 127.0.0.1. !!!",
            host,
        )
    hide_media_tokens()
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        log_level=settings.log_level.lower(),
        server_header=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        limit_concurrency=settings.max_connections,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
    )


def _work(settings: Settings, args: argparse.Namespace) -> None:
    from service.processing.worker import run_workers

    if args.workers is not None:
        settings.workers = args.workers
    asyncio.run(run_workers(settings, args.metrics_port))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _create_user(settings: Settings, args: argparse.Namespace) -> None:
    from service.users.cli import create_user

    asyncio.run(create_user(settings, args.username, args.email, _password(args), args.admin))


def _password(args: argparse.Namespace) -> str:
    return sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")


def _set_active(settings: Settings, args: argparse.Namespace) -> None:
    from service.users.cli import set_active

    asyncio.run(set_active(settings, args.username, args.active))


def _reset_password(settings: Settings, args: argparse.Namespace) -> None:
    from service.users.cli import reset_password

    asyncio.run(reset_password(settings, args.username, _password(args)))


class _Outcome(Protocol):
    """What a maintenance command reports: a printable summary, and whether all went well."""

    @property
    def ok(self) -> bool: ...

    def render(self) -> str: ...


def _report(command: str, run: Callable[[], _Outcome], exit_codes: dict[type[Exception], int]) -> None:
    """Run a maintenance command: print its summary, exit 1 when it is not ok; each refusal in
    `exit_codes` is printed on standard error and exits with its code."""
    try:
        outcome = run()
    except tuple(exit_codes) as error:
        print(f"video-analyzer {command}: {error}", file=sys.stderr)
        raise SystemExit(next(code for kind, code in exit_codes.items() if isinstance(error, kind))) from None
    print(outcome.render())
    if not outcome.ok:
        raise SystemExit(1)


def _migrate_sqlite(settings: Settings, args: argparse.Namespace) -> None:
    from service.migration.service import MigrationError, MigrationOptions, run_migration

    options = MigrationOptions(
        source=args.sqlite_path,
        dry_run=args.dry_run,
        copy_files=args.copy_files,
        report=args.report,
        batch_size=args.batch_size,
        files_root=args.files_root,
        owner=args.owner,
    )
    _report("migrate-sqlite", lambda: asyncio.run(run_migration(settings, options)), {MigrationError: 2})


def _export(settings: Settings, args: argparse.Namespace) -> None:
    from service.backup.export import ExportFailed, run_export

    _report("export", lambda: run_export(settings, args.path, args.salvage), {ExportFailed: 2})


def _import(settings: Settings, args: argparse.Namespace) -> None:
    from service.backup.restore import ImportRefused, ImportStopped, run_import

    _report(
        "import",
        lambda: asyncio.run(run_import(settings, args.path, args.batch_size)),
        {ImportRefused: 2, ImportStopped: 1},
    )


def _check(settings: Settings, args: argparse.Namespace) -> None:
    from service.backup.check import CheckFailed, run_check

    _report("check", lambda: asyncio.run(run_check(settings)), {CheckFailed: 2})


def _move_files(settings: Settings, args: argparse.Namespace) -> None:
    from service.storage.moves import MoveStopped, run_move

    _report("move-files", lambda: asyncio.run(run_move(settings, args.to)), {MoveStopped: 1})


def _indexes(settings: Settings, args: argparse.Namespace) -> None:
    from service.db.embedded import StoreInUse
    from service.db.index_command import run_indexes

    _report("indexes", lambda: asyncio.run(run_indexes(settings, args.apply)), {StoreInUse: 2})


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be a port number, 1 to 65535")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="video-analyzer", description="The Video Analyzer service.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP API (and WORKERS in-process workers)")
    serve.add_argument("--host", help="address to bind (default: HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: PORT, 8000)")
    serve.add_argument("--ssl-certfile", type=Path, help="serve HTTPS with this certificate (default: SSL_CERTFILE)")
    serve.add_argument("--ssl-keyfile", type=Path, help="the certificate's private key (default: SSL_KEYFILE)")
    serve.set_defaults(run=_serve)
    worker = commands.add_parser("worker", help="run workers only, no HTTP API (scale-out against one MongoDB)")
    worker.add_argument("--workers", type=int, help="how many workers (default: WORKERS, at least 1)")
    worker.add_argument(
        "--metrics-port", type=_port, help="serve Prometheus metrics at http://HOST:PORT/metrics (default: none)"
    )
    worker.set_defaults(run=_work)
    user = commands.add_parser("create-user", help="create an account (the first admin, for one)")
    user.add_argument("--username", required=True)
    user.add_argument("--email", required=True)
    user.add_argument("--admin", action="store_true", help="make the account an admin")
    user.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    user.set_defaults(run=_create_user)
    for name, active, text in (
        ("deactivate-user", False, "stop an account: its tokens and API keys stop working at once"),
        ("reactivate-user", True, "let a deactivated account in again"),
    ):
        toggle = commands.add_parser(name, help=text)
        toggle.add_argument("username")
        toggle.set_defaults(run=_set_active, active=active)
    reset = commands.add_parser("reset-password", help="set a new password for an account (its tokens stop working)")
    reset.add_argument("username")
    reset.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    reset.set_defaults(run=_reset_password)
    migrate = commands.add_parser(
        "migrate-sqlite",
        help="move the SQLite service's videos and chat history into the store (safe to run again)",
    )
    migrate.add_argument("sqlite_path", type=Path, metavar="SQLITE_PATH", help="the SQLite service's database file")
    migrate.add_argument(
        "--dry-run", action="store_true", help="read and check everything, write nothing, report what would happen"
    )
    migrate.add_argument(
        "--copy-files", action="store_true", help="copy each video's file into storage (file_path as recorded)"
    )
    migrate.add_argument(
        "--files-root", type=Path, help="folder relative file paths start from (default: the SQLite file's folder)"
    )
    migrate.add_argument(
        "--report", type=Path, help="JSON lines report file (default: DATA_DIR/migration-report.jsonl)"
    )
    migrate.add_argument(
        "--owner", metavar="USERNAME", help="the user who owns the migrated videos (they stay private to it)"
    )
    migrate.add_argument("--batch-size", type=_positive, default=500, help="videos per bulk write (default: 500)")
    migrate.set_defaults(run=_migrate_sqlite)
    export = commands.add_parser(
        "export",
        help="write the store and its files to one archive (a consistent snapshot, also while the service runs)",
    )
    export.add_argument("path", type=Path, metavar="PATH", help="the archive to write (a tar file)")
    export.add_argument(
        "--salvage",
        action="store_true",
        help="on a damaged store, export every intact document and file and list what was left out (exits 1)",
    )
    export.set_defaults(run=_export)
    load = commands.add_parser(
        "import", help="load an archive written by export into the store (verified first; safe to run again)"
    )
    load.add_argument("path", type=Path, metavar="PATH", help="the archive export wrote")
    load.add_argument("--batch-size", type=_positive, default=500, help="documents per bulk write (default: 500)")
    load.set_defaults(run=_import)
    check = commands.add_parser("check", help="verify the store and its files (read-only; also while the service runs)")
    check.set_defaults(run=_check)
    move = commands.add_parser(
        "move-files",
        help="move every stored file to one storage, verified, resumably (the embedded store: with the service stopped)",
    )
    move.add_argument("--to", required=True, choices=["gridfs", "local"], help="where the files go")
    move.set_defaults(run=_move_files)
    indexes = commands.add_parser(
        "indexes", help="compare the declared indexes with the store's (exits 1 when they differ)"
    )
    indexes.add_argument(
        "--apply", action="store_true", help="drop and rebuild each changed index, build each missing one"
    )
    indexes.set_defaults(run=_indexes)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as error:
        problems = "; ".join(problem["msg"] for problem in error.errors(include_url=False, include_input=False))
        raise SystemExit(f"video-analyzer: the settings are not valid: {problems}") from None
    configure_logging(settings)
    from service.db.durable import StoreDamaged
    from service.db.embedded import StoreInUse

    try:
        args.run(settings, args)
    except (StoreInUse, StoreDamaged) as error:
        raise SystemExit(f"video-analyzer {args.command}: {error}") from None


if __name__ == "__main__":
    main()

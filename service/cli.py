"""The `video-analyzer` command."""

import argparse
import asyncio
import getpass
import ipaddress
import logging
import sys
from pathlib import Path

import uvicorn
from pydantic import ValidationError

from service.config import Settings


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    from service.main import create_app

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
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        log_level=settings.log_level.lower(),
        server_header=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        ssl_certfile=certfile,
        ssl_keyfile=keyfile,
    )


def _work(settings: Settings, args: argparse.Namespace) -> None:
    from service.processing.worker import run_workers

    if args.workers is not None:
        settings.workers = args.workers
    asyncio.run(run_workers(settings))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _create_user(settings: Settings, args: argparse.Namespace) -> None:
    from service.users.cli import create_user

    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
    asyncio.run(create_user(settings, args.username, args.email, password, args.admin))


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
    try:
        summary = asyncio.run(run_migration(settings, options))
    except MigrationError as error:
        print(f"video-analyzer migrate-sqlite: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(summary.render())
    if not summary.ok:
        raise SystemExit(1)


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
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
    worker.set_defaults(run=_work)
    user = commands.add_parser("create-user", help="create an account (the first admin, for one)")
    user.add_argument("--username", required=True)
    user.add_argument("--email", required=True)
    user.add_argument("--admin", action="store_true", help="make the account an admin")
    user.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    user.set_defaults(run=_create_user)
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
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as error:
        problems = "; ".join(problem["msg"] for problem in error.errors(include_url=False, include_input=False))
        raise SystemExit(f"video-analyzer: the settings are not valid: {problems}") from None
    _configure_logging(settings)
    args.run(settings, args)


if __name__ == "__main__":
    main()

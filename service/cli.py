"""The `video-analyzer` command."""

import argparse
import asyncio
import getpass
import ipaddress
import logging
import sys

import uvicorn
from pydantic import ValidationError

from service.config import Settings


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    from service.main import create_app

    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    if not settings.auth_enabled and not _is_loopback(host):
        logging.getLogger("service").warning(
            "!!! AUTH_ENABLED=false while listening on %s: anyone who can reach this address can read, "
            "change and delete every video. Set AUTH_ENABLED=true and SECRET_KEY, or bind 127.0.0.1. !!!",
            host,
        )
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, log_level=settings.log_level.lower())


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="video-analyzer", description="The Video Analyzer service.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP API (and WORKERS in-process workers)")
    serve.add_argument("--host", help="address to bind (default: HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: PORT, 8000)")
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

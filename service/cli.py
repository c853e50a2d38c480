"""The `video-analyzer` command."""

import argparse
import asyncio
import logging

import uvicorn

from service.config import Settings


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _serve(settings: Settings, args: argparse.Namespace) -> None:
    from service.main import create_app

    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, log_level=settings.log_level.lower())


def _work(settings: Settings, args: argparse.Namespace) -> None:
    from service.processing.worker import run_workers

    if args.workers is not None:
        settings.workers = args.workers
    asyncio.run(run_workers(settings))


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
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = Settings()
    _configure_logging(settings)
    args.run(settings, args)


if __name__ == "__main__":
    main()

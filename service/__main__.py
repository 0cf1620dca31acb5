"""`python -m service --models DIR --host 127.0.0.1 --port 8000`: flags override DISTILL_* settings."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import uvicorn

from service.settings import Settings
from service.settings_doc import DOC_PATH, write_settings_doc
from service.workers import run_workers


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("--models", type=Path, help="model repository (DISTILL_MODELS_DIR)")
    parser.add_argument("--host", help="address to bind (DISTILL_HOST)")
    parser.add_argument("--port", type=int, help="TCP port (DISTILL_PORT)")
    parser.add_argument("--log-level", choices=["critical", "error", "warning", "info", "debug"])
    parser.add_argument("--workers", type=int, help="uvicorn worker processes (DISTILL_WORKERS)")
    parser.add_argument(
        "--write-settings-doc", action="store_true", help=f"regenerate {DOC_PATH.name} from Settings and exit"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.write_settings_doc:
        print(write_settings_doc())
        return
    flags: dict[str, Any] = {"models_dir": args.models, "host": args.host, "port": args.port}
    flags["log_level"] = args.log_level
    flags["workers"] = args.workers
    settings = Settings(**{k: v for k, v in flags.items() if v is not None})
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.workers > 1:
        run_workers(settings)
        return
    from service.app import create_app  # not at the top: a multi-worker parent never builds the app (less RSS)

    uvicorn.run(create_app(settings), **settings.uvicorn_options())


if __name__ == "__main__":
    main()

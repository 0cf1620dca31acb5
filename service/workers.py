"""Several uvicorn worker processes on one port (`DISTILL_WORKERS` > 1), with `/metrics` reporting every worker.

The parent resolves the settings once and hands them to the workers as JSON in the environment (uvicorn spawns
fresh interpreters that build the app with `worker_app`). Metrics use prometheus-client's multiprocess mode: each
worker writes its values to files in one folder, fresh for every server run, and a scrape of any worker sums them.
Each worker loads its own copy of every model, and says how it stands in a second shared folder
(`service.peers`), so that readiness waits for every worker and a restarted one takes traffic only once warm.
On SIGTERM the parent lets go of the listening socket at once (`Supervisor`), so no connection is accepted that
no worker will answer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn
from uvicorn.supervisors.multiprocess import Multiprocess

from service.peers import WorkerBoard
from service.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

SETTINGS_ENV = "DISTILL_WORKER_SETTINGS_JSON"  # internal: the parent's resolved settings, not a setting itself
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus-client when a worker imports it
BOARD_ENV = "DISTILL_WORKER_BOARD_DIR"  # internal: the folder where the workers say how each stands
LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


def _clear(folder: Path) -> None:
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)


@contextlib.contextmanager
def metrics_dir() -> Iterator[Path]:
    """The multiprocess folder: `PROMETHEUS_MULTIPROC_DIR` if set (emptied at start and end), else a fresh one."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        _clear(folder)  # values of an earlier run would be added to this one's totals
        try:
            yield folder
        finally:
            _clear(folder)
        return
    folder = Path(tempfile.mkdtemp(prefix="distill-metrics-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Supervisor(Multiprocess):
    """uvicorn's supervisor, letting go of its own copy of the listening socket as soon as it tells the workers to
    stop. While the parent held it, the kernel kept completing connections that no worker would accept any more,
    and reset them when the parent exited: 10-21 requests lost per SIGTERM to 2 workers under 10 clients here."""

    def terminate_all(self) -> None:
        for sock in self.sockets:
            sock.close()  # the workers' copies stay open until each has drained and stopped
        super().terminate_all()


def run_workers(settings: Settings) -> None:
    """Serve with `settings.workers` processes until SIGINT/SIGTERM (uvicorn's supervisor restarts dead ones)."""
    with metrics_dir() as folder, tempfile.TemporaryDirectory(prefix="distill-workers-") as board:
        os.environ[MULTIPROC_ENV] = str(folder)
        os.environ[SETTINGS_ENV] = settings.model_dump_json()
        os.environ[BOARD_ENV] = board
        config = uvicorn.Config(
            "service.workers:worker_app", factory=True, workers=settings.workers, **settings.uvicorn_options()
        )
        Supervisor(config, sockets=[config.bind_socket()]).run()


def worker_app() -> FastAPI:
    """uvicorn's factory in each worker process."""
    settings = Settings.model_validate_json(os.environ[SETTINGS_ENV])
    folder = Path(os.environ[MULTIPROC_ENV])
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
    from service.app import create_app  # here, not at the top: the parent only supervises (~40 MB less RSS)

    return create_app(settings, metrics_dir=folder, peers=WorkerBoard(Path(os.environ[BOARD_ENV])))

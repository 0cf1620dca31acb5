"""What each worker process of one server says of itself, in a folder they share: so that readiness means every
worker can serve, not just the one a probe happened to reach.

A worker that starts beside others already serving (uvicorn restarts one that died) loads and warms its models
before it accepts a connection, so it takes no traffic until it can answer; it is "warming" meanwhile, which no
one waits for. Workers starting together accept at once (someone must answer the liveness probe) and are
"loading" until their models are in: until then every worker's readiness answers 503.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Literal

WorkerState = Literal["loading", "warming", "ready"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process took the PID: not ours
        return False
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, not yet reaped
    return True


class WorkerBoard:
    def __init__(self, folder: Path, pid: int | None = None) -> None:
        self.folder = folder
        self.pid = pid or os.getpid()

    def mark(self, state: WorkerState) -> None:
        tmp = self.folder / f".{self.pid}.tmp"
        tmp.write_text(state)
        tmp.replace(self.folder / str(self.pid))  # atomic: a reader sees the old state or the new one

    def leave(self) -> None:
        (self.folder / str(self.pid)).unlink(missing_ok=True)

    def peers(self) -> dict[int, str]:
        """The other live workers and what each says of itself."""
        found = {}
        for path in self.folder.iterdir():
            if not path.name.isdigit() or int(path.name) == self.pid or not _alive(int(path.name)):
                continue
            with contextlib.suppress(FileNotFoundError):  # it left meanwhile
                found[int(path.name)] = path.read_text()
        return found

    def others_serving(self) -> bool:
        return any(state == "ready" for state in self.peers().values())

    def still_loading(self) -> list[int]:
        """Workers that accept connections but cannot serve yet."""
        return sorted(pid for pid, state in self.peers().items() if state == "loading")

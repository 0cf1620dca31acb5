"""The workers' board: a worker sees how its live peers stand; a dead one's word no longer counts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from service.peers import WorkerBoard


def _reaped_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_readiness_waits_for_live_peers_still_loading(tmp_path: Path) -> None:
    me, peer = WorkerBoard(tmp_path, os.getpid()), WorkerBoard(tmp_path, os.getppid())
    me.mark("ready")
    peer.mark("loading")
    assert me.still_loading() == [os.getppid()] and not me.others_serving()
    peer.mark("ready")
    assert me.still_loading() == [] and me.others_serving()
    peer.leave()
    assert me.peers() == {}


def test_a_warming_peer_is_not_waited_for(tmp_path: Path) -> None:
    WorkerBoard(tmp_path, os.getppid()).mark("warming")  # not accepting connections yet
    assert WorkerBoard(tmp_path, os.getpid()).still_loading() == []


def test_a_dead_peer_does_not_count(tmp_path: Path) -> None:
    WorkerBoard(tmp_path, _reaped_pid()).mark("loading")
    me = WorkerBoard(tmp_path, os.getpid())
    assert me.peers() == {} and me.still_loading() == []

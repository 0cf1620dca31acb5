"""`make bench-train`: one epoch of the default teacher on this machine as 1 process x 2 threads and as 2
processes x 1 thread (torchrun, DistributedDataParallel on gloo), side by side in `reports/bench-train.md` (and
`.json`) with the machine it ran on. A benchmark, not a test: it measures and reports, it asserts nothing.

    python -m distill_training.bench_train [--out reports] [--data-dir DIR] [--epochs 1]

Each layout runs in a process of its own (`worker`, started by plain Python or by torchrun) that loads the
data, then times the epoch alone: training on the whole training split and the validation pass, no process
start, data loading or rendezvous.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from distill_training import distributed
from distill_training.config import DataConfig, TeacherConfig
from distill_training.data import load_dataset
from distill_training.staleness import read_meta
from distill_training.train import autocast_dtype, train_teacher
from modelrepo.dataset import DEFAULT_DATA_DIR
from modelrepo.host import available_cores, cpu_name

LAYOUTS = ((1, 2), (2, 1))  # (processes, threads each)


def worker(data_dir: str, epochs: int, out: Path) -> None:
    """Train the default teacher (one net) for `epochs` on this process's share; rank 0 writes `out` (JSON)."""
    world = distributed.start()
    try:
        data_cfg = DataConfig(data_dir=data_dir)
        data = load_dataset(data_cfg)
        tc = replace(TeacherConfig(), members=(), epochs=epochs, min_epochs=epochs)
        with tempfile.TemporaryDirectory() as run_dir:
            start = time.perf_counter()
            weights = train_teacher(tc, data_cfg, data, Path(run_dir), progress=False, world=world)
            seconds = time.perf_counter() - start
            meta = read_meta(weights.parent) if world.main else {}
        if world.main:
            result = {
                "processes": world.size,
                "threads": torch.get_num_threads(),
                "epochs": epochs,
                "seconds": seconds,
                "images_per_s": epochs * len(data.train_x) / seconds,
                "val_accuracy": meta["val_accuracy"],
                "precision": "bf16" if autocast_dtype(tc.precision) else "fp32",
            }
            out.write_text(json.dumps(result) + "\n")
    finally:
        distributed.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_layout(processes: int, threads: int, data_dir: str, epochs: int, tmp: Path) -> dict[str, Any]:
    out = tmp / f"{processes}x{threads}.json"
    args = [
        "-m",
        "distill_training.bench_train",
        "worker",
        "--data-dir",
        data_dir,
        "--epochs",
        str(epochs),
        "--result",
        str(out),
    ]
    if processes > 1:
        launcher = ["-m", "torch.distributed.run", "--nproc-per-node", str(processes), "--rdzv-backend", "c10d"]
        args = [*launcher, "--rdzv-endpoint", f"127.0.0.1:{_free_port()}", *args]
    env = os.environ | {"OMP_NUM_THREADS": str(threads)}
    load_before = os.getloadavg()[0]
    subprocess.run([sys.executable, *args], env=env, check=True)
    result: dict[str, Any] = json.loads(out.read_text())
    return result | {"load_1min_before": load_before, "load_1min_after": os.getloadavg()[0]}


def _machine() -> dict[str, Any]:
    return {
        "cpu": cpu_name(),
        "cores": available_cores(),
        "torch": torch.__version__,
        "backend": "gloo",
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    base = report["runs"][0]["seconds"]
    rows = [
        f"| {r['processes']} x {r['threads']} | {r['seconds']:.1f} s | {r['images_per_s']:,.0f} | "
        f"{base / r['seconds']:.2f}x | {r['val_accuracy']:.2%} | {r['load_1min_before']:.1f} / "
        f"{r['load_1min_after']:.1f} |"
        for r in report["runs"]
    ]
    return "\n".join(
        [
            "# Teacher training: one process or several (torchrun)",
            "",
            f"{report['runs'][0]['epochs']} epoch(s) of the default teacher (one conv net, "
            f"{report['runs'][0]['precision']}) on {m['cpu']}, {m['cores']} cores, torch {m['torch']}, "
            f"{m['when']}. Several processes: torchrun, DistributedDataParallel on {m['backend']}, each rank on "
            "its share of the epoch, the same global batch. Timed: the epoch's training and validation pass, "
            "not process start or data loading. The 1-minute load average before and after says how much else "
            "ran on the cores.",
            "",
            "| processes x threads | epoch | images/s | vs 1 x 2 | val accuracy | load before / after |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )


def bench(out_dir: Path, data_dir: str, epochs: int) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        runs = [_run_layout(p, t, data_dir, epochs, Path(tmp)) for p, t in LAYOUTS]
    report = {"machine": _machine(), "runs": runs}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench-train.json").write_text(json.dumps(report, indent=2) + "\n")
    path = out_dir / "bench-train.md"
    path.write_text(_markdown(report))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m distill_training.bench_train", description=__doc__)
    parser.add_argument("mode", nargs="?", choices=["bench", "worker"], default="bench")
    parser.add_argument("--out", type=Path, default=Path("reports"))
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--result", type=Path, help="worker: where rank 0 writes its figures")
    args = parser.parse_args(argv)
    if args.mode == "worker":
        worker(args.data_dir, args.epochs, args.result)
        return 0
    print(f"-> {bench(args.out, args.data_dir, args.epochs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Load test for distill-serve: real Fashion-MNIST test images, sent with their true labels.

One user class per kind of traffic, each tagged with its kind so one kind runs alone:

    locust -f deploy/locust/locustfile.py --headless -u 8 -r 8 -t 30s --host http://127.0.0.1:8000 --tags student

Kinds (tags): ``student``, ``teacher``, ``cascade``, ``compare``; each kind also carries ``json`` or ``image``
(arrays of pixels as JSON, or PNG uploads). Class weights come from the environment
(``LOCUST_WEIGHT_STUDENT=3`` etc., default 1). Images come from ``--data-dir`` (an MNIST-format IDX folder, default
the Debian ``dataset-fashion-mnist`` path) or ``--data-npz`` (a file with ``x`` and ``y``).
Tag ``v2`` posts one prepared body (``--v2-body FILE``, e.g. a v2 JSON tensor) to ``--v2-path`` over and over; it
runs only when ``--v2-body`` is given.

Users send as fast as they are answered, unless ``LOCUST_RATE_PER_USER`` is set: then each keeps a schedule of
that many requests per second, from a random moment of its first period (so that users do not send in step), and
a user behind its schedule sends at once. ``--users N`` users offer a constant N x rate requests/s whatever the
latency, as long as a request takes less than 1 / rate on average (each user has one connection).

Self-contained on purpose (numpy and the standard library only), so the locust container needs nothing of ours.
"""

from __future__ import annotations

import gzip
import os
import random
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gevent
import numpy as np
from locust import FastHttpUser, events, tag, task

DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"
SAMPLES = 512  # rows drawn from the test set; enough variety, cheap to hold


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR, help="MNIST-format IDX folder (test split)")
    parser.add_argument("--data-npz", default="", help="NPZ file with x (N,28,28 uint8) and y (N,)")
    parser.add_argument("--cascade-threshold", default="", help="per-request cascade threshold (default: server's)")
    parser.add_argument("--v2-body", default="", help="file of the body the v2 user posts (tag v2)")
    parser.add_argument("--v2-path", default="", help="where the v2 user posts it, e.g. /v2/models/NAME/infer")
    parser.add_argument("--v2-content-type", default="application/json", help="the v2 body's Content-Type")


@dataclass(frozen=True)
class Sample:
    pixels: list[list[int]]  # (28, 28) intensities 0..255
    png: bytes
    label: int


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    dtype_code, ndim = data[2], data[3]
    if data[:2] != b"\x00\x00" or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(directory: Path, stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (directory / name).exists():
            return directory / name
    raise FileNotFoundError(
        f"{directory / stem}[.gz] not found: install the Debian package dataset-fashion-mnist or pass --data-dir"
    )


def _png(pixels: np.ndarray) -> bytes:
    """A greyscale 8-bit PNG, written by hand so the load generator needs no imaging library."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    height, width = pixels.shape
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def load_samples(data_dir: str, data_npz: str, count: int = SAMPLES, seed: int = 0) -> list[Sample]:
    if data_npz:
        with np.load(data_npz) as arrays:
            images, labels = arrays["x"], arrays["y"]
    else:
        directory = Path(data_dir)
        images = _read_idx(_find(directory, "t10k-images-idx3-ubyte"))
        labels = _read_idx(_find(directory, "t10k-labels-idx1-ubyte"))
    picks = np.random.default_rng(seed).choice(len(images), size=min(count, len(images)), replace=False)
    images = images.reshape(len(images), 28, 28).astype(np.uint8)
    return [Sample(images[i].tolist(), _png(images[i]), int(labels[i])) for i in picks]


_samples: list[Sample] = []


@events.test_start.add_listener
def _load(environment: Any, **_: Any) -> None:
    options = environment.parsed_options
    _samples[:] = load_samples(getattr(options, "data_dir", DEFAULT_DATA_DIR), getattr(options, "data_npz", ""))


@events.init.add_listener
def _keep_users_with_selected_tasks(environment: Any, **_: Any) -> None:
    """With --tags, drop the user classes none of whose tasks carry a selected tag (locust would start them
    anyway and fail on their empty task list), so `--tags student` runs student traffic alone. The v2 user
    needs its body: without --v2-body it is dropped."""
    tags = set(getattr(environment.parsed_options, "tags", None) or [])
    if tags:
        environment.user_classes[:] = [
            user
            for user in environment.user_classes
            if any(getattr(t, "locust_tag_set", set()) & tags for t in user.tasks)
        ]
    if not getattr(environment.parsed_options, "v2_body", ""):
        environment.user_classes[:] = [user for user in environment.user_classes if user is not V2InferUser]


def _weight(kind: str) -> int:
    return int(os.environ.get(f"LOCUST_WEIGHT_{kind.upper()}", "1"))


def _rate_per_user() -> float:
    return float(os.environ.get("LOCUST_RATE_PER_USER", "0"))


class _PacedUser(FastHttpUser):
    """As fast as answered, or on a schedule of LOCUST_RATE_PER_USER requests per second from a random start."""

    abstract = True
    _slot = 0.0  # perf_counter time of this user's latest scheduled request

    def on_start(self) -> None:
        rate = _rate_per_user()
        if rate > 0:  # users spawned together would otherwise send together, period after period
            self._slot = time.perf_counter() + random.uniform(0, 1 / rate)
            gevent.sleep(self._slot - time.perf_counter())

    def wait_time(self) -> float:
        """Until the next slot of the schedule; none for a user behind it, which sends what it owes at once."""
        rate = _rate_per_user()
        if rate <= 0:
            return 0.0
        self._slot += 1 / rate
        return max(0.0, self._slot - time.perf_counter())


class _ClassifyUser(_PacedUser):
    """Posts one real image at a time with its true label, so the service's online accuracy fills."""

    abstract = True
    path = "/v1/classify"
    query = ""

    def _url(self) -> str:
        threshold = getattr(self.environment.parsed_options, "cascade_threshold", "")
        suffix = f"&threshold={threshold}" if threshold and "cascade" in self.query else ""
        return f"{self.path}?{self.query}{suffix}" if self.query else self.path

    def post_json(self, name: str) -> None:
        sample = random.choice(_samples)
        body = {"inputs": [sample.pixels], "labels": [sample.label]}
        self.client.post(self._url(), json=body, name=name)

    def post_image(self, name: str) -> None:
        sample = random.choice(_samples)
        files = {"files": ("image.png", sample.png, "image/png")}
        self.client.post(self._url(), files=files, data={"labels": str(sample.label)}, name=name)


class StudentUser(_ClassifyUser):
    weight = _weight("student")
    query = "route=student"

    @tag("student", "json")
    @task(3)
    def classify_json(self) -> None:
        self.post_json("student json")

    @tag("student", "image")
    @task(1)
    def classify_image(self) -> None:
        self.post_image("student image")


class TeacherUser(_ClassifyUser):
    weight = _weight("teacher")
    query = "route=teacher"

    @tag("teacher", "json")
    @task(3)
    def classify_json(self) -> None:
        self.post_json("teacher json")

    @tag("teacher", "image")
    @task(1)
    def classify_image(self) -> None:
        self.post_image("teacher image")


class CascadeUser(_ClassifyUser):
    weight = _weight("cascade")
    query = "route=cascade"

    @tag("cascade", "json")
    @task
    def classify_json(self) -> None:
        self.post_json("cascade json")


class CompareUser(_ClassifyUser):
    weight = _weight("compare")
    path = "/v1/compare"

    @tag("compare", "json")
    @task
    def compare_json(self) -> None:
        self.post_json("compare json")


class V2InferUser(_PacedUser):
    """Posts the prepared body of --v2-body to --v2-path (read once per process)."""

    body = b""

    def on_start(self) -> None:
        options = self.environment.parsed_options
        if not V2InferUser.body:
            V2InferUser.body = Path(options.v2_body).read_bytes()
        self.request_headers = {"Content-Type": options.v2_content_type}
        super().on_start()

    @tag("v2")
    @task
    def infer(self) -> None:
        self.client.post(
            self.environment.parsed_options.v2_path, data=self.body, headers=self.request_headers, name="v2 infer"
        )

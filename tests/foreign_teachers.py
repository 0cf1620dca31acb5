"""Image folders and teachers this project did not build, generated into a temporary folder for the `distill`
tests (no committed binaries).

- `colour_folder`: PNGs of three classes told apart by their dominant colour (red, green, blue), any size.
- `colour_teacher`: an ONNX graph written by hand that classifies them by mean colour, in the variants a teacher
  exported elsewhere comes in: NCHW or NHWC, float32 or uint8, logits or probabilities, dynamic batch or 1.
- `pattern_folder`: RGB PNGs of four stripe patterns of several sizes, some greyscale, plus corrupt files.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

COLOURS = ("red", "green", "blue")
PATTERNS = ("checker", "horizontal", "plain", "vertical")
CORRUPT_FILES = ("train/checker/truncated.png", "train/plain/not-an-image.png", "test/vertical/empty.jpg")


def png(pixels: np.ndarray) -> bytes:
    """(H, W) greyscale or (H, W, 3) RGB uint8 pixels as PNG bytes."""
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), "L" if pixels.ndim == 2 else "RGB").save(out, format="PNG")
    return out.getvalue()


def colour_image(rng: np.random.Generator, colour: int, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3): the class's channel bright, the others dark, with noise."""
    pixels = rng.integers(0, 90, (*size, 3))
    pixels[..., colour] = rng.integers(150, 256, size)
    return pixels.astype(np.uint8)


def colour_folder(root: Path, *, train: int = 12, test: int = 4, classes: tuple[str, ...] = COLOURS) -> Path:
    """`root/train/<colour>/*.png` and `root/test/<colour>/*.png`, images of 8x8 to 12x10 pixels."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("test", test)):
        for index, name in enumerate(classes if count else ()):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                size = (8, 8) if i % 2 else (12, 10)
                (folder / f"{i}.png").write_bytes(png(colour_image(rng, index % 3, size)))
    return root


def _graph(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
           inits: list[onnx.TensorProto]) -> onnx.ModelProto:  # fmt: skip
    graph = helper.make_graph(nodes, "foreign-teacher", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def colour_teacher(
    *,
    layout: str = "NCHW",
    uint8: bool = False,
    probabilities: bool = False,
    batch: int | str = "batch",
    size: tuple[int, int] = (8, 8),
    classes: int = 3,
) -> onnx.ModelProto:
    """Mean of each colour channel (in 0..1), times 10, as class scores: class k is colour k (classes beyond
    three score zero). A uint8 teacher normalises inside its graph (Cast, / 255); a float one takes x / 255."""
    h, w = size
    shape = [batch, 3, h, w] if layout == "NCHW" else [batch, h, w, 3]
    weights = np.zeros((3, classes), dtype=np.float32)
    weights[np.arange(3), np.arange(3)] = 10.0
    inits = [numpy_helper.from_array(weights, "w")]
    nodes = []
    x = "image"
    if uint8:
        inits.append(numpy_helper.from_array(np.float32(1 / 255), "k"))
        nodes += [
            helper.make_node("Cast", [x], ["f"], to=TensorProto.FLOAT),
            helper.make_node("Mul", ["f", "k"], ["s"]),
        ]
        x = "s"
    axes = [2, 3] if layout == "NCHW" else [1, 2]
    nodes += [
        helper.make_node("ReduceMean", [x], ["means"], axes=axes, keepdims=0),  # (N, 3)
        helper.make_node("MatMul", ["means", "w"], ["logits" if not probabilities else "z"]),  # (N, K)
    ]
    if probabilities:
        nodes.append(helper.make_node("Softmax", ["z"], ["probs"], axis=1))
    dtype = TensorProto.UINT8 if uint8 else TensorProto.FLOAT
    out = "probs" if probabilities else "logits"
    return _graph(
        nodes,
        [helper.make_tensor_value_info("image", dtype, shape)],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, [batch, classes])],
        inits,
    )


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def pattern_image(rng: np.random.Generator, pattern: int, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3): a stripe pattern (checker, horizontal, plain, vertical) in two random colours, with noise."""
    h, w = size
    period = int(rng.integers(6, 9))
    rows, cols = np.arange(h)[:, None] + rng.integers(0, period), np.arange(w)[None, :] + rng.integers(0, period)
    on = {
        0: ((rows // (period // 2)) + (cols // (period // 2))) % 2 == 0,
        1: np.broadcast_to((rows // (period // 2)) % 2 == 0, (h, w)),
        2: np.zeros((h, w), dtype=bool),
        3: np.broadcast_to((cols // (period // 2)) % 2 == 0, (h, w)),
    }[pattern]
    fg, bg = rng.integers(130, 256, 3), rng.integers(0, 110, 3)
    pixels = np.where(on[..., None], fg, bg) + rng.normal(0, 60, (h, w, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def pattern_folder(root: Path, *, train: int, test: int) -> Path:
    """`root/{train,test}/<pattern>/*.png` of 32x32 and 40x28 pixels (every fifth greyscale), plus a notes file
    that is not an image and the corrupt files of `CORRUPT_FILES`."""
    rng = np.random.default_rng(1)
    for split, count in (("train", train), ("test", test)):
        for index, name in enumerate(PATTERNS):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = pattern_image(rng, index, (32, 32) if i % 2 else (40, 28))
                (folder / f"{i:03d}.png").write_bytes(png(pixels.mean(axis=2) if i % 5 == 4 else pixels))
    good = (root / "train/checker/000.png").read_bytes()
    (root / CORRUPT_FILES[0]).write_bytes(good[: len(good) // 2])
    (root / CORRUPT_FILES[1]).write_text("this is not a PNG")
    (root / CORRUPT_FILES[2]).write_bytes(b"")
    (root / "train/notes.txt").write_text("class folders below")
    return root

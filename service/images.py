"""Uploaded images decoded off the event loop, within a process-wide budget of decoded pixels.

A 74 KB PNG can hold a legal 4096x4096 RGBA image: 64 MB once decoded. Decoded on the event loop (0.25-0.7 s
each here) it stalled every other request and the liveness probe; kept until the response, 40 such uploads at
once took the process past 2.5 GB. So each image is opened and decoded in a small thread pool, straight to the
sizes its models take (the full-size image is freed before the next one is decoded), and the pixels being
decoded at any moment are bounded by `decode_pixel_budget`: past it an image waits up to `decode_wait_s` for
room, then its request gets 503 + Retry-After.
"""

from __future__ import annotations

import asyncio
import functools
import io
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, UnidentifiedImageError

from modelrepo.card import Preprocessing
from modelrepo.pixels import image_pixels
from service.errors import InvalidInput, Overloaded, PayloadTooLarge

IMAGE_FORMATS = ["PNG", "JPEG"]


class PixelBudget:
    """A count of decoded pixels shared by every request, handed out first come, first served."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.free = capacity
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, pixels: int, wait_s: float, retry_after_s: int) -> None:
        """Take `pixels` of the budget; Overloaded (503) when they are not free within `wait_s`."""
        if not await self._acquire(pixels, wait_s):
            raise Overloaded(
                f"the server is decoding {self.capacity - self.free} pixels of other images (decode_pixel_budget "
                f"{self.capacity}) and this image's {pixels} did not fit within {wait_s:g}s; retry later",
                retry_after_s,
            )

    def release(self, pixels: int) -> None:
        self.free += pixels
        self._wake()

    async def _acquire(self, pixels: int, wait_s: float) -> bool:
        if not self._waiters and pixels <= self.free:
            self.free -= pixels
            return True
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (pixels, granted)
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(granted), wait_s)
            return True
        except BaseException as exc:  # the wait is over, or the request was cancelled (its deadline)
            if granted.done():  # granted at that very moment: give it back
                self.release(pixels)
            else:
                self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                return False
            raise

    def _wake(self) -> None:
        while self._waiters and self._waiters[0][0] <= self.free:
            pixels, granted = self._waiters.popleft()
            self.free -= pixels
            granted.set_result(None)


def _too_large(name: str, size: tuple[int, int], left: int, limit: int) -> PayloadTooLarge:
    width, height = size
    declared = f"image {name!r} is {width}x{height} = {width * height} pixels"
    if left == limit:
        return PayloadTooLarge(f"{declared}, more than max_image_pixels ({limit})")
    return PayloadTooLarge(
        f"{declared}, but the request's images may have max_image_pixels ({limit}) in all and the images before "
        f"it already have {limit - left}"
    )


def _unreadable(name: str) -> InvalidInput:
    return InvalidInput(f"file {name!r} is not a readable PNG or JPEG image")


def _open(name: str, data: bytes, limit: int) -> Image.Image:
    """The image with only its header read: the size it declares, no pixel decoded yet."""
    try:
        with warnings.catch_warnings(action="ignore", category=Image.DecompressionBombWarning):
            return Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError:  # PIL's own limit, far above ours, checked as it opens the file
        raise PayloadTooLarge(f"image {name!r} declares far more pixels than max_image_pixels ({limit})") from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise _unreadable(name) from None


def _decode(name: str, image: Image.Image, preps: dict[str, Preprocessing]) -> dict[str, np.ndarray]:
    """In a pool thread: the pixels at each preprocessing's size; the full-size image is freed on return."""
    try:
        image.load()
        return {
            key: image_pixels(image, height=prep.height, width=prep.width, channels=prep.channels)
            for key, prep in preps.items()
        }
    except (OSError, ValueError, SyntaxError):  # truncated or corrupt past its header
        raise _unreadable(name) from None
    finally:
        image.close()


class ImageDecoder:
    """Decodes uploads in `threads` pool threads, within one `PixelBudget` for the whole process."""

    def __init__(self, threads: int, budget_pixels: int, wait_s: float, retry_after_s: int) -> None:
        self.budget = PixelBudget(budget_pixels)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="decode")
        self._wait_s = wait_s
        self._retry_after_s = retry_after_s

    async def decode(
        self, name: str, data: bytes, preps: dict[str, Preprocessing], left: int, limit: int
    ) -> tuple[dict[str, np.ndarray], int]:
        """One upload as pixels per preprocessing key, and the pixels it declared. `left` of the request's
        `limit` (max_image_pixels) are still free for it."""
        loop = asyncio.get_running_loop()
        image = await loop.run_in_executor(self._pool, _open, name, data, limit)
        declared = image.width * image.height
        try:
            if declared > left:
                raise _too_large(name, image.size, left, limit)
            largest = max(preps.values(), key=lambda p: p.width * p.height)
            image.draft(None, (largest.width, largest.height))  # JPEG: decoded already scaled down, by up to 8
            pixels = image.width * image.height
            await self.budget.acquire(pixels, self._wait_s, self._retry_after_s)
        except BaseException:
            image.close()
            raise
        decoding = loop.run_in_executor(self._pool, _decode, name, image, preps)  # it closes the image
        decoding.add_done_callback(functools.partial(self._decoded, pixels))
        # Shielded: a request cancelled meanwhile (its deadline) leaves the decode running; the pixels go back to
        # the budget when the thread is done with them, not before.
        return await asyncio.shield(decoding), declared

    def _decoded(self, pixels: int, decoding: asyncio.Future[dict[str, np.ndarray]]) -> None:
        self.budget.release(pixels)
        if not decoding.cancelled():
            decoding.exception()  # retrieved here, in case its request is gone

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

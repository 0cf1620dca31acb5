"""The views of the training images: shifted and mirrored copies, drawn at random for the teacher's training and
fixed for the students, whose teacher logits are computed once per view (`logits_cache`).

A view of an image is a shift of up to `MAX_SHIFT` pixels each way (the edge filled with the background) and an
optional horizontal flip. A student's view set is fixed: view 0 is the image itself, view 1 its mirror, views 2..
random shifts and flips drawn once from a seed, so the teacher scores exactly the view the student is shown
(Beyer et al., CVPR 2022: a good teacher is consistent) and distillation costs no teacher pass per epoch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

MAX_SHIFT = 2
FIXED_VIEWS = 2  # the image and its mirror


def shift_flip(x: torch.Tensor, flip: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Each image of x (B, C, H, W) mirrored where `flip` (B,) is set, then cropped at offsets dy, dx (B,) in
    0..2*max_shift of its padded copy (max_shift, max_shift: unshifted)."""
    b, c, h, w = x.shape
    x = torch.where(flip[:, None, None, None].bool(), x.flip(3), x)
    if max_shift == 0:
        return x
    padded = F.pad(x, (max_shift,) * 4, value=float(x.min()))  # (B, C, H+2s, W+2s)
    rows = (torch.arange(h)[None, :] + dy[:, None])[:, None, :, None]  # (B, 1, H, 1)
    cols = (torch.arange(w)[None, :] + dx[:, None])[:, None, None, :]  # (B, 1, 1, W)
    return padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]


def augment(x: torch.Tensor, gen: torch.Generator, *, flip: bool = True, max_shift: int = MAX_SHIFT) -> torch.Tensor:
    """Random horizontal flips and shifts of up to `max_shift` pixels, drawn from `gen` (the teacher's training)."""
    b = len(x)
    flipped = torch.rand(b, generator=gen) < 0.5 if flip else torch.zeros(b, dtype=torch.bool)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=gen)
    return shift_flip(x, flipped, dy, dx, max_shift)


@dataclass(frozen=True)
class ViewSet:
    """Fixed views of n images: `params[v, i]` = (flip, dy, dx) of view v of image i."""

    params: torch.Tensor  # (V, N, 3) int64

    @property
    def count(self) -> int:
        return int(self.params.shape[0])

    def render(self, x: torch.Tensor, view: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Images `idx` of x (N, C, H, W), each in its view `view` (B,) -> (B, C, H, W)."""
        flip, dy, dx = self.params[view, idx].unbind(1)
        return shift_flip(x[idx], flip, dy, dx, MAX_SHIFT)


def fixed_views(n: int, count: int, *, seed: int, mirror: bool = True) -> ViewSet:
    """`count` views of n images: the image, its mirror, then random shifts and flips drawn from `seed`. Without
    `mirror` (classes a mirror changes: text, digits, arrows) no view is flipped: view 1 is the image again."""
    if count < FIXED_VIEWS:
        raise ValueError(f"a view set holds at least the image and its mirror ({FIXED_VIEWS} views), not {count}")
    gen = torch.Generator().manual_seed(seed)
    params = torch.empty(count, n, 3, dtype=torch.int64)
    params[:, :, 1:] = MAX_SHIFT  # unshifted
    params[0, :, 0], params[1, :, 0] = 0, 1
    extra = count - FIXED_VIEWS
    params[2:, :, 0] = torch.randint(0, 2, (extra, n), generator=gen)
    params[2:, :, 1:] = torch.randint(0, 2 * MAX_SHIFT + 1, (extra, n, 2), generator=gen)
    if not mirror:
        params[:, :, 0] = 0
    return ViewSet(params)

"""The students' fixed views: view 0 is the image, view 1 its mirror, the rest fixed random shifts and flips."""

from __future__ import annotations

import pytest
import torch

from distill_training.views import FIXED_VIEWS, MAX_SHIFT, augment, fixed_views, shift_flip

X = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6)


def test_view_zero_is_the_image_and_view_one_its_mirror() -> None:
    views = fixed_views(len(X), 4, seed=0)
    idx = torch.arange(len(X))
    torch.testing.assert_close(views.render(X, torch.zeros_like(idx), idx), X)
    torch.testing.assert_close(views.render(X, torch.ones_like(idx), idx), X.flip(3))


def test_the_other_views_are_shifts_within_the_range_fixed_by_the_seed() -> None:
    views = fixed_views(1000, 5, seed=3)
    assert views.count == 5 and views.params.shape == (5, 1000, 3)
    extra = views.params[FIXED_VIEWS:]
    assert extra[..., 1:].min() == 0 and extra[..., 1:].max() == 2 * MAX_SHIFT
    assert 0.4 < extra[..., 0].float().mean() < 0.6  # about half of them mirrored
    torch.testing.assert_close(fixed_views(1000, 5, seed=3).params, views.params)
    assert not torch.equal(fixed_views(1000, 5, seed=4).params, views.params)


def test_a_shift_moves_the_image_and_fills_with_the_background() -> None:
    flip, dy, dx = torch.tensor([0]), torch.tensor([MAX_SHIFT + 1]), torch.tensor([MAX_SHIFT])  # one row down
    shifted = shift_flip(X[:1], flip, dy, dx, MAX_SHIFT)
    torch.testing.assert_close(shifted[0, 0, :-1], X[0, 0, 1:])
    assert (shifted[0, 0, -1] == X[0].min()).all()


def test_fewer_than_the_image_and_its_mirror_is_refused() -> None:
    with pytest.raises(ValueError, match="at least the image and its mirror"):
        fixed_views(4, 1, seed=0)


def test_the_teachers_random_augmentation_is_seeded() -> None:
    a = augment(X, torch.Generator().manual_seed(7))
    torch.testing.assert_close(augment(X, torch.Generator().manual_seed(7)), a)
    assert a.shape == X.shape


def test_without_mirror_no_view_is_flipped() -> None:
    views = fixed_views(1000, 5, seed=3, mirror=False)
    assert not views.params[..., 0].any()
    torch.testing.assert_close(views.params[..., 1:], fixed_views(1000, 5, seed=3).params[..., 1:])  # same shifts

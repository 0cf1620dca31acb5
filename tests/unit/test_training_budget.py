"""The time budget, from measured speeds: the full recipe where it fits, cuts in a fixed order where it does not,
never below the floors, and never less for a faster machine."""

from __future__ import annotations

import dataclasses

import pytest

from distill_training.budget import (
    SIDE_BY_SIDE,
    Plan,
    Recipe,
    fit_comparison,
    fit_plan,
    fit_students,
    fit_teacher,
    phase_seconds,
    student_seconds,
    teacher_seconds,
)
from distill_training.speed import Speeds

CANDIDATES = ("mlp:128-128", "cnn:16-32", "cnn:32-64", "mobilenet:32x1")
RECIPE = Recipe(
    members=2,
    teacher_epochs=12,
    teacher_min_epochs=6,
    views=4,
    student_epochs=40,
    student_min_epochs=10,
    seeds=3,
    methods=3,
    candidates=CANDIDATES,
)


def speeds(factor: float = 1.0) -> Speeds:
    """Seconds as measured on a 2-core machine, times `factor` (2: a machine half as fast)."""
    return Speeds(
        teacher_epoch_s=[60.0 * factor] * 2,
        teacher_alone_s=35.0 * factor,
        teacher_alone_threads=2,
        teacher_forward_s=[10.0 * factor] * 2,
        student_epoch_s={c: s * factor for c, s in zip(CANDIDATES, (1.0, 5.0, 11.0, 6.0), strict=True)},
        pool_start_s=8.0,
        load_1min=1.0,
        seconds=5.0,
    )


def plan(available_s: float, factor: float = 1.0, recipe: Recipe = RECIPE) -> Plan:
    return fit_plan(speeds(factor), recipe, 2, available_s, teacher_share=0.55)


def test_a_machine_with_time_to_spare_runs_the_full_recipe_and_cuts_nothing() -> None:
    p = plan(1e6)
    assert (p.members, p.teacher_epochs) == (2, 12) and p.cuts == ()
    assert (p.students.epochs, p.students.seeds, p.students.candidates) == (40, 3, CANDIDATES)
    assert p.students.cuts == ()


def test_the_plan_fits_the_budget_it_was_given() -> None:
    for available in (900.0, 1500.0, 3000.0):
        p = plan(available)
        assert p.teacher_s + p.students.estimate_s <= available
        assert p.teacher_s == pytest.approx(teacher_seconds(speeds(), RECIPE, 2, p.members, p.teacher_epochs))


def test_a_faster_machine_never_gets_less() -> None:
    """More members (and never fewer member-epochs: a new member starts at the floor), more candidates and
    seeds, and, with those unchanged, more student epochs."""
    previous = None
    for factor in (4.0, 3.0, 2.0, 1.5, 1.0, 0.7, 0.5, 0.25, 0.1):
        p = plan(900.0, factor)
        now = (p.members, p.members * p.teacher_epochs, len(p.students.candidates), p.students.seeds)
        if previous is not None:
            before, before_epochs = previous
            assert all(n >= b for n, b in zip(now, before, strict=True)), (factor, now, before)
            if now[2:] == before[2:]:
                assert p.students.epochs >= before_epochs
        previous = now, p.students.epochs


def test_epochs_before_members_a_second_member_only_once_each_gets_the_recipes_epochs() -> None:
    two_full = teacher_seconds(speeds(), RECIPE, 2, 2, 12)
    assert (fit_teacher(speeds(), RECIPE, 2, two_full)[:2]) == (2, 12)
    members, epochs, cuts = fit_teacher(speeds(), RECIPE, 2, two_full - 1)
    assert (members, epochs) == (1, 12) and "teacher members 2 -> 1" in cuts
    members, epochs, _ = fit_teacher(speeds(), RECIPE, 2, teacher_seconds(speeds(), RECIPE, 2, 1, 8))
    assert (members, epochs) == (1, 8)


def test_students_are_cut_in_order_epochs_then_the_slowest_candidates_then_seeds_then_overrun() -> None:
    def students(available: float) -> tuple[int, int, tuple[str, ...]]:
        s = fit_students(speeds(), RECIPE, 2, available)
        return s.epochs, s.seeds, s.candidates

    per_epoch_all = student_seconds(speeds(), RECIPE, 2, epochs=1, seeds=3, candidates=CANDIDATES)
    epochs, seeds, candidates = students(per_epoch_all * 20 + 20)
    assert (seeds, candidates) == (3, CANDIDATES) and 10 <= epochs < 40  # first the epochs
    epochs, seeds, candidates = students(per_epoch_all * 8)
    assert candidates == ("mlp:128-128", "cnn:16-32") and seeds == 3 and epochs >= 10  # then the slowest candidates
    epochs, seeds, candidates = students(60.0)
    assert (epochs, seeds, candidates) == (10, 2, ("mlp:128-128", "cnn:16-32"))  # then seeds; never below 2 of each


def test_below_every_floor_the_plan_runs_the_floor_and_says_it_overruns() -> None:
    p = plan(10.0)
    assert (p.members, p.teacher_epochs) == (1, 6) and p.students.epochs == 10
    assert (p.students.seeds, p.students.candidates) == (2, ("mlp:128-128", "cnn:16-32"))
    assert any("overruns" in cut for cut in p.cuts) and any("overruns" in cut for cut in p.students.cuts)


def test_the_cuts_say_what_was_cut_from_what() -> None:
    p = plan(700.0)
    said = "; ".join([*p.cuts, *p.students.cuts])
    assert f"search epochs 40 -> {p.students.epochs}" in said
    if p.teacher_epochs < 12:
        assert f"teacher epochs 12 -> {p.teacher_epochs}" in said


def test_jobs_side_by_side_take_the_longest_core_and_are_slowed_by_sharing_it() -> None:
    assert phase_seconds([], 2) == 0.0
    assert phase_seconds([10.0], 2) == 10.0  # alone: not slowed
    assert phase_seconds([10.0] * 9, 2) == pytest.approx(5 * 10.0 * SIDE_BY_SIDE)  # the ninth runs last
    assert phase_seconds([30.0, 10.0, 10.0, 10.0], 2) == pytest.approx(30.0 * SIDE_BY_SIDE)


def test_a_recipe_of_one_member_trains_it_on_every_core() -> None:
    one = dataclasses.replace(RECIPE, members=1)
    p = plan(1e6, recipe=one)
    assert p.members == 1
    assert teacher_seconds(speeds(), one, 2, 1, 12) == pytest.approx(12 * 35.0 + 4 * 10.0)


def test_the_comparison_fits_the_time_left_from_the_epoch_time_the_search_measured() -> None:
    roomy = fit_comparison(speeds(), 5.0, RECIPE, 2, 1e6)
    assert (roomy.epochs, roomy.seeds, roomy.cuts) == (40, 3, ())
    per_epoch = phase_seconds([5.0] * (RECIPE.methods + 1) * 3, 2)  # every method and the control, three seeds
    tight = fit_comparison(speeds(), 5.0, RECIPE, 2, 8.0 + 20 * per_epoch)
    assert (tight.epochs, tight.seeds) == (20, 3) and tight.estimate_s <= 8.0 + 20 * per_epoch
    busier = fit_comparison(speeds(), 10.0, RECIPE, 2, 8.0 + 20 * per_epoch)
    assert busier.epochs == 10 and busier.seeds == 3  # twice as slow: half the epochs, still at the floor
    tighter = fit_comparison(speeds(), 10.0, RECIPE, 2, 8.0 + 15 * per_epoch)
    assert tighter.seeds == 2 and tighter.epochs >= 10 and "seeds 3 -> 2" in tighter.cuts
    hopeless = fit_comparison(speeds(), 10.0, RECIPE, 2, 10.0)
    assert (hopeless.epochs, hopeless.seeds) == (10, 2) and any("overruns" in c for c in hopeless.cuts)

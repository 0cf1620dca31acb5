"""The time budget: from this machine's measured speed (`speed.Speeds`), how many teacher members and epochs,
student epochs, seeds and candidates fit in `budget.time_budget_min`, and what was cut to get there.

The configured recipe is the most any machine gets; a slower machine gets less, cut in a fixed order, never
below each `min_epochs`. Faster machines therefore get more epochs, up to the recipe. The teacher's share is
fitted first (epochs before members: a second member only once each gets the recipe's epochs); the students
get the rest. Each
later phase is fitted again from the time actually left when it starts: the search once the teacher is done
(`fit_students`), the comparison once the search is done, from the chosen candidate's epoch time as measured
in the search (`fit_comparison`). A machine that turned busy shortens what is left instead of overrunning.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from distill_training.speed import Speeds

# Two nets training side by side on a 2-core machine each ran 1.25-1.3x slower than alone (the shared cache
# and memory bandwidth: teacher members 67 s per epoch against 54 s alone, students 4.2-4.8 s against 3.4 s).
SIDE_BY_SIDE = 1.3
# Below these the run stops being the product: a search of one candidate exports whatever is cheapest to train
# (an MLP, a point and a half below a CNN here), a comparison of one seed has no spread. A machine too busy
# for them overruns the budget instead, and the report says so.
MIN_CANDIDATES, MIN_SEEDS = 2, 2


@dataclass(frozen=True)
class Recipe:
    """The full recipe, and the floors the budget never goes below."""

    members: int
    teacher_epochs: int
    teacher_min_epochs: int
    views: int  # teacher-scored views per training image
    student_epochs: int
    student_min_epochs: int
    seeds: int
    methods: int  # distillation methods compared with the control (including the search's)
    candidates: tuple[str, ...]


@dataclass(frozen=True)
class StudentPlan:
    """The search's epochs and candidates; `seeds` is what the comparison was costed with (it is fitted again
    once the search is done, `ComparisonPlan`)."""

    epochs: int
    seeds: int
    candidates: tuple[str, ...]
    estimate_s: float  # the search and the comparison
    cuts: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    members: int
    teacher_epochs: int
    teacher_threads: int  # for a member that trains alone (0: every core); members side by side share them
    teacher_s: float  # estimated: training and logits
    teacher_train_s: float  # estimated: training alone
    students: StudentPlan
    cuts: tuple[str, ...]  # the teacher's; the students' are in `students.cuts`


def full_plan(recipe: Recipe) -> Plan:
    """What a machine with time to spare gets: the recipe as configured."""
    students = StudentPlan(recipe.student_epochs, recipe.seeds, recipe.candidates, 0.0, ())
    return Plan(recipe.members, recipe.teacher_epochs, 0, 0.0, 0.0, students, ())


def phase_seconds(jobs: list[float], cores: int) -> float:
    """Wall time of jobs (each's time alone) run side by side, one per core, the longest first, each next one
    on the core that frees first; slowed by `SIDE_BY_SIDE` where more than one runs at a time."""
    if not jobs:
        return 0.0
    ends = [0.0] * min(cores, len(jobs))
    for job in sorted(jobs, reverse=True):
        ends[ends.index(min(ends))] += job
    return max(ends) * (SIDE_BY_SIDE if len(ends) > 1 else 1.0)


def teacher_seconds(speeds: Speeds, recipe: Recipe, cores: int, members: int, epochs: int) -> float:
    """Training `members` members for `epochs` each (side by side; one alone on every core), then their
    logits on every view."""
    if members == 1:
        training = epochs * speeds.teacher_alone_s
    else:
        training = epochs * phase_seconds(speeds.teacher_epoch_s[:members], cores) + speeds.pool_start_s
    return training + recipe.views * sum(speeds.teacher_forward_s[:members])


def student_seconds(
    speeds: Speeds, recipe: Recipe, cores: int, *, epochs: int, seeds: int, candidates: tuple[str, ...]
) -> float:
    """The search (every candidate, seed 0), then the comparison (every method and the control on every seed,
    on the chosen architecture: costed as the slowest candidate, since which one wins is not known yet)."""
    search = [speeds.student_epoch_s[c] for c in candidates]
    comparison = [max(search)] * ((recipe.methods + 1) * seeds - 1)
    return epochs * (phase_seconds(search, cores) + phase_seconds(comparison, cores)) + 2 * speeds.pool_start_s


def fit_teacher(speeds: Speeds, recipe: Recipe, cores: int, available_s: float) -> tuple[int, int, tuple[str, ...]]:
    """(members, epochs each, cuts): epochs before members. The most members that each still get the recipe's
    epochs; where not even one does, one member with the most epochs that fit, never below
    `teacher_min_epochs` (one teacher of 12 epochs measured 93.3%, two of 6 averaged 92.7%)."""

    def fits(members: int) -> int:
        fixed = teacher_seconds(speeds, recipe, cores, members, 0)  # the logits, starting the workers
        per_epoch = teacher_seconds(speeds, recipe, cores, members, 1) - fixed
        return math.floor((available_s - fixed) / per_epoch)

    full = [m for m in range(recipe.members, 0, -1) if fits(m) >= recipe.teacher_epochs]
    members = full[0] if full else 1
    epochs = max(recipe.teacher_min_epochs, min(recipe.teacher_epochs, fits(members)))
    cuts = []
    if members < recipe.members:
        cuts.append(f"teacher members {recipe.members} -> {members}")
    if epochs < recipe.teacher_epochs:
        cuts.append(f"teacher epochs {recipe.teacher_epochs} -> {epochs}")
    if fits(members) < recipe.teacher_min_epochs:
        cuts.append(f"the teacher's floor ({epochs} epochs) overruns its share of the budget")
    return members, epochs, tuple(cuts)


def _cheapest(speeds: Speeds, keep: int) -> Callable[[tuple[str, ...]], tuple[str, ...]]:
    """Keep the `keep` candidates that train fastest, in their configured order."""

    def cut(candidates: tuple[str, ...]) -> tuple[str, ...]:
        kept = sorted(candidates, key=lambda c: speeds.student_epoch_s[c])[:keep]
        return tuple(c for c in candidates if c in kept)

    return cut


def fit_students(speeds: Speeds, recipe: Recipe, cores: int, available_s: float) -> StudentPlan:
    """The most student epochs (up to the recipe's) that fit; below `student_min_epochs`, cut in this order:
    the slowest candidates down to `MIN_CANDIDATES`, seeds down to `MIN_SEEDS`; then run at the floor and say
    that it overruns."""
    steps: list[tuple[Callable[[tuple[str, ...]], tuple[str, ...]], int]] = [
        (_cheapest(speeds, MIN_CANDIDATES), recipe.seeds),
        (_cheapest(speeds, MIN_CANDIDATES), min(recipe.seeds, MIN_SEEDS)),
    ]
    candidates, seeds = recipe.candidates, recipe.seeds

    def epochs_that_fit() -> int:
        fixed = student_seconds(speeds, recipe, cores, epochs=0, seeds=seeds, candidates=candidates)
        per_epoch = student_seconds(speeds, recipe, cores, epochs=1, seeds=seeds, candidates=candidates) - fixed
        return min(recipe.student_epochs, math.floor((available_s - fixed) / per_epoch))

    epochs = epochs_that_fit()
    for cut, cut_seeds in steps:
        if epochs >= recipe.student_min_epochs:
            break
        candidates, seeds = cut(candidates), cut_seeds
        epochs = epochs_that_fit()
    overrun = epochs < recipe.student_min_epochs
    epochs = max(epochs, recipe.student_min_epochs)
    estimate = student_seconds(speeds, recipe, cores, epochs=epochs, seeds=seeds, candidates=candidates)
    return StudentPlan(epochs, seeds, candidates, estimate, _student_cuts(recipe, epochs, seeds, candidates, overrun))


def _student_cuts(
    recipe: Recipe, epochs: int, seeds: int, candidates: tuple[str, ...], overrun: bool
) -> tuple[str, ...]:
    cuts = []
    if epochs < recipe.student_epochs:
        cuts.append(f"search epochs {recipe.student_epochs} -> {epochs}")
    dropped = [c for c in recipe.candidates if c not in candidates]
    if dropped:
        cuts.append(f"candidates not trained: {', '.join(dropped)}")
    if overrun:
        cuts.append(f"the search's floor ({epochs} epochs) overruns the budget")
    return tuple(cuts)


def fit_plan(
    speeds: Speeds,
    recipe: Recipe,
    cores: int,
    available_s: float,
    *,
    teacher_share: float,
) -> Plan:
    """The teacher's part first, from `teacher_share` of the time (more where the full students need less),
    then the students' from what it leaves."""
    full_students = student_seconds(
        speeds, recipe, cores, epochs=recipe.student_epochs, seeds=recipe.seeds, candidates=recipe.candidates
    )
    teacher_available = max(available_s * teacher_share, available_s - full_students)
    members, epochs, cuts = fit_teacher(speeds, recipe, cores, teacher_available)
    teacher_s = teacher_seconds(speeds, recipe, cores, members, epochs)
    training_s = teacher_s - recipe.views * sum(speeds.teacher_forward_s[:members])
    students = fit_students(speeds, recipe, cores, available_s - teacher_s)
    return Plan(members, epochs, speeds.teacher_alone_threads, teacher_s, training_s, students, cuts)


@dataclass(frozen=True)
class ComparisonPlan:
    epochs: int
    seeds: int
    estimate_s: float
    cuts: tuple[str, ...]


def fit_comparison(speeds: Speeds, epoch_s: float, recipe: Recipe, cores: int, available_s: float) -> ComparisonPlan:
    """Every method and the control on the chosen candidate, whose epochs take `epoch_s` alone (as measured in
    the search): the most epochs up to the recipe's; below `student_min_epochs`, seeds down to `MIN_SEEDS`;
    then the floor, said to overrun."""
    for seeds in sorted({recipe.seeds, min(recipe.seeds, MIN_SEEDS)}, reverse=True):
        per_epoch = phase_seconds([epoch_s] * ((recipe.methods + 1) * seeds), cores)
        epochs = min(recipe.student_epochs, math.floor((available_s - speeds.pool_start_s) / per_epoch))
        if epochs >= recipe.student_min_epochs:
            break
    overrun = epochs < recipe.student_min_epochs
    epochs = max(epochs, recipe.student_min_epochs)
    cuts = []
    if epochs < recipe.student_epochs:
        cuts.append(f"comparison epochs {recipe.student_epochs} -> {epochs}")
    if seeds < recipe.seeds:
        cuts.append(f"seeds {recipe.seeds} -> {seeds}")
    if overrun:
        cuts.append(f"the comparison's floor ({epochs} epochs) overruns the budget")
    return ComparisonPlan(epochs, seeds, epochs * per_epoch + speeds.pool_start_s, tuple(cuts))

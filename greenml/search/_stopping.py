"""Early stopping for multi-objective searches: a small rule, fed plain numbers, that stops hopeless trials.

Why greenml stops trials itself
    Optuna's pruners only serve single-objective studies (``Trial.report`` raises in a
    multi-objective one), and greenml's studies have several objectives (accuracy, energy per
    inference, latency, size). So the search asks a :class:`StoppingRule` at a few epochs of each
    trial ("rungs") whether the trial should go on, and stores a stopped trial as pruned, with the
    rule's one-line reason.

Why plain numbers
    A rule sees tuples of floats and trial numbers, never a model, a study or a meter: it can be
    tested on constructed tables in microseconds, and anyone can plug in another rule by writing
    the three methods of :class:`StoppingRule` (found by name in :data:`STOPPING_RULES`).

Conventions
    Every objective is a *loss* to minimise: validation error (1 - accuracy), energy per inference
    (J), latency, size... A trial's losses are a tuple with the validation error first and its
    cost losses after it, in the same order for every trial of a search. Only the error changes
    while a trial trains; the costs depend on the deployed artifact's shape, so greenml measures
    them before training.

MO-ASHA: the rule :class:`MOASHA` implements
    Multi-objective asynchronous successive halving (Schmucker, Donini, Zafar, Salinas, Archambeau
    2021, "Multi-objective Asynchronous Successive Halving", arXiv:2106.12639), in its *stopping*
    form: a trial is stopped for good rather than paused for a later promotion (the stopping variant
    of ASHA, Klein et al. 2020, "Model-based Asynchronous Hyperparameter and Neural Architecture
    Search"; syne-tune's ``StoppingRungSystem``). The choices, and why:

    Rungs
        Epochs ``min_epochs * η**k`` (k = 0, 1, ...) rounded to the nearest epoch (halves up),
        duplicates dropped; or the epochs given explicitly. A rung at or after a trial's last
        epoch is not a decision point: the trial just completes.

    Ranking at a rung
        All entries recorded at the rung (the candidate included, each trial once) are sorted
        into Pareto fronts by non-dominated sorting (``moocore.pareto_rank``); better fronts
        come first. Inside a front the order is an ε-net, see below. The candidate's place in
        that order, from 1, is its rank.

    How many go on: the best ⌈n/η⌉ of the n entries at the rung
        For integer η this is exactly syne-tune's stopping rule (go on if the metric is within
        the rung's ``1/η`` quantile, candidate included: top ``⌊(n-1)/η⌋ + 1 = ⌈n/η⌉``). Rounding
        *up* matters for small rungs: ASHA's promotion rule (Li et al. 2020, "A System for
        Massively Parallel Hyperparameter Tuning") keeps the top ``⌊n/η⌋``, which is zero while
        fewer than η trials have reached the rung. That is harmless when a trial waits to be
        promoted later, but a stop is final: with the floor, each of the first η - 1 trials to
        reach a rung would be stopped merely for arriving early. With the ceiling the best entry
        of a rung always goes on, so the first trial to reach a rung always goes on, and a trial
        is only ever stopped because other trials at that rung rank above it. The second arrival
        is judged against the first alone (thin evidence, as in syne-tune and Ray Tune's ASHA);
        the judgement grows sharper as the rung fills.

    Never stop the first front (``keep_front``, on by default; greenml's departure from the paper)
        A trial that no other trial at its rung dominates goes on, whatever its place in the
        order: only dominated trials are stopped, and only outside the best ⌈n/η⌉. In the
        paper a rung's front members beyond the quota are merely not promoted yet and may be
        promoted later; greenml's stop is final, so the quota would end, for good, trade-offs
        that nothing at the rung beats. That matters most where greenml runs: small searches,
        where a rung holds two or three trials, ⌈n/η⌉ keeps one, and the ε-net puts the most
        accurate first, so a cheaper, less accurate, non-dominated trial was stopped for not
        being the most accurate. Without this guard (``keep_front=False``), the early-stopping
        benchmark (10 trials, 5 seeds) stopped every trial but the first of one seed, the
        eventual 0.92 and 0.95 models included, and lost most of that seed's hypervolume (the
        README has the figures with and without it). The price is fewer stops while a rung's
        trials are all trade-offs of each other; a dominated trial is still stopped.

    Tie-break inside a front: ε-net (farthest-first traversal)
        Seeded with the front's lowest validation error; then, repeatedly, the member farthest
        (Euclidean) from all members already taken (Clarkson 2006, "Nearest-neighbor searching
        and metric space dimensions"). This is the ordering Salinas, Perrone, Archambeau and
        Cruchant (2021, "A multi-objective perspective on jointly tuning hardware and
        hyperparameters", NAS workshop at ICLR) use in place of NSGA-II's crowding distance,
        and syne-tune's MOASHA defaults to it. Reasons to prefer it here:

        * The first k of a farthest-first order cover the front to within twice the best
          possible k-centre radius (Gonzalez 1985), so the trials kept span the trade-offs
          rather than crowding around one of them; near-duplicates (the same architecture with
          another learning rate) are taken last.
        * Crowding distance gives every boundary point an infinite distance: with 3 or 4
          objectives most members of a small front are on some boundary, so it decides
          nothing where greenml needs it to, and it is known to degrade beyond two objectives.
        * Hypervolume contributions need a reference point, and the contribution of a front's
          extreme members depends on that arbitrary point; a rung of a few trials gives no
          principled one.
        * Seeding with the lowest error keeps each front's most accurate trial first: accuracy
          is the one objective that further training can change.

    Normalisation for the tie-break: min-max over the front being ordered
        Each objective is mapped to [0, 1] over the members of the front (an objective with
        no spread in the front becomes 0 and plays no part), so errors (~0.1), energies
        (~1e-5 J) and latencies (~0.05 ms) weigh alike. Over the front rather than over the
        whole rung: the distances compare members of this front only, and a diverged trial
        in a worse front (error 0.9) would otherwise squash the error axis and leave the
        order to the costs. Min-max rather than ranks: ranks space two near-identical trials
        as far apart as two different ones, which defeats the point of an ε-net.

    Determinism
        Entries are sorted by trial number before anything is computed and every tie (equal
        losses, equal distances) goes to the lower trial number, so the same table gives the
        same decision whatever its order.

    Before training (``stop_before_training``, off by default): :func:`dominated_at_best_error`
        greenml's addition, not in the paper. A trial whose cost losses are known can be stopped
        before it trains when it would be
        dominated even if it reached the best validation accuracy seen so far. "Seen so far" is
        the final validation accuracy of *complete* trials: stopped trials' accuracies are at
        fewer epochs and running trials have none yet. The candidate's optimistic losses are
        ``(best error, *costs)``; it is hopeless when a complete trial dominates them, which is
        when a complete trial with that best error has costs no higher on every cost objective
        and lower on at least one. Equal costs are a tie, not a domination: the trial trains.
        This is a bet that the candidate will not beat the best accuracy seen, which is least
        safe early in a search, when that best is weak. On the shipped replay table it lost: the
        stopped configurations included the front's most accurate members, and with the cost of
        an artifact shape measured once per study, a stop at the first rung costs little more
        (README, "Benchmark tables and replays"). So it is off unless asked for.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import moocore
import numpy as np

from greenml.errors import ConfigError

__all__ = [
    "MOASHA",
    "STOPPING_RULES",
    "Decision",
    "NoStopping",
    "RungEntry",
    "StoppingRule",
    "dominated_at_best_error",
    "dominates",
    "parse_rule",
    "rule_label",
    "rung_order",
    "stopping_rule",
]


@dataclass(frozen=True)
class RungEntry:
    """One trial's losses at one rung (or, for a complete trial, at its end).

    ``losses`` are all minimised: the validation error (1 - accuracy) first, then the cost losses
    (energy per inference, latency, size ...), in the same order for every trial of a search.
    """

    trial: int
    losses: tuple[float, ...]


@dataclass(frozen=True)
class Decision:
    """What a rule decided about one trial, with the one-line reason greenml stores and prints.

    ``rank`` is the candidate's place (from 1) among the ``entries`` trials at the rung, of which
    the best ``keep`` go on; ``front`` is its Pareto front (1 = non-dominated). ``dominated_by`` is
    the complete trial that made a trial hopeless before training. Fields that do not apply to a
    decision are None.
    """

    stop: bool
    reason: str
    rank: int | None = None
    entries: int | None = None
    keep: int | None = None
    front: int | None = None
    dominated_by: int | None = None


@runtime_checkable
class StoppingRule(Protocol):
    """What the search asks an early-stopping rule; implement these three methods to plug one in."""

    def rungs(self, epochs: int) -> tuple[int, ...]:
        """The epochs after which the rule decides, for a trial that trains ``epochs`` epochs in all.

        Only epochs before the last count: at its last epoch a trial completes.
        """
        ...

    def decide(self, rung: int, candidate: RungEntry, table: Sequence[RungEntry]) -> Decision:
        """Whether ``candidate``, which just reached ``rung``, goes on.

        ``table`` holds the entries other trials recorded at this same rung (an entry for the
        candidate's own trial, from an earlier attempt, is replaced by ``candidate``).
        """
        ...

    def before_training(
        self, trial: int, costs: tuple[float, ...], complete: Sequence[RungEntry]
    ) -> Decision:
        """Whether a trial whose cost losses are ``costs`` should train at all.

        ``complete`` holds complete trials' final losses: ``(validation error, *costs)``.
        """
        ...


class NoStopping:
    """The rule that never stops a trial: every trial trains all its epochs."""

    def rungs(self, epochs: int) -> tuple[int, ...]:
        return ()

    def decide(self, rung: int, candidate: RungEntry, table: Sequence[RungEntry]) -> Decision:
        return Decision(stop=False, reason=f"goes on after epoch {rung}: early stopping is off")

    def before_training(
        self, trial: int, costs: tuple[float, ...], complete: Sequence[RungEntry]
    ) -> Decision:
        return Decision(stop=False, reason="trains: early stopping is off")

    def __repr__(self) -> str:
        return "NoStopping()"


class MOASHA:
    """Multi-objective asynchronous successive halving, stopping variant (see the module docstring).

    ``reduction_factor`` (η > 1): at each rung the best ⌈n/η⌉ of the n trials there go on, and
    rungs are ``min_epochs * η**k`` epochs apart. ``rungs``, when given, replaces that ladder.
    ``keep_front`` (default): a trial that no other trial at its rung dominates goes on too, even
    outside the best ⌈n/η⌉ (see "Never stop the first front" in the module docstring).
    ``stop_before_training`` (off by default; greenml's addition to the rule): a trial dominated
    even at the best accuracy seen so far is stopped before it trains (see "Before training" in
    the module docstring). Off, every trial trains to the first rung and is judged there.
    """

    def __init__(
        self,
        reduction_factor: float = 3,
        min_epochs: int = 1,
        rungs: tuple[int, ...] | None = None,
        keep_front: bool = True,
        stop_before_training: bool = False,
    ) -> None:
        if (
            not isinstance(reduction_factor, (int, float))
            or not math.isfinite(reduction_factor)
            or reduction_factor <= 1
        ):
            raise ConfigError(
                f"mo-asha reduction_factor must be a finite number > 1 (e.g. 3); got {reduction_factor!r}"
            )
        if isinstance(min_epochs, bool) or not isinstance(min_epochs, int) or min_epochs < 1:
            raise ConfigError(f"mo-asha min_epochs must be an integer >= 1; got {min_epochs!r}")
        if rungs is not None:
            rungs = tuple(rungs)
            if not rungs:
                raise ConfigError(
                    "mo-asha rungs is empty; give positive integers in increasing order (e.g. 1,3,9), "
                    "or use the stopping rule 'none'"
                )
            well_formed = all(isinstance(r, int) and not isinstance(r, bool) and r >= 1 for r in rungs)
            if not well_formed or any(a >= b for a, b in itertools.pairwise(rungs)):
                raise ConfigError(
                    f"mo-asha rungs must be integers >= 1 in strictly increasing order (e.g. 1,3,9); got {rungs!r}"
                )
        if not isinstance(keep_front, bool):
            raise ConfigError(f"mo-asha keep_front must be true or false; got {keep_front!r}")
        if not isinstance(stop_before_training, bool):
            raise ConfigError(
                f"mo-asha stop_before_training must be true or false; got {stop_before_training!r}"
            )
        self.stop_before_training = stop_before_training
        self.reduction_factor = float(reduction_factor)
        self.keep_front = keep_front
        self.min_epochs = min_epochs
        self.fixed_rungs = rungs

    def __repr__(self) -> str:
        return (
            f"MOASHA(reduction_factor={self.reduction_factor:g}, min_epochs={self.min_epochs}, "
            f"rungs={self.fixed_rungs!r}, keep_front={self.keep_front}, "
            f"stop_before_training={self.stop_before_training})"
        )

    def rungs(self, epochs: int) -> tuple[int, ...]:
        if self.fixed_rungs is not None:
            return tuple(r for r in self.fixed_rungs if r < epochs)
        ladder: list[int] = []
        k = 0
        while True:
            # Recomputed from k each time, not multiplied up, so 3**k stays exact.
            rung = math.floor(self.min_epochs * self.reduction_factor**k + 0.5)
            if rung >= epochs:
                return tuple(ladder)
            if not ladder or rung > ladder[-1]:
                ladder.append(rung)
            k += 1

    def keep(self, entries: int) -> int:
        """How many of ``entries`` trials at a rung go on: ⌈entries/η⌉ (never 0 for entries >= 1)."""
        # Rounded first so that 9/3 or 3/1.5 is not pushed up a whole trial by a last-bit error.
        return math.ceil(round(entries / self.reduction_factor, 9))

    def decide(self, rung: int, candidate: RungEntry, table: Sequence[RungEntry]) -> Decision:
        entries = [candidate, *(entry for entry in table if entry.trial != candidate.trial)]
        position, front = _position(entries, candidate.trial)
        n = len(entries)
        keep = self.keep(n)
        protected = self.keep_front and front == 1
        stop = position >= keep and not protected
        verdict = f"stopped at epoch {rung}" if stop else f"goes on after epoch {rung}"
        ranked = (
            f"ranked {position + 1} of {n} trial{'s' if n != 1 else ''} at this rung (Pareto front {front})"
        )
        best = f"the best {keep} (1/η with η={self.reduction_factor:g}, rounded up) go on"
        if protected and position >= keep:
            reason = f"{verdict}: no trial at this rung dominates it ({ranked}; {best}, and every trial on front 1)"
        else:
            reason = f"{verdict}: {ranked}; {best}"
        return Decision(stop=stop, reason=reason, rank=position + 1, entries=n, keep=keep, front=front)

    def before_training(
        self, trial: int, costs: tuple[float, ...], complete: Sequence[RungEntry]
    ) -> Decision:
        if not self.stop_before_training:
            return Decision(stop=False, reason="trains: stopping before training is off")
        dominator = dominated_at_best_error(costs, complete)
        if not complete:
            return Decision(stop=False, reason="trains: no trial has completed yet to compare its costs with")
        best_error = min(entry.losses[0] for entry in complete)
        if dominator is None:
            return Decision(
                stop=False,
                reason=(
                    f"trains: no complete trial with the best validation error so far ({best_error:.4g}) "
                    "costs no more on every cost objective and less on one"
                ),
            )
        return Decision(
            stop=True,
            reason=(
                f"stopped before training: complete trial {dominator.trial}, with the best validation error "
                f"so far ({best_error:.4g}), costs no more on every cost objective and less on one, so "
                f"trial {trial} would be dominated even at that accuracy"
            ),
            dominated_by=dominator.trial,
        )


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether losses ``a`` Pareto-dominate ``b``: no higher anywhere and lower somewhere."""
    if len(a) != len(b):
        raise ValueError(f"cannot compare {len(a)} losses with {len(b)}")
    pairs = list(zip(a, b, strict=True))
    return all(x <= y for x, y in pairs) and any(x < y for x, y in pairs)


def dominated_at_best_error(costs: Sequence[float], complete: Sequence[RungEntry]) -> RungEntry | None:
    """The complete trial that dominates a candidate even at the best error seen, or None.

    ``complete`` holds complete trials' final losses ``(validation error, *costs)``. The candidate
    is given the best (lowest) final validation error among them; a complete trial dominating
    ``(best error, *costs)`` necessarily has that best error itself, and costs no higher than
    ``costs`` everywhere and lower somewhere. Of several such trials the lowest-numbered is returned.
    """
    if not all(math.isfinite(cost) for cost in costs):
        raise ValueError(f"the candidate has a non-finite cost: {tuple(costs)}")
    if not complete:
        return None
    _check_losses(complete, width=len(costs) + 1)
    best_error = min(entry.losses[0] for entry in complete)
    optimistic = (best_error, *costs)
    for entry in sorted(complete, key=lambda e: e.trial):
        if dominates(entry.losses, optimistic):
            return entry
    return None


def rung_order(entries: Sequence[RungEntry]) -> tuple[int, ...]:
    """The trial numbers of a rung's entries, best first: by Pareto front, then by ε-net inside each."""
    if not entries:
        return ()
    return tuple(trial for trial, _ in _placed(entries))


def _check_losses(entries: Sequence[RungEntry], width: int | None = None) -> None:
    seen: set[int] = set()
    width = width if width is not None else len(entries[0].losses)
    for entry in entries:
        if entry.trial in seen:
            raise ValueError(f"trial {entry.trial} appears twice in one table")
        seen.add(entry.trial)
        if len(entry.losses) != width or width == 0:
            raise ValueError(
                f"trial {entry.trial} has {len(entry.losses)} losses where {width} were expected"
            )
    finite = np.isfinite(np.array([entry.losses for entry in entries], dtype=float)).all(axis=1)
    if not finite.all():
        entry = entries[int(np.flatnonzero(~finite)[0])]
        raise ValueError(f"trial {entry.trial} has a non-finite loss: {entry.losses}")


def _fronts(entries: Sequence[RungEntry]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """The entries' trials in ascending order, their losses (rows) and Pareto fronts (from 0)."""
    _check_losses(entries)
    by_trial = sorted(entries, key=lambda e: e.trial)
    points = np.array([entry.losses for entry in by_trial], dtype=float)
    return [entry.trial for entry in by_trial], points, np.asarray(moocore.pareto_rank(points))


def _placed(entries: Sequence[RungEntry]) -> list[tuple[int, int]]:
    """(trial, front from 1) for every entry, best first."""
    trials, points, fronts = _fronts(entries)
    placed: list[tuple[int, int]] = []
    for front in np.unique(fronts):
        members = np.flatnonzero(fronts == front)  # ascending, so in trial order
        order = _epsilon_net(points[members])
        placed.extend((trials[members[i]], int(front) + 1) for i in order)
    return placed


def _position(entries: Sequence[RungEntry], trial: int) -> tuple[int, int]:
    """Where ``trial`` falls in :func:`_placed`'s order (from 0), and its front (from 1), ordering
    only its own front: every entry of a better front comes before it, of a worse one after."""
    trials, points, fronts = _fronts(entries)
    index = trials.index(trial)
    members = np.flatnonzero(fronts == fronts[index])  # ascending, so in trial order
    order = _epsilon_net(points[members])
    inside = order.index(int(np.flatnonzero(members == index)[0]))
    return int(np.count_nonzero(fronts < fronts[index])) + inside, int(fronts[index]) + 1


def _epsilon_net(points: np.ndarray) -> list[int]:
    """Farthest-first order of ``points`` (rows in trial order), seeded with the lowest first loss.

    Each loss is min-max normalised over these points first. ``argmin``/``argmax`` return the
    first of equal values, so ties go to the lower trial number.
    """
    low = points.min(axis=0)
    spread = points.max(axis=0) - low
    spread[spread == 0] = 1.0
    scaled = (points - low) / spread
    first = int(np.argmin(points[:, 0]))
    order = [first]
    taken = np.zeros(len(points), dtype=bool)
    taken[first] = True
    nearest = np.linalg.norm(scaled - scaled[first], axis=1)
    while len(order) < len(points):
        pick = int(np.argmax(np.where(taken, -np.inf, nearest)))
        order.append(pick)
        taken[pick] = True
        nearest = np.minimum(nearest, np.linalg.norm(scaled - scaled[pick], axis=1))
    return order


STOPPING_RULES: dict[str, Callable[..., StoppingRule]] = {
    "none": NoStopping,
    "mo-asha": MOASHA,
}


def stopping_rule(name: str, **settings: object) -> StoppingRule:
    """The stopping rule registered as ``name``, built with ``settings``; ConfigError names the valid ones."""
    try:
        factory = STOPPING_RULES[name]
    except KeyError:
        raise ConfigError(
            f"unknown stopping rule {name!r}; valid: {', '.join(sorted(STOPPING_RULES))}"
        ) from None
    accepted = list(inspect.signature(factory).parameters)
    unknown = sorted(set(settings) - set(accepted))
    if unknown and not accepted:
        raise ConfigError(f"stopping rule {name!r} takes no settings; got {', '.join(unknown)}")
    if unknown:
        raise ConfigError(
            f"stopping rule {name!r} has no setting {unknown[0]!r}; valid: {', '.join(accepted)}"
        )
    return factory(**settings)


def parse_rule(spec: str) -> tuple[str, dict[str, object]]:
    """``NAME`` or ``NAME(key=value,...)`` as a rule's name and settings (ConfigError otherwise).

    Values are ``true``/``false``, numbers, or epochs joined by ``/`` for ``rungs`` (``1/3/9``):
    ``mo-asha(reduction_factor=2,stop_before_training=false)``. Used where several variants of a
    rule are compared side by side (``greenml bench run``); ``greenml search`` has a flag for each.
    """
    text = spec.strip()
    name, paren, rest = text.partition("(")
    name = name.strip()
    if name not in STOPPING_RULES:
        raise ConfigError(f"unknown stopping rule {name!r}; valid: {', '.join(sorted(STOPPING_RULES))}")
    if not paren:
        return name, {}
    if not rest.endswith(")"):
        raise ConfigError(
            f"stopping rule {spec!r}: settings go in parentheses, e.g. {name}(key=value,key=value)"
        )
    settings: dict[str, object] = {}
    for item in filter(None, (part.strip() for part in rest[:-1].split(","))):
        key, equals, value = (s.strip() for s in item.partition("="))
        if not equals or not key or not value:
            raise ConfigError(f"stopping rule {spec!r}: {item!r} is not key=value")
        settings[key] = _setting_value(key, value)
    stopping_rule(name, **settings)  # a one-line error for an unknown setting or a bad value
    return name, settings


def rule_label(name: str, settings: dict[str, object]) -> str:
    """The spec :func:`parse_rule` reads back: ``name`` and its settings, in the order given."""
    if not settings:
        return name

    def text(value: object) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, tuple | list):
            return "/".join(str(v) for v in value)
        return f"{value:g}" if isinstance(value, float) else str(value)

    return f"{name}({','.join(f'{k}={text(v)}' for k, v in settings.items())})"


def _setting_value(key: str, value: str) -> object:
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if key == "rungs" or "/" in value:
        try:
            return tuple(int(part) for part in value.split("/"))
        except ValueError:
            raise ConfigError(f"{value!r}: rungs are whole epochs joined by '/', e.g. 1/3/9") from None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value

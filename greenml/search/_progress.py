"""What a running search shows: where each running trial is, and one line per finished trial.

A trial reports its steps (each phase as it starts, each training epoch as it ends) through
``TrialContext.on_progress``. The search keeps the latest step in the trial's user attribute
``progress`` (:data:`greenml.records.PROGRESS`), so a worker's trials can be followed from
another process (the parent of ``--workers N``, optuna-dashboard), and a failed trial records
where it stopped.

:class:`Progress` draws the steps. On a terminal it keeps one live status line (rich's
:class:`~rich.live.Live`): the trial, its phase, epoch i/n, its elapsed time and the study's
energy so far, with the finished trials' lines printed above it. Anywhere else (a log file, a
Slurm job's output) it writes plain lines, one per phase, and nothing per epoch.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from greenml import records
from greenml.units import human, number, quantity_of

__all__ = ["FRONT_HINT", "Progress", "Step", "StepRecorder", "step_of", "trial_line"]

# How often a running trial's epoch is written to the storage at most; a new phase always is.
STORE_EVERY_S = 5.0


@dataclass
class Step:
    """Where one running trial is: ``phase`` with ``epoch`` of ``epochs`` done (0 of 0 outside training)."""

    trial: int | None  # None: the study's distillation teacher
    phase: str
    epoch: int = 0
    epochs: int = 0
    started_at: float = 0.0  # the trial's start, Unix seconds
    worker: int | None = None

    def describe(self, now: float | None = None, worker: bool = False) -> str:
        elapsed = _clock((now if now is not None else time.time()) - self.started_at)
        by = f" (worker {self.worker})" if worker and self.worker is not None else ""
        where = f"{self.phase} epoch {self.epoch}/{self.epochs}" if self.epochs else self.phase
        return f"{self.name}{by} {where} {elapsed}"

    @property
    def name(self) -> str:
        return "teacher" if self.trial is None else f"trial {self.trial}"


def step_of(trial: Any) -> Step | None:
    """The step a (running) trial stored last, or None before its first."""
    # The trial's latest step: {"phase", "epoch", "epochs", "started_at", "at"} (Unix seconds).
    record = records.trial_progress(trial)
    if record is None or "phase" not in record:
        return None
    worker = (trial.user_attrs.get(records.WORKER) or {}).get("number")
    return Step(
        trial.number,
        str(record["phase"]),
        int(record.get("epoch", 0)),
        int(record.get("epochs", 0)),
        float(record.get("started_at", 0.0)),
        worker,
    )


class StepRecorder:
    """The ``on_progress`` callback of one trial: stores each step (epochs at most every
    :data:`STORE_EVERY_S`) and shows it on ``progress``."""

    def __init__(
        self,
        trial: Any,
        progress: Progress | None,
        energy_so_far: Callable[[], float],
        worker: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.trial = trial
        self.progress = progress
        self.energy_so_far = energy_so_far
        self.clock = clock
        self.started_at = clock()
        self.worker = worker
        self._stored_phase: str | None = None
        self._stored_at = -float("inf")
        self._latest: dict[str, Any] | None = None
        self._stored: dict[str, Any] | None = None

    def __call__(self, phase: str, epoch: int = 0, epochs: int = 0) -> None:
        now = self.clock()
        step = Step(self.trial.number, phase, epoch, epochs, self.started_at, self.worker)
        self._latest = {
            "phase": phase,
            "epoch": epoch,
            "epochs": epochs,
            "started_at": self.started_at,
            "at": now,
        }
        if phase != self._stored_phase or now - self._stored_at >= STORE_EVERY_S or epoch == epochs > 0:
            self.flush()
        if self.progress is not None:
            self.progress.running([step], self.energy_so_far())

    def flush(self) -> None:
        """Store the latest step if it is not yet (a failing trial records where it stopped)."""
        if self._latest is not None and self._latest is not self._stored:
            records.record_step(self.trial, self._latest)
            self._stored = self._latest
            self._stored_phase, self._stored_at = self._latest["phase"], self._latest["at"]


class Progress:
    """The search's progress on ``stream`` (stderr by default): live on a terminal, plain lines elsewhere.

    ``live=None`` asks the stream whether it is a terminal. Use it as a context manager, or call
    :meth:`close` before printing anything else to the stream.
    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        live: bool | None = None,
        write: Callable[[str], None] | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        # ``write`` takes the lines instead of the stream (always plain): a test, a log handler.
        self._write = write
        self.live = write is None and bool(live if live is not None else _isatty(self.stream))
        self._steps: list[Step] = []
        self._energy_j: float | None = None
        self._shown: set[tuple[int | None, str]] = set()
        self._workers = False
        self._display: Any = None
        self._console: Any = None
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._console = Console(file=self.stream, highlight=False, soft_wrap=True)
            self._display = Live(
                get_renderable=self._status,
                console=self._console,
                refresh_per_second=2,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._display.start()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def line(self, text: str) -> None:
        """A line that stays: a finished trial, the teacher, a warning."""
        if self._console is not None:
            self._console.print(text, markup=False, highlight=False)
        elif self._write is not None:
            self._write(text)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        """A message of the search's own (the teacher, a stale trial), marked as greenml's."""
        self.line(f"greenml: {text}")

    def running(self, steps: Sequence[Step], energy_j: float | None, workers: bool = False) -> None:
        """The trials running now and the study's energy so far (measured through their last phase)."""
        self._steps, self._energy_j, self._workers = list(steps), energy_j, workers
        new = [s for s in steps if (s.trial, s.phase) not in self._shown]
        for step in new:
            self._shown.add((step.trial, step.phase))
        if self._display is not None:
            if new:  # a phase change is drawn at once, not at the next tick
                self._display.refresh()
            return
        for step in new:
            if step.trial is None:  # the teacher's start and end are notes of their own
                continue
            total = f", {step.epochs} epochs" if step.epochs else ""
            by = f" (worker {step.worker})" if workers and step.worker is not None else ""
            energy = f" | search energy {human('energy', energy_j)}" if energy_j is not None else ""
            elapsed = _clock(time.time() - step.started_at)
            self.line(f"  trial {step.trial}{by}: {step.phase}{total} | at {elapsed} in the trial{energy}")

    def _status(self) -> Any:
        from rich.text import Text

        if not self._steps:
            return Text("")
        now = time.time()
        shown = " · ".join(step.describe(now, self._workers) for step in self._steps)
        energy = f" | search energy {human('energy', self._energy_j)}" if self._energy_j is not None else ""
        return Text(shown + energy, style="bold", no_wrap=True, overflow="ellipsis")

    def close(self) -> None:
        if self._display is not None:
            self._display.stop()
            self._display = None


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


# The end-of-trial line: these first, in this order, then any other objective.
_SHOWN_FIRST = ("accuracy", "inference_energy_j", "latency_ms")
_LABELS = {"accuracy": "accuracy", "inference_energy_j": "energy/inference", "latency_ms": "latency"}


def trial_line(study: Any, trial: Any, config: Any, energy_j: float, workers: bool) -> str:
    """One finished trial: its outcome, what it measured and took, the front's size, the study's energy.

    ``[k/N complete]`` counts the trials that count toward ``--trials`` (under early stopping,
    ``[k/N done]``: complete or stopped) that had ended when this one did.
    """
    from optuna.trial import TrialState

    from greenml.search._rungs import counts_toward_trials

    counted = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if counts_toward_trials(t)
    ]
    finished = trial.datetime_complete
    done = sum(1 for t in counted if finished is None or t.datetime_complete <= finished)
    target = f"/{config.trials}" if config.trials else ""
    word = "done" if config.early_stopping != "none" else "complete"
    objectives = config.objectives
    worker = (trial.user_attrs.get(records.WORKER) or {}).get("number")
    by = f" (worker {worker})" if workers and worker is not None else ""
    surplus, stopped = records.trial_surplus(trial), records.trial_stopped(trial)
    if surplus is not None:
        outcome = "not run: " + surplus
    elif trial.state == TrialState.FAIL:
        error = trial.user_attrs.get(records.ERROR) or "its worker stopped sending heartbeats"
        step = step_of(trial)
        where = f" in {step.phase}" if step is not None else ""
        outcome = f"failed{where}: {error[:80]}"
    elif stopped is not None:
        outcome = stopped
    elif trial.state == TrialState.COMPLETE:
        outcome = "ok: " + _measured(records.trial_metrics(trial), objectives)
    else:
        outcome = trial.state.name.lower()
    return (
        f"[{done}{target} {word}] trial {trial.number}{by} {outcome} | "
        f"front size {len(study.best_trials)} | search energy {human('energy', energy_j)}"
    )


def _measured(metrics: dict[str, float], objectives: Sequence[str]) -> str:
    names = [*_SHOWN_FIRST, *(name for name in objectives if name not in _SHOWN_FIRST)]
    parts = []
    for name in names:
        if name not in metrics:
            continue
        quantity = quantity_of(name)
        value = metrics[name]
        shown = number(value, 4) if quantity == "fraction" else human(quantity or "fraction", value)
        parts.append(f"{_LABELS.get(name, name)} {shown}")
    if "trial_seconds" in metrics:
        parts.append(f"took {human('duration', metrics['trial_seconds'])}")
    return ", ".join(parts)


FRONT_HINT = (
    "front size: how many complete trials no other complete trial beats on every objective "
    "(the Pareto front; the report marks them)"
)

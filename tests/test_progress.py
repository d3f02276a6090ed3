"""A search you can watch: the live line on a terminal, a line per phase in logs, the end-of-trial line."""

from __future__ import annotations

import io
import os
import pty
import re
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from greenml.cli import main
from greenml.config import MeasureConfig
from greenml.records import PROGRESS as STEP_ATTR
from greenml.search import SearchConfig, prepare, run
from greenml.search._progress import Progress, Step, StepRecorder, step_of
from greenml.testing.synthetic import evaluate


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_progress_writes_a_line_per_phase_and_none_per_epoch() -> None:
    lines: list[str] = []
    progress = Progress(write=lines.append)
    assert not progress.live
    for epoch in range(4):
        progress.running([Step(3, "train", epoch, 3, 0.0)], 12.5)
    progress.running([Step(3, "compress", 0, 0, 0.0)], 20.0)
    progress.running([Step(None, "training", 1, 30, 0.0)], None)  # the teacher: announced as a note
    assert len(lines) == 2
    assert lines[0].startswith("  trial 3: train, 3 epochs | at ") and lines[0].endswith(
        "search energy 12.5 J"
    )
    assert lines[1].startswith("  trial 3: compress |")


def test_live_progress_draws_the_trial_phase_epoch_time_and_energy_on_a_terminal() -> None:
    terminal = _Terminal()
    with Progress(terminal) as progress:
        assert progress.live
        progress.running([Step(7, "train", 2, 5, 0.0)], 4200.0)
        progress.line("[1/3 complete] trial 6 ok")
        progress.running([Step(7, "finetune", 1, 2, 0.0)], 4300.0)
    shown = terminal.getvalue()
    assert "\x1b[2K" in shown  # the line is redrawn in place, not appended
    assert re.search(r"trial 7 train epoch 2/5 \d+:\d\d:\d\d \| search energy 1\.17 Wh", shown)
    assert "trial 7 finetune epoch 1/2" in shown
    assert "[1/3 complete] trial 6 ok\n" in shown


class _Trial:
    number = 4

    def __init__(self) -> None:
        self.user_attrs: dict[str, Any] = {}

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value


def test_a_trials_steps_are_stored_at_each_phase_and_at_most_every_few_seconds_per_epoch() -> None:
    now = [1000.0]
    trial = _Trial()
    trial.user_attrs["worker"] = {"number": 1}
    writes: list[dict[str, Any]] = []
    original = trial.set_user_attr

    def counting(key: str, value: Any) -> None:
        writes.append(value)
        original(key, value)

    trial.set_user_attr = counting  # type: ignore[method-assign]
    record = StepRecorder(trial, None, lambda: 0.0, worker=1, clock=lambda: now[0])
    record("train", 0, 20)
    for epoch in range(1, 21):
        now[0] += 1.0
        record("train", epoch, 20)
    record("compress", 0, 0)
    # The phase starts, every 5 s of epochs, the last epoch, and the next phase.
    assert [(w["phase"], w["epoch"]) for w in writes] == [
        ("train", 0),
        ("train", 5),
        ("train", 10),
        ("train", 15),
        ("train", 20),
        ("compress", 0),
    ]
    step = step_of(trial)
    assert step is not None and (step.phase, step.worker, step.started_at) == ("compress", 1, 1000.0)


def _config(tmp_path: Path, **overrides: Any) -> SearchConfig:
    settings: dict[str, Any] = {
        "storage": f"sqlite:///{tmp_path}/watch.db",
        "study": f"watch-{uuid.uuid4().hex[:8]}",
        "trials": 3,
        "measure": MeasureConfig(meter="estimate", idle_seconds=0, watts_per_core=10.0),
        "distillation": False,
        "artifacts": str(tmp_path / "artifacts"),
    }
    settings.update(overrides)
    return SearchConfig(**settings)


def _run(config: SearchConfig, evaluate: Any) -> tuple[Any, list[str]]:
    """Run a search in-process; its study and the progress lines it wrote."""
    search = prepare(config, evaluate=evaluate)
    lines: list[str] = []
    try:
        run(search, lines.append)
    finally:
        search.close()
    return search.study, lines


def test_a_search_prints_each_phase_and_each_trials_figures_and_front_size(tmp_path: Path) -> None:
    study, lines = _run(_config(tmp_path), evaluate)
    for trial in study.trials:
        phases = [line for line in lines if line.startswith(f"  trial {trial.number}: ")]
        assert [line.split(": ")[1].split(" |")[0] for line in phases] == ["train, 2 epochs", "benchmark"]
        assert trial.user_attrs[STEP_ATTR]["phase"] == "benchmark"
    ends = [line for line in lines if line.startswith("[")]
    assert len(ends) == 3
    for line, trial in zip(ends, study.trials, strict=True):
        metrics = trial.user_attrs["metrics"]
        assert f"accuracy {metrics['accuracy']:.4f}" in line
        assert re.search(
            r"energy/inference [\d.]+ (nJ|µJ|mJ|J), latency [\d.]+ (µs|ms|s), took [\d.]+ s", line
        )
        assert "e-0" not in line
    # "front size N" is the front as it stood when the trial ended.
    fronts = [int(re.search(r"front size (\d+)", line).group(1)) for line in ends]  # type: ignore[union-attr]
    assert fronts[-1] == len(study.best_trials)
    assert sum("front size: how many complete trials" in line for line in lines) == 1


def _fails_in_training(trial: Any, ctx: Any) -> dict[str, float]:
    trial.suggest_float("x", 0.0, 1.0)
    ctx.on_progress("train", 0, 4)
    ctx.on_progress("train", 1, 4)
    raise RuntimeError("loss became nan in epoch 2")


def test_a_failed_trial_says_in_which_phase_it_stopped(tmp_path: Path) -> None:
    study, lines = _run(_config(tmp_path, trials=1, max_consecutive_failures=1), _fails_in_training)
    (trial,) = study.trials
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs[STEP_ATTR]["phase"] == "train" and trial.user_attrs[STEP_ATTR]["epoch"] == 1
    assert any("trial 0 failed in train: RuntimeError: loss became nan" in line for line in lines)


def _search_argv(tmp_path: Path) -> list[str]:
    return [
        "search",
        "--trials",
        "1",
        "--epochs",
        "2",
        "--no-distillation",
        "--no-report",
        "--idle-seconds",
        "0",
        "--early-stopping",
        "none",
        "--storage",
        f"sqlite:///{tmp_path}/cli.db",
        "--artifacts",
        str(tmp_path / "artifacts"),
    ]


def test_greenml_search_on_a_pty_keeps_one_live_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    terminal = os.fdopen(slave, "w", encoding="utf-8", buffering=1)
    monkeypatch.setattr(sys, "stderr", terminal)
    try:
        assert main(_search_argv(tmp_path)) == 0
    finally:
        monkeypatch.undo()
        terminal.close()
        reader.join(timeout=10)
        os.close(master)
    shown = b"".join(chunks).decode()
    assert "\x1b[2K" in shown  # redrawn in place
    assert re.search(r"trial 0 train epoch [012]/2 \d+:\d\d \| search energy", shown)
    assert re.search(r"trial 0 benchmark \d+:\d\d \| search energy", shown)
    assert "  trial 0: train" not in shown  # the per-phase log lines are for logs, not terminals
    assert re.search(r"\[1/1 complete\] trial 0 ok: accuracy 0\.\d{4}, energy/inference", shown)


def test_greenml_search_into_a_log_writes_plain_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_search_argv(tmp_path)) == 0
    err = capsys.readouterr().err
    assert "\x1b[" not in err
    phases = re.findall(r"^  trial 0: (\w+)", err, flags=re.MULTILINE)
    assert phases[:2] == ["train", "compress"] and phases[-2:] == ["evaluate", "benchmark"]
    assert re.search(
        r"^\[1/1 complete\] trial 0 ok: .* \| front size 1 \| search energy [\d.]+ J$", err, re.M
    )
    study = optuna.load_study(study_name="mlp-digits-random-seed0", storage=f"sqlite:///{tmp_path}/cli.db")
    assert study.trials[0].user_attrs[STEP_ATTR]["phase"] == "benchmark"

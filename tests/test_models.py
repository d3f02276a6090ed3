"""Models out: each trial's deployed artifact kept, pruned to the front, exported with its card."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import optuna
import pytest

from greenml.cli import main
from greenml.config import MeasureConfig
from greenml.errors import ConfigError
from greenml.models import knee_trial, pick_trial
from greenml.search import SearchConfig, prepare, run
from greenml.testing.studies import make_study

# The three deployment forms: torch (a torch.export program), ONNX, and int8 ONNX.
DEPLOYMENTS = [
    {"runtime": "torch", "pruning": "structured"},
    {"runtime": "onnxruntime", "quantization": "none"},
    {"runtime": "onnxruntime", "quantization": "static"},
    {"runtime": "onnxruntime", "quantization": "dynamic"},
]


def _search(tmp_path: Path, keep: str, trials: int = 4) -> Any:
    config = SearchConfig(
        storage=f"sqlite:///{tmp_path}/models.db",
        study="models",
        trials=trials,
        epochs=(2, 3),
        distillation=False,
        energy_window_s=0.05,
        latency_s=0.05,
        measure=MeasureConfig(meter="estimate", idle_seconds=0),
        keep_models=keep,
        early_stopping="none",  # every queued deployment must complete
    )
    search = prepare(config)
    for params in DEPLOYMENTS[:trials]:
        search.study.enqueue_trial(params, skip_if_exists=False)
    try:
        run(search)
    finally:
        search.close()
    return optuna.load_study(study_name="models", storage=config.storage_url)


def _model_argv(tmp_path: Path, number: int, out: Path) -> list[str]:
    storage = f"sqlite:///{tmp_path}/models.db"
    return ["model", "--study", "models", "--storage", storage, "--trial", str(number), "-o", str(out)]


REPRODUCE = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from greenml.data import load_dataset

    for model, card_path in zip(sys.argv[1::2], sys.argv[2::2]):
        card = json.load(open(card_path))
        data = load_dataset(card["data"]["dataset"], card["data"]["seed"])
        x = data.x_test
        if card["model"]["format"] == "onnx":
            import onnxruntime as ort
            session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            logits = np.concatenate([session.run(None, {name: x[i:i + 256]})[0] for i in range(0, len(x), 256)])
        else:
            import torch
            module = torch.export.load(model).module()
            with torch.no_grad():
                logits = np.concatenate([module(torch.from_numpy(x[i:i + 256])).numpy() for i in range(0, len(x), 256)])
        print(repr(float((logits.argmax(axis=1) == data.y_test).mean())))
    """
)


def test_every_exported_model_reproduces_its_test_accuracy_in_a_fresh_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    study = _search(tmp_path, keep="all")
    assert [t.params["runtime"] for t in study.trials] == [
        "torch",
        "onnxruntime",
        "onnxruntime",
        "onnxruntime",
    ]
    monkeypatch.chdir(tmp_path)
    files: list[str] = []
    for trial in study.trials:
        out = tmp_path / f"trial{trial.number}"
        assert main(_model_argv(tmp_path, trial.number, out)) == 0
        suffix = ".pt2" if trial.params["runtime"] == "torch" else ".onnx"
        card = json.loads((tmp_path / f"trial{trial.number}.card.json").read_text())
        assert card["model"]["file"] == f"trial{trial.number}{suffix}"
        assert card["model"]["quantization"] == trial.params.get("quantization", "none")
        assert card["data"]["input_shape"] == [1, 8, 8] and card["data"]["classes"] == list(range(10))
        assert card["preprocessing"]["formula"].startswith("x' = x / 16")
        assert card["params"] == trial.params and card["metrics"] == trial.user_attrs["metrics"]
        assert card["provenance"]["energy_basis"] == "estimated"
        # ONNX files are the bytes that were measured, byte for byte.
        assert (tmp_path / card["model"]["file"]).stat().st_size == card["model"]["bytes"]
        files += [str(tmp_path / card["model"]["file"]), str(tmp_path / f"trial{trial.number}.card.json")]
    fresh = subprocess.run(
        [sys.executable, "-c", REPRODUCE, *files], capture_output=True, text=True, timeout=300, check=True
    )
    reproduced = [float(line) for line in fresh.stdout.split()]
    assert reproduced == [t.user_attrs["metrics"]["test_accuracy"] for t in study.trials]


def test_keep_models_front_deletes_the_models_off_the_front(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = _search(tmp_path, keep="front", trials=3)
    front = {t.number for t in study.best_trials}
    kept = {
        t.number
        for t in study.trials
        if (tmp_path / "models-artifacts" / t.user_attrs["model"]["artifact_id"]).exists()
    }
    assert kept == front and len(front) < 3
    gone = min(set(range(3)) - front)
    assert main(_model_argv(tmp_path, gone, tmp_path / "x")) == 2
    assert "no longer stored: --keep-models front" in capsys.readouterr().err
    assert not list(tmp_path.glob("x*"))


def test_keep_models_none_saves_nothing(tmp_path: Path) -> None:
    study = _search(tmp_path, keep="none", trials=2)
    assert all("model" not in t.user_attrs for t in study.trials)
    assert not list((tmp_path / "models-artifacts").glob("*"))


def _front_study() -> Any:
    """Three complete trials on (accuracy max, energy min): A=(0.9, 10), B=(0.85, 2), C=(0.5, 1)."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    with pytest.warns(optuna.exceptions.ExperimentalWarning):
        study.set_metric_names(["accuracy", "inference_energy_j"])
    for accuracy, energy, latency in [(0.9, 10.0, 3.0), (0.85, 2.0, 0.5), (0.5, 1.0, 0.2), (0.4, 20.0, 9.0)]:
        metrics = {"accuracy": accuracy, "inference_energy_j": energy, "latency_ms": latency}
        study.add_trial(optuna.create_trial(values=[accuracy, energy], user_attrs={"metrics": metrics}))
    return study


def test_the_knee_is_the_front_trial_nearest_the_ideal_point() -> None:
    # Scaled over the front: A (0, 1), B (0.125, 0.111), C (1, 0): B is nearest (0, 0).
    assert knee_trial(_front_study()).number == 1


@pytest.mark.parametrize(
    ("rule", "number"),
    [
        ("knee", 1),
        ("max accuracy", 0),
        ("min inference_energy_j", 2),
        ("max accuracy where latency_ms<1", 1),
        ("MAX accuracy where latency_ms<1 and inference_energy_j<=1", 2),
        ("min latency_ms where accuracy>=0.8", 1),
    ],
)
def test_pick_rules(rule: str, number: int) -> None:
    assert pick_trial(_front_study(), rule).number == number


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("best", "malformed --pick 'best'"),
        ("max accuracy where", "malformed --pick"),
        ("max speed", "unknown metric 'speed'"),
        ("max accuracy where latency_ms<0.1", "no complete feasible trial"),
        ("max accuracy where speed<1", "unknown metric 'speed'"),
    ],
)
def test_bad_pick_rules_are_one_line(rule: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        pick_trial(_front_study(), rule)


def test_model_without_a_study_lists_the_studies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    storage = f"sqlite:///{tmp_path}/list.db"
    make_study(storage, name="alpha", n_trials=3)
    for argv in (
        ["model", "--pick", "knee", "-o", str(tmp_path / "m")],
        ["report"],
        ["export", "--format", "csv"],
    ):
        assert main([*argv, "--storage", storage]) == 2
        assert f"give --study NAME; studies in {storage}: alpha\n" == capsys.readouterr().err.removeprefix(
            "greenml: error: "
        )
    assert (
        main(["model", "--storage", storage, "--study", "alpha", "--trial", "99", "-o", str(tmp_path / "m")])
        == 2
    )
    assert "no trial 99 in study 'alpha'" in capsys.readouterr().err
    assert (
        main(["model", "--storage", storage, "--study", "alpha", "--trial", "0", "-o", str(tmp_path / "m")])
        == 2
    )
    assert "kept no model" in capsys.readouterr().err

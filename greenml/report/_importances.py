"""Parameter importances per objective, from Optuna's evaluators over the complete trials."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from greenml import records
from greenml.errors import ConfigError
from greenml.report._loss import loss_form

__all__ = ["IMPORTANCE_EVALUATORS", "IMPORTANCE_RELIABLE_TRIALS", "Importances", "importances"]

IMPORTANCE_EVALUATORS = ("mdi", "fanova", "ped-anova")
# Below this many complete trials a random forest's (or fANOVA's) ranking of the parameters
# moves with every new trial: the page says so beside the importances.
IMPORTANCE_RELIABLE_TRIALS = 10


@dataclass(frozen=True)
class Importances:
    """Parameter importances per objective, or why there are none, and how many trials they rest on."""

    values: dict[str, dict[str, float]]  # {objective: {param: importance}}; {} when not computed
    reason: str | None  # why they were not computed; None when they were
    trials: int  # the complete trials with every objective: what the evaluator learnt from

    @property
    def reliable(self) -> bool:
        return self.trials >= IMPORTANCE_RELIABLE_TRIALS


def importances(
    trials: Sequence[Any], objectives: Sequence[str], evaluator: str = "mdi", seed: int = 0
) -> Importances:
    """Parameter importances per objective from Optuna's evaluators, over the complete trials.

    ``trials`` are Optuna ``FrozenTrial`` objects (``study.get_trials()``); they are copied into
    an in-memory study so the storage is read once. ``values`` is empty, with a ``reason``, when
    they cannot be computed (fewer than two complete trials, say). Parameters only some trials
    have (conditional ones) are left out, as Optuna does.
    """
    import warnings

    import optuna

    if evaluator not in IMPORTANCE_EVALUATORS:
        raise ConfigError(
            f"unknown importance evaluator {evaluator!r}; valid: {', '.join(IMPORTANCE_EVALUATORS)}"
        )
    complete = [
        t
        for t in trials
        if t.state == optuna.trial.TrialState.COMPLETE
        and all(name in records.trial_metrics(t) for name in objectives)
    ]
    if len(complete) < 2:
        return Importances(
            {}, f"needs at least 2 complete trials, the study has {len(complete)}", len(complete)
        )
    memory = optuna.create_study(directions=["minimize"] * len(complete[0].values))
    memory.add_trials(complete)
    result: dict[str, dict[str, float]] = {}
    for name in objectives:
        if evaluator == "fanova":
            chosen: Any = optuna.importance.FanovaImportanceEvaluator(seed=seed)
        elif evaluator == "ped-anova":
            chosen = optuna.importance.PedAnovaImportanceEvaluator()
        else:
            chosen = optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=seed)

        def target(trial: Any, name: str = name) -> float:
            # PED-ANOVA asks what makes the target *low*: give it the loss form.
            return loss_form(name, float(records.trial_metrics(trial)[name]))

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                values = optuna.importance.get_param_importances(memory, evaluator=chosen, target=target)
        except (RuntimeError, ValueError) as error:
            return Importances({}, f"Optuna could not compute importances: {error}", len(complete))
        result[name] = {param: float(value) for param, value in values.items()}
    return Importances(result, None, len(complete))

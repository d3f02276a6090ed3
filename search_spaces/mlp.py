"""Multi-layer perceptron: depth, width and dropout."""

from __future__ import annotations

import math

import optuna
from torch import nn

from greenml.data import DataSpec


class MLPSpace:
    name = "mlp"
    description = "multi-layer perceptron: 1-3 hidden layers of 32-256 units, dropout"
    data_kinds = ("image", "sequence", "tabular")

    def build(self, trial: optuna.Trial, data: DataSpec) -> nn.Module:
        n_layers = trial.suggest_int("n_layers", 1, 3)
        width = trial.suggest_categorical("width", [32, 64, 128, 256])
        dropout = trial.suggest_float("dropout", 0.0, 0.3)
        layers: list[nn.Module] = [nn.Flatten()]
        features = math.prod(data.input_shape)
        for _ in range(n_layers):
            layers += [nn.Linear(features, width), nn.ReLU(), nn.Dropout(dropout)]
            features = width
        layers.append(nn.Linear(features, data.num_classes))
        return nn.Sequential(*layers)


SPACE = MLPSpace()

__all__ = ["SPACE", "MLPSpace"]

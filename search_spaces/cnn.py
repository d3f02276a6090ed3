"""MobileNet-style CNN: depthwise-separable blocks and a width multiplier.

Works on images (Conv2d) and on sequences such as MNIST-1D (Conv1d).
"""

from __future__ import annotations

import optuna
from torch import nn

from greenml.data import DataSpec


def _separable(
    conv: type[nn.Module], norm: type[nn.Module], channels_in: int, channels_out: int, stride: int
) -> nn.Sequential:
    """Depthwise (one filter per channel) then pointwise (1x1) convolution, as in MobileNet."""
    return nn.Sequential(
        conv(channels_in, channels_in, 3, stride=stride, padding=1, groups=channels_in, bias=False),
        norm(channels_in),
        nn.ReLU(),
        conv(channels_in, channels_out, 1, bias=False),
        norm(channels_out),
        nn.ReLU(),
    )


class MobileNetSpace:
    name = "cnn"
    description = "MobileNet-style CNN: depthwise-separable blocks (1-4), width multiplier 0.25-1.0"
    # Convolutions need neighbouring positions; a table's columns have no order.
    data_kinds = ("image", "sequence")

    def build(self, trial: optuna.Trial, data: DataSpec) -> nn.Module:
        width = trial.suggest_categorical("width_multiplier", [0.25, 0.5, 0.75, 1.0])
        n_blocks = trial.suggest_int("n_blocks", 1, 4)
        base = trial.suggest_categorical("base_channels", [32, 64])
        image = data.kind == "image"
        conv: type[nn.Module] = nn.Conv2d if image else nn.Conv1d
        norm: type[nn.Module] = nn.BatchNorm2d if image else nn.BatchNorm1d
        pool: type[nn.Module] = nn.AdaptiveAvgPool2d if image else nn.AdaptiveAvgPool1d
        channels = max(8, int(base * width))
        layers: list[nn.Module] = [
            conv(data.input_shape[0], channels, 3, padding=1, bias=False),
            norm(channels),
            nn.ReLU(),
        ]
        length = min(data.input_shape[1:])
        for block in range(n_blocks):
            stride = 2 if block % 2 == 1 and length >= 4 else 1
            length = (length + stride - 1) // stride
            out = max(8, int(base * width * 2 ** ((block + 1) // 2)))
            layers.append(_separable(conv, norm, channels, out, stride))
            channels = out
        layers += [pool(1), nn.Flatten(), nn.Linear(channels, data.num_classes)]
        return nn.Sequential(*layers)


SPACE = MobileNetSpace()

"""TinyBERT-style transformer encoder for sequence data: layers, heads, hidden size.

Images are read as sequences of rows; MNIST-1D as patches of 4 points.
"""

from __future__ import annotations

import optuna
import torch
from torch import nn

from greenml.data import DataSpec


class TinyEncoder(nn.Module):
    def __init__(
        self, data: DataSpec, hidden: int, layers: int, heads: int, ffn_mult: int, dropout: float
    ) -> None:
        super().__init__()
        if data.kind == "image":
            channels, height, width = data.input_shape
            self.tokens, self.features = height, channels * width
        else:
            channels, length = data.input_shape
            patch = 4 if length % 4 == 0 else 1
            self.tokens, self.features = length // patch, channels * patch
        self.embed = nn.Linear(self.features, hidden)
        self.position = nn.Parameter(torch.zeros(1, self.tokens, hidden))
        layer = nn.TransformerEncoderLayer(
            hidden, heads, dim_feedforward=hidden * ffn_mult, dropout=dropout, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(hidden, data.num_classes)
        nn.init.normal_(self.position, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # (B, C, H, W): rows are tokens
            tokens = x.permute(0, 2, 1, 3).reshape(x.shape[0], self.tokens, self.features)
        else:  # (B, C, L): patches are tokens
            tokens = x.reshape(x.shape[0], x.shape[1], self.tokens, -1).permute(0, 2, 1, 3)
            tokens = tokens.reshape(x.shape[0], self.tokens, self.features)
        hidden = self.encoder(self.embed(tokens) + self.position)
        return self.head(hidden.mean(dim=1))  # type: ignore[no-any-return]


class TinyBertSpace:
    name = "tinybert"
    description = "TinyBERT-style transformer encoder: 1-4 layers, 1-4 heads, hidden 32-128"
    data_kinds = ("image", "sequence")

    def build(self, trial: optuna.Trial, data: DataSpec) -> nn.Module:
        layers = trial.suggest_int("layers", 1, 4)
        heads = trial.suggest_categorical("heads", [1, 2, 4])
        hidden = trial.suggest_categorical("hidden", [32, 64, 128])
        ffn_mult = trial.suggest_categorical("ffn_mult", [2, 4])
        dropout = trial.suggest_float("dropout", 0.0, 0.2)
        assert hidden % heads == 0, "all hidden sizes are multiples of all head counts"
        return TinyEncoder(data, hidden, layers, heads, ffn_mult, dropout)


SPACE = TinyBertSpace()

"""A small built-in training workload to measure: an MLP on scikit-learn's digits, on the CPU.

``python -m greenml.workload [--epochs N] [--threads N]`` trains, prints the validation accuracy,
and exits. It downloads nothing: the digits ship with scikit-learn.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def run(epochs: int = 30, threads: int | None = None, seed: int = 0) -> float:
    """Train for ``epochs`` and return the validation accuracy."""
    import torch
    from sklearn.datasets import load_digits

    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    images, labels = load_digits(return_X_y=True)
    x = torch.tensor(images, dtype=torch.float32) / 16.0
    y = torch.tensor(labels, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    split = int(0.8 * len(x))
    train, valid = order[:split], order[split:]
    model = torch.nn.Sequential(
        torch.nn.Linear(64, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(epochs):
        for batch in torch.split(train[torch.randperm(len(train))], 32):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
    with torch.inference_mode():
        predicted = model(x[valid]).argmax(dim=1)
    return float((predicted == y[valid]).float().mean())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m greenml.workload", description=__doc__)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    accuracy = run(args.epochs, args.threads, args.seed)
    print(f"digits MLP: {args.epochs} epochs, validation accuracy {accuracy:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

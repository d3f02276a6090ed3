"""The project's own promises: CI runs the README's test command, and the README's figures exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_ci_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    test_commands = [
        line for block in _bash_blocks(readme) for line in block.splitlines() if "pytest" in line
    ]
    assert len(test_commands) == 1, test_commands
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_commands[0] in ci


def test_readme_has_no_unfilled_figures() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "FIGURE_" not in readme

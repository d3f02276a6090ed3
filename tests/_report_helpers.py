"""Plain helpers the report tests share: the data tests' objectives, and reading a written page."""

from __future__ import annotations

import json
import re
from pathlib import Path

from greenml.cli import main
from greenml.units import QUANTITIES

HOSTILE = "</script><script>window.__pwned = 1</script>"


OBJECTIVES = ("accuracy", "inference_energy_j", "latency_ms")


def _figures(html: str) -> list[dict[str, object]]:
    blocks = re.findall(r'<script type="application/json" id="fig\d+-data">(.*?)</script>', html, flags=re.S)
    return [json.loads(block) for block in blocks]


def _base(shown: str, quantity: str) -> float:
    """A figure as a page shows it (``1,000 µJ``, or ``1,000`` under a header in ``µJ``) back in
    base units, from the units table alone."""
    match = re.fullmatch(r"(-?[\d,]*\.?\d+)\s*(\S*)", shown.strip())
    assert match is not None, shown
    number, unit = match.groups()
    return float(number.replace(",", "")) * dict(QUANTITIES[quantity])[unit]


def _header_unit(html: str, table: str, name: str) -> str:
    """The unit a trial table's column of ``name`` is in: ``µJ`` of ``inference_energy_j (µJ, ...)``."""
    found = re.search(rf">{name} \(([^,)]*)", _table(html, table).split("</thead>")[0])
    assert found is not None, name
    return found.group(1)


_WRITTEN: dict[tuple[str, str], str] = {}


def _report(storage: str, study: str, tmp_path: Path) -> str:
    """``greenml report`` of a study of the ``storage`` fixture's, written once per study (the
    studies are not changed after the fixture makes them; the page is a function of them)."""
    if (storage, study) not in _WRITTEN:
        out = tmp_path / f"{study}.html"
        assert main(["report", "--study", study, "--storage", storage, "-o", str(out)]) == 0
        _WRITTEN[storage, study] = out.read_text()
    return _WRITTEN[storage, study]


def _axis_titles(html: str) -> list[str]:
    """Every axis and subplot title of the page's figures."""
    titles = []
    for figure in _figures(html):
        layout: dict[str, object] = figure["layout"]  # type: ignore[assignment]
        axes = [v for v in layout.values() if isinstance(v, dict)]
        axes += [v for scene in axes for v in scene.values() if isinstance(v, dict)]
        titles += [str(a["title"].get("text")) for a in axes if isinstance(a.get("title"), dict)]
        titles += [str(a["text"]) for a in layout.get("annotations", [])]  # type: ignore[attr-defined]
    return titles


def _table(html: str, table: str) -> str:
    return html.split(f'id="{table}"')[1].split("</table>")[0]


def _rows(table: str) -> dict[int, str]:
    """A trial table's rows by trial number."""
    pattern = r'<tr class="status-[^"]*"[^>]*><td data-v="(\d+)".*?</tr>'
    return {int(match.group(1)): match.group(0) for match in re.finditer(pattern, table, flags=re.S)}


def _cells(row: str) -> list[str]:
    return re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)

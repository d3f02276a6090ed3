"""What a report page shows of workers: their table, differing hardware, the ledger, dead trials."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest
from _report_helpers import _base, _cells, _figures, _report, _rows, _table

from greenml.cli import main
from greenml.ledger import spent_energy_j
from greenml.units import QUANTITIES

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _workers_table(html: str) -> list[list[str]]:
    body = html.split('id="workers-table"')[1].split("</table>")[0].split("<tbody>")[1]
    return [_cells(row) for row in re.findall(r"<tr>.*?</tr>", body, flags=re.S)]


def test_the_report_lists_every_worker(storage: str, tmp_path: Path) -> None:
    html = _report(storage, "workers", tmp_path)
    study = optuna.load_study(study_name="workers", storage=storage)
    ran: dict[int, int] = {}
    for trial in study.get_trials():
        if trial.state != optuna.trial.TrialState.WAITING:
            ran[trial.user_attrs["worker"]["number"]] = ran.get(trial.user_attrs["worker"]["number"], 0) + 1
    rows = _workers_table(html)
    assert [row[:8] for row in rows] == [
        [str(n), host, str(1000 + n), "synthetic CPU", "2", "no GPU used", "estimate", str(ran[n])]
        for n, host in enumerate(("node-a", "node-b", "node-c"))
    ]
    assert sum(ran.values()) == 16
    # identical machines: one hardware line, no warning
    assert 'id="hardware-warning"' not in html and "not comparable" not in html
    assert "<dt>hardware</dt><dd>synthetic CPU (2 logical CPUs); no GPU used; synthetic</dd>" in html


def test_workers_on_different_hardware_get_a_warning(storage: str, tmp_path: Path) -> None:
    html = _report(storage, "mixed-hardware", tmp_path)
    rows = _workers_table(html)
    assert [(row[0], row[1], row[3], row[5], row[6]) for row in rows] == [
        ("0", "node-a", "synthetic CPU", "no GPU used", "estimate"),
        ("1", "gpu-box", "AMD EPYC (synthetic)", "cuda:0 synthetic GPU", "nvml+estimate"),
    ]
    warning = re.search(r'<p [^>]*id="hardware-warning">(.*?)</p>', html, flags=re.S)
    assert warning is not None
    assert "(CPU model, GPUs, meter differ)" in warning.group(1)
    assert "energy and latency are not comparable" in warning.group(1)
    assert "<dt>hardware</dt><dd>differs between the workers (see the workers below)</dd>" in html
    # the workers measure on different bases; the trial whose worker died never wrote its own
    study = optuna.load_study(study_name="mixed-hardware", storage=storage)
    bases = [t.user_attrs["provenance"]["energy_basis"] for t in study.trials if "provenance" in t.user_attrs]
    assert len(bases) == 15
    paragraph = re.search(r'id="energy-basis">(.*?)</p>', html, flags=re.S)
    assert paragraph is not None and "Energy rests on different bases" in paragraph.group(1)
    for basis in ("partly estimated", "estimated"):
        assert re.search(rf"[(,] ?{basis} in {bases.count(basis)} trials", paragraph.group(1)), basis
    assert "not recorded" not in paragraph.group(1)


def test_an_older_study_lists_its_one_machine(storage: str, tmp_path: Path) -> None:
    html = _report(storage, "tpe-like", tmp_path)
    (row,) = _workers_table(html)
    assert row[:8] == [
        "not recorded",
        "not recorded",
        "",
        "synthetic CPU",
        "2",
        "no GPU used",
        "not recorded",
        "40",
    ]
    assert 'id="hardware-warning"' not in html


def test_the_teacher_is_its_own_item_in_the_footprint(storage: str, tmp_path: Path) -> None:
    html = _report(storage, "workers", tmp_path)
    study = optuna.load_study(study_name="workers", storage=storage)
    trials_j = sum(
        t.user_attrs.get("trial_energy_j", t.user_attrs.get("trial_energy_so_far_j", 0.0))
        for t in study.get_trials()
        if t.state != optuna.trial.TrialState.WAITING
    )
    total = trials_j + 300.0
    assert total == pytest.approx(spent_energy_j(study))
    kpi = re.search(r'<div class="kpi">energy<b>(.*?)</b>estimated</div>', html)
    assert kpi is not None  # the total's KPI counts the teacher
    assert _base(kpi.group(1), "energy") == pytest.approx(total, rel=5e-3)
    table = html.split('id="ledger"')[1].split("</table>")[0]
    energy, seconds, co2 = re.findall(r"<th>\w+ \((\w+)\)</th>", table)  # the columns' units
    body = table.split("<tbody>")[1]
    rows = {cells[0]: cells for cells in map(_cells, re.findall(r"<tr>.*?</tr>", body, flags=re.S))}
    assert list(rows) == ["trials (16)", "teacher", "total"]
    teacher = rows["teacher"]
    assert teacher[4:] == ["estimated", "worker 0 on node-a"]
    assert _base(f"{teacher[1]} {energy}", "energy") == pytest.approx(300.0, rel=5e-3)
    assert _base(f"{teacher[2]} {seconds}", "duration") == pytest.approx(37.5, rel=5e-3)
    assert _base(f"{teacher[3]} {co2}", "mass") == pytest.approx(300.0 / 3.6e6 * 475, rel=5e-3)
    assert _base(f"{rows['trials (16)'][1]} {energy}", "energy") == pytest.approx(trials_j, rel=5e-3)
    assert _base(f"{rows['total'][1]} {energy}", "energy") == pytest.approx(total, rel=5e-3)
    assert "item of its own (&#34;teacher&#34;), counted in the total" in html
    assert "inside the first distilling trial" not in html
    # a bar of its own beside the phases, in energy and in time
    bars = [
        trace
        for figure in _figures(html)
        for trace in figure["data"]  # type: ignore[union-attr]
        if trace["type"] == "bar" and "teacher" in trace["x"]  # type: ignore[index, operator]
    ]
    assert len(bars) == 2
    energy_bars, second_bars = (dict(zip(bar["x"], bar["y"], strict=True)) for bar in bars)  # type: ignore[index]
    joules = dict(QUANTITIES["energy"])[energy]  # the bars are drawn in the page's units
    assert energy_bars["teacher"] * joules == pytest.approx(300.0)
    assert second_bars["teacher"] * dict(QUANTITIES["duration"])[seconds] == pytest.approx(37.5)
    assert sum(energy_bars.values()) * joules == pytest.approx(total)
    # no ledger, no ledger table
    assert 'id="ledger"' not in _report(storage, "tpe-like", tmp_path)


def test_a_trial_whose_worker_died_says_so_in_the_table(storage: str, tmp_path: Path) -> None:
    html = _report(storage, "workers", tmp_path)
    table = _table(html, "all-trials")
    columns = re.findall(r"<th(?: [^>]*)?>(.*?)</th>", table.split("</thead>")[0])
    assert columns[:5] == ["trial", "status", "worker", "host", "retry of"]
    rows = {number: _cells(row) for number, row in _rows(table).items()}
    assert len(rows) == 16
    dead, retry = rows[5], rows[6]
    assert dead[1:5] == ["failed", "2", "node-c", ""]
    assert dead[-1] == "its worker stopped sending heartbeats (killed or lost); retried as trial 6"
    assert retry[1] != "failed" and retry[2:5] == ["0", "node-a", "5"]
    assert rows[0][2:5] == ["0", "node-a", ""]


def test_compare_warns_of_a_study_on_mixed_hardware(storage: str, tmp_path: Path) -> None:
    out = tmp_path / "c.html"
    assert main(["compare", "workers", "mixed-hardware", "--storage", storage, "-o", str(out)]) == 0
    html = out.read_text()
    assert html.count("⚠ workers differ in") == 1
    assert "workers differ in CPU model, GPUs, meter: energy and latency do not compare" in html

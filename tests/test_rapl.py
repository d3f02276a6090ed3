"""The RAPL meter against a fake powercap tree: wraparound, overlapping domains, permissions."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenml.errors import MeterUnavailableError
from greenml.measure import Meter
from greenml.measure.rapl import RaplSource
from greenml.testing.fake_powercap import FakePowercap


def _meter(source: RaplSource) -> Meter:
    return Meter([source], sync=lambda: None)


def test_package_and_dram_energy(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path)
    source = RaplSource(tmp_path, start_poller=False)
    window = _meter(source).begin()
    tree.add("intel-rapl:0", 42.5)
    tree.add("intel-rapl:0:0", 30.0)  # core: part of the package, must not be added again
    tree.add("intel-rapl:0:1", 7.25)  # dram
    tree.add("intel-rapl:1", 60.0)  # psys: the whole platform, overlaps both
    tree.add("intel-rapl-mmio:0", 42.5)  # the same package through MMIO
    result = window.end()
    assert result.energy_j.cpu == pytest.approx(42.5)
    assert result.energy_j.dram == pytest.approx(7.25)
    assert result.energy_j.gpu is None
    assert result.total_energy_j == pytest.approx(49.75)
    assert result.provenance.energy_basis == "measured"
    assert {s.component for s in result.provenance.sources} == {"cpu", "dram"}


def test_wraparound_mid_window(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path, max_energy_range_uj=1_000_000_000)  # wraps every 1000 J
    tree.set_energy_uj("intel-rapl:0", 999_000_000)  # 1 J before the wrap
    source = RaplSource(tmp_path, start_poller=False)
    window = _meter(source).begin()
    tree.add("intel-rapl:0", 2.5)  # crosses the wrap: counter now reads 1_500_000
    assert tree.energy_uj("intel-rapl:0") == 1_500_000
    assert window.end().energy_j.cpu == pytest.approx(2.5)


def test_several_wraps_in_a_long_window_are_caught_by_polling(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path, max_energy_range_uj=1_000_000_000)
    source = RaplSource(tmp_path, start_poller=False)
    window = _meter(source).begin()
    for _ in range(5):  # 5 x 800 J: four wraps, each seen by a poll in between
        tree.add("intel-rapl:0", 800.0)
        source.update()
    assert window.end().energy_j.cpu == pytest.approx(4000.0)


def test_poller_thread_reads_in_the_background(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path, max_energy_range_uj=1_000_000_000)
    source = RaplSource(tmp_path, poll_s=0.01)
    try:
        window = _meter(source).begin()
        import time

        for _ in range(3):
            tree.add("intel-rapl:0", 700.0)
            time.sleep(0.1)  # several polls happen; without them two wraps would be lost
        assert window.end().energy_j.cpu == pytest.approx(2100.0)
    finally:
        source.close()


def test_two_sockets_are_summed(tmp_path: Path) -> None:
    zones = {
        "intel-rapl:0": "package-0",
        "intel-rapl:0:0": "dram",
        "intel-rapl:1": "package-1",
        "intel-rapl:1:0": "dram",
    }
    tree = FakePowercap(tmp_path, zones)
    source = RaplSource(tmp_path, start_poller=False)
    window = _meter(source).begin()
    for directory, joules in [
        ("intel-rapl:0", 10),
        ("intel-rapl:1", 20),
        ("intel-rapl:0:0", 1),
        ("intel-rapl:1:0", 2),
    ]:
        tree.add(directory, joules)
    result = window.end()
    assert (result.energy_j.cpu, result.energy_j.dram) == (pytest.approx(30.0), pytest.approx(3.0))


def test_amd_package_without_dram(tmp_path: Path) -> None:
    FakePowercap(tmp_path, {"intel-rapl:0": "package-0", "intel-rapl:0:0": "core"})
    source = RaplSource(tmp_path, start_poller=False)
    assert [s.component for s in source.sources()] == ["cpu"]
    assert _meter(source).begin().end().energy_j.dram is None


def test_permission_denied_is_unavailable_not_zero(tmp_path: Path, as_non_root: None) -> None:
    tree = FakePowercap(tmp_path)
    path = tree.make_unreadable("intel-rapl:0")
    with pytest.raises(MeterUnavailableError, match="permission denied") as caught:
        RaplSource(tmp_path, start_poller=False)
    assert str(path) in str(caught.value)


def test_missing_tree_and_empty_tree(tmp_path: Path) -> None:
    with pytest.raises(MeterUnavailableError, match="does not exist"):
        RaplSource(tmp_path / "absent")
    FakePowercap(tmp_path, {"intel-rapl:0": "psys"})
    with pytest.raises(MeterUnavailableError, match="no RAPL package or DRAM zones"):
        RaplSource(tmp_path, start_poller=False)


def test_garbage_counter_is_unavailable(tmp_path: Path) -> None:
    tree = FakePowercap(tmp_path)
    (tree.root / "intel-rapl:0" / "energy_uj").write_text("not a number\n")
    with pytest.raises(MeterUnavailableError, match="unreadable"):
        RaplSource(tmp_path, start_poller=False)


@pytest.mark.rapl
def test_real_rapl_counters_move() -> None:
    root = Path("/sys/class/powercap")
    try:
        source = RaplSource(root, start_poller=False)
    except MeterUnavailableError as error:
        pytest.skip(f"no readable RAPL here: {error}")
    import time

    window = _meter(source).begin()
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        sum(i * i for i in range(10_000))
    result = window.end()
    assert result.energy_j.cpu is not None and result.energy_j.cpu > 0

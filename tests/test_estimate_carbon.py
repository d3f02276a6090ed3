"""The CPU-time estimate and the carbon intensity."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from greenml.errors import ConfigError
from greenml.measure import Meter
from greenml.measure.carbon import carbon_intensity, country_codes
from greenml.measure.estimate import CpuTimeEstimate, WattsPerCore, cpu_seconds, watts_per_core


def _spin(seconds: float) -> None:
    deadline = time.process_time() + seconds
    while time.process_time() < deadline:
        pass


def test_estimate_is_cpu_time_times_watts() -> None:
    meter = Meter([CpuTimeEstimate(WattsPerCore(10.0, "test"))], sync=lambda: None)
    window = meter.begin()
    before = cpu_seconds()
    _spin(0.3)
    used = cpu_seconds() - before
    result = window.end()
    assert result.energy_j.cpu == pytest.approx(used * 10.0, rel=0.05)
    assert result.energy_j.cpu >= 3.0  # type: ignore[operator]
    assert result.provenance.energy_basis == "estimated"
    assert result.provenance.sources[0].kind == "estimated"


def test_estimate_counts_waited_for_children() -> None:
    meter = Meter([CpuTimeEstimate(WattsPerCore(1.0, "test"))], sync=lambda: None)
    window = meter.begin()
    code = "import time\nt=time.process_time()+0.4\nwhile time.process_time()<t: pass"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert window.end().energy_j.cpu >= 0.4  # type: ignore[operator]


def test_sleeping_costs_almost_nothing() -> None:
    meter = Meter([CpuTimeEstimate(WattsPerCore(10.0, "test"))], sync=lambda: None)
    with meter.window() as window:
        time.sleep(0.3)
    assert window.result.energy_j.cpu < 0.3  # type: ignore[operator]


def test_watts_per_core_sources() -> None:
    assert watts_per_core(7.5) == WattsPerCore(7.5, "given by the user")
    table = watts_per_core()
    assert table.watts > 0
    assert "codecarbon" in table.source


def test_carbon_from_codecarbon_data() -> None:
    france = carbon_intensity("fra", pue=1.2)
    assert france.country == "FRA"
    assert 10 < france.intensity_g_per_kwh < 200  # France's grid is mostly nuclear
    # 1 kWh at the country's intensity, times PUE
    assert france.co2_g(3.6e6) == pytest.approx(france.intensity_g_per_kwh * 1.2)
    world = carbon_intensity(None)
    assert world.intensity_g_per_kwh == 475
    assert "world average" in world.source
    assert len(country_codes()) > 200


def test_unknown_country_names_valid_codes() -> None:
    with pytest.raises(ConfigError) as caught:
        carbon_intensity("FRX")
    message = str(caught.value)
    assert "FRA" in message and "did you mean" in message and "\n" not in message


def test_pue_below_one_is_rejected() -> None:
    with pytest.raises(ConfigError, match="PUE"):
        carbon_intensity("FRA", pue=0.9)


def test_meter_applies_carbon_to_total() -> None:
    meter = Meter(
        [CpuTimeEstimate(WattsPerCore(100.0, "test"))], carbon=carbon_intensity("DEU", 1.5), sync=lambda: None
    )
    with meter.window() as window:
        _spin(0.2)
    result = window.result
    intensity = result.provenance.carbon
    assert intensity is not None
    assert result.co2_g == pytest.approx(result.total_energy_j / 3.6e6 * intensity.intensity_g_per_kwh * 1.5)

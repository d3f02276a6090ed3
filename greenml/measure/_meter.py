"""The measurement window: begin, end, get a frozen result. Windows nest.

A window whose energy a source cannot account for (a reading failed, a sampling thread died)
has no figure: its ``end()`` raises :class:`~greenml.errors.MeasurementError` naming the device
and the error, and so does the end of every window around it.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from greenml.errors import MeasurementError
from greenml.measure._types import (
    CarbonIntensity,
    Components,
    ComponentSource,
    EnergySource,
    IdleBaseline,
    Provenance,
    WindowResult,
    energy_basis,
)
from greenml.metrics import COMPONENTS

__all__ = ["Meter", "Window", "synchronize_cuda"]


def synchronize_cuda() -> None:
    """Wait for queued CUDA work, so a window edge is where the GPU work really ends.

    Only when this process already initialised CUDA through torch: the meter must never be the
    one that creates a CUDA context.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return
    cuda = getattr(torch, "cuda", None)
    if cuda is None or not cuda.is_initialized():
        return
    for index in range(cuda.device_count()):
        cuda.synchronize(index)


class Window:
    """One open measurement window. Obtain it from :meth:`Meter.begin` or :meth:`Meter.window`."""

    def __init__(self, meter: Meter, name: str, parent: Window | None) -> None:
        self.name = name
        self.parent = parent
        self._meter = meter
        self._children: list[WindowResult] = []
        self._open_children = 0
        self._result: WindowResult | None = None
        # Why this window has no energy figure (its end raised): the cause, and the message.
        self._cause: str | None = None
        self._failure: str | None = None
        # The cause that left an inner window without one: what it missed, this one missed too.
        self._child_failure: str | None = None
        meter._sync()
        self._start_time = meter._clock()
        self._start = [source.snapshot() for source in meter.sources]

    @property
    def is_open(self) -> bool:
        """Not yet ended (a window whose end failed is ended: see :attr:`failure`)."""
        return self._result is None and self._failure is None

    @property
    def failure(self) -> str | None:
        """Why this window has no energy figure (its end raised MeasurementError), or None."""
        return self._failure

    @property
    def result(self) -> WindowResult:
        if self._failure is not None:
            raise MeasurementError(self._failure)
        if self._result is None:
            raise MeasurementError(f"window {self.name!r} is still open; end it first")
        return self._result

    def spent_j(self) -> float:
        """The energy of the inner windows ended so far: an open window's running total."""
        if self._result is not None:
            return self._result.total_energy_j
        return sum(child.total_energy_j for child in self._children)

    def end(self) -> WindowResult:
        """The window's frozen result.

        Raises MeasurementError, and the window is ended without a figure, where a source cannot
        account for its energy (or an inner window's) or a reading failed within it.
        """
        if not self.is_open:
            raise MeasurementError(f"window {self.name!r} was already ended")
        if self._open_children:
            raise MeasurementError(
                f"window {self.name!r} still has {self._open_children} nested window(s) open; "
                "end the inner windows first"
            )
        meter = self._meter
        meter._sync()
        end_time = meter._clock()
        try:
            if self._child_failure is not None:
                raise MeasurementError(self._child_failure)
            end = [source.snapshot() for source in meter.sources]
            energy: dict[str, float] = {}
            warnings: list[str] = []
            for source, start_snapshot, end_snapshot in zip(meter.sources, self._start, end, strict=True):
                for component, joules in source.energy_between(start_snapshot, end_snapshot).items():
                    energy[component] = energy.get(component, 0.0) + joules
                window_warnings = getattr(source, "window_warnings", None)
                if window_warnings is not None:
                    warnings.extend(window_warnings(start_snapshot, end_snapshot))
        except MeasurementError as error:
            self._cause = str(error)
            self._failure = f"window {self.name!r} has no energy figure: {self._cause}"
            meter._closed(self)
            raise MeasurementError(self._failure) from error
        # What was seen during an inner window was seen during this one too.
        for child in self._children:
            warnings.extend(child.provenance.warnings)
        self._result = meter._result(
            self.name, end_time - self._start_time, energy, tuple(self._children), tuple(warnings)
        )
        meter._closed(self)
        return self._result


class Meter:
    """Measures energy and time over windows, with one or more energy sources.

    Each hardware component (``gpu``, ``cpu``, ``dram``) is covered by at most one source. The
    idle baseline, when taken, turns every later window's energy into total and dynamic energy.
    """

    def __init__(
        self,
        sources: Sequence[EnergySource],
        *,
        carbon: CarbonIntensity | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        sync: Callable[[], None] = synchronize_cuda,
        notes: Sequence[str] = (),
    ) -> None:
        if not sources:
            raise MeasurementError("a meter needs at least one energy source")
        claimed: dict[str, str] = {}
        for source in sources:
            for entry in source.sources():
                if entry.component in claimed:
                    raise MeasurementError(
                        f"component {entry.component!r} is covered by both {claimed[entry.component]} "
                        f"and {source.name}; choose one"
                    )
                claimed[entry.component] = source.name
        self.sources = tuple(sources)
        self.notes = tuple(notes)
        self.carbon = carbon
        self.idle: IdleBaseline | None = None
        self._clock = clock
        self._sleep = sleep
        self._sync = sync
        self._lock = threading.Lock()
        self._stack: list[Window] = []

    @property
    def component_sources(self) -> tuple[ComponentSource, ...]:
        return tuple(entry for source in self.sources for entry in source.sources())

    @property
    def name(self) -> str:
        return "+".join(source.name for source in self.sources)

    def begin(self, name: str = "window") -> Window:
        """Open a window. A window opened while another is open nests inside it."""
        with self._lock:
            parent = self._stack[-1] if self._stack else None
            window = Window(self, name, parent)
            if parent is not None:
                parent._open_children += 1
            self._stack.append(window)
        return window

    @contextlib.contextmanager
    def window(self, name: str = "window") -> Iterator[Window]:
        """``with meter.window("train") as w: ...`` then ``w.result`` after the block."""
        handle = self.begin(name)
        try:
            yield handle
        finally:
            if handle.is_open:
                handle.end()

    def measure_idle(self, seconds: float) -> IdleBaseline | None:
        """Measure idle power for ``seconds`` (0 skips it) and use it for dynamic energy.

        The idle window is no one's work, so it begins and ends right after a step of every
        stepped counter (up to a step longer than ``seconds``): it covers whole counter periods.
        Its uncertainty, per component, is one counter step's energy over the window, as watts
        (None for a component whose source has no measured step).
        """
        if seconds < 0:
            raise MeasurementError(f"idle seconds must be >= 0, got {seconds}")
        if seconds == 0:
            self.idle = None
            return None
        stepped = self._stepped_sources()
        self.wait_for_step()
        handle = self.begin("idle")
        self._sleep(seconds)
        self.wait_for_step()
        result = handle.end()
        power = {
            name: (value / result.seconds if value is not None and result.seconds > 0 else None)
            for name, value in result.energy_j.items()
        }
        step_of = {entry.component: step for source, step in stepped for entry in source.sources()}
        uncertainty = {
            name: (
                None
                if watts is None or name not in step_of or result.seconds <= 0
                else abs(watts) * step_of[name] / result.seconds
            )
            for name, watts in power.items()
        }
        self.idle = IdleBaseline(
            seconds=result.seconds, power_w=Components(**power), uncertainty_w=Components(**uncertainty)
        )
        return self.idle

    def provenance(self, window_warnings: Sequence[str] = ()) -> Provenance:
        """Which sources, the basis of the total, and the caveats (``window_warnings`` for one window)."""
        entries = self.component_sources
        drivers: dict[str, str] = {}
        warnings: list[str] = []
        for source in self.sources:
            drivers.update(source.drivers())
            warnings.extend(source.warnings())
        warnings.extend(window_warnings)
        components = {e.component for e in entries}
        return Provenance(
            sources=entries,
            energy_basis=energy_basis([e.kind for e in entries]),
            total_components=tuple(c for c in COMPONENTS if c in components),
            drivers=drivers,
            warnings=tuple(dict.fromkeys(warnings)),
            notes=self.notes,
            idle=self.idle,
            carbon=self.carbon,
        )

    def _stepped_sources(self) -> list[tuple[Any, float]]:
        """The sources whose energy counters move in measured steps, with each step in seconds."""
        stepped = []
        for source in self.sources:
            period = getattr(source, "update_period_s", None)
            step = period() if period is not None else None
            if step is not None:
                stepped.append((source, step))
        return stepped

    def counter_step_s(self) -> float | None:
        """The coarsest update step of the sources' energy counters (measured once), or None."""
        return max((step for _, step in self._stepped_sources()), default=None)

    def wait_for_step(self, work: Callable[[], object] | None = None, timeout_s: float | None = None) -> int:
        """Keep doing ``work`` (or sleep briefly) until every stepped counter has just moved.

        A window that begins and ends right after a counter step covers whole counter periods,
        so a counter that moves every 100 ms no longer sets a 1 s window's error. Returns how many
        times ``work`` ran; returns at once where no source has a stepped counter.
        """
        stepped = self._stepped_sources()
        if not stepped:
            return 0
        step = max(seconds for _, seconds in stepped)
        pending = {id(s): (s, s.counter_reading()) for s, _ in stepped}
        deadline = self._clock() + (timeout_s if timeout_s is not None else 3 * step + 0.5)
        calls = 0
        while pending and self._clock() < deadline:
            if work is None:
                self._sleep(min(step / 100, 0.001))
            else:
                work()
                calls += 1
            for key, (source, reference) in list(pending.items()):
                if source.counter_reading() != reference:
                    del pending[key]
        return calls

    def close(self) -> None:
        for source in self.sources:
            source.close()

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------

    def _closed(self, window: Window) -> None:
        """Take an ended window off the stack; its parent gets its result, or its failure."""
        with self._lock:
            self._stack.remove(window)
            parent = window.parent
            if parent is not None:
                parent._open_children -= 1
                if window._cause is not None:
                    if parent._child_failure is None:
                        parent._child_failure = window._cause
                else:
                    parent._children.append(window.result)

    def _result(
        self,
        name: str,
        seconds: float,
        energy: dict[str, float],
        children: tuple[WindowResult, ...],
        window_warnings: tuple[str, ...] = (),
    ) -> WindowResult:
        provenance = self.provenance(window_warnings)
        energy_j = Components(**{c: energy.get(c) for c in COMPONENTS})
        total = sum(energy_j.get(c) or 0.0 for c in provenance.total_components)
        if self.idle is None:
            dynamic = Components()
            dynamic_total: float | None = None
        else:
            # Signed: a window at idle power reads as much below zero as above it, and clamping
            # each component at zero would turn that noise into energy.
            values: dict[str, float | None] = {}
            for component, joules in energy_j.items():
                idle_w = self.idle.power_w.get(component)
                values[component] = None if joules is None or idle_w is None else joules - idle_w * seconds
            dynamic = Components(**values)
            dynamic_total = sum(dynamic.get(c) or 0.0 for c in provenance.total_components)
        return WindowResult(
            name=name,
            seconds=seconds,
            energy_j=energy_j,
            dynamic_energy_j=dynamic,
            total_energy_j=total,
            dynamic_total_energy_j=dynamic_total,
            co2_g=self.carbon.co2_g(total) if self.carbon else None,
            provenance=provenance,
            children=children,
        )

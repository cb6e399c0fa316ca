"""Benchmark measures: one module each, registered in MEASURES, run by `python -m bench`."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

# Name -> module defining `measure() -> Result` (or `module:function` for another function).
# Modules are imported only when their measure runs, so one measure's dependencies never slow
# down or break another.
MEASURES: dict[str, str] = {
    "send_prebuilt": "bench.send_prebuilt",
    "campaign_send": "bench.campaign_send",
    "campaign_send_postgresql": "bench.campaign_send:measure_postgresql",
    "segment_count": "bench.segment_count",
    "automation_tick": "bench.automation_tick",
    "report_query": "bench.report_query",
    "report_refresh": "bench.report_query:measure_refresh",
    "contact_import": "bench.contact_import",
    "contact_search": "bench.contact_search",
    "letter_render": "bench.letter_render",
    "letter_render_dkim": "bench.letter_render:measure_dkim",
    "tracking_hits": "bench.tracking_hits",
    "tracking_hits_postgresql": "bench.tracking_hits:measure_postgresql",
}


class BenchError(Exception):
    """A measure could not produce a trustworthy figure."""


@dataclass(frozen=True)
class Result:
    """One figure of the product next to a reference measured in the same run."""

    name: str
    value: float
    unit: str
    reference: float
    goal: float

    @property
    def ratio(self) -> float:
        """Return the product's figure as a fraction of the reference."""
        return self.value / self.reference

    def line(self) -> str:
        """Return the one-line report: `NAME value unit ratio=R goal=G`."""
        return (
            f"{self.name} {_format(self.value)} {self.unit} "
            f"ratio={self.ratio:.2f} goal={self.goal:.2f}"
        )

    def as_json(self) -> dict[str, str | float]:
        """Return the figures as a JSON-ready mapping."""
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "reference": self.reference,
            "ratio": self.ratio,
            "goal": self.goal,
        }


def run(name: str) -> Result:
    """Run the measure registered under `name`."""
    module_name, _, function = MEASURES[name].partition(":")
    module = importlib.import_module(module_name)
    measure: Callable[[], Result] = getattr(module, function or "measure")
    return measure()


def _format(value: float) -> str:
    return f"{value:.1f}" if abs(value) >= 100 else f"{value:.3g}"

"""A page's HTML: Jinja2 templates (autoescaped) around Plotly figures, in one file.

plotly.js, the styles and the scripts are inlined, and each figure's data sits in a
``<script type="application/json">`` block whose ``<``, ``>`` and ``&`` are written as JSON
``\\u`` escapes, so no string in it can close the block. :func:`render_page` and
:class:`PageFigures` are public: every page (the report, the comparison, the benchmark's) is
rendered through them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

from greenml import __version__

__all__ = ["TEMPLATES", "PageFigures", "escape_json", "render_page", "safe_json"]

TEMPLATES = Path(__file__).with_name("templates")
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


@cache
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache
def _assets() -> dict[str, str]:
    from plotly.offline import get_plotlyjs

    return {
        "plotlyjs": get_plotlyjs(),
        "css": (TEMPLATES / "report.css").read_text(),
        "table_js": (TEMPLATES / "table.js").read_text(),
        "figures_js": (TEMPLATES / "figures.js").read_text(),
        "version": __version__,
    }


def safe_json(figure: Any) -> str:
    """A figure's JSON with every character that could end a ``<script>`` block escaped."""
    return escape_json(figure.to_json())


def escape_json(text: str) -> str:
    return re.sub("[<>&\u2028\u2029]", lambda match: _JSON_ESCAPES[match.group()], text)


@dataclass
class PageFigures:
    """The figures of one page, in the order they are added: each one's id, title and JSON."""

    items: list[dict[str, str]] = field(default_factory=list)

    def add(self, title: str, figure: Any) -> dict[str, str]:
        """Add a Plotly figure; the item returned is what the template's ``figure`` macro draws."""
        item = {"id": f"fig{len(self.items) + 1}", "title": title, "json": safe_json(figure)}
        self.items.append(item)
        return item


def render_page(
    template: str,
    context: Mapping[str, Any],
    figures: PageFigures,
    hover: Mapping[str, str] | None = None,
) -> str:
    """The page ``template`` (a file of ``greenml/report/templates``, extending ``base.html.j2``)
    rendered with ``context``, its ``figures`` and the trials' ``hover`` texts by key (see
    :func:`._plot_hover.hover_ref`), with plotly.js, the styles and the scripts inlined."""
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text: str = (
        _environment()
        .get_template(template)
        .render(
            **_assets(),
            created=created,
            **context,
            figures=figures.items,
            hover_json=escape_json(json.dumps(dict(hover or {}))),
        )
    )
    return text

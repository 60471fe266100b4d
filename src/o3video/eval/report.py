"""Compare evaluation runs: a markdown table, a CSV and a bar chart (``o3video eval report``).

A run directory holds ``scores.json``, written by the benchmark runner::

    {"benchmark": "vstar", "model": "<name>", "label": "<optional>", "mode": "default",
     "scores": {...}}

For V-STaR, ``scores`` is :meth:`o3video.eval.vstar_score.VStarScores.to_dict` (fractions in
[0, 1] or ``null``); the report shows the seven numbers of SPEC §7 in % with one decimal
(:data:`VSTAR_METRICS`), optionally beside the published rows (:data:`PUBLISHED_VSTAR`). Any
other benchmark gets a generic table of the top-level numbers of its ``scores`` (``n`` and
``n_*`` are counts; every other number is taken as a fraction and shown in %).

A row is named by the run's ``label``, else its ``model``, else its directory; two runs with
the same name get their directory added.

Every run has a protocol (:mod:`o3video.protocols`): its ``scores.json``'s ``protocol``, else
its folder's ``run.json`` (``settings.protocol``), else ``o3video`` (runs written before
protocols existed). A table whose runs were measured under different protocols says so: a
note under its heading names each protocol's rows, and each row's name carries its protocol
(``name [reference]``); the CSV has a ``protocol`` column.

>>> table = vstar_table([], published=True)
>>> table.rows[0].name, table.rows[0].values[0], table.rows[0].mode
('Qwen2.5-VL-7B', 33.5, 'published')
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from o3video.data.load import read_json
from o3video.errors import DataError, O3VideoError

SCORES_FILE = "scores.json"
RUN_FILE = "run.json"
DEFAULT_PROTOCOL = "o3video"
"""The protocol of a run that records none: every run before protocols existed used ours."""

VSTAR_METRICS: tuple[tuple[str, str], ...] = (
    ("What", "acc"),
    ("When C1", "tiou_1"),
    ("When C2", "tiou_2"),
    ("Where C1", "viou_1"),
    ("Where C2", "viou_2"),
    ("mAM", "mam"),
    ("mLGM", "mlgm"),
)
"""V-STaR report columns and the ``scores.json`` keys they show (SPEC §7)."""

PUBLISHED_VSTAR: dict[str, tuple[float, ...]] = {
    "Qwen2.5-VL-7B": (33.5, 15.4, 13.8, 17.0, 2.5, 19.3, 22.4),
    "GPT-4o": (60.8, 16.7, 12.8, 6.5, 3.0, 26.8, 38.2),
    "Gemini-2-Flash": (53.0, 24.5, 23.8, 4.6, 2.2, 26.9, 35.6),
    "Open-o3 Video-7B": (61.0, 24.5, 24.0, 25.4, 6.0, 33.7, 46.6),
    "Open-o3 Video-8B (Qwen3-VL)": (61.1, 24.9, 23.5, 33.2, 8.8, 35.5, 49.0),
}
"""Published V-STaR results (SPEC §7), in %, in the order of :data:`VSTAR_METRICS`."""


class PlotUnavailableError(O3VideoError):
    """The chart needs matplotlib, which is not installed."""


@dataclass(frozen=True)
class RunScores:
    """One run's ``scores.json``: where it was read, the benchmark, who ran and how."""

    path: Path
    benchmark: str
    model: str | None
    label: str | None
    mode: str | None
    scores: dict[str, Any]
    protocol: str = DEFAULT_PROTOCOL

    @property
    def name(self) -> str:
        """The row name: the label, else the model, else the run directory's name."""
        return self.label or self.model or self.path.parent.name


@dataclass(frozen=True)
class ReportRow:
    """A table row: ``values`` in %, ``None`` where undefined; ``mode`` is ``"published"``
    for a published row."""

    name: str
    values: tuple[float | None, ...]
    n: int | None = None
    mode: str = ""
    protocol: str = ""

    @property
    def published(self) -> bool:
        return self.mode == "published"


@dataclass(frozen=True)
class Table:
    """The rows of one benchmark, under ``columns`` (the metric names)."""

    benchmark: str
    columns: tuple[str, ...]
    rows: tuple[ReportRow, ...]
    sources: tuple[str, ...] = field(default=())  # one line per run: its file, n and mode
    notes: tuple[str, ...] = field(default=())  # said above the table (mixed protocols)

    @property
    def stem(self) -> str:
        """File name stem: ``report`` for V-STaR, ``report-<benchmark>`` otherwise."""
        if self.benchmark == "vstar":
            return "report"
        return "report-" + re.sub(r"[^\w.-]", "_", self.benchmark)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _optional_str(data: dict[str, Any], key: str, path: Path) -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value or None
    raise DataError(f"{path}: field {key!r} must be a string", path=str(path), field=key)


def read_run(run: str | os.PathLike[str]) -> RunScores:
    """Read ``RUN/scores.json`` (or ``run`` itself when it is a ``.json`` file).

    :class:`DataError` names the file for a missing file, malformed JSON or a bad field.
    """
    path = Path(run)
    if path.suffix != ".json":
        path = path / SCORES_FILE
    data = read_json(path, "scores")
    if not isinstance(data, dict):
        raise DataError(f"{path}: must hold a JSON object", path=str(path))
    benchmark = data.get("benchmark")
    if not isinstance(benchmark, str) or not benchmark:
        msg = f"{path}: field 'benchmark' must be a non-empty string"
        raise DataError(msg, path=str(path), field="benchmark")
    scores = data.get("scores")
    if not isinstance(scores, dict):
        msg = f"{path}: field 'scores' must be a JSON object"
        raise DataError(msg, path=str(path), field="scores")
    mode = _optional_str(data, "mode", path)
    if mode is None and isinstance(scores.get("mode"), str):
        mode = scores["mode"]
    return RunScores(
        path=path,
        benchmark=benchmark,
        model=_optional_str(data, "model", path),
        label=_optional_str(data, "label", path),
        mode=mode,
        scores=scores,
        protocol=_optional_str(data, "protocol", path) or _run_json_protocol(path),
    )


def _run_json_protocol(scores_path: Path) -> str:
    """The protocol the ``run.json`` beside ``scores_path`` records, else ``o3video``."""
    path = scores_path.parent / RUN_FILE
    if not path.is_file():
        return DEFAULT_PROTOCOL
    data = read_json(path, "run")
    settings = data.get("settings") if isinstance(data, dict) else None
    protocol = settings.get("protocol") if isinstance(settings, dict) else None
    if protocol is None:
        return DEFAULT_PROTOCOL
    if not isinstance(protocol, str) or not protocol:
        msg = f"{path}: field 'settings.protocol' must be a non-empty string"
        raise DataError(msg, path=str(path), field="settings.protocol")
    return protocol


def _names(runs: Sequence[RunScores]) -> list[str]:
    """Row names, with the run directory added where two runs share one, and each run's
    protocol where the runs mix protocols."""
    names = [r.name for r in runs]
    names = [
        f"{name} ({r.path.parent.name})" if names.count(name) > 1 else name
        for name, r in zip(names, runs, strict=True)
    ]
    if len({r.protocol for r in runs}) > 1:
        names = [f"{name} [{r.protocol}]" for name, r in zip(names, runs, strict=True)]
    return names


def protocol_notes(runs: Sequence[RunScores], names: Sequence[str]) -> tuple[str, ...]:
    """A note when ``runs`` were measured under different protocols: which rows under which
    (their numbers are not comparable as equals); none when they share one.

    >>> a = RunScores(Path("a/scores.json"), "x", "m", None, None, {}, "o3video")
    >>> b = RunScores(Path("b/scores.json"), "x", "m2", None, None, {}, "reference")
    >>> protocol_notes([a, b], ["m", "m2"])[0][:55]
    'Different protocols in one table: o3video (m); referenc'
    """
    by: dict[str, list[str]] = {}
    for run, name in zip(runs, names, strict=True):
        by.setdefault(run.protocol, []).append(name)
    if len(by) < 2:
        return ()
    parts = "; ".join(f"{p} ({', '.join(rows)})" for p, rows in by.items())
    return (
        f"Different protocols in one table: {parts}. The prompts, frames and readings "
        "differ between protocols, so these numbers do not measure the same thing.",
    )


def _percent(run: RunScores, key: str) -> float | None:
    value = run.scores.get(key)
    if value is None:
        return None
    if not _number(value) or not math.isfinite(value):
        msg = f"{run.path}: scores.{key} must be a number or null, got {value!r:.40}"
        raise DataError(msg, path=str(run.path), field=f"scores.{key}")
    return 100.0 * float(value)


def _count(run: RunScores) -> int | None:
    n = run.scores.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) else None


def _source(run: RunScores, name: str) -> str:
    return f"{name}: {run.path} (n={_count(run)}, mode={run.mode or '-'}, protocol={run.protocol})"


def vstar_table(runs: Sequence[RunScores], *, published: bool = False) -> Table:
    """The V-STaR table: one row per run (in %), then the published rows if asked."""
    columns = tuple(c for c, _ in VSTAR_METRICS)
    rows, sources = [], []
    names = _names(runs)
    for run, name in zip(runs, names, strict=True):
        for _, key in VSTAR_METRICS:
            if key not in run.scores:
                msg = f"{run.path}: scores has no {key!r}: not V-STaR scores?"
                raise DataError(msg, path=str(run.path), field=f"scores.{key}")
        values = tuple(_percent(run, key) for _, key in VSTAR_METRICS)
        rows.append(ReportRow(name, values, _count(run), run.mode or "", run.protocol))
        sources.append(_source(run, name))
    if published:
        rows += [ReportRow(m, v, None, "published") for m, v in PUBLISHED_VSTAR.items()]
    notes = protocol_notes(runs, names)
    return Table("vstar", columns, tuple(rows), tuple(sources), notes)


def generic_table(benchmark: str, runs: Sequence[RunScores]) -> Table:
    """Any benchmark: the top-level numbers of ``scores`` (in %; ``n``, ``n_*`` left out),
    columns in the order first seen."""
    columns: list[str] = []
    for run in runs:
        for key, value in run.scores.items():
            counted = key == "n" or key.startswith("n_")
            if _number(value) and not counted and key not in columns:
                columns.append(key)
    rows, sources = [], []
    names = _names(runs)
    for run, name in zip(runs, names, strict=True):
        values = tuple(_percent(run, key) for key in columns)
        rows.append(ReportRow(name, values, _count(run), run.mode or "", run.protocol))
        sources.append(_source(run, name))
    notes = protocol_notes(runs, names)
    return Table(benchmark, tuple(columns), tuple(rows), tuple(sources), notes)


def build_tables(runs: Sequence[RunScores], *, published: bool = False) -> list[Table]:
    """One table per benchmark, in the order first seen; V-STaR (with ``published``) is
    always there when ``published`` is asked, even without a V-STaR run."""
    order = list(dict.fromkeys(r.benchmark for r in runs))
    if published and "vstar" not in order:
        order.insert(0, "vstar")
    tables = []
    for bench in order:
        group = [r for r in runs if r.benchmark == bench]
        if bench == "vstar":
            tables.append(vstar_table(group, published=published))
        else:
            tables.append(generic_table(bench, group))
    return tables


def _cell(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def format_markdown(table: Table) -> str:
    """The table in markdown, values in % with one decimal; published rows marked.

    >>> print(format_markdown(Table("x", ("acc",), (ReportRow("m", (12.345,)),))))
    | Model | acc |
    |---|---:|
    | m | 12.3 |
    """
    head = "| Model | " + " | ".join(table.columns) + " |"
    rule = "|---|" + "---:|" * len(table.columns)
    lines = [head, rule]
    for row in table.rows:
        name = f"{row.name} (published)" if row.published else row.name
        lines.append(f"| {name} | " + " | ".join(_cell(v) for v in row.values) + " |")
    return "\n".join(lines)


def write_csv(table: Table, path: str | os.PathLike[str]) -> Path:
    """``model``, the metrics (in %, one decimal, empty where undefined), ``n``, ``mode``
    (``published`` for a published row) and ``protocol`` (empty for a published row)."""
    out = Path(path)
    with open(out, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model", *table.columns, "n", "mode", "protocol"])
        for row in table.rows:
            cells = ["" if v is None else f"{v:.1f}" for v in row.values]
            n = "" if row.n is None else row.n
            writer.writerow([row.name, *cells, n, row.mode, row.protocol])
    return out


def plot_table(table: Table, path: str | os.PathLike[str]) -> Path:
    """A grouped bar chart (PNG): one group per metric, one bar per row; published rows
    hatched. Needs matplotlib (``pip install 'o3video[plot]'``); undefined values get no bar.

    Drawn on a bare ``Figure`` with the Agg canvas, not through ``pyplot``: no global
    backend switch, no figure left open in the caller's process.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise PlotUnavailableError(
            f"the chart needs matplotlib ({exc}); install it with `pip install 'o3video[plot]'`"
        ) from exc
    out = Path(path)
    n_metrics, n_rows = len(table.columns), max(len(table.rows), 1)
    width = 0.8 / n_rows
    fig_w = min(16.0, max(7.0, 1.2 * n_metrics + 0.12 * n_rows * n_metrics))
    fig = Figure(figsize=(fig_w, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for j, row in enumerate(table.rows):
        xs = [i - 0.4 + width * (j + 0.5) for i in range(n_metrics)]
        heights = [math.nan if v is None else v for v in row.values]
        label = f"{row.name} (published)" if row.published else row.name
        ax.bar(xs, heights, width, label=label, hatch="//" if row.published else None)
    ax.set_xticks(list(range(n_metrics)), list(table.columns))
    ax.set_ylabel("%")
    ax.set_title(f"{table.benchmark}: runs compared")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if table.rows:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    return out


@dataclass(frozen=True)
class Report:
    """What :func:`write_report` made: the tables, the markdown text, the files written."""

    tables: tuple[Table, ...]
    markdown: str
    files: tuple[Path, ...]


def report_markdown(tables: Sequence[Table]) -> str:
    """All tables, each under its benchmark's heading, with the runs' files listed."""
    parts = []
    for table in tables:
        notes = "".join(f"**Note:** {note}\n\n" for note in table.notes)
        parts.append(f"## {table.benchmark} (%)\n\n{notes}{format_markdown(table)}")
        if table.sources:
            parts.append("\n".join(f"- {s}" for s in table.sources))
    return "\n\n".join(parts) + "\n"


def write_report(
    runs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    published: bool = False,
    plot: bool = True,
) -> Report:
    """Read the runs, write ``report.md`` and, per benchmark, ``<stem>.csv`` and (``plot``)
    ``<stem>.png`` in ``out_dir`` (``report.*`` for V-STaR, ``report-<benchmark>.*`` for the
    others). Every run is read before anything is written."""
    scores = [read_run(r) for r in runs]
    tables = build_tables(scores, published=published)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    markdown = report_markdown(tables)
    md = out / "report.md"
    md.write_text(markdown, encoding="utf-8")
    files = [md]
    for table in tables:
        files.append(write_csv(table, out / f"{table.stem}.csv"))
        if plot:
            files.append(plot_table(table, out / f"{table.stem}.png"))
    return Report(tuple(tables), markdown, tuple(files))

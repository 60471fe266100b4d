"""Learning curves of RL runs on their held-out probe set (``<run>/probe.jsonl``).

``o3video train rl ... rl.probe_every=K`` scores the policy every K steps on the same held-out
prompts (:mod:`o3video.train.probe`). This script reads those files and prints, per run, the
probe reward at every evaluation, its change from the first evaluation to the last, and —
where the file holds per-item values (``items``) — the item-by-item comparison of the last
evaluation with the first: the mean paired difference, a 95 % bootstrap interval of it
(resampling probe items), and how many items went up and down. With ``--png`` it draws the
curves, one colour per group (a run's group is its folder name less a trailing ``-s<seed>``).

Example::

    python benchmarks/probe_curves.py runs/A-*-s0 runs/A-*-s1 --reward temporal_point \\
        --png benchmarks/rl_probe_curve.png --md /tmp/table.md

``--only FIELD=VALUE --records FILE`` keeps the probe items whose record in ``FILE`` (the
probe's STGR file, the probe being its first records in order) has that field, e.g. the When
items of a mixed probe: ``--only generation=when_1 --records runs/x/heldout_vstar.json``.

A run "raises its reward" (``verdict`` column) when the bootstrap interval of the paired
difference lies above 0; "lowers" when below; otherwise "flat (within noise)".
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Curve:
    """One run's probe evaluations."""

    run: Path
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    first_items: list[float] | None = None
    last_items: list[float] | None = None

    @property
    def group(self) -> str:
        return re.sub(r"-s\d+$", "", self.run.name)


def kept_items(records: Path, only: str) -> list[int]:
    """Indices of the records of the STGR file ``records`` whose ``FIELD`` is ``VALUE``
    (``only`` is ``FIELD=VALUE``)."""
    name, sep, value = only.partition("=")
    if not sep or not name:
        raise SystemExit(f"--only {only!r}: write it as FIELD=VALUE, e.g. generation=when_1")
    try:
        rows = json.loads(records.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise SystemExit(f"{records}: cannot read the records ({e})") from e
    if not isinstance(rows, list):
        raise SystemExit(f"{records}: not a JSON list of records")
    keep = [i for i, r in enumerate(rows) if isinstance(r, dict) and str(r.get(name)) == value]
    if not keep:
        raise SystemExit(f"{records}: no record has {name} = {value!r}")
    return keep


def read_curve(run: Path, reward: str, keep: Sequence[int] | None = None) -> Curve:
    """The curve of ``reward`` (``total`` for the weighted sum) in ``run/probe.jsonl``;
    with ``keep``, the mean over those probe items only (indices past the probe's end are
    dropped)."""
    path = run / "probe.jsonl"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise SystemExit(f"{path}: cannot read the probe file ({e})") from e
    curve = Curve(run)
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
            value = line["total"] if reward == "total" else line["rewards"][reward]
            step = int(line["step"])
        except (ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"{path}:{n}: no {reward!r} value in this line ({e!r})") from e
        items = (line.get("items") or {}).get(reward) if reward != "total" else None
        if keep is not None:
            if items is None:
                raise SystemExit(f"{path}:{n}: --only needs per-item {reward!r} values")
            items = [items[i] for i in keep if i < len(items)]
            if not items:
                raise SystemExit(f"{path}:{n}: none of the kept items is in the probe")
            value = sum(items) / len(items)
        curve.steps.append(step)
        curve.values.append(float(value))
        if items is not None:
            if curve.first_items is None:
                curve.first_items = [float(v) for v in items]
            curve.last_items = [float(v) for v in items]
    if not curve.steps:
        raise SystemExit(f"{path}: no evaluation in the file")
    return curve


def paired(
    first: Sequence[float], last: Sequence[float], *, draws: int = 2000, seed: int = 0
) -> tuple[float, float, float, int, int]:
    """Mean of ``last − first`` item by item, its 95 % bootstrap interval, items up, down.

    >>> mean, lo, hi, up, down = paired([0.0, 0.5, 0.5], [1.0, 0.5, 1.0])
    >>> round(mean, 3), up, down, lo <= mean <= hi
    (0.5, 2, 0, True)
    """
    if len(first) != len(last) or not first:
        raise ValueError(f"paired needs two equal, non-empty lists ({len(first)}, {len(last)})")
    diffs = [b - a for a, b in zip(first, last, strict=True)]
    rng = random.Random(seed)
    n = len(diffs)
    means = sorted(sum(rng.choice(diffs) for _ in range(n)) / n for _ in range(draws))
    lo, hi = means[int(0.025 * draws)], means[int(0.975 * draws) - 1]
    up = sum(d > 1e-9 for d in diffs)
    down = sum(d < -1e-9 for d in diffs)
    return sum(diffs) / n, lo, hi, up, down


def table(curves: Sequence[Curve]) -> str:
    """A markdown table: one row per run, the value at every evaluated step."""
    steps = sorted({s for c in curves for s in c.steps})
    head = (
        "| run | "
        + " | ".join(str(s) for s in steps)
        + " | end − start | paired Δ [95 % CI] | up / down | verdict |"
    )
    rows = [head, "|" + "---|" * (len(steps) + 5)]
    for c in curves:
        at = dict(zip(c.steps, c.values, strict=True))
        cells = [f"{at[s]:.3f}" if s in at else "" for s in steps]
        delta = c.values[-1] - c.values[0]
        if c.first_items is not None and c.last_items is not None and len(c.steps) > 1:
            mean, lo, hi, up, down = paired(c.first_items, c.last_items)
            ci = f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]"
            ud = f"{up} / {down}"
            verdict = "raises" if lo > 0 else "lowers" if hi < 0 else "flat (within noise)"
        else:
            ci, ud, verdict = "–", "–", "no per-item values"
        rows.append(
            f"| {c.run.name} | "
            + " | ".join(cells)
            + f" | {delta:+.3f} | {ci} | {ud} | {verdict} |"
        )
    return "\n".join(rows) + "\n"


def plot(curves: Sequence[Curve], png: Path, reward: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = sorted({c.group for c in curves})
    colours = {g: plt.get_cmap("tab10")(i % 10) for i, g in enumerate(groups)}
    fig, ax = plt.subplots(figsize=(7, 4))
    seen: set[str] = set()
    for c in curves:
        label = c.group if c.group not in seen else None
        seen.add(c.group)
        ax.plot(c.steps, c.values, marker="o", color=colours[c.group], label=label, alpha=0.85)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(f"probe {reward} (greedy, held-out)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders holding probe.jsonl")
    parser.add_argument("--reward", default="total", help="a reward name, or total (default)")
    parser.add_argument("--png", type=Path, help="draw the curves here")
    parser.add_argument("--md", type=Path, help="also write the table to this file")
    parser.add_argument("--only", help="FIELD=VALUE: keep the probe items whose record has it")
    parser.add_argument("--records", type=Path, help="the probe's STGR file (for --only)")
    args = parser.parse_args(argv)
    if (args.only is None) != (args.records is None):
        parser.error("--only and --records go together")
    keep = kept_items(args.records, args.only) if args.only else None
    curves = [read_curve(r, args.reward, keep) for r in args.runs]
    text = table(curves)
    sys.stdout.write(text)
    if args.md:
        args.md.write_text(text, encoding="utf-8")
    if args.png:
        plot(curves, args.png, args.reward)
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""CPU-scale ablations of the RL design (SPEC §6), run with the shipped commands only.

Two subcommands:

``run``
    For every variant × seed, train stage 2 from the SFT checkpoint with
    ``o3video train rl --config RECIPE model.path=SFT output_dir=OUT/VARIANT-sS rl.seed=S
    <variant overrides> <extra>`` and evaluate it with ``o3video eval vstar --model
    OUT/VARIANT-sS/final --data HELDOUT --out OUT/VARIANT-sS/vstar``. The ``sft`` variant
    trains nothing: it evaluates the SFT checkpoint once (decoding is greedy) into ``OUT/sft``.
    Each child's output goes to ``train.log`` / ``eval.log`` in its run folder; each exact
    command is printed before it runs; commands, exit codes and wall seconds are recorded in
    ``OUT/<run>/ablation.json``. A run whose ``final/`` and ``vstar/scores.json`` exist is
    skipped, so the same command resumes an interrupted sweep (the trainer itself resumes
    from its last ``checkpoint-*``). Before training, the resolved config of every run is
    checked with ``o3video train rl --print-config`` (the variant's rewards and importance
    sampling level must be what the variant says, every other reward untouched).

``report``
    Reads every run's ``ablation.json``, ``vstar/scores.json`` and the trainer's log history
    (``trainer_state.json``: copied into the run folder after training, else the newest
    ``checkpoint-*/trainer_state.json``) and writes a markdown table (mean and min–max over
    seeds per variant, then one row per run) between the markers
    ``<!-- ablation-table:start -->`` / ``<!-- ablation-table:end -->`` of ``--md`` (the rest
    of the file is kept; the file is created if absent), and the reward curves
    (``rewards/<name>/mean`` and the total ``reward`` of TRL's GRPOTrainer logs) to ``--png``.

Variants (fixed names, in this order): ``sft`` (no RL), ``grpo`` (token-level importance
ratios with the reference's PPO clip range, ``rl.importance_sampling_level=token
rl.epsilon=0.2 rl.epsilon_high=0.2``: GSPO's 3e-4 / 4e-4 is a range for sequence-level ratios
and would clip almost every token), ``gspo`` (the recipe as is), ``gspo-no-gate``
(spatial gate ``none``), ``gspo-legacy-gate`` (the reference's signed 1 s gate),
``gspo-sigma1`` / ``gspo-sigma4`` (point supervision with a fixed σ of 1 s / 4 s).

Example (CPU, tiny model on the synthetic world)::

    o3video train sft --config recipes/synthetic-tiny-sft.yaml
    o3video data synth --out runs/synth-heldout --n 8 --seed 1000
    python benchmarks/ablations.py run --sft runs/synthetic-tiny-sft/final \\
        --recipe recipes/synthetic-tiny-gspo.yaml --data runs/synth-heldout \\
        --out runs/ablations --seeds 0 1
    python benchmarks/ablations.py report runs/ablations \\
        --md benchmarks/ablations.md --png benchmarks/ablation_rewards.png
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VARIANTS: tuple[str, ...] = (
    "sft",
    "grpo",
    "gspo",
    "gspo-no-gate",
    "gspo-legacy-gate",
    "gspo-sigma1",
    "gspo-sigma4",
)
"""The ablation variants, in report order."""

PAPER: dict[str, tuple[float, float]] = {
    "sft": (28.5, 37.1),
    "grpo": (32.8, 45.3),
    "gspo": (33.7, 46.6),
    "gspo-no-gate": (32.3, 44.9),
    "gspo-sigma1": (32.6, 44.5),
    "gspo-sigma4": (33.0, 45.2),
}
"""Published V-STaR mAM / mLGM of the 7B model (SPEC §6); no legacy-gate row was published."""

GRPO_CLIP = 0.2
"""The clip range ε (low and high) of the ``grpo`` variant: the reference's (SPEC §6)."""

SCALAR_KEYS = ("importance_sampling_level", "epsilon", "epsilon_high")
"""The ``rl`` settings besides the rewards that a variant may change (checked after resolving)."""

MARK_START = "<!-- ablation-table:start -->"
MARK_END = "<!-- ablation-table:end -->"

METRICS: tuple[tuple[str, str], ...] = (
    ("acc", "What"),
    ("tiou_1", "When C1"),
    ("tiou_2", "When C2"),
    ("viou_1", "Where C1"),
    ("viou_2", "Where C2"),
    ("mam", "mAM"),
    ("mlgm", "mLGM"),
)
"""(key in ``scores.json``'s ``scores``, column title); shown in percent."""

CLI = [sys.executable, "-m", "o3video.cli.main"]


class AblationError(Exception):
    """Bad input: a missing or malformed file (named in the message), a failed check."""


# --------------------------------------------------------------------------- variants


def _entry(base: dict[str, Any], name: str) -> dict[str, Any]:
    """The reward ``name`` of ``base`` as an options dict with an explicit ``weight``."""
    if name not in base:
        raise AblationError(
            f"the recipe has no {name!r} reward (rewards: {', '.join(base) or 'none'}); "
            "this variant changes it, so it would be meaningless"
        )
    value = base[name]
    if isinstance(value, dict):
        out = dict(value)
        out.setdefault("weight", 1.0)
        return out
    return {"weight": value}


def variant_overrides(variant: str, base_rewards: dict[str, Any]) -> list[str]:
    """The ``key=value`` overrides of ``variant`` for a recipe whose ``rl.rewards`` is
    ``base_rewards``.

    A changed reward is written whole, as a JSON (= YAML flow) mapping with its weight:
    an override reaching inside a reward given as a bare weight (``rl.rewards.spatial.gate=
    none`` when the recipe says ``spatial: 2.0``) would replace the weight by the default 1.

    >>> variant_overrides("gspo-no-gate", {"answer": 1.0, "spatial": 2.0})
    ['rl.rewards.spatial={"weight": 2.0, "gate": "none"}']
    >>> variant_overrides("grpo", {})
    ['rl.importance_sampling_level=token', 'rl.epsilon=0.2', 'rl.epsilon_high=0.2']
    """
    if variant not in VARIANTS:
        raise AblationError(f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    if variant in ("sft", "gspo"):
        return []
    if variant == "grpo":
        return [
            "rl.importance_sampling_level=token",
            f"rl.epsilon={GRPO_CLIP}",
            f"rl.epsilon_high={GRPO_CLIP}",
        ]
    if variant in ("gspo-no-gate", "gspo-legacy-gate"):
        entry = _entry(base_rewards, "spatial")
        entry["gate"] = "none" if variant == "gspo-no-gate" else "legacy"
        entry.pop("tau_s", None)  # legacy: its own 1 s default; none: no gate to place
        return [f"rl.rewards.spatial={json.dumps(entry)}"]
    sigma = 1.0 if variant == "gspo-sigma1" else 4.0
    entry = _entry(base_rewards, "temporal_point")
    entry.update(schedule="fixed", sigma=sigma)
    return [f"rl.rewards.temporal_point={json.dumps(entry)}"]


def expected_rl(variant: str, base_rl: dict[str, Any]) -> dict[str, Any]:
    """What ``rl.rewards`` and the :data:`SCALAR_KEYS` must resolve to for ``variant`` given
    the recipe's resolved ``rl`` section (weights made explicit)."""
    import yaml  # type: ignore[import-untyped]

    rewards = dict(base_rl["rewards"])
    want: dict[str, Any] = {key: base_rl[key] for key in SCALAR_KEYS}
    for item in variant_overrides(variant, rewards):
        key, _, raw = item.partition("=")
        value = yaml.safe_load(raw)  # as `o3video train` reads an override's value
        name = key.rsplit(".", 1)[1]
        (rewards if key.startswith("rl.rewards.") else want)[name] = value
    return {"rewards": rewards, **want}


def _weights_equal(a: Any, b: Any) -> bool:
    """Reward entries equal up to an implicit weight 1 (``1.0`` == ``{"weight": 1.0}``)."""

    def norm(x: Any) -> Any:
        if isinstance(x, dict):
            return {"weight": 1.0, **x}
        return {"weight": float(x)}

    return bool(norm(a) == norm(b))


# --------------------------------------------------------------------------- run


@dataclass(frozen=True)
class RunSpec:
    """One run of the sweep: a variant and a seed (``None`` for ``sft``)."""

    variant: str
    seed: int | None

    @property
    def name(self) -> str:
        return self.variant if self.seed is None else f"{self.variant}-s{self.seed}"


def plan(variants: Sequence[str], seeds: Sequence[int]) -> list[RunSpec]:
    """The runs of a sweep, in variant order then seed order (``sft`` once)."""
    out = []
    for v in VARIANTS:
        if v not in variants:
            continue
        if v == "sft":
            out.append(RunSpec(v, None))
        else:
            out.extend(RunSpec(v, s) for s in seeds)
    return out


def _print_config(recipe: Path, overrides: Sequence[str]) -> dict[str, Any]:
    """The resolved config of ``o3video train rl --config RECIPE --print-config OVERRIDES``."""
    import yaml  # type: ignore[import-untyped]

    cmd = [*CLI, "train", "rl", "--config", str(recipe), "--print-config", *overrides]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise AblationError(f"{shlex.join(cmd)} failed ({done.returncode}):\n{done.stderr.strip()}")
    data = yaml.safe_load(done.stdout)
    if not isinstance(data, dict) or not isinstance(data.get("rl"), dict):
        raise AblationError(f"{shlex.join(cmd)}: unexpected output:\n{done.stdout[:500]}")
    return data


def check_resolved(variant: str, base_rl: dict[str, Any], resolved_rl: dict[str, Any]) -> None:
    """Raise :class:`AblationError` unless ``resolved_rl`` has the variant's rewards (every
    reward of the recipe, with its weight), importance sampling level and clip range."""
    want = expected_rl(variant, base_rl)
    got_rewards = resolved_rl["rewards"]
    problems = []
    if list(got_rewards) != list(want["rewards"]):
        problems.append(f"reward names {list(got_rewards)} != {list(want['rewards'])}")
    for name, entry in want["rewards"].items():
        if name in got_rewards and not _weights_equal(got_rewards[name], entry):
            problems.append(f"rewards.{name}: {got_rewards[name]!r} != {entry!r}")
    for key in SCALAR_KEYS:
        if resolved_rl[key] != want[key]:
            problems.append(f"{key} {resolved_rl[key]!r} != {want[key]!r}")
    if problems:
        raise AblationError(f"variant {variant}: resolved config is wrong: {'; '.join(problems)}")


def _run_logged(cmd: list[str], log: Path) -> tuple[int, float]:
    """Run ``cmd`` with stdout and stderr appended to ``log``; (exit code, wall seconds)."""
    print(f"$ {shlex.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    with log.open("a", encoding="utf-8") as f:
        f.write(f"\n$ {shlex.join(cmd)}\n")
        f.flush()
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
    return rc, time.perf_counter() - t0


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The ``checkpoint-N`` folder of ``run_dir`` with the largest N, if any."""
    found = []
    for p in run_dir.glob("checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return max(found)[1] if found else None


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def run_one(
    spec: RunSpec,
    *,
    sft: Path,
    recipe: Path,
    data: Path,
    out: Path,
    extra: Sequence[str],
    eval_args: Sequence[str],
    base_rl: dict[str, Any],
) -> bool:
    """Train (unless ``sft``) and evaluate one run, resumably; whether it succeeded."""
    run_dir = out / spec.name
    final = sft if spec.variant == "sft" else run_dir / "final"
    scores = run_dir / "vstar" / "scores.json"
    record_path = run_dir / "ablation.json"
    record: dict[str, Any] = {}
    if record_path.is_file():
        record = _read_json(record_path)
    if final.is_dir() and scores.is_file():
        if not record:
            record = {"variant": spec.variant, "seed": spec.seed, "status": "done"}
            _write_json(record_path, record)
        print(f"[skip] {spec.name}: {final} and {scores} exist", flush=True)
        return True
    run_dir.mkdir(parents=True, exist_ok=True)
    overrides = variant_overrides(spec.variant, base_rl["rewards"])
    record.update(
        variant=spec.variant,
        seed=spec.seed,
        run_dir=str(run_dir),
        model=str(final),
        overrides=overrides,
        extra=list(extra),
        status="running",
    )
    commands = record.setdefault("commands", {})
    if spec.variant != "sft" and not final.is_dir():
        train_overrides = [
            f"model.path={sft}",
            f"output_dir={run_dir}",
            f"rl.seed={spec.seed}",
            *overrides,
            *extra,
        ]
        resolved = _print_config(recipe, train_overrides)["rl"]
        check_resolved(spec.variant, base_rl, resolved)
        record["resolved_rl"] = {
            k: resolved[k] for k in ("rewards", *SCALAR_KEYS, "seed", "max_steps")
        }
        cmd = [*CLI, "train", "rl", "--config", str(recipe), *train_overrides]
        commands["train"] = shlex.join(cmd)
        _write_json(record_path, record)
        rc, wall = _run_logged(cmd, run_dir / "train.log")
        record.update(train_rc=rc, train_wall_s=wall)
        if rc != 0 or not final.is_dir():
            record["status"] = "train failed"
            _write_json(record_path, record)
            print(f"[FAIL] {spec.name}: training exited {rc}; see {run_dir / 'train.log'}")
            return False
        ckpt = newest_checkpoint(run_dir)
        if ckpt is not None and (ckpt / "trainer_state.json").is_file():
            state = (ckpt / "trainer_state.json").read_text(encoding="utf-8")
            (run_dir / "trainer_state.json").write_text(state, encoding="utf-8")
    cmd = [*CLI, "eval", "vstar", "--model", str(final), "--data", str(data)]
    cmd += ["--out", str(run_dir / "vstar"), "--label", spec.name, *eval_args]
    commands["eval"] = shlex.join(cmd)
    _write_json(record_path, record)
    rc, wall = _run_logged(cmd, run_dir / "eval.log")
    record.update(eval_rc=rc, eval_wall_s=wall)
    ok = rc == 0 and scores.is_file()
    record["status"] = "done" if ok else "eval failed"
    _write_json(record_path, record)
    if not ok:
        print(f"[FAIL] {spec.name}: eval exited {rc}; see {run_dir / 'eval.log'}")
        return False
    summary = _read_json(scores).get("scores", {})
    train_s = record.get("train_wall_s")
    print(
        f"[done] {spec.name}: mAM {_pct(summary.get('mam'))} mLGM {_pct(summary.get('mlgm'))}"
        f" train {_secs(train_s)} eval {_secs(wall)}",
        flush=True,
    )
    return True


def run_sweep(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    extra = list(args.extra)
    if args.max_steps is not None:
        extra.insert(0, f"rl.max_steps={args.max_steps}")
    eval_args = shlex.split(args.eval_args or "")
    if not args.sft.is_dir():
        raise AblationError(f"--sft {args.sft}: no such folder")
    base_rl = _print_config(args.recipe, extra)["rl"]
    runs = plan(args.variants, args.seeds)

    def one(i: int, spec: RunSpec) -> bool:
        print(f"[{i}/{len(runs)}] {spec.name}", flush=True)
        return run_one(
            spec,
            sft=args.sft,
            recipe=args.recipe,
            data=args.data,
            out=out,
            extra=extra,
            eval_args=eval_args,
            base_rl=base_rl,
        )

    # Runs are child processes: threads only wait for them (--jobs at a time).
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = list(pool.map(one, range(1, len(runs) + 1), runs))
    failed = [spec.name for spec, ok in zip(runs, done, strict=True) if not ok]
    if failed:
        print(f"{len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all {len(runs)} run(s) done; report: python {__file__} report {out}")
    return 0


# --------------------------------------------------------------------------- report


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise AblationError(f"{path}: cannot read: {e.strerror or e}") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise AblationError(f"{path}: malformed JSON: {e}") from e


def read_scores(path: Path, producer: str) -> dict[str, Any]:
    """The ``scores`` mapping of a V-STaR ``scores.json`` written by ``producer`` (named in
    the error when the file is not one)."""
    doc = _read_json(path)
    scores = doc.get("scores") if isinstance(doc, dict) else None
    if not isinstance(scores, dict) or "mam" not in scores:
        raise AblationError(f"{path}: not an `{producer}` scores file")
    return scores


@dataclass
class RunResult:
    """What the report needs of one run folder."""

    name: str
    variant: str
    seed: int | None
    scores: dict[str, Any]
    train_wall_s: float | None
    eval_wall_s: float | None
    log_history: list[dict[str, Any]]
    history_source: str | None


def trainer_log_history(run_dir: Path) -> tuple[list[dict[str, Any]], str | None]:
    """The trainer's ``log_history`` of ``run_dir`` and the file it came from: the run's
    ``trainer_state.json`` (copied there after training), else the newest checkpoint's."""
    candidates = [run_dir / "trainer_state.json"]
    ckpt = newest_checkpoint(run_dir)
    if ckpt is not None:
        candidates.append(ckpt / "trainer_state.json")
    for path in candidates:
        if path.is_file():
            state = _read_json(path)
            history = state.get("log_history") if isinstance(state, dict) else None
            if not isinstance(history, list):
                raise AblationError(f"{path}: no log_history list")
            return [h for h in history if isinstance(h, dict)], str(path)
    return [], None


def load_run(run_dir: Path) -> RunResult:
    """One run folder's record, scores and log history (errors name the file)."""
    record = _read_json(run_dir / "ablation.json")
    if not isinstance(record, dict) or record.get("variant") not in VARIANTS:
        raise AblationError(f"{run_dir / 'ablation.json'}: no known 'variant'")
    scores_path = run_dir / "vstar" / "scores.json"
    if not scores_path.is_file():
        raise AblationError(f"{scores_path}: missing (run the eval: {run_dir.name} not scored)")
    scores = read_scores(scores_path, "o3video eval vstar")
    history, source = trainer_log_history(run_dir)
    return RunResult(
        name=run_dir.name,
        variant=record["variant"],
        seed=record.get("seed"),
        scores=scores,
        train_wall_s=record.get("train_wall_s"),
        eval_wall_s=record.get("eval_wall_s"),
        log_history=history,
        history_source=source,
    )


def load_runs(outdir: Path) -> list[RunResult]:
    """Every run folder (one holding ``ablation.json``) under ``outdir``, in report order."""
    if not outdir.is_dir():
        raise AblationError(f"{outdir}: no such folder")
    runs = [load_run(p.parent) for p in sorted(outdir.glob("*/ablation.json"))]
    if not runs:
        raise AblationError(f"{outdir}: no run folder (*/ablation.json)")
    runs.sort(key=lambda r: (VARIANTS.index(r.variant), -1 if r.seed is None else r.seed))
    return runs


def _pct(x: Any) -> str:
    return "—" if not isinstance(x, (int, float)) or not math.isfinite(x) else f"{100 * x:.1f}"


def _secs(x: Any) -> str:
    return "—" if not isinstance(x, (int, float)) else f"{x:.0f} s"


def summarize(values: Sequence[float | None]) -> tuple[float, float, float, int] | None:
    """(mean, min, max, n) of the defined values, or ``None`` when there are none."""
    xs = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not xs:
        return None
    return sum(xs) / len(xs), min(xs), max(xs), len(xs)


def _cell(values: Sequence[float | None], scale: float = 100.0, unit: str = "") -> str:
    s = summarize(values)
    if s is None:
        return "—"
    mean, lo, hi, n = s
    text = f"{scale * mean:.1f}{unit}" if scale != 1 else f"{mean:.0f}{unit}"
    if n > 1:
        fmt = "{:.1f}" if scale != 1 else "{:.0f}"
        text += f" [{fmt.format(scale * lo)}–{fmt.format(scale * hi)}]"
    missing = len(values) - n
    return text + (f" ({missing} undefined)" if missing else "")


def _final_reward(history: Sequence[dict[str, Any]]) -> float | None:
    values = [h["reward"] for h in history if isinstance(h.get("reward"), (int, float))]
    return float(values[-1]) if values else None


def load_baseline(path: Path) -> dict[str, Any]:
    """The ``scores`` of an ``o3video eval vstar-baseline`` output (its folder or its
    ``scores.json``); errors name the file."""
    return read_scores(
        path / "scores.json" if path.is_dir() else path, "o3video eval vstar-baseline"
    )


def report_tables(runs: Sequence[RunResult], baseline: dict[str, Any] | None = None) -> str:
    """The markdown of the two tables (per variant, per run) and their notes; ``baseline``
    (the constant baseline's scores) adds its row above the variants'."""
    cols = [title for _, title in METRICS]
    lines = [
        "V-STaR scores in percent: mean over seeds [min–max]; `train` is the training wall "
        "time measured by `benchmarks/ablations.py`.",
        "",
        "| variant | seeds | " + " | ".join(cols) + " | train | paper 7B mAM/mLGM |",
        "|" + "---|" * (len(cols) + 4),
    ]
    if baseline is not None:
        cells = [_pct(baseline.get(k)) for k, _ in METRICS]
        lines.append("| constant baseline | — | " + " | ".join(cells) + " | — | — |")
    for variant in VARIANTS:
        group = [r for r in runs if r.variant == variant]
        if not group:
            continue
        seeds = ",".join("—" if r.seed is None else str(r.seed) for r in group)
        cells = [_cell([r.scores.get(k) for r in group]) for k, _ in METRICS]
        train = _cell([r.train_wall_s for r in group], scale=1.0, unit=" s")
        paper = PAPER.get(variant)
        ref = f"{paper[0]}/{paper[1]}" if paper else "—"
        if variant == "gspo-no-gate":
            ref += "†"
        lines.append(f"| {variant} | {seeds} | " + " | ".join(cells) + f" | {train} | {ref} |")
    if any(r.variant == "gspo-no-gate" for r in runs):
        lines += [
            "",
            "† the paper's Table 5 labels are ambiguous (SPEC §6): 32.3/44.9 is either "
            "'without gating' or 'only adaptive σ'.",
        ]
    lines += [
        "",
        "Per run:",
        "",
        "| run | " + " | ".join(cols) + " | train | eval | steps | last reward |",
        "|" + "---|" * (len(cols) + 5),
    ]
    for r in runs:
        cells = [_pct(r.scores.get(k)) for k, _ in METRICS]
        steps = [h["step"] for h in r.log_history if isinstance(h.get("step"), int)]
        last = _final_reward(r.log_history)
        lines.append(
            f"| {r.name} | "
            + " | ".join(cells)
            + f" | {_secs(r.train_wall_s)} | {_secs(r.eval_wall_s)} | "
            + f"{max(steps) if steps else '—'} | "
            + ("—" if last is None else f"{last:.3f}")
            + " |"
        )
    return "\n".join(lines) + "\n"


def replace_region(text: str | None, body: str) -> str:
    """``text`` with the region between the markers replaced by ``body`` (markers kept); the
    markers and ``body`` appended when absent; a new document when ``text`` is ``None``."""
    block = f"{MARK_START}\n{body.rstrip()}\n{MARK_END}"
    if text is None:
        return f"# Ablations of the RL design (CPU scale)\n\n{block}\n"
    start, end = text.find(MARK_START), text.find(MARK_END)
    if start == -1 and end == -1:
        return text.rstrip("\n") + "\n\n" + block + "\n"
    if start == -1 or end == -1 or end < start:
        raise AblationError("the markdown has one ablation-table marker without the other")
    return text[:start] + block + text[end + len(MARK_END) :]


def reward_keys(runs: Sequence[RunResult]) -> list[str]:
    """The logged reward keys: ``reward`` (the weighted total) then ``rewards/<name>/mean``
    in first-seen order."""
    seen: list[str] = []
    for r in runs:
        for h in r.log_history:
            for k in h:
                if re.fullmatch(r"rewards/[^/]+/mean", k) and k not in seen:
                    seen.append(k)
    total = any("reward" in h for r in runs for h in r.log_history)
    return (["reward"] if total else []) + seen


def plot_rewards(runs: Sequence[RunResult], png: Path) -> None:
    """One subplot per reward key, one line per run, one colour per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = reward_keys(runs)
    png.parent.mkdir(parents=True, exist_ok=True)
    if not keys:
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.text(0.5, 0.5, "no reward logged", ha="center", va="center")
        ax.set_axis_off()
        fig.savefig(png, dpi=100)
        plt.close(fig)
        return
    ncols = min(3, len(keys))
    nrows = math.ceil(len(keys) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 3.2 * nrows), squeeze=False)
    cmap = plt.get_cmap("tab10")
    colours = {v: cmap(i % 10) for i, v in enumerate(VARIANTS)}
    styles = ["-", "--", ":", "-."]
    for ax, key in zip(axes.flat, keys, strict=False):
        for r in runs:
            points = [
                (h["step"], h[key])
                for h in r.log_history
                if isinstance(h.get("step"), int) and isinstance(h.get(key), (int, float))
            ]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            style = styles[(r.seed or 0) % len(styles)]
            ax.plot(
                xs, ys, style, marker=".", color=colours[r.variant], label=r.name, linewidth=1.2
            )
        ax.set_title("total reward (weighted)" if key == "reward" else key.split("/")[1])
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.set_axis_off()
    legend: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    if legend:
        labels = [r.name for r in runs if r.name in legend]
        handles = [legend[name] for name in labels]
        fig.legend(handles, labels, loc="lower center", ncol=min(7, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(png, dpi=100)
    plt.close(fig)


def write_report(
    outdir: str | Path,
    md_path: str | Path,
    png_path: str | Path | None,
    baseline: str | Path | None = None,
) -> str:
    """Read the runs under ``outdir``, write the tables into ``md_path`` (between the markers,
    keeping the rest) and the reward curves to ``png_path`` (if given); returns the tables.
    ``baseline``: an ``o3video eval vstar-baseline`` output, shown as the first row."""
    runs = load_runs(Path(outdir))
    body = report_tables(runs, None if baseline is None else load_baseline(Path(baseline)))
    md = Path(md_path)
    old = md.read_text(encoding="utf-8") if md.is_file() else None
    md.parent.mkdir(parents=True, exist_ok=True)
    md.write_text(replace_region(old, body), encoding="utf-8")
    if png_path is not None:
        plot_rewards(runs, Path(png_path))
    return body


# --------------------------------------------------------------------------- CLI

EXAMPLES = """examples:
  python benchmarks/ablations.py run --sft runs/synthetic-tiny-sft/final \\
      --recipe recipes/synthetic-tiny-gspo.yaml --data runs/synth-heldout --out runs/ablations
  python benchmarks/ablations.py run --sft runs/sft/final \\
      --recipe recipes/synthetic-tiny-gspo.yaml --data runs/synth-heldout --out /tmp/abl \\
      --seeds 0 --variants sft gspo --max-steps 1 --extra rl.num_generations=2 \\
      --eval-args="--limit 2 --max-new-tokens 64"
  python benchmarks/ablations.py report runs/ablations --md benchmarks/ablations.md \\
      --png benchmarks/ablation_rewards.png --baseline runs/eval-baseline
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ablations.py",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="train and evaluate every variant × seed (resumable)",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--sft", type=Path, required=True, help="the SFT checkpoint (…/final)")
    run.add_argument("--recipe", type=Path, required=True, help="the GSPO recipe YAML")
    run.add_argument("--data", type=Path, required=True, help="held-out V-STaR file or folder")
    run.add_argument("--out", type=Path, required=True, help="sweep folder (one folder per run)")
    run.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="default: 0 1")
    run.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=list(VARIANTS),
        metavar="VARIANT",
        help=f"default: all ({', '.join(VARIANTS)})",
    )
    run.add_argument("--max-steps", type=int, default=None, help="rl.max_steps of every run")
    run.add_argument(
        "--extra",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="more `o3video train rl` overrides, after the variant's",
    )
    run.add_argument(
        "--eval-args",
        default="",
        metavar="'ARGS'",
        help='more `o3video eval vstar` options, one string: --eval-args="--limit 4 --judge exact"',
    )
    run.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at a time (each its own processes; e.g. 2 with OMP_NUM_THREADS=1 on 2 cores)",
    )
    rep = sub.add_parser(
        "report",
        help="tables (markdown) and reward curves (PNG) of a finished sweep",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rep.add_argument("outdir", type=Path, help="the sweep folder of `run --out`")
    rep.add_argument("--md", type=Path, default=Path("benchmarks/ablations.md"))
    rep.add_argument("--png", type=Path, default=Path("benchmarks/ablation_rewards.png"))
    rep.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="DIR",
        help="an `o3video eval vstar-baseline` output (folder or scores.json): its row first",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return run_sweep(args)
        body = write_report(args.outdir, args.md, args.png, args.baseline)
        print(body, end="")
        print(f"wrote {args.md} and {args.png}", file=sys.stderr)
        return 0
    except AblationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

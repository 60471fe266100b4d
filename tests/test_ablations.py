"""benchmarks/ablations.py: the report side on fabricated run folders, and the variant
overrides through the real config loader."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from bench_scripts import load_benchmark

from o3video.eval.vstar_score import GroupScores, VStarScores
from o3video.train.config import load_config

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "synthetic-tiny-gspo.yaml"


abl = load_benchmark("ablations")


def _scores_doc(acc: float, t: tuple[float, float], v: tuple[float, float]) -> dict[str, Any]:
    """A ``scores.json`` as ``o3video.eval.vstar.finish`` writes it, from the real classes."""
    am = tuple((acc + t[k] + v[k]) / 3 for k in (0, 1))
    lgm = tuple(-sum(math.log(1 - x) for x in (acc, t[k], v[k])) / 3 for k in (0, 1))
    group = GroupScores(
        n=4,
        n_scored=4,
        acc=acc,
        mean_rating=None,
        tiou=t,
        viou=v,
        r1=((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
        viou_at=((0.0,) * 5, (0.0,) * 5),
        am=am,
        lgm=lgm,
        mam=(am[0] + am[1]) / 2,
        mlgm=(lgm[0] + lgm[1]) / 2,
    )
    scores = VStarScores(mode="default", overall=group, by_domain={}, by_duration={}, items=())
    return {
        "benchmark": "vstar",
        "model": "x/final",
        "label": None,
        "mode": "default",
        "judge": "exact",
        "judge_stats": {},
        "scores": scores.to_dict(),
    }


def _make_run(
    out: Path,
    name: str,
    variant: str,
    seed: int | None,
    scores: dict[str, Any] | None,
    train_s: float | None = 10.0,
    history: list[dict[str, Any]] | None = None,
) -> Path:
    run = out / name
    (run / "vstar").mkdir(parents=True)
    record = {"variant": variant, "seed": seed, "train_wall_s": train_s, "eval_wall_s": 2.0}
    (run / "ablation.json").write_text(json.dumps(record))
    if scores is not None:
        (run / "vstar" / "scores.json").write_text(json.dumps(scores))
    if history is not None:
        ckpt = run / "checkpoint-2"
        ckpt.mkdir()
        (ckpt / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    return run


def _history(scale: float) -> list[dict[str, Any]]:
    return [
        {
            "step": s,
            "loss": 0.1,
            "reward": scale * s,
            "rewards/answer/mean": 0.5 * s,
            "rewards/spatial/mean": scale,
        }
        for s in (1, 2)
    ]


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    out = tmp_path / "abl"
    _make_run(out, "sft", "sft", None, _scores_doc(0.2, (0.1, 0.1), (0.05, 0.05)), None)
    _make_run(
        out, "gspo-s0", "gspo", 0, _scores_doc(0.5, (0.2, 0.3), (0.1, 0.2)), 10.0, _history(1)
    )
    _make_run(
        out, "gspo-s1", "gspo", 1, _scores_doc(0.7, (0.4, 0.1), (0.3, 0.0)), 30.0, _history(2)
    )
    _make_run(
        out, "grpo-s0", "grpo", 0, _scores_doc(0.25, (0.0, 0.0), (0.0, 0.0)), 5.0, _history(3)
    )
    return out


def _row(md: str, first: str) -> list[str]:
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{md}")


def test_variant_table_means_and_ranges(sweep: Path, tmp_path: Path) -> None:
    md = tmp_path / "abl.md"
    body = abl.write_report(sweep, md, None)
    row = _row(body, "gspo")
    # What 50 / 70 → 60.0 [50.0–70.0]; When C1 20/40; When C2 30/10; Where C1 10/30; C2 20/0
    assert row[1] == "0,1"
    assert row[2] == "60.0 [50.0–70.0]"
    assert row[3] == "30.0 [20.0–40.0]"
    assert row[4] == "20.0 [10.0–30.0]"
    assert row[5] == "20.0 [10.0–30.0]"
    assert row[6] == "10.0 [0.0–20.0]"
    mam0 = ((0.5 + 0.2 + 0.1) / 3 + (0.5 + 0.3 + 0.2) / 3) / 2
    mam1 = ((0.7 + 0.4 + 0.3) / 3 + (0.7 + 0.1 + 0.0) / 3) / 2
    lo, hi = sorted((mam0, mam1))
    assert row[7] == f"{100 * (mam0 + mam1) / 2:.1f} [{100 * lo:.1f}–{100 * hi:.1f}]"
    assert row[9] == "20 s [10–30]"
    assert row[10] == "33.7/46.6"
    sft = _row(body, "sft")
    assert sft[1] == "—" and sft[2] == "20.0" and sft[9] == "—"
    # variants in the fixed order, runs too
    order = [line.split("|")[1].strip() for line in body.splitlines() if line.startswith("| ")]
    assert order.index("sft") < order.index("grpo") < order.index("gspo")
    per_run = _row(body, "gspo-s1")
    assert per_run[1] == "70.0" and per_run[-2] == "2" and per_run[-1] == "4.000"
    assert md.read_text().count(abl.MARK_START) == 1


def test_constant_baseline_row_first(sweep: Path, tmp_path: Path) -> None:
    base = tmp_path / "baseline"
    base.mkdir()
    (base / "scores.json").write_text(json.dumps(_scores_doc(0.05, (0.2, 0.2), (0.1, 0.0))))
    body = abl.write_report(sweep, tmp_path / "abl.md", None, baseline=base)
    row = _row(body, "constant baseline")
    assert row[1:7] == ["—", "5.0", "20.0", "20.0", "10.0", "0.0"]
    order = [line.split("|")[1].strip() for line in body.splitlines() if line.startswith("| ")]
    assert order.index("constant baseline") < order.index("sft")
    (base / "scores.json").write_text(json.dumps({"scores": {"acc": 0.1}}))
    with pytest.raises(abl.AblationError, match=r"baseline/scores\.json: not an"):
        abl.write_report(sweep, tmp_path / "abl.md", None, baseline=base / "scores.json")


def test_marker_region_replaced_prose_kept(sweep: Path, tmp_path: Path) -> None:
    md = tmp_path / "abl.md"
    md.write_text(
        f"# Title\n\nProse above.\n\n{abl.MARK_START}\nOLD TABLE\n{abl.MARK_END}\n\nProse below.\n"
    )
    abl.write_report(sweep, md, None)
    text = md.read_text()
    assert text.startswith("# Title\n\nProse above.\n\n" + abl.MARK_START)
    assert text.endswith(abl.MARK_END + "\n\nProse below.\n")
    assert "OLD TABLE" not in text and "| gspo |" in text
    once = text
    abl.write_report(sweep, md, None)
    assert md.read_text() == once


def test_png_written(sweep: Path, tmp_path: Path) -> None:
    png = tmp_path / "curves.png"
    abl.write_report(sweep, tmp_path / "abl.md", png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    runs = abl.load_runs(sweep)
    assert abl.reward_keys(runs) == ["reward", "rewards/answer/mean", "rewards/spatial/mean"]


def test_missing_scores_names_the_file(sweep: Path, tmp_path: Path) -> None:
    _make_run(sweep, "gspo-sigma1-s0", "gspo-sigma1", 0, None)
    with pytest.raises(abl.AblationError, match=r"gspo-sigma1-s0/vstar/scores\.json"):
        abl.write_report(sweep, tmp_path / "abl.md", None)


def test_malformed_json_names_the_file(sweep: Path, tmp_path: Path) -> None:
    (sweep / "grpo-s0" / "vstar" / "scores.json").write_text("{not json")
    with pytest.raises(abl.AblationError, match=r"grpo-s0/vstar/scores\.json: malformed JSON"):
        abl.write_report(sweep, tmp_path / "abl.md", None)


@pytest.mark.parametrize("variant", abl.VARIANTS)
def test_variant_overrides_resolve(variant: str) -> None:
    base = load_config(RECIPE, [], stage="rl").rl
    overrides = abl.variant_overrides(variant, dict(base.rewards))
    rl = load_config(RECIPE, overrides, stage="rl").rl
    want_level = "token" if variant == "grpo" else "sequence"
    assert rl.importance_sampling_level == want_level
    # GRPO gets the reference's PPO clip range; every GSPO variant keeps the recipe's
    want_clip = (0.2, 0.2) if variant == "grpo" else (base.epsilon, base.epsilon_high)
    assert (rl.epsilon, rl.epsilon_high) == want_clip
    assert list(rl.rewards) == list(base.rewards)  # every reward kept, in order
    changed = {
        "gspo-no-gate": ("spatial", {"weight": 1.0, "gate": "none"}),
        "gspo-legacy-gate": ("spatial", {"weight": 1.0, "gate": "legacy"}),
        "gspo-sigma1": ("temporal_point", {"weight": 1.0, "schedule": "fixed", "sigma": 1.0}),
        "gspo-sigma4": ("temporal_point", {"weight": 1.0, "schedule": "fixed", "sigma": 4.0}),
    }.get(variant)
    for name, entry in rl.rewards.items():
        if changed and name == changed[0]:
            assert entry == changed[1]
        else:
            assert entry == base.rewards[name]
    # the options reach the reward registry, weights included
    from o3video.rewards.registry import build_rewards

    _, weights = build_rewards(rl.rewards, progress_fn=lambda: 0.0)
    assert weights == [1.0] * len(rl.rewards)
    resolved = {"rewards": rl.rewards, **_scalars(rl)}
    abl.check_resolved(variant, {"rewards": dict(base.rewards), **_scalars(base)}, resolved)


def _scalars(rl: Any) -> dict[str, Any]:
    """The ``rl`` settings a variant may change besides its rewards (level, clip range)."""
    return {key: getattr(rl, key) for key in abl.SCALAR_KEYS}


def test_override_keeps_a_non_default_weight() -> None:
    overrides = abl.variant_overrides("gspo-sigma4", {"answer": 1.0, "temporal_point": 2.5})
    rl = load_config(None, ["rl.rewards={answer: 1.0, temporal_point: 2.5}", *overrides]).rl
    assert rl.rewards["temporal_point"] == {"weight": 2.5, "schedule": "fixed", "sigma": 4.0}
    with pytest.raises(abl.AblationError, match="no 'spatial' reward"):
        abl.variant_overrides("gspo-no-gate", {"answer": 1.0})


def test_check_resolved_catches_a_lost_weight() -> None:
    base = {"rewards": {"answer": 1.0, "spatial": 2.0}, **_gspo_scalars()}
    lost = {"rewards": {"answer": 1.0, "spatial": {"gate": "none"}}, **_gspo_scalars()}
    with pytest.raises(abl.AblationError, match=r"rewards\.spatial"):
        abl.check_resolved("gspo-no-gate", base, lost)


def _gspo_scalars() -> dict[str, Any]:
    return {"importance_sampling_level": "sequence", "epsilon": 3e-4, "epsilon_high": 4e-4}


def test_check_resolved_catches_a_grpo_run_with_gspos_clip() -> None:
    """The ``grpo`` variant's token-level ratios under GSPO's 3e-4 clip would clip nearly
    every token; a resolved config that kept it (an ``--extra`` override) is refused."""
    base = {"rewards": {"answer": 1.0}, **_gspo_scalars()}
    kept_clip = {
        "rewards": {"answer": 1.0},
        **_gspo_scalars(),
        "importance_sampling_level": "token",
    }
    with pytest.raises(abl.AblationError, match=r"epsilon 0\.0003 != 0\.2"):
        abl.check_resolved("grpo", base, kept_clip)
    abl.check_resolved("grpo", base, {**kept_clip, "epsilon": 0.2, "epsilon_high": 0.2})


def test_plan_order_and_sft_once() -> None:
    names = [s.name for s in abl.plan(["gspo", "sft", "grpo"], [0, 1])]
    assert names == ["sft", "grpo-s0", "grpo-s1", "gspo-s0", "gspo-s1"]


FAKE_CLI = """
import json, os, subprocess, sys, time
from pathlib import Path
args = sys.argv[1:]
if "--print-config" in args:  # the real resolved config
    sys.exit(subprocess.run([sys.executable, "-m", "o3video.cli.main", *args]).returncode)
log = Path(sys.argv[0]).with_name("calls.jsonl")
live = Path(sys.argv[0]).with_name("live")  # one file per call running now
live.mkdir(exist_ok=True)
me = live / str(os.getpid())
me.touch()
start = time.time()
# Stay until another call is running too (or 3 s have passed: a call with no partner left),
# so that two calls started together overlap however slowly the machine starts processes.
while time.time() - start < 3.0 and len(list(live.iterdir())) < 2:
    time.sleep(0.02)
peers = len(list(live.iterdir()))
out = Path(args[args.index("--out") + 1] if "--out" in args else
           next(a for a in args if a.startswith("output_dir=")).split("=", 1)[1])
if args[0] == "train":
    (out / "final").mkdir(parents=True)
else:
    out.mkdir(parents=True)
    (out / "scores.json").write_text(json.dumps({"scores": {"mam": 0.5, "mlgm": 0.6}}))
with log.open("a") as f:
    f.write(json.dumps({"args": args, "peers": peers}) + "\\n")
me.unlink()
"""


def test_run_sweep_runs_jobs_at_a_time_and_records_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run --jobs 2``: every run trained (once) and evaluated, two at a time, each with its
    record; a second sweep skips them all."""
    fake = tmp_path / "fake_cli.py"
    fake.write_text(FAKE_CLI)
    monkeypatch.setattr(abl, "CLI", [sys.executable, str(fake)])
    sft = tmp_path / "sft"
    sft.mkdir()
    argv = ["run", "--sft", str(sft), "--recipe", str(RECIPE), "--data", str(tmp_path),
            "--out", str(tmp_path / "sweep"), "--seeds", "0", "--variants", "sft", "grpo",
            "gspo", "gspo-sigma1", "--jobs", "2"]  # fmt: skip
    assert abl.main(argv) == 0
    calls = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    trained = sorted(next(a for a in c["args"] if a.startswith("output_dir="))
                     for c in calls if c["args"][0] == "train")  # fmt: skip
    assert trained == [f"output_dir={tmp_path / 'sweep' / n}-s0" for n in
                       ("grpo", "gspo", "gspo-sigma1")]  # fmt: skip
    assert sum(c["args"][0] == "eval" for c in calls) == 4
    # Two at a time: some call saw another running beside it, and none saw two others.
    assert max(c["peers"] for c in calls) == 2
    for name in ("sft", "grpo-s0", "gspo-s0", "gspo-sigma1-s0"):
        assert (
            json.loads((tmp_path / "sweep" / name / "ablation.json").read_text())["status"]
            == "done"
        )
    assert abl.main(argv) == 0  # everything exists: nothing runs again
    assert len((tmp_path / "calls.jsonl").read_text().splitlines()) == len(calls)

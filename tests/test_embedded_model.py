"""The embedded model shipped in the package, and its card: what it is, how it was made.

The default tests check the shipped folder against the repository: the weights' size, the
card's frame budget and world, one training entry per stage whose resolved config is the
recipe's that made it (so ``scripts/build_embedded.py --recipe R`` re-runs exactly what made
it; the shipped model is ``--recipe tower112-long``: the kept SFT stage ``benchmarks/
embedded-sft112-long/`` and one GSPO stage), and the scores on a held-out seed. Two ``slow``
tests: one re-synthesizes the held-out corpus from its seed and scores the shipped weights on
it (about 5 minutes), which must give the card's scores; the other re-runs the whole build
(about 5 hours on two CPU cores for ``tower112``, 6 for ``tower112-long``) and compares its
scores with the card's.

``benchmarks/embedded-sft/`` (``--recipe shipped``, the previous embedded model's first two
stages), ``benchmarks/embedded-sft112/`` (``--recipe tower112``) and ``benchmarks/
embedded-sft112-long/`` (``--recipe tower112-long``) keep SFT-stage models,
each with the record of its build (``build.json``: the weights' SHA-256, the scores of the
SFT model and of the GSPO stage run from it); the default tests check them against the
recipes and the records, and a third ``slow`` test re-runs the RL stage alone from each
(``--sft-checkpoint``) and compares with its record.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from bench_scripts import load_benchmark

from o3video.embedded import MODEL_DIR, embedded_model_dir
from o3video.models.card import read_card, video_settings_for
from o3video.train.config import RunConfig, load_config, to_dict

ROOT = Path(__file__).resolve().parents[1]
KEPT_SFT = ROOT / "benchmarks" / "embedded-sft"
KEPT_SFT112 = ROOT / "benchmarks" / "embedded-sft112"
KEPT_SFT112_LONG = ROOT / "benchmarks" / "embedded-sft112-long"
KEPT_OF = {"tower112": KEPT_SFT112, "tower112-long": KEPT_SFT112_LONG}
"""The kept SFT stage each 112×112 build recipe's RL stage starts from."""
STAGES = (
    ("ground", "sft", "synthetic-tiny-embedded-ground-sft.yaml"),
    ("sft", "sft", "synthetic-tiny-embedded-sft.yaml"),
    ("gspo", "rl", "synthetic-tiny-embedded-gspo.yaml"),
)
HELDOUT_WORLD = ROOT / "recipes" / "synthetic-tiny-embedded-sft.yaml"
"""Whose world the held-out corpus of every build is made in (the evaluated world: ``tower112``'s
SFT recipe has the same one, and its last SFT round only adds naming questions to it)."""
METRICS = ("acc", "tiou_1", "tiou_2", "viou_1", "viou_2", "mam", "mlgm")
TOLERANCE = {"acc": 0.08, "tiou_1": 0.08, "tiou_2": 0.08, "viou_1": 0.08, "viou_2": 0.08,
             "mam": 0.04, "mlgm": 0.08}  # fmt: skip
"""How far a re-run's scores may land from the card's (absolute, fractions): CPU kernels differ
between machines, and sampled RL rollouts amplify the difference."""


@pytest.fixture(scope="module")
def card() -> dict[str, Any]:
    found = read_card(embedded_model_dir())
    assert found is not None, f"{MODEL_DIR} has no o3video.json"
    return found


def _portable(config: dict[str, Any]) -> dict[str, Any]:
    """A resolved config without the paths a build chooses (output and input folders)."""
    out = json.loads(json.dumps(config))
    out.pop("output_dir")
    out["model"].pop("path")
    out["data"].pop("stgr")
    return out


def _added_since(
    recorded: dict[str, Any], shipped: dict[str, Any], default: dict[str, Any]
) -> tuple[tuple[str, str], ...]:
    """The ``(section, key)`` fields the recorded config lacks; each must be at its default
    in the shipped recipe."""
    added = []
    for section, values in shipped.items():
        if not isinstance(values, dict) or section not in recorded:
            continue
        for key, value in values.items():
            if key not in recorded[section]:
                assert value == default[section][key], f"{section}.{key} set by the recipe"
                added.append((section, key))
    return tuple(added)


def _assert_recorded(config: dict[str, Any], want: dict[str, Any], what: str = "") -> None:
    """The recorded resolved ``config`` is ``want`` (a portable resolved config), but for the
    fields added to the config since it was recorded: the card lacks them, and ``want`` must
    leave each at its default (then the recorded run is what ``want`` says today)."""
    recorded = _portable(config)
    newer = _added_since(recorded, want, _portable(to_dict(RunConfig())))
    expected = json.loads(json.dumps(want))
    for section, key in newer:
        expected[section].pop(key)
    assert recorded == expected, what


def test_weights_are_small_and_complete() -> None:
    files = {p.name: p.stat().st_size for p in embedded_model_dir().iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "o3video.json"} <= set(files)
    assert sum(files.values()) <= 20 * 1024 * 1024


def _check_stages(stages: list[dict[str, Any]], recipes: tuple[tuple[str, str, str], ...]) -> None:
    """Training entries ``stages`` are one per recipe, each with the recipe's resolved config."""
    assert [s["stage"] for s in stages] == [stage for _, stage, _ in recipes]
    for entry, (name, stage, recipe) in zip(stages, recipes, strict=True):
        assert entry["seed"] == 0 and entry["data_seed"] == 0, name
        assert entry["steps"] > 0 and entry["train_runtime_s"] > 0, name
        assert entry["wall_s"] >= entry["train_runtime_s"], name
        assert entry["git_commit"], name
        shipped = to_dict(load_config(ROOT / "recipes" / recipe, stage=stage))
        _assert_recorded(entry["config"], _portable(shipped), f"{name}: not {recipe}")


def _recipe_of(card: dict[str, Any]) -> str:
    """The ``--recipe`` of ``scripts/build_embedded.py`` that built the card's model (cards
    written before the option existed are of the three 56×56 recipes, ``shipped``)."""
    recipe = card.get("build", {}).get("recipe", "shipped")
    assert recipe in ("shipped", *KEPT_OF), recipe
    return str(recipe)


def test_card_records_every_stage_as_its_build_recipe_says(card: dict[str, Any]) -> None:
    """Each training entry is its recipe's resolved config. A ``tower112`` (``tower112-long``)
    model is the kept SFT stage (``benchmarks/embedded-sft112/`` or ``embedded-sft112-long/``,
    every entry of its card unchanged) plus one RL stage of
    ``synthetic-tiny-embedded-gspo112.yaml``, on seed 0, from those weights (the SHA-256 of
    the weights it started from is the kept stage's)."""
    recipe_name = _recipe_of(card)
    if recipe_name in KEPT_OF:
        folder = KEPT_OF[recipe_name]
        kept = read_card(folder)
        assert kept is not None, f"{folder} has no o3video.json"
        assert card["training"][:-1] == kept["training"]
        rl = card["training"][-1]
        assert rl["stage"] == "rl" and rl["seed"] == 0 and rl["steps"] > 0, rl["stage"]
        if recipe_name == "tower112":
            assert "model.path=benchmarks/embedded-sft112" in rl["command"]
        recipe = to_dict(load_config(ROOT / "recipes" / _build_script().GSPO112, stage="rl"))
        _assert_recorded(rl["config"], _portable(recipe))
        world = kept["world"]
        record = json.loads((folder / "build.json").read_text())
        assert card["build"]["sft_sha256"] == record["sft_sha256"]
        assert _build_script().weights_sha256(folder) == record["sft_sha256"]
    else:
        _check_stages(card["training"], STAGES)
        world = card["training"][-1]["config"]["data"]["synth"]["world"]
    assert card["world"] == world
    # The frame budget of the last stage is the card's own.
    last = card["training"][-1]["config"]["data"]
    video = video_settings_for(MODEL_DIR)
    assert video is not None
    assert (video.fps, video.max_frames, video.max_pixels) == (
        last["fps"],
        last["max_frames"],
        last["max_pixels"],
    )


def test_card_scores_on_a_held_out_seed(card: dict[str, Any]) -> None:
    scores = card["scores"]
    assert scores["heldout"]["seed"] not in {s.get("data_seed") for s in card["training"]}
    assert scores["heldout"]["items"] >= 100
    for row in ("sft+gspo", "sft", "constant baseline"):
        assert all(isinstance(scores[row][m], float) for m in METRICS), row
    # The model beats the constant answer, span and box on every measure, and is far above
    # them where it grounds best (the answer and the first chain's boxes).
    model, base = scores["sft+gspo"], scores["constant baseline"]
    for m in METRICS:
        assert model[m] > base[m], m
    for m in ("acc", "viou_1"):
        assert model[m] > base[m] + 0.1, m


@pytest.mark.slow
def test_the_shipped_weights_score_what_the_card_says(card: dict[str, Any], tmp_path: Path) -> None:
    """The held-out corpus again from its seed, the shipped model scored on it: the card's row.

    Decoding is greedy, so only a different CPU's float rounding could move an answer; the
    tolerance allows about one item of 171 to flip."""
    held = card["scores"]["heldout"]
    corpus, run = tmp_path / "heldout", tmp_path / "eval"
    o3video = [sys.executable, "-m", "o3video.cli.main"]
    subprocess.run([*o3video, "data", "synth", "--out", str(corpus), "--n", str(held["n_videos"]),
                    "--seed", str(held["seed"]), "--world-of", str(HELDOUT_WORLD)],
                   check=True)  # fmt: skip
    subprocess.run([*o3video, "eval", "vstar", "--model", str(embedded_model_dir()), "--data",
                    str(corpus), "--out", str(run), "--batch-size", "4"], check=True)  # fmt: skip
    scores = json.loads((run / "scores.json").read_text())["scores"]
    assert scores["n"] == held["items"]
    for m in METRICS:
        assert scores[m] == pytest.approx(card["scores"]["sft+gspo"][m], abs=0.01), m


@pytest.mark.slow
def test_the_recipes_reproduce_the_card(card: dict[str, Any], tmp_path: Path) -> None:
    """The whole build again, from the shipped recipes and the card's seeds (hours on CPU)."""
    out = tmp_path / "build"
    held = card["scores"]["heldout"]
    cmd = [sys.executable, str(ROOT / "scripts" / "build_embedded.py"), "--out", str(out),
           "--recipe", _recipe_of(card), "--heldout-n", str(held["n_videos"]), "--heldout-seed",
           str(held["seed"])]  # fmt: skip
    threads = card["build"].get("threads")
    if threads:
        cmd += ["--threads", str(threads)]
    subprocess.run(cmd, check=True)
    again = json.loads((out / "build.json").read_text())["scores"]
    report = {
        row: {m: (round(card["scores"][row][m], 4), round(again[row][m], 4)) for m in METRICS}
        for row in ("sft+gspo", "sft")
    }
    (tmp_path / "reproduction.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    for row, values in report.items():
        for m, (shipped, rerun) in values.items():
            assert abs(shipped - rerun) <= TOLERANCE[m], (row, m, shipped, rerun)


def _build_script() -> Any:
    return load_benchmark("build_embedded", folder="scripts")


def test_the_kept_sft_checkpoint_is_what_the_recipes_and_its_record_say() -> None:
    kept = read_card(KEPT_SFT)
    assert kept is not None, f"{KEPT_SFT} has no o3video.json"
    _check_stages(kept["training"], STAGES[:2])
    record = json.loads((KEPT_SFT / "build.json").read_text())
    build = _build_script()
    assert build.weights_sha256(KEPT_SFT) == record["sft_sha256"]
    for row in ("sft", "sft+gspo", "constant baseline"):
        assert set(METRICS) <= set(record["scores"][row]), row
    # A whole model folder, small enough to keep in the repository.
    assert all((KEPT_SFT / name).is_file() for name in build.MODEL_FILES)
    assert sum(p.stat().st_size for p in KEPT_SFT.iterdir()) <= 20 * 1024 * 1024


def test_a_build_record_totals_the_timed_steps_and_names_the_others(card: dict[str, Any]) -> None:
    """Steps run by hand before the build took them over have no wall time: the total is of
    the timed steps (not an error, not a silent zero), and the untimed ones are named."""
    build = _build_script()
    steps = {"a": {"wall_s": 10.04}, "b": {"wall_s": None}, "c": {"wall_s": 2.0}}
    assert build.total_wall(steps) == (12.0, ["b"])
    assert build.total_wall({}) == (0.0, [])
    total, untimed = build.total_wall(card["build"]["steps"])
    assert card["build"]["wall_s"] == total
    assert card["build"]["untimed_steps"] == untimed


def test_a_build_refuses_a_kept_checkpoint_that_is_not_an_sft_stage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build = _build_script()
    out = tmp_path / "build"
    assert build.main(["--out", str(out), "--sft-checkpoint", str(tmp_path)]) == 1
    assert f"{tmp_path}: not a model folder with a card" in capsys.readouterr().err
    # The shipped model ends with its RL stage: it is not where the RL stage starts.
    assert build.main(["--out", str(out), "--sft-checkpoint", str(embedded_model_dir())]) == 1
    err = capsys.readouterr().err
    assert "not an SFT-stage card" in err and "'rl']" in err
    assert not (out / "sft").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kept", "recipe"),
    [(KEPT_SFT, "shipped"), (KEPT_SFT112, "tower112"), (KEPT_SFT112_LONG, "tower112-long")],
    ids=["embedded-sft", "embedded-sft112", "embedded-sft112-long"],
)
def test_the_rl_stage_from_a_kept_sft_checkpoint_reproduces_its_record(
    kept: Path, recipe: str, tmp_path: Path
) -> None:
    """Only the RL stage and the evaluations again (about 25 minutes on two CPU cores for the
    56×56 recipe, about an hour for each 112×112 one): the SFT row must be the record's to about
    one item (the same weights, greedy decoding), the SFT+GSPO row within :data:`TOLERANCE`
    (sampled rollouts)."""
    record = json.loads((kept / "build.json").read_text())
    out = tmp_path / "build"
    held = record["scores"]["heldout"]
    cmd = [sys.executable, str(ROOT / "scripts" / "build_embedded.py"), "--out", str(out),
           "--recipe", recipe, "--sft-checkpoint", str(kept), "--heldout-n",
           str(held["n_videos"]), "--heldout-seed", str(held["seed"])]  # fmt: skip
    threads = record.get("rl_threads", record.get("threads"))
    if threads:  # the RL stage's float rounding depends on it
        cmd += ["--threads", str(threads)]
    subprocess.run(cmd, check=True)
    again = json.loads((out / "build.json").read_text())["scores"]
    print(json.dumps({row: again[row] for row in ("sft+gspo", "sft")}, indent=1))
    for m in METRICS:
        assert again["sft"][m] == pytest.approx(record["scores"]["sft"][m], abs=0.01), m
        assert abs(again["sft+gspo"][m] - record["scores"]["sft+gspo"][m]) <= TOLERANCE[m], m


@pytest.mark.parametrize(
    ("stage", "recipe", "steps"),
    [
        ("ground", "synthetic-tiny-embedded-ground-sft.yaml", 15),
        ("sft", "synthetic-tiny-embedded-sft.yaml", 30),
        ("gspo", "synthetic-tiny-embedded-gspo.yaml", 4),
    ],
)
def test_scale_shortens_every_stage(stage: str, recipe: str, steps: int) -> None:
    """``--scale 0.01`` cuts each stage's own step count (``sft.max_steps`` or
    ``rl.max_steps`` in its recipe), and the override resolves to that stage's section."""
    build = _build_script()
    path = Path("recipes") / recipe
    overrides = build.stage_overrides(stage, path, Path("/tmp/o"), 0.01)
    assert f"max_steps={steps}" in overrides
    section = "rl" if stage == "gspo" else "sft"
    config = load_config(path, overrides, stage=section)
    assert getattr(config, section).max_steps == steps
    assert build.stage_overrides(stage, path, Path("/tmp/o"), 1.0) == [
        o for o in overrides if not o.startswith(("max_steps=", "save_steps=", "data.synth.n="))
    ]


def test_the_112_recipes_train_on_the_evaluated_world_at_112_pixels() -> None:
    """``--recipe tower112``: the SFT recipe's world is the shipped world (so the held-out
    corpus is the same one), its frames are shown at 112×112, and the RL recipe pays the
    V-STaR answers but not What, with the KL anchor and the held-out probe."""
    shipped = load_config(Path("recipes") / "synthetic-tiny-embedded-sft.yaml", stage="sft")
    sft = load_config(Path("recipes") / "synthetic-tiny-embedded-sft112.yaml", stage="sft")
    rl = load_config(Path("recipes") / "synthetic-tiny-embedded-gspo112.yaml", stage="rl")
    assert sft.data.synth is not None and shipped.data.synth is not None
    assert sft.data.synth.world == shipped.data.synth.world
    assert sft.data.video.max_pixels == rl.data.video.max_pixels == 112 * 112
    assert rl.rl.rewards == {"answer": {"vstar_what": "none"}, "format": 1.0}
    assert rl.rl.beta == 0.2 and rl.rl.importance_sampling_level == "sequence"
    assert rl.rl.probe_every and rl.rl.probe_stgr is not None


def test_a_scaled_112_build_runs_no_probe_and_rl_trains_on_v_star_records(
    tmp_path: Path,
) -> None:
    build = _build_script()
    overrides = build.scale_overrides(Path("recipes") / build.GSPO112, 0.01)
    assert "max_steps=8" in overrides and "rl.probe_every=0" in overrides
    assert build.scale_overrides(Path("recipes") / build.GSPO112, 1.0) == []
    stgr = tmp_path / "stgr_rl.json"
    records = [{"id": "a", "task": "V-STaR protocol"}, {"id": "b", "task": "Temporal grounding"}]
    stgr.write_text(json.dumps(records))
    kept = build.vstar_records(stgr)
    assert kept.name == "stgr_vstar.json" and json.loads(kept.read_text()) == records[:1]
    stgr.write_text(json.dumps(records[1:]))
    kept.unlink()
    with pytest.raises(build.BuildError, match="no 'V-STaR protocol' records"):
        build.vstar_records(stgr)


def test_a_112_build_refuses_a_kept_checkpoint_of_another_recipe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build = _build_script()
    out = tmp_path / "build"
    argv = ["--recipe", "tower112", "--out", str(out), "--sft-checkpoint", str(KEPT_SFT)]
    assert build.main(argv) == 1
    err = capsys.readouterr().err
    assert "not an SFT-stage card of --recipe tower112" in err and "['sft', 'sft']" in err
    assert not (out / "sft").exists()


def test_the_kept_112_checkpoint_is_what_its_recipes_and_record_say() -> None:
    """``benchmarks/embedded-sft112/``: the last SFT round of ``--recipe tower112``. Its card
    lists the kept 56×56 SFT stage's two entries, then the three tower runs and three SFT
    rounds, each SFT round with the resolved config of ``synthetic-tiny-embedded-sft112.yaml``
    (the last on seed 8 with the naming questions); ``build.json`` has its weights' SHA-256
    and its held-out scores."""
    build = _build_script()
    kept = read_card(KEPT_SFT112)
    assert kept is not None, f"{KEPT_SFT112} has no o3video.json"
    entries = kept["training"]
    assert [e["stage"] for e in entries] == [stage for _, stage in build.KEPT_STAGES["tower112"]]
    first = read_card(KEPT_SFT)
    assert first is not None and entries[:2] == first["training"]
    recipe = to_dict(load_config(ROOT / "recipes" / build.SFT112, stage="sft"))
    rounds = [e for e in entries[2:] if e["stage"] == "sft"]
    for i, entry in enumerate(rounds):
        want = _portable(recipe)
        if i == len(rounds) - 1:
            want["data"]["synth"]["seed"] = 8
            want["data"]["synth"]["world"] = {**want["data"]["synth"]["world"], "naming_qa": True}
        _assert_recorded(entry["config"], want, f"SFT round {i + 1}")
        assert entry["steps"] == recipe["sft"]["max_steps"] and entry["git_commit"]
    towers = [e for e in entries if e["stage"] == "tower"]
    assert [t["steps"] for t in towers] == [800, 1000, 1000]
    assert kept["world"] == rounds[-1]["config"]["data"]["synth"]["world"]
    record = json.loads((KEPT_SFT112 / "build.json").read_text())
    assert build.weights_sha256(KEPT_SFT112) == record["sft_sha256"]
    for row in ("sft", "sft+gspo", "constant baseline"):
        assert set(METRICS) <= set(record["scores"][row]), row
    # The SFT+GSPO row is the RL recipe as it stands, from these weights, on seed 0.
    gspo = record["steps"]["gspo"]["command"]
    assert gspo[:4] == ["train", "rl", "--config", f"recipes/{build.GSPO112}"]
    assert "model.path=benchmarks/embedded-sft112" in gspo and "rl.seed=0" in gspo
    assert record["rl_threads"] == 1
    assert record["scores"]["heldout"]["seed"] not in {e.get("data_seed") for e in entries}
    assert all((KEPT_SFT112 / name).is_file() for name in build.MODEL_FILES)
    assert sum(p.stat().st_size for p in KEPT_SFT112.iterdir()) <= 20 * 1024 * 1024


@pytest.mark.parametrize("scale", [1.0, 0.01])
def test_the_long_112_recipe_adds_sft_rounds_and_starts_rl_from_the_last(
    tmp_path: Path, scale: float
) -> None:
    """``--recipe tower112-long``: after ``tower112``'s last SFT round, each round of
    ``LONG_ROUNDS`` continues the one before on its own world seed with the naming questions,
    for ``LONG_STEPS`` steps (scaled like the recipe's), and the RL stage starts from the last.
    The steps are recorded, not run."""
    build = _build_script()
    out = tmp_path / "b"
    for corpus in ("rl-data", "heldout"):  # what the RL step reads its V-STaR records from
        (out / corpus).mkdir(parents=True)
        (out / corpus / "stgr_rl.json").write_text(json.dumps([{"task": "V-STaR protocol"}]))
    ran: dict[str, list[str]] = {}
    record: dict[str, Any] = {"steps": {}}

    def step(name: str, argv: list[str], done: Path | None = None) -> None:
        ran[name] = argv
        record["steps"][name] = {}

    args = SimpleNamespace(recipe="tower112-long", scale=scale, sft_checkpoint=None)
    build.tower112(args, out, step, step, lambda world: None, record)
    names = [name for name, _ in build.LONG_ROUNDS]
    trainings = [n for n in ran if n.startswith("sft") or n == "gspo"]
    assert trainings == ["sft-a", "sft-b", "sft", *names, "gspo"]
    start = out / "sft" / "final"
    for name, seed in build.LONG_ROUNDS:
        argv = ran[name]
        assert f"model.path={start}" in argv and f"data.synth.seed={seed}" in argv
        assert "data.synth.world.naming_qa=true" in argv
        steps = [a for a in argv if a.startswith(("max_steps=", "sft.max_steps="))]
        assert steps == [f"max_steps={build.scaled(build.LONG_STEPS, scale)}"]
        config = load_config(ROOT / "recipes" / build.SFT112, argv[argv.index("--config") + 2 :],
                             stage="sft")  # fmt: skip
        assert config.sft.max_steps == build.scaled(build.LONG_STEPS, scale)
        start = out / name / "final"
    assert f"model.path={start}" in ran["gspo"]
    assert build.last_sft("tower112-long") == names[-1] and build.last_sft("tower112") == "sft"
    assert build.KEPT_STAGES["tower112-long"][-len(names) :] == tuple((n, "sft") for n in names)


def test_the_kept_long_112_checkpoint_is_the_112_stage_plus_its_rounds() -> None:
    """``benchmarks/embedded-sft112-long/``: the last SFT round of ``--recipe tower112-long``.
    Its card is ``embedded-sft112``'s, every entry unchanged, plus one entry per round of
    ``LONG_ROUNDS``: the SFT recipe's resolved config on that round's world seed with the
    naming questions, for ``LONG_STEPS`` steps; ``build.json`` has its weights' SHA-256, its
    held-out scores and the GSPO112 recipe's run from it."""
    build = _build_script()
    folder = ROOT / "benchmarks" / "embedded-sft112-long"
    kept, base = read_card(folder), read_card(KEPT_SFT112)
    assert kept is not None and base is not None
    entries = kept["training"]
    stages = [stage for _, stage in build.KEPT_STAGES["tower112-long"]]
    assert [e["stage"] for e in entries] == stages
    assert entries[: len(base["training"])] == base["training"]
    recipe = to_dict(load_config(ROOT / "recipes" / build.SFT112, stage="sft"))
    added = entries[len(base["training"]) :]
    for entry, (_, seed) in zip(added, build.LONG_ROUNDS, strict=True):
        want = _portable(recipe)
        want["data"]["synth"]["seed"] = seed
        want["data"]["synth"]["world"] = {**want["data"]["synth"]["world"], "naming_qa": True}
        want["sft"]["max_steps"] = build.LONG_STEPS
        _assert_recorded(entry["config"], want)
        assert entry["steps"] == build.LONG_STEPS and entry["git_commit"]
    assert "model.path=benchmarks/embedded-sft112" in added[0]["command"]
    record = json.loads((folder / "build.json").read_text())
    assert record["recipe"] == "tower112-long"
    assert build.weights_sha256(folder) == record["sft_sha256"]
    for row in ("sft", "sft+gspo", "constant baseline"):
        assert set(METRICS) <= set(record["scores"][row]), row
    gspo = record["steps"]["gspo"]["command"]
    assert gspo[:4] == ["train", "rl", "--config", f"recipes/{build.GSPO112}"]
    assert "rl.seed=0" in gspo
    assert all((folder / name).is_file() for name in build.MODEL_FILES)
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 20 * 1024 * 1024

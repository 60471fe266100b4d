"""Build the embedded model: train the three shipped recipes, score them, install the result.

Every step is an ``o3video`` command (printed before it runs, its output in ``OUT/logs/``):

1. ``train sft --config recipes/synthetic-tiny-embedded-ground-sft.yaml`` (grounding),
2. ``train sft --config recipes/synthetic-tiny-embedded-sft.yaml`` from stage 1's model,
3. ``train rl --config recipes/synthetic-tiny-embedded-gspo.yaml`` from stage 2's model,
4. ``data synth`` of a held-out corpus in the model's world (``--heldout-seed``, never a
   training seed),
5. ``eval vstar`` of the SFT and the GSPO model and ``eval vstar-baseline`` (the constant
   answer, mean span and mean box of the training items) on that corpus.

Then the scores, the held-out corpus, the wall time of every step and the machine are written
into the GSPO model's card (``o3video.json``) and into ``OUT/build.json``. ``--install`` copies
the GSPO model into the package (``src/o3video/embedded/model/``), where ``o3video demo`` finds
it. A step whose output exists is skipped, so the same command resumes a stopped build (the
trainer resumes from its last checkpoint); ``--threads`` sets the torch threads of each step.

``--sft-checkpoint DIR`` starts from a kept SFT-stage model instead of training stages 1 and 2
(``benchmarks/embedded-sft/`` keeps one built by the first two recipes): the folder is
copied to ``OUT/sft/final``, the SFT stage's corpus (which holds the RL records) is
synthesized again from its recipe's ``data.synth`` with ``data synth``, and steps 3 to 5 run
as above, so the RL stage alone is re-run and scored against the same SFT model.

``--recipe tower112`` builds the model at 112×112 frames instead (benchmarks/
embedded-experiments.md, rounds 6 to 8), from the kept SFT stage ``benchmarks/embedded-sft/``:

1. ``benchmarks/tower_pretrain.py``: the vision tower learns the shapes of one-object images
   (``tower-pooled``, 800 steps), then
2. ``train sft --config recipes/synthetic-tiny-embedded-sft112.yaml`` (``sft-a``, seed 7);
3. the tower again, per merged token on one-object images (``tower-token``) and on the frames
   of ``sft-a``'s own corpus (``tower-world``), 1,000 steps each;
4. the same SFT recipe from that tower (``sft-b``), then once more on new worlds with the
   naming questions (``sft``: ``data.synth.seed=8``, ``world.naming_qa``);
5. ``data synth`` of 600 fresh worlds (seed 5000) whose "V-STaR protocol" records are the RL
   data, and ``train rl --config recipes/synthetic-tiny-embedded-gspo112.yaml`` (``gspo``)
   with the held-out corpus's V-STaR records as its probe;
6. the held-out corpus and the evaluations, as above.

With ``--sft-checkpoint`` it starts from a kept model of step 4 (``benchmarks/
embedded-sft112/``) and runs step 5 and the evaluations only.

``--recipe tower112-long`` adds SFT rounds between steps 4 and 5 (:data:`LONG_ROUNDS`: the
same recipe for 600 steps on new worlds with the naming questions, each from the one before;
round 14 of the experiments log), and the RL stage and the SFT row start from the last of
them.

    python scripts/build_embedded.py --out runs/embedded --install
    python scripts/build_embedded.py --recipe tower112 --out runs/e112 --threads 2
    python scripts/build_embedded.py --recipe tower112 --out runs/e112-rl \\
        --sft-checkpoint benchmarks/embedded-sft112
    python scripts/build_embedded.py --out runs/rl-again --sft-checkpoint benchmarks/embedded-sft
    python scripts/build_embedded.py --out /tmp/e --scale 0.01 --heldout-n 4   # a smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
TOWER_SCRIPT = ROOT / "benchmarks" / "tower_pretrain.py"
KEPT_SFT = ROOT / "benchmarks" / "embedded-sft"
SFT112 = "synthetic-tiny-embedded-sft112.yaml"
GSPO112 = "synthetic-tiny-embedded-gspo112.yaml"
LONG_ROUNDS = (("sft-c", 9),)
"""``--recipe tower112-long``: the SFT rounds added after ``tower112``'s last one, each
(step name, world seed), :data:`LONG_STEPS` steps of the same recipe with the naming
questions, each from the one before (benchmarks/embedded-experiments.md, round 14)."""
LONG_STEPS = 600
RL_CORPUS = (600, 5000)
"""(videos, seed) of the corpus whose V-STaR protocol records are ``tower112``'s RL data."""
PACKAGE_MODEL = ROOT / "src" / "o3video" / "embedded" / "model"
STAGES = (
    ("ground", "sft", "synthetic-tiny-embedded-ground-sft.yaml"),
    ("sft", "sft", "synthetic-tiny-embedded-sft.yaml"),
    ("gspo", "rl", "synthetic-tiny-embedded-gspo.yaml"),
)
"""(name, ``o3video train`` stage, recipe), in the order they run."""
SCALED = ("max_steps", "data.synth.n")
"""Recipe values ``--scale`` multiplies (a quick run of the same pipeline); ``max_steps`` is
read from the stage's section (``sft.max_steps`` or ``rl.max_steps``)."""
MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "chat_template.jinja",
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "o3video.json",
)
"""What a model folder needs to be loaded and described (no optimizer state, no trainer
arguments)."""


class BuildError(Exception):
    """A step failed; the message names it and its log."""


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "o3video.cli.main", *args]


def run_step(name: str, argv: list[str], logs: Path, env: dict[str, str]) -> float:
    """Run one command, its output to ``logs/<name>.log``; returns its wall seconds."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    print(f"[{name}] {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    with log.open("w", encoding="utf-8") as f:
        code = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
    seconds = time.perf_counter() - start
    if code != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-5:]
        raise BuildError(f"step {name} failed (exit {code}); see {log}:\n" + "\n".join(tail))
    print(f"[{name}] done in {seconds:.0f} s", flush=True)
    return seconds


def recipe_value(recipe: Path, key: str) -> Any:
    """A value of a recipe, by dotted key (``data.synth.n``)."""
    import yaml  # type: ignore[import-untyped]

    node: Any = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def scaled(value: int, scale: float) -> int:
    """A recipe count under ``--scale`` (at least 2)."""
    return value if scale == 1.0 else max(2, round(value * scale))


def stage_overrides(name: str, recipe: Path, out: Path, scale: float) -> list[str]:
    """The ``key=value`` overrides that put stage ``name`` under ``out`` (and scale it)."""
    overrides = [f"output_dir={out / name}"]
    previous = {"sft": "ground", "gspo": "sft"}.get(name)
    if previous:
        overrides.append(f"model.path={out / previous / 'final'}")
    if name == "gspo":
        overrides.append(f"data.stgr={out / 'sft' / 'data' / 'stgr_rl.json'}")
    return overrides + scale_overrides(recipe, scale)


def scale_overrides(recipe: Path, scale: float) -> list[str]:
    """The overrides that shorten a recipe under ``--scale`` (none at 1): its step count, its
    corpus, no checkpoints and no probe."""
    if scale == 1.0:
        return []
    overrides = []
    for key in SCALED:
        # A stage's step count sits in its section (sft.max_steps, rl.max_steps); the
        # undotted override resolves to that section.
        found = (recipe_value(recipe, k) for k in (key, f"sft.{key}", f"rl.{key}"))
        value = next((v for v in found if isinstance(v, int)), None)
        if value is not None:
            overrides.append(f"{key}={scaled(value, scale)}")
    overrides.append("save_steps=1000000")
    if recipe_value(recipe, "rl.probe_every"):
        overrides.append("rl.probe_every=0")
    return overrides


def vstar_records(stgr: Path) -> Path:
    """Write the "V-STaR protocol" records of the STGR file ``stgr`` beside it
    (``stgr_vstar.json``, the five evaluation prompt forms of every item) and return its path;
    an existing file is kept."""
    target = stgr.with_name("stgr_vstar.json")
    if not target.exists():
        records = json.loads(stgr.read_text(encoding="utf-8"))
        kept = [r for r in records if r.get("task") == "V-STaR protocol"]
        if not kept:
            raise BuildError(f"{stgr}: no 'V-STaR protocol' records to train or probe on")
        target.write_text(json.dumps(kept, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"[{target.parent.name}] {len(kept)} V-STaR protocol records -> {target}")
    return target


def total_wall(steps: dict[str, dict[str, Any]]) -> tuple[float, list[str]]:
    """The summed wall time of the timed ``steps`` of a build record, and the names of those
    without one (steps run by hand before the build took them over record ``wall_s: None``).

    >>> total_wall({"a": {"wall_s": 10.04}, "b": {"wall_s": None}, "c": {"wall_s": 2.0}})
    (12.0, ['b'])
    """
    timed = [s["wall_s"] for s in steps.values() if s.get("wall_s") is not None]
    return round(sum(timed), 1), [name for name, s in steps.items() if s.get("wall_s") is None]


def scores_of(run: Path) -> dict[str, Any]:
    """The ``scores`` of an ``eval vstar`` run folder (its ``scores.json``)."""
    doc = json.loads((run / "scores.json").read_text(encoding="utf-8"))
    return {
        k: doc["scores"][k]
        for k in ("n", "acc", "tiou_1", "tiou_2", "viou_1", "viou_2", "mam", "mlgm")
    }


def weights_sha256(model: Path) -> str:
    """The SHA-256 of a model folder's ``model.safetensors``: which SFT-stage weights the RL
    stage started from (``benchmarks/embedded-sft/`` must have its ``build.json``'s)."""
    return hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest()


def machine() -> dict[str, Any]:
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def build(args: argparse.Namespace) -> dict[str, Any]:
    out: Path = args.out.resolve()
    logs = out / "logs"
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    if args.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    record_path = out / "build.json"
    record: dict[str, Any] = (
        json.loads(record_path.read_text()) if record_path.exists() else {"steps": {}}
    )

    def step(name: str, argv: list[str], done: Path) -> None:
        if done.exists():
            print(f"[{name}] already done ({done})", flush=True)
            return
        seconds = run_step(name, argv, logs, env)
        first = 3 if argv[1:3] == ["-m", "o3video.cli.main"] else 1
        record["steps"][name] = {"command": argv[first:], "wall_s": round(seconds, 1)}
        out.mkdir(parents=True, exist_ok=True)
        record_path.write_text(json.dumps(record, indent=1) + "\n")

    def trained(name: str, argv: list[str]) -> None:
        """A training step; one that was trained before (by this script or by hand) is
        recorded from its card."""
        card = out / name / "final" / "o3video.json"
        step(name, argv, card)
        if name not in record["steps"]:
            entry = json.loads(card.read_text(encoding="utf-8"))["training"][-1]
            record["steps"][name] = {
                "command": entry["command"][1:],
                "wall_s": entry["wall_s"],
                "resumed_from_step": entry.get("resumed_from_step"),
                "from": str(card),
            }

    gspo, sft = out / "gspo" / "final", out / last_sft(args.recipe) / "final"
    heldout = out / "heldout"

    def heldout_corpus(world_of: Path) -> None:
        argv = cli("data", "synth", "--out", str(heldout), "--n", str(args.heldout_n),
                   "--seed", str(args.heldout_seed), "--world-of", str(world_of))  # fmt: skip
        step("heldout", argv, heldout / "vstar.json")

    if args.recipe in ("tower112", "tower112-long"):
        tower112(args, out, step, trained, heldout_corpus, record)
    else:
        if args.sft_checkpoint is not None:
            keep_sft(args.sft_checkpoint, out, args.scale, step, record)
        for name, stage, recipe_name in STAGES:
            if args.sft_checkpoint is not None and name != "gspo":
                continue
            recipe = RECIPES / recipe_name
            overrides = stage_overrides(name, recipe, out, args.scale)
            trained(name, cli("train", stage, "--config", str(recipe), *overrides))
        heldout_corpus(sft)
    for name, model in (("eval-sft", sft), ("eval-gspo", gspo)):
        run = out / name
        argv = cli("eval", "vstar", "--model", str(model), "--data", str(heldout), "--out",
                   str(run), "--batch-size", "4")  # fmt: skip
        step(name, argv, run / "scores.json")
    baseline = out / "eval-baseline"
    step(
        "eval-baseline",
        cli(
            "eval",
            "vstar-baseline",
            "--train",
            str(out / last_sft(args.recipe) / "data"),
            "--data",
            str(heldout),
            "--out",
            str(baseline),
        ),
        baseline / "scores.json",
    )
    scores = {
        "heldout": {
            "n_videos": args.heldout_n,
            "seed": args.heldout_seed,
            "items": scores_of(out / "eval-gspo")["n"],
        },
        "sft+gspo": scores_of(out / "eval-gspo"),
        "sft": scores_of(out / "eval-sft"),
        "constant baseline": scores_of(baseline),
        "note": "synthetic V-STaR, exact-match judge, default (fixed) scoring mode; fractions",
    }
    record["scores"] = scores
    record["sft_sha256"] = weights_sha256(sft)
    record["threads"] = args.threads
    record["recipe"] = args.recipe
    record["machine"] = machine()
    record["wall_s"], record["untimed_steps"] = total_wall(record["steps"])
    record_path.write_text(json.dumps(record, indent=1) + "\n")
    card_path = gspo / "o3video.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card["scores"] = scores
    card["build"] = {
        "command": "python scripts/build_embedded.py",
        "recipe": args.recipe,
        "sft_sha256": record["sft_sha256"],
        "threads": args.threads,
        "steps": record["steps"],
        "wall_s": record["wall_s"],
        "untimed_steps": record["untimed_steps"],
        "machine": record["machine"],
    }
    card_path.write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.install:
        install(gspo, PACKAGE_MODEL)
    return record


KEPT_STAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "shipped": tuple((name, stage) for name, stage, _ in STAGES[:2]),
    "tower112": (("ground", "sft"), ("sft-56", "sft"), ("tower-pooled", "tower"),
                 ("sft-a", "sft"), ("tower-token", "tower"), ("tower-world", "tower"),
                 ("sft-b", "sft"), ("sft", "sft")),
}  # fmt: skip
KEPT_STAGES["tower112-long"] = KEPT_STAGES["tower112"] + tuple(
    (name, "sft") for name, _ in LONG_ROUNDS
)
"""(step name, ``training`` stage) of each entry on a kept SFT-stage card, per ``--recipe``."""


def last_sft(recipe: str) -> str:
    """The step whose model the RL stage starts from (and the SFT row is scored on).

    >>> last_sft("tower112"), last_sft("tower112-long")
    ('sft', 'sft-c')
    """
    return LONG_ROUNDS[-1][0] if recipe == "tower112-long" else "sft"


def keep_sft(
    checkpoint: Path,
    out: Path,
    scale: float,
    step: Callable[[str, list[str], Path], None],
    record: dict[str, Any],
    recipe: str = "shipped",
) -> None:
    """Put the kept SFT-stage model ``checkpoint`` where the build's last SFT stage would
    have left it, with the corpus that stage synthesized (its card's ``data.synth``, scaled as
    the stage would be): the RL records of ``shipped``, the baseline's training data."""
    card_path = checkpoint / "o3video.json"
    if not card_path.is_file():
        raise BuildError(f"{checkpoint}: not a model folder with a card (no o3video.json)")
    entries = json.loads(card_path.read_text(encoding="utf-8")).get("training") or []
    stages = [e.get("stage") for e in entries]
    expected = [stage for _, stage in KEPT_STAGES[recipe]]
    if stages != expected:
        raise BuildError(
            f"{card_path}: not an SFT-stage card of --recipe {recipe} (its training stages are "
            f"{stages}, not {expected})"
        )
    final = out / last_sft(recipe) / "final"
    if not final.exists():
        install(checkpoint, final)
    synth = entries[-1]["config"]["data"]["synth"]
    data = out / last_sft(recipe) / "data"
    argv = cli("data", "synth", "--out", str(data), "--n", str(scaled(synth["n"], scale)),
               "--seed", str(synth["seed"]), "--world-of", str(final))  # fmt: skip
    step("sft-data", argv, data / "stgr_rl.json")
    for (name, _), entry in zip(KEPT_STAGES[recipe], entries, strict=True):
        record["steps"][name] = {
            "command": entry["command"][1:],
            "wall_s": entry["wall_s"],
            "kept": str(checkpoint),
        }


def tower112(
    args: argparse.Namespace,
    out: Path,
    step: Callable[[str, list[str], Path], None],
    trained: Callable[[str, list[str]], None],
    heldout_corpus: Callable[[Path], None],
    record: dict[str, Any],
) -> None:
    """The steps of ``--recipe tower112`` (and ``tower112-long``) up to the RL stage (module
    docstring)."""
    scale = args.scale
    sft_recipe, rl_recipe = RECIPES / SFT112, RECIPES / GSPO112
    sft = out / last_sft(args.recipe)

    def tower(name: str, source: Path, steps: int, *extra: str) -> None:
        argv = [sys.executable, str(TOWER_SCRIPT), str(source), str(out / name), "--side",
                "112", "--steps", str(scaled(steps, scale)), *extra]  # fmt: skip
        if scale != 1.0:  # fewer one-object images in a smoke run
            argv += ["--n", str(max(200, scaled(4000, scale))), "--every-eval", "1000000"]
        card = out / name / "o3video.json"
        step(name, argv, card)
        if name not in record["steps"]:  # run before, by this script or by hand
            entry = json.loads(card.read_text(encoding="utf-8"))["training"][-1]
            record["steps"][name] = {"command": entry["command"], "wall_s": entry["wall_s"],
                                     "from": str(card)}  # fmt: skip

    def sft_round(name: str, start: Path, *extra: str, steps: int | None = None) -> None:
        shorter = scale_overrides(sft_recipe, scale)
        if steps is not None:  # this round's own step count, scaled, for the recipe's
            shorter = [o for o in shorter if not o.startswith("max_steps=")]
            shorter.append(f"max_steps={scaled(steps, scale)}")
        argv = cli("train", "sft", "--config", str(sft_recipe), f"output_dir={out / name}",
                   f"model.path={start}", *extra, *shorter)  # fmt: skip
        trained(name, argv)

    if args.sft_checkpoint is None:
        tower("tower-pooled", KEPT_SFT, 800)
        sft_round("sft-a", out / "tower-pooled")
        tower("tower-token", out / "sft-a" / "final", 1000, "--per-token")
        tower("tower-world", out / "tower-token", 1000, "--corpus", str(out / "sft-a" / "data"))
        sft_round("sft-b", out / "tower-world")
        sft_round("sft", out / "sft-b" / "final", "data.synth.seed=8",
                  "data.synth.world.naming_qa=true")  # fmt: skip
        if args.recipe == "tower112-long":
            start = out / "sft" / "final"
            for name, seed in LONG_ROUNDS:
                sft_round(name, start, f"data.synth.seed={seed}",
                          "data.synth.world.naming_qa=true", steps=LONG_STEPS)  # fmt: skip
                start = out / name / "final"
    else:
        keep_sft(args.sft_checkpoint, out, scale, step, record, args.recipe)
    n, seed = RL_CORPUS
    rl_data = out / "rl-data"
    argv = cli("data", "synth", "--out", str(rl_data), "--n", str(scaled(n, scale)), "--seed",
               str(seed), "--world-of", str(sft_recipe))  # fmt: skip
    step("rl-data", argv, rl_data / "vstar.json")
    heldout_corpus(sft_recipe)  # the world without the naming questions, as evaluated
    heldout = out / "heldout"
    rl_file = vstar_records(rl_data / "stgr_rl.json")
    probe = vstar_records(heldout / "stgr_rl.json")
    argv = cli("train", "rl", "--config", str(rl_recipe), f"output_dir={out / 'gspo'}",
               f"model.path={sft / 'final'}", f"data.stgr={rl_file}", f"data.media_root={rl_data}",
               f"rl.probe_stgr={probe}", f"rl.probe_media_root={heldout}",
               *scale_overrides(rl_recipe, scale))  # fmt: skip
    trained("gspo", argv)


def install(model: Path, target: Path) -> None:
    """Replace the package's embedded model with ``model``'s files (:data:`MODEL_FILES`)."""
    missing = [name for name in MODEL_FILES if not (model / name).is_file()]
    if missing:
        raise BuildError(f"{model}: not a complete model folder, missing {', '.join(missing)}")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in MODEL_FILES:
        shutil.copy2(model / name, target / name)
    size = sum(p.stat().st_size for p in target.iterdir()) / 1e6
    print(f"installed {model} into {target} ({size:.1f} MB)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("runs/embedded"), help="build folder")
    parser.add_argument("--heldout-n", type=int, default=200, help="held-out videos")
    parser.add_argument("--heldout-seed", type=int, default=1000, help="held-out corpus seed")
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiply every recipe's max_steps and data.synth.n (smoke runs)",
    )
    parser.add_argument(
        "--sft-checkpoint",
        type=Path,
        default=None,
        metavar="DIR",
        help="a kept SFT-stage model (benchmarks/embedded-sft, or benchmarks/embedded-sft112 "
        "with --recipe tower112): run the RL stage alone from it",
    )
    parser.add_argument(
        "--recipe",
        choices=("shipped", "tower112", "tower112-long"),
        default="shipped",
        help="shipped: the three recipes of the shipped model (56x56 frames); tower112: the "
        "tower stages, SFT and GSPO at 112x112 frames; tower112-long: tower112 with more SFT "
        "rounds on new worlds before GSPO",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads per step")
    parser.add_argument(
        "--install",
        action="store_true",
        help="copy the GSPO model into src/o3video/embedded/model/",
    )
    args = parser.parse_args(argv)
    try:
        record = build(args)
    except BuildError as e:
        print(f"build_embedded: error: {e}", file=sys.stderr)
        return 1
    s = record["scores"]
    print(json.dumps({k: s[k] for k in ("sft+gspo", "sft", "constant baseline")}, indent=1))
    print(
        f"wall time of every step (those of a kept checkpoint included): {record['wall_s']:.0f} s;"
        f" record: {args.out / 'build.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Light start-up: commands that run no model never import torch or transformers, and
``o3video --help`` imports none of the commands' modules.

Each command runs in a fresh interpreter through a wrapper that runs ``main`` and then prints
``sorted(sys.modules)`` as JSON to a file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from test_stgr import VALID, valid, write
from test_vstar_score import RATINGS, RECORDS
from videos import encode_video

WRAPPER = """
import json, sys
from o3video.cli.main import main
out, argv = sys.argv[1], sys.argv[2:]
try:
    code = main(argv)
except SystemExit as e:
    code = e.code
with open(out, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""
HEAVY = ("torch", "transformers")
HELP_MODULE_LIMIT = 120
"""Modules after ``o3video --help``: the interpreter's own start-up (~30), argparse and its
imports, and four of ours. All commands' modules (numpy, PyAV, PIL) were ~420."""


def imported(tmp_path: Path, *argv: str) -> tuple[int, list[str]]:
    out = tmp_path / "modules.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run(
        [sys.executable, "-c", WRAPPER, str(out), *argv],
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    got = json.loads(out.read_text())
    return got["code"], got["modules"]


def test_help_imports_no_command_module(tmp_path: Path) -> None:
    code, modules = imported(tmp_path, "--help")
    assert code == 0
    ours = [m for m in modules if m.startswith("o3video")]
    assert ours == ["o3video", "o3video.cli", "o3video.cli.main", "o3video.errors"]
    assert not any(m.split(".")[0] in ("numpy", "av", "PIL", *HEAVY) for m in modules)
    assert len(modules) < HELP_MODULE_LIMIT, len(modules)


def _files(tmp_path: Path) -> dict[str, Path]:
    trace = tmp_path / "answer.txt"
    trace.write_text("<think><obj>dog</obj><box>[1,2,3,4]</box> at <t>3</t>s</think><answer>A")
    video = tmp_path / "clip.mp4"
    encode_video(video, [k * 1001 for k in range(12)], Fraction(1, 30000))
    results, ratings = tmp_path / "results.json", tmp_path / "ratings.json"
    results.write_text(json.dumps(RECORDS), encoding="utf-8")
    ratings.write_text(json.dumps(RATINGS), encoding="utf-8")
    return {
        "trace": trace,
        "video": video,
        "stgr": write(tmp_path, [valid(t) for t in VALID]),
        "results": results,
        "ratings": ratings,
    }


@pytest.mark.parametrize(
    "argv",
    [
        ("trace", "{trace}"),
        ("probe", "{video}", "--num-frames", "4"),
        ("data", "check", "{stgr}"),
        ("eval", "vstar-score", "{results}", "--judgements", "{ratings}"),
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_commands_without_a_model_import_neither_torch_nor_transformers(
    tmp_path: Path, argv: tuple[str, ...]
) -> None:
    files = _files(tmp_path)
    code, modules = imported(tmp_path, *(a.format(**files) for a in argv))
    assert code == 0
    assert any(m.startswith(f"o3video.cli.{argv[0]}") for m in modules)  # it really ran
    heavy = sorted({m.split(".")[0] for m in modules} & set(HEAVY))
    assert heavy == [], f"o3video {argv[0]} imported {heavy}"

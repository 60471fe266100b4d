"""The resumable runner: records, resume, errors, shards, merge, and a real ``kill -9``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from o3video.errors import DataError
from o3video.eval.runner import (
    RunnerError,
    Shard,
    merge_records,
    read_records,
    run_items,
)


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Doubler:
    """A process function that records what it was given and can fail on chosen items."""

    def __init__(self, fail: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        self.fail = fail
        self.calls: list[list[int]] = []

    def __call__(self, batch: Sequence[int]) -> list[dict[str, Any]]:
        self.calls.append(list(batch))
        for x in batch:
            if x in self.fail:
                raise ValueError(f"cannot double {x}")
        return [{"value": 2 * x} for x in batch]


def ids(items: Sequence[int]) -> list[str]:
    return [f"item-{x}" for x in items]


def test_records_one_line_per_item_and_resume_skips_them(tmp_path: Path) -> None:
    items = list(range(7))
    f = Doubler()
    stats = run_items(items, ids(items), f, tmp_path, batch_size=3)
    assert (stats.total, stats.done, stats.skipped, stats.errors) == (7, 7, 0, 0)
    assert f.calls == [[0, 1, 2], [3, 4, 5], [6]]
    records = lines_of(tmp_path / "items.jsonl")
    assert [r["id"] for r in records] == ids(items)
    assert [(r["status"], r["value"]) for r in records] == [("ok", 2 * x) for x in items]
    g = Doubler()
    again = run_items(items, ids(items), g, tmp_path, batch_size=3)
    assert g.calls == [] and (again.done, again.skipped) == (0, 7)
    assert len(lines_of(tmp_path / "items.jsonl")) == 7


def test_a_failing_item_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    items = list(range(6))
    f = Doubler(fail={4})
    stats = run_items(items, ids(items), f, tmp_path, batch_size=3)
    # The batch [3, 4, 5] failed, then ran item by item.
    assert f.calls == [[0, 1, 2], [3, 4, 5], [3], [4], [5]]
    assert stats.errors == 1 and stats.error_ids == ["item-4"]
    by_id = read_records(tmp_path / "items.jsonl")
    assert by_id["item-4"]["status"] == "error"
    assert by_id["item-4"]["error"] == "ValueError: cannot double 4"
    assert by_id["item-5"] == {"id": "item-5", "status": "ok", "value": 10}
    # Errors count as done unless asked to retry them; a retry replaces the error.
    assert run_items(items, ids(items), Doubler(), tmp_path).done == 0
    retried = run_items(items, ids(items), Doubler(), tmp_path, retry_errors=True)
    assert retried.done == 1
    merged = merge_records(tmp_path, ids(items))
    assert merged.complete and merged.errors == []
    assert [r["value"] for r in merged.records] == [0, 2, 4, 6, 8, 10]


def test_a_cut_off_last_line_is_dropped_and_the_item_runs_again(tmp_path: Path) -> None:
    items = list(range(4))
    run_items(items[:2], ids(items[:2]), Doubler(), tmp_path)
    path = tmp_path / "items.jsonl"
    with path.open("a") as f:
        f.write('{"id": "item-2", "status": "o')  # killed mid-write
    f2 = Doubler()
    stats = run_items(items, ids(items), f2, tmp_path)
    assert f2.calls == [[2], [3]] and stats.skipped == 2
    assert [r["id"] for r in lines_of(path)] == ids(items)


def test_shards_split_the_items_and_merge_joins_them(tmp_path: Path) -> None:
    items = list(range(10))
    seen = []
    for i in range(3):
        f = Doubler()
        run_items(items, ids(items), f, tmp_path, shard=Shard(i, 3), batch_size=2)
        seen.append(sorted(x for call in f.calls for x in call))
    assert seen == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert sorted(p.name for p in tmp_path.glob("items*.jsonl")) == [
        "items.shard-0-of-3.jsonl",
        "items.shard-1-of-3.jsonl",
        "items.shard-2-of-3.jsonl",
    ]
    merged = merge_records(tmp_path, ids(items))
    assert merged.complete
    assert [r["id"] for r in merged.records] == ids(items)
    partial = merge_records(tmp_path, [*ids(items), "item-99"])
    assert partial.missing == ["item-99"]


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected i/n"):
        Shard.parse("2")
    with pytest.raises(ValueError, match="0 <= i < n"):
        Shard.parse("3/3")
    with pytest.raises(DataError, match="not unique"):
        run_items([1, 2], ["a", "a"], Doubler(), tmp_path)
    with pytest.raises(ValueError, match="2 ids for 3 items"):
        run_items([1, 2, 3], ["a", "b"], Doubler(), tmp_path)


def test_a_second_process_on_the_same_file_is_refused(tmp_path: Path) -> None:
    def nested(batch: Sequence[int]) -> list[dict[str, Any]]:
        run_items([9], ["x"], Doubler(), tmp_path)
        return [{}]

    stats = run_items([1], ["a"], nested, tmp_path)
    record = read_records(tmp_path / "items.jsonl")["a"]
    assert stats.errors == 1 and record["error"].startswith("RunnerError:")
    assert "another process is writing" in record["error"]
    assert issubclass(RunnerError, Exception)


_CHILD = textwrap.dedent(
    """
    import sys, time
    from o3video.eval.runner import run_items

    def slow(batch):
        time.sleep(0.02)
        return [{"value": x * x, "pad": "x" * 2000} for x in batch]

    items = list(range(int(sys.argv[2])))
    run_items(items, [f"i{x}" for x in items], slow, sys.argv[1], batch_size=2)
    """
)


def _run_child(run_dir: Path, n: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(run_dir), str(n)], env=env)


def test_kill_9_mid_run_then_resume_gives_every_item_exactly_once(tmp_path: Path) -> None:
    n = 300
    path = tmp_path / "items.jsonl"
    child = _run_child(tmp_path, n)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > 40 * 2000:
            break
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    done_before = len(read_records(path))
    assert 0 < done_before < n, "the kill must land mid-run"
    resumed = _run_child(tmp_path, n)
    assert resumed.wait(timeout=120) == 0
    records = lines_of(path)
    assert sorted(r["id"] for r in records) == sorted(f"i{x}" for x in range(n))
    assert all(r["status"] == "ok" and r["value"] == int(r["id"][1:]) ** 2 for r in records)

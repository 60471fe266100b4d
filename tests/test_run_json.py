"""A run folder's ``run.json``: written atomically, and a damaged one says that the item
records are intact and how to resume them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from o3video.eval import runner
from o3video.eval.runner import RunError, check_run_json, read_run_json

SETTINGS = {"model": "m", "data": "d.json"}


def test_a_cut_run_json_says_the_items_are_intact_and_how_to_resume(tmp_path: Path) -> None:
    check_run_json(tmp_path, "vstar", SETTINGS, limit=3)
    lines = [json.dumps({"id": f"i{k}", "status": "ok"}) for k in range(2)]
    (tmp_path / "items.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    whole = (tmp_path / "run.json").read_text(encoding="utf-8")
    (tmp_path / "run.json").write_text(whole[: len(whole) // 2], encoding="utf-8")
    with pytest.raises(RunError) as err:
        check_run_json(tmp_path, "vstar", SETTINGS, limit=3)
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'run.json'}: unreadable: ")
    assert f"the 2 item record(s) in {tmp_path} are intact" in message
    assert "delete run.json and run the same command again to resume" in message
    assert "\n" not in message
    # Doing what it says resumes: the records are still there, run.json is whole again.
    (tmp_path / "run.json").unlink()
    check_run_json(tmp_path, "vstar", SETTINGS, limit=3)
    assert read_run_json(tmp_path)["settings"] == SETTINGS
    assert len(runner.read_records(tmp_path / "items.jsonl")) == 2


def test_a_damaged_run_json_without_records_says_so(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(RunError, match="no item records are in the folder"):
        read_run_json(tmp_path)


def test_run_json_is_replaced_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new run.json is written beside the old one and renamed over it: a process killed
    before the rename (simulated) leaves the old file whole and no temporary file."""
    check_run_json(tmp_path, "vstar", SETTINGS, limit=1)
    before = (tmp_path / "run.json").read_bytes()

    def killed(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        assert Path(src).read_text(encoding="utf-8").endswith("}\n")  # written in full first
        raise KeyboardInterrupt("killed before the rename")

    monkeypatch.setattr(runner.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        check_run_json(tmp_path, "vstar", SETTINGS, limit=5)
    assert (tmp_path / "run.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]

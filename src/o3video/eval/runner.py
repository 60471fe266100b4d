"""The resumable evaluation runner: items → batches → one JSON line per finished item.

:func:`run_items` takes the items of a benchmark with their ids, a ``process`` function that
turns a batch of items into one JSON-ready record per item (the model's raw text, the parsed
prediction, timings), and a run folder. Each finished item is appended to a JSON-lines file
as soon as its batch is done and flushed, so a run stopped at any point, even by ``kill -9``,
loses at most the batch in flight. Running the same command again skips every id already in
the file: no item is repeated and none is lost.

- **Records**: ``{"id": ..., "status": "ok" | "error", ...process's fields..., "timings":
  {...}}``. When reading, the last line of an id wins, so a retried item replaces its error.
- **Failures**: when a batch raises, its items are retried one by one; an item that still
  fails is written with ``status: "error"`` and ``error`` (type and message) and the run goes
  on. ``retry_errors=True`` runs the items recorded as errors again.
- **A cut-off last line** (the process was killed mid-write) is dropped with a warning and
  the file truncated to its last complete line before anything is appended
  (:mod:`o3video.jsonl`).
- **Shards**: ``Shard(i, n)`` takes the items at positions ``p`` with ``p % n == i`` (0-based
  ``i``) and writes ``items.shard-<i>-of-<n>.jsonl``; :func:`merge_records` joins every
  ``items*.jsonl`` of the folder. Two processes never write one file: each holds a lock.

>>> Shard.parse("1/4"), Shard.parse("1/4").filename
(Shard(index=1, count=4), 'items.shard-1-of-4.jsonl')
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import o3video
from o3video.errors import DataError, O3VideoError
from o3video.jsonl import read_lines

logger = logging.getLogger(__name__)

T = TypeVar("T")
Record = dict[str, Any]
ProcessFn = Callable[[Sequence[T]], Sequence[Mapping[str, Any]]]
ITEMS_FILE = "items.jsonl"


class RunnerError(O3VideoError):
    """The run cannot go on: its file is locked by another process, or unreadable."""


class RunError(O3VideoError):
    """A run folder cannot be resumed or finished as asked (its settings differ, items
    are missing, ...). The message says what to do."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based); ``Shard(0, 1)`` is the whole run."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"bad shard {self.index}/{self.count}: need 0 <= i < n")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/n"`` → ``Shard(i, n)``; ``ValueError`` with the expected form otherwise."""
        try:
            i, n = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"bad shard {text!r}: expected i/n, e.g. 0/4 (i from 0)") from None
        return cls(i, n)

    @property
    def filename(self) -> str:
        if self.count == 1:
            return ITEMS_FILE
        return f"items.shard-{self.index}-of-{self.count}.jsonl"

    def take(self, position: int) -> bool:
        return position % self.count == self.index


@dataclass
class RunStats:
    """What one call of :func:`run_items` did. ``wall_s`` is its whole time; ``process_s``
    the time inside ``process``."""

    total: int = 0
    skipped: int = 0
    done: int = 0
    errors: int = 0
    wall_s: float = 0.0
    process_s: float = 0.0
    error_ids: list[str] = field(default_factory=list)

    @property
    def overhead_s(self) -> float:
        """Time outside ``process``: reading, resume bookkeeping, writing."""
        return max(0.0, self.wall_s - self.process_s)


def read_records(path: str | os.PathLike[str], *, repair: bool = False) -> dict[str, Record]:
    """The records of one JSON-lines file by id (the last line of an id wins).

    A malformed line is skipped with a warning naming its line number (the item will run
    again); a cut-off last line too (``repair`` truncates it from the file, as before
    appending); a file that does not exist holds no records.
    """
    out: dict[str, Record] = {}
    try:
        lines = read_lines(path, repair=repair)
    except OSError as exc:
        raise RunnerError(f"{path}: cannot read the results: {exc}") from exc
    for number, line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            logger.warning("%s: line %d skipped: %s", path, number, exc.msg)
            continue
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            logger.warning("%s: line %d skipped: not a record with a string 'id'", path, number)
            continue
        out[record["id"]] = record
    return out


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name(path.name + ".lock")
    with lock.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunnerError(
                f"{path}: another process is writing this run (lock {lock}); "
                "give each process its own --shard"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _error_record(item_id: str, exc: BaseException) -> Record:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return {
        "id": item_id,
        "status": "error",
        "error": f"{type(exc).__name__}: {exc}",
        "where": where,
    }


def _process_batch(
    batch: Sequence[tuple[str, T]], process: ProcessFn[T], stats: RunStats
) -> list[Record]:
    """Records of a batch; a failing batch is retried item by item to isolate the bad one."""
    t0 = time.perf_counter()
    try:
        out = _checked(batch, process([item for _, item in batch]))
    except Exception as exc:
        if len(batch) == 1:
            logger.warning("item %s failed: %s: %s", batch[0][0], type(exc).__name__, exc)
            out = [_error_record(batch[0][0], exc)]
        else:
            logger.warning("a batch of %d failed (%s); retrying one by one", len(batch), exc)
            stats.process_s += time.perf_counter() - t0
            return [r for one in batch for r in _process_batch([one], process, stats)]
    stats.process_s += time.perf_counter() - t0
    return out


def _checked(batch: Sequence[tuple[str, T]], results: Sequence[Mapping[str, Any]]) -> list[Record]:
    if len(results) != len(batch):
        raise RuntimeError(f"process returned {len(results)} records for {len(batch)} items")
    pairs = zip(batch, results, strict=True)
    return [{"id": item_id, "status": "ok", **dict(res)} for (item_id, _), res in pairs]


def run_items(
    items: Sequence[T],
    ids: Sequence[str],
    process: ProcessFn[T],
    run_dir: str | os.PathLike[str],
    *,
    shard: Shard | None = None,
    batch_size: int = 1,
    retry_errors: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> RunStats:
    """Run ``process`` over the items of ``shard`` not yet in its file (module docstring).

    ``ids[k]`` is the id of ``items[k]``; ids must be unique. ``process(batch)`` returns one
    JSON-ready mapping per item, in order. ``progress(done, total)`` counts this shard's items,
    those finished by earlier runs included. Returns what this call did.
    """
    if len(ids) != len(items):
        raise ValueError(f"{len(ids)} ids for {len(items)} items")
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"item id {dup!r} is not unique; the runner keys results by id")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    shard = shard or Shard()
    t_start = time.perf_counter()
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / shard.filename
    mine = [(ids[p], items[p]) for p in range(len(items)) if shard.take(p)]
    stats = RunStats(total=len(mine))
    with _locked(path):
        finished = read_records(path, repair=True)
        keep = {i for i, r in finished.items() if r.get("status") == "ok" or not retry_errors}
        todo = [(i, item) for i, item in mine if i not in keep]
        stats.skipped = len(mine) - len(todo)
        if stats.skipped:
            logger.info("%s: %d of %d item(s) already done", path, stats.skipped, len(mine))
        if progress:
            progress(stats.skipped, stats.total)
        with path.open("a", encoding="utf-8") as handle:
            for start in range(0, len(todo), batch_size):
                records = _process_batch(todo[start : start + batch_size], process, stats)
                handle.writelines(
                    json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in records
                )
                handle.flush()  # a finished batch survives a kill
                for r in records:
                    stats.done += 1
                    if r["status"] != "ok":
                        stats.errors += 1
                        stats.error_ids.append(r["id"])
                if progress:
                    progress(stats.skipped + stats.done, stats.total)
    stats.wall_s = time.perf_counter() - t_start
    return stats


@dataclass(frozen=True)
class Merged:
    """Every record of a run folder by id, in the items' order; ids with no record, and
    ids whose record is an error."""

    records: list[Record]
    missing: list[str]
    errors: list[str]

    @property
    def complete(self) -> bool:
        return not self.missing


def merge_records(run_dir: str | os.PathLike[str], ids: Sequence[str]) -> Merged:
    """Join ``items.jsonl`` and every ``items.shard-*.jsonl`` of ``run_dir`` over ``ids``.

    An id found in several files keeps an ``ok`` record over an error (the files of a run
    cut into shards twice may overlap). Records whose id is not in ``ids`` are ignored.
    """
    found: dict[str, Record] = {}
    for path in sorted(Path(run_dir).glob("items*.jsonl")):
        for item_id, record in read_records(path).items():
            if item_id not in found or found[item_id].get("status") != "ok":
                found[item_id] = record
    records: list[Record] = []
    missing: list[str] = []
    errors: list[str] = []
    for item_id in ids:
        if item_id not in found:
            missing.append(item_id)
            continue
        records.append(found[item_id])
        if found[item_id].get("status") != "ok":
            errors.append(item_id)
    return Merged(records, missing, errors)


# --- the run folder's run.json ------------------------------------------------------------


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 (hex) of a file: a data file a run was made from must not change under it."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_run_json(
    run_dir: str | os.PathLike[str],
    benchmark: str,
    settings: Mapping[str, Any],
    limit: int | None = None,
) -> None:
    """Write ``run.json`` (benchmark, settings, package version, ``limit``), or check that
    the one there has the same benchmark and settings: every setting that decides the records
    (model, data and its hash, frames, prompts...) must match to resume; ``limit``, the
    number of items run, may change and is updated."""
    out = Path(run_dir)
    path = out / "run.json"
    mine = json.loads(json.dumps(settings))
    if path.exists():
        meta = read_run_json(out)
        theirs = {"benchmark": meta.get("benchmark"), **meta["settings"]}
        now = {"benchmark": benchmark, **mine}
        diff = [k for k in now if theirs.get(k) != now[k]]
        if diff:
            lines = "; ".join(f"{k}: {theirs.get(k)!r} there, {now[k]!r} now" for k in diff)
            raise RunError(
                f"{out} holds a run with other settings ({lines}); "
                "use a new --out folder, or the same settings to resume"
            )
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "benchmark": benchmark,
        "o3video": o3video.__version__,
        "limit": limit,
        "settings": mine,
    }
    # Atomically: a kill while writing leaves the old run.json or the new one, never half.
    tmp = out / f".run.json.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(meta, indent=1) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_run_json(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``run.json`` of a run folder; :class:`RunError` when there is none or it is bad."""
    path = Path(run_dir) / "run.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{run_dir}: no run.json; is this a run folder?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: unreadable: {exc}; {_damaged_hint(Path(run_dir))}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("settings"), dict):
        raise RunError(
            f"{path}: expected an object with 'settings'; {_damaged_hint(Path(run_dir))}"
        )
    return data


def _damaged_hint(run_dir: Path) -> str:
    """What a person can do about a damaged ``run.json``: the item records are kept apart
    from it, so say how many are intact and how to resume them."""
    try:
        n = sum(len(read_records(p)) for p in sorted(run_dir.glob("items*.jsonl")))
    except O3VideoError:
        n = 0
    if n == 0:
        return "no item records are in the folder: delete run.json and run again"
    return (
        f"the {n} item record(s) in {run_dir} are intact (run.json only holds the settings): "
        "delete run.json and run the same command again to resume them; it is rewritten "
        "from the command's settings, so use the settings the run was started with"
    )

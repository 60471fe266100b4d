"""What every benchmark loader shares: the :class:`BenchItem`, the registry of loaders
(:data:`BENCHMARKS`, :func:`register`) and the checked reading of public files.

:mod:`o3video.eval.benchmarks` is the entry point (it imports every loader and re-exports
these names); the loaders (:mod:`o3video.eval.mcq_loaders`, :mod:`o3video.eval.grounding`)
import this module, so nothing imports in a circle.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn, Protocol, TypeVar

from o3video.data.load import json_entries
from o3video.errors import DataError
from o3video.protocols.readers import answer_part

logger = logging.getLogger(__name__)

ItemKind = Literal["mcq", "open", "grounding"]
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
GROUNDING_BENCHMARKS = frozenset({"charades_sta", "tvgbench"})
"""Benchmarks scored by :func:`o3video.eval.grounding.score_grounding`; the others by
:func:`o3video.eval.mcq.score_mcq`."""


@dataclass(frozen=True)
class BenchItem:
    """One benchmark question.

    - ``id``: unique within its benchmark and stable (results are keyed by it).
    - ``video``: the video file (MVBench's episodic reasoning: a folder of frames).
    - ``options``: option texts without their letters, lettered A, B, … in this order;
      empty for open and grounding items.
    - ``answer``: the right letter, the free-text answer, or ``""`` for grounding.
    - ``span_s``: the ground-truth ``(start_s, end_s)`` of a grounding query.
    - ``group``: the fields accuracy is broken down by (``{"duration": "long", ...}``).
    - ``start_s`` / ``end_s``: the part of the video the question is about, where the
      benchmark gives one (STAR, MVBench); ``None`` = the whole video.
    - ``extra``: other fields of the record worth keeping (JSON-ready).
    """

    id: str
    benchmark: str
    video: Path
    question: str
    options: tuple[str, ...] = ()
    answer: str = ""
    span_s: tuple[float, float] | None = None
    group: Mapping[str, str] = field(default_factory=dict)
    start_s: float | None = None
    end_s: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> ItemKind:
        """``grounding`` with a span, ``mcq`` with options, else ``open``."""
        if self.span_s is not None:
            return "grounding"
        return "mcq" if self.options else "open"

    @property
    def letters(self) -> tuple[str, ...]:
        """The option letters, ``('A', 'B', …)``."""
        return tuple(LETTERS[: len(self.options)])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the video as a string)."""
        return {
            "id": self.id,
            "benchmark": self.benchmark,
            "kind": self.kind,
            "video": str(self.video),
            "question": self.question,
            "options": list(self.options),
            "answer": self.answer,
            "span_s": None if self.span_s is None else list(self.span_s),
            "group": dict(self.group),
            "start_s": self.start_s,
            "end_s": self.end_s,
            "extra": dict(self.extra),
        }


class Loader(Protocol):
    """``loader(root, videos=None, *, check_videos=True) -> list[BenchItem]``."""

    def __call__(
        self,
        root: str | os.PathLike[str],
        videos: str | os.PathLike[str] | None = None,
        *,
        check_videos: bool = True,
    ) -> list[BenchItem]: ...


BENCHMARKS: dict[str, Loader] = {}
"""Benchmark name → loader. Filled by :func:`register` when :mod:`o3video.eval.mcq_loaders`
and :mod:`o3video.eval.grounding` are imported (:mod:`o3video.eval.benchmarks` imports them)."""

L = TypeVar("L", bound=Loader)


def register(name: str) -> Callable[[L], L]:
    """Decorator: list a loader in :data:`BENCHMARKS` under ``name``."""

    def add(loader: L) -> L:
        if name in BENCHMARKS and BENCHMARKS[name] is not loader:
            raise ValueError(f"benchmark {name!r} is registered twice")
        BENCHMARKS[name] = loader
        return loader

    return add


# --- checked reading ---------------------------------------------------------------------


def fail(
    path: str | os.PathLike[str], index: int | None, name: str | None, problem: str
) -> NoReturn:
    """Raise :class:`DataError` ``"<path>: record <index>, field '<name>': <problem>"``."""
    where = [f"record {index}"] if index is not None else []
    where += [f"field {name!r}"] if name is not None else []
    msg = f"{path}: {', '.join(where)}: {problem}" if where else f"{path}: {problem}"
    raise DataError(msg, path=str(path), index=index, field=name)


class Fields:
    """Typed access to one raw record; a failure raises :class:`DataError` naming the file,
    the record index and the field (``prefix`` + name, for nested records).

    >>> Fields({"a": "1"}, "f.json", 3).number("a")
    1.0
    >>> Fields({"a": []}, "f.json", 3).text("a")
    Traceback (most recent call last):
    ...
    o3video.errors.DataError: f.json: record 3, field 'a': expected a non-empty string, got list
    """

    def __init__(
        self, raw: Any, path: str | os.PathLike[str], index: int, prefix: str = ""
    ) -> None:
        self.path, self.index, self.prefix = Path(path), index, prefix
        if not isinstance(raw, Mapping):
            fail(path, index, prefix.rstrip(".") or None, f"expected an object, got {_kind(raw)}")
        self.raw = raw

    def fail(self, name: str, problem: str) -> NoReturn:
        fail(self.path, self.index, self.prefix + name, problem)

    def get(self, name: str) -> Any:
        """The raw value; a missing field raises."""
        if name not in self.raw:
            self.fail(name, "missing")
        return self.raw[name]

    def has(self, name: str) -> bool:
        return self.raw.get(name) is not None

    def text(self, name: str) -> str:
        """A non-empty string (a number is read as its text: ids and open answers are
        sometimes numbers)."""
        value = self.get(name)
        number = isinstance(value, int | float) and math.isfinite(value)
        if isinstance(value, bool) or not (isinstance(value, str) or number):
            self.fail(name, f"expected a non-empty string, got {_kind(value)}")
        text = str(value).strip()
        if not text:
            self.fail(name, "expected a non-empty string, got an empty one")
        return text

    def optional_text(self, name: str) -> str | None:
        return self.text(name) if self.has(name) else None

    def number(self, name: str) -> float:
        """A finite number (or numeric string)."""
        value = self.get(name)
        x: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            x = float(value)
        elif isinstance(value, str):
            try:
                x = float(value.strip())
            except ValueError:
                x = None
        if x is None or not math.isfinite(x):
            self.fail(name, f"expected a finite number, got {value!r}")
        return x

    def optional_number(self, name: str) -> float | None:
        return self.number(name) if self.has(name) else None

    def texts(self, name: str) -> tuple[str, ...]:
        """A non-empty list of strings (a parquet list column arrives as a list too)."""
        value = self.get(name)
        if isinstance(value, str) or not isinstance(value, Sequence) or not value:
            self.fail(name, f"expected a non-empty list of strings, got {_kind(value)}")
        for j, v in enumerate(value):
            if not isinstance(v, str) or not v.strip():
                self.fail(f"{name}[{j}]", f"expected a non-empty string, got {_kind(v)}")
        return tuple(v.strip() for v in value)

    def letter(self, name: str, n_options: int) -> str:
        """An option letter among the first ``n_options``."""
        text = self.text(name).upper()
        if len(text) != 1 or text not in LETTERS[:n_options]:
            self.fail(name, f"expected a letter A-{LETTERS[n_options - 1]}, got {text!r}")
        return text


def answer_text(text: str) -> str:
    """The part of a model's output that answers
    (:func:`o3video.protocols.readers.answer_part`): its ``<answer>`` section when it has one,
    else the text without its ``<think>``; stripped.

    >>> answer_text("<think>A or B?</think><answer> B </answer>"), answer_text("<think>x</think>C")
    ('B', 'C')
    """
    return answer_part(text)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def strip_letters(options: Sequence[str]) -> tuple[str, ...]:
    """Options without their ``"A. "`` / ``"(A) "`` / ``"A) "`` prefixes, when every option
    carries its own letter in order; otherwise unchanged.

    >>> strip_letters(["A. red", "B. blue"]), strip_letters(["A cat", "B dog"])
    (('red', 'blue'), ('A cat', 'B dog'))
    """
    out = []
    for letter, option in zip(LETTERS, options, strict=False):
        for head in (f"{letter}. ", f"({letter}) ", f"{letter}) ", f"{letter}: "):
            if option.startswith(head):
                out.append(option[len(head) :].strip())
                break
        else:
            return tuple(options)
    return tuple(out)


def read_records(path: Path) -> Iterator[tuple[int, Any]]:
    """``(index, record)`` of a JSON list, JSON Lines or parquet file, in file order.

    Parquet needs ``pyarrow`` (not a dependency of this package; ``datasets`` brings it);
    without it the error says to install it or export the table to JSON.
    """
    if path.suffix != ".parquet":
        yield from json_entries(path)
        return
    try:
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError as e:
        raise DataError(
            f"{path}: reading parquet needs pyarrow (pip install pyarrow), "
            "or export the table to JSON Lines",
            path=str(path),
        ) from e
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises several types for a bad file
        raise DataError(f"{path}: cannot read parquet: {e}", path=str(path)) from e
    yield from enumerate(rows)


def find_annotations(root: Path, patterns: Sequence[str], what: str) -> list[Path]:
    """The files of the first glob in ``patterns`` that matches under ``root``, sorted; or
    ``[root]`` when ``root`` is a file. Raises naming every pattern tried."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (expected the {what} folder)", path=str(root))
    for pattern in patterns:
        found = sorted(p for p in root.glob(pattern) if p.is_file())
        if found:
            return found
    raise DataError(
        f"{root}: no {what} annotation file; expected one of: {', '.join(patterns)}",
        path=str(root),
    )


def video_folder(
    root: Path,
    videos: str | os.PathLike[str] | None,
    defaults: Sequence[str],
    what: str,
    check: bool,
) -> Path:
    """``videos`` if given, else the first of ``root/<default>`` that exists (``root`` the
    folder, or the annotation file's folder). With ``check`` a missing folder raises."""
    base = root.parent if root.is_file() else root
    if videos is not None:
        folder = Path(videos)
        if check and not folder.is_dir():
            raise DataError(f"{folder}: no such video folder for {what}", path=str(folder))
        return folder
    candidates = [Path(os.path.normpath(base / d)) for d in defaults]
    found = next((c for c in candidates if c.is_dir()), None)
    if found is None and check:
        tried = ", ".join(str(c) for c in candidates)
        raise DataError(
            f"{base}: no {what} video folder; expected {tried} (or pass videos=)", path=str(base)
        )
    return found or candidates[0]


def check_items(items: Sequence[BenchItem], videos: Path, check_videos: bool) -> list[BenchItem]:
    """Refuse duplicate ids and (``check_videos``) missing videos; return ``items``."""
    seen: dict[str, int] = {}
    for k, item in enumerate(items):
        if item.id in seen:
            raise DataError(
                f"{item.benchmark}: item id {item.id!r} appears twice (items {seen[item.id]} "
                f"and {k}); ids must be unique",
                field="id",
            )
        seen[item.id] = k
    if check_videos:
        missing = [it for it in items if not it.video.exists()]
        if missing:
            first = missing[0]
            raise DataError(
                f"{videos}: {len(missing)} of {len(items)} {first.benchmark} items have no "
                f"video; first: {first.video} (item {first.id!r})",
                path=str(first.video),
                field="video",
            )
    return list(items)


def missing_ids(items: Sequence[BenchItem], predictions: Mapping[str, Any]) -> list[str]:
    """Ids of ``items`` without a prediction; predictions for other ids are logged."""
    ids = {it.id for it in items}
    extra = [k for k in predictions if k not in ids]
    if extra:
        logger.warning("%d predictions match no item (ignored); first: %r", len(extra), extra[0])
    return [it.id for it in items if it.id not in predictions]

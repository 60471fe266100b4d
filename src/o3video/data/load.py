"""Reading record files: a JSON list (or JSON Lines) checked entry by entry, nothing dropped
silently.

:func:`load_stgr` reads an STGR file (SPEC §4) into :class:`StgrData`: the usable records
(:mod:`o3video.data.stgr`), and every skipped entry with each
:class:`~o3video.data.validate.Issue` that made it unusable. It raises (``strict=True``) or
returns and reports the skipped records (``report_path``, and a logged summary).
:func:`iter_stgr` is the lazy form. :func:`json_entries` and :func:`collect` are the parts
that :mod:`o3video.data.vstar` shares.

Memory: :func:`json_entries` reads the file's text once (1–4 bytes a character; the bytes
and the text coexist while decoding) and decodes one entry at a time with
``json.JSONDecoder.raw_decode``: each entry is parsed once, into one dict that lives until
its record is built — the list of all raw dicts never exists. A caller that keeps nothing
holds ~2× the file size at peak; :func:`load_stgr` adds the records it keeps, which share
their strings with the parsed dicts. Measured (``benchmarks/data.py``): 37k records with
reasoning (51 MB) +190 MB peak RSS, without (18 MB) +100 MB.

>>> data = load_stgr("stgr_rl.json", media_root="data/videos")   # doctest: +SKIP
>>> len(data), len(data.skipped), data.records[0].task                # doctest: +SKIP
(37231, 0, 'temporal-spatial free-form QA')
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from o3video import safejson
from o3video.data.media import MediaChecker, MediaLayout, SourceRoot, check_record_media
from o3video.data.stgr import Record, record_from_dict
from o3video.data.validate import Issue
from o3video.errors import DataError

logger = logging.getLogger(__name__)

R = TypeVar("R")


@dataclass(frozen=True)
class Checked(Generic[R]):
    """One entry of a file after checking: its ``record`` (``None`` if unusable) and issues.
    ``task``, ``source`` and ``id`` are read from the raw entry, for reports (a V-STaR item
    has no task; its ``source`` is its ``domain`` and its ``id`` its ``vid``)."""

    index: int
    record: R | None
    issues: tuple[Issue, ...]
    task: str | None = None
    source: str | None = None
    id: str | None = None


@dataclass(frozen=True)
class CheckedFile(Generic[R]):
    """What a loader read: the usable ``records`` (in file order), every ``issue`` (errors
    of skipped records and warnings of kept ones), the ``skipped`` entries and the ``total``
    number of entries. ``total == len(records) + len(skipped)``."""

    path: str
    records: tuple[R, ...]
    skipped: tuple[Checked[R], ...]
    issues: tuple[Issue, ...]
    total: int

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[R]:
        return iter(self.records)

    def report(self) -> dict[str, Any]:
        """A JSON-ready account: counts, then every skipped entry with why, then warnings."""
        return {
            "file": self.path,
            "total": self.total,
            "valid": len(self.records),
            "skipped": len(self.skipped),
            "issue_counts": dict(Counter(f"{i.severity}:{i.kind}" for i in self.issues)),
            "skipped_records": [
                {
                    "index": s.index,
                    "id": s.id,
                    "task": s.task,
                    "source": s.source,
                    "issues": [i.to_dict() for i in s.issues],
                }
                for s in self.skipped
            ],
            "warnings": [i.to_dict() for i in self.issues if i.severity == "warning"],
        }


@dataclass(frozen=True)
class StgrData(CheckedFile[Record]):
    """What :func:`load_stgr` read (see :class:`CheckedFile`)."""


F = TypeVar("F", bound=CheckedFile[Any])


def iter_stgr(
    path: str | os.PathLike[str],
    media_root: str | os.PathLike[str] | None = None,
    *,
    check_media: bool | None = None,
    decode_media: bool = False,
    source_roots: Mapping[str, str | SourceRoot] | None = None,
) -> Iterator[Checked[Record]]:
    """Check every entry of an STGR file, lazily, in file order.

    ``check_media`` (default: whether ``media_root`` is given) looks for each video, image
    and key-frame file under ``media_root`` (see :class:`~o3video.data.media.MediaLayout`
    and ``source_roots``); ``decode_media`` also decodes them (videos: header and first
    frame, which gives the duration to check times against); media are checked for the
    records whose fields are usable. Raises :class:`DataError` for an unreadable file or
    malformed JSON (naming the line and column), never for a record.
    """
    path = Path(path)
    if check_media is None:
        check_media = media_root is not None
    if (check_media or decode_media) and media_root is None:
        raise ValueError("checking media needs media_root")
    layout = MediaLayout(media_root or ".", source_roots)
    media = MediaChecker(decode=decode_media)
    for index, raw in json_entries(path):
        record, issues = record_from_dict(raw, index)
        if record is not None and (check_media or decode_media):
            record, more = check_record_media(record, layout, media)
            issues += more
            if any(i.severity == "error" for i in more):
                record = None
        meta = raw if isinstance(raw, dict) else {}
        task, source, rid = (meta.get(k) for k in ("task", "source", "id"))
        yield Checked(
            index,
            record,
            tuple(issues),
            task=task if isinstance(task, str) else None,
            source=source if isinstance(source, str) else None,
            id=None if rid is None else str(rid),
        )


def load_stgr(
    path: str | os.PathLike[str],
    media_root: str | os.PathLike[str] | None = None,
    *,
    strict: bool = False,
    check_media: bool | None = None,
    decode_media: bool = False,
    source_roots: Mapping[str, str | SourceRoot] | None = None,
    report_path: str | os.PathLike[str] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> StgrData:
    """Read and check an STGR file (see :func:`iter_stgr` for the media options).

    Every entry is checked and every issue kept. ``strict=True`` raises :class:`DataError`
    if any entry is unusable, naming the first one's index and field and summarising all.
    Otherwise unusable entries are skipped: ``report_path`` receives the JSON of
    :meth:`StgrData.report`, and a summary is logged. ``on_progress(n)`` is called every
    1,000 entries.

    >>> data = load_stgr("stgr_sft.json", report_path="skipped.json")   # doctest: +SKIP
    >>> data.total == len(data) + len(data.skipped)                       # doctest: +SKIP
    True
    """
    checked = iter_stgr(
        path,
        media_root,
        check_media=check_media,
        decode_media=decode_media,
        source_roots=source_roots,
    )
    return collect(
        StgrData,
        path,
        checked,
        strict=strict,
        report_path=report_path,
        on_progress=on_progress,
    )


def collect(
    make: type[F],
    path: str | os.PathLike[str],
    checked: Iterable[Checked[Any]],
    *,
    strict: bool = False,
    report_path: str | os.PathLike[str] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> F:
    """Gather checked entries into ``make`` (a :class:`CheckedFile`): strict mode, report
    file, logged summary and progress calls as :func:`load_stgr` describes them."""
    kept: list[Any] = []
    skipped: list[Checked[Any]] = []
    issues: list[Issue] = []
    total = 0
    for entry in checked:
        total += 1
        issues += entry.issues
        if entry.record is None:
            skipped.append(entry)
        else:
            kept.append(entry.record)
        if on_progress is not None and total % 1000 == 0:
            on_progress(total)
    data = make(str(path), tuple(kept), tuple(skipped), tuple(issues), total)
    if strict and skipped:
        raise _strict_error(data)
    if report_path is not None:
        Path(report_path).write_text(json.dumps(data.report(), indent=1), encoding="utf-8")
    if skipped:
        kinds = Counter(i.kind for s in skipped for i in s.issues if i.severity == "error")
        where = f"report: {report_path}" if report_path else f"see {make.__name__}.skipped"
        logger.warning(
            "%s: skipped %d of %d records (%s); first: %s; %s",
            path,
            len(skipped),
            total,
            ", ".join(f"{k} {n}" for k, n in kinds.most_common()),
            next(i for i in skipped[0].issues if i.severity == "error"),
            where,
        )
    return data


_WS = re.compile(r"[ \t\n\r]*")


def read_json(path: str | os.PathLike[str], what: str = "JSON") -> Any:
    """The JSON value of a whole file; :class:`DataError` naming the file (and ``what`` it
    should hold) when it is missing, unreadable or malformed (with line and column)."""
    p = Path(path)
    try:
        return safejson.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{p}: {what} file not found", path=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: cannot read the {what} file: {exc}", path=str(p)) from exc
    except json.JSONDecodeError as exc:
        msg = f"{p}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise DataError(msg, path=str(p)) from exc


def _skip_ws(text: str, pos: int) -> int:
    m = _WS.match(text, pos)
    return m.end() if m else pos


def json_entries(path: Path) -> Iterator[tuple[int, Any]]:
    """``(index, value)`` of each entry of a JSON list, or of a JSON Lines file.

    Raises :class:`DataError` for an unreadable file or malformed JSON (line, column and
    the index of the entry being read).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read: {e}", path=str(path)) from e
    try:  # raw_decode recurses once per bracket: bound the nesting before it
        safejson.check_depth(text)
    except json.JSONDecodeError as e:
        msg = f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        raise DataError(msg, path=str(path)) from None
    decoder, index = json.JSONDecoder(), 0
    pos = _skip_ws(text, 0)
    try:
        if not text.startswith("[", pos):  # JSON Lines: values one after another
            while pos < len(text):
                value, pos = decoder.raw_decode(text, pos)
                yield index, value
                index += 1
                pos = _skip_ws(text, pos)
            return
        pos = _skip_ws(text, pos + 1)
        if text.startswith("]", pos):
            pos += 1
        else:
            while True:
                value, pos = decoder.raw_decode(text, pos)
                yield index, value
                index += 1
                pos = _skip_ws(text, pos)
                if text.startswith(",", pos):
                    pos = _skip_ws(text, pos + 1)
                elif text.startswith("]", pos):
                    pos += 1
                    break
                else:
                    raise json.JSONDecodeError("Expecting ',' delimiter or ']'", text, pos)
        pos = _skip_ws(text, pos)
        if pos < len(text):
            raise json.JSONDecodeError("Extra data after the list", text, pos)
    except json.JSONDecodeError as e:
        msg = (
            f"{path}: malformed JSON at line {e.lineno}, column {e.colno} (record {index}): {e.msg}"
        )
        raise DataError(msg, path=str(path), index=index) from e


STRICT_LISTED = 20
"""How many issues a strict-mode :class:`DataError` message lists."""


def _strict_error(data: CheckedFile[Any]) -> DataError:
    errors = [i for s in data.skipped for i in s.issues if i.severity == "error"]
    first = errors[0]
    lines = [
        f"{data.path}: {len(data.skipped)} of {data.total} records are unusable "
        f"({len(errors)} errors); first: record {first.index}, field {first.field!r}: "
        f"{first.message} [{first.kind}]"
    ]
    lines += [f"  {i}" for i in errors[:STRICT_LISTED]]
    if len(errors) > STRICT_LISTED:
        lines.append(f"  ... and {len(errors) - STRICT_LISTED} more")
    return DataError(
        "\n".join(lines),
        path=data.path,
        index=first.index,
        field=first.field,
        issues=tuple(errors),
    )

"""Where media files live and whether they are there: the published layout of the STGR
sources under one media root (:class:`MediaLayout`), and the existence and decoding checks of
a record's video, image and key-frame files (:func:`check_record_media`).

>>> layout = MediaLayout("/data/videos")
>>> str(layout.path("videoespresso_train_video", "a_1.jpg", key_frame=True))
'/data/videos/videoespresso/kfs/a_1.jpg'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from PIL import Image

from o3video.data.stgr import Record, SpatioTemporalRecord, VideoRecord, VisualQARecord, check_times
from o3video.data.validate import Checker, Issue, IssueKind
from o3video.errors import VideoDecodeError
from o3video.video import DEFAULT_MIN_PIXELS, probe_video, sample_frames


@dataclass(frozen=True)
class SourceRoot:
    """Where one source's files live, relative to the media root: ``media`` (videos and
    images) and ``key_frames`` (key-frame JPEGs; default: same as ``media``)."""

    media: str
    key_frames: str | None = None


DEFAULT_SOURCE_ROOTS: dict[str, SourceRoot] = {
    "videoespresso*": SourceRoot("videoespresso/videos", "videoespresso/kfs"),
    "timerft*": SourceRoot("timerft"),
    "gqa*": SourceRoot("gqa"),
    "STR_plm*": SourceRoot("stgr/plm/videos", "stgr/plm/kfs"),
    "STR_*": SourceRoot("stgr/temporal_grounding/videos", "stgr/temporal_grounding/kfs"),
    "TVG*": SourceRoot("tvg_r1"),
    "videor1*": SourceRoot("videor1"),
    "TreeVGR*": SourceRoot("treevgr"),
    "synthetic": SourceRoot(""),
}
"""The published layout (SPEC §4 and the reference trainer), ``source`` value → directory.

A key ending in ``*`` matches every source starting with the rest (case-insensitive; the
longest match wins), any other key one source exactly. A source no key matches lives in
``<media_root>/<source>``. The released sources are ``STR_<dataset>`` and ``STR_plm_rdcap``
(own spatio-temporal data), ``TVG_<dataset>``, ``TreeVGR``, ``gqa``, ``timerft``,
``videoespresso_train_video``, ``videor1_mcq`` and ``videor1_free_from``; ``synthetic``
(:mod:`o3video.data.synthetic`) lives in the media root itself.
"""


class MediaLayout:
    """Resolves a record's media paths: ``media_root / <source's directory> / <path>``.

    ``source_roots`` (``source`` or ``prefix*`` → a directory string or a
    :class:`SourceRoot`) is laid over :data:`DEFAULT_SOURCE_ROOTS`; pass
    ``defaults=False`` to start from nothing (every source in ``<media_root>/<source>``).

    >>> layout = MediaLayout("/data/videos", {"my_set": "mine/clips"})
    >>> str(layout.path("STR_plm_rdcap", "v/a.mp4")), str(layout.path("my_set", "b.mp4"))
    ('/data/videos/stgr/plm/videos/v/a.mp4', '/data/videos/mine/clips/b.mp4')
    >>> str(layout.path("STR_coin", "a_3.jpg", key_frame=True))
    '/data/videos/stgr/temporal_grounding/kfs/a_3.jpg'
    """

    def __init__(
        self,
        media_root: str | os.PathLike[str],
        source_roots: Mapping[str, str | SourceRoot] | None = None,
        *,
        defaults: bool = True,
    ) -> None:
        self.media_root = Path(media_root)
        merged: dict[str, str | SourceRoot] = dict(DEFAULT_SOURCE_ROOTS) if defaults else {}
        merged.update(source_roots or {})
        self.roots = {
            k: v if isinstance(v, SourceRoot) else SourceRoot(v) for k, v in merged.items()
        }
        self._cache: dict[str, SourceRoot] = {}

    def source_root(self, source: str) -> SourceRoot:
        """The directories of ``source`` (relative to the media root)."""
        if source not in self._cache:
            found = self.roots.get(source)
            if found is None:
                low = source.lower()
                prefixes = [
                    k for k in self.roots if k.endswith("*") and low.startswith(k[:-1].lower())
                ]
                found = self.roots[max(prefixes, key=len)] if prefixes else SourceRoot(source)
            self._cache[source] = found
        return self._cache[source]

    def root(self, source: str, *, key_frame: bool = False) -> Path:
        """The directory holding ``source``'s media (or key frames)."""
        sr = self.source_root(source)
        return self.media_root / (sr.key_frames or sr.media if key_frame else sr.media)

    def path(self, source: str, relpath: str, *, key_frame: bool = False) -> Path:
        """Where the file ``relpath`` of ``source`` lives."""
        return self.root(source, key_frame=key_frame) / relpath


class MediaChecker:
    """Whether media files exist and (``decode=True``) decode; each path is checked once.

    :meth:`check` returns ``(kind, message, duration_s)``: ``kind`` is ``None`` when the file
    is fine; ``duration_s`` is the video's duration when it was decoded.
    """

    def __init__(self, decode: bool = False) -> None:
        self.decode = decode
        self._seen: dict[str, tuple[IssueKind | None, str, float | None]] = {}

    def check(self, path: Path, video: bool) -> tuple[IssueKind | None, str, float | None]:
        key = str(path)
        if key not in self._seen:
            self._seen[key] = self._check(path, video)
        return self._seen[key]

    def _check(self, path: Path, video: bool) -> tuple[IssueKind | None, str, float | None]:
        if not path.is_file():
            what = "not a file" if path.exists() else "no such file"
            return "missing_media", f"{path}: {what}", None
        if not self.decode:
            return None, "", None
        try:
            if video:
                info = probe_video(path)
                # Every frame a model would be shown (the default budget, first to last),
                # decoded: a file cut short fails at its first missing frame.
                sample_frames(path, max_pixels=DEFAULT_MIN_PIXELS)
                return None, "", info.duration_s
            with Image.open(path) as image:
                image.load()
        except VideoDecodeError as e:
            return "undecodable_media", str(e), None
        except OSError as e:  # PIL: not an image, truncated
            return "undecodable_media", f"{path}: {e}", None
        return None, "", None


def check_record_media(
    record: Record, layout: MediaLayout, media: MediaChecker
) -> tuple[Record, list[Issue]]:
    """Check the record's media files: the record (with ``duration_s`` from the decoded
    video, if decoded) and its issues (missing or undecodable files, times past the end)."""
    c = Checker(record.index)
    if isinstance(record, VisualQARecord):
        files = [("image_path", record.image_path, False)]
    else:
        files = [("video_path", record.video_path, False)]
    if isinstance(record, SpatioTemporalRecord):
        files += [(f"key_frames[{i}].path", k.path, True) for i, k in enumerate(record.key_frames)]
    for fld, relpath, key_frame in files:
        path = layout.path(record.source, relpath, key_frame=key_frame)
        is_video = not key_frame and isinstance(record, VideoRecord)
        kind, msg, duration_s = media.check(path, is_video)
        if kind is not None:
            root = str(layout.root(record.source, key_frame=key_frame))
            c.error(fld, kind, msg, path=str(path), root=root)
        elif duration_s is not None:
            record = replace(record, duration_s=duration_s)
            check_times(c, record, duration_s)
    return record, c.issues

"""STGR records → TRL datasets, with each record's frames decoded once (SPEC §3, §6).

:class:`ExampleSource` turns record ``i`` into an :class:`~o3video.data.examples.Example`
(:func:`~o3video.data.examples.to_example`: frames-as-images messages, SFT target, reward
columns, under the data section's ``protocol``) and keeps it in a cache keyed by everything
that shapes it (:meth:`ExampleSource.key`: the STGR file and its content hash, record index,
media path, family, protocol, the whole frame budget, the package version): in memory, and
on disk when ``cache_dir`` is set. TRL's
``RepeatSampler`` fetches each RL prompt ``G`` times per generation batch and every epoch
again, so without the cache every fetch would decode the video again.

The TRL datasets are ``datasets.Dataset`` objects holding only the record position; the
rows are built on access (``with_transform``), so no frame is ever written to Arrow:

- SFT (:func:`sft_dataset`): ``prompt`` (system + user, ``{"type": "image"}`` placeholders),
  ``completion`` (the assistant target) and ``images`` — TRL's conversational
  prompt-completion format, whose collator labels the completion tokens only
  (``completion_only_loss``): the loss never sees the system prompt or the question.
- RL (:func:`rl_dataset`): ``prompt``, ``images`` and the reward columns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import pickle
import tempfile
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import o3video
from o3video.data.examples import Example, to_example
from o3video.data.stgr import Record
from o3video.errors import DataError
from o3video.models.card import VideoSettings
from o3video.prompts import Message
from o3video.protocols import ProtocolName, check_protocol
from o3video.protocols.training import check_training_task
from o3video.video import Clip, sample_frames

logger = logging.getLogger(__name__)


class ExampleSource:
    """Records → cached :class:`Example` objects for one frame budget and ``protocol``
    (:mod:`o3video.protocols.training`; a record whose task the protocol has no prompt for
    is a :class:`~o3video.errors.DataError` here, before any training).

    ``memory_items`` bounds the in-memory cache (least recently used out); ``cache_dir``
    adds a pickle per example on disk. Each video is decoded once for all its records: the
    sampled frames are kept per video (at most ``video_items`` videos and ``video_bytes``
    bytes of frames, least recently used out; small frames let a whole corpus stay decoded
    across epochs), and ``decodes`` counts the videos decoded. ``prep_seconds`` accumulates
    the time spent building rows (decoding included), which the training benchmark reports as
    data preparation.
    """

    def __init__(
        self,
        records: Sequence[Record],
        media_root: str | Path,
        *,
        stgr_path: str | Path = "",
        family: str = "qwen2_5_vl",
        protocol: ProtocolName | str = "o3video",
        video: VideoSettings | None = None,
        fps: float | None = None,
        min_frames: int | None = None,
        max_frames: int | None = None,
        max_pixels: int | None = None,
        cache_dir: str | Path | None = None,
        memory_items: int = 4096,
        video_items: int = 8192,
        video_bytes: int = 1 << 30,
    ) -> None:
        self.records = list(records)
        self.media_root = Path(media_root)
        self.stgr_path = str(stgr_path)
        self.family = family
        self.protocol = check_protocol(protocol)
        self._check_tasks()
        given: dict[str, Any] = {"fps": fps, "min_frames": min_frames, "max_frames": max_frames}
        given["max_pixels"] = max_pixels
        self.video = dataclasses.replace(
            video or VideoSettings(), **{k: v for k, v in given.items() if v is not None}
        )
        self._stgr_sha256: str | None = None
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.memory_items = memory_items
        self._memory: OrderedDict[int, Example] = OrderedDict()
        self.video_items, self.video_bytes = video_items, video_bytes
        self._clips: OrderedDict[tuple[Any, ...], Clip] = OrderedDict()
        self._clip_bytes = 0
        self.prep_seconds = 0.0
        self.decodes = 0

    def _check_tasks(self) -> None:
        """:class:`DataError` when the protocol has no prompt for some records' task."""
        refused: dict[str, list[int]] = {}
        reasons: dict[str, str] = {}
        for r in self.records:
            try:
                check_training_task(r.task, self.protocol)
            except ValueError as e:
                refused.setdefault(r.task, []).append(r.index)
                reasons[r.task] = str(e)
        if not refused:
            return
        task, indices = next(iter(refused.items()))
        counts = ", ".join(f"{len(ix)} of task {t!r}" for t, ix in refused.items())
        raise DataError(
            f"{self.stgr_path or 'records'}: {counts} (first: record {indices[0]}) cannot be "
            f"trained under this protocol: {reasons[task]}",
            path=self.stgr_path or None,
            index=indices[0],
            field="task",
        )

    def sample(self, path: str | Path, **options: Any) -> Clip:
        """:func:`~o3video.video.sample_frames` remembered per (video, options): a video with
        several records is decoded once. Clips are immutable, so sharing them is safe."""
        key = (str(path), *sorted(options.items()))
        clip = self._clips.get(key)
        if clip is not None:
            self._clips.move_to_end(key)
            return clip
        clip = sample_frames(path, **options)
        self.decodes += 1
        self._clips[key] = clip
        self._clip_bytes += clip.frames.nbytes
        while len(self._clips) > 1 and (
            len(self._clips) > self.video_items or self._clip_bytes > self.video_bytes
        ):
            _, old = self._clips.popitem(last=False)
            self._clip_bytes -= old.frames.nbytes
        return clip

    def __len__(self) -> int:
        return len(self.records)

    def stgr_sha256(self) -> str:
        """The content hash of the STGR file (``""`` when the records came from no file)."""
        if self._stgr_sha256 is None:
            path = Path(self.stgr_path) if self.stgr_path else None
            if path is None or not path.is_file():
                self._stgr_sha256 = ""
            else:
                digest = hashlib.sha256()
                with path.open("rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
                self._stgr_sha256 = digest.hexdigest()
        return self._stgr_sha256

    def key(self, i: int) -> str:
        """The cache key of record ``i`` (hex digest): everything that shapes its example —
        the STGR file's path and content hash, the record's index and media, the family,
        the protocol, the whole frame budget and the package version (the code that writes
        prompts and targets)."""
        record = self.records[i]
        media = getattr(record, "video_path", None) or getattr(record, "image_path", "")
        parts = (
            self.stgr_path,
            self.stgr_sha256(),
            record.index,
            str(media),
            self.family,
            self.protocol,
            sorted(dataclasses.asdict(self.video).items()),
            o3video.__version__,
        )
        return hashlib.sha1(repr(parts).encode()).hexdigest()

    def example(self, i: int) -> Example:
        """The :class:`Example` of record ``i``, decoded at most once per cache."""
        hit = self._memory.get(i)
        if hit is not None:
            self._memory.move_to_end(i)
            return hit
        disk = self.cache_dir / f"{self.key(i)}.pkl" if self.cache_dir is not None else None
        if disk is not None and disk.exists():
            with disk.open("rb") as f:
                example: Example = pickle.load(f)
        else:
            example = to_example(
                self.records[i],
                self.media_root,
                self.family,
                fps=self.video.fps,
                max_frames=self.video.max_frames,
                max_pixels=self.video.max_pixels,
                min_frames=self.video.min_frames,
                min_pixels=self.video.min_pixels,
                sampler=self.sample,
                protocol=self.protocol,
            )
            if disk is not None:
                write_atomic(disk, example)
        self._memory[i] = example
        if len(self._memory) > self.memory_items:
            self._memory.popitem(last=False)
        return example

    def sft_row(self, i: int) -> dict[str, Any]:
        """TRL conversational prompt-completion row of record ``i`` (needs a target)."""
        ex = self.example(i)
        if ex.target is None:
            raise ValueError(f"record {ex.record.index} has no reasoning: no SFT target")
        prompt, images = split_images(ex.messages)
        completion = [{"role": "assistant", "content": [{"type": "text", "text": ex.target}]}]
        return {"prompt": prompt, "completion": completion, "images": images}

    def rl_row(self, i: int) -> dict[str, Any]:
        """TRL GRPO row of record ``i``: ``prompt``, ``images`` and the reward columns."""
        ex = self.example(i)
        prompt, images = split_images(ex.messages)
        return {**ex.columns, "prompt": prompt, "images": images}


def write_atomic(path: Path, obj: Any) -> None:
    """Pickle ``obj`` to ``path`` through a temporary file of this writer's own (several
    training processes share one cache: a temporary name common to all of them let one
    process move another's half-written file away, and its own rename then failed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f"{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def split_images(messages: list[Message]) -> tuple[list[Message], list[Any]]:
    """``messages`` with each image item replaced by a ``{"type": "image"}`` placeholder, and
    the images in order (TRL fills the placeholders back from the ``images`` column)."""
    images: list[Any] = []
    out: list[Message] = []
    for message in messages:
        content = message.get("content")
        if not isinstance(content, list):
            out.append(message)
            continue
        items = []
        for item in content:
            if item.get("type") == "image":
                images.append(item["image"])
                items.append({"type": "image"})
            else:
                items.append(item)
        out.append({**message, "content": items})
    return out, images


def _dataset(source: ExampleSource, kind: str, indices: Sequence[int]) -> Any:
    import datasets  # type: ignore[import-untyped]

    def transform(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        t0 = time.perf_counter()
        rows = [source.sft_row(i) if kind == "sft" else source.rl_row(i) for i in batch["position"]]
        source.prep_seconds += time.perf_counter() - t0
        return {key: [row[key] for row in rows] for key in rows[0]}

    base = datasets.Dataset.from_dict({"position": list(indices)})
    return base.with_transform(transform)


def sft_dataset(source: ExampleSource) -> Any:
    """A ``datasets.Dataset`` of SFT rows; records without a reasoning are left out."""
    keep = [i for i, r in enumerate(source.records) if r.reasoning is not None]
    if len(keep) < len(source):
        logger.info(
            "SFT: %d of %d records have no reasoning and are left out",
            len(source) - len(keep),
            len(source),
        )
    return _dataset(source, "sft", keep)


def rl_dataset(source: ExampleSource, indices: Sequence[int] | None = None) -> Any:
    """A ``datasets.Dataset`` of RL rows (the records at ``indices``; default every one)."""
    return _dataset(source, "rl", range(len(source)) if indices is None else indices)


def source_from_config(
    data: Any, output_dir: str | Path, *, stage: str, strict: bool = False
) -> ExampleSource:
    """The :class:`ExampleSource` of a :class:`~o3video.train.config.DataConfig`.

    With ``data.synth`` set and ``data.stgr`` empty or absent, a synthetic corpus is written
    to ``<output_dir>/data`` first and its ``stgr_<stage>.json`` is used.
    """
    from o3video.data.load import load_stgr
    from o3video.errors import DataError

    stgr = Path(data.stgr) if data.stgr else None
    if (stgr is None or not stgr.exists()) and data.synth is not None:
        from o3video.data.synthetic import synthesize

        synth_dir = Path(output_dir) / "data"
        target = stgr if stgr is not None else synth_dir / f"stgr_{stage}.json"
        if not target.exists():
            logger.info(
                "synthesizing %d videos (seed %d) into %s",
                data.synth.n,
                data.synth.seed,
                target.parent,
            )
            synthesize(
                target.parent, data.synth.n, seed=data.synth.seed, config=data.synth.world_config()
            )
        stgr = target
    if stgr is None:
        raise DataError("data.stgr is not set (and no data.synth to create it)", field="stgr")
    if not stgr.exists():
        raise DataError(f"{stgr}: no such STGR file (set data.stgr, or data.synth)", path=str(stgr))
    media_root = Path(data.media_root) if data.media_root else stgr.parent
    loaded = load_stgr(stgr, media_root, strict=strict)
    records = list(loaded)
    tasks = getattr(data, "tasks", None)
    if tasks is not None:
        records = [r for r in records if r.task in tasks]
    if data.limit is not None:
        records = records[: data.limit]
    if not records:
        raise DataError(f"{stgr}: no usable record", path=str(stgr))
    return ExampleSource(
        records,
        media_root,
        stgr_path=stgr.resolve(),
        family=data.family,
        protocol=data.protocol,
        video=data.video,
        cache_dir=data.cache_dir,
    )

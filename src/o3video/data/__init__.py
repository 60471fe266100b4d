"""Data: STGR records (schema, loading, validation), curation and the synthetic world.

- :mod:`o3video.data.stgr`: typed records of the six STGR tasks and :func:`load_stgr`.
- :mod:`o3video.data.validate`: the checks, :class:`Issue`, and where media live
  (:class:`MediaLayout`).
- :mod:`o3video.data.examples`: a record → :class:`Example` (messages, SFT target, reward
  columns) for a model family and frame budget.
"""

from o3video.data.examples import (
    Example,
    image_clip,
    load_clip,
    merge_key_frames,
    rewrite_boxes,
    to_example,
)
from o3video.data.stgr import (
    BaseRecord,
    KeyFrame,
    Record,
    SpatioTemporalRecord,
    StgrData,
    TemporalMCQRecord,
    TemporalQARecord,
    VideoFreeFormRecord,
    VideoMCQRecord,
    VideoRecord,
    VisualQARecord,
    iter_stgr,
    load_stgr,
    record_from_dict,
)
from o3video.data.validate import DEFAULT_SOURCE_ROOTS, Issue, MediaLayout, SourceRoot

__all__ = [
    "DEFAULT_SOURCE_ROOTS",
    "BaseRecord",
    "Example",
    "Issue",
    "KeyFrame",
    "MediaLayout",
    "Record",
    "SourceRoot",
    "SpatioTemporalRecord",
    "StgrData",
    "TemporalMCQRecord",
    "TemporalQARecord",
    "VideoFreeFormRecord",
    "VideoMCQRecord",
    "VideoRecord",
    "VisualQARecord",
    "image_clip",
    "iter_stgr",
    "load_clip",
    "load_stgr",
    "merge_key_frames",
    "record_from_dict",
    "rewrite_boxes",
    "to_example",
]

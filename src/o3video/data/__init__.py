"""Data: STGR records (schema, loading, validation), curation and the synthetic world.

- :mod:`o3video.data.stgr`: typed records of the six STGR tasks (:func:`record_from_dict`).
- :mod:`o3video.data.load`: reading and checking whole files (:func:`load_stgr`).
- :mod:`o3video.data.validate`: the field checks and :class:`Issue`.
- :mod:`o3video.data.media`: where media live (:class:`MediaLayout`) and their checks.
- :mod:`o3video.data.vstar`: V-STaR items (SPEC §7) and :func:`load_vstar`.
- :mod:`o3video.data.examples`: a record → :class:`Example` (messages, SFT target, reward
  columns) for a model family and frame budget.
- :mod:`o3video.data.synthetic` (with :mod:`~o3video.data.world` and
  :mod:`~o3video.data.questions`): a synthetic grounded-video corpus with exact ground truth.
"""

from o3video.data.examples import (
    Example,
    image_clip,
    load_clip,
    merge_key_frames,
    rewrite_boxes,
    to_example,
)
from o3video.data.load import Checked, StgrData, iter_stgr, load_stgr
from o3video.data.media import DEFAULT_SOURCE_ROOTS, MediaLayout, SourceRoot
from o3video.data.stgr import (
    BaseRecord,
    KeyFrame,
    Record,
    SpatioTemporalRecord,
    TemporalMCQRecord,
    TemporalQARecord,
    VideoFreeFormRecord,
    VideoMCQRecord,
    VideoRecord,
    VisualQARecord,
    record_from_dict,
)
from o3video.data.validate import Issue
from o3video.data.vstar import VStarBox, VStarData, VStarItem, load_vstar

__all__ = [
    "DEFAULT_SOURCE_ROOTS",
    "BaseRecord",
    "Checked",
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
    "VStarBox",
    "VStarData",
    "VStarItem",
    "VideoFreeFormRecord",
    "VideoMCQRecord",
    "VideoRecord",
    "VisualQARecord",
    "image_clip",
    "iter_stgr",
    "load_clip",
    "load_stgr",
    "load_vstar",
    "merge_key_frames",
    "record_from_dict",
    "rewrite_boxes",
    "to_example",
]

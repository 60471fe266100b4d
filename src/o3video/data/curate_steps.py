"""Steps 2–4 of the curation pipeline (SPEC §4), one function each; :mod:`o3video.data.curate`
chains all four over many videos.

1. :func:`~o3video.data.curate_teacher.annotate` — a teacher proposes a sample (in
   :mod:`o3video.data.curate_teacher`, with the values every step passes on).
2. :func:`filter_boxes` — corners ordered; a box with no area, less than half inside the
   frame (else clamped), covering more than ``max_area_frac`` (80%) of the frame or with a
   side under ``min_side_frac`` of the frame is dropped; a key frame left without objects is
   dropped; a candidate left without key frames is rejected.
3. :func:`verify_boxes` — each box is cropped from its frame and a verifier asked "Is this a
   {object}? Answer yes or no."; kept if the reply starts with yes, else dropped ("no",
   or "unparsable").
4. :func:`check_consistency` — the reasoning's evidence and the annotations must correspond
   one to one (rules in its docstring); a consistent candidate gets its reasoning rewritten
   canonically: the annotated box and the key frame's true time (one decimal, the label
   precision) in every claim.

Boxes stay on the teacher's 0–1000 grid in every step; :func:`~o3video.data.curate.to_stgr_record`
converts them to 0–1.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from PIL import Image

from o3video.boxes import XYXY, area, clamp_xyxy, convert_xyxy, iou, order_xyxy
from o3video.crops import crop_frame
from o3video.data.curate_teacher import (
    CLAIM_TIME_DECIMALS,
    GRID,
    Candidate,
    Drop,
    KeyFrameAnnotation,
    ObjectBox,
    Rejection,
    time_tolerance_s,
)
from o3video.evidence import Claim, format_claim, format_time, parse_trace
from o3video.models.base import Backend, Request, SamplingParams

logger = logging.getLogger(__name__)

VERIFY_QUESTION = "Is this a {object}? Answer yes or no."
VERIFIER_PARAMS = SamplingParams(max_new_tokens=16)
_MARKUP = re.compile(r"</?(?:think|answer|obj|box|t)>")


def filter_boxes(
    candidate: Candidate,
    *,
    max_area_frac: float = 0.8,
    min_side_frac: float = 0.01,
    min_inside_frac: float = 0.5,
) -> tuple[Candidate | Rejection, list[Drop]]:
    """Step 2: drop boxes that cover more than ``max_area_frac`` of the frame (SPEC §4), and
    degenerate ones: no area once the corners are ordered, less than ``min_inside_frac`` of
    the box inside the frame (a box mostly inside is clamped), a side shorter than
    ``min_side_frac`` of the frame's. Key frames left empty are dropped; no key frame left →
    a rejection. Returns the filtered candidate (boxes ordered and clamped) and the drops.
    """
    drops: list[Drop] = []
    frames: list[KeyFrameAnnotation] = []
    for kf in candidate.key_frames:
        kept: list[ObjectBox] = []
        for obj in kf.objects:
            reason, box = _box_problem(obj.box, max_area_frac, min_side_frac, min_inside_frac)
            if reason is None:
                kept.append(ObjectBox(obj.name, box))
            else:
                drops.append(Drop("filter", reason, kf.time_s, obj.name, obj.box))
        if kept:
            frames.append(replace(kf, objects=tuple(kept)))
        else:
            drops.append(Drop("filter", "empty_key_frame", kf.time_s, detail="no box left"))
    filtered = replace(candidate, key_frames=tuple(frames), checked=False)
    if not frames:
        return Rejection("filter", "no_boxes_left", f"{len(drops)} drops"), drops
    return filtered, drops


def _box_problem(
    box: XYXY, max_area_frac: float, min_side_frac: float, min_inside_frac: float
) -> tuple[str | None, XYXY]:
    ordered = order_xyxy(box)
    whole = area(ordered)
    if whole <= 0:
        return "degenerate", ordered
    clamped = clamp_xyxy(ordered, (GRID, GRID))
    if area(clamped) < min_inside_frac * whole:
        return "outside_frame", clamped
    if area(clamped) > max_area_frac * GRID * GRID:
        return "too_large", clamped
    if min(clamped[2] - clamped[0], clamped[3] - clamped[1]) < min_side_frac * GRID:
        return "too_small", clamped
    return None, clamped


def crop_box(frame: np.ndarray, box: XYXY, min_side_px: int = 64) -> Image.Image:
    """The part of ``frame`` (``(H, W, 3)`` uint8) inside ``box`` (0–1000 grid), at least one
    pixel, enlarged (bicubic) so that its shorter side is at least ``min_side_px``."""
    h, w = frame.shape[:2]
    box_px = convert_xyxy(box, "rel1000", "frame_px", frame_wh=(w, h))
    return crop_frame(frame, box_px, min_side_px=min_side_px)


def parse_yes_no(text: str) -> bool | None:
    """``True`` if the reply starts with yes, ``False`` with no, else ``None`` (case, spaces,
    quotes, ``*`` and punctuation around tolerated).

    >>> parse_yes_no("Yes."), parse_yes_no("**no**, it is a cat"), parse_yes_no("Maybe")
    (True, False, None)
    """
    m = re.match(r"[\s\"'*`_.:>-]*(yes|no)\b", text, re.I)
    return None if m is None else m.group(1).lower() == "yes"


def verify_boxes(
    candidate: Candidate,
    verifier: Backend,
    *,
    params: SamplingParams | None = None,
    question: str = VERIFY_QUESTION,
    min_side_px: int = 64,
) -> tuple[Candidate | Rejection, list[Drop]]:
    """Step 3: ask ``verifier`` about each box's crop (``question`` with ``{object}``) in one
    batch; keep the box on a yes, drop it on a no (``verifier_no``) or anything else
    (``unparsable``). Crops come from the frames the teacher saw (frame pixels). Key frames
    left empty are dropped; none left → a rejection. ``BackendError`` propagates."""
    requests: list[Request] = []
    for kf in candidate.key_frames:
        frame = candidate.clip.frames[kf.frame]
        for obj in kf.objects:
            crop = crop_box(frame, obj.box, min_side_px)
            label = f"{candidate.clip.source}@{kf.time_s:.2f}s:{obj.name}"
            requests.append(Request.user(crop, question.format(object=obj.name), id=label))
    replies = verifier.generate(requests, params or VERIFIER_PARAMS)
    drops: list[Drop] = []
    frames: list[KeyFrameAnnotation] = []
    k = 0
    for kf in candidate.key_frames:
        kept: list[ObjectBox] = []
        for obj in kf.objects:
            text = replies[k][0] if k < len(replies) and replies[k] else ""
            k += 1
            verdict = parse_yes_no(text)
            if verdict:
                kept.append(obj)
                continue
            reason = "unparsable" if verdict is None else "verifier_no"
            drops.append(Drop("verify", reason, kf.time_s, obj.name, obj.box, text[:200]))
        if kept:
            frames.append(replace(kf, objects=tuple(kept)))
        else:
            drops.append(Drop("verify", "empty_key_frame", kf.time_s, detail="no box left"))
    if not frames:
        return Rejection("verify", "no_boxes_left", f"{len(drops)} drops"), drops
    return replace(candidate, key_frames=tuple(frames), checked=False), drops


def _norm(name: str) -> str:
    return " ".join(name.lower().split())


def check_consistency(
    candidate: Candidate, *, min_iou: float = 0.9, dropped: Sequence[Drop] = ()
) -> Candidate | Rejection:
    """Step 4: the reasoning and the annotations must correspond one to one (SPEC §4).

    Rules: question and answer non-empty and free of trace tags; the reasoning without
    ``<think>``/``<answer>`` tags and without any malformation :func:`parse_trace` reports;
    at least one claim. Each box of each claim is matched to an annotation with the same
    name (case and spacing ignored), at a key frame whose true time is within
    :func:`time_tolerance_s` of the claim's time, with IoU >= ``min_iou`` on the 0–1000 grid
    — a maximum one-to-one matching: every box of every claim matched, every annotation
    claimed exactly once. Every bare ``<t>`` must be the time of a key frame. The rejection
    names each failing claim and annotation; a claim of a box in ``dropped`` (by the earlier
    steps) fails as ``dropped_evidence``. A consistent candidate comes back with
    ``checked=True`` and its reasoning rewritten: each claim with the annotated names and
    boxes and the key frame's true time, each bare time as its key frame's true time.
    """
    c = candidate
    for field_name, text in (("question", c.question), ("answer", c.answer)):
        if not text.strip():
            return Rejection("consistency", "empty_text", f"the {field_name} is empty")
        if m := _MARKUP.search(text):
            return Rejection("consistency", "tags_in_text", f"the {field_name} holds {m.group()}")
    sections = [t for t in ("<think>", "</think>", "<answer>", "</answer>") if t in c.reasoning]
    if sections:
        return Rejection("consistency", "malformed_trace", f"reasoning holds {sections[0]}")
    head = "<think>"
    trace = parse_trace(f"{head}{c.reasoning}</think><answer></answer>")
    if trace.problems:
        p = trace.problems[0]
        where = f"characters {p.span[0] - len(head)}-{p.span[1] - len(head)}"
        return Rejection("consistency", "malformed_trace", f"{p.kind} at {where}: {p.message}")
    if not trace.claims:
        return Rejection("consistency", "no_claims", "the reasoning has no <obj> evidence")
    tol = time_tolerance_s(c.clip)
    anns = [(kf, obj) for kf in c.key_frames for obj in kf.objects]
    units = [(ci, claim, b) for ci, claim in enumerate(trace.claims) for b in claim.boxes]

    def fits(u: int, a: int) -> bool:
        (_, claim, box), (kf, obj) = units[u], anns[a]
        assert claim.t_s is not None  # claims without a time are problems, rejected above
        return (
            _norm(claim.name) == _norm(obj.name)
            and abs(claim.t_s - kf.time_s) <= tol
            and iou(clamp_xyxy(box, (GRID, GRID)), obj.box) >= min_iou
        )

    adjacent = [[a for a in range(len(anns)) if fits(u, a)] for u in range(len(units))]
    owner: dict[int, int] = {}  # annotation -> claim box (Kuhn's augmenting paths)

    def augment(u: int, seen: set[int]) -> bool:
        for a in adjacent[u]:
            if a not in seen:
                seen.add(a)
                if a not in owner or augment(owner[a], seen):
                    owner[a] = u
                    return True
        return False

    for u in range(len(units)):
        augment(u, set())
    matched = {u: a for a, u in owner.items()}
    failures = [
        _why_unmatched(*units[u], anns, dropped, tol, min_iou)
        for u in range(len(units))
        if u not in matched
    ]
    failures += [
        ("unclaimed_annotation", f"annotation {obj.name!r} at {kf.time_s:.2f} s is never claimed")
        for a, (kf, obj) in enumerate(anns)
        if a not in owner
    ]
    key_times = [kf.time_s for kf in c.key_frames]
    bare: list[tuple[tuple[int, int], float]] = []
    for t, span in zip(trace.times_s, trace.time_spans, strict=True):
        near = min(key_times, key=lambda k: abs(k - t))
        if abs(near - t) > tol:
            failures.append(("unmatched_time", f"<t>{t:g}</t> is the time of no key frame"))
        bare.append((span, near))
    if failures:
        return Rejection("consistency", failures[0][0], "; ".join(m for _, m in failures))
    edits = [(span, f"<t>{format_time(t, decimals=CLAIM_TIME_DECIMALS)}</t>s") for span, t in bare]
    for ci, claim in enumerate(trace.claims):
        mine = [anns[matched[u]] for u in range(len(units)) if units[u][0] == ci]
        boxes = [obj.box for _, obj in mine]
        text = format_claim(mine[0][1].name, boxes, mine[0][0].time_s, decimals=CLAIM_TIME_DECIMALS)
        edits.append((claim.span, text))
    shifted = [((a - len(head), b - len(head)), new) for (a, b), new in edits]
    return replace(c, reasoning=replace_spans(c.reasoning, shifted), checked=True)


def _why_unmatched(
    ci: int,
    claim: Claim,
    box: XYXY,
    anns: Sequence[tuple[KeyFrameAnnotation, ObjectBox]],
    dropped: Sequence[Drop],
    tol: float,
    min_iou: float,
) -> tuple[str, str]:
    assert claim.t_s is not None
    what = f"claim {ci} ({claim.name!r} at {claim.t_s:g} s)"
    box = clamp_xyxy(box, (GRID, GRID))
    for d in dropped:
        if (
            d.name is not None
            and d.box is not None
            and _norm(d.name) == _norm(claim.name)
            and abs(claim.t_s - d.time_s) <= tol
            and iou(box, clamp_xyxy(d.box, (GRID, GRID))) >= min_iou
        ):
            return "dropped_evidence", f"{what}: its box was dropped at {d.step} ({d.reason})"
    named = [(kf, obj) for kf, obj in anns if _norm(obj.name) == _norm(claim.name)]
    if not named:
        return "unknown_object", f"{what}: no annotated object of that name"
    timed = [(kf, obj) for kf, obj in named if abs(claim.t_s - kf.time_s) <= tol]
    if not timed:
        times = ", ".join(f"{kf.time_s:.2f}" for kf, _ in named)
        return "wrong_time", f"{what}: annotated at {times} s only"
    best = max(iou(box, obj.box) for _, obj in timed)
    if best < min_iou:
        return "wrong_box", f"{what}: box IoU {best:.2f} < {min_iou} with the annotation"
    return "duplicate_claim", f"{what}: its annotation is claimed by another box"


def replace_spans(text: str, edits: list[tuple[tuple[int, int], str]]) -> str:
    """``text`` with each ``(start, end)`` span replaced by its string (spans must not overlap).

    >>> replace_spans("a <t>3</t>s b", [((2, 11), "<t>2.9</t>s")])
    'a <t>2.9</t>s b'
    """
    out, pos = [], 0
    for (start, end), new in sorted(edits):
        out += [text[pos:start], new]
        pos = end
    return "".join([*out, text[pos:]])

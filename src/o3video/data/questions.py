"""Question writers of the synthetic corpus: from one world's exact ground truth, every
question of each STGR task (SPEC §4) that the world can answer unambiguously, with its answer
and a grounded reasoning (claims with normalized boxes and true frame times), and V-STaR items
(SPEC §7). :mod:`o3video.data.synthetic` picks among them and writes the files.

A question is only asked when exactly one object answers it; "clearly first/last" means
0.5 s ahead of the next; options are real objects of the video where possible, then
look-alikes (same colour or same shape) that are not in it, in a shuffled order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from o3video.data.world import World
from o3video.evidence import format_claim, format_time


@dataclass(frozen=True)
class Question:
    """A question about one world, before it becomes a record."""

    task: str
    question: str
    answer: str
    reasoning: str
    key: tuple[tuple[int, tuple[int, ...]], ...] = ()  # key frames: (frame, objects in it)
    image_k: int | None = None  # visual QA: the frame shown as the image


class QuestionWriter:
    """The question writers of one world; each task method returns all its candidates."""

    def __init__(self, world: World, rng: np.random.Generator) -> None:
        self.w, self.rng, self.tr = world, rng, world.tracks
        self.norm = [np.round(t.box_xyxy / np.array(world.size_wh * 2), 3) for t in self.tr]
        self.gap = round(0.5 * float(world.config.rate))  # "clearly first/last": 0.5 s apart
        self.stops = {i: t.stop for i, t in enumerate(self.tr) if t.stop}
        self.enters = {i: s for i, t in enumerate(self.tr) if (s := t.enter_span)}
        self.exits = {i: s for i, t in enumerate(self.tr) if (s := t.exit_span)}

    def claim(self, i: int, k: int, timed: bool = True) -> str:
        box = [float(v) for v in self.norm[i][k]]
        return format_claim(self.tr[i].name, [box], self.w.times_s[k] if timed else None)

    def t(self, k: int) -> str:
        return f"<t>{format_time(self.w.times_s[k])}</t>s"

    def span(self, a: int, b: int) -> str:
        return f"[{format_time(self.w.times_s[a])}, {format_time(self.w.times_s[b])}]"

    def look(self, i: int, lo: int = 0, hi: int | None = None, first: bool = False) -> int | None:
        """A frame in ``[lo, hi]`` where object ``i`` is plainly seen (nearest the middle, or
        the first); else one where it is at least in the frame; else None."""
        hi = self.w.num_frames - 1 if hi is None else hi
        t = self.tr[i]
        for ok in (t.visible_frac >= 0.9, t.in_frame):
            ks = np.flatnonzero(ok[lo : hi + 1]) + lo
            if ks.size:
                return int(ks[0] if first else ks[np.argmin(np.abs(ks - (lo + hi) / 2))])
        return None

    def apart(self, i: int, near: int) -> int | None:
        """The frame nearest ``near`` where object ``i`` is plainly seen (90 % visible) and its
        box overlaps no other object's box (touching edges count as apart); None if none."""
        t = self.tr[i]
        ok = t.visible_frac >= 0.9
        x1, y1, x2, y2 = (t.box_xyxy[:, c] for c in range(4))
        for u in self.tr:
            if u.index == i:
                continue
            ux1, uy1, ux2, uy2 = (u.box_xyxy[:, c] for c in range(4))
            with np.errstate(invalid="ignore"):  # NaN boxes (out of frame) overlap nothing
                overlap = (np.minimum(x2, ux2) > np.maximum(x1, ux1)) & (
                    np.minimum(y2, uy2) > np.maximum(y1, uy1)
                )
            ok &= ~overlap
        ks = np.flatnonzero(ok)
        return int(ks[np.argmin(np.abs(ks - near))]) if ks.size else None

    def seen(self, i: int, lo: int = 0, hi: int | None = None) -> str:
        k = self.look(i, lo, hi)
        return f"the {self.tr[i].name}" if k is None else self.claim(i, k)

    def fronts(self, back: int) -> list[int]:
        return sorted({e.front for e in self.w.occlusions if e.back == back})

    def runs(self, front: int, back: int) -> list[tuple[int, int]]:
        return [(e.first, e.last) for e in self.w.occlusions if (e.front, e.back) == (front, back)]

    def extreme(self, moments: dict[int, int], last: bool) -> int | None:
        """The object whose moment is clearly the first (or last), if there is one."""
        ranked = sorted(moments, key=lambda i: -moments[i] if last else moments[i])
        if len(ranked) == 1 or (
            ranked and abs(moments[ranked[0]] - moments[ranked[1]]) >= self.gap
        ):
            return ranked[0]
        return None

    def letters(self, values: list[str], correct: str) -> tuple[list[str], str, str]:
        """The options shuffled, as ``"A. …\\nB. …"``, and the letter of ``correct``."""
        order = [values[j] for j in self.rng.permutation(len(values))]
        text = "\n".join(f"{'ABCDEF'[j]}. {v}" for j, v in enumerate(order))
        return order, text, "ABCDEF"[order.index(correct)]

    def options(self, target: str, others: list[str]) -> tuple[list[str], str, str]:
        """Four options: the target, ``others`` first, then look-alikes not in the video."""
        (colour, shape), names = target.split(" "), {t.name for t in self.tr}
        cfg = self.w.config
        fake = [f"{colour} {s}" for s in cfg.shapes] + [f"{c} {shape}" for c in cfg.colours]
        fake = [fake[j] for j in self.rng.permutation(len(fake)) if fake[j] not in names]
        picked = list(dict.fromkeys(o for o in others + fake if o != target))[:3]
        return self.letters([target, *picked], target)

    # -- the six STGR tasks -------------------------------------------------------------------
    def visual_qa(self) -> list[Question]:
        crowd = np.sum([t.visible_frac >= 0.5 for t in self.tr], axis=0)
        out = []
        for i, t in enumerate(self.tr):
            ks = np.flatnonzero((t.visible_frac >= 0.9) & (crowd >= self.w.config.visual_qa_crowd))
            if not ks.size:
                continue
            k = int(ks[self.rng.integers(ks.size)])
            article = "an" if t.colour[0] in "aeiou" else "a"
            n = int(crowd[k])
            notes = [f"I look for {article} {t.name} among {n} shape{'s' if n > 1 else ''}."]
            for j, u in enumerate(self.tr):
                if j != i and u.visible_frac[k] >= 0.5 and u.colour == t.colour:
                    notes.append(f"{self.claim(j, k, False)} is {u.colour} too, but a {u.shape}.")
                elif j != i and u.visible_frac[k] >= 0.5 and u.shape == t.shape:
                    notes.append(f"{self.claim(j, k, False)} is a {u.shape} too, but {u.colour}.")
            notes.append(f"The {t.name} is here: {self.claim(i, k, False)}.")
            answer = format_claim(t.name, [[float(v) for v in t.box_xyxy[k]]], None)
            question = f"Where is the {t.name} in the image? Answer with its bounding box."
            out.append(Question("visual QA", question, answer, " ".join(notes), image_k=k))
        return out

    def _spans(self) -> list[tuple[str, str, str, dict[int, tuple[int, int]]]]:
        """(when-question verb, MCQ phrase, what the others do instead, {object: span})."""
        found = [
            ("stand still", "stands still for a while", "never stands still", self.stops),
            ("enter the scene", "enters the scene after the start", "is there from the start",
             self.enters),
            ("leave the scene", "leaves the scene before the end", "stays until the end",
             self.exits),
        ]  # fmt: skip
        for b, back in enumerate(self.tr):
            runs = {f: self.runs(f, b) for f in self.fronts(b)}
            spans = {f: r[0] for f, r in runs.items() if len(r) == 1}
            if spans and len(spans) == len(runs):
                act = f"pass in front of the {back.name}"
                found.append((act, f"passes in front of the {back.name}", "never does", spans))
        return found

    def temporal_qa(self) -> list[Question]:
        out = []
        for verb, _, _, spans in self._spans():
            for i, (a, b) in spans.items():
                name = self.tr[i].name
                text = f"{self.claim(i, a)} the {name} begins to {verb}"
                text += f", and it stops doing so after {self.claim(i, b)}."
                out.append(
                    Question("temporal QA", f"When does the {name} {verb}?", self.span(a, b), text)
                )
        for i, t in enumerate(self.tr):
            f0, f1 = t.in_frame_span
            if (f0, f1) != (0, self.w.num_frames - 1):
                text = f"The {t.name} is first seen at {self.claim(i, f0)} and last seen at "
                question = f"When is the {t.name} in the scene?"
                out.append(
                    Question(
                        "temporal QA", question, self.span(f0, f1), text + f"{self.claim(i, f1)}."
                    )
                )
        return out

    def temporal_mcq(self) -> list[Question]:
        out = []
        for _, what, other, spans in self._spans():
            if len(spans) != 1:
                continue  # the question must have exactly one right option
            ((i, (a, b)),) = spans.items()
            target = self.tr[i]
            others = [u.name for u in self.tr if u is not target and u.name not in what]
            similar = sorted(others, key=lambda n: not set(n.split()) & set(target.name.split()))
            order, opts, letter = self.options(target.name, similar)
            notes = []
            for name in order:
                j = next((u.index for u in self.tr if u.name == name), None)
                if j == i:
                    notes.append(f"{self.claim(i, a)} the {name} {what}, until {self.t(b)}.")
                elif j is None:
                    notes.append(f"There is no {name} in the video.")
                else:
                    notes.append(f"{self.seen(j, a, b)}: the {name} {other}.")
            answer = f"{letter}\n{self.span(a, b)}"
            question = f"Which shape {what}, and when?\n{opts}"
            out.append(Question("temporal QA (MCQ)", question, answer, " ".join(notes)))
        return out

    def spatio_temporal(self) -> list[Question]:
        out, task = [], "temporal-spatial free-form QA"
        for b, back in enumerate(self.tr):
            if len(fronts := self.fronts(b)) == 1:
                f, (a, e) = fronts[0], self.runs(fronts[0], b)[0]
                ks = sorted({a, (a + e) // 2, e})
                text = " ".join(
                    f"{self.claim(f, k)} covers part of {self.claim(b, k)}." for k in ks
                )
                text += f" No other shape passes in front of the {back.name}."
                question = f"Which shape passes in front of the {back.name}?"
                key = tuple((k, (f, b)) for k in ks)
                out.append(Question(task, question, f"the {self.tr[f].name}", text, key))
        firsts = {j: s[0] for j, s in self.stops.items()}
        enters = {j: s[0] for j, s in self.enters.items()}
        for moments, last, verb in (
            (enters, True, "enter the scene"),
            (firsts, False, "stop moving"),
        ):
            if (i := self.extreme(moments, last)) is None:
                continue
            group = sorted(moments, key=moments.__getitem__)
            group = group[-3:] if last else group[:3]
            keys = [
                (k, (j,)) for j in group if (k := self.look(j, moments[j], first=True)) is not None
            ]
            text = " ".join(f"{self.claim(j, k)}: the {self.tr[j].name} does." for k, (j,) in keys)
            which = "last" if last else "first"
            text = f"When does each shape {verb}? {text} The {which} is the {self.tr[i].name}."
            question = f"Which shape is the {which} to {verb}?"
            out.append(Question(task, question, f"the {self.tr[i].name}", text, tuple(keys)))
        for i, (a, b) in self.exits.items():
            side = self.tr[i].exit_side
            text = f"{self.claim(i, a)} the {self.tr[i].name} reaches the {side} edge, and "
            text += f"{self.claim(i, b)} is the last moment it is in view."
            question = f"Through which edge does the {self.tr[i].name} leave the scene?"
            out.append(Question(task, question, f"the {side} edge", text, ((a, (i,)), (b, (i,)))))
        return out

    def general_mcq(self) -> list[Question]:
        out, task = [], "General video QA MCQ"
        plural = {s: s + ("es" if s.endswith("s") else "s") for s in self.w.config.shapes}
        groups = {
            plural[t.shape]: [u.index for u in self.tr if u.shape == t.shape] for t in self.tr
        }
        for t in self.tr:
            groups[f"{t.colour} shapes"] = [u.index for u in self.tr if u.colour == t.colour]
        for what, ids in sorted(groups.items()):
            c, lo = len(ids), int(self.rng.integers(max(1, len(ids) - 3), len(ids) + 1))
            _, opts, letter = self.letters([str(v) for v in range(lo, lo + 4)], str(c))
            text = " ".join(self.seen(j) for j in ids) + f" That makes {c}."
            out.append(
                Question(task, f"How many {what} appear in the video?\n{opts}", letter, text)
            )
        for i, (a, _) in self.enters.items():
            t = self.tr[i]
            _, opts, letter = self.letters(["left", "right", "top", "bottom"], str(t.enter_side))
            text = f"{self.claim(i, a)} the {t.name} first shows at the {t.enter_side} edge."
            question = f"Through which edge does the {t.name} enter the scene?\n{opts}"
            out.append(Question(task, question, letter, text))
        if (z := self.extreme({j: s[0] for j, s in self.enters.items()}, last=True)) is not None:
            _, opts, letter = self.options(self.tr[z].name, [self.tr[j].name for j in self.enters])
            text = f"The others are in the scene before {self.seen(z, self.enters[z][0])}."
            out.append(
                Question(task, f"Which shape is the last to enter the scene?\n{opts}", letter, text)
            )
        return out

    def general_free(self) -> list[Question]:
        task, n, last = "General video QA Free-form", len(self.tr), self.w.num_frames - 1
        text = " ".join(self.seen(j) for j in range(n)) + f" That makes {n}."
        out = [Question(task, "How many shapes appear in the video?", str(n), text)]
        vis = [float(t.visible_frac[last]) for t in self.tr]
        if all(v == 0 or v >= 0.25 for v in vis):  # nothing barely visible: the count is clear
            ids = [j for j, v in enumerate(vis) if v > 0]
            text = " ".join(self.claim(j, last) for j in ids) + f" That makes {len(ids)}."
            out.append(
                Question(
                    task, "How many shapes can be seen in the last frame?", str(len(ids)), text
                )
            )
        for i, t in enumerate(self.tr):
            twins = [u for u in self.tr if u.shape == t.shape and u.enter_side == t.enter_side]
            if i in self.enters and len(twins) == 1:
                question = (
                    f"What colour is the {t.shape} that enters through the {t.enter_side} edge?"
                )
                text = f"It is {self.seen(i, self.enters[i][0])}, so it is {t.colour}."
                out.append(Question(task, question, t.colour, text))
            twins = [u for u in self.tr if u.colour == t.colour and u.stop]
            if i in self.stops and len(twins) == 1:
                question = f"What shape is the {t.colour} object that stands still for a while?"
                text = (
                    f"It stands still at {self.claim(i, self.stops[i][0])}, and it is a {t.shape}."
                )
                out.append(Question(task, question, t.shape, text))
        if self.w.config.naming_qa:
            out += self.naming()
        return out

    def naming(self) -> list[Question]:
        """Shape and colour naming (``WorldConfig.naming_qa``): one question per object whose
        colour (shape) no other object shares, answered by its shape (colour)."""
        task, out = "General video QA Free-form", []
        for i, t in enumerate(self.tr):
            if (k := self.look(i)) is None:
                continue
            if sum(u.colour == t.colour for u in self.tr) == 1:
                text = f"The {t.colour} object is {self.claim(i, k)}: it is a {t.shape}."
                question = f"What shape is the {t.colour} object?"
                out.append(Question(task, question, t.shape, text))
            if sum(u.shape == t.shape for u in self.tr) == 1:
                text = f"The {t.shape} is {self.claim(i, k)}: it is {t.colour}."
                question = f"What colour is the {t.shape}?"
                out.append(Question(task, question, t.colour, text))
        return out

    def all(self) -> dict[str, list[Question]]:
        """Every task's candidates, each list in a random order."""
        out: dict[str, list[Question]] = {}
        for writer in (self.visual_qa, self.temporal_qa, self.temporal_mcq, self.spatio_temporal,
                       self.general_mcq, self.general_free):  # fmt: skip
            for q in writer():
                out.setdefault(q.task, []).append(q)
        return {task: [qs[j] for j in self.rng.permutation(len(qs))] for task, qs in out.items()}

    # -- V-STaR ---------------------------------------------------------------------------------
    def vstar(self, vid: str, domain: str) -> list[dict[str, Any]]:
        """At most one V-STaR item: an event that exactly one object is the answer to."""
        cands = []  # (what, when, while-clause, where-2 clause, object, span)
        for b, back in enumerate(self.tr):
            if len(fronts := self.fronts(b)) == 1 and len(runs := self.runs(fronts[0], b)) == 1:
                f, act = fronts[0], f"in front of the {back.name}"
                when = f"When does the {self.tr[f].name} pass {act}?"
                cands.append((f"Which shape passes {act}?", when, f"while it passes {act}",
                              f"passing {act}", f, runs[0]))  # fmt: skip
        if len(self.stops) == 1:
            ((i, span),) = self.stops.items()
            cands.append(("Which shape stands still for a while?",
                          f"When does the {self.tr[i].name} stand still?",
                          "while it stands still", "standing still", i, span))  # fmt: skip
        if (z := self.extreme({j: s[0] for j, s in self.enters.items()}, last=True)) is not None:
            cands.append(("Which shape is the last to enter the scene?",
                          f"When does the {self.tr[z].name} enter the scene?",
                          "while it enters the scene", "entering the scene", z,
                          self.enters[z]))  # fmt: skip
        items = []
        for what, when, during, doing, i, (a, e) in cands:
            if boxes := self.whole_second_boxes(i, a, e):
                name, w = self.tr[i].name, self.w
                items.append({
                    "vid": vid, "domain": domain, "fps": float(w.config.rate),
                    "width": w.config.width, "height": w.config.height,
                    "frame_count": w.num_frames, "question": what, "answer": f"the {name}",
                    "temporal_question": when, "timestamps": [w.times_s[a], w.times_s[e]],
                    "spatial_question": f"Where is the {name} {during}?",
                    "spatial_question_2": f"Where is the {name} {doing}?", "bboxes": boxes,
                })  # fmt: skip
        return [items[self.rng.integers(len(items))]] if items else []

    def whole_second_boxes(self, i: int, a: int, e: int) -> list[dict[str, float]]:
        """Object ``i``'s boxes (pixels) at the whole seconds of frames ``a..e``.

        The frame of second ``s`` is ``round(s · fps)``: exactly at ``s`` for an integer
        frame rate, the nearest frame otherwise.
        """
        rate, times, out = self.w.config.rate, self.w.times_s, []
        for sec in range(math.ceil(times[a]), math.floor(times[e]) + 1):
            k = round(sec * rate)
            if a <= k <= e and self.tr[i].in_frame[k]:
                x1, y1, x2, y2 = (float(v) for v in self.tr[i].box_xyxy[k])
                out.append({"timestamp": sec, "frame_index": k,
                            "xmin": x1, "ymin": y1, "xmax": x2, "ymax": y2})  # fmt: skip
        return out

"""Where do a model's V-STaR What answers go wrong on the synthetic world: colour, shape, or
which object?

For each ``o3video eval vstar`` run folder (``results.json``) on a synthetic corpus (its
``gt/*.json`` name the objects of every video), the script reads each What answer as
"<colour> <shape>" and prints:

- the 2×2 table of colour right / shape right against the truth;
- how often the answer names an object that is in the video (a model that sees the objects
  but picks the wrong one), and how often the truth is the only object with its colour;
- the shapes the answers name, against the shapes of the truth;
- per question (the first line with the world's colour and shape words as ``COLOUR`` and
  ``SHAPE``): how many, both right, colour right, shape right, and how often the answer names
  an object of the video; which questions lose the shape and which lose the object;
- how often a wrong shape (colour) is one the question itself names ("Which shape passes in
  front of the red circle?" answered "the blue circle": the shape of the object behind).
  Whether such a shape is copied from the question's words or read off the frames is what
  ``question_copy.py`` tells.

A What answer that is not a colour and a shape of the world counts as wrong on both.

    python benchmarks/what_errors.py runs/embedded/eval-sft --data runs/embedded/heldout
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from o3video.data.shapes import COLOURS, SHAPES, name_words

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_questions import template  # type: ignore[import-not-found]

FORM_KEYS = ("n", "both", "colour", "shape", "present", "shape_named", "colour_named")


def read_name(text: str) -> tuple[str | None, str | None]:
    """The first colour word and the first shape word of an answer (None where absent).

    >>> read_name("the blue circle")
    ('blue', 'circle')
    >>> read_name("A square, I think")
    (None, 'square')
    """
    colours, shapes = name_words(text)
    return next(iter(colours), None), next(iter(shapes), None)


def question_form(question: str) -> str:
    """The question's first line with the world's colour and shape words as placeholders.

    >>> question_form("Which shape passes in front of the Green diamond?\\nA. x")
    'Which shape passes in front of the COLOUR SHAPE?'
    >>> question_form("How many crosses are there?")
    'How many SHAPEs are there?'
    """
    return str(template(question, list(COLOURS), SHAPES))


def summarize(run: Path, data: Path) -> dict[str, object]:
    """The counts described in the module docstring, for one run folder."""
    rows = json.loads((run / "results.json").read_text())
    table: Counter[tuple[bool, bool]] = Counter()
    said: Counter[str] = Counter()
    truth_shapes: Counter[str] = Counter()
    present = unique_colour = 0
    forms: defaultdict[str, Counter[str]] = defaultdict(Counter)
    question_named: Counter[str] = Counter()
    for row in rows:
        gt = json.loads((data / "gt" / f"{row['vid']}.json").read_text())
        names = {o["name"] for o in gt["objects"]}
        colour, shape = read_name(str(row.get("answer_vqa") or ""))
        t_colour, t_shape = read_name(str(row["answer"]))
        assert t_colour and t_shape, f"{row['vid']}: truth {row['answer']!r} is not a name"
        colour_right, shape_right = colour == t_colour, shape == t_shape
        named = f"{colour} {shape}" in names
        table[(colour_right, shape_right)] += 1
        said[shape or "(none)"] += 1
        truth_shapes[t_shape] += 1
        present += named
        question = str(row.get("question") or "").split("\n")[0]
        q_colours, q_shapes = name_words(question)
        shape_named = not shape_right and shape in q_shapes
        colour_named = not colour_right and colour in q_colours
        question_named["shape"] += shape_named
        question_named["colour"] += colour_named
        form = forms[question_form(question)]
        form["n"] += 1
        form["both"] += colour_right and shape_right
        form["colour"] += colour_right
        form["shape"] += shape_right
        form["present"] += named
        form["shape_named"] += shape_named
        form["colour_named"] += colour_named
        unique_colour += sum(o["colour"] == t_colour for o in gt["objects"]) == 1
    n = len(rows)
    return {
        "n": n,
        "both_right": table[(True, True)],
        "colour_only": table[(True, False)],
        "shape_only": table[(False, True)],
        "neither": table[(False, False)],
        "colour_right": (table[(True, True)] + table[(True, False)]) / n,
        "shape_right": (table[(True, True)] + table[(False, True)]) / n,
        "names_an_object_in_the_video": present / n,
        "truth_has_a_unique_colour": unique_colour / n,
        "wrong_shape_named_by_the_question": question_named["shape"],
        "wrong_colour_named_by_the_question": question_named["colour"],
        "shapes_said": dict(said.most_common()),
        "shapes_true": dict(truth_shapes.most_common()),
        "by_question": {
            q: {k: c[k] / c["n"] if k != "n" else c["n"] for k in FORM_KEYS}
            for q, c in sorted(forms.items(), key=lambda kv: -kv[1]["n"])
        },
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="eval vstar output folders")
    parser.add_argument("--data", type=Path, required=True, help="the corpus (with gt/)")
    args = parser.parse_args(argv)
    for run in args.runs:
        s = summarize(run, args.data)
        print(f"== {run}  ({s['n']} What items)")
        print(
            f"  both right {s['both_right']}, colour only {s['colour_only']}, "
            f"shape only {s['shape_only']}, neither {s['neither']}"
        )
        print(
            f"  colour right {s['colour_right']:.3f}, shape right {s['shape_right']:.3f}, "
            f"names an object in the video {s['names_an_object_in_the_video']:.3f} "
            f"(truth's colour unique in its video: {s['truth_has_a_unique_colour']:.3f})"
        )
        print(
            f"  wrong shapes that the question names {s['wrong_shape_named_by_the_question']}"
            f" of {s['colour_only'] + s['neither']}, wrong colours that it names "
            f"{s['wrong_colour_named_by_the_question']} of {s['shape_only'] + s['neither']}"
        )
        print(f"  shapes said {s['shapes_said']}")
        print(f"  shapes true {s['shapes_true']}")
        print(
            "  per question: n, both right, colour right, shape right, names an object of the "
            "video, wrong shape named by the question, wrong colour named by the question"
        )
        for q, f in s["by_question"].items():  # type: ignore[attr-defined]
            print(
                f"    {f['n']:4d} {f['both']:.3f} {f['colour']:.3f} {f['shape']:.3f} "
                f"{f['present']:.3f} {f['shape_named']:.3f} {f['colour_named']:.3f}  {q}"
            )


if __name__ == "__main__":
    main()

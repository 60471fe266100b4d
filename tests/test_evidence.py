"""Tests of the grounded-trace format (SPEC §1): parse_trace, format_* and parse_span."""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from o3video.evidence import (
    PROBLEM_KINDS,
    Claim,
    Trace,
    format_claim,
    format_number,
    format_span,
    format_time,
    parse_span,
    parse_trace,
)

B = "<box>[1,2,3,4]</box>"
BOX = (1.0, 2.0, 3.0, 4.0)


def wrap(think: str, answer: str = "A") -> str:
    return f"<think>{think}</think><answer>{answer}</answer>"


def summary(tr: Trace) -> tuple[list[tuple[object, ...]], list[float], list[str]]:
    claims: list[tuple[object, ...]] = [(c.name, c.boxes, c.t_s) for c in tr.claims]
    return claims, list(tr.times_s), list(tr.kinds)


# (id, text, claims as (name, boxes, t_s), bare times, problem kinds in text order).
CASES = [
    # --- well-formed ---------------------------------------------------------------------------
    ("strict", wrap("<obj>woman</obj><box>[374,67,420,224]</box>at<t>9.2</t>s"),
     [("woman", ((374, 67, 420, 224),), 9.2)], [], []),
    ("spaces", wrap("<obj>woman</obj> <box>[374,67,420,224]</box> at <t>9.2</t> s"),
     [("woman", ((374, 67, 420, 224),), 9.2)], [], []),
    ("newlines", wrap("<obj>woman</obj>\n<box>[374,67,420,224]</box>\n at\n<t>9.2</t>\ns"),
     [("woman", ((374, 67, 420, 224),), 9.2)], [], []),
    ("no_at", wrap(f"<obj>a</obj>{B}<t>1</t>s"), [("a", (BOX,), 1.0)], [], []),
    ("capital_at", wrap(f"<obj>a</obj>{B} At <t>1</t>s"), [("a", (BOX,), 1.0)], [], []),
    ("missing_s", wrap(f"<obj>a</obj>{B}at<t>1</t> then"), [("a", (BOX,), 1.0)], [], []),
    ("int_time", wrap(f"<obj>a</obj>{B}at<t>9</t>s"), [("a", (BOX,), 9.0)], [], []),
    ("float_box", wrap("<obj>a</obj><box>[1.5,2.25,3,4.0]</box>at<t>1</t>s"),
     [("a", ((1.5, 2.25, 3.0, 4.0),), 1.0)], [], []),
    ("dot_and_exp_numbers", wrap("<obj>a</obj><box>[.5,1e1,3.,+4]</box>at<t>2E-1</t>s"),
     [("a", ((0.5, 10.0, 3.0, 4.0),), 0.2)], [], []),
    ("spaces_in_box", wrap("<obj>a</obj><box> [ 1 , 2 ,3, 4 ] </box>at<t> 1 </t>s"),
     [("a", (BOX,), 1.0)], [], []),
    ("box_without_brackets", wrap("<obj>a</obj><box>1,2,3,4</box>at<t>1</t>s"),
     [("a", (BOX,), 1.0)], [], []),
    ("two_boxes", wrap(f"<obj>a</obj>{B}<box>[5,6,7,8]</box>at<t>1</t>s"),
     [("a", (BOX, (5, 6, 7, 8)), 1.0)], [], []),
    ("two_boxes_spaced", wrap(f"<obj>a</obj> {B} \n <box>[5,6,7,8]</box> at <t>1</t>s"),
     [("a", (BOX, (5, 6, 7, 8)), 1.0)], [], []),
    ("several_claims",
     wrap(f"I see <obj>dog</obj>{B}at<t>1.5</t>s, then <obj>cat</obj>"
          "<box>[5,6,7,8]</box>at<t>3</t>s."),
     [("dog", (BOX,), 1.5), ("cat", ((5, 6, 7, 8),), 3.0)], [], []),
    ("claim_then_bare_time", wrap(f"<obj>a</obj>{B}at<t>1</t>s and later <t>2</t>s"),
     [("a", (BOX,), 1.0)], [2.0], []),
    ("bare_times", wrap("it starts at <t>3.5</t>s and ends at <t>7</t>"), [], [3.5, 7.0], []),
    ("from_to_answer", wrap("x", "From <t>2.5</t>s to <t>7</t>s"), [], [2.5, 7.0], []),
    ("unicode_name", wrap(f"<obj>狗</obj>{B}at<t>1</t>s"), [("狗", (BOX,), 1.0)], [], []),
    ("unicode_name_stripped", wrap(f"<obj>  café au lait\n</obj>{B}at<t>1</t>s"),
     [("café au lait", (BOX,), 1.0)], [], []),
    ("negative_numbers", wrap("<obj>a</obj><box>[-5,-1.5,3,4]</box>at<t>-2</t>s"),
     [("a", ((-5, -1.5, 3, 4),), -2.0)], [], []),
    ("twenty_digit_number", wrap("<obj>a</obj><box>[0,0,99999999999999999999,4]</box>at<t>1</t>s"),
     [("a", ((0, 0, 1e20, 4),), 1.0)], [], []),
    ("other_angle_brackets", wrap("x < y and <b>bold</b>"), [], [], []),
    ("seconds_word", wrap(f"<obj>a</obj>{B}at<t>1</t>seconds"), [("a", (BOX,), 1.0)], [], []),
    # --- partial claims ------------------------------------------------------------------------
    ("claim_without_time", wrap(f"<obj>a</obj>{B} is here"), [("a", (BOX,), None)], [],
     ["claim_without_time"]),
    ("spatial_answer", wrap("x", f"<obj>cup</obj>{B}"), [("cup", (BOX,), None)], [],
     ["claim_without_time"]),
    ("obj_without_box", wrap("<obj>dog</obj> at <t>3</t>s"), [], [3.0], ["claim_without_box"]),
    ("obj_text_box", wrap(f"<obj>a</obj> is at {B}at<t>1</t>s"), [], [1.0],
     ["claim_without_box", "box_without_object"]),
    ("box_without_object", wrap(f"{B}at<t>1</t>s"), [], [1.0], ["box_without_object"]),
    ("time_before_box", wrap(f"<obj>a</obj> at <t>1</t>s {B}"), [], [1.0],
     ["claim_without_box", "box_without_object"]),
    ("empty_name", wrap(f"<obj> </obj>{B}at<t>1</t>s"), [("", (BOX,), 1.0)], [], ["empty_name"]),
    # --- bad numbers and boxes -----------------------------------------------------------------
    ("huge_time", wrap(f"<obj>a</obj>{B}at<t>1e309</t>s"), [("a", (BOX,), None)], [],
     ["bad_number"]),
    ("huge_box", wrap("<obj>a</obj><box>[0,0,1e309,4]</box>at<t>1</t>s"), [], [1.0],
     ["claim_without_box", "bad_number"]),
    ("inf_nan_times", wrap("<t>inf</t>s <t>nan</t>s <t>abc</t>s <t>1_0</t>s"), [], [],
     ["bad_number"] * 4),
    ("box_3_numbers", wrap("<obj>a</obj><box>[1,2,3]</box>at<t>1</t>s"), [], [1.0],
     ["claim_without_box", "bad_box"]),
    ("box_5_numbers", wrap("<obj>a</obj><box>[1,2,3,4,5]</box>at<t>1</t>s"), [], [1.0],
     ["claim_without_box", "bad_box"]),
    ("box_one_bad_one_good", wrap(f"<obj>a</obj><box>[1,2,3]</box>{B}at<t>1</t>s"),
     [("a", (BOX,), 1.0)], [], ["bad_box"]),
    ("box_half_bracket", wrap("<obj>a</obj><box>[1,2,3,4</box>"), [], [],
     ["claim_without_box", "bad_box"]),
    ("box_empty", wrap("<box></box>"), [], [], ["box_without_object", "bad_box"]),
    ("box_words", wrap("<obj>a</obj><box>[x,2,3,4]</box>"), [], [],
     ["claim_without_box", "bad_box"]),
    ("box_space_separated", wrap("<obj>a</obj><box>[1 2 3 4]</box>"), [], [],
     ["claim_without_box", "bad_box"]),
    # --- structure -----------------------------------------------------------------------------
    ("empty", "", [], [], ["missing_think", "missing_answer"]),
    ("garbage", "hello world", [], [], ["missing_think", "text_outside_tags", "missing_answer"]),
    ("garbage_brackets", "a < b > c </> <tt> <<box", [], [],  # "<box" is a cut-off tag
     ["missing_think", "text_outside_tags", "unclosed_tag", "missing_answer"]),
    ("no_sections_claim", f"<obj>a</obj>{B}at<t>1</t>s", [("a", (BOX,), 1.0)], [],
     ["missing_think", "text_outside_tags", "missing_answer"]),
    ("only_think", "<think>x</think>", [], [], ["missing_answer"]),
    ("only_answer", "<answer>A</answer>", [], [], ["missing_think"]),
    ("text_outside", "Sure. " + wrap("x") + " bye", [], [],
     ["text_outside_tags", "text_outside_tags"]),
    ("wrong_case_tags", "<Think>x</Think><answer>A</answer>", [], [],
     ["missing_think", "text_outside_tags"]),
    ("nested_think", "<think><think>x</think></think><answer>A</answer>", [], [],
     ["nested_tag", "unbalanced_tag"]),
    ("think_in_answer", "<think>x</think><answer><think>A</answer>", [], [], ["nested_tag"]),
    ("stray_close", wrap("x</obj>y</t>"), [], [], ["unbalanced_tag", "unbalanced_tag"]),
    ("stray_close_outside", wrap("x") + "</answer>", [], [], ["unbalanced_tag"]),
    ("duplicate_answer", wrap("x") + "<answer>B</answer>", [], [], ["duplicate_section"]),
    ("answer_inside_think", "<think>x<answer>A</answer>", [], [], ["unclosed_tag"]),
    ("obj_closed_by_think", "<think><obj>a</think><answer>A</answer>", [], [], ["unclosed_tag"]),
    ("obj_reopened", wrap(f"<obj>a<obj>b</obj>{B}at<t>1</t>s"), [("b", (BOX,), 1.0)], [],
     ["unclosed_tag"]),
    ("mismatched_close", wrap("<obj>a</box>"), [], [], ["unclosed_tag", "unbalanced_tag"]),
    # --- truncated output ----------------------------------------------------------------------
    ("cut_mid_close_tag", f"<think><obj>a</obj>{B}at<t>1</t>s</thi", [("a", (BOX,), 1.0)], [],
     ["unclosed_tag", "unclosed_tag", "missing_answer"]),
    ("cut_mid_open_tag", "<think>x</think><ans", [], [], ["unclosed_tag", "missing_answer"]),
    ("cut_lone_lt", "<think>x</think><", [], [], ["unclosed_tag", "missing_answer"]),
    ("cut_mid_name", "<think><obj>wom", [], [], ["unclosed_tag", "unclosed_tag", "missing_answer"]),
    ("cut_mid_box", "<think><obj>a</obj><box>[1,2,", [], [],
     ["unclosed_tag", "claim_without_box", "unclosed_tag", "missing_answer"]),
    ("cut_mid_number", f"<think><obj>a</obj>{B}at<t>9.", [("a", (BOX,), None)], [],
     ["unclosed_tag", "claim_without_time", "unclosed_tag", "missing_answer"]),
    ("missing_close_answer", "<think>x</think><answer>B", [], [], ["unclosed_tag"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "claims", "times", "kinds"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_parse_table(
    text: str, claims: list[tuple[object, ...]], times: list[float], kinds: list[str]
) -> None:
    tr = parse_trace(text)
    assert summary(tr) == (claims, times, kinds)
    assert tr.ok == (not kinds)
    for p in tr.problems:
        assert 0 <= p.span[0] <= p.span[1] <= len(text)
        assert p.kind in PROBLEM_KINDS and p.message


# (text, problem kind, the text its span must cover)
SPANS = [
    (wrap("<obj>a</obj><box>[1,2,3]</box>x"), "bad_box", "<box>[1,2,3]</box>"),
    (
        wrap("<obj>a</obj><box>[1,2,3]</box>x"),
        "claim_without_box",
        "<obj>a</obj><box>[1,2,3]</box>",
    ),
    (wrap(f"<obj>a</obj> {B} ok"), "claim_without_time", f"<obj>a</obj> {B}"),
    (wrap("say <t>1e309</t>s"), "bad_number", "<t>1e309</t>"),
    (wrap(f"x {B}"), "box_without_object", B),
    (wrap("<obj>a</obj> at <t>1</t> s."), "claim_without_box", "<obj>a</obj> at <t>1</t> s"),
    ("  Sure!  " + wrap("x"), "text_outside_tags", "Sure!"),
    ("<think>x</think><answer>B", "unclosed_tag", "<answer>B"),
    ("<think>x</think><answ", "unclosed_tag", "<answ"),
    ("<think><think>x</think>", "nested_tag", "<think>"),
    (wrap("x</obj>"), "unbalanced_tag", "</obj>"),
    (wrap("<obj>a<t>1</t>"), "unclosed_tag", "<obj>a"),
    (wrap("x") + "<think>y</think>", "duplicate_section", "<think>"),
]


@pytest.mark.parametrize(("text", "kind", "covered"), SPANS)
def test_problem_spans(text: str, kind: str, covered: str) -> None:
    spans = [p.span for p in parse_trace(text).problems if p.kind == kind]
    assert [text[s:e] for s, e in spans] == [covered]


def test_missing_section_spans_are_empty_at_the_ends() -> None:
    tr = parse_trace("abc")
    assert {p.kind: p.span for p in tr.problems if p.kind.startswith("missing")} == {
        "missing_think": (0, 0),
        "missing_answer": (3, 3),
    }


def test_claim_and_time_spans() -> None:
    text = wrap(f"see <obj>a</obj>{B} at <t>1</t> s, then <t>2</t>s.")
    tr = parse_trace(text)
    s, e = tr.claims[0].span
    assert text[s:e] == f"<obj>a</obj>{B} at <t>1</t> s"
    assert [text[s:e] for s, e in tr.time_spans] == ["<t>2</t>s"]


def test_sections_and_section_times() -> None:
    text = (
        f"<think> a <t>1</t>s <obj>b</obj>{B}at<t>2</t>s <t>3</t>s </think>\n"
        "<answer> From <t>4</t>s to <t>5</t>s </answer>"
    )
    tr = parse_trace(text)
    assert tr.ok
    assert tr.think == f"a <t>1</t>s <obj>b</obj>{B}at<t>2</t>s <t>3</t>s"
    assert tr.answer == "From <t>4</t>s to <t>5</t>s"
    assert tr.times_s == (1.0, 3.0, 4.0, 5.0)
    assert tr.think_times_s == (1.0, 2.0, 3.0)
    assert tr.answer_times_s == (4.0, 5.0)
    assert tr.claims == (Claim("b", (BOX,), 2.0, tr.claims[0].span),)


def test_unclosed_sections_keep_their_text() -> None:
    tr = parse_trace("<think> x <answer> B <ans")
    assert (tr.think, tr.answer) == ("x", "B")
    assert parse_trace("<think>x").answer is None
    assert parse_trace("<answer>A</answer>").think_times_s == ()


def test_loose_boxes_are_kept() -> None:
    tr = parse_trace(wrap("<box>[1,2,3,4]</box> <box>[1,2]</box>", "<box>[5,6,7,8]</box>"))
    assert tr.loose_boxes == (BOX, (5.0, 6.0, 7.0, 8.0))
    assert tr.kinds == ("box_without_object",) * 2 + ("bad_box", "box_without_object")


# --- parse_span and the format_* writers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("From <t>2.5</t>s to <t>7</t>s", (2.5, 7.0)),
        ("<answer>from <t> 2 </t> s to\n<t>7.25</t></answer>", (2.0, 7.25)),
        ("From <t>8</t>s to <t>3</t>s", (8.0, 3.0)),
        ("From <t>1</t>s to <t>1e309</t>s", None),
        ("From <t>1</t>s", None),
        ("From 1s to 2s", None),
        ("", None),
    ],
)
def test_parse_span(text: str, expected: tuple[float, float] | None) -> None:
    assert parse_span(text) == expected


def test_format_examples() -> None:
    assert format_claim("woman", [(374, 67, 420, 224)], 9.2) == (
        "<obj>woman</obj><box>[374,67,420,224]</box>at<t>9.2</t>s"
    )
    assert format_claim(" a ", [(0.5, 1, 2, 3)], 10.0, decimals=1) == (
        "<obj>a</obj><box>[0.5,1,2,3]</box>at<t>10.0</t>s"
    )
    assert format_span(1.0, 2.5, decimals=2) == "From <t>1.00</t>s to <t>2.50</t>s"
    assert format_number(1e20) == "1e+20"
    assert format_time(1e-05) == "1e-05"


@pytest.mark.parametrize(
    ("name", "boxes", "t_s"),
    [
        ("", [BOX], 1.0),
        ("   ", [BOX], 1.0),
        ("a<b", [BOX], 1.0),
        ("</obj>", [BOX], 1.0),
        ("a", [], 1.0),
        ("a", [(1, 2, 3)], 1.0),
        ("a", [(1, 2, 3, float("inf"))], 1.0),
        ("a", [BOX], float("nan")),
    ],
)
def test_format_claim_rejects(name: str, boxes: list[tuple[float, ...]], t_s: float) -> None:
    with pytest.raises(ValueError):
        format_claim(name, boxes, t_s)


# --- properties -----------------------------------------------------------------------------------

FRAGMENTS = ["<think>", "</think>", "<answer>", "</answer>", "<obj>", "</obj>", "<box>", "</box>",
             "<t>", "</t>", "at", "s", " ", "\n", "[", "]", ",", "-", ".", "e", "1", "42", "9.5",
             "1e309", "狗", "<", ">", "/", "From ", " to "]  # fmt: skip
grammar_text = st.lists(st.sampled_from(FRAGMENTS), max_size=60).map("".join)


def check_invariants(text: str) -> None:
    tr = parse_trace(text)
    assert tr.text == text
    for p in tr.problems:
        assert 0 <= p.span[0] <= p.span[1] <= len(text)
    for c in tr.claims:
        assert 0 <= c.span[0] < c.span[1] <= len(text) and c.boxes
    assert len(tr.time_spans) == len(tr.times_s)
    assert [p.span for p in tr.problems] == sorted(p.span for p in tr.problems)
    parse_span(text)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), grammar_text, st.builds("".join, st.lists(st.text() | grammar_text))))
def test_parse_never_raises(text: str) -> None:
    check_invariants(text)


names = st.text(st.characters(categories=("L", "N", "Zs"), exclude_characters="<>"), min_size=1)
finite = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(10**6), 10**6)
box = st.tuples(finite, finite, finite, finite)


@settings(max_examples=300, deadline=None)
@given(names.filter(lambda s: s.strip()), st.lists(box, min_size=1, max_size=3), finite)
def test_format_parse_round_trip(name: str, boxes: list[tuple[float, ...]], t_s: float) -> None:
    tr = parse_trace("<think>" + format_claim(name, boxes, t_s) + "</think><answer>x</answer>")
    assert tr.problems == ()
    assert [(c.name, c.boxes, c.t_s) for c in tr.claims] == [(name.strip(), tuple(boxes), t_s)]


@given(finite, finite)
def test_span_round_trip(start_s: float, end_s: float) -> None:
    assert parse_span(format_span(start_s, end_s)) == (start_s, end_s)
    assert parse_trace(wrap("x", format_span(start_s, end_s))).answer_times_s == (start_s, end_s)


@pytest.mark.parametrize(
    "text",
    [
        "".join(random.Random(0).choices(FRAGMENTS, k=80_000)),
        "<t>" + "1" * 200_000 + "x</t>",
        "<box>[" + "1," * 100_000 + "</box>",
        "<obj>a</obj> " * 15_000 + "<think>" + " " * 50_000,
        "From <t>1</t>s" + " " * 200_000 + "<" * 1000,
        "<think>" * 30_000,
    ],
    ids=["fragments", "long_number", "long_box", "many_objs", "long_space", "many_thinks"],
)
def test_linear_time_on_long_garbage(text: str) -> None:
    assert len(text) >= 200_000
    t0 = time.process_time()  # CPU time: other processes' load does not count
    check_invariants(text)
    assert time.process_time() - t0 < 1.0

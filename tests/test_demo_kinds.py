"""benchmarks/demo_kinds.py: the per-task "right" rules and the on-object test of claims."""

from __future__ import annotations

from types import SimpleNamespace

from bench_scripts import load_benchmark


def test_each_task_is_judged_by_its_own_rule() -> None:
    dk = load_benchmark("demo_kinds")
    span = "From <t>1.0</t>s to <t>3.0</t>s"
    assert dk.is_right("temporal QA", span, [1.0, 2.5])  # tIoU 0.75
    assert dk.is_right("temporal QA", span, "[1.0, 2.5]")  # as the STGR file writes it
    assert not dk.is_right("temporal QA", span, [2.5, 6.0])  # tIoU 0.1
    assert not dk.is_right("temporal QA", "soon", [1.0, 2.5])
    assert dk.is_right("General video QA MCQ", "C", "C")
    assert not dk.is_right("General video QA MCQ", "A or C", "C")
    mcq = f"{span}.\nCorrect Option: B"  # the temporal MCQ's trained answer form
    assert dk.is_right("temporal QA (MCQ)", mcq, "B\n[1.0, 2.5]")
    assert not dk.is_right("temporal QA (MCQ)", mcq, "B\n[4.0, 5.0]")  # span off
    assert not dk.is_right("temporal QA (MCQ)", mcq, "A\n[1.0, 2.5]")  # letter off
    assert not dk.is_right("temporal QA (MCQ)", f"B\n{span}", "B\n[1.0, 2.5]")  # no marker
    assert dk.is_right("temporal-spatial free-form QA", "the red circle", "the red circle")
    assert not dk.is_right("temporal-spatial free-form QA", "the red square", "the red circle")
    assert not dk.is_right("General video QA Free-form", None, "yellow")


def test_a_claim_is_on_its_object_only_near_its_true_box() -> None:
    dk = load_benchmark("demo_kinds")
    gt = {
        "times_s": [0.0, 1.0],
        "objects": [
            {"name": "red circle", "frames": [{"idx": 0, "box_xyxy": [0, 0, 10, 10]},
                                              {"idx": 1, "box_xyxy": [50, 50, 60, 60]}]},
        ],
    }  # fmt: skip

    def ev(name: str, t: float | None, box: list[float]) -> SimpleNamespace:
        return SimpleNamespace(name=name, t_s=t, boxes_source=(tuple(box),))

    claims = [
        ev("red circle", 0.1, [0, 0, 10, 10]),  # on it (nearest frame 0)
        ev("red circle", 0.9, [0, 0, 10, 10]),  # frame 1: it has moved
        ev("blue square", 0.0, [0, 0, 10, 10]),  # no such object
        ev("red circle", None, [0, 0, 10, 10]),  # untimed: not counted
    ]
    assert dk.on_object(claims, gt) == [True, False, False]

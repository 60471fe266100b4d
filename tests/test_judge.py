"""The V-STaR What judge (SPEC §7): reply parsing, the on-disk cache, the exact-match judge."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from o3video.eval.judge import (
    JUDGE_SYSTEM,
    PROMPT_VERSION,
    ExactMatchJudge,
    Judge,
    JudgeItem,
    JudgeStats,
    LLMJudge,
    RatingCache,
    cache_key,
    judge_request,
    make_judge,
    normalize_answer_text,
    parse_judge_reply,
)
from o3video.models.base import Request, SamplingParams


@pytest.mark.parametrize(
    ("reply", "rating"),
    [
        ("0", 0),
        ("1", 1),
        ("2", 2),
        ("3", 3),
        ("3.", 3),
        (" 2\n", 2),
        ("Score: 2", 2),
        ("score = 1", 1),
        ("**Rating:** 3", 3),
        ("The rating is 0.", 0),
        ("2/3", 2),
        ("Score: 2/3", 2),
        ('{"score": 3}', 3),
        ('```json\n{"score": 1}\n```', 1),
        ('{"score": "2"}', 2),
        ('{"score": 2.0}', 2),
        ('{"rating": 0}', 0),
        ("On a scale of 0-3, I give it 2.", 2),  # the echoed scale is not the rating
        ("0 to 3: 1", 1),
        ("<think>maybe 0 or 1</think>3", 3),  # reasoning dropped
        ("The answer names 2 objects; score: 1", 1),  # a labelled score wins
        ("I'd say 4", -1),
        ("4", -1),
        ("10", -1),
        ("-1", -1),
        ("2.5", -1),
        ("3rd", -1),
        ('{"score": 5}', -1),
        ('{"score": true}', -1),
        ("Score: 7", -1),
        ("", -1),
        ("   ", -1),
        ("fully correct", -1),
        (None, -1),
    ],
)
def test_parse_judge_reply(reply: str | None, rating: int) -> None:
    assert parse_judge_reply(reply) == rating


class FakeBackend:
    """Replies with a fixed text per prediction; counts calls and requests, keeps params."""

    def __init__(self, replies: dict[str, str], name: str = "fake-judge") -> None:
        self.name = name
        self.replies = replies
        self.calls = 0
        self.requests: list[Request] = []
        self.params: list[SamplingParams] = []

    def generate(self, requests: Sequence[Request], params: SamplingParams) -> list[list[str]]:
        self.calls += 1
        self.requests += requests
        self.params.append(params)
        out = []
        for req in requests:
            text = req.messages[-1]["content"][0]["text"]
            pred = text.split("Predicted answer: ")[1].split("\n")[0]
            out.append([self.replies[pred]] * params.n)
        return out


REPLIES = {"a red circle": "3", "a square": "Score: 0", "a circle": '{"score": 2}', "??": "hmm"}
ITEMS = [
    JudgeItem("Which shape passes?", "the red circle", "a red circle"),
    JudgeItem("Which shape passes?", "the red circle", "a square"),
    JudgeItem("Which shape passes?", "the red circle", ""),
    JudgeItem("Which shape passes?", "the red circle", "a circle"),
    JudgeItem("Which shape passes?", "the red circle", "??"),
    JudgeItem("Which shape passes?", "the red circle", None),
    JudgeItem("Which shape passes?", "the red circle", "a red circle"),  # same as item 0
]
EXPECTED = [3, 0, None, 2, -1, None, 3]


def test_backend_protocol_and_request() -> None:
    fake = FakeBackend(REPLIES)
    judge = LLMJudge(fake)
    assert isinstance(judge, Judge)
    assert isinstance(ExactMatchJudge(), Judge)
    req = judge_request(ITEMS[0])
    assert req.messages[0] == {
        "role": "system",
        "content": [{"type": "text", "text": JUDGE_SYSTEM}],
    }
    user = req.messages[1]["content"][0]["text"]
    for part in ("Question: Which shape passes?", "Ground-truth answer: the red circle"):
        assert part in user
    assert "Predicted answer: a red circle" in user
    assert '{"score": <number>}' in user


def test_llm_judge_caches(tmp_path: Path) -> None:
    cache = tmp_path / "judge" / "cache.jsonl"
    fake = FakeBackend(REPLIES)
    judge = LLMJudge(fake, cache=cache, batch_size=2)
    assert judge.rate(ITEMS) == EXPECTED
    # 4 distinct predictions in batches of 2 → 2 calls; the duplicate shares a request.
    assert fake.calls == 2 and len(fake.requests) == 4
    assert judge.stats == JudgeStats(n=7, cached=0, called=5, unparsable=1, no_answer=2)
    # deterministic sampling: greedy, seeded, one completion
    assert all(p.temperature == 0 and p.seed == 0 and p.n == 1 for p in fake.params)
    lines = [json.loads(line) for line in cache.read_text().splitlines()]
    assert len(lines) == 4 and {e["rating"] for e in lines} == {3, 0, 2, -1}
    assert {e["raw"] for e in lines} == set(REPLIES.values())

    # the same judge again: all from its cache
    assert judge.rate(ITEMS) == EXPECTED and fake.calls == 2
    assert judge.stats == JudgeStats(n=14, cached=5, called=5, unparsable=2, no_answer=4)

    # a fresh judge over the same file: no call either
    fresh = FakeBackend(REPLIES)
    again = LLMJudge(fresh, cache=cache)
    assert again.rate(ITEMS) == EXPECTED
    assert fresh.calls == 0
    assert again.stats == JudgeStats(n=7, cached=5, called=0, unparsable=1, no_answer=2)


def test_cache_key_depends_on_judge_prompt_and_texts() -> None:
    item = ITEMS[0]
    key = cache_key("j", item)
    assert len(key) == 64 and key == cache_key("j", item, PROMPT_VERSION)
    assert key != cache_key("other", item)
    assert key != cache_key("j", item, "another-prompt")
    assert key != cache_key("j", JudgeItem(item.question, item.reference, "a red circle."))


def test_other_judge_name_misses_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache.jsonl"
    LLMJudge(FakeBackend(REPLIES, name="judge-a"), cache=cache).rate(ITEMS)
    other = FakeBackend(REPLIES, name="judge-b")
    assert LLMJudge(other, cache=cache).rate(ITEMS) == EXPECTED
    assert other.calls == 1


def test_truncated_last_line_is_tolerated(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "cache.jsonl"
    LLMJudge(FakeBackend(REPLIES), cache=cache).rate(ITEMS[:2])  # two entries written
    whole = cache.read_bytes()
    cache.write_bytes(whole + b'{"key": "abc", "rat')  # killed mid-write
    with caplog.at_level(logging.WARNING, logger="o3video.eval.judge"):
        reopened = RatingCache(cache)
    assert len(reopened) == 2
    assert "cut-off last line" in caplog.text
    assert cache.read_bytes() == whole  # the cut line removed, the file ends with a newline

    fake = FakeBackend(REPLIES)
    judge = LLMJudge(fake, cache=reopened)
    assert judge.rate(ITEMS) == EXPECTED
    assert len(fake.requests) == 2  # only the two not cached
    assert len(RatingCache(cache)) == 4  # appended lines are readable


def test_corrupt_middle_line_ignored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "cache.jsonl"
    good = {"key": "k1", "rating": 2, "raw": "2"}
    lines = [json.dumps(good), "not json", json.dumps({"key": "k2", "rating": 9, "raw": "9"})]
    cache.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="o3video.eval.judge"):
        loaded = RatingCache(cache)
    assert loaded.get("k1") == (2, "2") and loaded.get("k2") is None
    assert "line 2 is not a cache entry" in caplog.text
    assert "line 3 is not a cache entry" in caplog.text


def test_no_cache_calls_every_time() -> None:
    fake = FakeBackend(REPLIES)
    judge = LLMJudge(fake)
    judge.rate(ITEMS)
    judge.rate(ITEMS)
    assert fake.calls == 2


def test_backend_reply_count_checked() -> None:
    class Short(FakeBackend):
        def generate(self, requests: Sequence[Request], params: SamplingParams) -> list[list[str]]:
            return super().generate(requests, params)[:-1]

    with pytest.raises(ValueError, match="replies for"):
        LLMJudge(Short(REPLIES)).rate(ITEMS)


@pytest.mark.parametrize(
    ("text", "norm"),
    [
        ("The red circle", "red circle"),
        ("  a  Blue-Square! ", "blue square"),
        ("an orange triangle.", "orange triangle"),
        ("the", "the"),  # a lone article stays
        ("The the circle", "the circle"),  # one leading article only
    ],
)
def test_normalize_answer_text(text: str, norm: str) -> None:
    assert normalize_answer_text(text) == norm


@pytest.mark.parametrize(
    ("reference", "prediction", "rating"),
    [
        ("the red circle", "the red circle", 3),
        ("the red circle", "Red circle.", 3),
        ("the red circle", "A red circle", 3),
        ("the red circle", "The answer is the red circle.", 3),
        ("the red circle", "It's the RED CIRCLE!", 3),
        ("the red circle", "the red circle and the blue square", 3),  # documented: simple rule
        ("the red circle", "the blue circle", 0),
        ("the red circle", "the red circles", 0),  # whole words only
        ("the red circle", "red", 0),
        ("the red circle", "the red square", 0),
        ("the red circle", None, None),
        ("the red circle", "  ", None),
    ],
)
def test_exact_match_judge(reference: str, prediction: str | None, rating: int | None) -> None:
    judge = ExactMatchJudge()
    assert judge.rate([JudgeItem("Which shape?", reference, prediction)]) == [rating]


def test_exact_match_stats() -> None:
    judge = make_judge("exact")
    assert isinstance(judge, ExactMatchJudge)
    items = [
        JudgeItem("q", "the red circle", "red circle"),
        JudgeItem("q", "the red circle", "no"),
        JudgeItem("q", "the red circle", None),
    ]
    assert judge.rate(items) == [3, 0, None]
    assert judge.stats == JudgeStats(n=3, cached=0, called=2, unparsable=0, no_answer=1)


def test_make_judge_loads_backend(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, object] = {}

    def fake_load(name: str, backend: str = "hf", **options: object) -> FakeBackend:
        seen.update(name=name, backend=backend, options=options)
        return FakeBackend(REPLIES, name=f"{backend}:{name}")

    monkeypatch.setattr("o3video.models.load.load_backend", fake_load)
    judge = make_judge(
        "Qwen/Qwen2.5-72B-Instruct",
        backend="openai",
        cache=tmp_path / "c.jsonl",
        base_url="http://127.0.0.1:8000/v1",
    )
    assert isinstance(judge, LLMJudge)
    assert judge.name == "openai:Qwen/Qwen2.5-72B-Instruct"
    assert seen == {
        "name": "Qwen/Qwen2.5-72B-Instruct",
        "backend": "openai",
        "options": {"base_url": "http://127.0.0.1:8000/v1"},
    }
    assert judge.rate(ITEMS[:1]) == [3]
    assert (tmp_path / "c.jsonl").exists()

"""``model.fast_paths``: the training shortcuts compute what the stock modules compute."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from o3video.data.synthetic import synthesize  # noqa: E402
from o3video.train.config import load_config  # noqa: E402
from o3video.train.fastpaths import (  # noqa: E402
    PatchConv3d,
    _PaddingFree,
    _row_starts,
    apply_fast_paths,
    is_right_padded,
    padding_free_calls,
)


def test_is_right_padded() -> None:
    t = torch.tensor
    assert is_right_padded(t([[1, 1, 0], [1, 1, 1]]))
    assert is_right_padded(t([[True, False, False]]))
    assert not is_right_padded(t([[0, 1, 1], [1, 1, 1]]))  # left padding
    assert not is_right_padded(t([[1, 0, 1]]))  # a hole
    assert not is_right_padded(t([[1, 2, 0]]))  # not a 0/1 mask
    assert not is_right_padded(torch.ones(1, 1, 3, 3))  # a 4-D mask is left alone


def test_row_starts() -> None:
    t = torch.tensor
    assert _row_starts(t([[0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 1, 1]])).tolist() == [1, 0, 2]
    assert _row_starts(t([[0, 1, 0, 1]])) is None  # two runs
    assert _row_starts(t([[0, 0, 0]])) is None  # an empty row
    assert _row_starts(t([[0, 2, 2]])) is None  # not a 0/1 mask


def test_the_mask_is_dropped_only_where_it_changes_nothing() -> None:
    module = torch.nn.Linear(1, 1)
    module.config = SimpleNamespace(_attn_implementation="sdpa")  # type: ignore[assignment]

    def mask_after(kwargs: dict[str, Any]) -> Any:
        return _PaddingFree()._rewrite(module, (), kwargs)[0]["attention_mask"]

    right = torch.tensor([[1, 1, 0]])
    left = torch.tensor([[0, 1, 1]])
    module.train()
    hole = torch.tensor([[1, 0, 1]])
    ids = torch.tensor([[5, 6, 7]])
    assert mask_after({"attention_mask": right}) is None
    assert mask_after({"attention_mask": left, "input_ids": ids}) is None  # rolled
    assert mask_after({"attention_mask": hole, "input_ids": ids}) is hole
    assert mask_after({"attention_mask": right, "past_key_values": object()}) is right
    assert mask_after({"attention_mask": right, "cache": object()}) is right
    # Rolling would return a cache in the rolled order; other keywords may be per position.
    assert mask_after({"attention_mask": left, "input_ids": ids, "use_cache": True}) is left
    assert mask_after({"attention_mask": left, "input_ids": ids, "cu_seq_lens_q": 0}) is left
    module.eval()
    assert mask_after({"attention_mask": right, "use_cache": True}) is right
    assert mask_after({"attention_mask": right, "use_cache": False}) is None
    module.config._attn_implementation = "flash_attention_2"
    assert mask_after({"attention_mask": right, "use_cache": False}) is right


def test_patch_conv3d_equals_the_convolution_forward_and_backward() -> None:
    torch.manual_seed(0)
    for bias in (False, True):
        conv = torch.nn.Conv3d(3, 8, kernel_size=(2, 4, 4), stride=(2, 4, 4), bias=bias)
        fast = torch.nn.Conv3d(3, 8, kernel_size=(2, 4, 4), stride=(2, 4, 4), bias=bias)
        fast.load_state_dict(conv.state_dict())
        fast.__class__ = PatchConv3d
        x = torch.randn(5, 3, 2, 4, 4)
        for module in (conv, fast):
            module.zero_grad()
        a, b = conv(x), fast(x)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        (a.square().sum()).backward()
        (b.square().sum()).backward()
        torch.testing.assert_close(conv.weight.grad, fast.weight.grad, rtol=1e-5, atol=1e-5)
        # An input larger than one patch goes to the convolution itself.
        y = torch.randn(1, 3, 4, 8, 8)
        torch.testing.assert_close(conv(y), fast(y))
        assert list(fast.state_dict()) == list(conv.state_dict())


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    synthesize(out, 2, seed=0)
    return out


def _trainer(synth: Path, tiny: Path, out: Path, fast: bool) -> Any:
    from o3video.train.sft import build_sft_trainer

    cfg = load_config(
        None,
        [
            f"output_dir={out}",
            f"model.path={tiny}",
            f"data.stgr={synth / 'stgr_sft.json'}",
            "data.max_frames=2",
            "data.min_frames=2",
            "data.max_pixels=12544",
            "data.limit=6",
            "sft.per_device_train_batch_size=6",
            f"model.fast_paths={str(fast).lower()}",
        ],
        stage="sft",
    )
    return build_sft_trainer(cfg)


def _pad_left(batch: dict[str, Any], shifts: list[int]) -> dict[str, Any]:
    """The same rows with ``shifts[i]`` padding tokens before row ``i`` (and the rest after)."""
    fill = {"attention_mask": 0, "labels": -100}
    width = batch["input_ids"].shape[1] + max(shifts)
    out = dict(batch)
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.shape[:1] == batch["input_ids"].shape[:1] \
                and value.dim() == 2 and value.shape[1] == batch["input_ids"].shape[1]:  # fmt: skip
            new = value.new_full((value.shape[0], width), fill.get(key, 0))
            for i, k in enumerate(shifts):
                new[i, k : k + value.shape[1]] = value[i]
            out[key] = new
    return out


@pytest.mark.parametrize("padding", ["right", "both"])
def test_a_padded_batch_gives_the_stock_loss_and_gradients_without_a_mask(
    synth_dir: Path, tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, padding: str
) -> None:
    """SFT's right-padded batch runs unmasked; a batch padded on both sides (the RL loss's
    prompt and completion) is rolled so that each row starts at 0, and rolled back."""
    stock = _trainer(synth_dir, tiny_dir, tmp_path / "stock", fast=False)
    fast = _trainer(synth_dir, tiny_dir, tmp_path / "fast", fast=True)
    assert type(fast.model.model.visual.patch_embed.proj) is PatchConv3d
    assert type(stock.model.model.visual.patch_embed.proj) is torch.nn.Conv3d
    batch = next(iter(stock.get_train_dataloader()))
    lengths = batch["attention_mask"].sum(dim=1)
    assert is_right_padded(batch["attention_mask"]) and len(set(lengths.tolist())) > 1
    if padding == "both":
        batch = _pad_left(batch, [i % 3 + 1 for i in range(len(lengths))])
        assert not is_right_padded(batch["attention_mask"])
    real = batch["attention_mask"].bool()

    seen: list[tuple[int, bool]] = []  # (query length, given a mask) per attention call
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(q: Any, k: Any, v: Any, attn_mask: Any = None, *args: Any, **kwargs: Any) -> Any:
        seen.append((q.shape[-2], attn_mask is not None))
        return sdpa(q, k, v, attn_mask, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    results = []
    for trainer in (stock, fast):
        seen.clear()
        model = trainer.model
        model.train()
        model.zero_grad()
        out = model(**batch)
        out.loss.backward()
        text_calls = [masked for length, masked in seen if length == batch["input_ids"].shape[1]]
        grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        results.append((out.loss.detach(), out.logits.detach()[real], grads, text_calls))
    (loss0, logits0, grads0, masked0), (loss1, logits1, grads1, masked1) = results
    assert masked0 and all(masked0)  # stock: every language-model layer got the 4-D mask
    assert masked1 and not any(masked1)  # fast: plain causal attention
    calls = fast.model.model.language_model._o3video_padding_free.calls
    assert calls == {"unmasked" if padding == "right" else "rolled": 1}
    assert padding_free_calls(fast.model) == (
        "1 unmasked, 0 rolled, 0 kept" if padding == "right" else "0 unmasked, 1 rolled, 0 kept"
    )
    assert padding_free_calls(stock.model) is None
    torch.testing.assert_close(loss0, loss1, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits0, logits1, rtol=1e-4, atol=1e-5)
    assert grads0.keys() == grads1.keys()
    for name in grads0:
        torch.testing.assert_close(grads0[name], grads1[name], rtol=1e-4, atol=1e-6, msg=name)


def test_the_rl_trainer_gives_its_kl_reference_the_fast_paths_too(
    synth_dir: Path, tiny_dir: Path, tmp_path: Path
) -> None:
    from o3video.train.rl import build_rl_trainer

    cfg = load_config(
        None,
        [f"output_dir={tmp_path}", f"model.path={tiny_dir}",
         f"data.stgr={synth_dir / 'stgr_rl.json'}", "data.max_frames=2", "data.min_frames=2",
         "data.max_pixels=12544", "data.limit=4", "rl.beta=0.1"],
        stage="rl",
    )  # fmt: skip
    trainer = build_rl_trainer(cfg)
    for model in (trainer.model, trainer.ref_model):
        assert type(model.model.visual.patch_embed.proj) is PatchConv3d
        assert hasattr(model.model.language_model, "_o3video_padding_free")


def test_apply_fast_paths_reports_what_it_installed() -> None:
    assert apply_fast_paths(torch.nn.Linear(2, 2)) == []

"""Exact shortcuts for training a Qwen2-VL-family policy (``model.fast_paths``).

Two places where the stock modules do more work than the arithmetic needs, each replaced by
an equivalent computation (the same function of the same weights; only the order of the
floating-point sums may differ):

* **Padded batches need no attention mask.** A supervised batch is padded at the end of
  each row. Under a causal mask a real token attends only to tokens before it, all real, so
  the padding mask changes nothing a real token computes; it only makes transformers build a
  ``[batch, 1, length, length]`` mask and run scaled-dot-product attention with it, which on
  CPU cannot skip the masked half of each score matrix. When a forward of the language model
  without a cache gets a 2-D mask that is right-padded (ones, then zeros, in every row), the
  mask is dropped and attention runs as plain causal attention. A batch padded on both sides
  (RL's: the prompt padded on the left, the completion on the right) is first rolled, each
  row to start at 0 (its tokens, their embeddings and their position ids, whose values are
  kept), run the same way, and its output states rolled back. Position ids are computed
  before the language model from the mask, so they are unchanged. The outputs at padded
  positions differ, and nothing reads them (their labels are ignored, and no real position
  attends to them). A forward with a cache, or one asked to build one for the rolled case
  (``use_cache``), or with other keywords, keeps its mask; so does any attention other than
  ``sdpa`` (flash attention skips the padding by itself).
* **The patch embedding is a matrix product.** The vision tower embeds each patch with a
  ``Conv3d`` whose kernel equals its stride and the patch itself, i.e. one output position
  per patch: the same as a linear map of the flattened patch by the flattened kernel, which
  the CPU computes several times faster than the convolution (forward and backward). The
  module keeps its class's parameters and state-dict keys; only its ``forward`` changes.

``benchmarks/train_fastpaths.py`` measures both on the embedded model's SFT batches and
checks that the loss and the gradients agree with the stock modules.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PatchConv3d", "apply_fast_paths", "is_right_padded", "padding_free_calls"]


def is_right_padded(mask: torch.Tensor) -> bool:
    """Whether every row of a 2-D 0/1 ``mask`` is ones followed by zeros (all ones included)."""
    if mask.dim() != 2:
        return False
    if mask.dtype != torch.bool:
        if not bool(((mask == 0) | (mask == 1)).all()):
            return False
        mask = mask.bool()
    # Right-padded <=> no 1 follows a 0 <=> the running minimum equals the row itself.
    return bool((mask.cummin(dim=1).values == mask).all())


def _row_starts(mask: torch.Tensor) -> torch.Tensor | None:
    """Where each row's tokens start, if every row of a 2-D 0/1 ``mask`` holds one run of
    ones (``0…0 1…1 0…0``: padding on the left, the right, or both); else ``None``."""
    ones = mask.bool()
    count = ones.sum(dim=1)
    if bool((count == 0).any()) or not bool(((mask == 0) | (mask == 1)).all()):
        return None
    starts = ones.int().argmax(dim=1)
    column = torch.arange(mask.shape[1], device=mask.device)[None]
    run = (column >= starts[:, None]) & (column < (starts + count)[:, None])
    return starts if bool((run == ones).all()) else None


# The keywords a language-model forward may carry for its inputs to be rolled safely: any other
# (flash-attention lengths, requests for every layer's states) leaves the call as it is.
_ROLLABLE = {"input_ids", "inputs_embeds", "attention_mask", "position_ids", "use_cache",
             "cache", "past_key_values", "return_dict"}  # fmt: skip


class _PaddingFree:
    """Forward hooks on a language model: the padding mask dropped where it is not needed."""

    def __init__(self) -> None:
        self.pending: list[torch.Tensor | None] = []  # per call: the un-roll index, or None
        # Calls per outcome: "unmasked" (right-padded), "rolled" (padded on the left too),
        # "kept" (the stock path: a cache, other padding, other keywords).
        self.calls: Counter[str] = Counter()

    def before(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        new, index = self._rewrite(module, args, kwargs)
        self.calls["rolled" if index is not None else "kept" if new is kwargs else "unmasked"] += 1
        self.pending.append(index)
        kwargs = new
        return args, kwargs

    def after(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> Any:
        index = self.pending.pop()
        if index is None or output is None:  # not rolled, or the forward raised
            return output
        hidden = output.last_hidden_state
        output.last_hidden_state = hidden.gather(
            1, index[..., None].expand(-1, -1, hidden.shape[-1])
        )
        return output

    def _rewrite(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[dict[str, Any], torch.Tensor | None]:
        mask = kwargs.get("attention_mask")
        if args or not isinstance(mask, torch.Tensor) or mask.dim() != 2:
            return kwargs, None
        config = getattr(module, "config", None)
        if getattr(config, "_attn_implementation", None) != "sdpa":
            return kwargs, None  # flash attention skips padding itself; eager gains nothing
        if kwargs.get("past_key_values") is not None or kwargs.get("cache") is not None:
            return kwargs, None
        use_cache = bool(kwargs.get("use_cache"))
        if is_right_padded(mask):
            if module.training or not use_cache:
                kwargs = dict(kwargs, attention_mask=None)
            return kwargs, None
        if (
            use_cache
            or not set(kwargs) <= _ROLLABLE
            or getattr(config, "output_attentions", False)
            or getattr(config, "output_hidden_states", False)
        ):
            return kwargs, None
        starts = _row_starts(mask)
        if starts is None:
            return kwargs, None
        return self._roll(kwargs, mask, starts)

    @staticmethod
    def _roll(
        kwargs: dict[str, Any], mask: torch.Tensor, starts: torch.Tensor
    ) -> tuple[dict[str, Any], torch.Tensor]:
        # Each row rotated left by its start: its tokens first, all padding after them.
        batch, length = mask.shape
        column = torch.arange(length, device=mask.device)[None]
        forward = (column + starts[:, None]) % length  # rolled[i, j] = original[i, forward[i, j]]
        back = (column - starts[:, None]) % length  # original[i, j] = rolled[i, back[i, j]]
        out = dict(kwargs, attention_mask=None)
        if (embeds := kwargs.get("inputs_embeds")) is not None:
            out["inputs_embeds"] = embeds.gather(
                1, forward[..., None].expand(-1, -1, embeds.shape[-1])
            )
        else:
            out["input_ids"] = kwargs["input_ids"].gather(1, forward)
        positions = kwargs.get("position_ids")
        if positions is None:  # the stock positions count the padding: keep their values
            positions = column.expand(batch, -1)
        if positions.dim() == 2:
            out["position_ids"] = positions.gather(1, forward)
        else:  # (3 or 4, batch, length): multimodal rotary positions
            out["position_ids"] = positions.gather(
                2, forward[None].expand(positions.shape[0], -1, -1)
            )
        return out, back


class PatchConv3d(nn.Conv3d):
    """A ``Conv3d`` that computes a patch-sized, patch-strided convolution as ``F.linear``
    (any other input goes to the convolution)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if (
            input.dim() == 5
            and tuple(input.shape[2:]) == tuple(self.kernel_size)
            and tuple(self.stride) == tuple(self.kernel_size)
            and self.groups == 1
            and (self.padding == "valid" or all(p == 0 for p in self.padding))
            and all(d == 1 for d in self.dilation)
        ):
            n = input.shape[0]
            out = F.linear(
                input.reshape(n, -1), self.weight.reshape(self.out_channels, -1), self.bias
            )
            return out.view(n, self.out_channels, 1, 1, 1)
        return super().forward(input)


def apply_fast_paths(policy: nn.Module) -> list[str]:
    """Install the shortcuts on ``policy`` where its modules have the expected shape.

    Returns what was installed (``"padding-free-attention"``, ``"patch-linear"``), for the
    log. The language model is found as ``policy.model.language_model`` (transformers 5's
    layout for Qwen2-VL, Qwen2.5-VL and Qwen3-VL); the patch embedding as any module with a
    ``proj`` ``Conv3d`` whose stride equals its kernel. The language model's hooks keep the
    count of their calls per outcome in ``language_model._o3video_padding_free.calls``."""
    installed: list[str] = []
    language_model = getattr(getattr(policy, "model", None), "language_model", None)
    if isinstance(language_model, nn.Module):
        hooks = _PaddingFree()
        language_model._o3video_padding_free = hooks  # type: ignore[assignment]
        language_model.register_forward_pre_hook(hooks.before, with_kwargs=True)
        language_model.register_forward_hook(hooks.after, with_kwargs=True, always_call=True)
        installed.append("padding-free-attention")
    patched = False
    for module in policy.modules():
        proj = getattr(module, "proj", None)
        if (
            type(proj) is nn.Conv3d
            and tuple(proj.stride) == tuple(proj.kernel_size)
            and proj.groups == 1
        ):
            proj.__class__ = PatchConv3d
            patched = True
    if patched:
        installed.append("patch-linear")
    return installed


def padding_free_calls(policy: nn.Module) -> str | None:
    """``"N unmasked, N rolled, N kept"``: the language model's forwards so far per outcome,
    or None where the fast paths are not installed (found through any wrapper's modules)."""
    for module in policy.modules():
        hooks = getattr(module, "_o3video_padding_free", None)
        if isinstance(hooks, _PaddingFree):
            return ", ".join(f"{hooks.calls[k]} {k}" for k in ("unmasked", "rolled", "kept"))
    return None

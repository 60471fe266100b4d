"""Seconds per SFT step of the embedded model's recipe with and without ``model.fast_paths``
(CPU), and the loss and gradients of both on the same batches.

    python benchmarks/train_fastpaths.py [--steps 3] [--threads 2] [--model DIR]

One policy (``--model``, default the kept SFT stage ``benchmarks/embedded-sft112-long``) and
the recipe ``recipes/synthetic-tiny-embedded-sft112.yaml`` (16 examples a batch, 12 frames of
112x112) on a few worlds made here; the same batches go through four variants of the same
weights, interleaved batch by batch so that the machine's drift falls on all alike:

    stock        the transformers modules as they are
    mask         right-padded batches without the attention mask (causal attention only)
    patch        the patch embedding as a matrix product
    both         what ``model.fast_paths: true`` (the default) trains with

Each step is the trainer's loss on the whole batch and its backward
(``trainer.compute_loss(model, batch).backward()``: the trainer's step without the
optimizer). Prints the median seconds per variant,
its ratio to ``stock``, and for ``both`` the largest relative difference of the loss and of
any parameter's gradient from ``stock``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from o3video.train.config import load_config
from o3video.train.fastpaths import PatchConv3d, _PaddingFree
from o3video.train.sft import build_sft_trainer

ROOT = Path(__file__).resolve().parents[1]


class Variant:
    """Installs and removes the shortcuts on one model."""

    def __init__(self, model: Any) -> None:
        self.lm = model.model.language_model
        self.proj = model.model.visual.patch_embed.proj
        self.handles: list[Any] = []

    def set(self, mask: bool, patch: bool) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        if mask:
            hooks = _PaddingFree()
            self.handles = [
                self.lm.register_forward_pre_hook(hooks.before, with_kwargs=True),
                self.lm.register_forward_hook(hooks.after, with_kwargs=True, always_call=True),
            ]
        self.proj.__class__ = PatchConv3d if patch else torch.nn.Conv3d


def step(
    trainer: Any, model: Any, batch: dict[str, Any]
) -> tuple[float, float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    loss = trainer.compute_loss(model, batch)
    loss.backward()
    seconds = time.perf_counter() - t0
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return seconds, float(loss.detach()), grads


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=3, help="batches timed per variant")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", default=str(ROOT / "benchmarks" / "embedded-sft112-long"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(
            ROOT / "recipes" / "synthetic-tiny-embedded-sft112.yaml",
            [f"output_dir={tmp}", f"model.path={args.model}", "data.synth.n=6",
             "data.synth.seed=99", "model.fast_paths=false"],
            stage="sft",
        )  # fmt: skip
        trainer = build_sft_trainer(cfg)
        model = trainer.model
        model.train()
        loader = iter(trainer.get_train_dataloader())
        batches = [next(loader) for _ in range(args.steps + 1)]  # the first one warms up
        variant = Variant(model)
        names = {"stock": (False, False), "mask": (True, False), "patch": (False, True),
                 "both": (True, True)}  # fmt: skip
        seconds: dict[str, list[float]] = {name: [] for name in names}
        loss_diff = grad_diff = 0.0
        for i, batch in enumerate(batches):
            out = {}
            for name, (mask, patch) in names.items():
                variant.set(mask, patch)
                out[name] = step(trainer, model, batch)
                if i:
                    seconds[name].append(out[name][0])
            _, loss0, grads0 = out["stock"]
            _, loss1, grads1 = out["both"]
            loss_diff = max(loss_diff, abs(loss1 - loss0) / abs(loss0))
            for key, g in grads0.items():
                scale = float(g.abs().max()) or 1.0
                grad_diff = max(grad_diff, float((grads1[key] - g).abs().max()) / scale)
            tokens = int(batch["attention_mask"].sum())
            print(f"batch {i}{' (warm-up)' if not i else ''}: {tuple(batch['input_ids'].shape)}, "
                  f"{tokens} tokens, " + ", ".join(f"{n} {o[0]:.2f} s" for n, o in out.items()),
                  flush=True)  # fmt: skip
    stock = statistics.median(seconds["stock"])
    print(f"\n{args.threads} threads, {args.steps} batches of 16 examples, median s/step:")
    for name, values in seconds.items():
        med = statistics.median(values)
        print(f"  {name:6s} {med:6.2f} s   {stock / med:4.2f}x stock")
    print(f"both vs stock: loss rel. diff {loss_diff:.1e}, "
          f"largest gradient rel. diff {grad_diff:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()

"""Does a model look at the pixels? Its SFT loss with its own images vs other records' images.

For a checkpoint and a recipe (its ``data`` section decides the records, frames and pixels),
builds the SFT rows exactly as training does (the recipe's ``ExampleSource`` and TRL's
collator), and computes the completion loss of the first ``--n`` rows twice per batch: with
each row's own images, and with the images rolled by one row inside the batch (every row gets
another record's frames; shapes must match, so use a recipe whose frames all have one size).
It prints, overall and for the digit tokens alone (box coordinates, times):

- ``loss_real`` / ``loss_shuffled``: mean cross-entropy per completion token;
- ``gain``: ``loss_shuffled - loss_real``. About 0 means the model's text does not depend
  on the image at all, whatever its format looks like.

A model that has learned to ground has a large digit gain; one that writes a plausible
constant box has none. Held-out data: pass ``data.synth.seed=1`` (the corpus is synthesized
into ``--work``).

    .venv/bin/python benchmarks/image_dependence.py runs/embedded-stage0/final \\
        --recipe recipes/synthetic-tiny-stage0.yaml data.synth.seed=1 --n 128
"""

from __future__ import annotations

import argparse
import json
import tempfile
from typing import Any


def measure(model_dir: str, recipe: str, overrides: list[str], n: int, batch: int,
            work: str) -> dict[str, Any]:  # fmt: skip
    """The losses of the module docstring for the first ``n`` SFT rows of ``recipe``."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    from o3video.train.config import load_config
    from o3video.train.dataset import sft_dataset, source_from_config

    config = load_config(recipe, [*overrides, f"output_dir={work}"], stage="sft")
    rows = sft_dataset(source_from_config(config.data, work, stage="sft"))
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32).eval()
    collate = DataCollatorForVisionLanguageModeling(processor, completion_only_loss=True)
    tok = processor.tokenizer
    digit = torch.tensor(
        [(t or "").lstrip("Ġ").isdigit() for t in tok.convert_ids_to_tokens(range(len(tok)))]
    )
    sums = {k: 0.0 for k in ("real", "shuffled", "real_digits", "shuffled_digits")}
    counts = {"all": 0, "digits": 0}
    n = min(n, len(rows))
    for start in range(0, n - 1, batch):
        chunk = [rows[i] for i in range(start, min(start + batch, n))]
        if len(chunk) < 2:
            break
        b = collate(chunk)
        labels = b.pop("labels")[:, 1:]
        mask = labels != -100
        dmask = mask & digit[labels.clamp(min=0)]
        sizes = (b["image_grid_thw"].prod(-1)).tolist()
        per_row = len(sizes) // len(chunk)
        if len(set(sizes)) != 1:
            raise SystemExit("image_dependence: the recipe's frames differ in size; cannot roll")
        for name, pixels in (
            ("real", b["pixel_values"]),
            ("shuffled", torch.roll(b["pixel_values"], per_row * sizes[0], 0)),
        ):
            with torch.no_grad():
                logits = model(**{**b, "pixel_values": pixels}).logits[:, :-1]
            ce = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), labels.reshape(-1), ignore_index=-100,
                reduction="none",
            ).view(labels.shape)  # fmt: skip
            sums[name] += ce[mask].sum().item()
            sums[f"{name}_digits"] += ce[dmask].sum().item()
        counts["all"] += int(mask.sum())
        counts["digits"] += int(dmask.sum())
    out: dict[str, Any] = {"model": model_dir, "rows": n, "tokens": counts["all"],
                           "digit_tokens": counts["digits"]}  # fmt: skip
    for part, key in (("", "all"), ("_digits", "digits")):
        real = sums[f"real{part}"] / max(counts[key], 1)
        shuffled = sums[f"shuffled{part}"] / max(counts[key], 1)
        out[f"loss_real{part}"] = round(real, 4)
        out[f"loss_shuffled{part}"] = round(shuffled, 4)
        out[f"gain{part}"] = round(shuffled - real, 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="checkpoint folder")
    parser.add_argument("--recipe", required=True, help="recipe YAML whose data to use")
    parser.add_argument("overrides", nargs="*", help="recipe overrides, e.g. data.synth.seed=1")
    parser.add_argument("--n", type=int, default=128, help="rows to score")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--work", default=None, help="folder for synthesized data (temp)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or tmp
        result = measure(args.model, str(args.recipe), args.overrides, args.n, args.batch, work)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

"""The embedded default model: a tiny grounded-video model shipped inside the package.

It is trained by the project's own recipes on the synthetic world (SFT, then GSPO) and
installed with the package as data, under ``o3video/embedded/model/``: weights, processor,
and its card ``o3video.json`` (frame budget, recipe, seeds, commit, training time, scores;
:mod:`o3video.models.card`). ``o3video demo`` runs it; nothing is downloaded.

A source tree or an install without the weights (the checkpoint is not trained yet, or was
left out) raises :class:`EmbeddedModelMissing`, which says how to get a model.
"""

from __future__ import annotations

from pathlib import Path

from o3video.errors import O3VideoError

MODEL_DIR = Path(__file__).resolve().parent / "model"
"""Where the embedded checkpoint lives inside the installed package."""

WEIGHTS = ("model.safetensors",)


class EmbeddedModelMissing(O3VideoError):
    """The package holds no embedded checkpoint."""


def embedded_model_dir() -> Path:
    """The embedded checkpoint's folder; :class:`EmbeddedModelMissing` when it is absent."""
    if not all((MODEL_DIR / name).is_file() for name in (*WEIGHTS, "config.json")):
        raise EmbeddedModelMissing(
            f"this o3video has no embedded model ({MODEL_DIR} holds no checkpoint). "
            "Pass --model with a checkpoint folder, or build the embedded model with "
            "'python scripts/build_embedded.py --out runs/embedded --install' (the recipes "
            "recipes/synthetic-tiny-embedded-{ground-sft,sft,gspo}.yaml; hours on 2 CPU cores)"
        )
    return MODEL_DIR

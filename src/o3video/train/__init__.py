"""Training: SFT cold start and GSPO/GRPO on TRL (SPEC §6).

- :mod:`o3video.train.config`: the run config (defaults → YAML → overrides) and its saving.
- :mod:`o3video.train.dataset`: STGR records → TRL datasets, frames decoded once.
- :mod:`o3video.train.sft`: :func:`run_sft` (TRL ``SFTTrainer``, loss on the answer only).
- :mod:`o3video.train.rl`: :func:`run_rl` (TRL ``GRPOTrainer``, sequence-level ratio = GSPO).

Heavy imports (torch, transformers, trl) happen inside the functions.
"""

from o3video.train.config import ConfigError, RunConfig, load_config, save_resolved

__all__ = ["ConfigError", "RunConfig", "load_config", "save_resolved"]

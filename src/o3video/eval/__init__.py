"""Benchmark evaluation (SPEC §7): V-STaR scoring first (:mod:`o3video.eval.vstar_score`)."""

from o3video.eval.vstar_score import ScoreConfig, VStarScores, score_vstar, score_vstar_files

__all__ = ["ScoreConfig", "VStarScores", "score_vstar", "score_vstar_files"]

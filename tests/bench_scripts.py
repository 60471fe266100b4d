"""Import a script of ``benchmarks/`` or ``scripts/`` (not packages) as a module, for its tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark(name: str, folder: str = "benchmarks") -> ModuleType:
    """``<folder>/<name>.py`` loaded as module ``name`` (registered in ``sys.modules``, so
    its dataclasses resolve their own module)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / folder / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

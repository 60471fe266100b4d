"""Headless Chromium for the ``browser`` tests: Debian's ``/usr/bin/chromium`` driven by
Playwright (never ``playwright install``: the system browser is used).

A missing browser or package skips the test with the reason, except in CI (``CI`` set), where
``scripts/test.sh`` installs both and a missing one is a failure.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def missing() -> str | None:
    """Why the browser tests cannot run here, or ``None``."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install -y chromium)"
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is missing (pip install playwright)"
    return None


def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A Playwright browser context (1200×900) with a fresh profile; for a fixture to yield
    from. Skips (fails in CI) when the browser cannot run."""
    why = missing()
    if why and os.environ.get("CI"):
        pytest.fail(f"CI must run the browser tests, but {why}")
    if why:
        pytest.skip(why)
    from playwright import sync_api

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1200, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()

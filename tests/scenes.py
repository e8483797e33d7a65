"""Where the real PAN/MS sample scenes live, for tests that read them in place."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCENES_DIR = REPO_ROOT.parent / "shared" / "data" / "scenes"


def real_scene(name: str) -> Path:
    """One real scene folder by name, skipping the test when it is absent."""
    path = SCENES_DIR / name
    if not (path / "scene.json").is_file():
        pytest.skip(f"real sample scene {name} not found at {path}")
    return path

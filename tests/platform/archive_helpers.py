"""Helpers shared by the archive tests: small archives linked from the real sample scenes."""

from __future__ import annotations

from pathlib import Path

import pytest

SCENES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "scenes"
L8 = "landsat8_LC80200392015216LGN00"


def real(name: str) -> Path:
    """A real sample scene folder; skips the test when the samples are absent."""
    path = SCENES / name
    if not path.is_dir():
        pytest.skip(f"real sample scene {name} not found at {path}")
    return path


def link_scene(name: str, dest: Path, skip: tuple[str, ...] = ()) -> Path:
    """A scene folder under ``dest`` whose files are symlinks to a real scene (no copying)."""
    src = real(name)
    dest.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name not in skip:
            (dest / f.name).symlink_to(f)
    return dest

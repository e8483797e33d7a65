"""Helpers shared by the archive tests: small archives linked from the real sample scenes."""

from __future__ import annotations

from pathlib import Path

from scenes import SCENES_DIR as SCENES  # noqa: F401  (re-exported for the archive tests)
from scenes import real_scene as real

L8 = "landsat8_LC80200392015216LGN00"


def link_scene(name: str, dest: Path, skip: tuple[str, ...] = ()) -> Path:
    """A scene folder under ``dest`` whose files are symlinks to a real scene (no copying)."""
    src = real(name)
    dest.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.name not in skip:
            (dest / f.name).symlink_to(f)
    return dest

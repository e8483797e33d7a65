"""What the archive code knows about Landsat deliveries: MTL files, band files, QA bits.

Landsat ships one GeoTIFF per band plus a ``*_MTL.txt`` metadata file. PAN is
band 8 (15 m); the MS bands used for pansharpening are chosen from the 30 m
reflective bands (by default the four VNIR bands for Landsat-8/9 and the six
reflective bands for Landsat-7, matching the sensor table in
``crossdiff.models.sensors``). Cloud and fill flags live in the quality band,
whose bit layout changed between product generations:

* pre-collection ``BQA`` (e.g. ``LC8...LGN00``, LPGS 2.x): bit 0 designated
  fill; bits 14-15 cloud confidence, 3 = high;
* Collection 1 ``BQA``: bit 0 fill, bit 4 cloud;
* Collection 2 ``QA_PIXEL``: bit 0 fill, bit 1 dilated cloud, bit 3 cloud.

Only high-confidence cloud is masked: the pre-collection cirrus flag (bits
12-13) marks a third of typical scenes and is left alone.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import numpy as np

# Band number -> name, per mission (names follow the sensor table's convention).
BAND_NAMES: dict[str, dict[int, str]] = {
    "LANDSAT_7": {1: "blue", 2: "green", 3: "red", 4: "nir", 5: "swir1", 7: "swir2", 8: "pan"},
    "LANDSAT_8": {1: "coastal", 2: "blue", 3: "green", 4: "red", 5: "nir", 6: "swir1", 7: "swir2",
                  8: "pan", 9: "cirrus"},
}
BAND_NAMES["LANDSAT_9"] = BAND_NAMES["LANDSAT_8"]
DEFAULT_MS_BANDS: dict[str, tuple[int, ...]] = {
    "LANDSAT_7": (1, 2, 3, 4, 5, 7),
    "LANDSAT_8": (2, 3, 4, 5),
    "LANDSAT_9": (2, 3, 4, 5),
}
SENSOR_NAMES = {"LANDSAT_7": "Landsat-7", "LANDSAT_8": "Landsat-8", "LANDSAT_9": "Landsat-9"}
BITS = {"LANDSAT_7": 8, "LANDSAT_8": 16, "LANDSAT_9": 16}

# Masks of "invalid" bits per QA generation: (fill mask, cloud test).
MASK_KINDS = ("landsat_bqa_pre", "landsat_bqa_c1", "landsat_qa_pixel", "binary")

_BAND_FILE = re.compile(r"_B(\d{1,2})\.tiff?$", re.IGNORECASE)
_QA_FILE = re.compile(r"_(BQA|QA_PIXEL)\.tiff?$", re.IGNORECASE)
_MTL_LINE = re.compile(r'^\s*([A-Z0-9_]+)\s*=\s*"?([^"]*?)"?\s*$')
# MTL keys worth carrying into the manifest's scene metadata.
MTL_KEYS = ("LANDSAT_SCENE_ID", "LANDSAT_PRODUCT_ID", "SPACECRAFT_ID", "SENSOR_ID", "DATE_ACQUIRED",
            "SCENE_CENTER_TIME", "WRS_PATH", "WRS_ROW", "CLOUD_COVER", "CLOUD_COVER_LAND", "SUN_AZIMUTH",
            "SUN_ELEVATION", "COLLECTION_NUMBER", "DATA_TYPE", "PROCESSING_LEVEL", "UTM_ZONE")


def parse_mtl(text: str) -> dict[str, str]:
    """Flatten an MTL file (``GROUP = ...`` blocks of ``KEY = value``) into one dict.

    Keys are unique across groups in every MTL generation, so the groups are dropped.

    Raises:
        ValueError: the text has no ``SPACECRAFT_ID`` (not an MTL file).
    """
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _MTL_LINE.match(line)
        if m and m.group(1) not in ("GROUP", "END_GROUP"):
            out.setdefault(m.group(1), m.group(2))
    if "SPACECRAFT_ID" not in out:
        raise ValueError("not a Landsat MTL file: no SPACECRAFT_ID")
    return out


def mtl_summary(mtl: dict[str, str]) -> dict[str, Any]:
    """The MTL keys kept in the scene metadata, numbers parsed."""
    out: dict[str, Any] = {}
    for key in MTL_KEYS:
        if key in mtl:
            value: Any = mtl[key]
            with contextlib.suppress(ValueError):
                value = float(value) if "." in value else int(value)
            out[key] = value
    return out


def band_number(name: str) -> int | None:
    """``"LC8..._B8.TIF"`` -> 8; None for a file that is not a numbered band."""
    m = _BAND_FILE.search(name)
    return int(m.group(1)) if m else None


def is_mtl(name: str) -> bool:
    return name.upper().endswith("_MTL.TXT")


def is_qa(name: str) -> bool:
    return bool(_QA_FILE.search(name))


def qa_kind(qa_name: str, mtl: dict[str, str] | None) -> str:
    """Which bit layout a quality band uses, from its name and the MTL's collection number."""
    if qa_name.upper().split(".")[0].endswith("QA_PIXEL"):
        return "landsat_qa_pixel"
    collection = (mtl or {}).get("COLLECTION_NUMBER", "").lstrip("0")
    if collection == "1":
        return "landsat_bqa_c1"
    if collection == "2":
        return "landsat_qa_pixel"
    return "landsat_bqa_pre"


def invalid_from_qa(qa: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode a quality band into (fill, cloud) boolean masks.

    Args:
        qa: the quality band's integer values.
        kind: one of :data:`MASK_KINDS`; ``"binary"`` means any non-zero value is cloud.
    """
    qa = qa.astype(np.uint32, copy=False)
    if kind == "binary":
        return np.zeros(qa.shape, bool), qa != 0
    fill = (qa & 1) != 0
    if kind == "landsat_bqa_pre":
        cloud = ((qa >> 14) & 3) == 3
    elif kind == "landsat_bqa_c1":
        cloud = (qa & (1 << 4)) != 0
    elif kind == "landsat_qa_pixel":
        cloud = (qa & ((1 << 1) | (1 << 3))) != 0
    else:
        raise ValueError(f"unknown mask kind {kind!r}; known: {MASK_KINDS}")
    return fill, cloud & ~fill


def mission(mtl: dict[str, str]) -> str:
    """``SPACECRAFT_ID`` checked against the missions this module knows."""
    sc = mtl.get("SPACECRAFT_ID", "").upper()
    if sc not in BAND_NAMES:
        raise ValueError(f"Landsat mission {sc!r} has no PAN band or is not supported; "
                         f"supported: {sorted(BAND_NAMES)}")
    return sc


def mission_from_sensor(sensor: str) -> str | None:
    """``"Landsat8-OLI"`` -> ``"LANDSAT_8"``; None when the name is not a Landsat one."""
    m = re.search(r"landsat\D*([789])", sensor, re.IGNORECASE)
    return f"LANDSAT_{m.group(1)}" if m else None

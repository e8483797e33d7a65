"""Finding PAN/MS scenes in an archive folder or ``s3://bucket/prefix``.

Discovery lists the archive once (one recursive listing on S3), groups files
by folder and recognises three layouts:

``scene_folder``
    a folder with ``scene.json`` (sensor, bits, ratio, bands, ...) beside
    ``pan.tif`` and ``ms.tif``; ``scene.json`` may name other files with
    ``"pan"`` / ``"ms"`` and a cloud mask with ``"cloud_mask"`` (non-zero = cloud).
``band_files``
    one GeoTIFF per band: ``scene.json`` whose ``"ms"`` is a list of files, or
    a Landsat delivery found by its ``*_MTL.txt`` (PAN = B8, MS = the chosen
    bands, ``*_BQA``/``*_QA_PIXEL`` as the cloud mask). The MTL is read for
    metadata whenever it is present.
``stac_item``
    any other ``*.json`` that is a STAC-like item (see :mod:`.stac`).

Discovery reads only listings and small text files, never rasters. Problems
it can already see (malformed ``scene.json``, a named file that is not there,
rasters that belong to no scene, no credentials) become quarantine rows;
everything else is checked later by :mod:`.validate`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import posixpath
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from crossdiff.platform.archive import landsat, stac
from crossdiff.platform.archive.filesystems import (
    MissingCredentialsError,
    StorageOptions,
    list_files,
    normalize_uri,
    parent_uri,
    read_text,
    read_texts,
    relative_uri,
    resolve_href,
)
from crossdiff.platform.archive.manifest import Quarantine

LAYOUTS = ("scene_folder", "band_files", "stac_item")
_RASTER_EXT = (".tif", ".tiff")


@dataclasses.dataclass(frozen=True)
class SceneRef:
    """Where one scene's files are and what its metadata declares (nothing read yet).

    Attributes:
        scene_id: stable key: the folder path relative to the archive root, or the STAC item id.
        layout: one of :data:`LAYOUTS`.
        source_uri: the scene.json, MTL or item this came from.
        pan_uri: the PAN raster.
        ms_uris: one multi-band MS raster, or one raster per MS band in band order.
        band_names: MS band names when declared (else the sensor's).
        mask_uri: a cloud/quality raster, or None.
        mask_kind: how to decode ``mask_uri`` (see :mod:`.landsat`).
        metadata: ``sensor`` (required), ``bits``, ``ratio``, ``dtype``,
            ``acquired`` (None when not declared) and ``extra`` (everything else).
    """

    scene_id: str
    layout: str
    source_uri: str
    pan_uri: str
    ms_uris: tuple[str, ...]
    band_names: tuple[str, ...] | None = None
    mask_uri: str | None = None
    mask_kind: str | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict, hash=False)

    @property
    def uris(self) -> tuple[str, ...]:
        return (self.pan_uri, *self.ms_uris, *((self.mask_uri,) if self.mask_uri else ()))


@dataclasses.dataclass
class Discovery:
    """Scenes found under ``root`` and the problems met on the way."""

    root: str
    scenes: list[SceneRef]
    problems: list[Quarantine]


def _basename(uri: str) -> str:
    return posixpath.basename(uri.rstrip("/"))


def _scene_id(root: str, folder: str) -> str:
    rel = relative_uri(root, folder)
    return _basename(root) if rel == "." else rel


Reader = Callable[[str], str]


def _landsat_extras(folder: str, names: dict[str, str], read: Reader
                    ) -> tuple[dict[str, str] | None, str | None, str | None, str | None]:
    """(MTL dict, MTL uri, QA uri, QA kind) for a folder, Nones when absent."""
    mtl_uri = next((u for n, u in names.items() if landsat.is_mtl(n)), None)
    mtl = landsat.parse_mtl(read(mtl_uri)) if mtl_uri else None
    qa_name = next((n for n in names if landsat.is_qa(n)), None)
    qa_uri = names[qa_name] if qa_name else None
    return mtl, mtl_uri, qa_uri, (landsat.qa_kind(qa_name, mtl) if qa_name else None)


def _band_names_from_files(ms_uris: tuple[str, ...], sensor: str) -> tuple[str, ...] | None:
    mission = landsat.mission_from_sensor(sensor)
    numbers = [landsat.band_number(_basename(u)) for u in ms_uris]
    if mission is None or None in numbers:
        return None
    table = landsat.BAND_NAMES[mission]
    return tuple(table.get(n, f"b{n}") for n in numbers)  # type: ignore[arg-type]


def _from_scene_json(root: str, folder: str, names: dict[str, str], read: Reader) -> SceneRef:
    source = names["scene.json"]
    doc = json.loads(read(source))
    if not isinstance(doc, dict) or not doc.get("sensor"):
        raise ValueError(f"{source}: scene.json needs at least a 'sensor' entry (e.g. \"WV2\")")
    ms = doc.get("ms", "ms.tif")
    ms_list = [ms] if isinstance(ms, str) else list(ms)
    pan_uri = resolve_href(str(doc.get("pan", "pan.tif")), folder)
    ms_uris = tuple(resolve_href(str(m), folder) for m in ms_list)
    mtl, mtl_uri, qa_uri, qa_kind = _landsat_extras(folder, names, read)
    mask = doc.get("cloud_mask") or doc.get("mask")
    mask_uri, mask_kind = (resolve_href(str(mask), folder), "binary") if mask else (qa_uri, qa_kind)
    bands = doc.get("bands")
    band_names = tuple(bands) if bands else (
        _band_names_from_files(ms_uris, str(doc["sensor"])) if not isinstance(ms, str) else None)
    known = {"sensor", "bits", "ratio", "dtype", "pan", "ms", "bands", "cloud_mask", "mask", "acquired"}
    extra: dict[str, Any] = {k: v for k, v in doc.items() if k not in known}
    if mtl:
        extra["mtl"] = landsat.mtl_summary(mtl)
        extra["mtl_uri"] = mtl_uri
    return SceneRef(
        scene_id=_scene_id(root, folder), layout="scene_folder" if isinstance(ms, str) else "band_files",
        source_uri=source, pan_uri=pan_uri, ms_uris=ms_uris, band_names=band_names,
        mask_uri=mask_uri, mask_kind=mask_kind,
        metadata={"sensor": str(doc["sensor"]), "bits": doc.get("bits"), "ratio": doc.get("ratio"),
                  "dtype": doc.get("dtype"), "nodata": doc.get("nodata"),
                  "acquired": doc.get("acquired") or (mtl or {}).get("DATE_ACQUIRED"), "extra": extra})


def _from_mtl(root: str, folder: str, names: dict[str, str], read: Reader,
              landsat_bands: tuple[int, ...] | None) -> SceneRef:
    mtl, mtl_uri, qa_uri, qa_kind = _landsat_extras(folder, names, read)
    assert mtl is not None and mtl_uri is not None
    mission = landsat.mission(mtl)
    by_number = {landsat.band_number(n): u for n, u in names.items() if landsat.band_number(n)}
    wanted = tuple(landsat_bands or landsat.DEFAULT_MS_BANDS[mission])
    missing = [b for b in (8, *wanted) if b not in by_number]
    if missing:
        raise FileNotFoundError(f"{folder}: Landsat band files B{missing} not found next to {mtl_uri}")
    table = landsat.BAND_NAMES[mission]
    return SceneRef(
        scene_id=_scene_id(root, folder), layout="band_files", source_uri=mtl_uri,
        pan_uri=by_number[8], ms_uris=tuple(by_number[b] for b in wanted),
        band_names=tuple(table.get(b, f"b{b}") for b in wanted), mask_uri=qa_uri, mask_kind=qa_kind,
        metadata={"sensor": landsat.SENSOR_NAMES[mission], "bits": landsat.BITS[mission], "ratio": 2,
                  "dtype": None, "nodata": None, "acquired": mtl.get("DATE_ACQUIRED"),
                  "extra": {"mtl": landsat.mtl_summary(mtl), "mtl_uri": mtl_uri}})


def _from_stac(uri: str, read: Reader) -> SceneRef | None:
    doc = json.loads(read(uri))
    if not stac.is_item(doc):
        return None  # a catalog, collection or unrelated JSON
    sensor_bands = None
    props = doc.get("properties") or {}
    name = props.get("crossdiff:sensor") or props.get("platform") or props.get("constellation")
    if name:
        from crossdiff.models.sensors import get_sensor

        with contextlib.suppress(KeyError):
            sensor_bands = get_sensor(str(name)).bands
    return SceneRef(**stac.parse_item(doc, uri, parent_uri(uri), sensor_bands))


def discover(root: str, options: StorageOptions | None = None,
             landsat_bands: tuple[int, ...] | None = None) -> Discovery:
    """Find every scene under ``root`` (a local folder or ``s3://bucket/prefix``).

    Args:
        root: archive location.
        options: object-store settings (endpoint, profile, anonymous access).
        landsat_bands: MS band numbers for Landsat folders found by their MTL
            (default: VNIR for Landsat-8/9, the six reflective bands for Landsat-7).

    Returns:
        Scenes sorted by id, and quarantine rows for what could not become a scene.
        A listing that fails (no credentials, missing bucket) gives no scenes and
        one quarantine row for the archive itself; it never raises.
    """
    root = normalize_uri(root)
    problems: list[Quarantine] = []
    try:
        files = list_files(root, options)
    except MissingCredentialsError as exc:
        return Discovery(root, [], [Quarantine(root, "credentials", str(exc), root, "discovery")])
    except Exception as exc:  # missing bucket/folder, 403, network
        detail = f"cannot list archive {root}: {type(exc).__name__}: {exc}"
        return Discovery(root, [], [Quarantine(root, "unreadable", detail, root, "discovery")])

    folders: dict[str, dict[str, str]] = defaultdict(dict)
    for uri in files:
        folders[posixpath.dirname(uri)][_basename(uri)] = uri
    # Every small text discovery may need, fetched in one concurrent batch (one GET each on S3).
    texts = read_texts([u for u in files if u.lower().endswith(".json") or landsat.is_mtl(_basename(u))],
                       options)

    def read(uri: str) -> str:
        value = texts[uri] if uri in texts else read_text(uri, options)
        if isinstance(value, Exception):
            raise value
        return value
    known = set(files)
    scenes: list[SceneRef] = []
    for folder in sorted(folders):
        names = folders[folder]
        # Most explicit first: scene.json, STAC items, then a bare Landsat MTL (used only
        # when nothing else in the folder already claims its B8 file).
        candidates: list[tuple[str, Any]] = []
        if "scene.json" in names:
            candidates.append((names["scene.json"],
                               lambda f=folder, n=names: _from_scene_json(root, f, n, read)))
        for name, uri in sorted(names.items()):
            if name.lower().endswith(".json") and name != "scene.json":
                candidates.append((uri, lambda u=uri: _from_stac(u, read)))
        if any(landsat.is_mtl(n) for n in names) and any(landsat.band_number(n) == 8 for n in names):
            mtl_uri = next(u for n, u in names.items() if landsat.is_mtl(n))
            candidates.append((mtl_uri,
                               lambda f=folder, n=names: _from_mtl(root, f, n, read, landsat_bands)))
        claimed: set[str] = set()
        for source, build in candidates:
            b8_claimed = any(landsat.band_number(_basename(u)) == 8 for u in claimed)
            if landsat.is_mtl(_basename(source)) and b8_claimed:
                continue
            try:
                ref = build()
            except FileNotFoundError as exc:
                problems.append(Quarantine(_scene_id(root, folder), "unreadable", str(exc), source,
                                           "discovery"))
                continue
            except Exception as exc:  # malformed JSON / MTL, missing keys
                problems.append(Quarantine(_scene_id(root, folder), "metadata",
                                           f"{type(exc).__name__}: {exc}", source, "discovery"))
                continue
            if ref is None:
                continue
            absent = [u for u in ref.uris if u.startswith(root + "/") and u not in known]
            if absent:
                problems.append(Quarantine(ref.scene_id, "unreadable", f"named file(s) do not exist: "
                                           f"{', '.join(absent)}", absent[0], "discovery", ref.layout))
                continue
            scenes.append(ref)
            claimed.add(ref.pan_uri)

    used = {u for s in scenes for u in s.uris} | {p.uri for p in problems}
    for folder in sorted(folders):
        rasters = [u for n, u in folders[folder].items() if n.lower().endswith(_RASTER_EXT)]
        if rasters and not any(u in used for u in rasters) and not any(
                p.uri.startswith(folder + "/") for p in problems):
            problems.append(Quarantine(
                _scene_id(root, folder), "metadata",
                f"{len(rasters)} raster file(s) in {folder} belong to no scene: add a scene.json "
                "(sensor, bits, ratio, bands), a STAC item or the Landsat MTL", folder, "discovery"))
    scenes.sort(key=lambda s: s.scene_id)
    return Discovery(root, scenes, problems)

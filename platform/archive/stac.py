"""Reading PAN/MS scenes out of STAC-like item JSON.

An item is a GeoJSON ``Feature`` with ``assets`` and ``properties``. PAN and MS
are found, in this order of preference:

1. assets named ``pan`` and ``ms`` (MS may be one multi-band file);
2. ``eo:bands`` (or STAC 1.1 ``bands``) common names: the asset whose band is
   ``pan`` is PAN; MS are the single-band assets whose common names match the
   sensor's bands (``properties["crossdiff:ms_assets"]`` may list asset keys
   explicitly), falling back to every spectral data asset in item order.

A quality/cloud asset is picked up as the mask: ``qa_pixel`` / ``bqa`` keys
(Landsat bit layouts) or a ``cloud_mask``/``mask`` key or ``cloud`` role
(non-zero = cloud). The sensor is ``properties["crossdiff:sensor"]``, else
``platform``, else ``constellation``; bit depth and ratio come from
``crossdiff:bits`` / ``raster:bands[].bits_per_sample`` and ``crossdiff:ratio``.
Relative hrefs are resolved against the item's folder.
"""

from __future__ import annotations

from typing import Any

from crossdiff.platform.archive import landsat
from crossdiff.platform.archive.filesystems import resolve_href

# STAC common names -> the sensor table's band names.
_COMMON = {"nir08": "nir", "nir09": "nir2", "swir16": "swir1", "swir22": "swir2", "rededge": "red_edge"}


def is_item(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("type") == "Feature" and isinstance(doc.get("assets"), dict)


def _bands(asset: dict) -> list[dict]:
    return list(asset.get("eo:bands") or asset.get("bands") or [])


def _common(band: dict) -> str:
    name = str(band.get("common_name") or band.get("eo:common_name") or band.get("name") or "").lower()
    return _COMMON.get(name, name)


def _bits(props: dict, assets: list[dict]) -> int | None:
    if props.get("crossdiff:bits") is not None:
        return int(props["crossdiff:bits"])
    for asset in assets:
        for rb in asset.get("raster:bands") or []:
            if rb.get("bits_per_sample"):
                return int(rb["bits_per_sample"])
    return None


def parse_item(doc: dict, item_uri: str, base_dir: str, sensor_bands: tuple[str, ...] | None = None
               ) -> dict[str, Any]:
    """The fields of a ``SceneRef`` described by one STAC item.

    Args:
        doc: the parsed item.
        item_uri: where the item was read (kept as the scene's source).
        base_dir: folder that relative hrefs are resolved against.
        sensor_bands: band names of the item's sensor when the caller knows it,
            used to choose MS assets by common name.

    Raises:
        ValueError: no id, no sensor, or no recognisable PAN / MS assets.
    """
    item_id = doc.get("id")
    if not item_id:
        raise ValueError(f"STAC item {item_uri} has no 'id'")
    props = doc.get("properties") or {}
    assets: dict[str, dict] = doc["assets"]
    lower = {k.lower(): k for k in assets}
    sensor = props.get("crossdiff:sensor") or props.get("platform") or props.get("constellation")
    if not sensor:
        raise ValueError(f"STAC item {item_id}: no sensor; set properties 'platform' or 'crossdiff:sensor'")

    def href(key: str) -> str:
        return resolve_href(assets[key]["href"], base_dir)

    band_names: list[str] | None = None
    if "pan" in lower and "ms" in lower:
        pan_key, ms_keys = lower["pan"], [lower["ms"]]
        names = [_common(b) for b in _bands(assets[ms_keys[0]])]
        band_names = names if names and all(names) else None
    else:
        pan_keys = [k for k, a in assets.items() if [_common(b) for b in _bands(a)] == ["pan"]]
        if len(pan_keys) != 1:
            raise ValueError(f"STAC item {item_id}: need exactly one PAN asset (key 'pan' or eo:bands "
                             f"common_name 'pan'), found {pan_keys or 'none'}")
        pan_key = pan_keys[0]
        spectral = {k: _common(_bands(a)[0]) for k, a in assets.items()
                    if len(_bands(a)) == 1 and k != pan_key and "data" in a.get("roles", ["data"])}
        if props.get("crossdiff:ms_assets"):
            ms_keys = list(props["crossdiff:ms_assets"])
            unknown = [k for k in ms_keys if k not in assets]
            if unknown:
                raise ValueError(f"STAC item {item_id}: crossdiff:ms_assets names missing assets {unknown}")
        elif sensor_bands and all(b in spectral.values() for b in sensor_bands):
            by_name = {name: k for k, name in reversed(list(spectral.items()))}
            ms_keys = [by_name[b] for b in sensor_bands]
        else:
            ms_keys = [k for k, name in spectral.items() if name and name != "pan"]
        if not ms_keys:
            raise ValueError(f"STAC item {item_id}: no MS assets (key 'ms' or single-band eo:bands assets)")
        band_names = [spectral.get(k, "") for k in ms_keys]
        band_names = band_names if all(band_names) else None

    mask_uri = mask_kind = None
    for key, asset in assets.items():
        k = key.lower()
        if k in ("qa_pixel", "bqa"):
            mask_uri, mask_kind = href(key), landsat.qa_kind(k, {"COLLECTION_NUMBER": str(
                props.get("landsat:collection_number", ""))})
        elif k in ("cloud_mask", "mask") or "cloud" in (asset.get("roles") or []):
            mask_uri, mask_kind = href(key), "binary"

    ratio = props.get("crossdiff:ratio")
    return {
        "scene_id": str(item_id),
        "layout": "stac_item",
        "source_uri": item_uri,
        "pan_uri": href(pan_key),
        "ms_uris": tuple(href(k) for k in ms_keys),
        "band_names": tuple(band_names) if band_names else None,
        "mask_uri": mask_uri,
        "mask_kind": mask_kind,
        "metadata": {
            "sensor": str(sensor),
            "bits": _bits(props, [assets[pan_key]] + [assets[k] for k in ms_keys]),
            "ratio": int(ratio) if ratio is not None else None,
            "dtype": props.get("crossdiff:dtype"),
            "acquired": props.get("datetime") or props.get("start_datetime"),
            "extra": {k: v for k, v in props.items() if not k.startswith("crossdiff:")},
        },
    }

"""Seeded synthetic PAN/MS scenes, written like the real ones (labelled synthetic).

The embedded-default demo, benchmarks and many tests need PAN/MS pairs that
behave like real imagery but cost nothing to ship and come with a ground
truth. A scene is built in reflectance at PAN resolution (the *truth*):

1. a few endmember spectra (vegetation, soil, water, concrete, asphalt) are
   sampled at the sensor's band centres and mixed by smooth random abundance
   maps (Gaussian low-pass noise through a softmax), with canopy texture and a
   1/f brightness texture;
2. man-made objects with sharp edges are painted over it: roads with dashed
   markings, buildings (some with gable roofs) and their spectrally bluish
   shadows, so that pansharpening has high-frequency detail to recover;
3. reflectance becomes DN with a gain, an illumination factor and a haze
   offset that grows towards the blue (what BT-H-style corrections remove).

PAN is a spectral-response-weighted sum of the truth's bands plus noise. MS is
the truth filtered with the sensor's MTF-matched Gaussians and decimated by
the ratio keeping rows/columns ``ratio // 2 :: ratio`` (the reference toolbox's
Wald convention, so truth -> MS is exactly a Wald degradation), plus noise.
Everything is quantised to the sensor's bit depth. The same seed gives
byte-identical arrays on the same machine and library versions.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil
import torch
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.transform import Affine

from crossdiff.models.resample.mtf import mtf_filter
from crossdiff.models.resample.wald import decimate
from crossdiff.models.sensors import Sensor, get_sensor

DEFAULT_CRS = "EPSG:32633"  # UTM zone 33N: a real projected CRS in metres

# Band centre wavelengths (nm) by band name (WorldView/Landsat/QuickBird values).
BAND_CENTRES_NM: dict[str, float] = {
    "coastal": 427.0, "blue": 478.0, "green": 546.0, "yellow": 608.0, "red": 659.0,
    "red_edge": 724.0, "nir": 833.0, "nir1": 831.0, "nir2": 908.0, "swir1": 1650.0, "swir2": 2215.0,
}
_UNKNOWN_BAND_RANGE_NM = (450.0, 900.0)  # unknown names (b1..bN) spread evenly over VNIR

# PAN spectral range (nm) per sensor; others get the VHR default.
_PAN_RANGE_NM: dict[str, tuple[float, float]] = {
    "WorldView-2": (450, 800), "WorldView-3": (450, 800), "WorldView-4": (450, 800),
    "GeoEye-1": (450, 800), "Landsat-7": (520, 900), "Landsat-8": (500, 680),
}
_DEFAULT_PAN_RANGE_NM = (450.0, 900.0)

# Nominal PAN GSD (m). Values are exact in binary so MS pixel = ratio x PAN pixel exactly.
_PAN_GSD_M: dict[str, float] = {"Landsat-7": 15.0, "Landsat-8": 15.0, "IKONOS": 1.0, "GaoFen-2": 1.0}
_DEFAULT_PAN_GSD_M = 0.5

# Endmember reflectance curves as (wavelength nm, reflectance) anchors, linearly interpolated.
SPECTRA: dict[str, tuple[tuple[float, float], ...]] = {
    "vegetation": ((400, .04), (480, .05), (550, .11), (600, .07), (670, .04), (700, .08), (740, .35),
                   (800, .46), (900, .49), (1100, .46), (1450, .22), (1650, .28), (2200, .12)),
    "soil": ((400, .07), (500, .11), (600, .18), (700, .24), (800, .28), (900, .30), (1650, .40),
             (2200, .36)),
    "water": ((400, .07), (480, .065), (550, .05), (600, .03), (670, .02), (720, .01), (800, .006),
              (1000, .003), (2200, .001)),
    "concrete": ((400, .18), (500, .23), (600, .27), (700, .29), (900, .31), (1650, .33), (2200, .29)),
    "roof_tile": ((400, .05), (500, .06), (570, .09), (620, .20), (700, .27), (900, .33), (1650, .40),
                  (2200, .35)),
    "asphalt": ((400, .04), (500, .05), (600, .06), (700, .07), (900, .08), (1650, .10), (2200, .09)),
}
_BACKGROUND = ("vegetation", "soil", "water", "concrete", "asphalt")
_BACKGROUND_PRIOR = np.array([0.38, 0.24, 0.08, 0.15, 0.15])
_ROOFS = ("concrete", "roof_tile", "asphalt")

_DN_GAIN = 1.0  # fraction of the DN range that reflectance 1.0 reaches
_NOISE = 0.002  # sensor noise std, fraction of the DN range


def band_centres(bands: Sequence[str]) -> np.ndarray:
    """Centre wavelengths (nm) of the named bands; unknown names spread over VNIR in order."""
    spread = np.linspace(*_UNKNOWN_BAND_RANGE_NM, num=len(bands)) if len(bands) > 1 else [650.0]
    return np.array([BAND_CENTRES_NM.get(b.lower(), spread[i]) for i, b in enumerate(bands)])


def spectrum(material: str, wavelengths_nm: np.ndarray) -> np.ndarray:
    """Reflectance of one endmember at the given wavelengths."""
    nm, refl = zip(*SPECTRA[material], strict=True)
    return np.interp(wavelengths_nm, nm, refl).astype(np.float32)


def pan_weights(sensor: Sensor) -> np.ndarray:
    """Weights over MS bands that model the PAN spectral response (sum to 1).

    The response is a box over the sensor's PAN range with 20 nm logistic
    edges, evaluated at the band centres.
    """
    lo, hi = _PAN_RANGE_NM.get(sensor.name, _DEFAULT_PAN_RANGE_NM)
    lam = band_centres(sensor.bands)
    w = 1.0 / (1.0 + np.exp(-(lam - lo) / 20.0)) / (1.0 + np.exp((lam - hi) / 20.0))
    if w.sum() < 1e-3:  # no band under the PAN response: fall back to the band mean
        w = np.ones_like(w)
    return w / w.sum()


@dataclasses.dataclass
class SyntheticScene:
    """One synthetic scene in DN: ``pan`` (H, W), ``ms`` (C, H/r, W/r), ``truth`` (C, H, W)."""

    sensor: Sensor
    seed: int
    pan: np.ndarray
    ms: np.ndarray
    truth: np.ndarray
    pan_weights: np.ndarray


def _resolve_sensor(sensor: str | Sensor, n_bands: int | None) -> Sensor:
    if isinstance(sensor, Sensor):
        if n_bands is not None and n_bands != sensor.n_bands:
            raise ValueError(f"sensor {sensor.name} has {sensor.n_bands} bands, n_bands={n_bands}")
        return sensor
    return get_sensor(sensor, n_bands)


def _check_size(pan_size: int | tuple[int, int], ratio: int) -> tuple[int, int]:
    h, w = (pan_size, pan_size) if isinstance(pan_size, int) else tuple(pan_size)
    if min(h, w) < 4 * ratio or h % ratio or w % ratio:
        raise ValueError(f"PAN size {h}x{w} must be at least {4 * ratio} px and a multiple of the "
                         f"ratio {ratio}; e.g. pan_size={max(4 * ratio, h - h % ratio)}")
    return int(h), int(w)


def _filtered_noise(rng: np.random.Generator, shape: tuple[int, int], gains: np.ndarray) -> np.ndarray:
    """Standardised random fields by FFT filtering, one per gain map in ``gains`` (n, H, W//2+1)."""
    noise = rng.standard_normal((len(gains), *shape), dtype=np.float32)
    out = np.fft.irfft2(np.fft.rfft2(noise) * gains, s=shape).astype(np.float32)
    out -= out.mean(axis=(1, 2), keepdims=True)
    out /= out.std(axis=(1, 2), keepdims=True) + 1e-12
    return out


def _fields(rng: np.random.Generator, shape: tuple[int, int], n_abund: int) -> np.ndarray:
    """Smooth abundance logits, then a 1/f texture and a fine canopy texture."""
    h, w = shape
    f2 = np.fft.fftfreq(h)[:, None] ** 2 + np.fft.rfftfreq(w)[None, :] ** 2
    base = max(3.0, min(h, w) * rng.uniform(0.025, 0.06))  # patch scale, px
    sigmas = base * rng.uniform(0.6, 1.5, size=n_abund)
    gains = [np.exp(-2 * np.pi**2 * s**2 * f2) for s in sigmas]
    gains.append(1.0 / np.sqrt(f2 + (1.0 / max(h, w)) ** 2))  # amplitude ~ 1/f (natural images)
    gains[-1][0, 0] = 0.0
    gains.append(np.exp(-2 * np.pi**2 * 1.0**2 * f2))  # tree-crown-sized texture
    return _filtered_noise(rng, shape, np.stack(gains))


def _paint_roads(rng, refl, lam, n_roads: int) -> None:
    c, h, w = refl.shape
    # Coordinates as a column and a row: a road's distance map broadcasts to (h, w)
    # without full coordinate grids, and only its own pixels are gathered.
    yy, xx = np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :]
    asphalt, marking = spectrum("asphalt", lam), 1.8 * spectrum("concrete", lam)
    for _ in range(n_roads):
        # Mostly on the grid directions, sometimes oblique (edges not aligned with pixels).
        deg = rng.choice([0.0, 90.0]) + rng.normal(0, 2) if rng.random() < 0.7 else rng.uniform(0, 180)
        t = np.deg2rad(deg)
        y0, x0 = rng.uniform(0, h), rng.uniform(0, w)
        across = (xx - x0) * np.sin(t) - (yy - y0) * np.cos(t)
        half = rng.uniform(1.5, 4.5)
        rows, cols = np.nonzero(np.abs(across) <= half)
        refl[:, rows, cols] = (asphalt * rng.uniform(0.85, 1.2))[:, None]
        if half > 2.5:  # dashed centre line
            along = (xx[0, cols] - x0) * np.cos(t) + (yy[rows, 0] - y0) * np.sin(t)
            line = (np.abs(across[rows, cols]) <= 0.5) & (along % 12 < 6)
            refl[:, rows[line], cols[line]] = marking[:, None]


def _paint_buildings(rng, refl, lam, urban: np.ndarray, n_buildings: int) -> None:
    c, h, w = refl.shape
    if n_buildings == 0:
        return
    p = urban.ravel().astype(np.float64) ** 2
    centres = rng.choice(h * w, size=n_buildings, p=p / p.sum())
    az = rng.uniform(0, 2 * np.pi)  # one sun azimuth per scene
    rects, shadow = [], np.zeros((h, w), dtype=bool)
    for idx in centres:
        cy, cx = divmod(int(idx), w)
        bh, bw = rng.integers(4, 22, size=2)
        r0, c0 = max(cy - bh // 2, 0), max(cx - bw // 2, 0)
        r1, c1 = min(r0 + bh, h), min(c0 + bw, w)
        height = rng.uniform(1.0, 8.0)
        dy, dx = int(round(height * np.cos(az))), int(round(height * np.sin(az)))
        shadow[max(r0 + dy, 0):max(r1 + dy, 0), max(c0 + dx, 0):max(c1 + dx, 0)] = True
        rects.append((r0, r1, c0, c1))
    # Shadows are lit by the bluish sky only: darker, and darker still in the NIR.
    refl[:, shadow] *= (0.2 + 0.2 * (480.0 / lam) ** 2)[:, None].astype(np.float32)
    roofs = {m: spectrum(m, lam)[:, None, None] for m in _ROOFS}
    for r0, r1, c0, c1 in rects:
        roof = roofs[_ROOFS[rng.choice(3, p=[0.5, 0.35, 0.15])]] * rng.uniform(0.75, 1.3)
        refl[:, r0:r1, c0:c1] = roof
        if rng.random() < 0.5 and min(r1 - r0, c1 - c0) >= 4:  # gable roof: one face less lit
            if r1 - r0 > c1 - c0:
                refl[:, r0:r1, (c0 + c1) // 2:c1] *= 0.8
            else:
                refl[:, (r0 + r1) // 2:r1, c0:c1] *= 0.8


def make_synthetic_scene(
    *, seed: int, sensor: str | Sensor = "WorldView-2", pan_size: int | tuple[int, int] = 512,
    n_bands: int | None = None,
) -> SyntheticScene:
    """Build one synthetic scene in memory (see the module docstring for the model).

    Args:
        seed: non-negative integer; the same seed gives the same pixels.
        sensor: a name known to ``crossdiff.models.sensors`` (any alias) or a Sensor.
        pan_size: PAN side in pixels, or (height, width); a multiple of the ratio.
        n_bands: band count for the generic sensor (or a check for a known one).
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    sen = _resolve_sensor(sensor, n_bands)
    h, w = _check_size(pan_size, sen.ratio)
    content, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(2))
    lam = band_centres(sen.bands)

    # 1. Background: smooth abundances of the natural/urban endmembers (softmax of fields).
    k = len(_BACKGROUND)
    f = _fields(content, (h, w), k)
    prior = content.dirichlet(20.0 * _BACKGROUND_PRIOR)
    logits = f[:k] * content.uniform(2.5, 4.5) + np.log(prior)[:, None, None].astype(np.float32)
    logits -= logits.max(axis=0, keepdims=True)
    abund = np.exp(logits)
    abund /= abund.sum(axis=0, keepdims=True)
    spectra = np.stack([spectrum(m, lam) for m in _BACKGROUND], axis=1)  # (C, K)
    refl = (spectra @ abund.reshape(k, -1)).reshape(-1, h, w)
    veg = spectra[:, 0, None, None] * (abund[0] * 0.3 * f[k + 1])  # crowns modulate vegetation
    refl += veg

    # 2. Sharp man-made detail, denser where the background is already urban.
    urban = abund[3] + abund[4]
    area = h * w / 512.0**2
    _paint_roads(content, refl, lam, int(content.integers(1, 4) * max(area, 0.25) + 0.5))
    n_buildings = content.poisson(150 * area * (0.2 + float(urban.mean()) * 2.5))
    _paint_buildings(content, refl, lam, urban, int(n_buildings))
    refl *= 1.0 + 0.08 * f[k]  # 1/f brightness texture over everything
    np.maximum(refl, 0.0, out=refl)

    # 3. Reflectance -> DN: gain, illumination and a haze offset rising towards the blue.
    vmax = sen.max_value
    haze = content.uniform(0.3, 1.5) * 0.03 * (450.0 / lam) ** 4
    truth = vmax * (_DN_GAIN * content.uniform(0.85, 1.1) * refl + haze[:, None, None].astype(np.float32))
    np.clip(truth, 0.0, vmax, out=truth)

    # 4. PAN: spectral response over the bands + noise. MS: MTF blur, Wald decimation, noise.
    weights = pan_weights(sen)
    pan = np.tensordot(weights.astype(np.float32), truth, axes=1)
    pan += noise_rng.standard_normal(pan.shape, dtype=np.float32) * np.float32(_NOISE * vmax)
    r = sen.ratio
    ms = decimate(mtf_filter(torch.from_numpy(truth), sen.mtf_ms, r), r).numpy()
    ms = ms + noise_rng.standard_normal(ms.shape, dtype=np.float32) * np.float32(_NOISE * vmax)

    dtype = np.uint8 if sen.bits <= 8 else np.uint16

    def quantise(x: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(x), 0, vmax).astype(dtype)

    return SyntheticScene(sensor=sen, seed=int(seed), pan=quantise(pan), ms=quantise(ms),
                          truth=quantise(truth), pan_weights=weights)


def _block(n: int) -> int:
    """Tile side: 256, halved (down to 16) until smaller than the image side.

    A tile as large as the image would make readers (rasterio's ``profile``)
    report the file as striped.
    """
    block = 256
    while block >= n and block > 16:
        block //= 2
    return block


def _cog_driver_available() -> bool:
    """Whether the installed GDAL has the COG driver (GDAL >= 3.1)."""
    with rasterio.Env() as env:
        return "COG" in env.drivers()


def _write_tif(path: Path, data: np.ndarray, transform: Affine, crs: str, names: Sequence[str],
               tags: dict[str, str], cog: bool) -> None:
    """A tiled DEFLATE GeoTIFF (C, H, W), nodata unset; COG layout with overviews if asked."""
    c, h, w = data.shape
    block = _block(min(h, w))
    profile = dict(driver="GTiff", count=c, height=h, width=w, dtype=data.dtype.name, crs=crs,
                   transform=transform, nodata=None, tiled=True, blockxsize=block, blockysize=block,
                   compress="deflate", predictor=2, interleave="pixel" if c > 1 else "band")
    n_ovr = max(1, int(np.log2(min(h, w) / 16))) if cog else 0

    def fill(dst) -> None:
        dst.write(data)
        for i, name in enumerate(names, start=1):
            dst.set_band_description(i, name)
        dst.update_tags(**tags)

    if cog and _cog_driver_available():
        with MemoryFile() as mem:
            with mem.open(**profile) as tmp:
                fill(tmp)
            with mem.open() as src:
                rasterio.shutil.copy(src, path, driver="COG", COMPRESS="DEFLATE", PREDICTOR="YES",
                                     BLOCKSIZE=str(block), OVERVIEWS="IGNORE_EXISTING",
                                     OVERVIEW_COUNT=str(n_ovr), OVERVIEW_RESAMPLING="AVERAGE")
        return
    with rasterio.open(path, "w", **profile) as dst:
        fill(dst)
        if cog:  # no COG driver in this GDAL: tiled GTiff with internal overviews
            dst.build_overviews([2**i for i in range(1, n_ovr + 1)], Resampling.average)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", name.lower())


def write_synthetic_scene(
    out_dir: str | Path, *, seed: int, sensor: str | Sensor = "WorldView-2",
    pan_size: int | tuple[int, int] = 512, n_bands: int | None = None, save_truth: bool = False,
    cog: bool = False, pan_gsd_m: float | None = None, crs: str = DEFAULT_CRS,
) -> Path:
    """Write ``pan.tif``, ``ms.tif``, ``scene.json`` (and ``truth.tif``) into ``out_dir``.

    The layout mirrors the real sample scenes (tiled DEFLATE GeoTIFF, PAN band
    interleaved, MS pixel interleaved, MS pixel = ratio x PAN pixel with the
    same origin) but with a real projected CRS, and scene.json says
    ``"synthetic": true`` with the seed and a note on how it was made.

    Args:
        out_dir: scene folder, created if needed. A folder holding a real
            (non-synthetic) scene.json is refused rather than overwritten.
        seed, sensor, pan_size, n_bands: as for :func:`make_synthetic_scene`.
        save_truth: also write ``truth.tif``, the MS at PAN resolution on the
            PAN grid, so evaluation can measure real errors.
        cog: Cloud-Optimised GeoTIFF layout (tiled, with overviews).
        pan_gsd_m: PAN pixel size in metres; defaults to the sensor's nominal one.
        crs: projected CRS of the (synthetic) placement.

    Returns:
        The scene folder.
    """
    out = Path(out_dir)
    meta_path = out / "scene.json"
    if meta_path.is_file() and not json.loads(meta_path.read_text()).get("synthetic", False):
        raise FileExistsError(f"{meta_path} describes a real scene; choose an empty folder")
    scene = make_synthetic_scene(seed=seed, sensor=sensor, pan_size=pan_size, n_bands=n_bands)
    sen, r = scene.sensor, scene.sensor.ratio
    gsd = float(pan_gsd_m if pan_gsd_m is not None else _PAN_GSD_M.get(sen.name, _DEFAULT_PAN_GSD_M))
    if gsd <= 0:
        raise ValueError(f"pan_gsd_m must be positive, got {gsd}")
    # Placement drawn from the seed, on whole kilometres so both grids share the corner exactly.
    place = np.random.default_rng(np.random.SeedSequence([int(seed), 1]))
    x0, y0 = float(place.integers(300, 700) * 1000), float(place.integers(4800, 5400) * 1000)
    pan_tf = Affine(gsd, 0.0, x0, 0.0, -gsd, y0)
    ms_tf = Affine(gsd * r, 0.0, x0, 0.0, -gsd * r, y0)
    tags = {"SYNTHETIC": "yes", "SEED": str(scene.seed), "SENSOR": sen.name,
            "GENERATOR": "crossdiff.platform.synthetic"}

    out.mkdir(parents=True, exist_ok=True)
    _write_tif(out / "pan.tif", scene.pan[None], pan_tf, crs, ["pan"], tags, cog)
    _write_tif(out / "ms.tif", scene.ms, ms_tf, crs, sen.bands, tags, cog)
    if save_truth:
        _write_tif(out / "truth.tif", scene.truth, pan_tf, crs, sen.bands, tags, cog)
    elif (out / "truth.tif").exists():
        (out / "truth.tif").unlink()  # a stale truth from an earlier call would mislead

    meta = {
        "sensor": sen.name, "bits": sen.bits, "ratio": r, "bands": list(sen.bands),
        "ms_shape": list(scene.ms.shape), "pan_shape": list(scene.pan.shape),
        "dtype": scene.pan.dtype.name, "pan_gsd_m": gsd,
        "georeference": f"{crs} (synthetic placement); MS pixel = ratio x PAN pixel, corners aligned",
        "crs": crs, "synthetic": True, "seed": scene.seed,
        "pan_weights": [round(float(v), 6) for v in scene.pan_weights],
        "note": (
            "SYNTHETIC scene, not real imagery. Made by crossdiff.platform.synthetic from the seed: "
            f"endmember spectra ({', '.join(SPECTRA)}) mixed by smooth random abundances, with texture, "
            "roads, buildings and shadows; PAN = pan_weights-weighted sum of the truth bands + noise; "
            f"MS = truth filtered by the sensor's MTF-matched Gaussians (gains {list(sen.mtf_ms)}), "
            f"decimated by {r} keeping rows/columns {r // 2}::{r}, + noise; quantised to {sen.bits} bits."
        ),
    }
    if save_truth:
        meta["truth"] = "truth.tif"
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return out


def write_synthetic_archive(
    root: str | Path, n_scenes: int, *, seed: int, sensors: str | Sensor | Sequence[str | Sensor] = (
        "WorldView-2",), pan_size: int | tuple[int, int] = 512, cog: bool = False,
    save_truth: bool = False, n_bands: int | None = None,
) -> list[Path]:
    """Write ``n_scenes`` synthetic scenes under ``root``, cycling through ``sensors``.

    Scene ``i`` is ``root/synth_{i:04d}_{sensor}`` and gets its own seed derived
    from ``(seed, i)`` (recorded in its scene.json), so archives with the same
    seed are identical and scenes within one archive differ.

    Returns:
        The scene folders, in order.
    """
    if n_scenes < 1:
        raise ValueError(f"n_scenes must be at least 1, got {n_scenes}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(sensors, (str, Sensor)):
        sensors = [sensors]
    resolved = [_resolve_sensor(s, n_bands) for s in sensors]
    if not resolved:
        raise ValueError("give at least one sensor")
    root = Path(root)
    paths = []
    for i in range(n_scenes):
        sen = resolved[i % len(resolved)]
        scene_seed = int(np.random.SeedSequence([int(seed), i]).generate_state(1, np.uint32)[0])
        paths.append(write_synthetic_scene(
            root / f"synth_{i:04d}_{_slug(sen.name)}", seed=scene_seed, sensor=sen, pan_size=pan_size,
            save_truth=save_truth, cog=cog,
        ))
    return paths

"""Fused products and reference images given as files, for people who fuse elsewhere.

Two formats, both in digital numbers (DN, the scale of the delivered MS):

* GeoTIFF (``.tif``/``.tiff``, local or ``s3://``): bands first, (C, H, W) as
  rasterio reads it; band order must match the MS file.
* NumPy ``.npy``: **H x W x C** (height, width, bands: the layout most Python
  pansharpening code and ``skimage`` use), any numeric dtype; a single-band
  image (PAN) may also be H x W. ``np.save("fused.npy", fused_hwc)``.

Everything is returned as (C, H, W) float64, the layout of the rest of the
platform. Shape checks name both shapes and the fix, because a transposed
array or a product of the wrong protocol is the usual mistake.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

NPY_LAYOUT = "H x W x C (height, width, bands), digital numbers; H x W for a single band"
_TIFF = (".tif", ".tiff")


def _suffix(path: str) -> str:
    return Path(path.split("?", 1)[0]).suffix.lower()


def read_image(path: str | os.PathLike, name: str = "image") -> np.ndarray:
    """Read a GeoTIFF or ``.npy`` image as (C, H, W) float64 in DN.

    Args:
        path: ``.tif``/``.tiff`` (C, H, W) or ``.npy`` H x W x C (see the module docstring).
        name: what the image is, for error messages ("fused product", "GT", ...).

    Raises:
        FileNotFoundError: a local path that does not exist.
        ValueError: another extension, or an array that is not 2-D/3-D numeric.
    """
    path = os.fspath(path)
    suffix = _suffix(path)
    if not path.startswith("s3://") and not Path(path).is_file():
        raise FileNotFoundError(f"{name} {path} does not exist")
    if suffix == ".npy":
        a = np.load(path, allow_pickle=False)
        if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
            raise ValueError(f"{name} {path} holds {a.dtype} values; save real numbers in DN")
        if a.ndim == 2:
            a = a[..., None]
        if a.ndim != 3:
            raise ValueError(f"{name} {path} is a {a.ndim}-D array {a.shape}; .npy images must be {NPY_LAYOUT}")
        return np.ascontiguousarray(np.moveaxis(a, -1, 0), dtype=np.float64)
    if suffix in _TIFF:
        from rasterio.errors import NotGeoreferencedWarning

        from crossdiff.platform.archive.filesystems import open_raster

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with open_raster(path) as src:
                return src.read().astype(np.float64)
    raise ValueError(f"{name} {path}: unsupported file type {suffix or '(none)'}; give a GeoTIFF (.tif, "
                     f"bands first) or a .npy array ({NPY_LAYOUT})")


def as_image(x: Any, name: str = "image") -> np.ndarray:
    """A path, numpy array (C, H, W) or torch tensor (C, H, W) as (C, H, W) float64.

    In-memory arrays are taken to be bands first, as everywhere in the platform;
    only ``.npy`` files use the H x W x C layout.
    """
    if isinstance(x, (str, os.PathLike)):
        return read_image(x, name)
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"{name}: expected a (C, H, W) array, got shape {a.shape}")
    return a


def _fix_hint(actual: tuple[int, ...], expected: tuple[int, int, int], path: str | None,
              other: dict[str, tuple[int, int, int]]) -> str:
    """The most likely reason a shape is wrong, phrased as the fix."""
    c, h, w = expected
    if path and _suffix(path) == ".npy" and actual == (w, c, h):
        return (f"the .npy looks like C x H x W; save it as {NPY_LAYOUT}: "
                "np.save(path, np.moveaxis(image, 0, -1))")
    if path and _suffix(path) in _TIFF and actual == (w, h, c):
        return "the GeoTIFF seems to hold H x W x C data as bands; write it bands first (C, H, W)"
    for label, shape in other.items():
        if actual == shape:
            return f"it has the {label}'s shape: {_protocol_hint(label)}"
    if actual[1:] == (h, w) and actual[0] != c:
        return f"it has {actual[0]} bands where {c} are expected; keep every MS band, in the MS band order"
    if actual[0] == c:
        return "crop or resample it to the reference grid (same size and origin)"
    return "check that it is the product of this scene and this protocol"


def _protocol_hint(label: str) -> str:
    if "PAN" in label:
        return ("a full-resolution product (fused from the original MS and PAN) is evaluated with "
                "--ms/--pan, not against a GT")
    return ("a reduced-resolution product (fused from the Wald-degraded pair, at the MS size) is evaluated "
            "against the GT with --gt, not with --ms/--pan")


def check_shape(image: np.ndarray, expected: tuple[int, int, int], name: str, reference: str,
                path: str | None = None, other: dict[str, tuple[int, int, int]] | None = None) -> None:
    """Raise a ValueError naming both shapes and the fix unless ``image`` is ``expected``.

    Args:
        image: (C, H, W) as loaded.
        expected: the (C, H, W) it must have.
        name: what ``image`` is, e.g. "fused product GSA (gsa.npy)".
        reference: what fixes the shape, e.g. "the GT" or "PAN x ratio".
        path: the file it came from (its format shapes the hint).
        other: shapes of other known images (label -> shape), to recognise a mix-up.
    """
    actual = tuple(image.shape)
    if actual == tuple(expected):
        return
    if path and _suffix(path) == ".npy":  # speak in the file's own layout
        shown, want, layout = (actual[1], actual[2], actual[0]), tuple(expected[1:]) + (expected[0],), "H x W x C"
    else:
        shown, want, layout = actual, tuple(expected), "C x H x W"
    raise ValueError(f"{name} is {layout} {shown} but {reference} needs {layout} {want}: "
                     + _fix_hint(actual, expected, path, other or {}))


def check_dn(image: np.ndarray, reference: np.ndarray, name: str) -> None:
    """Refuse a product in [0, 1] when the reference is in DN (a forgotten de-normalisation)."""
    if image.size and reference.size and float(np.nanmax(image)) <= 1.0 < float(np.nanmax(reference)):
        raise ValueError(f"{name} peaks at {float(np.nanmax(image)):.3g} while the reference peaks at "
                         f"{float(np.nanmax(reference)):.4g}: it looks normalised to [0, 1]; multiply it by "
                         "2**bits - 1 (the sensor's maximum DN) before evaluating")
    if not np.isfinite(image).all():
        raise ValueError(f"{name} contains NaN or infinite values; fill or clip them first")


def load_product(x: Any, expected: tuple[int, int, int], name: str, reference_name: str,
                 reference: np.ndarray | None = None,
                 other: dict[str, tuple[int, int, int]] | None = None) -> np.ndarray:
    """Load a fused product (path or array) and check its shape (and DN scale against ``reference``)."""
    path = os.fspath(x) if isinstance(x, (str, os.PathLike)) else None
    label = f"{name} ({path})" if path else name
    image = as_image(x, label)
    check_shape(image, expected, label, reference_name, path, other)
    if reference is not None:
        check_dn(image, reference, label)
    return image

"""The sensor table: one place that knows each sensor's bands, bit depth,
resolution ratio and MTF gains at the Nyquist frequency.

The gains are those of the field's reference MATLAB toolbox (Vivone et al.),
used by the MTF-matched Gaussian filters of Wald-protocol degradation, of the
MTF-based baselines and of D_lambda. A sensor the table does not know can be
registered from a plain dict (e.g. a YAML file read by the platform).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

_GENERIC_MS_GAIN = 0.3
_GENERIC_PAN_GAIN = 0.15


@dataclasses.dataclass(frozen=True)
class Sensor:
    """What the platform must know about a PAN/MS sensor.

    Attributes:
        name: canonical name, e.g. ``"WorldView-2"``.
        bands: MS band names in file order.
        bits: radiometric bit depth of the delivered DN (11 for most VHR).
        ratio: PAN/MS resolution ratio (4 for VHR, 2 for Landsat).
        mtf_ms: per-band MTF gain at Nyquist, one per MS band.
        mtf_pan: the PAN band's MTF gain at Nyquist.
        aliases: other spellings that resolve to this sensor.
    """

    name: str
    bands: tuple[str, ...]
    bits: int
    ratio: int
    mtf_ms: tuple[float, ...]
    mtf_pan: float
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if len(self.mtf_ms) != len(self.bands):
            raise ValueError(
                f"sensor {self.name!r}: {len(self.mtf_ms)} MTF gains for "
                f"{len(self.bands)} bands; give one gain per MS band"
            )
        if self.ratio not in (2, 3, 4, 6, 8):
            raise ValueError(f"sensor {self.name!r}: unsupported PAN/MS ratio {self.ratio}")
        if not 1 <= self.bits <= 16:
            raise ValueError(f"sensor {self.name!r}: bit depth {self.bits} outside 1..16")
        if not all(0.0 < g < 1.0 for g in (*self.mtf_ms, self.mtf_pan)):
            raise ValueError(f"sensor {self.name!r}: MTF gains must lie in (0, 1)")

    @property
    def n_bands(self) -> int:
        return len(self.bands)

    @property
    def max_value(self) -> float:
        """Largest DN the bit depth allows (2**bits - 1)."""
        return float(2**self.bits - 1)

    def replace(self, **changes: Any) -> Sensor:
        """A copy with some fields changed (e.g. the bit depth a scene declares)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sensor:
        """Build from a plain mapping; unknown keys are errors, gains may be scalars."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"unknown sensor keys {sorted(unknown)}; allowed: {sorted(fields)}")
        d = dict(d)
        bands = tuple(d.pop("bands"))
        gains = d.pop("mtf_ms", _GENERIC_MS_GAIN)
        if isinstance(gains, (int, float)):
            gains = [gains] * len(bands)
        return cls(
            bands=bands,
            mtf_ms=tuple(float(g) for g in gains),
            mtf_pan=float(d.pop("mtf_pan", _GENERIC_PAN_GAIN)),
            aliases=tuple(d.pop("aliases", ())),
            **d,
        )


def _key(name: str) -> str:
    """Spelling-insensitive key: 'WorldView-2', 'worldview2' and 'WV2' style names."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


_VNIR4 = ("blue", "green", "red", "nir")
_TABLE: dict[str, Sensor] = {}


def register_sensor(sensor: Sensor, *, overwrite: bool = False) -> Sensor:
    """Add a sensor (and its aliases) to the table."""
    for k in {_key(sensor.name), *(_key(a) for a in sensor.aliases)}:
        if k in _TABLE and not overwrite and _TABLE[k] != sensor:
            raise ValueError(f"sensor name {k!r} is already registered; pass overwrite=True")
        _TABLE[k] = sensor
    return sensor


def get_sensor(name: str, n_bands: int | None = None) -> Sensor:
    """Look a sensor up by any of its spellings.

    Args:
        name: sensor name or alias ("WV2", "GeoEye1", "Landsat8-OLI", ...).
            Unknown names fall back to the generic sensor when ``n_bands`` is
            given, as the reference toolbox does ("none": gains .3 / .15).
        n_bands: expected band count; a mismatch with a known sensor is an error.
    """
    sensor = _TABLE.get(_key(name))
    if sensor is None:
        if n_bands is None:
            raise KeyError(f"unknown sensor {name!r}; known: {known_sensors()}; "
                           "register it or pass n_bands to use generic MTF gains")
        return generic_sensor(n_bands, name=name)
    if n_bands is not None and n_bands != sensor.n_bands:
        if sensor.name == "generic":
            return generic_sensor(n_bands, name=name)
        raise ValueError(f"sensor {sensor.name} has {sensor.n_bands} MS bands, "
                         f"the data has {n_bands}")
    return sensor


def generic_sensor(n_bands: int, *, name: str = "generic", bits: int = 11, ratio: int = 4) -> Sensor:
    """A sensor with the toolbox's default gains, for unknown or new instruments."""
    return Sensor(name=name, bands=tuple(f"b{i + 1}" for i in range(n_bands)), bits=bits,
                  ratio=ratio, mtf_ms=(_GENERIC_MS_GAIN,) * n_bands, mtf_pan=_GENERIC_PAN_GAIN)


def known_sensors() -> list[str]:
    return sorted({s.name for s in _TABLE.values()})


for _s in (
    Sensor("QuickBird", _VNIR4, 11, 4, (0.34, 0.32, 0.30, 0.22), 0.15, ("QB",)),
    Sensor("IKONOS", _VNIR4, 11, 4, (0.26, 0.28, 0.29, 0.28), 0.17, ("IK",)),
    Sensor("GeoEye-1", _VNIR4, 11, 4, (0.23,) * 4, 0.16, ("GE1", "GeoEye")),
    Sensor("WorldView-4", _VNIR4, 11, 4, (0.23,) * 4, 0.16, ("WV4",)),
    Sensor("WorldView-2", ("coastal", "blue", "green", "yellow", "red", "red_edge", "nir1", "nir2"),
           11, 4, (0.35,) * 7 + (0.27,), 0.11, ("WV2",)),
    Sensor("WorldView-3", ("coastal", "blue", "green", "yellow", "red", "red_edge", "nir1", "nir2"),
           11, 4, (0.325, 0.355, 0.360, 0.350, 0.365, 0.360, 0.335, 0.315), 0.14, ("WV3",)),
    Sensor("GaoFen-2", _VNIR4, 10, 4, (0.3,) * 4, 0.15, ("GF2",)),
    # Landsat has no toolbox entry: the generic gains, at ratio 2.
    Sensor("Landsat-7", ("blue", "green", "red", "nir", "swir1", "swir2"), 8, 2,
           (0.3,) * 6, 0.15, ("Landsat7-ETM+", "L7", "ETM+")),
    Sensor("Landsat-8", ("blue", "green", "red", "nir"), 16, 2, (0.3,) * 4, 0.15,
           ("Landsat8-OLI", "L8", "OLI")),
    Sensor("generic", _VNIR4, 11, 4, (0.3,) * 4, 0.15, ("none", "unknown", "unknown-VHR-4band")),
):
    register_sensor(_s)

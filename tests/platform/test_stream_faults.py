"""Files that break after ingest: reads are retried, then skipped and recorded; the epoch goes on."""

from __future__ import annotations

import numpy as np
import pytest
from stream_helpers import by_tile, collect, direct_read, make_archive, rows_as_batch

from crossdiff.platform.stream import StreamConfig, TileReader, TileStream, with_retries


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """Three WV2 scenes ingested, then: scene 0's PAN deleted, scene 1's MS partly overwritten.

    Overwriting the middle fifth of the MS file with noise keeps its header, so
    it still opens and some tiles read, but the others fail inside GDAL's
    decompression: a read that fails mid-stream.
    """
    archive = make_archive(tmp_path_factory.mktemp("faults"), sensors=("WorldView-2",) * 3, punch=False)
    scenes = archive["scenes"]
    (scenes[0] / "pan.tif").unlink()
    ms = scenes[1] / "ms.tif"
    size = ms.stat().st_size
    with open(ms, "r+b") as f:
        f.seek(size // 5)
        f.write(np.random.default_rng(0).integers(0, 256, size // 5, dtype=np.uint8).tobytes())
    readable = {}
    for row in archive["table"].to_pylist():
        try:
            direct_read(row)
            readable[row["tile_id"]] = True
        except Exception:
            readable[row["tile_id"]] = False
    archive["readable"] = readable
    return archive


def test_with_retries_backs_off_then_gives_up():
    calls, errors = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OSError(f"transient {len(calls)}")
        return "ok"

    assert with_retries(flaky, retries=2, backoff_s=0.0, on_error=lambda k, e: errors.append(k)) == "ok"
    assert len(calls) == 3 and errors == [0, 1]

    def always():
        raise OSError("gone")

    with pytest.raises(OSError, match="gone") as info:
        with_retries(always, retries=1, backoff_s=0.0)
    assert info.value.attempts == 2


def test_transient_failure_is_retried_with_fresh_handles(broken):
    stream = TileStream(broken["table"], StreamConfig(split=None, shuffle=False, backoff_s=0.0))
    reader = TileReader(stream.settings)
    rows = rows_as_batch(stream.order(0))
    good = next(i for i, t in enumerate(rows["tile_id"]) if broken["readable"][t])
    batch = {k: v[good:good + 1] for k, v in rows.items()}
    real_read, failures = reader.read_tile, []

    def fail_once(src, row):
        if not failures:
            reader.cache.get(src.pan_uri)  # a handle that the retry must drop and reopen
            failures.append(1)
            raise OSError("connection reset")
        return real_read(src, row)

    reader.read_tile = fail_once
    out = reader(batch)
    assert out["tile_id"].tolist() == [rows["tile_id"][good]]
    assert reader.skipped == [] and reader.cache.opens >= 2


@pytest.mark.slow
def test_a_batch_that_loses_every_tile_yields_an_empty_block_of_the_right_shape(broken):
    stream = TileStream(broken["table"], StreamConfig(split=None, shuffle=False, retries=0))
    reader = TileReader(stream.settings)
    rows = rows_as_batch(stream.order(0))
    lost = [i for i, t in enumerate(rows["tile_id"]) if not broken["readable"][t]][:3]
    kept = [i for i, t in enumerate(rows["tile_id"]) if broken["readable"][t]][:1]
    empty = reader({k: v[lost] for k, v in rows.items()})
    full = reader({k: v[kept] for k, v in rows.items()})
    assert set(empty) == set(full)
    for key in empty:
        assert len(empty[key]) == 0 and empty[key].shape[1:] == full[key].shape[1:]
        assert empty[key].dtype == full[key].dtype or key in ("tile_id", "sensor")
    assert len(reader.skipped) == 3 and all(s.attempts == 1 for s in reader.skipped)


def test_missing_and_corrupt_files_are_skipped_and_recorded(broken, ray_local):
    # Manifest order and blocks of 4: scene 0 comes first, so whole blocks lose every tile.
    stream = TileStream(broken["manifest"], StreamConfig(split=None, retries=1, backoff_s=0.01, batch_size=4,
                                                         workers=2, with_lms=False, shuffle=False))
    got = collect(stream.dataset(0))
    readable = broken["readable"]
    good = {t for t, ok in readable.items() if ok}
    bad = set(readable) - good
    scenes = [s.name for s in broken["scenes"]]
    assert {t for t in bad if t.startswith(scenes[0])} == {t for t in readable if t.startswith(scenes[0])}
    assert any(t.startswith(scenes[1]) for t in bad) and any(t.startswith(scenes[1]) for t in good)

    # The epoch went on: every readable tile came out, in order, with its pixels.
    assert set(got["tile_id"].tolist()) == good
    order = [t for t in stream.order(0)["tile_id"].to_pylist() if t in good]
    assert got["tile_id"].tolist() == order
    rows = by_tile(broken["table"])
    i = got["tile_id"].tolist().index(next(iter(sorted(good))))
    np.testing.assert_allclose(got["pan"][i], direct_read(rows[got["tile_id"][i]])[0] / 2047 * 2 - 1, atol=1e-6)

    skipped = stream.skipped().to_pylist()
    assert {s["tile_id"] for s in skipped} == bad
    assert all(s["attempts"] == 2 and s["epoch"] == 0 for s in skipped)
    assert {s["uri"] for s in skipped if s["scene_id"] == scenes[0]} == {str(broken["scenes"][0] / "pan.tif")}
    assert {s["uri"] for s in skipped if s["scene_id"] == scenes[1]} == {str(broken["scenes"][1] / "ms.tif")}
    assert all(s["error"].startswith("RasterioIOError") for s in skipped)

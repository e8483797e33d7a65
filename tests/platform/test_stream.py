"""The tile stream: values, shapes, filtering, alignment and epoch order.

Most checks run the reader in-process on the same settings the Ray workers
get (fast, exact); a few run the real Ray Data pipeline on a 2-CPU local Ray
and compare it with the in-process result.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch
from stream_helpers import by_tile, collect, direct_read, make_archive, rows_as_batch

from crossdiff.models.resample import interp23tap, wald_pair
from crossdiff.platform.stream import (
    StreamConfig,
    TileReader,
    TileStream,
    add_lms,
    epoch_order,
    fourier_shift,
    make_samples,
    shuffle_regions,
)
from crossdiff.platform.stream.order import window_cache_mb
from crossdiff.platform.stream.reader import HandleCache, settle_reader_process
from crossdiff.platform.stream.samples import keep_mask, valid_fraction

WV2_MAX = 2**11 - 1


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_archive(tmp_path_factory.mktemp("stream"))


def in_process(stream: TileStream, epoch: int = 0) -> dict[str, np.ndarray]:
    """What the Ray workers produce for one epoch, computed by one reader here."""
    return TileReader(stream.settings)(rows_as_batch(stream.order(epoch)))


def test_original_values_equal_direct_reads(archive):
    stream = TileStream(archive["table"], StreamConfig(split=None, sensors=["WV2"], shuffle=False))
    out = in_process(stream)
    rows = by_tile(archive["table"])
    assert out["pan"].shape[1:] == (1, 128, 128) and out["ms"].shape[1:] == (8, 32, 32)
    assert out["lms"].shape[1:] == (8, 128, 128)
    for i, tile_id in enumerate(out["tile_id"]):
        pan_dn, ms_dn = direct_read(rows[tile_id])
        np.testing.assert_allclose(out["pan"][i], pan_dn / WV2_MAX * 2 - 1, atol=1e-6)
        np.testing.assert_allclose(out["ms"][i], ms_dn / WV2_MAX * 2 - 1, atol=1e-6)
    # lms is the 23-tap interpolation of ms (corner-aligned product: no shift).
    expected = interp23tap(torch.from_numpy(out["ms"]), 4).numpy()
    np.testing.assert_allclose(out["lms"], expected, atol=1e-5)
    assert out["pan"].min() >= -1 and out["pan"].max() <= 1


def test_blank_and_fill_tiles_are_dropped_and_counted(archive):
    stream = TileStream(archive["table"], StreamConfig(split=None, sensors=["WorldView-2"], shuffle=False))
    reader = TileReader(stream.settings)
    out = reader(rows_as_batch(stream.order(0)))
    punched = archive["punched"]
    assert set(punched) <= set(archive["table"]["tile_id"].to_pylist())  # the ingest kept them
    assert not set(punched) & set(out["tile_id"])
    assert len(out["tile_id"]) == stream.n_tiles - len(punched)
    scene = next(iter(punched)).split("/")[0]
    assert dict(reader.filtered) == {(scene, "nodata"): 1, (scene, "blank"): 1}
    # With the filter off, both come back.
    loose = TileStream(archive["table"], StreamConfig(split=None, sensors=["WV2"], min_valid=0.0, drop_blank=False))
    assert len(in_process(loose)["tile_id"]) == loose.n_tiles


def test_keep_mask_hand_cases():
    pan = np.ones((3, 1, 4, 4))
    pan[0, 0, 0, 0] = 5  # tile 0: fine
    pan[1, 0, :2] = 0  # tile 1: half of PAN is fill (no nodata declared -> 0)
    pan[1, 0, 2:, 0] = 7
    ms = np.arange(3 * 2 * 2 * 2, dtype=float).reshape(3, 2, 2, 2) + 1
    ms[2] = 3.0  # tile 2: every MS band constant -> blank (PAN too)
    keep, blank, low = keep_mask(pan, ms, [None, None, None], min_valid=0.9)
    assert keep.tolist() == [True, False, False]
    assert blank.tolist() == [False, False, True] and low.tolist() == [False, True, False]
    # A declared nodata makes an MS pixel fill when any band has it: 2 of 4 here.
    ms2 = ms[:1].copy()
    ms2[0, 0, 0, :] = -9  # band 0 only, top row
    assert keep_mask(pan[:1], ms2, [-9.0], min_valid=0.5)[2].tolist() == [False]
    assert keep_mask(pan[:1], ms2, [-9.0], min_valid=0.51)[2].tolist() == [True]
    assert keep_mask(pan[:1], ms2, [None], min_valid=1.0)[2].tolist() == [False]  # no nodata: -9 is data


def test_valid_fraction_compares_integer_pixels_with_any_nodata():
    # Fill values are compared in the pixels' dtype when exact there; a
    # fractional or out-of-range nodata never matches an integer pixel.
    pan = np.full((4, 1, 4, 4), 7, np.uint16)
    pan[:, 0, 0] = 0  # a quarter of each PAN is 0
    ms = np.full((4, 2, 2, 2), 7, np.uint16)
    ms[:, 1, 0, 0] = 0  # one MS pixel of four has a 0 in one band only
    got = valid_fraction(pan, ms, [None, 0.0, 7.5, 70000.0])
    # None: fill is 0 in every band (MS: none), PAN 1/4 -> 0.75; nodata 0: MS 1/4, PAN 1/4 -> 0.75;
    # 7.5 and 70000 cannot be uint16 pixels -> all valid.
    assert got.tolist() == [0.75, 0.75, 1.0, 1.0]
    pan[1] = 7  # only the MS fill is left for tile 1
    ms[1, 0, 1] = 0  # and it grows to 3 of 4 pixels (a band at 0 is enough with a declared nodata)
    assert valid_fraction(pan, ms, [None, 0.0, None, None])[1] == 0.25


def test_settle_reader_process_freezes_what_the_worker_holds():
    gc.unfreeze()
    try:
        settle_reader_process()
        assert gc.get_freeze_count() > 1000  # modules, Ray's and torch's included
    finally:
        gc.unfreeze()


def test_mixed_band_counts_need_a_filter(archive):
    with pytest.raises(ValueError, match="bands=<count>"):
        TileStream(archive["table"], StreamConfig(split=None))
    qb = TileStream(archive["table"], StreamConfig(split=None, bands=4))
    assert qb.sensors == ["QuickBird"] and qb.n_bands == 4 and qb.n_tiles == 16
    assert TileStream(archive["table"], StreamConfig(split=None, sensors=["QB"])).n_tiles == 16
    with pytest.raises(ValueError, match="no tiles match"):
        TileStream(archive["table"], StreamConfig(split=None, sensors=["IKONOS"]))


def test_reduced_mode_is_a_wald_pair_of_the_original_window(archive):
    stream = TileStream(archive["table"], StreamConfig(split=None, sensors=["QuickBird"], mode="reduced",
                                                       shuffle=False))
    out = in_process(stream)
    n = stream.n_tiles
    assert out["pan"].shape == (n, 1, 32, 32) and out["ms"].shape == (n, 4, 8, 8)
    assert out["lms"].shape == (n, 4, 32, 32) and out["gt"].shape == (n, 4, 32, 32)
    rows = by_tile(archive["table"])
    pan_dn, ms_dn = map(np.stack, zip(*(direct_read(rows[t]) for t in out["tile_id"]), strict=True))
    np.testing.assert_allclose(out["gt"], ms_dn / WV2_MAX * 2 - 1, atol=1e-6)  # gt: the original MS
    ref = wald_pair(torch.from_numpy(ms_dn / WV2_MAX), torch.from_numpy(pan_dn / WV2_MAX), "QuickBird")
    for key in ("pan", "ms", "lms"):
        np.testing.assert_allclose(out[key], ref[key].numpy() * 2 - 1, atol=1e-5)


def test_epoch_order_is_seeded_and_windowed():
    scene = np.repeat(np.arange(10), 5)  # 10 scenes of 5 tiles
    order = epoch_order(scene, seed=1, epoch=0, window=3)
    assert sorted(order.tolist()) == list(range(50))
    assert np.array_equal(order, epoch_order(scene, seed=1, epoch=0, window=3))
    assert not np.array_equal(order, epoch_order(scene, seed=1, epoch=1, window=3))
    assert not np.array_equal(order, epoch_order(scene, seed=2, epoch=0, window=3))
    # Windows of 3 scenes: the first 15 rows hold 3 whole scenes, shuffled among themselves.
    first = scene[order[:15]]
    assert len(set(first.tolist())) == 3 and all((first == s).sum() == 5 for s in set(first.tolist()))
    assert len(set(scene[order[:15]].tolist())) < len(set(scene[epoch_order(scene, 1, 0, None)[:15]].tolist()))
    runs = scene[epoch_order(scene, seed=1, epoch=0, window=1)]
    assert (np.diff(runs) != 0).sum() == 9  # one window per scene: each scene's tiles contiguous


def test_shuffle_regions_cut_scenes_into_squares():
    src = np.array([0, 0, 0, 0, 1])
    rows, cols = np.array([0, 0, 300, 300, 0]), np.array([0, 300, 0, 300, 0])
    regions = shuffle_regions(src, rows, cols, 256)
    assert len(set(regions.tolist())) == 5 and regions.min() == 0 and regions.max() == 4
    assert shuffle_regions(src, rows, cols, 512).tolist() == [0, 0, 0, 0, 1]  # a square holds the scene
    assert shuffle_regions(src, rows, cols, None).tolist() == [0, 0, 0, 0, 1]


def test_shuffle_windows_of_regions_keep_each_region_together(archive):
    # 512-px scenes, 128-px tiles: 256-px regions hold 2x2 tiles; one region per window.
    cfg = StreamConfig(split=None, sensors=["WorldView-2"], shuffle_region=256, shuffle_window=1)
    rows = TileStream(archive["table"], cfg).order(0).to_pylist()
    keys = [(r["src"], r["pan_row"] // 256, r["pan_col"] // 256) for r in rows]
    changes = sum(a != b for a, b in zip(keys, keys[1:], strict=False))
    assert changes == len(set(keys)) - 1  # every region's tiles are contiguous
    assert len(set(keys)) == 2 * 4  # two WV2 scenes of four regions each
    whole = TileStream(archive["table"], StreamConfig(split=None, sensors=["WorldView-2"], shuffle_window=1))
    scenes = [r["src"] for r in whole.order(0).to_pylist()]
    assert sum(a != b for a, b in zip(scenes, scenes[1:], strict=False)) == 1  # small scenes: one region each


def test_gdal_cache_is_sized_to_a_shuffle_window(archive):
    # 16 regions of 2048 px, 8 bands at ratio 4, uint16: 16 * 2048**2 * 1.5 px * 2 B = 192 MiB decoded.
    need = 16 * 2048**2 * 1.5 * 2 / 2**20
    assert need <= window_cache_mb(16, 2048, 4, 8, 2) <= 1.25 * need
    assert window_cache_mb(16, 1024, 4, 8, 2) < window_cache_mb(16, 2048, 4, 8, 2)
    assert window_cache_mb(1, 64, 4, 4, 1) == 32 and window_cache_mb(16, 16384, 4, 8, 2) == 1024
    assert window_cache_mb(None, 2048, 4, 8, 2) == 32  # a global shuffle has no window to hold
    stream = TileStream(archive["table"], StreamConfig(split=None, sensors=["WorldView-2"]))
    assert stream.settings.gdal_cache_mb == window_cache_mb(16, 512, 4, 8, 2)  # the scenes are smaller than 2048
    fixed = TileStream(archive["table"], StreamConfig(split=None, sensors=["WorldView-2"], gdal_cache_mb=48))
    assert fixed.settings.gdal_cache_mb == 48
    for bad in ({"shuffle_region": 0}, {"gdal_cache_mb": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            StreamConfig(**bad)


def test_blocks_are_a_power_of_two_within_the_byte_cap(archive, monkeypatch):
    import crossdiff.platform.stream.dataset as ds

    stream = TileStream(archive["table"], StreamConfig(split=None, sensors=["WorldView-2"]))
    no_lms = TileStream(archive["table"], StreamConfig(split=None, sensors=["WorldView-2"], with_lms=False))
    assert no_lms.block_tiles == ds.MAX_BLOCK_TILES == 256  # 96 KB a tile: the tile cap, not the byte cap
    assert stream.block_tiles == 128  # 608 KB a tile with lms: 161 fit in 96 MB
    # A short stream (32 tiles on 2 readers) gets two blocks a reader; a given batch_size is kept.
    two = TileStream(archive["table"], StreamConfig(split=None, sensors=["WorldView-2"], workers=2))
    assert two.read_block_tiles(32) == 8 and two.read_block_tiles(10**6) == 128
    given = TileStream(archive["table"], StreamConfig(split=None, sensors=["WorldView-2"], workers=2, batch_size=24))
    assert given.read_block_tiles(32) == 24
    tile_bytes = 4 * (128 * 128 + 8 * 32 * 32 + 8 * 128 * 128)  # pan, ms, lms of a 128-px 8-band tile
    monkeypatch.setattr(ds, "BLOCK_BYTES", 20 * tile_bytes)
    assert stream.block_tiles == 16
    monkeypatch.setattr(ds, "BLOCK_BYTES", tile_bytes - 1)
    assert stream.block_tiles == 1  # a tile larger than the cap still streams, one per block
    fixed = TileStream(archive["table"], StreamConfig(split=None, sensors=["WorldView-2"], batch_size=24))
    assert fixed.block_tiles == 24


def test_fourier_shift_hand_cases():
    w = 32
    x = torch.arange(w, dtype=torch.float64)
    wave = torch.cos(2 * torch.pi * 3 * x / w).expand(2, 1, 4, w).clone()
    shifted = fourier_shift(wave, torch.tensor([0.5, -2.0]), torch.zeros(2))
    np.testing.assert_allclose(shifted[0, 0, 0], torch.cos(2 * torch.pi * 3 * (x + 0.5) / w), atol=1e-9)
    np.testing.assert_allclose(shifted[1], torch.roll(wave[1], 2, dims=-1), atol=1e-9)  # integer: a roll
    assert fourier_shift(wave, torch.zeros(2), torch.zeros(2)) is wave


def test_landsat8_lms_is_sampled_at_the_pan_pixel_positions(tmp_path, scenes_dir):
    """The L8 B8 grid is half a PAN pixel off the MS grid (ms_shift 0.25): lms must follow it.

    Hand-worked: at ratio 2 the 23-tap interpolator puts MS sample i at PAN
    index 2i + 1; at ratio 4 at index 4i + 2. PAN pixel m of a tile whose
    corner is 0.25 MS pixel into the MS window sits at MS coordinate
    (m - 1)/2 + 0.25, which is x4 index 2m + 1: the aligned lms must match
    ``interp23tap(ms, 4)[..., 1::2, 1::2]``, an independent interpolation.
    """
    from archive_helpers import L8, link_scene

    from crossdiff.platform.archive.ingest import ingest_archive

    link_scene(L8, tmp_path / "archive" / L8)
    ingest_archive(str(tmp_path / "archive"), str(tmp_path / "m.parquet"), workers=0, progress=False)
    stream = TileStream(str(tmp_path / "m.parquet"), StreamConfig(split=None, shuffle=False, min_valid=0.0))
    assert set(stream.tiles["ms_shift_x"].to_pylist()) == {0.25}
    assert set(stream.tiles["ms_shift_y"].to_pylist()) == {0.25}
    out = in_process(stream)
    ms = torch.from_numpy(out["ms"]).double()
    at_pan_positions = interp23tap(ms, 4)[..., 1::2, 1::2].numpy()
    unshifted = interp23tap(ms, 2).numpy()
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))  # away from the circular borders
    err_aligned = np.abs(out["lms"] - at_pan_positions)[inner].mean()
    err_unshifted = np.abs(unshifted - at_pan_positions)[inner].mean()
    assert err_aligned < 0.2 * err_unshifted

    # A consumer of the stream without lms computes the same lms from the shift columns it carries.
    lean = in_process(TileStream(str(tmp_path / "m.parquet"), StreamConfig(split=None, shuffle=False, min_valid=0.0,
                                                                            with_lms=False)))
    assert "lms" not in lean and set(lean["ms_shift_x"]) == set(lean["ms_shift_y"]) == {0.25}
    np.testing.assert_array_equal(add_lms(lean)["lms"], out["lms"])


def test_scenes_of_different_dtypes_and_bit_depths_share_a_stream(tmp_path, scenes_dir):
    """GeoEye-1 (8-bit uint8) and a generic VHR scene (11-bit uint16), both 4-band, in one batch."""
    from archive_helpers import link_scene

    from crossdiff.platform.archive.ingest import ingest_archive

    for name in ("ge1_sample", "vhr4_sample"):
        link_scene(name, tmp_path / "archive" / name)
    ingest_archive(str(tmp_path / "archive"), str(tmp_path / "m.parquet"), workers=0, progress=False)
    stream = TileStream(str(tmp_path / "m.parquet"), StreamConfig(split=None, bands=4, with_lms=False,
                                                                  shuffle=False, min_valid=0.0))
    assert {s.dtype for s in stream.settings.sources} == {"uint8", "uint16"}
    out = in_process(stream)
    rows = by_tile(stream.tiles)
    for i, tile_id in enumerate(out["tile_id"]):
        row = rows[tile_id]
        pan_dn, ms_dn = direct_read(row)
        top = 2.0 ** row["bits"] - 1
        np.testing.assert_allclose(out["pan"][i], pan_dn / top * 2 - 1, atol=1e-6)
        np.testing.assert_allclose(out["ms"][i], ms_dn / top * 2 - 1, atol=1e-6)


def test_handle_cache_is_bounded(archive):
    cache = HandleCache(max_open=2)
    uris = [str(s / "pan.tif") for s in archive["scenes"]]
    for uri in uris + uris[-1:]:
        cache.get(uri)
    assert len(cache) == 2 and cache.opens == 3  # the repeated file was reused, the first closed
    cache.close()
    assert len(cache) == 0


def test_columns_are_chosen_in_the_reader(archive):
    with pytest.raises(ValueError, match="this stream has only"):
        StreamConfig(columns=["pan", "gt"])  # gt exists in reduced mode only
    assert StreamConfig(mode="reduced", columns=["gt"]).columns == ("gt",)
    cfg = StreamConfig(split=None, sensors=["WorldView-2"], columns=["pan", "lms"])
    stream = TileStream(archive["manifest"], cfg)
    out = TileReader(stream.settings)(rows_as_batch(stream.order(0).slice(0, 6)))
    assert set(out) == {"pan", "lms"}
    assert out["lms"].shape[1:] == (stream.n_bands, *stream.pan_shape) and len(out["pan"]) == len(out["lms"]) > 0
    full = TileReader(TileStream(archive["manifest"], StreamConfig(split=None, sensors=["WorldView-2"])).settings)
    ref = full(rows_as_batch(stream.order(0).slice(0, 6)))
    np.testing.assert_array_equal(out["lms"], ref["lms"])


def test_make_samples_of_no_tiles_and_of_tiles_with_different_shifts():
    empty = make_samples(np.zeros((0, 1, 16, 16), np.uint16), np.zeros((0, 4, 4, 4), np.uint16), bits=np.array([]),
                         ratio=4, shift_x=np.zeros(0), shift_y=np.zeros(0), sensors=[])
    assert {k: v.shape for k, v in empty.items()} == {"pan": (0, 1, 16, 16), "ms": (0, 4, 4, 4), "lms": (0, 4, 16, 16)}
    ms = np.random.default_rng(0).integers(0, 2047, (2, 4, 8, 8)).astype(np.uint16)
    pan = np.zeros((2, 1, 32, 32), np.uint16)
    mixed = make_samples(pan, ms, bits=np.array([11, 11]), ratio=4, shift_x=np.array([0.25, 0.0]),
                         shift_y=np.array([0.0, -0.5]), sensors=["WorldView-2"] * 2, chunk=2)
    for i, (sx, sy) in enumerate([(0.25, 0.0), (0.0, -0.5)]):  # each tile as if it were alone
        alone = make_samples(pan[i:i + 1], ms[i:i + 1], bits=np.array([11]), ratio=4, shift_x=np.array([sx]),
                             shift_y=np.array([sy]), sensors=["WorldView-2"])
        assert alone["lms"].shape == (1, 4, 32, 32)
        np.testing.assert_allclose(mixed["lms"][i], alone["lms"][0], atol=1e-5)


def test_add_lms_on_the_consumer_equals_the_readers_lms():
    rng = np.random.default_rng(5)
    pan = rng.integers(1, WV2_MAX, (4, 1, 64, 64), dtype=np.uint16)
    ms = rng.integers(1, WV2_MAX, (4, 8, 16, 16), dtype=np.uint16)
    for sx, sy in ((np.zeros(4), np.zeros(4)), (np.full(4, 0.25), np.full(4, 0.25)),
                   (np.array([0.25, 0.0, -0.5, 0.125]), np.array([0.0, -0.25, 0.5, 0.125]))):
        ref = make_samples(pan, ms, bits=np.full(4, 11), ratio=4, shift_x=sx, shift_y=sy, sensors=["WV2"] * 4)
        batch = {"pan": torch.from_numpy(ref["pan"]), "ms": torch.from_numpy(ref["ms"]),
                 "ms_shift_x": torch.from_numpy(sx).float(), "ms_shift_y": torch.from_numpy(sy).float()}
        got = add_lms(batch)  # torch in (as Ray Data's torch batches), CPU: one tile at a time, like the readers
        assert set(got) == {*batch, "lms"} and isinstance(got["lms"], torch.Tensor)
        np.testing.assert_array_equal(got["lms"].numpy(), ref["lms"])
        whole = add_lms(batch, chunk=None)["lms"]  # the whole batch at once (the GPU default)
        np.testing.assert_allclose(whole.numpy(), ref["lms"], atol=1e-5)
    with pytest.raises(KeyError, match="ms_shift_x"):
        add_lms({"pan": batch["pan"], "ms": batch["ms"]})
    with pytest.raises(ValueError, match="integer multiple"):
        add_lms({**batch, "pan": batch["pan"][..., :60]})


def test_signed_samples_are_scaled_dns_and_leave_the_input_alone():
    from crossdiff.platform.stream.samples import to_signed

    dn = np.array([[[[0.0, 1023.5, 2047.0, 4000.0]]], [[[0.0, 127.5, 255.0, 300.0]]]], np.float32)
    before = dn.copy()
    got = to_signed(dn, np.array([11, 8]))
    np.testing.assert_allclose(got[0, 0, 0], [-1.0, 0.0, 1.0, 1.0], atol=1e-6)  # 4000 > 2047: clipped
    np.testing.assert_allclose(got[1, 0, 0], [-1.0, 0.0, 1.0, 1.0], atol=1e-6)
    assert got.dtype == np.float32 and np.array_equal(dn, before)


def test_make_samples_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        make_samples(np.zeros((1, 1, 8, 8)), np.zeros((1, 1, 2, 2)), bits=np.array([11]), ratio=4,
                     shift_x=np.zeros(1), shift_y=np.zeros(1), sensors=["generic"], mode="full")


@pytest.mark.slow
def test_ray_stream_equals_in_process_and_epochs_reorder(archive, ray_local):
    cfg = StreamConfig(split=None, sensors=["WorldView-2"], seed=3, batch_size=5, workers=2)
    stream = TileStream(archive["manifest"], cfg)
    got = collect(stream.dataset(0))
    ref = in_process(stream, 0)
    assert got["tile_id"].tolist() == ref["tile_id"].tolist()  # same seeded order, same filtering
    for key in ("pan", "ms", "lms"):
        np.testing.assert_allclose(got[key], ref[key], atol=1e-6)
    assert set(got["epoch"].tolist()) == {0}

    one_worker = TileStream(archive["manifest"], StreamConfig(**{**cfg.__dict__, "workers": 1, "with_lms": False}))
    again = collect(one_worker.dataset(0))
    assert again["tile_id"].tolist() == got["tile_id"].tolist()  # order independent of worker count
    np.testing.assert_array_equal(add_lms(again)["lms"], got["lms"])  # lms computed by the consumer instead
    two_epochs = collect(one_worker.dataset([1, 2]))
    e1 = two_epochs["tile_id"][two_epochs["epoch"] == 1].tolist()
    e2 = two_epochs["tile_id"][two_epochs["epoch"] == 2].tolist()
    assert sorted(e1) == sorted(e2) == sorted(got["tile_id"].tolist())
    assert e1 != got["tile_id"].tolist() and e1 != e2  # a new order every epoch
    assert stream.skipped().num_rows == 0
    assert sum(stream.filtered().values()) == len(archive["punched"])

    # Default blocks on a stream this short: two for each of the 2 readers (32 tiles, 2 of them filtered).
    short = TileStream(archive["manifest"], StreamConfig(split=None, sensors=["WorldView-2"], workers=2))
    sizes = [m.num_rows for b in short.dataset(0).iter_internal_ref_bundles() for m in b.metadata]
    assert len(sizes) == 4 and max(sizes) == 8 and sum(sizes) == short.n_tiles - len(archive["punched"])


def test_an_in_process_reader_leaves_its_callers_process_settings(archive):
    gc.unfreeze()
    TileReader(TileStream(archive["table"], StreamConfig(split=None, bands=4)).settings)
    assert gc.get_freeze_count() == 0  # only reader actors, which own their process, settle it

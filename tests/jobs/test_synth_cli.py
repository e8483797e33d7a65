"""The `crossdiff synth` subcommand: writes N labelled synthetic scenes and says where."""

from __future__ import annotations

import argparse
import importlib
import json

import pytest

from crossdiff.jobs import synth


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="crossdiff synth")
    synth.configure(parser)
    return synth.main(parser.parse_args(argv))


def test_synth_writes_n_scenes(tmp_path, capsys):
    out = tmp_path / "archive"
    rc = _run([str(out), "--scenes", "3", "--seed", "1", "--sensor", "WV2", "Landsat-7",
               "--pan-size", "64", "--truth"])
    assert rc == 0
    scenes = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(scenes) == 3
    metas = [json.loads((p / "scene.json").read_text()) for p in scenes]
    assert [m["sensor"] for m in metas] == ["WorldView-2", "Landsat-7", "WorldView-2"]
    assert all(m["synthetic"] and m["pan_shape"] == [64, 64] for m in metas)
    assert all((p / "pan.tif").is_file() and (p / "ms.tif").is_file() and (p / "truth.tif").is_file()
               for p in scenes)
    lines = capsys.readouterr().out.strip().splitlines()
    assert str(out) in lines[0] and "3 synthetic scenes" in lines[0]
    assert "WorldView-2 x2" in lines[1] and "Landsat-7 x1" in lines[1]


def test_synth_generic_band_count(tmp_path):
    assert _run([str(tmp_path), "--scenes", "1", "--sensor", "generic", "--bands", "5",
                 "--pan-size", "64"]) == 0
    (scene,) = list(tmp_path.iterdir())
    assert len(json.loads((scene / "scene.json").read_text())["bands"]) == 5


@pytest.mark.parametrize("argv", [["--sensor", "NoSuchSat"], ["--pan-size", "66"], ["--scenes", "0"]])
def test_synth_bad_input_returns_2_with_a_message(tmp_path, capsys, argv):
    assert _run([str(tmp_path / "x"), *argv]) == 2
    assert "crossdiff synth:" in capsys.readouterr().err


def test_synth_is_reachable_from_the_crossdiff_command(tmp_path):
    cli = importlib.import_module("crossdiff.jobs.cli")
    for module, _ in cli.JOBS.values():  # other jobs may not be written yet
        if importlib.util.find_spec(f"crossdiff.jobs.{module}") is None:
            pytest.skip(f"crossdiff.jobs.{module} not written yet")
    assert cli.main(["synth", str(tmp_path), "--scenes", "2", "--pan-size", "64"]) == 0
    assert len([p for p in tmp_path.iterdir() if (p / "scene.json").is_file()]) == 2

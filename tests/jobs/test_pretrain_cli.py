"""`crossdiff pretrain` validates its job file before it touches a cluster."""

from __future__ import annotations

from pathlib import Path

import yaml

from crossdiff.jobs.cli import main
from crossdiff.platform.train.config import load_pretrain_config

EXAMPLE = Path(__file__).resolve().parents[2] / "infra" / "examples" / "pretrain.yaml"


def test_example_job_file_is_valid():
    cfg = load_pretrain_config(EXAMPLE)
    assert cfg.model_config().bands == 8 and cfg.scale.use_gpu and cfg.run.roles == ("p2m", "m2p")


def test_bad_key_exits_2_with_the_allowed_keys(tmp_path, capsys):
    body = yaml.safe_load(EXAMPLE.read_text())
    body["run"]["max_step"] = 10
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(body))
    assert main(["pretrain", "--config", str(job), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "max_step" in err and "max_steps" in err


def test_override_with_bad_value_exits_2(tmp_path, capsys):
    assert main(["pretrain", "--config", str(EXAMPLE), "--set", "run.nets=all", "--out", str(tmp_path)]) == 2
    assert "nets" in capsys.readouterr().err

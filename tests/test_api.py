"""The public API of ``nerfocal`` and the shared command-line conventions."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fixtures import ROOT

import nerfocal
from nerfocal.cli import build_parser


def test_every_public_name_resolves_to_its_definition():
    from nerfocal.predict import Predictor
    from nerfocal.training import train

    for name in nerfocal.__all__[1:]:
        assert getattr(nerfocal, name) is not None, name
    assert nerfocal.Predictor is Predictor and nerfocal.train is train
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = nerfocal.nope  # type: ignore[attr-defined]


def test_importing_the_package_loads_no_torch():
    code = "import sys, nerfocal; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("flag", ["--input-format", "--input_format"])
def test_predict_accepts_both_flag_spellings(flag: str):
    args = build_parser().parse_args(["predict", "--model", "m", flag, "conll", "--batch_tokens", "99"])
    assert args.input_format == "conll" and args.batch_tokens == 99


def test_evaluate_accepts_both_flag_spellings():
    args = build_parser().parse_args(["evaluate", "--model", "m", "--data", "d", "--tag_scheme", "IOB1"])
    assert args.tag_scheme == "IOB1"


def test_train_help_shows_nerfocal_defaults(capsys: pytest.CaptureFixture[str]):
    from nerfocal.cli import main

    assert main(["train", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "Training batch size per device (nerfocal default 32). (default: 32)" in out
    assert "(default: group_by_length)" in out
    assert "epoch, best. (default: no)" in out

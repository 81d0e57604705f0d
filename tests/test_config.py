"""YAML + command-line configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from nerfocal.config import parse_config


def test_yaml_sets_defaults_and_the_command_line_wins(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("loss: focal\ngamma: 1.5\nalpha: {O: 0.8}\nlearning_rate: 3.0e-5\noutput_dir: out\n")
    _, data, loss, args = parse_config([str(cfg), "--gamma", "3", "--max_length", "64"])
    assert loss.gamma == 3.0 and loss.alpha == {"O": 0.8}
    assert data.max_length == 64 and args.learning_rate == 3e-5 and args.output_dir == "out"
    assert args.train_sampling_strategy == "group_by_length"  # nerfocal's default batching
    assert args.include_num_input_tokens_seen == "non_padding"
    assert parse_config(["--include_num_input_tokens_seen", "no"])[3].include_num_input_tokens_seen == "no"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--gamma", "-0.5"], "gamma: expected a number >= 0"),
        (["--margin", "1.2"], r"margin: expected a number in \(0.5, 1\)"),
        (["--loss", "hinge"], "loss: expected one of"),
        (["--alpha", "[0.1, oops]"], "alpha: expected"),
        (["--adaptive_gammas", "5", "3", "1"], "adaptive_gammas: expected 2 values"),
    ],
)
def test_invalid_values_name_the_key(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_config(argv)


def test_alpha_forms_from_the_command_line() -> None:
    assert parse_config(["--alpha", "0.75"])[2].alpha == 0.75
    assert parse_config(["--alpha", "auto"])[2].alpha == "auto"
    assert parse_config(["--alpha", "[1, 2]"])[2].alpha == [1.0, 2.0]
    assert parse_config([])[2].alpha is None


def test_shipped_configs_parse() -> None:
    for path in sorted(Path(__file__).resolve().parents[1].glob("configs/*.yaml")):
        parse_config([str(path)])

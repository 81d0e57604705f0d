"""The README tells the truth: its options table is generated, and every command in it runs.

`nerfocal train/predict/evaluate` commands from the README's code blocks are run here on a tiny model
(the encoder swapped for a tiny random BERT, training cut to 2 steps); `accelerate launch` lines are
checked to parse; scripts and configs they name must exist. The two quick-start scripts are run
by CI (scripts/test.sh) and by the demo.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest
from fixtures import ROOT, build_tiny_model

README = (ROOT / "README.md").read_text(encoding="utf-8")
sys.path.insert(0, str(ROOT / "scripts"))


def readme_commands() -> list[list[str]]:
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                words = shlex.split(line)
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                    words = words[1:]  # environment assignments
                commands.append(words)
    return commands


def test_options_table_is_the_generated_one() -> None:
    from options_table import options_table

    table = README.split("<!-- options-table -->\n")[1].split("\n<!-- /options-table -->")[0]
    assert table == options_table(), "run: python scripts/options_table.py and paste it into the README"


def test_linked_files_exist() -> None:
    for link in re.findall(r"\]\(([^)#]+)\)", README):
        if not link.startswith("http"):
            assert (ROOT / link).exists(), link


def _tiny_overrides(model: Path, out: Path) -> list[str]:
    """Flags that swap the encoder for a tiny one and cut training to 2 CPU steps."""
    return [
        "--model_name_or_path",
        str(model),
        "--max_steps",
        "2",
        "--output_dir",
        str(out),
        "--disable_tqdm",
        "true",
        "--use_cpu",
        "true",
        "--max_length",
        "64",
    ]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nerfocal.cli.train import main

    tmp = tmp_path_factory.mktemp("readme")
    encoder = build_tiny_model(tmp / "encoder", labels=["O", "B-X"])
    out = tmp / "sample"
    args = ["configs/sample.yaml", *_tiny_overrides(encoder, out), "--logging_steps", "1"]
    assert main(args) == 0
    return out


def test_every_readme_command_runs(tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nerfocal.cli import main
    from nerfocal.config import parse_config

    monkeypatch.chdir(ROOT)
    seen = set()
    trained = 0
    for cmd in readme_commands():
        if cmd[:2] == ["bash", "scripts/demo.sh"] or cmd[:2] == ["bash", "scripts/test.sh"]:
            assert (ROOT / cmd[1]).is_file()
            seen.add(cmd[1])
        elif cmd[:1] == ["pip"]:
            continue
        elif cmd[:2] == ["accelerate", "launch"]:
            rest = cmd[2:]
            while rest and rest[0].startswith("--"):
                rest = rest[2:]  # accelerate's own options
            assert rest[0] == "scripts/train_ner.py" and (ROOT / rest[0]).is_file()
            parse_config(rest[1:])
            seen.add("accelerate")
        elif cmd[:2] == ["nerfocal", "tune"]:
            # one trial of a tiny encoder, 1 epoch, in place of the README's budget
            args = [a if a != "outputs/tune" else str(tmp_path / "tune") for a in cmd[2:]]
            args = [*args, *_tiny_overrides(tiny_run, tmp_path / "tune-run")[:2], "--trials", "1"]
            args += ["--num_train_epochs", "1", "--max_train_samples", "64", "--use_cpu", "true"]
            assert main(["tune", *args]) == 0, cmd
            seen.add("tune")
        elif cmd[:2] == ["nerfocal", "train"]:
            trained += 1
            cmd = [str(tmp_path / "tune" / "best.yaml") if a == "outputs/tune/best.yaml" else a for a in cmd]
            args = [*cmd[2:], *_tiny_overrides(tiny_run, tmp_path / f"train{trained}")]
            if "../shared" in " ".join(cmd) and not (ROOT.parent / "shared" / "data").is_dir():
                parse_config(args)
                continue
            if "dataset_name" in " ".join(cmd) or "conll2003.yaml" in cmd[2]:
                parse_config(args)  # hub dataset or hours of training: options checked only
                continue
            assert main(["train", *args]) == 0, cmd
            seen.add("train")
        elif cmd[:1] == ["nerfocal"]:
            args = [str(tiny_run) if a == "outputs/sample" else a for a in cmd[1:]]
            args = [
                str(tmp_path / a) if i and args[i - 1] == "--output" and "/" not in a else a
                for i, a in enumerate(args)
            ]
            args = [str(tmp_path / Path(a).name) if a.startswith("outputs/sample/") else a for a in args]
            assert main(args) == 0, cmd
            seen.add(cmd[1])
        elif cmd[:1] == ["echo"]:
            continue  # the piped predict example is run by the demo
        elif cmd[:1] == ["python"]:
            assert (ROOT / cmd[1]).is_file(), cmd
        else:
            pytest.fail(f"README command not covered by this test: {cmd}")
    expected = {"scripts/demo.sh", "scripts/test.sh", "train", "predict", "evaluate", "accelerate", "tune"}
    assert expected <= seen

"""Outputs never destroy what they write to; interrupts leave no temporary file; exact stdin decode errors.

See docs/robustness.md (cases 45 to 48, 50 and 52). Device tests use a fresh device node in ``tmp_path`` (the
same device numbers as ``/dev/null`` / ``/dev/full``) when this process may create one, else the real
``/dev/null`` / ``/dev/full``.
"""

from __future__ import annotations

import ast
import errno
import io
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from fixtures import IOB2_LABELS, ROOT, save_tiny_model

from nerfocal.cli import main as cli_main

TEXT = "Angela Merkel visited Paris .\nThe United Nations met in Berlin .\n\nMüller , Zoë !\n"


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Any:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model"), IOB2_LABELS, max_length=24)


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def device(tmp_path: Path, real: str) -> Path:
    """A character device node like ``real`` in ``tmp_path`` if allowed, else ``real`` itself."""
    node = tmp_path / Path(real).name
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.stat(real).st_rdev)
        with node.open("w") as handle:
            handle.write("")
    except OSError:
        node.unlink(missing_ok=True)
        return Path(real)
    return node


def predict(model_dir: Path, source: Path | str, output: Path | str, *extra: str) -> list[str]:
    argv = ["predict", "--model", str(model_dir), "--input", str(source), "--output", str(output)]
    return [*argv, "--quiet", *extra]


def one_line(err: str, command: str = "predict") -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"nerfocal {command}: "), err
    return lines[0]


def test_io_is_a_leaf_and_ignore_index_is_defined_once() -> None:
    import re

    from nerfocal.labels import IGNORE_INDEX

    definitions = [
        p for p in (ROOT / "nerfocal").rglob("*.py") if re.search(r"^IGNORE_INDEX\s*=", p.read_text(), re.M)
    ]
    assert definitions == [ROOT / "nerfocal" / "labels.py"]
    tree = ast.parse((ROOT / "nerfocal" / "io.py").read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and m.startswith("nerfocal")}
    assert IGNORE_INDEX == -100


def test_predict_to_a_character_device_writes_through_and_keeps_the_device(
    tmp_path: Path, model_dir: Path, text_file: Path
) -> None:
    null = device(tmp_path, "/dev/null")
    assert cli_main(predict(model_dir, text_file, null)) == 0
    assert stat.S_ISCHR(os.stat(null).st_mode)  # not turned into a regular file
    assert not list(tmp_path.glob(".*.tmp"))


def test_predict_to_a_fifo_reaches_its_reader(tmp_path: Path, model_dir: Path, text_file: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    assert cli_main(predict(model_dir, text_file, fifo)) == 0
    reader.join(timeout=20)
    assert received, "the FIFO's reader got nothing"
    records = [json.loads(line) for line in received[0].decode("utf-8").splitlines()]
    assert [r["text"] for r in records] == TEXT.splitlines()
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_predict_through_a_symlink_updates_its_target_and_keeps_the_link(
    tmp_path: Path, model_dir: Path, text_file: Path
) -> None:
    target = tmp_path / "real" / "out.jsonl"
    target.parent.mkdir()
    target.write_text("stale\n", encoding="utf-8")
    link = tmp_path / "out.jsonl"
    link.symlink_to(target)
    assert cli_main(predict(model_dir, text_file, link)) == 0
    assert link.is_symlink() and link.resolve() == target.resolve()
    assert len(target.read_text(encoding="utf-8").splitlines()) == 4
    assert not list(tmp_path.rglob(".*.tmp"))


def test_output_that_is_an_input_is_refused_and_the_input_kept(
    tmp_path: Path, model_dir: Path, text_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    link = tmp_path / "alias.txt"
    link.symlink_to(text_file)
    for output in (text_file, link):
        assert cli_main(predict(model_dir, text_file, output)) == 2
        line = one_line(capsys.readouterr().err)
        assert f"--output {output}" in line and str(text_file) in line and "same file" in line
        assert text_file.read_text(encoding="utf-8") == TEXT
    gold = tmp_path / "gold.conll"
    gold.write_text("Paris B-LOC\nis O\n", encoding="utf-8")
    argv = ["evaluate", "--model", str(model_dir), "--data", str(gold), "--output", str(gold), "--quiet"]
    assert cli_main(argv) == 2
    assert "same file" in one_line(capsys.readouterr().err, "evaluate")
    assert gold.read_text(encoding="utf-8") == "Paris B-LOC\nis O\n"
    # report: report.md of the report folder would be the --data file
    data = tmp_path / "report.md"
    data.write_text("Paris B-LOC\n", encoding="utf-8")
    argv = ["report", str(tmp_path), "--data", str(data), "--format", "md"]
    assert cli_main(argv) == 2
    assert "same file" in one_line(capsys.readouterr().err, "report")
    assert data.read_text(encoding="utf-8") == "Paris B-LOC\n"


def test_check_not_input_skips_stdout_new_paths_and_devices(tmp_path: Path) -> None:
    from nerfocal.io import check_not_input

    source = tmp_path / "in.txt"
    source.write_text("x\n", encoding="utf-8")
    check_not_input("-", "-")
    check_not_input(tmp_path / "new.jsonl", source)
    check_not_input("/dev/null", "/dev/null")
    with pytest.raises(ValueError, match=r"--data-out .*in.txt.*same file"):
        check_not_input(tmp_path / "." / "in.txt", None, source, option="--data-out")


def test_a_full_device_is_a_one_line_error_and_stays_a_device(
    tmp_path: Path, model_dir: Path, text_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full = device(tmp_path, "/dev/full")
    assert cli_main(predict(model_dir, text_file, full)) == 2
    line = one_line(capsys.readouterr().err)
    assert f"{full}: write failed (No space left on device)" in line
    assert stat.S_ISCHR(os.stat(full).st_mode)


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path,
    model_dir: Path,
    text_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n", encoding="utf-8")
    real_fdopen = os.fdopen

    class Full(io.StringIO):
        def write(self, data: str) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        real_fdopen(fd).close()
        return Full()

    monkeypatch.setattr(os, "fdopen", fdopen)
    assert cli_main(predict(model_dir, text_file, out)) == 2
    line = one_line(capsys.readouterr().err)
    assert f"{out}: write failed (No space left on device); the file was left as it was" in line
    assert out.read_text(encoding="utf-8") == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.jsonl"]


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_during_predict_is_one_line_and_leaves_no_temporary(
    tmp_path: Path, model_dir: Path, signum: int, status: int
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n", encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    argv = [sys.executable, "-m", "nerfocal.cli", *predict(model_dir, "-", out, "--chunk-size", "16")]
    # the with block closes the pipes whatever happens (else: ResourceWarning)
    pipes: dict[str, Any] = dict(stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    with subprocess.Popen(argv, env=env, cwd=tmp_path, **pipes) as child:
        assert child.stdin is not None
        try:
            child.stdin.write(b"Angela Merkel visited Paris in June .\n" * 400)
            child.stdin.flush()  # stdin stays open: predict is mid-run, waiting for more
            deadline = time.monotonic() + 120
            while not any(p.stat().st_size for p in tmp_path.glob(".out.jsonl.*.tmp")):
                assert child.poll() is None and time.monotonic() < deadline, "no partial output appeared"
                time.sleep(0.1)
            child.send_signal(signum)
            _, err = child.communicate(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
    assert child.returncode == status
    line = one_line(err.decode("utf-8"))
    assert signal.Signals(signum).name in line
    assert out.read_text(encoding="utf-8") == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


@pytest.mark.parametrize("fmt", ["text", "jsonl", "conll"])
def test_a_stdin_decode_error_names_its_line(
    fmt: str, model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = {"text": b"fine text\n", "jsonl": b'{"text": "fine"}\n', "conll": b"fine\n"}[fmt]
    data = good * 3 + b"bad \xff here\n" + good * 3000  # the bad line is in the first decoded block
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code = cli_main(predict(model_dir, "-", "-", "--input-format", fmt))
    assert code == 2
    line = one_line(capsys.readouterr().err)
    assert "error: -:4: byte 5 of the line: not valid utf-8 text" in line and "--encoding" in line


@pytest.mark.parametrize(
    ("fmt", "content", "total"),
    [
        ("text", "a\nb\r\nc\rd", 4),
        ("jsonl", '{"text": "a"}\n\n{"text": "b"}\n   \n', 2),
        ("conll", "-DOCSTART- O\n\nParis B-LOC\nis O\n\n\nBerlin B-LOC\n", 2),
    ],
)
def test_the_progress_bar_of_a_file_has_its_total(
    fmt: str, content: str, total: int, tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tqdm

    totals: list[Any] = []

    class Recording(tqdm.tqdm):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            totals.append(kwargs.get("total"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(tqdm, "tqdm", Recording)
    path = tmp_path / "in.data"
    path.write_bytes(content.encode("utf-8"))
    out = tmp_path / "out.jsonl"
    argv = ["predict", "--model", str(model_dir), "--input", str(path), "--output", str(out)]
    assert cli_main([*argv, "--input-format", fmt]) == 0
    assert totals == [total]
    assert len(out.read_text(encoding="utf-8").splitlines()) == total

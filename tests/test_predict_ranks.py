"""`torchrun -m nerfocal.cli predict`: one shard per rank, the same bytes as one process, all or nothing.

The launch tests start ``python -m torch.distributed.run --standalone --nproc_per_node 2`` on the CPU
(gloo) with the tiny model; about 20 s each on a busy 2-core machine, hence ``slow``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures import CORPUS, ROOT, save_tiny_model

from nerfocal.cli import main
from nerfocal.predict import Document
from nerfocal.predict_ranks import World, launched_world, rank_device, shard_bounds, shard_chunks
from nerfocal.predict_workers import document_chunks

LINES = 240  # with --chunk-size 16: 15 chunks, 8 for rank 0 (documents 0-127) and 7 for rank 1
LAUNCH_TIMEOUT = 240

# rank 1 dies (no exception, no status file) on the document that holds BOOM
DYING_SCRIPT = """
import os, sys
import nerfocal.predict
original = nerfocal.predict.Predictor.predict_documents
def predict_documents(self, documents, **kwargs):
    documents = list(documents)
    if os.environ["RANK"] == "1" and any("BOOM" in d.words for d in documents):
        os._exit(3)
    return original(self, documents, **kwargs)
nerfocal.predict.Predictor.predict_documents = predict_documents
from nerfocal.cli import main
sys.exit(main())
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("ranks") / "model")


def _texts() -> list[str]:
    words = " ".join(CORPUS).split()
    return [" ".join(words[i % 40 : i % 40 + (i * 7) % 13]) for i in range(LINES)]


def _options(model_dir: Path, source: Path, out: Path, *extra: str) -> list[str]:
    argv = ["predict", "--model", str(model_dir), "--input", str(source), "--output", str(out)]
    return [*argv, "--chunk-size", "16", "--quiet", *extra]


def _launch(*command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("WORLD_SIZE", None)
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    return subprocess.run(
        [*run, *command], cwd=cwd, env=env, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT
    )


# --- the pieces, in this process -------------------------------------------------------------------


@pytest.mark.parametrize("total", [0, 1, 5, 15, 16, 100, 240, 300])
@pytest.mark.parametrize("size", [2, 3, 4])
def test_shards_partition_the_chunks_of_one_process_in_order(total: int, size: int) -> None:
    documents = [Document.from_text(t) for t in _texts()]
    expected = list(document_chunks(documents, 16, 50))
    shards = [list(shard_chunks(documents, total, World(r, size, r), 16, 50)) for r in range(size)]
    assert [c for shard in shards for c in shard] == expected  # a wrong total moves bounds, loses nothing
    if total == len(documents):
        counts = [sum(map(len, shard)) for shard in shards]
        assert max(counts) - min(counts) <= 2 * 16  # balanced to a chunk or so


def test_a_shard_reads_no_document_after_its_end() -> None:
    read: list[int] = []

    def documents() -> object:
        for i, text in enumerate(_texts()):
            read.append(i)
            yield Document.from_text(text)

    shard = list(shard_chunks(documents(), LINES, World(0, 2, 0), 16, 10**6))  # type: ignore[arg-type]
    assert sum(map(len, shard)) == 128 and read[-1] == 127  # chunks up to 120, then 112..127
    assert shard_bounds(LINES, World(0, 2, 0)) == (0, 120)


def test_the_world_comes_from_the_launcher_environment() -> None:
    assert launched_world({}) is None and launched_world({"WORLD_SIZE": "1", "RANK": "0"}) is None
    world = launched_world({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert world == World(3, 4, 1) and not world.is_main
    with pytest.raises(ValueError, match="WORLD_SIZE: expected an integer, got 'two'"):
        launched_world({"WORLD_SIZE": "two"})
    with pytest.raises(ValueError, match="0 <= RANK < WORLD_SIZE=2"):
        launched_world({"WORLD_SIZE": "2", "RANK": "2"})


def test_each_rank_gets_the_gpu_of_its_local_rank() -> None:
    world = World(5, 8, 1)
    assert rank_device("auto", world, 2) == "cuda:1" and rank_device("cuda", world, 2) == "cuda:1"
    assert rank_device("auto", World(3, 8, 3), 2) == "cuda:1"  # more ranks than GPUs: round-robin
    assert rank_device("auto", world, 0) == "cpu" and rank_device("cpu", world, 2) == "cpu"
    assert rank_device("cuda:0", world, 2) == "cuda:0"


def test_standard_input_is_refused_under_a_launch(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    out = tmp_path / "out.jsonl"
    assert main(["predict", "--model", str(model_dir), "--output", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "nerfocal predict: error: --input: expected a file under a launch of 2 processes (WORLD_SIZE=2), "
        "got - (every rank reads the input file)"
    )
    source = tmp_path / "in.txt"
    source.write_text("Paris\n", encoding="utf-8")
    assert main(_options(model_dir, source, out, "--num-workers", "2")) == 2
    assert "--num-workers: expected 1 under a launch of 2 processes" in capsys.readouterr().err
    assert not out.exists()


# --- launches ------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("input_format", "output_format", "extra"),
    [("text", "jsonl", ["--word-tags"]), ("conll", "conll", [])],
)
def test_two_ranks_write_the_same_bytes_as_one_process(
    model_dir: Path, tmp_path: Path, input_format: str, output_format: str, extra: list[str]
) -> None:
    texts = _texts()
    if input_format == "text":
        source = tmp_path / "in.txt"
        source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    else:
        source = tmp_path / "in.conll"
        blocks = ["\n".join(f"{w} O" for w in t.split()) for t in texts if t.split()]
        source.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    options = ["--input-format", input_format, "--output-format", output_format, *extra]
    one, two = tmp_path / "one.out", tmp_path / "two.out"
    assert main([*_options(model_dir, source, one, *options), "--device", "cpu"]) == 0
    done = _launch("-m", "nerfocal.cli", *_options(model_dir, source, two, *options), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert one.read_bytes() == two.read_bytes()
    if output_format == "jsonl":
        assert len(two.read_text(encoding="utf-8").splitlines()) == LINES
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([source.name, "one.out", "two.out"])


@pytest.mark.slow
def test_a_bad_line_in_the_second_shard_leaves_no_output_and_one_error_line(
    model_dir: Path, tmp_path: Path
) -> None:
    records = [json.dumps({"id": i, "text": t}) for i, t in enumerate(_texts())]
    records[200] = '{"id": 200, "text": '  # rank 1's shard (documents 120-239)
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(records) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    out.write_text("kept\n", encoding="utf-8")  # an existing output stays as it was
    done = _launch(
        "-m", "nerfocal.cli", *_options(model_dir, source, out, "--input-format", "jsonl"), cwd=tmp_path
    )
    assert done.returncode != 0
    assert out.read_text(encoding="utf-8") == "kept\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl", "out.jsonl"]  # no parts left
    errors = [line for line in done.stderr.splitlines() if line.startswith("nerfocal predict: error:")]
    assert len(errors) == 1, done.stderr[-3000:]  # from the main process only
    assert errors[0].startswith(f"nerfocal predict: error: rank 1: {source}:201: ")
    assert errors[0].endswith(f"; {out} not written")


@pytest.mark.slow
def test_a_rank_that_dies_leaves_no_output(model_dir: Path, tmp_path: Path) -> None:
    texts = _texts()
    texts[200] = "Paris BOOM"
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    script = tmp_path / "dying.py"
    script.write_text(DYING_SCRIPT, encoding="utf-8")
    out = tmp_path / "out.jsonl"
    done = _launch(str(script), *_options(model_dir, source, out), cwd=tmp_path)
    assert done.returncode != 0
    assert "exitcode  : 3" in done.stderr, done.stderr[-3000:]  # torchrun saw rank 1 die, stopped rank 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dying.py", "in.txt"]

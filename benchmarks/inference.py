"""Inference speed: `nerfocal predict` against `transformers.pipeline("token-classification")`.

    python benchmarks/benchmark.py inference --model outputs/minilm_conll2003

Measured in one run on CoNLL-2003 test (3,453 sentences, words joined by single spaces for the
pipeline): sentences/s of nerfocal (CLI end to end and the Python API) and of the pipeline
(aggregation "simple", default batch size 1 and batch 32); entity agreement of `--decode argmax`
with the pipeline's aggregation "first"; the share of this CPU's measured float32 matmul rate
that predict reaches; peak memory of `nerfocal predict` on a small and a large text file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import DATASETS, command_line, machine, write_section

BERT_WORDS = r"\w+|[^\w\s]"


def matmul_gflops(n: int = 1024, repeats: int = 20) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 * repeats / best / 1e9


def encoder_flops(config: Any, lengths: list[int]) -> float:
    """Forward FLOPs of a BERT encoder + classifier over sequences of the given lengths (no padding)."""
    d, ff, layers, c = (
        config.hidden_size,
        config.intermediate_size,
        config.num_hidden_layers,
        config.num_labels,
    )
    per_token = layers * 2 * (4 * d * d + 2 * d * ff) + 2 * d * c
    return float(sum(n * per_token + layers * 4 * n * n * d for n in lengths))


def _entities_pipeline(out: list[dict[str, Any]]) -> set[tuple[str, int, int]]:
    return {(e["entity_group"], int(e["start"]), int(e["end"])) for e in out}


def main(args: Any) -> None:
    import torch
    from transformers import pipeline

    from nerfocal.conll import read_conll
    from nerfocal.predict import Predictor

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    test_file = DATASETS["conll2003"]["dir"] / "test.txt"
    sentences = [s.tokens for s in read_conll(test_file)][: args.limit]
    texts = [" ".join(tokens) for tokens in sentences]
    n = len(texts)
    results: dict[str, Any] = {"sentences": n, "threads": torch.get_num_threads()}
    results["matmul_gflops"] = matmul_gflops()

    # nerfocal, CLI end to end (process start, model load, read, predict, write)
    conll_input = test_file
    if args.limit:
        conll_input = work / "test_subset.conll"
        conll_input.write_text("".join("\n".join(s) + "\n\n" for s in sentences), encoding="utf-8")
    cli = [
        sys.executable,
        "-m",
        "nerfocal.cli",
        "predict",
        "--model",
        args.model,
        "--input",
        str(conll_input),
        "--input-format",
        "conll",
        "--output",
        str(work / "pred.jsonl"),
        "--quiet",
    ]
    start = time.perf_counter()
    subprocess.run(cli, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    results["nerfocal_cli_s"] = time.perf_counter() - start

    predictor = Predictor.from_pretrained(args.model, decode="viterbi")
    predictor(texts[:64])  # warm-up
    start = time.perf_counter()
    predictor(texts)
    results["nerfocal_api_text_s"] = time.perf_counter() - start
    start = time.perf_counter()
    predictor([list(s) for s in sentences])
    results["nerfocal_api_tokens_s"] = time.perf_counter() - start
    bf16 = Predictor.from_pretrained(args.model, decode="viterbi", dtype="bfloat16")
    bf16(texts[:64])
    start = time.perf_counter()
    bf16(texts)
    results["nerfocal_bf16_text_s"] = time.perf_counter() - start

    # FLOP accounting: the sub-word sequences predict runs (one window each for CoNLL sentences)
    tok = predictor.tokenizer
    lengths = [len(ids) for ids in tok(texts)["input_ids"]]
    flops = encoder_flops(predictor.model.config, lengths)
    results["encoder_gflop"] = flops / 1e9

    # the pipeline's words are BERT pre-tokenizer words (punctuation split off, "AL-AIN" -> AL - AIN):
    # compare on the same words
    argmax = Predictor.from_pretrained(args.model, decode="argmax", split_pattern=BERT_WORDS)
    ours = [{(e["label"], e["start"], e["end"]) for e in ents} for ents in argmax(texts)]

    ner = pipeline("token-classification", model=args.model, aggregation_strategy="simple", device="cpu")
    ner(texts[:8])
    start = time.perf_counter()
    ner(texts)
    results["pipeline_b1_s"] = time.perf_counter() - start
    start = time.perf_counter()
    ner(texts, batch_size=32)
    results["pipeline_b32_s"] = time.perf_counter() - start
    first = pipeline("token-classification", model=args.model, aggregation_strategy="first", device="cpu")
    theirs = [_entities_pipeline(o) for o in first(texts, batch_size=32)]
    agree = sum(a == b for a, b in zip(ours, theirs, strict=True))
    results["agreement"] = agree / n
    bf16_argmax = Predictor.from_pretrained(
        args.model, decode="argmax", split_pattern=BERT_WORDS, dtype="bfloat16"
    )
    ours_bf16 = [{(e["label"], e["start"], e["end"]) for e in ents} for ents in bf16_argmax(texts)]
    results["agreement_bf16"] = sum(a == b for a, b in zip(ours_bf16, theirs, strict=True)) / n
    disagreements = [(texts[i], sorted(ours[i]), sorted(theirs[i])) for i in range(n) if ours[i] != theirs[i]]
    (work / "disagreements.json").write_text(json.dumps(disagreements[:50], indent=1, ensure_ascii=False))

    previous = work / "inference.json"
    if args.reuse_memory and previous.is_file() and "memory" in json.loads(previous.read_text()):
        results["memory"] = json.loads(previous.read_text())["memory"]
        results["memory_reused"] = True
    else:
        results["memory"] = memory_runs(args, work)
    (work / "inference.json").write_text(json.dumps(results, indent=2))
    write_section("inference", render(results, args))


def memory_runs(args: Any, work: Path) -> dict[str, Any]:
    """Peak RSS of `nerfocal predict` on text files of the given sizes (same model, same program)."""
    from nerfocal.conll import read_conll

    model_dir = _tiny_copy(args.model, work / "tiny_model")
    lines = [" ".join(s.tokens) for s in read_conll(DATASETS["conll2003"]["dir"] / "test.txt")]
    block = "\n".join(lines) + "\n"
    out: dict[str, Any] = {}
    for size_mb in args.memory_mb:
        path = work / f"text_{size_mb:g}mb.txt"
        target = int(size_mb * 1e6)
        if not path.is_file() or path.stat().st_size < target:
            with path.open("w", encoding="utf-8") as handle:
                written = 0
                while written < target:
                    handle.write(block)
                    written += len(block.encode())
        cmd = [
            "/usr/bin/time",
            "-f",
            "%M %e",
            sys.executable,
            "-m",
            "nerfocal.cli",
            "predict",
            "--model",
            str(model_dir),
            "--input",
            str(path),
            "--output",
            os.devnull,
            "--quiet",
        ]
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "OMP_NUM_THREADS": "1",
        }  # 1 thread: steadier on a shared box
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        rss_kb, seconds = proc.stderr.strip().splitlines()[-1].split()
        out[f"{size_mb:g}"] = {
            "bytes": path.stat().st_size,
            "peak_rss_mb": int(rss_kb) / 1024,
            "seconds": float(seconds),
            "lines": path.read_bytes().count(b"\n"),
        }
    return out


def _tiny_copy(model: str, out: Path) -> Path:
    """The model's tokenizer and label map on a 2-layer, 64-wide random BERT.

    Memory flatness is a property of predict's streaming, not of the encoder; a small encoder lets a
    200 MB file run in minutes instead of hours on 2 cores.
    """
    from transformers import AutoConfig, AutoTokenizer, BertConfig, BertForTokenClassification

    if (out / "config.json").is_file():
        return out
    real = AutoConfig.from_pretrained(model)
    config = BertConfig(
        vocab_size=real.vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=real.max_position_embeddings,
        num_labels=real.num_labels,
        id2label=real.id2label,
        label2id=real.label2id,
    )
    BertForTokenClassification(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(model).save_pretrained(out)
    return out


def render(r: dict[str, Any], args: Any) -> str:
    n = r["sentences"]
    rate = {
        k: n / r[k]
        for k in (
            "nerfocal_cli_s",
            "nerfocal_bf16_text_s",
            "nerfocal_api_text_s",
            "nerfocal_api_tokens_s",
            "pipeline_b1_s",
            "pipeline_b32_s",
        )
    }
    achieved = r["encoder_gflop"] / r["nerfocal_api_text_s"]
    mem = r["memory"]
    sizes = list(mem)
    rows = [
        "## Inference speed: `nerfocal predict` vs `transformers.pipeline`",
        "",
        f"Command: `{command_line()}`  ",
        f"Machine: {machine()}, {r['threads']} torch threads  ",
        f"Model: `{args.model}` (MiniLM-L6 fine-tuned on CoNLL-2003, 9 tags). Data: CoNLL-2003 test, {n} sentences.",
        "",
        "| runner | sentences/s | vs pipeline (batch 1) | vs pipeline (batch 32) |",
        "|---|---|---|---|",
    ]
    for key, label in (
        ("nerfocal_cli_s", "`nerfocal predict --input-format conll` (CLI, incl. start-up and model load)"),
        ("nerfocal_api_text_s", "`Predictor` on raw text (Viterbi)"),
        ("nerfocal_api_tokens_s", "`Predictor` on token lists (Viterbi)"),
        ("nerfocal_bf16_text_s", "`Predictor` on raw text with `dtype='bfloat16'` (`--dtype bfloat16`)"),
        ("pipeline_b1_s", "`pipeline(..., aggregation_strategy='simple')`, default batch size"),
        ("pipeline_b32_s", "`pipeline(...)`, batch_size=32"),
    ):
        rows.append(
            f"| {label} | {rate[key]:.0f} | {rate[key] / rate['pipeline_b1_s']:.1f}x | "
            f"{rate[key] / rate['pipeline_b32_s']:.1f}x |"
        )
    rows += [
        "",
        f"- CPU float32 matmul rate measured in the same run (1024x1024, torch): **{r['matmul_gflops']:.1f} GFLOP/s**. "
        f"Encoder forward work for the test set (no padding): {r['encoder_gflop']:.1f} GFLOP; predict on raw text "
        f"reaches {achieved:.1f} GFLOP/s = **{100 * achieved / r['matmul_gflops']:.0f}%** of the matmul rate "
        "(everything included: tokenization, padding, decoding, offsets).",
        f'- `--decode argmax` entities equal the pipeline\'s (aggregation "first") on '
        f"**{100 * r['agreement']:.2f}%** of the sentences (label and character offsets both must match; "
        f"words split like BERT's pre-tokenizer, `--split-pattern '{BERT_WORDS}'`, as the pipeline does); "
        f"with `--dtype bfloat16`: **{100 * r['agreement_bf16']:.2f}%**.",
        "- Peak memory of `nerfocal predict` (RSS, the same program on both files; the model here is a "
        "2-layer random BERT with the same tokenizer and label map, so that 200 MB run in minutes): "
        f"{mem[sizes[0]]['bytes'] / 1e6:.0f} MB file "
        f"({mem[sizes[0]]['lines']} lines): {mem[sizes[0]]['peak_rss_mb']:.0f} MB; "
        f"{mem[sizes[-1]]['bytes'] / 1e6:.0f} MB file ({mem[sizes[-1]]['lines']} lines): "
        f"{mem[sizes[-1]]['peak_rss_mb']:.0f} MB, ratio **{mem[sizes[-1]]['peak_rss_mb'] / mem[sizes[0]]['peak_rss_mb']:.2f}x** "
        f"({mem[sizes[-1]]['seconds']:.0f} s for the large file)"
        + (
            " (memory figures from this command's previous run, kept with --reuse-memory)."
            if r.get("memory_reused")
            else "."
        ),
    ]
    return "\n".join(rows)

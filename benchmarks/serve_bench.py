"""`nerfocal serve` under load against the Predictor (what `nerfocal predict` runs) on the same sentences.

    python benchmarks/benchmark.py serve --model outputs/minilm_conll2003 --clients 32 --seconds 60

In one run, on the CoNLL-2003 test sentences (words joined by single spaces, one text per request):

1. the Predictor in this process, model loaded and warmed up: sentences/s over all the sentences
   (padded, what `nerfocal predict` runs; and packed, what the server runs);
2. `benchmarks/serve_load.py --model DIR`: a server on a free 127.0.0.1 port, ``--clients`` concurrent
   clients for ``--seconds``, good requests only: texts/s, p50/p99 latency, errors, CPU;
3. the same with ``--bad-fraction`` malformed and over-limit requests mixed in: every good request must
   succeed and every bad one get its 4xx (anything else is an error);
4. the good-only run again with packing off (``pack=false``), to show what packing is worth.

Target (issue 16): the server's texts/s at least 70% of the Predictor's sentences/s. Both use the
threads torch gives them (``OMP_NUM_THREADS`` if set). The clients run on the same machine as the
server, so on a small machine they take part of its CPU (the table says how much).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import serve_load
from common import DATASETS, command_line, machine, write_section

TARGET = 0.70


def predictor_speed(model_dir: str, texts: list[str], pack: bool = False) -> dict[str, Any]:
    """Sentences/s of the Predictor on ``texts`` (model loaded, one warm-up pass over the first 64)."""
    import torch

    from nerfocal.predict import Document, Predictor

    predictor = Predictor.from_pretrained(model_dir, device="cpu", pack=pack)
    list(predictor.predict_documents(Document.from_text(t) for t in texts[:64]))
    start = time.perf_counter()
    predictions = list(predictor.predict_documents(Document.from_text(t) for t in texts))
    seconds = time.perf_counter() - start
    assert len(predictions) == len(texts)
    return {"seconds": seconds, "sentences_per_s": len(texts) / seconds, "threads": torch.get_num_threads()}


def load_run(args: Any, sentences: Path, out: Path, bad_fraction: float, *options: str) -> dict[str, Any]:
    argv = ["--model", str(args.model), "--input", str(sentences), "--clients", str(args.clients)]
    argv += ["--seconds", str(args.seconds), "--bad-fraction", str(bad_fraction), "--json", str(out)]
    for option in options:
        argv += ["--server-option", option]
    status = serve_load.main(argv)
    results: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    results["exit_status"] = status
    return results


def main(args: Any) -> None:
    from nerfocal.conll import read_conll

    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    test_file = DATASETS["conll2003"]["dir"] / "test.txt"
    texts = [" ".join(s.tokens) for s in read_conll(test_file)][: args.limit]
    sentences = work / "sentences.txt"
    sentences.write_text("\n".join(texts) + "\n", encoding="utf-8")
    results: dict[str, Any] = {"sentences": len(texts), "model": str(args.model)}
    results["omp_threads"] = os.environ.get("OMP_NUM_THREADS", "unset")
    results.update(command=command_line(), machine=machine())
    results["predictor"] = predictor_speed(str(args.model), texts)
    results["predictor_packed"] = predictor_speed(str(args.model), texts, pack=True)
    results["good"] = load_run(args, sentences, work / "load_good.json", 0.0)
    results["mixed"] = load_run(args, sentences, work / "load_mixed.json", args.bad_fraction)
    results["padded"] = load_run(args, sentences, work / "load_padded.json", 0.0, "pack=false")
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    write_section("serve-load", render(results, args))


def _load_row(name: str, run: dict[str, Any], predictor: float, requests: str = "good_requests") -> str:
    return (
        f"| {name}, {run['seconds']:.0f} s | {run['texts_per_s']:.0f} | {run['texts_per_s'] / predictor:.2f}x "
        f"| {run['p50_ms']:.0f} | {run['p99_ms']:.0f} | {run[requests]} | {run['errors']} "
        f"| {run.get('server_cpu_cores')} / {run.get('client_cpu_cores')} |"
    )


def render(r: dict[str, Any], args: Any) -> str:
    predictor = r["predictor"]["sentences_per_s"]
    packed = r["predictor_packed"]["sentences_per_s"]
    good, mixed, padded = r["good"], r["mixed"], r["padded"]
    ratio = good["texts_per_s"] / predictor
    refused = mixed["refused_as_expected"]
    bad_total = sum(refused.values())
    kinds = ", ".join(f"{kind} {refused.get(kind, 0)}" for kind in serve_load.BAD_KINDS)
    verdict = "met" if ratio >= TARGET else "not met"
    threads = r["predictor"]["threads"]
    rows = [
        "| runner | texts/s | vs Predictor | p50 ms | p99 ms | requests | errors | CPU cores: server / clients |",
        "|---|---|---|---|---|---|---|---|",
        f"| `Predictor` in-process (what `nerfocal predict` runs: padded), all {r['sentences']} sentences, "
        f"model loaded, {threads} torch threads | {predictor:.0f} | 1.00x | - | - | - | - | - |",
        f"| `Predictor` in-process, packed (`pack=True`) | {packed:.0f} | {packed / predictor:.2f}x "
        "| - | - | - | - | - |",
        _load_row(
            f"`nerfocal serve` (packed), {good['clients']} clients, good requests only", good, predictor
        ),
        _load_row(
            f"`nerfocal serve` (packed), {mixed['clients']} clients, {args.bad_fraction:.0%} bad requests mixed in",
            mixed,
            predictor,
            "requests",
        ),
        _load_row(
            f"`nerfocal serve --no-pack`, {padded['clients']} clients, good requests only", padded, predictor
        ),
    ]
    batches = good["server_batches"]
    per_batch = batches["documents"] / batches["batches"] if batches["batches"] else 0.0
    busy = batches.get("model_seconds", 0.0) / good["seconds"]
    return "\n".join(
        [
            "## Serving under load: `nerfocal serve` vs the Predictor",
            "",
            f"Command: `{r['command']}`  ",
            f"Machine: {r['machine']}  ",
            f"Model: `{r['model']}`. Data: CoNLL-2003 test, {r['sentences']} sentences (words joined by "
            "spaces), one text per request, drawn at random by each client; the clients "
            "(`benchmarks/serve_load.py`, aiohttp, one keep-alive connection each) run on the same machine "
            f"as the server. OMP_NUM_THREADS {r.get('omp_threads', 'unset')} for the Predictor and the "
            "server alike. CPU cores: CPU seconds over wall seconds of the server process and of the clients.",
            "",
            *rows,
            "",
            f"- Target: the server's texts/s at least {TARGET:.0%} of the Predictor's: measured "
            f"**{ratio:.0%}**, {verdict}.",
            f"- Micro-batching (good run): {batches['batches']} batches, {per_batch:.1f} documents per "
            f"batch on average, at most {batches['largest']}; the model was busy {busy:.0%} of the run.",
            f"- Mixed run: {mixed['good_requests']} good requests answered 200 with one prediction per text, "
            f"{bad_total} bad requests each refused with its 4xx and JSON error ({kinds}); errors (any "
            f"other answer, a timeout or a wrong count): **{good['errors'] + mixed['errors'] + padded['errors']}** "
            f"in the three runs; server exit status after SIGTERM: {good.get('server_exit_status')}, "
            f"{mixed.get('server_exit_status')} and {padded.get('server_exit_status')}.",
        ]
    )

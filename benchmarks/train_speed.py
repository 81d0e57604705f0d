"""Training speed: tokens/s and peak memory of nerfocal's trainer against the reference recipe.

    python benchmarks/benchmark.py train-speed --steps 120 --repeats 2

CoNLL-2003 train, MiniLM, batch 32, the same number of optimizer steps for every runner; the runs
alternate (reference, nerfocal identical batching, nerfocal default batching, and again) so that
a busy machine slows all of them alike. Tokens are non-padding sub-words (transformers'
``include_num_input_tokens_seen="non_padding"``), divided by the Trainer's ``train_runtime``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
from pathlib import Path
from typing import Any

from common import command_line, machine, nerfocal_command, reference_command, write_section

# runner -> (description, batching flags of scripts/train_ner.py); None = the reference peer
RUNNERS: dict[str, tuple[str, list[str] | None]] = {
    "reference": ("reference recipe (Trainer + built-in CE, random batches)", None),
    "nerfocal_random": (
        "nerfocal focal loss, identical batching (random)",
        ["--train_sampling_strategy", "random"],
    ),
    "nerfocal_default": (
        "nerfocal focal loss, default batching (length-grouped)",
        ["--train_sampling_strategy", "group_by_length"],
    ),
    "nerfocal_groups8": (
        "nerfocal focal loss, length groups of 8 steps",
        ["--train_sampling_strategy", "group_by_length", "--length_group_steps", "8"],
    ),
}


def run_one(name: str, steps: int, out: Path) -> dict[str, Any]:
    flags = RUNNERS[name][1]
    if flags is None:
        cmd = reference_command("conll2003", out, "--max-steps", str(steps), "--no-eval", "--seed", "1")
    else:
        cmd = nerfocal_command(
            "conll2003",
            out,
            "--max_steps",
            str(steps),
            "--per_device_train_batch_size",
            "32",
            "--seed",
            "1",
            "--logging_steps",
            "50",
            "--include_num_input_tokens_seen",
            "non_padding",
            "--loss",
            "focal",
            *flags,
            evaluate=False,
        )
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *cmd],
        capture_output=True,
        text=True,
        env={"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **_env()},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed: {proc.stderr[-3000:]}")
    rss_mb = int(proc.stderr.strip().splitlines()[-1]) / 1024
    train = json.loads((out / "eval_results.json").read_text())["train"]
    return {
        "tokens_per_s": train["num_input_tokens_seen"] / train["train_runtime"],
        "peak_rss_mb": rss_mb,
        "train_runtime": train["train_runtime"],
        "tokens": train["num_input_tokens_seen"],
    }


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def main(args: Any) -> None:
    work = Path(args.work_dir)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in RUNNERS}
    for repeat in range(args.repeats):
        for name in RUNNERS:
            print(f"[train-speed] {name} repeat {repeat}", flush=True)
            results[name].append(run_one(name, args.steps, work / f"{name}_{repeat}"))
    (work / "train_speed.json").write_text(json.dumps(results, indent=2))
    ref = statistics.fmean(r["tokens_per_s"] for r in results["reference"])
    lines = [
        "## Training speed: nerfocal trainer vs the reference recipe",
        "",
        f"Command: `{command_line()}`  ",
        f"Machine: {machine()}  ",
        f"CoNLL-2003 train, MiniLM-L6, batch 32, {args.steps} optimizer steps per run, seed 1, "
        f"{args.repeats} alternating repeats per runner (mean shown).",
        "",
        "| runner | non-padding tokens/s | vs reference | peak RSS (MB) | tokens seen |",
        "|---|---|---|---|---|",
    ]
    for name, runs in results.items():
        tps = statistics.fmean(r["tokens_per_s"] for r in runs)
        lines.append(
            f"| {RUNNERS[name][0]} | {tps:.0f} | {tps / ref:.2f}x | "
            f"{statistics.fmean(r['peak_rss_mb'] for r in runs):.0f} | {runs[0]['tokens']:,} |"
        )
    write_section("train-speed", "\n".join(lines))

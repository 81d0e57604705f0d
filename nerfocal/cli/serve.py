"""Serve a trained model over HTTP: a JSON API with micro-batching and a browser page (docs/serving.md).

Examples:
    nerfocal serve --model outputs/sample                  # http://127.0.0.1:8000/ (the page), POST /predict
    curl -s localhost:8000/predict -d '{"texts": ["Anna Novak joined Orion Labs ."]}'

SIGTERM or Ctrl-C finishes the requests in flight, then exits with status 0.
"""

from __future__ import annotations

import argparse

from nerfocal.predict_options import add_model_argument, add_model_arguments, predictor_kwargs


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--max-batch-tokens", type=int, default=4096, help="estimated tokens per micro-batch (default 4096)"
    )
    parser.add_argument(
        "--max-wait-ms", type=float, default=5.0, help="longest wait for a micro-batch to fill (default 5)"
    )
    parser.add_argument(
        "--no-pack",
        action="store_true",
        help="pad each micro-batch's windows instead of packing several to a row",
    )
    parser.add_argument("--max-texts", type=int, default=256, help="texts per request (default 256)")
    parser.add_argument("--max-chars", type=int, default=100_000, help="characters per text (default 100000)")
    parser.add_argument(
        "--max-body-bytes", type=int, default=1_000_000, help="request body size limit (default 1000000)"
    )
    parser.add_argument(
        "--graceful-timeout",
        type=int,
        default=30,
        help="seconds to finish requests after SIGTERM (default 30)",
    )
    add_model_arguments(parser, default_decode="viterbi")


def run(args: argparse.Namespace) -> int:
    from nerfocal.serve.server import run as serve

    return serve(
        args.model,
        args.host,
        args.port,
        max_batch_tokens=args.max_batch_tokens,
        max_wait_ms=args.max_wait_ms,
        max_texts=args.max_texts,
        max_chars=args.max_chars,
        max_body_bytes=args.max_body_bytes,
        graceful_timeout=args.graceful_timeout,
        **predictor_kwargs(args),
        pack=not args.no_pack,
    )

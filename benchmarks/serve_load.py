"""A bounded load test of `nerfocal serve`: N concurrent clients for T seconds against 127.0.0.1.

    python benchmarks/serve_load.py --url http://127.0.0.1:8000 --clients 32 --seconds 60
    python benchmarks/serve_load.py --model runs/conll03/best --clients 4 --seconds 5 --bad-fraction 0.2

With ``--model`` the script starts the server itself on a free port (``--server-option`` passes
``run()`` keyword arguments, e.g. ``max_wait_ms=2``) and stops it with SIGTERM at the end.
Each client sends ``--texts-per-request`` sentences per request (from ``--input``, one per line, or
a built-in list); with ``--bad-fraction`` that share of requests is malformed or over a limit
(bad JSON, both keys, a non-string text, too many texts, a too long text, a too large body) and
must get its 4xx with a JSON error naming the limit; anything else counts as an error.
Reports throughput, p50/p99 latency of the good requests, the error count and the CPU the clients
(and, with ``--model``, the server) used, in cores; the run stops after ``--seconds`` or
``--max-requests``, whichever comes first. Exit status 1 when any error occurred.

The clients are aiohttp's, one keep-alive connection each: on a small machine they share the cores
with the server, so a cheap client leaves more of them to the server (httpx's took 1.6 ms of CPU per
request here, aiohttp's 0.14 ms: docs/benchmarks.md#serving-under-load-nerfocal-serve-vs-the-predictor).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp

from nerfocal.serve import wait_until_healthy

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = [
    "Angela Merkel visited Paris in June with the European Union delegation .",
    "The United Nations said on Tuesday that New-York-based firms don't pay .",
    "Reuters reported from London that Germany and France signed the deal .",
    "José met Zoë Müller at the café in São Paulo .",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
JSON_HEADERS = {"content-type": "application/json"}
_CHILD = "import json, sys; from nerfocal.serve import run; sys.exit(run(**json.loads(sys.argv[1])))"


def bad_request(kind: str, limits: dict[str, int]) -> tuple[bytes, int, str | None]:
    """``(body, expected status, expected "limit" field)`` of one malformed or over-limit request."""
    if kind == "bad_json":
        return b'{"texts": ["Paris"', 400, None
    if kind == "both_keys":
        return b'{"texts": [], "tokens": []}', 422, None
    if kind == "non_string":
        return b'{"texts": ["Paris", 3]}', 422, None
    if kind == "too_many_texts":
        return json.dumps({"texts": ["Paris"] * (limits["max_texts"] + 1)}).encode(), 422, "max_texts"
    if kind == "too_long_text":
        body = json.dumps({"texts": ["a" * (limits["max_chars"] + 1)]}).encode()
        if len(body) > limits["max_body_bytes"]:
            return body, 413, "max_body_bytes"
        return body, 422, "max_chars"
    if kind == "too_large_body":
        return b'{"texts": ["' + b"a" * limits["max_body_bytes"] + b'"]}', 413, "max_body_bytes"
    raise ValueError(f"expected a known bad request kind, got {kind!r}")


BAD_KINDS = ("bad_json", "both_keys", "non_string", "too_many_texts", "too_long_text", "too_large_body")


async def client(
    http: aiohttp.ClientSession,
    args: argparse.Namespace,
    limits: dict[str, int],
    state: dict[str, Any],
    seed: int,
) -> None:
    rng = random.Random(seed)
    while time.monotonic() < state["deadline"] and state["sent"] < args.max_requests:
        state["sent"] += 1
        kind = rng.choice(BAD_KINDS) if rng.random() < args.bad_fraction else "good"
        if kind == "good":
            texts = [rng.choice(state["sentences"]) for _ in range(args.texts_per_request)]
            body, status, limit = json.dumps({"texts": texts}).encode(), 200, None
        else:
            body, status, limit = bad_request(kind, limits)
        start = time.perf_counter()
        try:
            async with http.post("/predict", data=body, headers=JSON_HEADERS) as response:
                answer, code = await response.json(content_type=None), response.status
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as err:
            state["errors"][f"{kind}: {type(err).__name__}"] += 1
            continue
        elapsed = time.perf_counter() - start
        if code != status or (status != 200 and answer.get("limit") != limit):
            state["errors"][f"{kind}: got {code} {str(answer)[:80]}"] += 1
        elif kind == "good":
            if len(answer.get("predictions", [])) != len(texts):
                state["errors"]["good: wrong number of predictions"] += 1
                continue
            state["latencies"].append(elapsed)
            state["texts"] += len(texts)
        else:
            state["refused"][kind] += 1


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


def cpu_seconds(pid: int | None = None) -> float:
    """CPU seconds (user + system) used so far by this process, or by process ``pid`` (Linux /proc)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(args: argparse.Namespace, url: str, server_pid: int | None = None) -> dict[str, Any]:
    sentences = SENTENCES
    if args.input:
        sentences = [s for s in Path(args.input).read_text(encoding="utf-8").splitlines() if s.strip()]
        if not sentences:
            raise SystemExit(f"{args.input}: expected at least one non-empty line, got none")
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    pool = aiohttp.TCPConnector(limit=args.clients)
    async with aiohttp.ClientSession(base_url=url, timeout=timeout, connector=pool) as http:
        async with http.get("/info") as response:
            info = await response.json()
        limits = info["limits"]
        state: dict[str, Any] = {
            "deadline": time.monotonic() + args.seconds,
            "sent": 0,
            "texts": 0,
            "sentences": sentences,
            "latencies": [],
            "errors": Counter(),
            "refused": Counter(),
        }
        server_cpu = cpu_seconds(server_pid) if server_pid is not None else 0.0
        client_cpu, start = cpu_seconds(), time.monotonic()
        await asyncio.gather(*(client(http, args, limits, state, seed) for seed in range(args.clients)))
        duration = time.monotonic() - start
        client_cpu = cpu_seconds() - client_cpu
        if server_pid is not None:
            server_cpu = cpu_seconds(server_pid) - server_cpu
        async with http.get("/info") as response:
            batches = (await response.json())["batches"]
    good = state["latencies"]
    return {
        "url": url,
        "model": info["model"],
        "backend": info["backend"],
        "clients": args.clients,
        "seconds": round(duration, 2),
        "requests": state["sent"],
        "good_requests": len(good),
        "refused_as_expected": dict(state["refused"]),
        "errors": sum(state["errors"].values()),
        "error_kinds": dict(state["errors"]),
        "requests_per_s": round(len(good) / duration, 2),
        "texts_per_s": round(state["texts"] / duration, 2),
        "p50_ms": round(percentile(good, 0.5) * 1000, 1),
        "p99_ms": round(percentile(good, 0.99) * 1000, 1),
        "server_batches": batches,
        "client_cpu_cores": round(client_cpu / duration, 2),
        "server_cpu_cores": round(server_cpu / duration, 2) if server_pid is not None else None,
    }


def start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    options: dict[str, Any] = {"model_dir": args.model, "port": port, "log_level": "warning"}
    for item in args.server_option:
        key, _, value = item.partition("=")
        options[key] = json.loads(value) if value[:1].isdigit() or value in ("true", "false") else value
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    process = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(options)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, timeout=120, process=process)
    except (RuntimeError, TimeoutError) as err:
        process.kill()
        process.wait()
        raise SystemExit(f"serve_load: {err}") from None
    return process, url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--url", default="http://127.0.0.1:8000", help="a running server (loopback only)")
    target.add_argument("--model", metavar="DIR", help="start a server on this model on a free port")
    parser.add_argument(
        "--server-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="with --model: a run() keyword, e.g. max_wait_ms=2 (repeatable)",
    )
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--seconds", type=float, default=60.0, help="duration (default 60)")
    parser.add_argument(
        "--max-requests", type=int, default=100_000, help="stop after this many (default 100000)"
    )
    parser.add_argument("--texts-per-request", type=int, default=1, help="texts in each request (default 1)")
    parser.add_argument("--input", metavar="FILE", help="sentences, one per line (default: a built-in list)")
    parser.add_argument(
        "--bad-fraction", type=float, default=0.0, help="share of malformed/over-limit requests"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="per-request timeout in seconds (default 60)"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if not (1 <= args.clients <= 1024 and 0 < args.seconds <= 3600 and 0 <= args.bad_fraction <= 1):
        parser.error("expected 1..1024 clients, 0 < seconds <= 3600 and 0 <= bad-fraction <= 1")
    if args.texts_per_request < 1 or args.max_requests < 1:
        parser.error("expected positive --texts-per-request and --max-requests")
    process = None
    if args.model:
        process, url = start_server(args)
    else:
        url = args.url.rstrip("/")
        if urlparse(url).hostname not in LOOPBACK:
            parser.error(f"expected a loopback --url (127.0.0.1), got {args.url}")
    try:
        results = asyncio.run(load(args, url, process.pid if process is not None else None))
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
    if process is not None:
        results["server_exit_status"] = process.returncode
    for key, value in results.items():
        print(f"{key:>20}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 1 if results["errors"] or results.get("server_exit_status", 0) != 0 else 0


if __name__ == "__main__":
    sys.exit(main())

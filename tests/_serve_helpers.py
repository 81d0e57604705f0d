"""Start ``nerfocal.serve.run`` in a subprocess on a free 127.0.0.1 port, for the end-to-end tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from nerfocal.serve import wait_until_healthy

ROOT = Path(__file__).resolve().parents[1]

# run() in a child process; a positive "slow" makes each predict_chunk call touch "marker" and sleep
_CHILD = """
import json, pathlib, sys, time
options = json.loads(sys.argv[1])
slow, marker = options.pop("slow", 0), options.pop("marker", None)
if slow:
    from nerfocal.predict import Predictor
    original = Predictor.predict_chunk
    def slow_chunk(self, documents):
        pathlib.Path(marker).touch()
        time.sleep(slow)
        return original(self, documents)
    Predictor.predict_chunk = slow_chunk
from nerfocal.serve import run
sys.exit(run(**options))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(model_dir: Path, *, timeout: float = 90.0, **options: Any) -> tuple[subprocess.Popen, str]:
    """Start a server and wait until ``/health`` answers; returns the process and its base URL."""
    port = free_port()
    options = {"model_dir": str(model_dir), "port": port, "device": "cpu", "log_level": "warning", **options}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(options)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, timeout=timeout, process=process)
    except (RuntimeError, TimeoutError) as err:
        process.kill()
        raise RuntimeError(f"{err}: {process.communicate()[0]}") from None
    return process, url


def stop_server(process: subprocess.Popen) -> None:
    """Kill the server if a test left it running, and close its output pipe (else: ResourceWarning)."""
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)
    if process.stdout is not None:
        process.stdout.close()

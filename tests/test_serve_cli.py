"""`nerfocal serve` on the command line: starts, answers, and drains on SIGTERM with exit status 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _serve_helpers import free_port
from fixtures import IOB2_LABELS, ROOT, save_tiny_model

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")


def test_serve_command_answers_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    model = save_tiny_model(tmp_path / "m", IOB2_LABELS, max_length=24)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "nerfocal.cli", "serve", "--model", str(model), "--port", str(port),
           "--device", "cpu", "--max_texts", "2"]  # fmt: skip
    process = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[0]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        ok = httpx.post(f"{url}/predict", json={"texts": ["Angela Merkel visited Paris ."]}, timeout=30)
        assert ok.status_code == 200 and len(ok.json()["predictions"]) == 1
        over = httpx.post(f"{url}/predict", json={"texts": ["a", "b", "c"]}, timeout=30)
        assert over.status_code == 413 or over.status_code == 422
        assert over.json()["limit"] == "max_texts"
        assert httpx.get(f"{url}/info", timeout=30).json()["pack"] is True  # serve packs by default
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0]  # waits, and closes the pipe (else: ResourceWarning)
    assert process.returncode == 0, output

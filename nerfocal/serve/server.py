"""Start ``nerfocal serve``: load a model directory and run the API under uvicorn until SIGTERM/SIGINT.

:func:`wait_until_healthy` waits for a server started elsewhere (a subprocess, a container) to answer.
"""

from __future__ import annotations

import http.client
import logging
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def run(
    model_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    max_batch_tokens: int = 4096,
    max_wait_ms: float = 5.0,
    max_body_bytes: int = 1_000_000,
    max_texts: int = 256,
    max_chars: int = 100_000,
    graceful_timeout: int = 30,
    log_level: str = "info",
    **predictor_kwargs: Any,
) -> int:
    """Serve ``model_dir`` on ``host:port`` until SIGTERM or SIGINT; returns 0 after a clean drain.

    On the signal uvicorn stops accepting connections and waits up to ``graceful_timeout`` seconds for
    the requests in flight, which the batcher still answers; then the batcher predicts whatever is
    left in its queue and stops. ``predictor_kwargs`` (``device``, ``decode``, ``dtype``,
    ``batch_tokens``, ``max_length``, ``pack`` (default on here), ``trust_remote_code``...) go to
    :meth:`nerfocal.predict.Predictor.from_pretrained`.

    Raises:
        FileNotFoundError / ValueError: from loading the model (a one-line message naming the path).
    """
    import uvicorn

    from nerfocal.predict import Predictor
    from nerfocal.serve.app import create_app

    if not 0 <= port <= 65535:
        raise ValueError(f"expected a port in 0..65535, got {port}")
    if graceful_timeout <= 0:
        raise ValueError(f"expected a positive graceful_timeout, got {graceful_timeout}")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Loading weights" bar in a server log
    # micro-batches are a few dozen windows of any length: packed rows beat padded ones (docs/serving.md)
    predictor_kwargs.setdefault("pack", True)
    predictor = Predictor.from_pretrained(model_dir, **predictor_kwargs)
    app = create_app(
        predictor,
        max_batch_tokens=max_batch_tokens,
        max_wait_ms=max_wait_ms,
        max_body_bytes=max_body_bytes,
        max_texts=max_texts,
        max_chars=max_chars,
        model_name=str(model_dir),
    )
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=graceful_timeout
    )
    server = uvicorn.Server(config)
    received: list[int] = []
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        # uvicorn re-raises the signal it caught once it has shut down; with the default handlers
        # that would kill the process (exit -15) or raise KeyboardInterrupt after a clean drain
        for number in (signal.SIGTERM, signal.SIGINT):
            previous[number] = signal.signal(number, lambda caught, frame: received.append(caught))
    try:
        server.run()
    except SystemExit as stop:  # uvicorn exits 1 when it cannot bind the address
        return stop.code if isinstance(stop.code, int) else 1
    finally:
        for caught_number, handler in previous.items():
            signal.signal(caught_number, handler)
    if not server.started:
        logger.error("the server did not start on %s:%d (see the messages above)", host, port)
        return 1
    logger.info("stopped after %s", signal.Signals(received[0]).name if received else "shutdown")
    return 0


def wait_until_healthy(
    url: str, *, timeout: float = 120.0, process: subprocess.Popen[Any] | None = None, interval: float = 0.2
) -> None:
    """Poll ``GET url/health`` until it answers 200 (no proxy: the server is usually on this machine).

    Args:
        url: the server's base URL, e.g. ``http://127.0.0.1:8000``.
        timeout: seconds to wait in all.
        process: the server's process, when this program started it: its exit ends the wait at once.
        interval: seconds between two tries.

    Raises:
        RuntimeError: ``process`` exited before the server answered (naming its exit status).
        TimeoutError: no 200 answer within ``timeout`` seconds.
    """
    health = url.rstrip("/") + "/health"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before {health} answered")
        try:
            with opener.open(health, timeout=min(2.0, timeout)) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError, http.client.HTTPException):
            pass  # not listening yet, or not ready (503)
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{health} did not answer within {timeout:g} s")
        time.sleep(interval)

"""``nerfocal serve``: an HTTP JSON API with micro-batching and a page to try the model (docs/serving.md).

Needs the ``serve`` extra: ``pip install 'nerfocal[serve]'`` (FastAPI and uvicorn).
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"nerfocal serve needs FastAPI and uvicorn ({err.name} is missing): pip install 'nerfocal[serve]'"
    ) from None

from nerfocal.serve.app import Limits, create_app
from nerfocal.serve.batcher import MicroBatcher, estimate_tokens
from nerfocal.serve.server import run, wait_until_healthy

__all__ = ["Limits", "MicroBatcher", "create_app", "estimate_tokens", "run", "wait_until_healthy"]

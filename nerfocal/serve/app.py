"""The HTTP JSON API of ``nerfocal serve``: ``POST /predict``, ``GET /health``, ``GET /info``, the page.

Every answer, error or not, is JSON (the page and its static files aside): ``{"error": "..."}`` plus,
for a broken limit, ``"limit"`` (its name), ``"value"`` (the limit) and ``"got"``. See docs/serving.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from nerfocal import __version__
from nerfocal.records import entity_records
from nerfocal.serve.batcher import MicroBatcher
from nerfocal.words import Document

logger = logging.getLogger(__name__)

STATIC = {  # the files of the page, served from package data
    "highlight.js": "text/javascript; charset=utf-8",
    "highlight.css": "text/css; charset=utf-8",
    "page.js": "text/javascript; charset=utf-8",
}
_STRINGS = {"type": "array", "items": {"type": "string"}}
PREDICT_SCHEMA = {  # for /docs: the body is parsed by hand, so that every error is ours
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {"type": "object", "properties": {"texts": _STRINGS, "document": {"type": "boolean"}}},
                    {
                        "type": "object",
                        "properties": {
                            "tokens": {"type": "array", "items": _STRINGS},
                            "document": {"type": "boolean"},
                        },
                    },
                ]
            },
            "example": {"texts": ["Angela Merkel visited Paris ."]},
        }
    },
}


@dataclass(frozen=True)
class Limits:
    """Per-request limits; each error names the one it broke."""

    max_body_bytes: int = 1_000_000
    max_texts: int = 256
    max_chars: int = 100_000

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"expected {name} to be a positive integer, got {value!r}")


class ApiError(Exception):
    """An answer ``{"error": message, ...extra}`` with HTTP ``status``."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


def _limit_error(status: int, limit: str, value: int, got: int, message: str) -> ApiError:
    return ApiError(status, message, limit=limit, value=value, got=got)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as the header or the bytes read pass ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise ApiError(400, f"expected a non-negative integer Content-Length, got {declared!r}")
        if int(declared) > max_bytes:
            message = f"expected a body of at most {max_bytes} bytes, got Content-Length {declared}"
            raise _limit_error(413, "max_body_bytes", max_bytes, int(declared), message)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:  # a lying or absent Content-Length (chunked upload)
            message = f"expected a body of at most {max_bytes} bytes, got more"
            raise _limit_error(413, "max_body_bytes", max_bytes, size, message)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_inputs(body: bytes, limits: Limits) -> tuple[str, list[Any], bool]:
    """``("texts", [str, ...], document)`` or ``("tokens", [[str, ...], ...], document)`` from a body;
    ``document`` (the optional ``"document": true``): the inputs are the sentences of one document.

    Raises:
        ApiError: 400 for a body that is not UTF-8 JSON; 422 for a wrong shape or a broken limit.
    """
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ApiError(400, f"expected a UTF-8 body, got invalid bytes at byte {err.start}") from None
    except json.JSONDecodeError as err:
        where = f"line {err.lineno} column {err.colno}"
        raise ApiError(400, f"expected a JSON body, got invalid JSON at {where}: {err.msg}") from None
    except (ValueError, RecursionError) as err:  # nesting too deep, an integer of > 4300 digits
        raise ApiError(400, f"expected a JSON body, got one that cannot be read: {err}") from None
    if not isinstance(payload, dict):
        shape = '{"texts": [...]} or {"tokens": [...]}'
        raise ApiError(422, f"expected a JSON object {shape}, got {type(payload).__name__}")
    keys = set(payload) & {"texts", "tokens"}
    unknown = sorted(set(payload) - {"texts", "tokens", "document"})
    if unknown:
        raise ApiError(
            422, f'expected only the key "texts" or "tokens" (and "document"), got unknown keys {unknown[:5]}'
        )
    document = payload.get("document", False)
    if not isinstance(document, bool):
        raise ApiError(422, f'expected "document" to be true or false, got {type(document).__name__}')
    if len(keys) != 1:
        raise ApiError(422, f'expected exactly one of "texts" or "tokens", got {sorted(keys) or "neither"}')
    key = keys.pop()
    items = payload[key]
    if not isinstance(items, list):
        raise ApiError(422, f'expected "{key}" to be a list, got {type(items).__name__}')
    if len(items) > limits.max_texts:
        message = f'expected at most {limits.max_texts} items in "{key}", got {len(items)}'
        raise _limit_error(422, "max_texts", limits.max_texts, len(items), message)
    for i, item in enumerate(items):
        if key == "texts":
            if not isinstance(item, str):
                raise ApiError(422, f"texts[{i}]: expected a string, got {type(item).__name__}")
            chars = len(item)
        else:
            if not isinstance(item, list):
                raise ApiError(422, f"tokens[{i}]: expected a list of strings, got {type(item).__name__}")
            bad = next((j for j, t in enumerate(item) if not isinstance(t, str)), None)
            if bad is not None:
                raise ApiError(422, f"tokens[{i}][{bad}]: expected a string, got {type(item[bad]).__name__}")
            chars = sum(len(t) for t in item)
        if chars > limits.max_chars:
            message = f"{key}[{i}]: expected at most {limits.max_chars} characters, got {chars}"
            raise _limit_error(422, "max_chars", limits.max_chars, chars, message)
    return key, items, document


def _static(name: str) -> str:
    return (resources.files("nerfocal.serve") / "static" / name).read_text(encoding="utf-8")


def create_app(
    predictor: Any,
    *,
    max_batch_tokens: int = 4096,
    max_wait_ms: float = 5.0,
    max_body_bytes: int = 1_000_000,
    max_texts: int = 256,
    max_chars: int = 100_000,
    model_name: str | None = None,
) -> FastAPI:
    """The FastAPI application around a loaded :class:`nerfocal.predict.Predictor`.

    Args:
        predictor: the model; its ``predict_chunk`` runs in one worker thread, in micro-batches.
        max_batch_tokens: a micro-batch closes at this many estimated tokens (words + 2 per document).
        max_wait_ms: ... or this long after its first document arrived.
        max_body_bytes: largest request body (413 beyond).
        max_texts: most texts (or token lists) per request (422 beyond).
        max_chars: most characters per text, or per token list summed over its tokens (422 beyond).
        model_name: shown by ``/info``; default the model's ``config._name_or_path``.
    """
    limits = Limits(max_body_bytes=max_body_bytes, max_texts=max_texts, max_chars=max_chars)
    batcher = MicroBatcher(predictor, max_batch_tokens=max_batch_tokens, max_wait_ms=max_wait_ms)
    config = getattr(getattr(predictor, "model", None), "config", None)
    name = model_name or str(getattr(config, "_name_or_path", "") or "<model>")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        logger.info("serving %s (%d labels)", name, len(predictor.labels))
        try:
            yield
        finally:  # uvicorn runs this after the in-flight requests are answered
            await batcher.stop()

    # no /docs or /redoc: their pages load from a CDN; the schema stays at /openapi.json
    app = FastAPI(title="nerfocal", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.batcher, app.state.limits = batcher, limits

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"error": exc.message, **exc.extra}, status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": f"expected a valid request, got {exc.errors()[:3]}"}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unexpected error on %s %s: %r", request.method, request.url.path, exc)
        return JSONResponse({"error": "internal server error; see the server log"}, status_code=500)

    @app.post("/predict", openapi_extra={"requestBody": PREDICT_SCHEMA})
    async def predict(request: Request) -> JSONResponse:
        """Entities of each text (character offsets) or token list (token indices), in input order."""
        key, items, one_document = parse_inputs(await read_body(request, limits.max_body_bytes), limits)
        documents = [Document(list(x)) if key == "tokens" else predictor.document(x) for x in items]
        if one_document and getattr(predictor, "context_size", 0) > 0:
            # the request's inputs are one document's sentences: each read with its neighbours' words.
            # On the event loop, with the predictor's own tokenizer: the model thread has a copy.
            documents = list(predictor.with_context(replace(d, document_id="request") for d in documents))
        predictions = await batcher.predict(documents)
        # a JSONResponse as is: a returned dict would be validated and re-encoded by FastAPI first
        return JSONResponse({"predictions": [{"entities": entity_records(p)} for p in predictions]})

    @app.get("/health")
    async def health() -> JSONResponse:
        """200 ``{"status": "ok"}`` while the batcher runs, else 503."""
        ok = batcher.running
        return JSONResponse({"status": "ok" if ok else "unavailable"}, status_code=200 if ok else 503)

    @app.get("/info")
    async def info() -> dict[str, Any]:
        """The model's labels, backend and path, the nerfocal version, the limits and batch counters."""
        return {
            "model": name,
            "backend": getattr(predictor, "backend", "torch"),
            "labels": list(predictor.labels),
            "scheme": getattr(predictor, "scheme", None),
            "decode": getattr(predictor, "decode", None),
            "context_size": getattr(predictor, "context_size", 0),
            "o_bias": getattr(predictor, "o_bias", 0.0),
            "pack": getattr(predictor, "pack", False),
            "device": str(getattr(predictor, "device", "")),
            "version": __version__,
            "limits": {**asdict(limits), "max_batch_tokens": max_batch_tokens, "max_wait_ms": max_wait_ms},
            "batches": asdict(batcher.stats),
        }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(_static("index.html"))

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in STATIC:
            raise ApiError(404, f"expected one of {sorted(STATIC)}, got {name!r}")
        return Response(_static(name), media_type=STATIC[name])

    return app

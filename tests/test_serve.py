"""``nerfocal serve``: the records of ``nerfocal predict``, limits, malformed bodies, micro-batching."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from _serve_helpers import ROOT, start_server, stop_server
from fastapi.testclient import TestClient
from fixtures import IOB2_LABELS, save_tiny_model

from nerfocal import __version__
from nerfocal.cli import predict as cli_predict
from nerfocal.predict import Document, Predictor
from nerfocal.serve import MicroBatcher, create_app, estimate_tokens

TEXTS = [
    "Angela Merkel visited Paris in June with the European Union delegation .",
    "🙂 Zoë Müller and José met at the café in São Paulo",
    "",
    "The United Nations said on Tuesday that New-York-based firms don't pay .",
]
TOKENS = [["Angela", "Merkel", "visited", "Berlin", "."], [], ["Reuters", "London", "Germany"]]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("serve"), IOB2_LABELS, max_length=24)


@pytest.fixture(scope="module")
def predictor(model_dir: Path) -> Predictor:
    return Predictor.from_pretrained(model_dir, device="cpu")


class Recording:
    """A predictor that records each ``predict_chunk`` call (its documents), optionally slowly."""

    def __init__(self, inner: Predictor, delay: float = 0.0, fail_on: str | None = None) -> None:
        self.inner, self.delay, self.fail_on = inner, delay, fail_on
        self.calls: list[list[Document]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def predict_chunk(self, documents: list[Document]) -> Any:
        self.calls.append(list(documents))
        time.sleep(self.delay)
        if self.fail_on is not None and any(self.fail_on in d.words for d in documents):
            raise RuntimeError("model failure")
        return self.inner.predict_chunk(documents)


def _client(predictor: Any, **kwargs: Any) -> TestClient:
    return TestClient(create_app(predictor, **kwargs), raise_server_exceptions=False)


def _cli_records(model_dir: Path, tmp_path: Path, lines: list[dict]) -> list[dict]:
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    parser = argparse.ArgumentParser()
    cli_predict.add_arguments(parser)
    argv = ["--model", str(model_dir), "--input", str(source), "--input-format", "jsonl"]
    args = parser.parse_args([*argv, "--output", str(out), "--device", "cpu", "--quiet"])
    assert cli_predict.run(args) == 0
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


# --- records ---------------------------------------------------------------------------------------


def test_entities_equal_those_of_nerfocal_predict_for_texts_and_tokens(
    predictor: Predictor, model_dir: Path, tmp_path: Path
) -> None:
    expected = _cli_records(
        model_dir, tmp_path, [{"text": t} for t in TEXTS] + [{"tokens": t} for t in TOKENS]
    )
    with _client(predictor) as client:
        texts = client.post("/predict", json={"texts": TEXTS})
        tokens = client.post("/predict", json={"tokens": TOKENS})
    assert texts.status_code == tokens.status_code == 200
    got = texts.json()["predictions"] + tokens.json()["predictions"]
    assert [p["entities"] for p in got] == [r["entities"] for r in expected]
    assert sum(len(p["entities"]) for p in got) > 3  # the comparison is not between empty lists
    for text, prediction in zip(TEXTS, texts.json()["predictions"], strict=True):
        for entity in prediction["entities"]:  # character offsets into the text
            assert set(entity) == {"text", "label", "start", "end", "score"}
            assert text[entity["start"] : entity["end"]] == entity["text"]
    for words, prediction in zip(TOKENS, tokens.json()["predictions"], strict=True):
        for entity in prediction["entities"]:  # token indices
            assert " ".join(words[entity["start"] : entity["end"]]) == entity["text"]


def test_health_and_info_describe_the_model_and_limits(predictor: Predictor) -> None:
    with _client(predictor, max_texts=7, max_chars=99, max_wait_ms=3, model_name="my-model") as client:
        assert client.get("/health").json() == {"status": "ok"}
        info = client.get("/info").json()
    assert info["labels"] == IOB2_LABELS and info["backend"] == "torch" and info["model"] == "my-model"
    assert info["version"] == __version__
    assert info["limits"]["max_texts"] == 7 and info["limits"]["max_chars"] == 99
    assert info["limits"]["max_wait_ms"] == 3
    assert info["pack"] is False  # the Predictor's default; `nerfocal serve` turns it on


def test_the_model_thread_predicts_with_its_own_tokenizer_and_the_model_busy_time_is_counted(
    predictor: Predictor,
) -> None:
    from nerfocal.serve.batcher import thread_replica

    twin = thread_replica(predictor)  # the event loop may tokenize with the original meanwhile
    assert twin.model is predictor.model and twin.tokenizer is not predictor.tokenizer
    documents = [predictor.document(t) for t in TEXTS]
    assert [p.tags for p in twin.predict_chunk(documents)] == [
        p.tags for p in predictor.predict_chunk(documents)
    ]
    wrapper = Recording(predictor)
    assert thread_replica(wrapper) is wrapper  # not a Predictor: used as it is
    with _client(predictor) as client:
        assert client.post("/predict", json={"texts": TEXTS}).status_code == 200
        stats = client.get("/info").json()["batches"]
    assert stats["batches"] == 1 and stats["documents"] == len(TEXTS) and stats["model_seconds"] > 0


def test_health_is_503_once_the_batcher_has_stopped(predictor: Predictor) -> None:
    client = _client(predictor)
    with client:
        pass  # lifespan ran start and stop
    assert client.get("/health").status_code == 503


# --- limits and malformed bodies -------------------------------------------------------------------


def _error(response: Any, status: int, limit: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert body.get("limit") == limit
    return body


def test_limits_are_refused_with_an_error_naming_the_limit(predictor: Predictor) -> None:
    with _client(predictor, max_texts=2, max_chars=20, max_body_bytes=200) as client:
        body = _error(client.post("/predict", json={"texts": ["a", "b", "c"]}), 422, "max_texts")
        assert body["value"] == 2 and body["got"] == 3
        _error(client.post("/predict", json={"texts": ["ok", "x" * 21]}), 422, "max_chars")
        _error(client.post("/predict", json={"tokens": [["x" * 11, "y" * 10]]}), 422, "max_chars")
        body = _error(
            client.post("/predict", json={"texts": ["a" * 19] * 2 + ["b" * 300]}), 413, "max_body_bytes"
        )
        assert body["got"] > 200
        # no Content-Length (chunked upload): the bytes read are counted
        chunks = (b'{"texts": ["' + b"a" * 50 if i == 0 else b"a" * 50 for i in range(6))
        _error(client.post("/predict", content=chunks), 413, "max_body_bytes")
        assert client.post("/predict", json={"texts": ["x" * 20, "Paris"]}).status_code == 200


MALFORMED = [
    (b"", 400),
    (b"not json", 400),
    (b'{"texts": ["a"]', 400),
    (b"\xff\xfe{}", 400),
    (b"[" * 100_000, 400),  # nesting deeper than Python's json can read
    (b'{"texts": [' + b"1" * 5000 + b"]}", 400),  # an integer longer than Python converts
    (b"[1, 2]", 422),
    (b'"texts"', 422),
    (b"{}", 422),
    (b'{"texts": [], "tokens": []}', 422),
    (b'{"text": "Paris"}', 422),
    (b'{"texts": ["a"], "extra": 1}', 422),
    (b'{"texts": "Paris"}', 422),
    (b'{"texts": ["a", 1]}', 422),
    (b'{"texts": [null]}', 422),
    (b'{"texts": [NaN]}', 422),
    (b'{"tokens": ["Paris"]}', 422),
    (b'{"tokens": [["Paris", 3]]}', 422),
    (b'{"tokens": {"a": ["b"]}}', 422),
]


@pytest.mark.parametrize(("body", "status"), MALFORMED)
def test_malformed_bodies_get_a_json_4xx_never_a_500(predictor: Predictor, body: bytes, status: int) -> None:
    with _client(predictor, max_body_bytes=1_000_000) as client:
        _error(client.post("/predict", content=body, headers={"content-type": "application/json"}), status)


def test_bad_content_length_unknown_routes_and_methods_get_json_errors(predictor: Predictor) -> None:
    with _client(predictor) as client:
        _error(client.post("/predict", content=b"{}", headers={"content-length": "x"}), 400)
        _error(client.get("/nowhere"), 404)
        _error(client.get("/predict"), 405)
        _error(client.get("/static/secret.py"), 404)
        _error(client.get("/docs"), 404)  # its page would load from a CDN
        assert "/predict" in client.get("/openapi.json").json()["paths"]


def test_a_failing_document_fails_its_request_only_with_a_json_500(predictor: Predictor) -> None:
    recording = Recording(predictor, fail_on="BOOM")
    with _client(
        recording, max_wait_ms=2000, max_batch_tokens=estimate_tokens(Document(["BOOM"])) * 2
    ) as client:
        results: dict[str, Any] = {}
        threads = [
            threading.Thread(target=lambda k=k, t=t: results.__setitem__(k, client.post("/predict", json=t)))
            for k, t in {"bad": {"tokens": [["BOOM"]]}, "good": {"tokens": [["Paris"]]}}.items()
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    _error(results["bad"], 500)
    assert results["good"].status_code == 200 and len(results["good"].json()["predictions"]) == 1
    assert len(recording.calls[0]) == 2  # they were batched together, then retried one by one


# --- micro-batching --------------------------------------------------------------------------------


def _concurrently(client: TestClient, bodies: list[dict]) -> list[Any]:
    results: list[Any] = [None] * len(bodies)

    def send(i: int) -> None:
        results[i] = client.post("/predict", json=bodies[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_concurrent_requests_share_one_forward_pass(predictor: Predictor) -> None:
    bodies = [{"texts": TEXTS[:2]}, {"tokens": TOKENS[:1]}]
    documents = [predictor.document(t) for t in TEXTS[:2]] + [Document(TOKENS[0])]
    recording = Recording(predictor)
    budget = sum(estimate_tokens(d) for d in documents)  # the batch is full once both have arrived
    start = time.monotonic()
    with _client(recording, max_batch_tokens=budget, max_wait_ms=20_000) as client:
        responses = _concurrently(client, bodies)
    assert time.monotonic() - start < 15  # a full batch does not wait for max_wait_ms
    assert [len(c) for c in recording.calls] == [3]
    with _client(predictor) as client:  # the same answers as each request alone
        alone = [client.post("/predict", json=b).json() for b in bodies]
    assert [r.json() for r in responses] == alone


def test_the_token_budget_splits_batches_and_keeps_each_request_in_order(predictor: Predictor) -> None:
    recording = Recording(predictor)
    texts = [f"Paris {'and Berlin ' * i}." for i in range(6)]
    budget = 12
    with _client(recording, max_batch_tokens=budget, max_wait_ms=0) as client:
        got = client.post("/predict", json={"texts": texts}).json()["predictions"]
    assert len(recording.calls) > 1
    for call in recording.calls:
        assert len(call) == 1 or sum(estimate_tokens(d) for d in call) <= budget
    expected = [p.entities for p in predictor.predict_chunk([predictor.document(t) for t in texts])]
    assert [[e["text"] for e in p["entities"]] for p in got] == [[e["text"] for e in x] for x in expected]


def test_the_event_loop_answers_health_while_the_model_runs(predictor: Predictor) -> None:
    recording = Recording(predictor, delay=1.5)
    with _client(recording, max_wait_ms=0) as client:
        thread = threading.Thread(
            target=client.post, args=("/predict",), kwargs={"json": {"texts": ["Paris"]}}
        )
        thread.start()
        while not recording.calls:
            time.sleep(0.01)
        start = time.monotonic()
        assert client.get("/health").status_code == 200
        assert time.monotonic() - start < 1.0
        thread.join()


def test_stopping_the_batcher_predicts_everything_queued(predictor: Predictor) -> None:
    async def scenario() -> list[Any]:
        batcher = MicroBatcher(Recording(predictor, delay=0.2), max_batch_tokens=4, max_wait_ms=0)
        await batcher.start()
        tasks = [asyncio.create_task(batcher.predict([Document(["Paris", "is"])])) for _ in range(4)]
        await asyncio.sleep(0.05)  # all queued, the first one running
        await batcher.stop()
        # after stop the worker is gone: only documents it predicted can still complete
        return await asyncio.wait_for(asyncio.gather(*tasks), 1.0)

    results = asyncio.run(scenario())
    assert [len(r[0].tags) for r in results] == [2, 2, 2, 2]


def test_bad_settings_are_value_errors(predictor: Predictor) -> None:
    with pytest.raises(ValueError, match="max_texts"):
        create_app(predictor, max_texts=0)
    with pytest.raises(ValueError, match="max_batch_tokens"):
        create_app(predictor, max_batch_tokens=0)


# --- the page and packaging ------------------------------------------------------------------------


def test_page_and_its_files_are_served_and_load_nothing_from_outside(predictor: Predictor) -> None:
    with _client(predictor) as client:
        page = client.get("/")
        files = {name: client.get(f"/static/{name}") for name in ("highlight.js", "highlight.css", "page.js")}
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="tag"' in page.text and "<textarea" in page.text
    for name, response in files.items():
        assert response.status_code == 200, name
    for text in [page.text, *(r.text for r in files.values())]:
        assert not re.search(r"(src|href|url)\s*[=(]\s*[\"']?(https?:)?//", text)  # no CDN, fully offline


@pytest.mark.slow
def test_the_wheel_ships_the_page(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "nerfocal", source / "nerfocal", ignore=shutil.ignore_patterns("__pycache__"))
    code = "import sys; from setuptools import build_meta; print(build_meta.build_wheel(sys.argv[1]))"
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], cwd=source, capture_output=True, text=True, check=True
    )
    wheel = tmp_path / out.stdout.strip().splitlines()[-1]
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("index.html", "highlight.js", "highlight.css", "page.js"):
        assert f"nerfocal/serve/static/{name}" in names


# --- the real server: SIGTERM ----------------------------------------------------------------------


def test_sigterm_finishes_requests_in_flight_and_queued_then_exits_0(model_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "running"
    process, url = start_server(model_dir, slow=1.5, marker=str(marker), max_batch_tokens=4, max_wait_ms=0)
    try:
        responses: dict[str, Any] = {}

        def send(name: str, text: str) -> None:
            responses[name] = httpx.post(f"{url}/predict", json={"texts": [text]}, timeout=60)

        first = threading.Thread(target=send, args=("first", "Angela Merkel visited Paris ."))
        first.start()
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists(), "the first request never reached the model"
        second = threading.Thread(target=send, args=("second", "Berlin Germany London"))
        second.start()  # queued behind the first batch (max_batch_tokens=4)
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        first.join(60)
        second.join(60)
        output = process.communicate(timeout=60)[0]
        assert process.returncode == 0, output
        for name in ("first", "second"):
            assert responses[name].status_code == 200, responses[name].text
            assert len(responses[name].json()["predictions"]) == 1
    finally:
        stop_server(process)


@pytest.mark.slow
def test_load_script_gets_every_malformed_request_its_4xx(model_dir: Path, tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import serve_load

    process, url = start_server(model_dir)
    try:
        out = tmp_path / "load.json"
        argv = ["--url", url, "--clients", "2", "--seconds", "1.5", "--bad-fraction", "0.6"]
        assert serve_load.main([*argv, "--json", str(out)]) == 0
        results = json.loads(out.read_text(encoding="utf-8"))
        assert results["errors"] == 0 and results["good_requests"] > 0
        assert set(results["refused_as_expected"]) == set(serve_load.BAD_KINDS)
    finally:
        stop_server(process)


# --- wait_until_healthy: the one wait of the tests, the load benchmark and any other launcher ---------


def test_wait_until_healthy_waits_through_a_503_and_returns_on_200() -> None:
    import http.server

    from nerfocal.serve import wait_until_healthy

    answers = [503, 503, 200]

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(answers.pop(0) if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        wait_until_healthy(f"http://127.0.0.1:{server.server_port}/", timeout=10, interval=0.01)
    finally:
        server.shutdown()
        server.server_close()
    assert answers == []


def test_wait_until_healthy_stops_when_the_server_process_exits_or_the_time_is_up() -> None:
    from _serve_helpers import free_port

    from nerfocal.serve import wait_until_healthy

    url = f"http://127.0.0.1:{free_port()}"
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    process.wait(timeout=30)
    with pytest.raises(RuntimeError, match=f"the server exited with status 3 before {url}/health answered"):
        wait_until_healthy(url, timeout=30, process=process)
    start = time.monotonic()
    with pytest.raises(TimeoutError, match=f"{url}/health did not answer within 0.5 s"):
        wait_until_healthy(url, timeout=0.5, interval=0.05)
    assert time.monotonic() - start < 5

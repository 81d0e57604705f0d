"""int8 recipes of `nerfocal export --quantize int8`: each option changes the graph as it says, the
int8 model still agrees with float on the tiny model, calibration-file errors are one line with
file:line, and the fused float graph matches PyTorch (also with left padding)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from fixtures import IOB2_LABELS, save_int8_test_model

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install nerfocal[onnx])")
onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install nerfocal[onnx])")
pytest.importorskip("onnxscript", reason="onnxscript is not installed (pip install nerfocal[onnx])")

from onnx import numpy_helper  # noqa: E402

from nerfocal import export as export_module  # noqa: E402
from nerfocal.cli import main  # noqa: E402
from nerfocal.export import export_model  # noqa: E402
from nerfocal.loading import load_pretrained  # noqa: E402
from nerfocal.onnx_backend import OnnxTokenClassifier  # noqa: E402
from nerfocal.quantize import Int8Options, weight_modules  # noqa: E402

SENTENCES = [
    words.split()
    for words in (
        "EU rejects German call to boycott British lamb .",
        "Peter Blackburn",
        "BRUSSELS 1996-08-22",
        "Germany 's representative to the European Union 's veterinary committee Werner Zwingmann said .",
    )
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_int8_test_model(tmp_path_factory.mktemp("torch"), IOB2_LABELS, max_length=24)


@pytest.fixture(scope="module")
def conll_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.conll"
    blocks = ["-DOCSTART- O\n"] + ["".join(f"{w} O\n" for w in words) for words in SENTENCES * 5]
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def _graph(directory: Path) -> tuple[Counter[str], dict[str, np.ndarray], Any]:
    proto = onnx.load(str(directory / "model.onnx"))
    weights = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    return Counter(n.op_type for n in proto.graph.node), weights, proto


def _quantized_weights(weights: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [w for name, w in weights.items() if name.endswith("_quantized") and w.ndim == 2]


def _scales(weights: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The scales of the quantized weights (``W_scale`` beside ``W_quantized``)."""
    names = [
        n.removesuffix("_quantized") for n, w in weights.items() if n.endswith("_quantized") and w.ndim == 2
    ]
    return [weights[f"{name}_scale"] for name in names]


@pytest.mark.parametrize(
    "options, optimize, expect",
    [
        (Int8Options(), True, "recipe"),
        (Int8Options(per_channel=False, keep_float=()), False, "old"),
        (Int8Options(reduce_range=True), True, "reduce_range"),
        (Int8Options(weight_type="quint8"), True, "quint8"),
        (Int8Options(keep_float=()), True, "all"),
        (Int8Options(keep_float=("head", "last_layer")), True, "head_last"),
        (Int8Options(keep_float=("bert.encoder.layer.1.output.dense",)), True, "module"),
    ],
)
def test_each_dynamic_option_shapes_the_graph_and_keeps_the_labels(
    model_dir: Path, tmp_path: Path, options: Int8Options, optimize: bool, expect: str
) -> None:
    report = export_model(model_dir, tmp_path / "int8", quantize="int8", int8=options, optimize=optimize)
    assert report.argmax_agreement >= 0.98 and report.int8 == options.describe()  # the check passed
    ops, weights, proto = _graph(tmp_path / "int8")
    quantized, scales = _quantized_weights(weights), _scales(weights)
    float_products = [
        n for n in proto.graph.node if n.op_type in ("MatMul", "Attention") and n.input[1] in weights
    ]
    assert quantized and all(w.dtype == (np.uint8 if expect == "quint8" else np.int8) for w in quantized)
    per_channel = all(s.size > 1 for s in scales)
    assert per_channel == options.per_channel and all(s.size == 1 for s in scales) != options.per_channel
    if expect == "old":  # per-tensor, no fusion, everything quantized: the first recipe
        assert ops["Attention"] == ops["QAttention"] == 0 and ops["Softmax"] == 2 and not float_products
    if expect == "reduce_range":  # 7-bit weights
        assert max(int(np.abs(w.astype(np.int32)).max()) for w in quantized) <= 64
    if expect in ("recipe", "reduce_range", "quint8"):  # layer 0 in float: its Attention and 3 MatMuls
        assert report.kept_float == 4 and len(float_products) == 4 and ops["QAttention"] == 1
    if expect == "all":
        assert report.kept_float == 0 and not float_products and ops["QAttention"] == 2
    if expect == "head_last":  # the classifier and layer 1's four products
        assert report.kept_float == 5 and ops["QAttention"] == 1 and ops["MatMulInteger"] == 3
    if expect == "module":
        assert report.kept_float == 1 and len(float_products) == 1


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy"])
def test_static_int8_calibrates_on_a_conll_file_and_keeps_the_labels(
    model_dir: Path, conll_file: Path, tmp_path: Path, method: str
) -> None:
    options = Int8Options(mode="static", calibration_file=str(conll_file), calibration_method=method)
    report = export_model(model_dir, tmp_path / "static", quantize="int8", int8=options)
    assert report.argmax_agreement >= 0.98 and f"{method} calibration" in report.summary()
    ops, _, _ = _graph(tmp_path / "static")
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0 and ops["MatMulInteger"] == 0


@pytest.mark.parametrize("fmt", ["text", "jsonl"])
def test_static_int8_reads_text_and_jsonl_calibration_files(
    model_dir: Path, tmp_path: Path, fmt: str
) -> None:
    path = tmp_path / f"calib.{fmt}"
    lines = [" ".join(w) if fmt == "text" else json.dumps({"tokens": w}) for w in SENTENCES]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    argv = ["export", "--model", str(model_dir), "--output", str(tmp_path / "out"), "--quantize", "int8"]
    argv += ["--int8-mode", "static", "--calibration-file", str(path), "--calibration-format", fmt]
    assert main([*argv, "--calibration-sentences", "2"]) == 0
    assert json.loads((tmp_path / "out" / "config.json").read_text())["nerfocal_onnx_int8"].startswith(
        "static, per-channel qint8 weights, minmax calibration"
    )


@pytest.mark.parametrize(
    "content, fmt, message",
    [
        (
            b"EU B-ORG\nrejects O\n\nPeter B-PER x\n",
            "conll",
            r"calib:4: expected 2 columns like the first line",
        ),
        (b"EU O\n\nM\xfcller O\n", "conll", r"calib:3: "),
        (b'{"tokens": ["EU"]}\n{"tokens": [\n', "jsonl", r"calib:2: "),
        (b'{"tokens": ["EU"]}\n{"words": ["x"]}\n', "jsonl", r'calib:2: expected a string "text"'),
        (b"\n\n-DOCSTART- O\n\n", "conll", r"calib: no sentences to calibrate on"),
    ],
)
def test_calibration_file_errors_are_one_line_with_file_and_line(
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
    fmt: str,
    message: str,
) -> None:
    (tmp_path / "calib").write_bytes(content)
    argv = ["export", "--model", str(model_dir), "--output", str(tmp_path / "out"), "--quantize", "int8"]
    argv += ["--int8-mode", "static", "--calibration-file", str(tmp_path / "calib")]
    assert main([*argv, "--calibration-format", fmt]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("nerfocal export: error:")
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["calib"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--int8-mode", "static"], r"--int8-mode static: needs --calibration-file"),
        (["--calibration-file", "x.conll"], r"--calibration-file: only used with --int8-mode static"),
        (["--int8-keep-float", "bert.pooler"], r"--int8-keep-float: 'bert.pooler' matches no weight product"),
        (["--int8-keep-float", "none", "head"], r"--int8-keep-float: expected 'none' alone"),
        (["--calibration-sentences", "0"], r"--calibration-sentences: expected >= 1, got 0"),
        (["--int8-mode", "static", "--calibration-file", "missing.conll"], r"missing\.conll: no such file"),
    ],
)
def test_bad_int8_options_are_one_line_naming_the_option(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    argv = ["export", "--model", str(model_dir), "--output", str(tmp_path / "out"), "--quantize", "int8"]
    assert main([*argv, *extra]) == 2
    # the last line (a name checked against the graph comes after the model's loading bar)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("nerfocal export: error:") and re.search(message, err), err
    assert not (tmp_path / "out").exists()


def test_int8_flags_without_quantize_are_refused(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["export", "--model", str(model_dir), "--output", str(tmp_path / "out")]
    assert main([*argv, "--no-int8-per-channel"]) == 2
    assert "--int8-per-channel: only used with --quantize int8" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"int8 options given without quantize='int8'"):
        export_model(model_dir, tmp_path / "out", int8=Int8Options())


def test_failed_int8_check_says_what_to_try(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"int8 export check failed: .*expected >= 101\.0%") as info:
        export_model(model_dir, tmp_path / "a", quantize="int8", min_agreement=1.01)
    assert (
        "try --int8-keep-float first_layer last_layer; --int8-weight-type quint8 (slower); or export"
        in str(info.value)
    )
    options = Int8Options(per_channel=False, keep_float=(), mode="dynamic")
    with pytest.raises(ValueError, match=r"try --int8-per-channel; --int8-keep-float first_layer last_layer"):
        export_model(model_dir, tmp_path / "b", quantize="int8", int8=options, min_agreement=1.01)
    assert list(tmp_path.iterdir()) == []


def test_fused_float_graph_matches_torch_with_left_and_right_padding(model_dir: Path, tmp_path: Path) -> None:
    report = export_model(model_dir, tmp_path / "fp32")
    assert report.fused == {
        "Attention": 2,
        "SkipLayerNormalization": 4,
        "BiasGelu": 2,
        "LayerNormalization": 1,
    }
    model, tokenizer = load_pretrained(model_dir)
    session = OnnxTokenClassifier(tmp_path / "fp32" / "model.onnx", model.config)
    right = tokenizer(
        SENTENCES, is_split_into_words=True, padding=True, truncation=True, max_length=24, return_tensors="pt"
    )
    ids, mask = right["input_ids"], right["attention_mask"]
    lengths = mask.sum(1)
    left_ids, left_mask = torch.zeros_like(ids), torch.zeros_like(mask)
    for row, n in enumerate(lengths.tolist()):
        left_ids[row, ids.shape[1] - n :], left_mask[row, ids.shape[1] - n :] = ids[row, :n], 1
    with torch.inference_mode():
        for batch_ids, batch_mask in ((ids, mask), (left_ids, left_mask)):
            want = model(input_ids=batch_ids, attention_mask=batch_mask).logits
            got = session(batch_ids, batch_mask).logits
            keep = batch_mask.bool()
            assert torch.allclose(want[keep], got[keep], atol=1e-4)


def test_no_optimize_exports_the_unfused_graph(model_dir: Path, tmp_path: Path) -> None:
    assert main(["export", "--model", str(model_dir), "--output", str(tmp_path / "o"), "--no-optimize"]) == 0
    ops, _, proto = _graph(tmp_path / "o")
    assert ops["Attention"] == 0 and ops["Softmax"] == 2 and ops["LayerNormalization"] == 5
    assert set(weight_modules(proto).values()) >= {"classifier", "bert.encoder.layer.0.attention.self.query"}


def test_fusion_leaves_a_graph_without_the_mask_pattern_correct(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a graph whose mask the fusion cannot find (the Unsqueeze steps stay merged): unfused, still exact
    monkeypatch.setattr("nerfocal.onnx_fusion.split_mask_unsqueeze", lambda proto: 0)
    report = export_model(model_dir, tmp_path / "o")
    assert "Attention" not in report.fused and report.max_abs_diff <= 1e-3
    assert export_module.FUSABLE_MODEL_TYPES == ("bert",)

"""ONNX export (float32 and int8), its self-check, and the ONNX Runtime backend of Predictor."""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from fixtures import BIOES_LABELS, save_int8_test_model, save_tiny_model

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install nerfocal[onnx])")
onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install nerfocal[onnx])")
pytest.importorskip("onnxscript", reason="onnxscript is not installed (pip install nerfocal[onnx])")

from nerfocal import export as export_module  # noqa: E402
from nerfocal.export import export_model  # noqa: E402
from nerfocal.onnx_backend import OnnxTokenClassifier, choose_backend  # noqa: E402
from nerfocal.predict import Predictor  # noqa: E402

MAX_LENGTH = 24
TEXTS = [
    "Angela Merkel visited Paris in June with the European Union delegation .",
    "Müller , Zoë and José met at the café in São Paulo ; 🙂 great !",
    "Reuters",
    # far longer than MAX_LENGTH sub-words: read through overlapping windows
    " ".join(["The United Nations said on Tuesday that New-York-based firms don't pay ."] * 6),
    "playing played player plays Berlin Germany London Reuters",
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random model: it tags many entities, and float32 must reproduce it exactly."""
    directory = tmp_path_factory.mktemp("torch")
    return save_tiny_model(directory, BIOES_LABELS, max_length=MAX_LENGTH, scheme="BIOES", temperature=1.7)


@pytest.fixture(scope="module")
def fitted_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A briefly fitted model for int8: a random one's near-tied logits make int8 agreement flaky."""
    directory = tmp_path_factory.mktemp("fitted")
    return save_int8_test_model(directory, BIOES_LABELS, "BIOES", max_length=MAX_LENGTH, temperature=1.7)


@pytest.fixture(scope="module")
def fp32(
    model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, export_module.ExportReport]:
    output = tmp_path_factory.mktemp("exports") / "fp32"
    return output, export_model(model_dir, output)


@pytest.fixture(scope="module")
def int8(fitted_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("exports") / "int8"
    export_model(fitted_dir, output, quantize="int8")
    return output


def _copy_fp32(fp32_dir: Path, bias_shift: float = 0.0):  # type: ignore[no-untyped-def]
    """A stand-in for the tracer: copy the fixture's float32 graph, optionally shifting the classifier
    bias (a wrong export), so that check failures are tested without tracing again."""

    def fake_export(model, path: Path, sample, opset) -> None:  # type: ignore[no-untyped-def]
        proto = onnx.load(str(fp32_dir / "model.onnx"))
        for init in proto.graph.initializer:
            if init.name.endswith("classifier.bias"):  # "model.classifier.bias" in a fused graph
                values = onnx.numpy_helper.to_array(init) + bias_shift
                init.CopyFrom(onnx.numpy_helper.from_array(values, init.name))
        onnx.save(proto, str(path))

    return fake_export


def test_fp32_export_predicts_like_torch_including_windows(model_dir: Path, fp32) -> None:  # type: ignore[no-untyped-def]
    output, report = fp32
    torch_predictor = Predictor.from_pretrained(model_dir, device="cpu")
    onnx_predictor = Predictor.from_pretrained(output)
    assert isinstance(onnx_predictor.model, OnnxTokenClassifier)
    assert onnx_predictor.temperature == pytest.approx(1.7) and onnx_predictor.scheme == "BIOES"
    assert onnx_predictor.max_length == torch_predictor.max_length == MAX_LENGTH
    longest = max(
        len(torch_predictor.tokenizer(t.split(), is_split_into_words=True)["input_ids"]) for t in TEXTS
    )
    assert longest > 3 * MAX_LENGTH  # the long document really is windowed
    expected, got = torch_predictor(TEXTS), onnx_predictor(TEXTS)
    assert sum(map(len, expected)) > 5  # the random model tags plenty of entities
    for want, have in zip(expected, got, strict=True):
        assert [{k: e[k] for k in ("text", "label", "start", "end")} for e in have] == [
            {k: e[k] for k in ("text", "label", "start", "end")} for e in want
        ]
        assert [e["score"] for e in have] == pytest.approx([e["score"] for e in want], abs=1e-4)
    assert report.quantize is None and report.check_tokens > 50 and report.max_abs_diff <= 1e-3
    assert report.argmax_agreement == 1.0 and report.opset > 0 and report.size_bytes > 0
    assert report.summary().startswith(f"{output / 'model.onnx'} (float32, opset {report.opset}, ")
    assert "100.00% same labels" in report.summary()


def test_export_keeps_the_config_and_marks_the_backend(model_dir: Path, fp32) -> None:  # type: ignore[no-untyped-def]
    output, _ = fp32
    source = json.loads((model_dir / "config.json").read_text())
    config = json.loads((output / "config.json").read_text())
    for key in (
        "id2label",
        "label2id",
        "nerfocal_tag_scheme",
        "nerfocal_temperature",
        "max_position_embeddings",
    ):
        assert config[key] == source[key]
    assert config["nerfocal_backend"] == "onnx" and config["nerfocal_onnx_precision"] == "float32"
    assert {"model.onnx", "tokenizer.json", "config.json"} <= {p.name for p in output.iterdir()}
    assert not (output / "model.safetensors").exists()
    assert not [p for p in output.parent.iterdir() if p.name.startswith(".")]  # no temporary dir left


def test_int8_export_quantizes_only_weight_products_and_mostly_agrees(fitted_dir: Path, int8: Path) -> None:
    ops = Counter(node.op_type for node in onnx.load(str(int8 / "model.onnx")).graph.node)
    # layer 1 and the head quantized (QAttention, 3 + 1 MatMulInteger); layer 0 (the recipe's
    # first_layer) kept float
    assert ops["MatMulInteger"] == 4 and ops["QAttention"] == 1 and ops["Attention"] == 1
    assert ops["SkipLayerNormalization"] == 4 and ops["BiasGelu"] == 2  # norms and GELU stay float
    config = json.loads((int8 / "config.json").read_text())
    assert config["nerfocal_onnx_precision"] == "int8"
    assert config["nerfocal_onnx_int8"] == "dynamic, per-channel qint8 weights, float32: first_layer"
    torch_predictor = Predictor.from_pretrained(fitted_dir, device="cpu")
    onnx_predictor = Predictor.from_pretrained(int8, backend="onnx")
    documents = [onnx_predictor.document(t) for t in TEXTS]
    want = [p.tags for p in torch_predictor.predict_documents(documents)]
    have = [p.tags for p in onnx_predictor.predict_documents(documents)]
    pairs = [(a, b) for x, y in zip(want, have, strict=True) for a, b in zip(x, y, strict=True)]
    assert sum(a == b for a, b in pairs) / len(pairs) >= 0.9


def test_check_fails_on_a_wrong_graph_and_writes_nothing(
    model_dir: Path, fp32, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(export_module, "_export_onnx", _copy_fp32(fp32[0], bias_shift=0.5))
    with pytest.raises(ValueError, match=r"ONNX export check failed: max abs logit difference 0\.5"):
        export_model(model_dir, tmp_path / "bad")
    assert list(tmp_path.iterdir()) == []  # neither the output nor its temporary directory


def test_unchanged_graph_passes_the_patched_check(model_dir: Path, fp32, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(export_module, "_export_onnx", _copy_fp32(fp32[0]))
    assert export_model(model_dir, tmp_path / "ok").max_abs_diff <= 1e-3  # the stand-in itself is sound


def test_int8_check_fails_below_min_agreement(model_dir: Path, fp32, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(export_module, "_export_onnx", _copy_fp32(fp32[0]))
    with pytest.raises(ValueError, match=r"int8 export check failed: .* expected >= 101\.0%"):
        export_model(model_dir, tmp_path / "int8", quantize="int8", min_agreement=1.01)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["config", "tokenizer_config", "python_file"])
def test_export_refuses_remote_code(model_dir: Path, tmp_path: Path, where: str) -> None:
    custom = shutil.copytree(model_dir, tmp_path / "custom")
    if where == "python_file":
        (custom / "modeling_custom.py").write_text("raise SystemExit\n")
    else:
        path = custom / f"{where}.json"
        data = json.loads(path.read_text())
        data["auto_map"] = {"AutoModelForTokenClassification": "modeling_custom.Model"}
        path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"custom code") as info:
        export_model(custom, tmp_path / "out")
    assert "\n" not in str(info.value) and not (tmp_path / "out").exists()


def test_export_refuses_a_non_empty_output_and_leaves_it_alone(model_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"out: expected a new or empty output directory"):
        export_model(model_dir, tmp_path / "out")
    with pytest.raises(ValueError, match=r"expected quantize in"):
        export_model(model_dir, tmp_path / "other", quantize="int4")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine" and not (tmp_path / "other").exists()


def test_missing_onnxruntime_names_the_extra(fp32, model_dir: Path, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(ImportError, match=r"pip install nerfocal\[onnx\]"):
        Predictor.from_pretrained(fp32[0])
    with pytest.raises(ImportError, match=r"pip install nerfocal\[onnx\]"):
        export_model(model_dir, tmp_path / "out")
    assert Predictor.from_pretrained(model_dir, device="cpu")("Paris") is not None  # torch still works


def test_backend_is_chosen_by_the_directory_or_the_argument(model_dir: Path, fp32, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    onnx_dir = fp32[0]
    both = shutil.copytree(model_dir, tmp_path / "both")
    shutil.copy(onnx_dir / "model.onnx", both / "model.onnx")
    assert choose_backend(onnx_dir) == "onnx" and choose_backend(model_dir) == "torch"
    assert choose_backend(both) == "torch" and choose_backend(both, "onnx") == "onnx"
    assert isinstance(Predictor.from_pretrained(both, backend="onnx").model, OnnxTokenClassifier)
    assert isinstance(Predictor.from_pretrained(both, device="cpu").model, torch.nn.Module)
    with pytest.raises(
        FileNotFoundError, match=re.escape(f"{model_dir}: no model.onnx; expected a directory")
    ):
        Predictor.from_pretrained(model_dir, backend="onnx")
    with pytest.raises(ValueError, match=r"expected backend in \('auto', 'torch', 'onnx'\), got 'tf'"):
        Predictor.from_pretrained(model_dir, backend="tf")
    with pytest.raises(ValueError, match=r"cannot load the model weights"):
        Predictor.from_pretrained(onnx_dir, backend="torch")  # no safetensors there


def test_onnx_backend_uses_torch_threads_and_refuses_bf16_and_gpu(fp32) -> None:  # type: ignore[no-untyped-def]
    predictor = Predictor.from_pretrained(fp32[0], device="auto")
    assert predictor.device.type == "cpu"
    options = predictor.model.session.get_session_options()
    assert options.intra_op_num_threads == torch.get_num_threads()
    with pytest.raises(ValueError, match=r"expected dtype float32 for an ONNX model .*got bfloat16"):
        Predictor.from_pretrained(fp32[0], dtype="bfloat16")
    with pytest.raises(ValueError, match=r"expected device 'cpu' for the ONNX backend, got 'meta'"):
        Predictor.from_pretrained(fp32[0], device="meta")


def test_unreadable_onnx_file_is_one_line(fp32, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = shutil.copytree(fp32[0], tmp_path / "broken")
    (broken / "model.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(ValueError, match=r"model\.onnx: cannot load the ONNX model") as info:
        Predictor.from_pretrained(broken)
    assert "\n" not in str(info.value)

"""Scale-out: 2 processes (accelerate, gloo on CPU) train and evaluate as 1 does; resumed runs end the same.

The 2-process runs use the shipped ``configs/accelerate/cpu_2proc.yaml``. Plain SGD without clipping and
without dropout, so that the weights follow the gradient (Adam and clipping would hide a wrongly scaled
loss). Length-grouped sampling (nerfocal's default) groups the examples of whole optimizer steps, so one
process with batch 8 sees the 8 sentences that two processes with batch 4 see together at each step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from fixtures import ROOT, SAMPLE, build_tokenizer, tiny_model

from nerfocal.cli.train import main as train_main
from nerfocal.resume import StopOnSignal, resolve_resume_checkpoint
from nerfocal.trainer import EpochLengthGroupedSampler

CPU_2PROC = ROOT / "configs" / "accelerate" / "cpu_2proc.yaml"
TRAIN_SCRIPT = ROOT / "scripts" / "train_ner.py"
LAUNCH_TIMEOUT = 300

# Rank 0 pauses after its first checkpoint and waits for a signal (its pid in pause.pid); rank 1 runs on
# and blocks in the next gradient all-reduce. Only rank 0 is signalled, so stopping at the same step on
# both processes relies on StopOnSignal's agreement.
PAUSING_SCRIPT = """
import os, signal, sys, time
from pathlib import Path
from transformers import TrainerCallback
import nerfocal.resume, nerfocal.trainer

class PauseAfterFirstSave(TrainerCallback):
    paused = False
    def on_save(self, args, state, control, **kwargs):
        if self.paused or args.process_index != 0:
            return
        self.paused = True
        stopper = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
        assert isinstance(stopper, nerfocal.resume.StopOnSignal), "no SIGTERM handler during training"
        Path(args.output_dir, "pause.pid").write_text(str(os.getpid()))
        deadline = time.monotonic() + 120
        while stopper.received is None and time.monotonic() < deadline:
            time.sleep(0.02)

class Trainer(nerfocal.trainer.FocalLossTrainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_callback(PauseAfterFirstSave())

nerfocal.trainer.FocalLossTrainer = Trainer
from nerfocal.cli.train import main
sys.exit(main())
"""


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """Tiny models train fastest on one thread; more only fight over a busy CI machine's cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def child_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["TOKENIZERS_PARALLELISM"] = "false"
    env.pop("ACCELERATE_USE_CPU", None)  # nerfocal must pick gloo on CPU by itself
    return env


def launch_cmd(script: Path, args: list[str]) -> list[str]:
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CPU_2PROC)]
    return [*accelerate, str(script), *args]


def launch(script: Path, args: list[str], cwd: Path) -> None:
    cmd = launch_cmd(script, args)
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT, cwd=cwd, env=child_env()
    )
    assert result.returncode == 0, result.stderr[-4000:]


def weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(run / "model.safetensors")


def assert_same_weights(got: Path, expected: Path, rtol: float = 1e-4, atol: float = 1e-6) -> None:
    a, b = weights(got), weights(expected)
    assert a.keys() == b.keys()
    for name in b:
        torch.testing.assert_close(a[name], b[name], rtol=rtol, atol=atol, msg=name)


def flat(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def state(run: Path) -> dict[str, Any]:
    return json.loads((run / "trainer_state.json").read_text())


def step_losses(run: Path) -> dict[int, float]:
    return {h["step"]: h["loss"] for h in state(run)["log_history"] if "loss" in h}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A dropout-free tiny encoder and a dev set of 37 sentences (odd: 2 processes get unequal shares)."""
    tmp = tmp_path_factory.mktemp("scaleout")
    encoder = tmp / "encoder"
    tiny_model(labels=["O", "B-X"], dropout=0.0).save_pretrained(encoder)
    build_tokenizer(encoder)
    blocks = (SAMPLE / "dev.conll").read_text(encoding="utf-8").strip().split("\n\n")
    dev = tmp / "dev37.conll"
    dev.write_text("\n\n".join(blocks[:37]) + "\n", encoding="utf-8")
    return {"tmp": tmp, "encoder": encoder, "dev": dev}


def sgd_args(files: dict[str, Path], out: Path, batch: int, *extra: str) -> list[str]:
    # 32 sentences = 4 steps of 8 per epoch; 6 steps cross an epoch boundary
    options = (
        "--max_train_samples 32 --max_length 64 --max_steps 6 --per_device_eval_batch_size 4"
        " --optim sgd --learning_rate 0.5 --lr_scheduler_type constant --weight_decay 0 --max_grad_norm 0"
        " --alpha auto --ce_warmup_steps 2 --train_sampling_strategy group_by_length --logging_steps 1"
        " --temperature_scaling false --disable_tqdm true --report_to none"
    )
    return [
        *("--model_name_or_path", str(files["encoder"]), "--train_file", str(SAMPLE / "train.conll")),
        *("--validation_file", str(files["dev"]), "--output_dir", str(out)),
        *("--per_device_train_batch_size", str(batch), *options.split(), *extra),
    ]


@pytest.fixture(scope="module")
def two_procs(files: dict[str, Path]) -> Path:
    """2 processes x batch 4, trained and evaluated under accelerate launch."""
    out = files["tmp"] / "two_procs"
    launch(TRAIN_SCRIPT, sgd_args(files, out, 4), files["tmp"])
    return out


@pytest.fixture(scope="module")
def one_proc(files: dict[str, Path]) -> Path:
    """1 process x batch 8 (the same global batch)."""
    out = files["tmp"] / "one_proc"
    assert train_main(sgd_args(files, out, 8, "--use_cpu", "true")) == 0
    return out


@pytest.mark.slow
def test_two_processes_log_the_same_losses_and_reach_the_same_weights_as_one(
    two_procs: Path, one_proc: Path
) -> None:
    # 6 steps of a global batch of 8 over 32 sentences = 1.5 epochs; two lone processes would be at 0.75
    assert state(two_procs)["epoch"] == state(one_proc)["epoch"] == 1.5
    # Trainer logs the mean over processes of each one's loss, i.e. N x its share of the global token
    # count, so the logged value is the mean over every token of the step, as with one process
    expected = step_losses(one_proc)
    assert sorted(expected) == [1, 2, 3, 4, 5, 6]
    got = step_losses(two_procs)
    assert got == pytest.approx(expected, rel=1e-4)
    assert_same_weights(two_procs, one_proc)


@pytest.mark.slow
def test_gradient_accumulation_matches_one_large_batch(files: dict[str, Path], one_proc: Path) -> None:
    out = files["tmp"] / "accumulated"
    args = sgd_args(files, out, 4, "--gradient_accumulation_steps", "2", "--use_cpu", "true")
    assert train_main(args) == 0
    assert step_losses(out) == pytest.approx(step_losses(one_proc), rel=1e-4)
    assert_same_weights(out, one_proc)


@pytest.mark.slow
def test_dataset_normalization_and_shuffled_groups_match_one_process(files: dict[str, Path]) -> None:
    # the constant divisor counts the tokens of a whole step (both processes); the shuffled order of the
    # length groups is drawn from (seed, epoch) alone, so both processes cut the same steps
    extra = ("--loss_normalization", "dataset", "--length_group_order", "shuffled")
    two, one = files["tmp"] / "two_dataset_norm", files["tmp"] / "one_dataset_norm"
    launch(TRAIN_SCRIPT, sgd_args(files, two, 4, *extra), files["tmp"])
    assert train_main(sgd_args(files, one, 8, "--use_cpu", "true", *extra)) == 0
    assert step_losses(two) == pytest.approx(step_losses(one), rel=1e-4)
    assert_same_weights(two, one)


@pytest.mark.slow
def test_distributed_evaluation_counts_every_sentence_once(files: dict[str, Path], two_procs: Path) -> None:
    # the 2-process model evaluated by one process (learning rate 0: one step leaves the weights as they are)
    out = files["tmp"] / "eval_one_proc"
    args = sgd_args(files, out, 8, "--use_cpu", "true", "--prior_init", "false")
    args[args.index("--model_name_or_path") + 1] = str(two_procs)
    args[args.index("--learning_rate") + 1] = "0"
    args[args.index("--max_steps") + 1] = "1"
    assert train_main(args) == 0
    assert_same_weights(out, two_procs, rtol=0, atol=0)
    two = json.loads((two_procs / "eval_results.json").read_text())["validation"]
    one = json.loads((out / "eval_results.json").read_text())["validation"]
    # 37 rows in batches of 4 on 2 processes: accelerate pads with repeated rows, which must not be scored
    assert two["tokens"] == one["tokens"] > 0
    assert flat(two) == pytest.approx(flat(one), rel=1e-5, abs=1e-7)


@pytest.mark.slow
def test_sigterm_to_one_process_checkpoints_all_and_resume_matches_the_uninterrupted_run(
    files: dict[str, Path], two_procs: Path, tmp_path: Path
) -> None:
    out = files["tmp"] / "interrupted"
    script = tmp_path / "pausing_train.py"
    script.write_text(PAUSING_SCRIPT, encoding="utf-8")
    # first checkpoint at the end of epoch 0; stopped one step into epoch 1, so the resumed run must
    # skip a batch of epoch 1 and draw epoch 1's order again
    args = sgd_args(files, out, 4, "--save_strategy", "steps", "--save_steps", "4")
    pipes: dict[str, Any] = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with subprocess.Popen(launch_cmd(script, args), cwd=files["tmp"], env=child_env(), **pipes) as proc:
        try:
            pid_file = out / "pause.pid"
            deadline = time.monotonic() + LAUNCH_TIMEOUT
            while not pid_file.is_file() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert pid_file.is_file(), "training never reached its first checkpoint"
            time.sleep(0.1)  # let the writer close the file
            os.kill(int(pid_file.read_text()), signal.SIGTERM)  # rank 0 only
            _, stderr = proc.communicate(timeout=LAUNCH_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode != 0  # torchrun reports the workers' exit status 143 as a failure
    message = f"SIGTERM: interrupted at step 5; checkpoint saved to {out / 'checkpoint-5'}; resume with"
    assert message in stderr, stderr[-4000:]
    checkpoint = out / "checkpoint-5"
    for name in ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state_0.pth", "rng_state_1.pth"):
        assert (checkpoint / name).is_file(), name
    assert state(checkpoint)["global_step"] == 5
    assert not (out / "eval_results.json").exists()  # no final evaluation after an interruption

    launch(TRAIN_SCRIPT, [*args, "--resume_from_checkpoint", "auto"], files["tmp"])
    assert_same_weights(out, two_procs)
    assert step_losses(out) == pytest.approx(step_losses(two_procs), rel=1e-4)


def test_sigint_then_resume_auto_gives_the_weights_of_an_uninterrupted_run(
    tmp_path: Path, tiny_encoder_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One process, dropout on, length-grouped shuffling, interrupted in the second epoch."""
    from transformers import TrainerCallback

    import nerfocal.trainer

    def args(out: Path, *extra: str) -> list[str]:
        # 40 sentences / batch 8 = 5 steps per epoch
        return [
            *("--model_name_or_path", str(tiny_encoder_dir), "--train_file", str(SAMPLE / "train.conll")),
            *("--max_train_samples", "40", "--max_length", "64", "--max_steps", "9"),
            *("--per_device_train_batch_size", "8", "--learning_rate", "1e-3", "--ce_warmup_steps", "3"),
            *("--train_sampling_strategy", "group_by_length", "--logging_steps", "1"),
            *("--temperature_scaling", "false", "--disable_tqdm", "true", "--report_to", "none"),
            *("--use_cpu", "true", "--output_dir", str(out), *extra),
        ]

    assert train_main(args(tmp_path / "full")) == 0

    class InterruptAtStep7(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 7:
                handler = signal.getsignal(signal.SIGINT)
                assert isinstance(getattr(handler, "__self__", None), StopOnSignal)
                signal.raise_signal(signal.SIGINT)

    class Trainer(nerfocal.trainer.FocalLossTrainer):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            self.add_callback(InterruptAtStep7())

    out = tmp_path / "resumed"
    with monkeypatch.context() as patch:
        patch.setattr(nerfocal.trainer, "FocalLossTrainer", Trainer)
        # the flag is seen at the end of the next step
        assert train_main(args(out)) == 128 + signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-8"]

    assert train_main(args(out, "--resume_from_checkpoint", "auto")) == 0
    assert_same_weights(out, tmp_path / "full", rtol=1e-6, atol=1e-7)
    assert step_losses(out) == pytest.approx(step_losses(tmp_path / "full"), rel=1e-6)
    switches = [h for h in state(out)["log_history"] if "loss_switch" in h]
    assert switches == [{"step": 3, "loss_switch": "focal"}]


def test_resume_auto_without_a_checkpoint_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--train_file", str(SAMPLE / "train.conll"), "--output_dir", str(tmp_path), "--use_cpu", "true"]
    assert train_main([*argv, "--resume_from_checkpoint", "auto"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nerfocal train: error: resume_from_checkpoint auto: no checkpoint")
    assert "\n" not in err


def test_resume_auto_takes_the_latest_complete_checkpoint(tmp_path: Path) -> None:
    for step, complete in ((5, True), (20, True), (30, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-final").mkdir()
    assert resolve_resume_checkpoint("auto", str(tmp_path)) == str(tmp_path / "checkpoint-20")
    assert resolve_resume_checkpoint(None, str(tmp_path)) is None
    with pytest.raises(FileNotFoundError, match="checkpoint-30"):
        resolve_resume_checkpoint(str(tmp_path / "checkpoint-30"), str(tmp_path))


def test_length_grouped_order_depends_only_on_seed_and_epoch() -> None:
    lengths = [(i * 7) % 23 + 1 for i in range(64)]
    epoch = 0

    def sampler() -> EpochLengthGroupedSampler:
        return EpochLengthGroupedSampler(4, lengths, seed=3, epoch=lambda: epoch)

    first = list(sampler())
    torch.manual_seed(123)  # the global RNG plays no part
    assert list(sampler()) == first and sorted(first) == list(range(64))
    epoch = 1
    assert list(sampler()) != first


@pytest.mark.slow
@pytest.mark.parametrize("normalization", ["step", "dataset"])
def test_a_dataset_that_does_not_divide_the_step_trains_on_two_processes_as_on_one(
    files: dict[str, Path], normalization: str
) -> None:
    # 10 sentences, 2 processes x batch 2 x accumulation 2 = 8 a step: the second step of each epoch has
    # 2 sentences, and accelerate's even_batches pads the short process with repeats of the first ones
    # (which must not count twice); 4 steps = 2 epochs
    def args(out: Path, batch: int, *extra: str) -> list[str]:
        argv = sgd_args(files, out, batch, "--loss_normalization", normalization, *extra)
        argv[argv.index("--max_train_samples") + 1] = "10"
        argv[argv.index("--max_steps") + 1] = "4"
        return argv

    two, one = files["tmp"] / f"two_uneven_{normalization}", files["tmp"] / f"one_uneven_{normalization}"
    launch(TRAIN_SCRIPT, args(two, 2, "--gradient_accumulation_steps", "2"), files["tmp"])
    assert train_main(args(one, 8, "--use_cpu", "true")) == 0
    expected = step_losses(one)
    assert sorted(expected) == [1, 2, 3, 4]
    assert step_losses(two) == pytest.approx(expected, rel=1e-4)
    assert_same_weights(two, one)


@pytest.mark.slow
def test_early_stopping_on_two_processes_stops_and_keeps_the_best_as_one_process(
    files: dict[str, Path],
) -> None:
    """Both processes must see the same dev F1 (gathered over all of dev) to agree when to stop; a rank
    scoring only its own share would stop at another epoch, or hang its peer in the next all-reduce."""
    extra = ["--max_steps", "-1", "--num_train_epochs", "5", "--early_stopping_patience", "1"]
    two = files["tmp"] / "es_two"
    launch(TRAIN_SCRIPT, sgd_args(files, two, 4, *extra), files["tmp"])
    one = files["tmp"] / "es_one"
    assert train_main(sgd_args(files, one, 8, "--use_cpu", "true", *extra)) == 0
    curve = [h["eval_f1"] for h in state(one)["log_history"] if "eval_f1" in h]
    assert 1 < len(curve) < 5, curve  # stopped early, after at least one evaluation without a gain
    assert [h["eval_f1"] for h in state(two)["log_history"] if "eval_f1" in h] == pytest.approx(curve)
    assert state(two)["global_step"] == state(one)["global_step"]
    assert state(two)["best_global_step"] == state(one)["best_global_step"]
    assert_same_weights(two, one)

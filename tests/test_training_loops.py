"""The two training loops: the resident one (the GPU's: data on the device, losses read
every log_every steps) makes exactly the updates of the host one (the CPU's)."""

from __future__ import annotations

import math
import traceback

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from latent_abstractions.core.errors import TrainingDiverged
from latent_abstractions.core.factors import Factor
from latent_abstractions.core.image_rows import ImageRows
from latent_abstractions.diffusion.nets.unet import ScoreUNet
from latent_abstractions.diffusion.sde import VPSDE
from latent_abstractions.training import resume
from latent_abstractions.training.graphed_step import WARMUP_STEPS, GraphedUpdate
from latent_abstractions.training.train import ExponentialMovingAverage, TrainConfig, Trainer, keep_on_device, train

FACTORS = [Factor("x", "continuous", (0.0, 1.0, 2.0)), Factor("shape", "categorical", (0.0, 1.0))]


def trainer(learning_rate: float = 2e-3, **options) -> Trainer:
    torch.manual_seed(0)
    model = ScoreUNet(1, FACTORS, base_channels=8, channel_mults=[1, 2], groups=4, cond_frequencies=4)
    config = TrainConfig(
        steps=23,
        batch_size=6,
        learning_rate=learning_rate,
        warmup_steps=3,
        keep_none=0.1,
        keep_all=0.4,
        keep_single=0.3,
        ema_decay=0.99,
        seed=3,
        log_every=5,
        **options,
    )
    return Trainer(model, VPSDE(), config, torch.device("cpu"))


def data() -> tuple[np.ndarray, np.ndarray]:
    images = np.random.default_rng(0).integers(0, 256, size=(10, 1, 8, 8), dtype=np.uint8)
    values = np.stack([np.arange(10) % 3, np.arange(10) % 2], axis=1).astype(np.float32)
    return images, values


def run(resident: bool) -> tuple[Trainer, list[int]]:
    chosen, snapshots = trainer(), []
    images, values = data()
    train(chosen, images, values, rows=np.arange(1, 9), on_checkpoint=snapshots.append, resident=resident)
    return chosen, snapshots


def test_the_resident_loop_makes_the_host_loops_updates_bit_for_bit():
    host, host_snapshots = run(resident=False)
    device, device_snapshots = run(resident=True)
    assert device_snapshots == host_snapshots
    assert device.history == host.history
    assert len(device.history) == 23 and all(math.isfinite(loss) for _, loss, _ in device.history)
    for name, value in host.ema.shadow.items():
        assert torch.equal(device.ema.shadow[name], value), name
    for name, value in host.model.state_dict().items():
        assert torch.equal(device.model.state_dict()[name], value), name


def test_the_ema_follows_the_weights_after_a_load():
    """The EMA keeps its lists of the model's tensors: a load into the model (in place, as a
    resume does) is what it averages next."""
    chosen = trainer()
    state = {name: torch.full_like(value, 0.5) for name, value in chosen.model.state_dict().items()}
    chosen.model.load_state_dict(state)
    chosen.ema.decay = 0.0
    chosen.ema.apply(chosen.ema.next_weight())
    for name, value in chosen.ema.shadow.items():
        if value.dtype.is_floating_point:
            assert torch.equal(value, state[name]), name


@pytest.mark.parametrize("resident", [False, True])
def test_a_diverging_run_stops_in_either_loop_at_the_first_non_finite_loss(resident):
    images, values = data()
    chosen = trainer(learning_rate=float("inf"))
    with pytest.raises(TrainingDiverged) as caught:
        train(chosen, images, values, resident=resident)
    # The first update's loss is finite (computed before it); its infinite step makes the next NaN.
    assert (caught.value.step, caught.value.last_finite[0]) == (2, 1)
    assert [step for step, _, _ in chosen.history] == [0]


@pytest.mark.parametrize("resident", [False, True])
def test_non_finite_gradients_stop_the_run_at_their_step_though_the_loss_is_finite(resident):
    images, values = data()
    chosen = trainer()
    first = next(chosen.model.parameters())
    first.register_hook(lambda gradient: gradient * float("inf"))
    with pytest.raises(
        TrainingDiverged, match=r"training diverged at step 1: gradient norm (nan|inf) \(no finite loss"
    ):
        train(chosen, images, values, resident=resident)
    assert chosen.history == []  # nothing recorded from the diverged step


def test_a_data_set_too_large_for_the_device_is_said_in_one_line_and_read_from_the_host(caplog):
    images, _ = data()
    source = ImageRows(images)
    assert not keep_on_device(source, torch.device("cpu"), free_bytes=images.nbytes)  # needs twice its size
    assert source.cache is None
    (line,) = [r.getMessage() for r in caplog.records if r.name == "train"]
    assert "exceeds half the free memory of cpu" in line and "gathered from host memory" in line
    assert keep_on_device(source, torch.device("cpu"), free_bytes=2 * images.nbytes)
    assert source.cache is not None


def test_bf16_without_a_cuda_device_says_so_and_trains_in_fp32(caplog):
    chosen = trainer()
    chosen.config.precision = "bf16"
    bf16 = Trainer(chosen.model, chosen.sde, chosen.config, torch.device("cpu"))
    assert not bf16.autocast._enabled
    assert any("bf16 needs a CUDA device" in r.getMessage() for r in caplog.records if r.name == "train")


def same_training(a: Trainer, b: Trainer) -> None:
    assert a.history == b.history
    for name, value in a.ema.shadow.items():
        assert torch.equal(b.ema.shadow[name], value), name


def test_a_cuda_graph_asked_of_a_cpu_is_said_in_one_line_and_trains_eagerly(caplog):
    images, values = data()
    eager, asked = trainer(), trainer(cuda_graph=True)
    train(eager, images, values)
    with caplog.at_level("WARNING", logger="train"):
        train(asked, images, values)
    said = [r.getMessage() for r in caplog.records if r.name == "train"]  # not the progress lines
    assert said == ["train.cuda_graph needs a CUDA device; cpu trains eagerly"]
    same_training(eager, asked)


def test_a_failed_capture_falls_back_to_the_eager_step_with_one_warning(caplog):
    """Here the capture fails for want of CUDA; any op a graph cannot hold takes the same path."""
    images, values = data()
    eager, graphed = trainer(), trainer(cuda_graph=True)
    update = GraphedUpdate(graphed)  # as Trainer.step_function makes it, with the EMA's graph formula:
    graphed.ema.graph_formula = eager.ema.graph_formula = True  # a graphed run averages so on every step
    source = ImageRows(images)
    with caplog.at_level("WARNING", logger="train"):
        for _ in range(WARMUP_STEPS + 3):
            for chosen, step in ((eager, eager.update), (graphed, update)):
                batch = chosen.draw(len(source), source.image_shape, 2)
                step(source.gather(batch.index, "cpu"), torch.tensor(values)[batch.index], batch)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and messages[0].startswith("train.cuda_graph: capture failed (")
    assert update.eager and graphed.step_index == eager.step_index == WARMUP_STEPS + 3
    for name, value in eager.model.state_dict().items():
        assert torch.equal(graphed.model.state_dict()[name], value), name
    for name, value in eager.ema.shadow.items():
        assert torch.equal(graphed.ema.shadow[name], value), name


def test_a_resume_file_keeps_a_device_tensor_learning_rate_as_its_value(tmp_path):
    """The graphed step holds its learning rate in a tensor and marks AdamW capturable; the
    resume file stores the rate's value, and a resumed trainer is capturable only if it
    was built so (a GPU run's file resumed on a CPU trains there)."""
    saved = trainer()
    for group in saved.optimizer.param_groups:
        group["lr"], group["capturable"] = torch.tensor(1.5e-3), True
    resume.save(saved, tmp_path / "resume.safetensors", "fingerprint")
    resumed = trainer()
    resume.load(resumed, tmp_path / "resume.safetensors")
    group = resumed.optimizer.param_groups[0]
    assert group["lr"] == pytest.approx(1.5e-3) and group["capturable"] is False


class HostReads(TorchDispatchMode):
    """Records every read of a tensor's value on the host (what a CUDA graph cannot hold)."""

    def __init__(self):
        super().__init__()
        self.sources: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.sources.append("".join(traceback.format_stack(limit=12)))
        return func(*args, **(kwargs or {}))


def test_the_captured_work_reads_nothing_on_the_host():
    """Forward, backward, clipping and the EMA with a device weight make no host read; the
    CPU's AdamW reads its step count (on CUDA the graph's AdamW is fused and capturable)."""
    chosen, (images, values) = trainer(), data()
    source = ImageRows(images)
    batch = chosen.draw(len(source), source.image_shape, 2)
    inputs = chosen.step_inputs(source.gather(batch.index, "cpu"), torch.tensor(values)[batch.index], batch)
    reads = HostReads()
    with reads:
        chosen.compute(inputs, torch.tensor(0.1))
    assert [s for s in reads.sources if "torch/optim" not in s] == []


def test_the_ema_with_a_device_weight_averages_as_with_a_float():
    by_float, by_tensor = trainer(), trainer()
    for chosen in (by_float, by_tensor):
        for parameter in chosen.model.parameters():
            parameter.data.add_(1.0)
    by_float.ema.apply(0.3)
    by_tensor.ema.apply(torch.tensor(0.3))
    for name, value in by_float.ema.shadow.items():
        assert torch.allclose(by_tensor.ema.shadow[name], value, atol=1e-6), name


def test_a_graphed_runs_eager_steps_average_as_its_graph_does():
    """The graph reads its EMA weight from a device tensor (sub, mul, add); the eager
    warm-up steps of a graphed run must round the same way, not through lerp."""
    torch.manual_seed(0)
    chosen = trainer()
    for value in chosen.model.state_dict().values():
        if value.dtype.is_floating_point:
            value.add_(torch.randn_like(value))
    states = []
    for weight, graph_formula in ((torch.tensor(0.137), False), (0.137, True), (0.137, False)):
        ema = ExponentialMovingAverage(chosen.model, 0.9)
        ema.graph_formula = graph_formula
        for shadow in ema.shadow.values():
            shadow.mul_(0.5)
        ema.apply(weight)
        states.append(torch.cat([v.flatten() for v in ema.shadow.values() if v.dtype.is_floating_point]))
    assert torch.equal(states[0], states[1])  # one formula for every step of a graphed run
    assert not torch.equal(states[0], states[2])  # lerp rounds otherwise: the test can fail


def test_one_capture_per_trainer_across_train_calls(monkeypatch):
    """A second train() on the same trainer (a benchmark's next timed window) replays the
    graph it has instead of warming up and capturing again."""
    from latent_abstractions.training import graphed_step

    monkeypatch.setattr(graphed_step, "refusal", lambda device, world: None)  # as on a CUDA device
    chosen = trainer(cuda_graph=True)
    first = chosen.step_function()
    assert isinstance(first, graphed_step.GraphedUpdate) and chosen.step_function() is first
    assert trainer(cuda_graph=True).step_function() is not first  # a new trainer captures anew


def test_deterministic_mode_trains_with_deterministic_kernels_only(monkeypatch):
    """LATENT_ABSTRACTIONS_DETERMINISTIC=1 (the GPU resume test's setting): no autotuned or
    non-deterministic kernels; the same steps twice give the same weights bit for bit."""
    monkeypatch.setenv("LATENT_ABSTRACTIONS_DETERMINISTIC", "1")
    images, values = data()
    try:
        runs = []
        for _ in range(2):
            chosen = trainer()
            assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
            train(chosen, images, values)
            runs.append(chosen.model.state_dict())
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
    for name, value in runs[0].items():
        assert torch.equal(value, runs[1][name]), name

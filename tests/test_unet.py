"""Score network: taps from one pass, null conditions, and checkpoints that are never unpickled."""

from __future__ import annotations

import pytest
import torch

from latent_abstractions.core import safetensors_file
from latent_abstractions.core.artifacts import input_sha256, params_sha256
from latent_abstractions.core.errors import InputError
from latent_abstractions.core.factors import Factor
from latent_abstractions.diffusion import checkpoints
from latent_abstractions.diffusion.nets.unet import SelfAttention, channels_last_group_norm

from conftest import perturb

FACTORS = [Factor("x", "continuous", (2.0, 3.0, 4.0, 5.0)), Factor("y", "continuous", (2.0, 6.0))]
MODEL = {
    "base_channels": 8,
    "channel_mults": [1, 2],
    "groups": 4,
    "cond_frequencies": 4,
    "blocks_per_level": 1,
    "attention_levels": [],
    "heads": 1,
    "condition_on": [],
}


@pytest.fixture
def architecture():
    return checkpoints.architecture_from_params(MODEL, FACTORS, (1, 8, 8))


@pytest.fixture
def model(architecture):
    torch.manual_seed(0)
    return perturb(checkpoints.build_model(architecture)).eval()


def inputs(batch=4):
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 1, 8, 8, generator=generator)
    t = torch.rand(batch, generator=generator)
    values = torch.tensor([[2.0, 2.0], [3.0, 6.0], [4.0, 2.0], [5.0, 6.0]])[:batch]
    return x, t, values


def test_taps_come_from_the_same_pass(model):
    x, t, values = inputs()
    keep = torch.ones(4, 2, dtype=torch.bool)
    eps, taps = model(x, t, values, keep, taps=["down.0", "down.1", "mid", "up.0"])
    plain, none = model(x, t, values, keep)
    assert torch.allclose(eps, plain) and none == {}
    assert eps.shape == x.shape
    assert taps["down.0"].shape == (4, 8, 8, 8)
    assert taps["down.1"].shape == (4, 16, 4, 4)
    assert taps["mid"].shape == (4, 16, 4, 4)
    assert taps["up.0"].shape == (4, 8, 8, 8)


def test_unknown_tap_is_named(model):
    x, t, values = inputs()
    with pytest.raises(ValueError, match="unknown feature tap down.9; this model has: down.0, down.1, mid, up.0, up.1"):
        model(x, t, values, torch.ones(4, 2, dtype=torch.bool), taps=["down.9"])


def test_null_factor_ignores_its_value(model):
    x, t, values = inputs()
    keep = torch.tensor([[True, False]] * 4)
    other = values.clone()
    other[:, 1] = torch.tensor([9.0, -3.0, 100.0, 0.5])
    eps_a, _ = model(x, t, values, keep)
    eps_b, _ = model(x, t, other, keep)
    assert torch.equal(eps_a, eps_b)
    # ... while a kept factor's value does matter
    other_x = values.clone()
    other_x[:, 0] = 3.5
    assert not torch.allclose(model(x, t, other_x, keep)[0], eps_a)


def test_checkpoint_round_trip(tmp_path, model, architecture):
    path = tmp_path / "weights.safetensors"
    checkpoints.save(model, architecture, path, {"step": "test"})
    loaded, metadata = checkpoints.load(path, expected_architecture=architecture)
    assert metadata["provenance"] == {"step": "test"}
    x, t, values = inputs()
    keep = torch.ones(4, 2, dtype=torch.bool)
    assert torch.equal(loaded(x, t, values, keep)[0], model(x, t, values, keep)[0])


def test_corrupted_checkpoint_is_refused(tmp_path, model, architecture):
    path = tmp_path / "weights.safetensors"
    checkpoints.save(model, architecture, path, {})
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(checkpoints.CheckpointError, match="not a readable safetensors checkpoint|do not fit"):
        checkpoints.load(path)


def test_pickle_is_refused(tmp_path, model):
    path = tmp_path / "weights.safetensors"
    torch.save(model.state_dict(), path)
    with pytest.raises(checkpoints.CheckpointError, match="not a readable safetensors checkpoint"):
        checkpoints.load(path)


TRAINING = {"sde": {"kind": "vp"}, "train": {"steps": 10}}


def trained_for(experiment: str, model_params: dict, inputs: dict | None = None) -> dict:
    """A checkpoint's provenance as train_score_model writes it."""
    sections = {**TRAINING, "model": model_params}
    return {
        "experiment": experiment,
        "params": sections,
        "params_sha256": params_sha256(sections),
        "inputs": inputs or {},
    }


def test_other_architecture_is_refused(tmp_path, model, architecture):
    path = tmp_path / "weights.safetensors"
    checkpoints.save(model, architecture, path, trained_for("e", MODEL))
    wider = dict(architecture, base_channels=16)
    with pytest.raises(checkpoints.CheckpointError, match="architecture differs from params in base_channels"):
        checkpoints.load(path, expected_architecture=wider)
    other = dict(MODEL, attention_levels=[1], heads=2)
    checkpoints.save(model, architecture, path, trained_for("e", other))  # same name and params, other network
    with pytest.raises(
        checkpoints.CheckpointError, match="architecture differs from params in attention_levels, heads"
    ):
        checkpoints.load_for_params(path, {**TRAINING, "model": other}, "e")
    checkpoints.save(model, architecture, path, trained_for("e", MODEL))
    assert checkpoints.load_for_params(path, {**TRAINING, "model": MODEL}, "e")[1]["architecture"] == architecture
    # a header that lies about the tensors
    import json

    from safetensors.torch import load_file, save_file

    save_file(load_file(str(path)), str(path), metadata={"architecture": json.dumps(wider)})
    with pytest.raises(checkpoints.CheckpointError, match="weights do not fit the architecture"):
        checkpoints.load(path)


def test_weights_of_another_experiment_params_or_data_are_refused(tmp_path, model, architecture):
    path, data = tmp_path / "weights.safetensors", tmp_path / "images.npy"
    data.write_bytes(b"the images it was trained on")
    params = {**TRAINING, "model": MODEL}
    checkpoints.save(model, architecture, path, trained_for("other", MODEL))
    with pytest.raises(checkpoints.CheckpointError, match="trained for experiment 'other', not 'e'"):
        checkpoints.load_for_params(path, params, "e")
    checkpoints.save(model, architecture, path, trained_for("e", MODEL))
    with pytest.raises(checkpoints.CheckpointError, match="trained with other train params"):
        checkpoints.load_for_params(path, {**params, "train": {"steps": 20}}, "e")
    checkpoints.save(model, architecture, path, trained_for("e", MODEL, {str(data): input_sha256(data)}))
    checkpoints.load_for_params(path, params, "e")
    data.write_bytes(b"other images")
    with pytest.raises(checkpoints.CheckpointError, match="trained on another version of .*images.npy"):
        checkpoints.load_for_params(path, params, "e")


def test_categorical_factor_embedding_and_null(tmp_path):
    factors = [Factor("shape", "categorical", (0.0, 1.0, 2.0, 3.0)), Factor("x", "continuous", (0.0, 1.0))]
    architecture = checkpoints.architecture_from_params(MODEL, factors, (3, 8, 8))
    torch.manual_seed(0)
    net = perturb(checkpoints.build_model(architecture)).eval()
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([0.3, 0.6])
    both = torch.ones(2, 2, dtype=torch.bool)
    square, sphere = torch.tensor([[0.0, 0.5], [0.0, 0.5]]), torch.tensor([[2.0, 0.5], [2.0, 0.5]])
    assert not torch.allclose(net(x, t, square, both)[0], net(x, t, sphere, both)[0])
    shape_dropped = torch.tensor([[False, True]] * 2)
    assert torch.equal(net(x, t, square, shape_dropped)[0], net(x, t, sphere, shape_dropped)[0])


def test_deeper_family_member_with_attention_levels():
    architecture = checkpoints.architecture_from_params(
        dict(MODEL, channel_mults=[1, 2, 2], blocks_per_level=2, attention_levels=[1, 2], heads=2), FACTORS, (1, 16, 16)
    )
    net = checkpoints.build_model(architecture).eval()
    attentions = [name for name, module in net.named_modules() if type(module).__name__ == "SelfAttention"]
    assert len(attentions) == 1 + 2 * 2 * 2  # middle, plus levels 1 and 2 on both sides, 2 blocks each
    x, t = torch.randn(2, 1, 16, 16), torch.rand(2)
    eps, taps = net(
        x, t, torch.tensor([[2.0, 2.0], [3.0, 6.0]]), torch.ones(2, 2, dtype=torch.bool), taps=["down.2", "up.1"]
    )
    assert eps.shape == x.shape and taps["down.2"].shape == (2, 16, 4, 4) and taps["up.1"].shape == (2, 16, 8, 8)


@pytest.mark.parametrize("heads", [1, 2, 4])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_attention_keeps_the_memory_format_and_matches_the_plain_formulation(heads, memory_format):
    """Self-attention over views of the channels_last map gives exactly what attention on
    (batch, heads, tokens, head dim) reshaped from NCHW gives, and returns the input's format."""
    torch.manual_seed(0)
    layer = SelfAttention(16, 4, heads).to(memory_format=memory_format)
    torch.nn.init.normal_(layer.out.weight)
    x = torch.randn(3, 16, 8, 8).contiguous(memory_format=memory_format)
    qkv = layer.qkv(layer.norm(x)).reshape(3, 3, heads, 16 // heads, 64)
    q, k, v = qkv.transpose(-1, -2).contiguous().unbind(1)
    attended = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    expected = x + layer.out(attended.transpose(-1, -2).reshape(3, 16, 8, 8))
    got = layer(x)
    assert torch.equal(got, expected)
    assert got.is_contiguous(memory_format=memory_format)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_channels_last_group_norm_is_group_norm_and_keeps_the_layout(dtype):
    """The CUDA path's arithmetic, checked on the CPU against torch's GroupNorm."""
    torch.manual_seed(0)
    x = (3 * torch.randn(2, 16, 5, 7) + 1).to(dtype).contiguous(memory_format=torch.channels_last)
    weight, bias = torch.randn(16), torch.randn(16)
    got = channels_last_group_norm(x, 4, weight, bias, 1e-5)
    expected = torch.nn.functional.group_norm(x.float(), 4, weight, bias, 1e-5)
    assert got.dtype == dtype and got.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(got.float(), expected, atol=1e-5 if dtype == torch.float32 else 0.05)


def test_a_side_that_does_not_halve_evenly_is_refused():
    three_levels = {**MODEL, "channel_mults": [1, 2, 2]}
    assert checkpoints.architecture_from_params(three_levels, FACTORS, (3, 64, 64))["image_size"] == [64, 64]
    with pytest.raises(
        InputError, match=r"images are 63x63: must be divisible by 4 for 3 model levels \(model.channel_mults\)"
    ):
        checkpoints.architecture_from_params(three_levels, FACTORS, (3, 63, 63))


@pytest.mark.parametrize(
    "change, expected",
    [
        ("drop factors", "architecture lacks factors; train or import it again"),
        ("drop groups", "architecture lacks groups; train or import it again"),
        ("not a mapping", "architecture is not a mapping"),
        ("unknown network", "architecture names network 'mystery'; this project builds score_unet, diffusers_unet2d"),
    ],
)
def test_a_header_whose_architecture_lacks_a_key_is_named(tmp_path, model, architecture, change, expected):
    header = dict(architecture)
    if change.startswith("drop"):
        del header[change.split()[1]]
    elif change == "not a mapping":
        header = ["score_unet"]
    else:
        header["network"] = "mystery"
    path = tmp_path / "weights.safetensors"
    safetensors_file.write_checkpoint(model.state_dict(), header, trained_for("e", MODEL), path)
    for load in (checkpoints.load, lambda p: checkpoints.load_for_params(p, {**TRAINING, "model": MODEL}, "e")):
        with pytest.raises(checkpoints.CheckpointError, match=rf"weights.safetensors: the header's {expected}"):
            load(path)


def test_a_header_field_that_is_not_json_is_named(tmp_path, model):
    path = tmp_path / "weights.safetensors"
    safetensors_file.write(model.state_dict(), path, {"architecture": "{", "provenance": "{}"})
    with pytest.raises(
        checkpoints.CheckpointError, match=r"weights.safetensors: the header's architecture is not JSON"
    ):
        checkpoints.load(path)

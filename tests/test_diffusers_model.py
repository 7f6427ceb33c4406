"""A diffusers UNet2DModel as the pipeline's network: trained by the pipeline
(`model.architecture: diffusers_unet2d`) or brought from outside (`model.kind: diffusers`,
a save_pretrained folder). The schedules agree, taps are module paths read with hooks,
a bad folder is one line, and a network trained here, saved with save_pretrained and
imported back gives the same tables bit for bit."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
import yaml
from diffusers import DDPMScheduler, UNet2DModel

from latent_abstractions.core.errors import InputError
from latent_abstractions.core.factors import Factor
from latent_abstractions.diffusion import checkpoints, diffusers_folder
from latent_abstractions.diffusion.nets.diffusers_unet import DiffusersScoreNet, ddpm_timestep
from latent_abstractions.diffusion.sde import make_sde

from conftest import CI_PARAMS
from test_pipeline import git_repository, run, snakemake

FACTORS = [Factor("x", "continuous", (0.0, 1.0, 2.0)), Factor("y", "categorical", (0.0, 1.0))]
MODEL = {
    "kind": "trained",
    "architecture": "diffusers_unet2d",
    "base_channels": 8,
    "channel_mults": [1, 2],
    "groups": 4,
    "blocks_per_level": 1,
    "attention_levels": [],
    "heads": 1,
    "cond_frequencies": 4,
}


def network(seed: int = 0) -> DiffusersScoreNet:
    torch.manual_seed(seed)
    return checkpoints.build_model(checkpoints.architecture_from_params(MODEL, FACTORS, (1, 8, 8)))


def test_the_vp_sde_and_ddpms_linear_schedule_have_the_same_marginals():
    ddpm = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
    sde = make_sde({"kind": "vp", "beta_min": 0.1, "beta_max": 20.0})
    steps = torch.arange(1000)
    t = (steps.double() + 1) / 1000  # DDPM's step i is the SDE's time (i + 1) / 1000 ...
    assert torch.allclose(ddpm_timestep(t), steps.double())  # ... which the network is given as i
    signal = ddpm.alphas_cumprod.double().sqrt()
    assert (sde.alpha(t.float()).double() - signal).abs().max() < 1.5e-3
    assert (sde.sigma(t.float()).double() - (1 - signal**2).sqrt()).abs().max() < 1.5e-3


def test_taps_are_module_outputs_read_in_the_same_pass():
    model = network().eval()
    x, t = torch.randn(3, 1, 8, 8), torch.rand(3)
    values, keep = torch.tensor([[0.0, 1.0], [2.0, 0.0], [1.0, 1.0]]), torch.ones(3, 2, dtype=torch.bool)
    eps, taps = model(x, t, values, keep, taps=["down_blocks.1", "mid_block", "down_blocks.0.resnets.0"])
    plain, _ = model(x, t, values, keep)
    assert torch.equal(eps, plain) and eps.shape == x.shape
    assert taps["mid_block"].shape == (3, 16, 4, 4) and taps["down_blocks.0.resnets.0"].shape == (3, 8, 8, 8)
    assert model.tap_names[: model.levels] == ["down_blocks.0", "down_blocks.1"]  # deepest_encoder: the last
    with pytest.raises(InputError, match=r"unknown feature tap mid; .* module paths include: conv_in, .*mid_block"):
        model(x, t, values, keep, taps=["mid"])


def test_each_factor_can_be_dropped_through_the_condition_embedding():
    model = network().eval()
    x, t, values = torch.randn(1, 1, 8, 8).expand(3, -1, -1, -1), torch.full((3,), 0.5), torch.tensor([[2.0, 1.0]] * 3)
    keep = torch.tensor([[True, True], [True, False], [False, False]])
    with torch.no_grad():
        for parameter in model.parameters():  # diffusers zero-initialises no output; nudge the embedding
            parameter.add_(0.05 * torch.randn_like(parameter))
        eps, _ = model(x, t, values, keep)
    assert not torch.equal(eps[0], eps[1]) and not torch.equal(eps[1], eps[2])


def test_a_class_conditional_model_keeps_all_factors_or_none():
    model = DiffusersScoreNet(class_conditional_unet(8, classes=7), FACTORS, "class")
    values = torch.tensor([[0.0, 0.0], [0.0, 1.0], [2.0, 1.0], [1.0, 0.0]])
    keep = torch.tensor([[True, True]] * 3 + [[False, False]])
    assert model.joint_class(values, keep).tolist() == [0, 1, 5, 6]  # x slowest; the last class: none
    with pytest.raises(InputError, match="can keep all factors or none, not one at a time"):
        model.joint_class(values, torch.tensor([[True, False]] * 4))


def test_an_exported_folder_reads_back_as_the_same_network(tmp_path):
    model = network(seed=3)
    diffusers_folder.export(model, tmp_path / "unet")
    assert {p.name for p in (tmp_path / "unet").iterdir()} == {
        diffusers_folder.CONFIG,
        diffusers_folder.WEIGHTS,
        diffusers_folder.EMBEDDING,
    }
    architecture = diffusers_folder.architecture(tmp_path / "unet", FACTORS, (1, 8, 8))
    assert architecture == checkpoints.architecture_from_params(MODEL, FACTORS, (1, 8, 8))
    state = diffusers_folder.load_state(tmp_path / "unet")
    assert state.keys() == model.state_dict().keys()
    assert all(torch.equal(state[key], value) for key, value in model.state_dict().items())


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda folder: folder.rename(folder.with_name("gone")), "no such folder"),
        (lambda folder: (folder / "config.json").write_text("{not json"), "config.json unreadable"),
        (
            lambda folder: (folder / "diffusion_pytorch_model.safetensors").unlink(),
            "no diffusion_pytorch_model.safetensors",
        ),
        (lambda folder: edit_config(folder, sample_size=16), "sample_size 16 but the data set's images are 8x8"),
        (
            lambda folder: edit_config(folder, in_channels=3, out_channels=3),
            "in_channels 3 but the data set's images have 1",
        ),
        (lambda folder: edit_config(folder, _class_name="UNet2DConditionModel"), "not a UNet2DModel"),
        (lambda folder: edit_config(folder, time_embedding_type="fourier"), "time_embedding_type 'fourier'"),
        (lambda folder: edit_config(folder, class_embed_type=None), "needs class_embed_type 'identity'"),
    ],
)
def test_a_bad_folder_is_one_line_naming_it(tmp_path, damage, message):
    folder = tmp_path / "unet"
    diffusers_folder.export(network(), folder)
    damage(folder)
    with pytest.raises(diffusers_folder.FolderError) as raised:
        diffusers_folder.architecture(folder, FACTORS, (1, 8, 8))
    assert message in str(raised.value) and str(folder) in str(raised.value) and "\n" not in str(raised.value)


def edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))


# The round trip: the pipeline trains a diffusers_unet2d network on bumps from data to
# report (Snakemake), the network is exported with save_pretrained and imported by a
# second experiment as an outside model; every table its stages make is the first's.
COMPARED = [
    "trajectories/step_0000/part_00000.parquet",
    "forward_backward/step_0002/part_00000.parquet",
    "probes.parquet",
    "information.parquet",
]


def experiment_params(base: dict) -> dict:
    experiment = copy.deepcopy(base["experiments"]["bumps"])
    experiment["model"].update(architecture="diffusers_unet2d", taps=["down_blocks.1", "mid_block"])
    experiment["train"].update(steps=60)
    return experiment


def stage(repo: Path, name: str, experiment: str) -> None:
    run([str(Path(sys.executable).with_name("latent-abstractions")), "stage", name, "--experiment", experiment], repo)


def tables(repo: Path, experiment: str, name: str):
    table = pq.read_table(repo / "data" / experiment / name).replace_schema_metadata(None)
    return table.drop_columns(["experiment"]) if "experiment" in table.column_names else table


@pytest.mark.slow
def test_trained_exported_and_imported_back_the_network_gives_the_same_tables(tmp_path):
    repo = git_repository(tmp_path / "repo")
    base = yaml.safe_load(CI_PARAMS.read_text())
    trained = experiment_params(base)
    (repo / "params.yaml").write_text(yaml.safe_dump({**base, "experiments": {"trained": trained}}, sort_keys=False))
    run(snakemake("--workflow-profile", "workflow/profiles/default", "--cores", "2"), repo)
    assert (repo / "data" / "report.html").is_file() and (
        repo / "data" / "trained" / "figures" / "probes.png"
    ).is_file()

    command = str(Path(sys.executable).with_name("latent-abstractions"))
    run([command, "export-diffusers", "data/trained/model/weights.safetensors", "outside-unet"], repo)
    imported = copy.deepcopy(trained)
    imported["model"].update(kind="diffusers", path="outside-unet")
    experiments = {"trained": trained, "imported": imported}
    (repo / "params.yaml").write_text(yaml.safe_dump({**base, "experiments": experiments}, sort_keys=False))
    for name in (
        "prepare_data",
        "import_model",
        "sample_trajectories",
        "forward_backward",
        "fit_probes",
        "estimate_information",
    ):
        stage(repo, name, "imported")
    for name in COMPARED:
        assert tables(repo, "imported", name).equals(tables(repo, "trained", name)), name


def test_the_import_stage_refuses_a_missing_folder_in_one_line_before_any_output(workdir, ci_params):
    experiment = experiment_params(ci_params)
    experiment["model"].update(kind="diffusers", path="no-such-folder")
    (workdir / "params.yaml").write_text(yaml.safe_dump({"experiments": {"imported": experiment}}))
    prepare = [sys.executable, "-m", "latent_abstractions.stages.prepare_data", "--experiment", "imported"]
    subprocess.run(prepare, cwd=workdir, check=True, capture_output=True)
    result = subprocess.run(
        [sys.executable, "-m", "latent_abstractions.stages.import_model", "--experiment", "imported"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1].startswith("error: ")
        and "model.path no-such-folder: no such folder" in result.stderr
    )
    assert result.stderr.count("Traceback") == 0
    assert not (workdir / "data" / "imported" / "model").exists()


def class_conditional_unet(size: int, classes: int) -> UNet2DModel:
    """A small UNet2DModel conditioned on ``classes`` labels (num_class_embeds), seeded."""
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=size,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16),
        norm_num_groups=4,
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        num_class_embeds=classes,
    )


def class_conditional_folder(folder: Path, classes: int) -> Path:
    class_conditional_unet(16, classes).save_pretrained(str(folder))
    return folder


def test_a_class_conditional_model_gives_the_exact_curves_and_says_in_one_line_why_not_the_learned(workdir, ci_params):
    """No per-factor null condition: the information stage writes the exact curves, one
    warning says which estimate is unavailable and why, and the stage succeeds."""
    experiment = experiment_params(ci_params)
    experiment["model"].update(kind="diffusers", path="unet")
    (workdir / "params.yaml").write_text(yaml.safe_dump({"experiments": {"imported": experiment}}))
    steps = ("prepare_data", "import_model", "estimate_information")
    call = lambda name: subprocess.run(  # noqa: E731
        [sys.executable, "-m", f"latent_abstractions.stages.{name}", "--experiment", "imported"],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert call(steps[0]).returncode == 0
    factors = pq.read_table(workdir / "data" / "imported" / "dataset" / "factors.parquet").to_pandas()
    grid = factors["x"].nunique() * factors["y"].nunique()
    class_conditional_folder(workdir / "unet", grid)  # no class left for "no condition"
    refused = call(steps[1])
    assert refused.returncode == 1 and f"num_class_embeds {grid} but the pipeline needs" in refused.stderr
    class_conditional_folder(workdir / "unet", grid + 1)
    assert call(steps[1]).returncode == 0
    estimated = call(steps[2])
    assert estimated.returncode == 0, estimated.stderr[-2000:]
    warned = [line for line in estimated.stderr.splitlines() if "learned information unavailable" in line]
    assert len(warned) == 1 and "class-conditional on the joint factor values" in warned[0]
    quantities = set(
        pq.read_table(workdir / "data" / "imported" / "information.parquet").column("quantity").to_pylist()
    )
    assert "exact" in quantities and "mmse_difference" not in quantities


def test_a_condition_embedding_made_for_other_factor_values_is_refused(tmp_path):
    diffusers_folder.export(network(), tmp_path / "unet")
    other = [Factor("x", "continuous", (0.0, 2.0, 4.0)), FACTORS[1]]  # same shapes, other lattice
    with pytest.raises(diffusers_folder.FolderError, match="condition_embedding.safetensors was made for the factors"):
        diffusers_folder.architecture(tmp_path / "unet", other, (1, 8, 8))


def test_export_writes_a_new_folder_whole_or_not_at_all(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(diffusers_folder.FolderError, match="exists: export writes a new folder"):
        diffusers_folder.export(network(), tmp_path / "taken")
    diffusers_folder.export(network(), tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "taken"]  # no partial folder left

"""The SLURM profile (workflow/profiles/slurm) on real SLURM controllers on this machine.

workflow/scripts/local_slurm.py installs Debian's SLURM and starts two single-node
clusters, each with a `gpu` partition offering one stand-in GPU: one without
accounting (job states from squeue only; sacct fails, the plugin's trap) and one with a
MariaDB accounting database that enforces accounts. The pipeline runs through the
profile as shipped, started by the environment's snakemake without activating it:

- the GPU switch off, on the cluster without accounting: one experiment's loss figure
  (prepare_data, train_score_model, plot_loss);
- the switch on, on the cluster with accounting: its trajectories (sample_trajectories
  on the gpu partition with --gres=gpu:1).

The jobs must have gone through sbatch with the profile's requests (scontrol, sacct),
and every artifact must equal, byte for byte, that of a local run of the same targets.
Both runs are made in clones of one git snapshot of this repository, with training
shortened to TRAIN_STEPS, so the module takes about two minutes. The fixtures'
finalizers stop the clusters, and check that they stopped, whatever the tests did.
The profile's switch and requests are also checked without a cluster (fast tests).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from latent_abstractions.pipeline import stage_table
from latent_abstractions.pipeline.paths import ExperimentPaths

from conftest import ROOT
from test_pipeline import BIN, artifact_hashes, clone, environment, git_repository

SCRIPT = ROOT / "workflow" / "scripts" / "local_slurm.py"
PROFILE = ROOT / "workflow" / "profiles" / "slurm" / "config.yaml"
SWITCH = "LATENT_ABSTRACTIONS_SLURM_GPU"
# The stages that run a network (they read the `model` params) get a GPU under the switch.
# The stages that run the score network (import_model reads the model section but only
# converts a folder into a checkpoint: no GPU).
NETWORK_STAGES = {entry.name for entry in stage_table.STAGES if "model" in entry.params} - {"import_model"}
EXPERIMENT = "bumps"
TRAIN_STEPS = 200


def target(stage: str) -> str:
    """The first output (file or directory) of the stage's job for EXPERIMENT."""
    return stage_table.stage(stage).all_outputs()[0].format(experiment=EXPERIMENT)


CPU_TARGETS = [target("plot_loss")]  # prepare_data, train_score_model, plot_loss
GPU_TARGETS = [target("sample_trajectories")]  # sample_trajectories
RUN_TIMEOUT_S = 480  # hard kill: the plugin can hang (and ignore SIGTERM) when it loses its jobs
SMALL_NODE = {"cpus": 2, "mem_mb": 20000}
CANNOT_INSTALL = "Debian's SLURM packages (slurm-wlm, munge, slurmdbd, mariadb-server) cannot be installed here"


# --- the profile itself (fast) ------------------------------------------------------------


def evaluated_profile(monkeypatch, gpu: bool) -> dict:
    """The profile as Snakemake reads it (a YTE template), with the GPU switch on or off."""
    import yte

    monkeypatch.setenv(SWITCH, "1" if gpu else "0")
    with open(PROFILE) as stream:
        return yte.process_yaml(stream, require_use_yte=True)


def requests(profile: dict, rule: str) -> dict:
    return {**profile["default-resources"], **profile["set-resources"].get(rule, {})}


def test_profile_sets_resources_of_exactly_the_network_stages(monkeypatch):
    """Snakemake ignores set-resources of a rule that does not exist: a renamed stage would
    silently lose its GPU, and a new one would run without."""
    profile = evaluated_profile(monkeypatch, gpu=True)
    assert set(profile["set-resources"]) == NETWORK_STAGES


@pytest.mark.parametrize("gpu", [False, True], ids=["cpu", "gpu"])
def test_profile_switch_and_small_node(monkeypatch, gpu):
    profile = evaluated_profile(monkeypatch, gpu)
    assert profile["executor"] == "slurm" and profile["slurm-status-command"] == "squeue"
    partitions = set()
    for entry in stage_table.STAGES:
        asked = requests(profile, entry.name)
        runtime = eval(str(asked["runtime"]), {"attempt": 1})  # what Snakemake does on a first attempt
        assert isinstance(runtime, int) and runtime > 0, entry.name
        # Two jobs side by side on a 2-CPU, 20 GB node; never a job asking for every CPU.
        assert asked["cpus_per_task"] * 2 <= SMALL_NODE["cpus"], entry.name
        assert asked["mem_mb"] * 2 <= SMALL_NODE["mem_mb"], entry.name
        on_gpu = gpu and entry.name in NETWORK_STAGES
        assert ("gres" in asked) == on_gpu, entry.name
        assert asked["slurm_account"]
        partitions.add((on_gpu, asked["slurm_partition"]))
    assert len({p for on_gpu, p in partitions if not on_gpu}) == 1  # every CPU job on one partition
    if gpu:
        assert len({p for _, p in partitions}) == 2  # the GPU stages on another


# --- real clusters (slow) -------------------------------------------------------------------


def script(*arguments: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *arguments], capture_output=True, text=True, timeout=timeout)


def live_daemons(directory: Path) -> list[str]:
    """The cluster's daemons still running (by the pid files the script keeps)."""
    alive = []
    for pid_file in (directory / "run").glob("*.pid"):
        try:
            pid = int(pid_file.read_text().split()[0])
            program = os.path.basename(os.readlink(f"/proc/{pid}/exe"))  # fails for a reaped or zombie process
        except (OSError, ValueError, IndexError):
            continue
        if program.startswith(pid_file.stem):  # not a recycled pid
            alive.append(f"{pid_file.stem} ({pid})")
    return alive


def start_cluster(request, *options: str) -> dict:
    """A cluster under a new directory; its SLURM environment. Stopped (and checked stopped)
    by a finalizer registered before it starts, so a failed start is cleaned up too."""
    if os.geteuid() != 0:
        pytest.skip(f"{CANNOT_INSTALL}: needs root")
    installed = script("install", *(["--accounting"] if "--accounting" in options else []))
    if installed.returncode == 3:  # no apt-get, or apt-get could not install them
        pytest.skip(f"{CANNOT_INSTALL}: {installed.stderr.strip()}")
    assert installed.returncode == 0, installed.stderr
    # Not under pytest's tmp_path: munged wants every directory above its socket traversable.
    directory = Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp"))

    def stop():
        stopped = script("stop", str(directory), timeout=120)
        left = live_daemons(directory)
        logs = {p.name: p.read_text(errors="replace")[-2000:] for p in (directory / "log").glob("*.log")}
        shutil.rmtree(directory, ignore_errors=True)
        assert stopped.returncode == 0 and not left, f"cluster not stopped: {left}\n{stopped.stderr}\n{logs}"

    request.addfinalizer(stop)
    started = script("start", str(directory), *options, timeout=180)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == f"export SLURM_CONF={directory}/slurm.conf PATH={directory}/bin:$PATH"
    return {"SLURM_CONF": str(directory / "slurm.conf"), "bin": str(directory / "bin"), "directory": directory}


def slurm_environment(cluster: dict | None, repo: Path, gpu: bool = False) -> dict:
    """The users' environment (engines not activated) plus the cluster's commands, the GPU
    switch, and the copy's own source: the venv's editable install points at this
    checkout, which others may be editing while the test runs."""
    env = {**environment(), "PYTHONPATH": str(repo / "src"), SWITCH: "1" if gpu else "0"}
    if cluster:
        env["SLURM_CONF"] = cluster["SLURM_CONF"]
        env["PATH"] = cluster["bin"] + os.pathsep + env["PATH"]
    return env


class Snakemake:
    """snakemake started in its own process group; `wait` kills it, with everything it
    started, once it has run RUN_TIMEOUT_S."""

    def __init__(self, repo: Path, env: dict, *arguments: str):
        self.arguments, self.started = arguments, time.monotonic()
        self.process = subprocess.Popen(
            [str(BIN / "snakemake"), *arguments],
            cwd=repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def wait(self) -> tuple[str, float]:
        """Its output and wall time; fails the test when it fails or times out."""
        try:
            output, _ = self.process.communicate(timeout=max(1.0, self.started + RUN_TIMEOUT_S - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            output, _ = self.process.communicate()
            pytest.fail(f"snakemake {' '.join(self.arguments)} ran past {RUN_TIMEOUT_S} s; killed:\n{output[-4000:]}")
        assert self.process.returncode == 0, f"snakemake {' '.join(self.arguments)} failed:\n{output[-6000:]}"
        return output, time.monotonic() - self.started

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)


def snapshot(target: Path, **train) -> Path:
    """A git copy of this repository with training shortened (or as ``train`` says),
    committed (artifacts record the commit and whether the tree was dirty). Runs to
    compare are made in clones of one snapshot: others may be editing this checkout."""
    repo = git_repository(target)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["experiments"][EXPERIMENT]["train"].update({"steps": TRAIN_STEPS, **train})
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "commit", "-qam", "Shorter training"], cwd=repo, env=environment(), check=True)
    return repo


def submitted(output: str) -> dict[str, str]:
    """rule -> SLURM job id, from Snakemake's "Job N has been submitted with SLURM jobid M
    (log: .../slurm_logs/rule_<rule>/...)" lines."""
    found = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+)/", output)
    return {rule: job for job, rule in found}


@pytest.fixture(scope="module")
def cluster(request):
    """No accounting database: sacct fails, job states come from squeue."""
    return start_cluster(request, "--gpus", "1")


@pytest.fixture(scope="module")
def accounting_cluster(request):
    """A MariaDB + slurmdbd accounting database; the account `research` enforced."""
    return start_cluster(request, "--gpus", "1", "--accounting", "--account", "research")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cluster, accounting_cluster):
    """The same targets in two clones of one snapshot: locally (in the background: the
    SLURM runs mostly wait between status checks), and through the profile: the CPU
    targets with the switch off on `cluster`, then the GPU targets with it on on
    `accounting_cluster`."""
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.fail("snakemake-executor-plugin-slurm is not installed: pip install -e '.[cluster]'")
    base = tmp_path_factory.mktemp("runs")
    origin = snapshot(base / "snapshot")
    local, slurm = clone(origin, base / "local"), clone(origin, base / "slurm")
    profile = ("--workflow-profile", "workflow/profiles/slurm")
    local_run = Snakemake(
        local,
        slurm_environment(None, local),
        "--workflow-profile",
        "workflow/profiles/default",
        "--cores",
        "2",
        *CPU_TARGETS,
        *GPU_TARGETS,
    )
    try:
        cpu_output, cpu_seconds = Snakemake(slurm, slurm_environment(cluster, slurm), *profile, *CPU_TARGETS).wait()
        gpu_output, gpu_seconds = Snakemake(
            slurm, slurm_environment(accounting_cluster, slurm, gpu=True), *profile, *GPU_TARGETS
        ).wait()
        _, local_seconds = local_run.wait()
    finally:
        local_run.kill()
    print(
        f"wall times (alongside each other): through SLURM {CPU_TARGETS} {cpu_seconds:.0f} s, then "
        f"{GPU_TARGETS} {gpu_seconds:.0f} s; local run of both {local_seconds:.0f} s"
    )
    return {
        "local": local,
        "slurm": slurm,
        "cpu": submitted(cpu_output),
        "gpu": submitted(gpu_output),
        "outputs": (cpu_output, gpu_output),
    }


def scontrol_job(cluster: dict, job: str) -> dict[str, str]:
    shown = subprocess.run(
        ["scontrol", "--oneliner", "show", "job", job],
        env=slurm_environment(cluster, ROOT),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert shown.returncode == 0, shown.stderr
    return dict(field.split("=", 1) for field in shown.stdout.split() if "=" in field)


@pytest.mark.slow
def test_cpu_switch_jobs_went_through_sbatch_with_the_profile_requests(runs, cluster):
    assert set(runs["cpu"]) == {"prepare_data", "train_score_model", "plot_loss"}, runs["outputs"][0][-3000:]
    names = set()
    for rule, job in runs["cpu"].items():
        record = scontrol_job(cluster, job)
        assert record["JobState"] == "COMPLETED", (rule, record)
        assert record["Partition"] == "debug" and record["Account"] == "research", (rule, record)
        assert record["NumCPUs"] == "1", (rule, record)  # never the whole node
        assert record["MinMemoryNode"] == "4000M", (rule, record)
        assert "gpu" not in record.get("TresPerNode", ""), (rule, record)
        names.add(record["JobName"])
    assert len(names) == 1  # the plugin names every job of a run by the run's id


@pytest.mark.slow
def test_gpu_switch_jobs_went_through_sbatch_and_accounting(runs, accounting_cluster):
    assert set(runs["gpu"]) == {"sample_trajectories"}, runs["outputs"][1][-3000:]
    job = runs["gpu"]["sample_trajectories"]
    accounted = subprocess.run(
        ["sacct", "-X", "--noheader", "--parsable2", "-j", job, "--format=State,Account,Partition,AllocTRES"],
        env=slurm_environment(accounting_cluster, ROOT),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert accounted.returncode == 0, accounted.stderr
    state, account, partition, tres = accounted.stdout.strip().split("|")
    assert (state, account, partition) == ("COMPLETED", "research", "gpu"), accounted.stdout
    assert "gres/gpu=1" in tres and "mem=8000M" in tres and "cpu=1" in tres, tres


@pytest.mark.slow
def test_slurm_makes_the_same_bytes_as_a_local_run(runs):
    through_slurm, local = artifact_hashes(runs["slurm"]), artifact_hashes(runs["local"])
    assert through_slurm.keys() == local.keys()
    for made in CPU_TARGETS + GPU_TARGETS:
        assert any(name == made or name.startswith(made + "/") for name in local), made
    differing = sorted(name for name in local if local[name] != through_slurm[name])
    assert not differing, f"{len(differing)} of {len(local)} artifacts differ: {differing[:5]}"


# --- a training job cancelled mid-way (slow) --------------------------------------------------

CANCEL_TRAINING = {"steps": 600, "resume_every": 100}


def queued_jobs(cluster: dict) -> dict[str, str]:
    """job id -> comment (the plugin writes the rule's name there) of the jobs in squeue."""
    listed = subprocess.run(
        ["squeue", "--noheader", "--format=%i|%k"],
        env=slurm_environment(cluster, ROOT),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert listed.returncode == 0, listed.stderr
    return dict(line.split("|", 1) for line in listed.stdout.split())


@pytest.fixture(scope="module")
def cancelled_training(tmp_path_factory, cluster):
    """Training through the profile, scancel-ed once its first resume checkpoint is on
    disk; the profile's retry runs it again. Beside it, the same training locally."""
    base = tmp_path_factory.mktemp("cancel")
    origin = snapshot(base / "snapshot", **CANCEL_TRAINING)
    local, slurm = clone(origin, base / "local"), clone(origin, base / "slurm")
    weights = target("train_score_model")
    local_run = Snakemake(
        local,
        slurm_environment(None, local),
        "--workflow-profile",
        "workflow/profiles/default",
        "--cores",
        "1",
        weights,
    )
    through_slurm = Snakemake(
        slurm, slurm_environment(cluster, slurm), "--workflow-profile", "workflow/profiles/slurm", weights
    )
    try:
        resume_file = slurm / ExperimentPaths(EXPERIMENT).partial_dir / "resume.safetensors"
        deadline = time.monotonic() + RUN_TIMEOUT_S / 2
        while not resume_file.exists():
            assert time.monotonic() < deadline and through_slurm.process.poll() is None, "no resume checkpoint came"
            time.sleep(0.2)
        training = [job for job, comment in queued_jobs(cluster).items() if "train_score_model" in comment]
        assert len(training) == 1, queued_jobs(cluster)
        cancelled = subprocess.run(
            ["scancel", training[0]], env=slurm_environment(cluster, ROOT), capture_output=True, text=True, timeout=30
        )
        assert cancelled.returncode == 0, cancelled.stderr
        output, _ = through_slurm.wait()
        local_run.wait()
    finally:
        through_slurm.kill()
        local_run.kill()
    return {"local": local, "slurm": slurm, "cancelled": training[0], "output": output}


@pytest.mark.slow
def test_a_cancelled_training_job_is_resubmitted_and_resumes(cancelled_training, cluster):
    output = cancelled_training["output"]
    submissions = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/rule_train_score_model/", output)
    assert len(submissions) == 2 and submissions[0] == cancelled_training["cancelled"], output[-3000:]
    assert scontrol_job(cluster, submissions[0])["JobState"] == "CANCELLED"
    log = (cancelled_training["slurm"] / stage_table.stage("train_score_model").log(EXPERIMENT)).read_text()
    resumed_at = int(re.search(r"resuming at step (\d+)", log).group(1))
    assert 0 < resumed_at < CANCEL_TRAINING["steps"]
    made = [f"data/{EXPERIMENT}/model/{name}" for name in ("weights.safetensors", "loss.parquet")]
    for name in made:  # the same bytes as a training never cancelled
        assert (cancelled_training["slurm"] / name).read_bytes() == (cancelled_training["local"] / name).read_bytes()

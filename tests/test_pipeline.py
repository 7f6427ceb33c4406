"""The whole smoke pipeline, run the way users run it, in fresh git repositories made
from this one: `snakemake` in one, `dvc repro` in another, each engine started by its
path in the environment without activating it. Then what users do next: edit code
and see exactly the affected stages rerun, push and pull through the default remote,
run an experiment with a changed param, and draw the plots."""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from PIL import Image

from latent_abstractions.core import read_audit
from latent_abstractions.core.artifacts import PROVENANCE_KEY
from latent_abstractions.pipeline import params as params_module
from latent_abstractions.pipeline import paths, stage_table
from latent_abstractions.pipeline.paths import ExperimentPaths
from latent_abstractions.report.plotting import FIGURE_CAPTIONS
from latent_abstractions.store.store import PROGRESS, partial_path
from latent_abstractions.store.trajectories import open_store

from browser_checks import ARTIFACTS, check_page, require_chromium
from conftest import CI_PARAMS, ROOT

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
PIPELINE_TIMEOUT_S = 900  # hard kill: a hung scheduler must not hang the suite
# Fixed identity and dates: the two repositories get the same commit, so the
# provenance inside their artifacts, and therefore their bytes, can be compared.
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.org",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.org",
}
GIT_DATES = {"GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}


def environment() -> dict:
    """The PATH without the environment's bin: the engines must find the interpreter themselves."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("VIRTUAL_ENV", "LATENT_ABSTRACTIONS_PYTHON", "PYTHONPATH")
    }
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if Path(p).resolve() != BIN.resolve())
    return {**env, **GIT_IDENTITY, "DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1"}


def run(
    command: list[str], cwd: Path, timeout: int = PIPELINE_TIMEOUT_S, dates: bool = False, extra_env: dict | None = None
) -> subprocess.CompletedProcess:
    # The copy's own code, not the checkout's that the editable install points at; fixed
    # commit dates only for the first commit (DVC's own experiment commits reject them).
    env = {**environment(), "PYTHONPATH": str(Path(cwd) / "src"), **(GIT_DATES if dates else {}), **(extra_env or {})}
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def snakemake(*arguments: str) -> list[str]:
    return [str(BIN / "snakemake"), *arguments]


def dvc(*arguments: str) -> list[str]:
    return [str(BIN / "dvc"), *arguments]


def git_repository(target: Path) -> Path:
    """A git repository holding the files git knows about here (no data, no venv), with the
    tests' params (tests/params-ci.yaml) as its params.yaml and dvc.yaml made from them, as
    a user makes it after editing the experiments; committed."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    shutil.copy2(CI_PARAMS, target / "params.yaml")
    run([sys.executable, "-m", "latent_abstractions.pipeline.dvc_yaml"], target)
    for command in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        run(command, target, dates=True)
    return target


def clone(repo: Path, target: Path) -> Path:
    """A git clone (same commit, same provenance) of ``repo`` at ``target``, with the page
    `dvc plots show` fills in written as `make install` writes it (git ignores it)."""
    subprocess.run(["git", "clone", "-q", str(repo), str(target)], env=environment(), check=True)
    run([sys.executable, "-m", "latent_abstractions.pipeline.dvc_plots_page"], target)
    return target


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    """One commit of this checkout; the engines run in clones of it, so their artifacts
    record the same commit even if the checkout is edited while the module runs."""
    return git_repository(tmp_path_factory.mktemp("snapshot"))


def default_params() -> dict:
    """The params the pipeline runs under in these tests."""
    return params_module.load(CI_PARAMS, ROOT / "workflow" / "schemas" / "params.schema.yaml")


def experiments() -> list[str]:
    return sorted(default_params()["experiments"])


def model_experiments() -> list[str]:
    """The experiments that train a model (scope full)."""
    return stage_table.experiments_of(stage_table.stage("train_score_model"), default_params())


def artifact_hashes(repo: Path) -> dict[str, str]:
    """sha256 of every artifact under data/ (the engines' own bookkeeping files aside)."""
    return {
        str(path.relative_to(repo)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((repo / "data").rglob("*"))
        if path.is_file() and path.name not in (".gitignore", ".snakemake_timestamp")
    }


def check_outputs(repo: Path) -> None:
    for experiment in experiments():
        expected = {
            p
            for p in stage_table.final_outputs(default_params())
            if p.startswith(f"data/{experiment}/figures/") and p.endswith(".png")
        }
        assert {str(p.relative_to(repo)) for p in (repo / "data" / experiment / "figures").glob("*.png")} == expected
        for png in sorted((repo / "data" / experiment / "figures").glob("*.png")):
            with Image.open(png) as image:
                provenance = json.loads(image.text["provenance"])
            assert provenance["step"] in FIGURE_STAGES and provenance["inputs"], png
            assert len(provenance["code_sha256"]) == 64 and provenance["git_dirty"] is False, png
        factors = pq.read_table(repo / "data" / experiment / "dataset" / "factors.parquet").column_names
        if default_params()["experiments"][experiment]["scope"] == "exact":  # no model: the exact order alone
            decisions = pq.read_table(repo / "data" / experiment / "exact_decisions.parquet").to_pandas()
            assert {f"{name}_bin" for name in decisions["factor"]} <= set(factors)
            assert decisions["tau_50"].notna().all()
            continue
        probes = pq.read_table(repo / "data" / experiment / "probes.parquet").to_pandas()
        assert {f"{name}_bin" for name in probes["factor"]} <= set(factors) and probes["score"].notna().all()
        made_from = open_store(repo / "data" / experiment / "trajectories").provenance
        assert list(made_from["inputs"]) == [f"data/{experiment}/model/weights.safetensors"]
        assert made_from["step"] == "sample_trajectories" and len(made_from["params_sha256"]) == 64
        info = pq.read_table(repo / "data" / experiment / "information.parquet").to_pandas()
        assert {"exact", "orthogonal", "mmse_difference"} <= set(info["quantity"])
    page = (repo / "data" / "report.html").read_text()
    assert "<h1>Latent abstractions: report</h1>" in page and "Content-Security-Policy" in page
    assert "<script" not in page


def planned_jobs(output: str) -> set[str]:
    """`stage@experiment` of every job a `snakemake --dry-run` plans."""
    jobs = set()
    for block in re.split(r"\n(?=\S*rule )", output):
        rule = re.search(r"rule (\w+):", block)
        experiment = re.search(r"wildcards: experiment=(\w+)", block)
        if rule and experiment:
            jobs.add(f"{rule.group(1)}@{experiment.group(1)}")
    return jobs


def stages_running(module_file: str) -> set[str]:
    """Jobs whose stage's code closure holds ``module_file``."""
    params = default_params()
    return {
        f"{entry.name}@{name}"
        for entry in stage_table.STAGES
        if module_file in entry.code()
        for name in stage_table.experiments_of(entry, params)
    }


def downstream(jobs: set[str]) -> set[str]:
    """``jobs`` and every job that reads what they write, transitively."""
    params = default_params()
    made = {}
    for entry in stage_table.STAGES:
        for name in stage_table.experiments_of(entry, params):
            made[f"{entry.name}@{name}"] = (
                {t.format(experiment=name) for t in entry.all_outputs()},
                {t.format(experiment=name) for t in entry.inputs},
            )
    result, grew = set(jobs), True
    while grew:
        grew = False
        for job, (_, reads) in made.items():
            if job not in result and any(reads & made[upstream][0] for upstream in result):
                result.add(job)
                grew = True
    return result


class edited:
    """Append a comment to a module, and put it back (content and time) afterwards."""

    def __init__(self, repo: Path, module_file: str):
        self.path, self.original = repo / module_file, (repo / module_file).read_bytes()
        self.times = os.stat(self.path)

    def __enter__(self):
        self.path.write_bytes(self.original + b"\n# edited\n")  # and a modification time of now

    def __exit__(self, *_):
        self.path.write_bytes(self.original)
        os.utime(self.path, (self.times.st_atime, self.times.st_mtime))


EDITED_MODULES = ["src/latent_abstractions/datasets/shapes.py", "src/latent_abstractions/analysis/probes/lbfgs.py"]
PROBE_PARAM = ("bumps", "probes", "seed")  # experiment, section, key
PROBE_JOBS = {"fit_probes@bumps"}  # the jobs that read that section


class probe_param_changed(edited):
    """params.yaml with one probe parameter changed, put back afterwards."""

    def __init__(self, repo: Path):
        super().__init__(repo, "params.yaml")

    def __enter__(self):
        params = yaml.safe_load(self.original)
        experiment, section, key = PROBE_PARAM
        params["experiments"][experiment][section][key] += 1
        self.path.write_text(yaml.safe_dump(params, sort_keys=False))


def test_probe_jobs_are_exactly_those_that_read_the_probe_section():
    params = default_params()
    reading = {
        f"{entry.name}@{name}"
        for entry in stage_table.STAGES
        if PROBE_PARAM[1] in entry.params
        for name in stage_table.experiments_of(entry, params)
        if name == PROBE_PARAM[0]
    }
    assert reading == PROBE_JOBS


@pytest.fixture(scope="module")
def read_records(tmp_path_factory) -> Path:
    """Where the Snakemake run's stages record the files under data/ they read."""
    return tmp_path_factory.mktemp("reads")


@pytest.fixture(scope="module")
def snakemake_repo(tmp_path_factory, snapshot, read_records):
    repo = clone(snapshot, tmp_path_factory.mktemp("snakemake"))
    audit = {read_audit.AUDIT_VARIABLE: str(read_records)}
    run(snakemake("--cores", "2", "--workflow-profile", "workflow/profiles/default"), repo, extra_env=audit)
    return repo


def declared_files(job: str, params: dict) -> list[str]:
    """What a job's stage-table entry lets it read: its inputs, its own outputs (a resumed
    run reads them back) and its scratch files."""
    if job == stage_table.REPORT.name:
        return stage_table.REPORT.inputs(params) + list(stage_table.REPORT.outputs)
    name, experiment = job.split("@")
    entry = stage_table.stage(name)
    templates = entry.inputs + entry.own_files()
    return [t.format(experiment=experiment) for t in templates] + entry.external(params["experiments"][experiment])


def is_declared(path: str, allowed: list[str]) -> bool:
    """``path`` is an allowed file, inside an allowed folder, or the temporary an atomic
    write of an allowed file goes through (``.<name>.<random>.tmp`` beside it)."""
    folder, _, name = path.rpartition("/")
    if name.startswith(".") and name.endswith(".tmp"):
        path = f"{folder}/{name[1:].rsplit('.', 2)[0]}"
    return any(path == a or path.startswith(f"{a}/") for a in allowed)


def undeclared_reads(records: Path, params: dict) -> list[str]:
    """'<stage>@<experiment>: <file>' for each file under data/ a job read that its entry does not declare."""
    found = []
    for record in sorted(records.glob("*.reads")):
        allowed = [path.rstrip("/") for path in declared_files(record.stem, params)]
        found += [f"{record.stem}: {path}" for path in record.read_text().split() if not is_declared(path, allowed)]
    return found


def test_every_stage_reads_only_what_its_table_entry_declares(snakemake_repo, read_records):
    params = default_params()
    jobs = {f"{s.name}@{name}" for s in stage_table.STAGES for name in stage_table.experiments_of(s, params)}
    assert {record.stem for record in read_records.glob("*.reads")} == jobs | {stage_table.REPORT.name}
    assert undeclared_reads(read_records, params) == []


def test_an_undeclared_read_is_named_with_its_stage(tmp_path):
    (tmp_path / "fit_probes@bumps.reads").write_text("data/bumps/probes.parquet\ndata/bumps/order.parquet\n")
    (tmp_path / "fit_probes@shapes.reads").write_text("data/shapes/trajectories/step_0000/part_00000.parquet\n")
    (tmp_path / "prepare_data@shapes.reads").write_text(
        "data/shapes/dataset/.images.npy.x1y2.tmp\ndata/shapes/.images.npy.x1y2.tmp\n"
    )
    assert undeclared_reads(tmp_path, default_params()) == [
        "fit_probes@bumps: data/bumps/order.parquet",
        "prepare_data@shapes: data/shapes/.images.npy.x1y2.tmp",
    ]


FIGURE_STAGES = {entry.name for entry in stage_table.STAGES if stage_table.draws_figures(entry)}


def test_snakemake_runs_the_whole_pipeline(snakemake_repo):
    check_outputs(snakemake_repo)
    logs = list((snakemake_repo / "logs").glob("*/*.log"))  # logs/<stage>/<experiment>.log
    params = default_params()
    assert len(logs) == sum(len(stage_table.experiments_of(s, params)) for s in stage_table.STAGES)
    assert (snakemake_repo / stage_table.REPORT.log()).is_file()


def test_verify_finds_nothing_on_a_fresh_run_and_names_each_tampered_file(snakemake_repo, tmp_path):
    """`python -m latent_abstractions.pipeline.verify` on the fresh run, then on a copy after each
    class of tampering: every class is found, naming the file."""
    verify = [sys.executable, "-m", "latent_abstractions.pipeline.verify"]
    assert run(verify, snakemake_repo).stdout.strip().endswith(" 0 findings")
    copy = tmp_path / "copy"
    shutil.copytree(snakemake_repo, copy, symlinks=True)
    images = copy / "data" / "bumps" / "dataset" / "images.npy"
    np.save(images, np.roll(np.load(images), 1, axis=0))  # rows shifted by one
    figure = next((copy / "data" / "bumps" / "figures").glob("*.png"))
    Image.new("RGB", (4, 4)).save(figure)  # a figure swapped for one without provenance
    table = copy / "data" / "bumps" / "probes.parquet"
    read = pq.read_table(table)
    made = json.loads(read.schema.metadata[PROVENANCE_KEY])
    made["params"]["seed"] = made["params"]["seed"] + 1  # the recorded params edited by hand
    pq.write_table(read.replace_schema_metadata({PROVENANCE_KEY: json.dumps(made).encode()}), table)
    (copy / "data" / "bumps" / "information.parquet").unlink()  # an input of a figure gone
    params = (copy / "params.yaml").read_text()
    (copy / "params.yaml").write_text(params.replace("t_end: 0.001", "t_end: 0.002", 1))
    with open(copy / "src" / "latent_abstractions" / "analysis" / "order.py", "a") as module:
        module.write("\n# edited\n")
    result = subprocess.run(
        verify, cwd=copy, env={**environment(), "PYTHONPATH": str(copy / "src")}, capture_output=True, text=True
    )
    said = result.stdout
    assert result.returncode == 1
    assert "its input data/bumps/dataset/images.npy changed after it was made" in said
    assert f"{figure.relative_to(copy)}: carries no provenance" in said
    assert "data/bumps/probes.parquet: its provenance was altered" in said
    assert "its input data/bumps/information.parquet is missing" in said
    assert "params.yaml changed for" in said
    assert "the code of decision_order changed after it was made" in said


def test_the_report_opens_in_a_browser_with_every_image_and_internal_link_whole(snakemake_repo):
    """data/report.html in Chromium: every image decodes, every href="#..." has its target,
    and the console shows no error. A full-page screenshot stays in tests/artifacts/."""
    require_chromium(install=True)
    screenshot = ARTIFACTS / "report.png"
    result = check_page(snakemake_repo / paths.REPORT, screenshot=screenshot)
    print(f"report screenshot: {screenshot}")
    assert result.images, "the report shows no image"
    assert result.problems() == []


def test_snakemake_report_carries_every_figure_with_its_caption(snakemake_repo, tmp_path):
    """`snakemake --report report.zip`, beside data/report.html: every figure PNG of the
    run, each under its caption (the drawing function's)."""
    run(snakemake("--cores", "1", "--report", str(tmp_path / "report.zip")), snakemake_repo)
    with zipfile.ZipFile(tmp_path / "report.zip") as archive:
        names = archive.namelist()
        page = archive.read(next(name for name in names if name.endswith("report/report.html"))).decode()
    made = sorted(path.name for path in (snakemake_repo / "data").glob("*/figures/*.png"))
    carried = sorted(Path(name).name for name in names if name.endswith(".png"))
    assert carried == made and len(made) >= 9
    for name in {Path(png).stem for png in made}:
        assert html.escape(FIGURE_CAPTIONS[name][:60], quote=False) in page, name


def test_every_query_of_docs_explore_runs_on_a_fresh_run(snakemake_repo, monkeypatch, capsys):
    """docs/explore.md's pandas and DuckDB blocks, as a reader pastes them, on this run."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "explore.md").read_text(), re.S)
    assert len(blocks) >= 8
    monkeypatch.chdir(snakemake_repo)
    for number, block in enumerate(blocks):
        exec(compile(block, f"docs/explore.md block {number}", "exec"), {})
        assert capsys.readouterr().out.strip(), f"block {number} printed nothing"


def test_second_snakemake_run_schedules_nothing(snakemake_repo):
    result = run(snakemake("--cores", "2", "--workflow-profile", "workflow/profiles/default"), snakemake_repo)
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.parametrize("module_file", EDITED_MODULES)
def test_snakemake_reruns_exactly_the_stages_that_run_an_edited_module(snakemake_repo, module_file):
    expected = downstream(stages_running(module_file))
    assert expected, module_file
    with edited(snakemake_repo, module_file):
        result = run(snakemake("--cores", "1", "--dry-run"), snakemake_repo)
    assert planned_jobs(result.stdout + result.stderr) == expected


def test_snakemake_reruns_only_the_probes_and_what_follows_when_a_probe_param_changes(snakemake_repo):
    with probe_param_changed(snakemake_repo):
        result = run(snakemake("--cores", "1", "--dry-run"), snakemake_repo)
    planned = planned_jobs(result.stdout + result.stderr)
    assert planned == downstream(PROBE_JOBS)
    assert not any(job.startswith(("train_score_model", "sample_trajectories")) for job in planned)


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("height: 16", "height: -2", "error: params.yaml: experiments.bumps.dataset.height = -2: must be >= 4"),
        (
            "sigma: 1.0 ",
            "sigma: .nan ",
            "error: params.yaml: experiments.bumps.dataset.sigma = nan: must be a finite number",
        ),
        (
            "      height: 16\n",
            "      height: 16\n      height: 12\n",
            "error: params.yaml: key 'height' appears twice in one mapping (lines 8 and 9)",
        ),
    ],
)
def test_snakemake_stops_on_bad_params_before_any_job(tmp_path, old, new, expected):
    repo = git_repository(tmp_path)
    text = (repo / "params.yaml").read_text()
    assert old in text
    (repo / "params.yaml").write_text(text.replace(old, new, 1))
    result = subprocess.run(
        snakemake("--cores", "1"), cwd=repo, env=environment(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert expected in result.stderr
    assert not (repo / "data" / "bumps").exists()


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory, snapshot):
    repo = clone(snapshot, tmp_path_factory.mktemp("dvc"))
    run(dvc("repro"), repo)
    run(["git", "add", "dvc.lock"], repo)  # as DVC users do after a run
    run(["git", "commit", "-qm", "Run the pipeline"], repo)
    return repo


def test_dvc_repro_runs_the_whole_pipeline(dvc_repo):
    check_outputs(dvc_repo)


def test_both_engines_make_the_same_bytes(snakemake_repo, dvc_repo):
    """Same commit, same params: every artifact, checkpoints included, byte for byte."""
    by_snakemake, by_dvc = artifact_hashes(snakemake_repo), artifact_hashes(dvc_repo)
    assert by_snakemake.keys() == by_dvc.keys()
    differing = sorted(name for name in by_dvc if by_dvc[name] != by_snakemake[name])
    assert not differing, f"{len(differing)} of {len(by_dvc)} artifacts differ: {differing[:5]}"


def test_dvc_lock_hashes_every_input_of_every_figure(dvc_repo):
    lock = yaml.safe_load((dvc_repo / "dvc.lock").read_text())["stages"]
    stages = yaml.safe_load((dvc_repo / "dvc.yaml").read_text())["stages"]
    produced_by = {out["path"]: name for name, entry in lock.items() for out in entry.get("outs", [])}

    def hashed(entry: dict) -> bool:
        """An md5 of a file, or of a directory's listing (`<md5>.dir`)."""
        return re.fullmatch(r"[0-9a-f]{32}(\.dir)?", entry.get("md5", "")) is not None

    def hashed_ancestry(stage_name: str) -> set[str]:
        """Every file upstream of a stage, each checked to carry an md5 in dvc.lock."""
        entry = lock[stage_name]
        seen = set()
        for dep in entry["deps"]:
            assert hashed(dep), f"{stage_name}: {dep['path']} has no md5"
            seen.add(dep["path"])
            if dep["path"] in produced_by:
                seen |= hashed_ancestry(produced_by[dep["path"]])
        for out in entry["outs"]:
            assert hashed(out), f"{stage_name}: {out['path']} has no md5"
        return seen

    for experiment in model_experiments():
        ancestry = hashed_ancestry(f"plot_information@{experiment}")
        assert f"data/{experiment}/figures/information.svg" in {
            o["path"] for o in lock[f"plot_information@{experiment}"]["outs"]
        }
        assert f"data/{experiment}/dataset/images.npy" in ancestry
        assert f"data/{experiment}/model/weights.safetensors" in ancestry
        assert (
            "src/latent_abstractions/training/train.py" in ancestry
            and "src/latent_abstractions/analysis/information.py" in ancestry
        )
    assert set(stages) == {name.split("@")[0] for name in lock}


def test_dvc_status_is_clean_after_repro(dvc_repo):
    result = run(dvc("status"), dvc_repo)
    assert "Data and pipelines are up to date" in result.stdout


@pytest.mark.parametrize("module_file", EDITED_MODULES)
def test_dvc_status_names_exactly_the_stages_that_run_an_edited_module(dvc_repo, module_file):
    with edited(dvc_repo, module_file):
        status = json.loads(run(dvc("status", "--json"), dvc_repo).stdout)
    report = {stage_table.REPORT.name} if module_file in stage_table.REPORT.code() else set()
    assert set(status) == stages_running(module_file) | report


def test_dvc_reruns_only_the_probes_and_what_follows_when_a_probe_param_changes(dvc_repo):
    with probe_param_changed(dvc_repo):
        status = json.loads(run(dvc("status", "--json"), dvc_repo).stdout)
        assert set(status) == PROBE_JOBS  # the stages whose own params changed
        result = run(dvc("repro"), dvc_repo)
    ran = set(re.findall(r"Running stage '([\w@]+)'", result.stdout))
    assert ran == downstream(PROBE_JOBS) | {stage_table.REPORT.name}, result.stdout[-3000:]
    run(dvc("repro"), dvc_repo)  # params back: the original outputs return from the cache
    assert "Data and pipelines are up to date" in run(dvc("status"), dvc_repo).stdout


def test_snakemake_accepts_what_dvc_made(dvc_repo):
    """Outputs DVC wrote (and cached) count as up to date for Snakemake too."""
    result = run(snakemake("--cores", "1", "--dry-run"), dvc_repo)
    assert "Nothing to be done" in result.stdout + result.stderr


def test_dvc_plots_show_draws_loss_probe_and_information_curves(dvc_repo):
    drawn = json.loads(run(dvc("plots", "show", "--json"), dvc_repo).stdout)["data"]
    for experiment in model_experiments():
        for name in ("model/live/plots/metrics/train/loss.tsv", "plots/probes.csv", "plots/information.csv"):
            assert drawn[f"data/{experiment}/{name}"][0]["content"]["data"]["values"], name
    for experiment in stage_table.experiments_of(stage_table.stage("exact_order"), default_params()):
        assert drawn[f"data/{experiment}/plots/exact_information.csv"][0]["content"]["data"]["values"], experiment


def test_dvc_plots_page_draws_every_chart_in_a_browser_without_network(dvc_repo):
    """dvc_plots/index.html carries Vega inlined (.dvc/config's plots.html_template): in
    Chromium, on a machine without internet, every chart holds an svg or canvas and the
    console shows no error."""
    require_chromium(install=True)
    run(dvc("plots", "show", "-o", "dvc_plots"), dvc_repo)
    page = dvc_repo / "dvc_plots" / "index.html"
    assert "cdn.jsdelivr.net" not in page.read_text()
    result = check_page(page, screenshot=ARTIFACTS / "dvc_plots.png")
    assert result.charts >= 2 * len(model_experiments()), result.charts
    assert result.problems() == []


def test_push_pull_round_trip_and_an_experiment_with_a_changed_param(dvc_repo):
    """Push to the default remote (a folder beside the repository), clone afresh beside it,
    pull: every artifact back, byte for byte, and nothing to rerun. Then `dvc exp run -S`."""
    run([sys.executable, "-m", "latent_abstractions.pipeline.remote", "push"], dvc_repo)
    assert (dvc_repo.parent / "latent-abstractions-dvc-remote").is_dir()
    clone = dvc_repo.parent / "clone"  # beside dvc_repo, so its default remote is the same folder
    run(["git", "clone", "-q", str(dvc_repo), str(clone)], dvc_repo.parent)
    started = time.monotonic()
    run([sys.executable, "-m", "latent_abstractions.pipeline.remote", "pull"], clone)
    pulled_in = time.monotonic() - started
    assert "Data and pipelines are up to date" in run(dvc("status"), clone).stdout
    print(f"dvc pull of the smoke artifacts: {pulled_in:.1f} s")
    assert pulled_in < 60
    assert artifact_hashes(clone) == artifact_hashes(dvc_repo)

    # A param of a short stage: the experiment reruns it and what follows, not the training.
    run(dvc("exp", "run", "-S", "experiments.bumps.information.seed=11"), clone)
    shown = json.loads(run(dvc("exp", "show", "--json"), clone).stdout)
    metrics = json.dumps(shown)
    assert '"experiments.bumps.information.seed": 11' in metrics.replace("'", '"') or '"seed": 11' in metrics
    assert "data/bumps/information_metrics.json" in metrics and '"mean_abs_gap_nats"' in metrics
    assert "data/bumps/model/live/metrics.json" in metrics and '"loss"' in metrics


def test_an_unreachable_remote_is_named_in_one_line(dvc_repo, tmp_path):
    missing = tmp_path / "no-such-remote"
    run(dvc("remote", "add", "--local", "-f", "-d", "elsewhere", str(missing)), dvc_repo)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "latent_abstractions.pipeline.remote", "pull"],
            cwd=dvc_repo,
            env=environment(),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        run(dvc("remote", "remove", "--local", "elsewhere"), dvc_repo)
    assert result.returncode != 0
    assert result.stderr.strip() == f"error: DVC remote 'elsewhere' ({missing}) is not reachable: it does not exist"


def store_content(store: Path) -> dict:
    """Each part file's rows and provenance, the commit aside: a rerun after `git commit`
    of dvc.lock records the new commit."""
    content = {}
    for part in sorted(store.rglob("*.parquet")):
        table = pq.read_table(part)
        made_by = json.loads(table.schema.metadata[PROVENANCE_KEY])
        made_by.pop("git_commit")
        content[str(part.relative_to(store))] = (table.replace_schema_metadata(None), made_by)
    return content


def test_a_sampling_run_killed_mid_store_is_never_taken_as_finished(dvc_repo):
    """kill -9 of `dvc repro` (and its stage) after the first batch of trajectories: both
    engines see the store as missing, and the rerun resumes and makes the same store.
    Last in the module: the restored store is newer than what was made from it, which
    Snakemake (by modification times) would take for a change."""
    experiment = "bumps"
    store = dvc_repo / ExperimentPaths(experiment).trajectories
    progress = partial_path(store) / PROGRESS
    assert not partial_path(store).exists()
    finished, others = store_content(store), artifact_hashes(dvc_repo)
    others = {
        name: digest
        for name, digest in others.items()
        if not name.startswith(f"{ExperimentPaths(experiment).trajectories}/")
    }
    env = {**environment(), "PYTHONPATH": str(dvc_repo / "src")}
    resample = dvc("repro", "--force", "--single-item", f"sample_trajectories@{experiment}")
    process = subprocess.Popen(
        resample, cwd=dvc_repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    while not progress.exists():
        assert process.poll() is None and time.monotonic() < deadline, "no batch was written"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)

    assert not store.exists() and partial_path(store).is_dir()
    assert f"sample_trajectories@{experiment}" in json.loads(run(dvc("status", "--json"), dvc_repo).stdout)
    planned = planned_jobs(run(snakemake("--cores", "1", "--dry-run"), dvc_repo).stdout)
    assert f"sample_trajectories@{experiment}" in planned
    run(resample, dvc_repo)  # forced: DVC would otherwise restore the store from its cache
    assert "resuming" in (dvc_repo / stage_table.stage("sample_trajectories").log(experiment)).read_text()
    assert not partial_path(store).exists()
    resumed = store_content(store)
    assert resumed.keys() == finished.keys()
    for name, (rows, made_by) in finished.items():
        assert resumed[name][0].equals(rows) and resumed[name][1] == made_by, name
    assert {name: artifact_hashes(dvc_repo)[name] for name in others} == others
    # Back to the committed state.
    run(["git", "checkout", "dvc.lock"], dvc_repo)
    run(dvc("checkout", "--force", f"sample_trajectories@{experiment}"), dvc_repo)
    assert "Data and pipelines are up to date" in run(dvc("status"), dvc_repo).stdout

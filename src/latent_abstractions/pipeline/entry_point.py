"""The `latent-abstractions` command: the pipeline's front door from any directory.

    latent-abstractions run [--profile default] [--cores N] [SNAKEMAKE ARGS...]
    latent-abstractions stage NAME [--experiment E]
    latent-abstractions verify
    latent-abstractions findings
    latent-abstractions export-diffusers WEIGHTS FOLDER
    latent-abstractions --version

Every subcommand works in a project root: the one ``--root`` names, else the nearest
folder at or above the working directory holding a Snakefile and params.yaml, else the
repository this package was installed from (an editable install).
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

from .. import __version__
from . import stage_table

PROJECT_MARKERS = ("Snakefile", "params.yaml")


def is_project(folder: Path) -> bool:
    return all((folder / name).is_file() for name in PROJECT_MARKERS)


def find_root(given: str | None) -> Path:
    """The project root, or one line saying why there is none."""
    if given:
        root = Path(given).expanduser().resolve()
        if not is_project(root):
            raise SystemExit(f"error: --root {root} holds no Snakefile and params.yaml")
        return root
    here = Path.cwd().resolve()
    installed_from = Path(__file__).resolve().parents[3]
    for folder in (here, *here.parents, installed_from):
        if is_project(folder):
            return folder
    raise SystemExit(
        f"error: no project root (a folder with {' and '.join(PROJECT_MARKERS)}) at or above {here}; pass --root"
    )


def run_pipeline(root: Path, args: argparse.Namespace) -> int:
    profile = root / "workflow" / "profiles" / args.profile
    if not profile.is_dir():
        profiles = root / "workflow" / "profiles"
        available = sorted(p.name for p in profiles.iterdir() if p.is_dir()) if profiles.is_dir() else []
        raise SystemExit(f"error: no profile {args.profile!r}; the project has: {', '.join(available) or 'none'}")
    command = [sys.executable, "-m", "snakemake", "--workflow-profile", str(profile), "--cores", args.cores]
    return subprocess.call([*command, *args.snakemake], cwd=root)


def run_stage(root: Path, args: argparse.Namespace) -> int:
    """One stage, as the engines run it (through the launcher, with its log)."""
    project_stages = {stage_table.REPORT.name: stage_table.REPORT}
    names = [entry.name for entry in stage_table.STAGES] + list(project_stages)
    if args.name not in names:
        raise SystemExit(f"error: no stage {args.name!r}; the stages are: {', '.join(names)}")
    if args.name in project_stages:
        command = project_stages[args.name].command()
    else:
        if not args.experiment:
            raise SystemExit(f"error: stage {args.name} needs --experiment NAME (an experiment in params.yaml)")
        if shlex.quote(args.experiment) != args.experiment:  # the command line below is split by shlex
            raise SystemExit(f"error: {args.experiment!r} is not an experiment name (letters, digits and _)")
        command = stage_table.stage(args.name).command(args.experiment)
    # The engines' own command line, run with this interpreter instead of "python3".
    launcher_and_arguments = shlex.split(command)[1:]
    environment = {**os.environ, "LATENT_ABSTRACTIONS_PYTHON": sys.executable}
    return subprocess.call([sys.executable, *launcher_and_arguments], cwd=root, env=environment)


def run_verify(root: Path, args: argparse.Namespace) -> int:
    return subprocess.call([sys.executable, "-m", "latent_abstractions.pipeline.verify"], cwd=root)


def print_findings(root: Path, args: argparse.Namespace) -> int:
    findings = root / "data" / "findings.md"
    if not findings.is_file():
        raise SystemExit(f"error: {findings} is not there yet: `latent-abstractions run` writes it")
    sys.stdout.write(findings.read_text())
    return 0


def export_diffusers(root: Path, args: argparse.Namespace) -> int:
    """A pipeline-trained diffusers_unet2d network as a save_pretrained folder."""
    from ..core.errors import InputError
    from ..diffusion import checkpoints, diffusers_folder
    from ..diffusion.nets.diffusers_unet import DiffusersScoreNet

    try:
        model, metadata = checkpoints.load(args.weights)
        if not isinstance(model, DiffusersScoreNet):
            raise InputError(f"{args.weights}: a score_unet network; only model.architecture diffusers_unet2d exports")
        diffusers_folder.check_ddpm_sde(metadata.get("provenance", {}).get("params", {}).get("sde", {}))
        diffusers_folder.export(model, Path(args.folder))
    except (InputError, OSError) as exc:
        raise SystemExit(f"error: {exc}") from None
    print(
        f"wrote {args.folder}: a UNet2DModel save_pretrained folder (model.kind: diffusers, model.path: {args.folder})"
    )
    return 0


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="latent-abstractions", description=__doc__.splitlines()[0])
    main.add_argument("--version", action="version", version=f"latent-abstractions {__version__}")
    main.add_argument("--root", help="the project root (default: found from the working directory)")
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run the whole pipeline with Snakemake (the default profile)")
    run.add_argument("--profile", default="default", help="a folder under workflow/profiles (default, slurm)")
    run.add_argument("--cores", default="all", help="cores Snakemake may use (default: all)")
    run.add_argument(
        "snakemake", nargs="*", help="further Snakemake arguments and targets, passed on (-n, --report R.zip, ...)"
    )
    run.set_defaults(handler=run_pipeline)
    stage = commands.add_parser("stage", help="run one stage for one experiment, as the engines do")
    stage.add_argument("name", help="a stage of the stage table (train, sample, ..., report)")
    stage.add_argument("--experiment", help="an experiment in params.yaml (every stage but report)")
    stage.set_defaults(handler=run_stage)
    verify = commands.add_parser("verify", help="check every artifact under data/ against its inputs, params and code")
    verify.set_defaults(handler=run_verify)
    findings = commands.add_parser("findings", help="print data/findings.md, the studies' answers")
    findings.set_defaults(handler=print_findings)
    export = commands.add_parser(
        "export-diffusers", help="save a trained diffusers_unet2d network with save_pretrained"
    )
    export.add_argument("weights", help="a checkpoint, e.g. data/<experiment>/model/weights.safetensors")
    export.add_argument("folder", help="the folder to write (config.json, weights, condition embedding)")
    export.set_defaults(handler=export_diffusers)
    return main


def main(argv: list[str] | None = None) -> int:
    command = parser()
    args, unknown = command.parse_known_args(argv)
    if unknown and args.command != "run":  # only `run` passes options on (to Snakemake)
        command.error(f"unrecognized arguments: {' '.join(unknown)}")
    if unknown:
        args.snakemake = [*args.snakemake, *unknown]
    return args.handler(find_root(args.root), args)


if __name__ == "__main__":
    sys.exit(main())

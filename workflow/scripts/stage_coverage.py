"""Which modules of each stage's code closure run no function in a CI-params run.

A stage's code closure (core/code_closure.py) is every package module its module imports;
editing any of them reruns the stage. A module of the closure that runs none of its
functions in the stage is code the stage carries without using. This script runs the
pipeline on the tests' params (tests/params-ci.yaml) with Snakemake in a clone of a commit,
recording in every stage process the package functions that are called (a profile hook,
installed by a sitecustomize module on PYTHONPATH, so any commit can be measured), and
prints, per stage, the closure modules none of whose functions ran.

    .venv/bin/python workflow/scripts/stage_coverage.py [--commit REV]

A module counts as run when a function, lambda or comprehension of its own is called in
the stage's process, at import time too (a decorator's call, a comprehension building a
module-level table); its bare definitions and constants do not count. Minutes: the whole
CI-params pipeline of that commit (its own tests/params-ci.yaml) runs once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECORDER = """
import atexit, os, sys, threading
_files = set()

def _profile(frame, event, arg):
    if event == "call" and frame.f_code.co_flags & 0x1 and frame.f_code.co_name != "<genexpr>":
        _files.add(frame.f_code.co_filename)  # CO_OPTIMIZED: a function, not a module or class body

def _dump():
    if "--log" not in sys.argv:
        return
    log = sys.argv[sys.argv.index("--log") + 1][len("logs/"):]
    job = log[: -len(".log")].replace("/", "@")
    with open(os.path.join(os.environ["STAGE_COVERAGE"], job + ".files"), "w") as f:
        f.write("\\n".join(sorted(_files)))

if os.environ.get("STAGE_COVERAGE"):
    sys.setprofile(_profile)
    threading.setprofile(_profile)
    atexit.register(_dump)
"""
CLOSURES = """
import json
try:
    from latent_abstractions.pipeline import stage_table
    from latent_abstractions.core import code_closure
except ImportError:  # before the package was cut into layers
    from latent_abstractions import code_closure, stage_table
closures = {s.name: code_closure.closure(s.command_module) for s in stage_table.STAGES}
closures["report"] = code_closure.closure(stage_table.REPORT.command_module)
files = {m: str(code_closure.module_file(m)) for c in closures.values() for m in c}
print(json.dumps({"closures": closures, "files": files}))
"""


def run_pipeline(commit: str, work: Path) -> tuple[Path, Path]:
    repo, records, hook = work / "repo", work / "records", work / "hook"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    subprocess.run(["git", "checkout", "-q", commit], cwd=repo, check=True)
    (repo / "params.yaml").write_text((repo / "tests" / "params-ci.yaml").read_text())  # that commit's
    records.mkdir()
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(RECORDER)
    env = {
        **os.environ,
        "PYTHONPATH": f"{repo / 'src'}{os.pathsep}{hook}",
        "STAGE_COVERAGE": str(records),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    command = ["snakemake", "--cores", "2", "--workflow-profile", "workflow/profiles/default"]
    subprocess.run(command, cwd=repo, env=env, check=True, capture_output=True)
    return repo, records


def idle_modules(repo: Path, records: Path) -> dict[str, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(repo / "src")}
    found = json.loads(
        subprocess.run(
            [sys.executable, "-c", CLOSURES], cwd=repo, env=env, capture_output=True, text=True, check=True
        ).stdout
    )
    ran: dict[str, set[str]] = {}
    for record in records.glob("*.files"):
        ran.setdefault(record.stem.split("@")[0], set()).update(record.read_text().split())
    return {
        stage: sorted(
            m
            for m in found["closures"][stage]
            if found["files"][m] not in files and not found["files"][m].endswith("__init__.py")
        )
        for stage, files in sorted(ran.items())
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commit", default="HEAD", help="the commit to measure (default: HEAD)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        try:
            idle = idle_modules(*run_pipeline(args.commit, Path(work)))
        except subprocess.CalledProcessError as exc:  # one line: the command and its last words
            said = (exc.stderr or exc.stdout or b"").strip().splitlines()
            last = said[-1].decode() if said and isinstance(said[-1], bytes) else (said[-1] if said else "")
            sys.exit(f"error: {' '.join(map(str, exc.cmd))[:200]} failed with exit status {exc.returncode}: {last}")
    for stage, modules in idle.items():
        print(f"{stage}: {', '.join(m.removeprefix('latent_abstractions.') for m in modules) or 'none'}")
    print(f"idle_modules={sum(len(m) for m in idle.values())}")


if __name__ == "__main__":
    main()

"""Can I trust this figure? Every artifact under data/ against what is on disk now.

    python -m latent_abstractions.pipeline.verify [--params params.yaml] [--data data]

Each table (Parquet) and figure (PNG) carries the provenance of the step that made it
(artifacts.provenance). For each, this checks:

- every input it records: still there, and with the sha256 recorded;
- its params: the recorded params still hash to the recorded hash (the provenance is
  intact), and they are what params.yaml says for its experiment now;
- its code: the import closure of the step that made it still hashes as recorded.

It prints one line per stale or tampered artifact, naming the file and what differs, and
exits 1 if there is any (0 and a count otherwise). A store's parts are tables too: each
is checked like any other.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from ..core.artifacts import PROVENANCE_KEY, input_sha256, params_sha256, stage_code_sha256
from . import params as params_module
from . import stage_table


def recorded_provenance(path: Path) -> dict | None:
    """An artifact's provenance; None for a file that carries none."""
    if path.suffix == ".png":
        with Image.open(path) as image:
            text = image.text.get("provenance")
        return None if text is None else json.loads(text)
    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata[PROVENANCE_KEY]) if PROVENANCE_KEY in metadata else None


def artifacts(data: Path) -> Iterator[Path]:
    for pattern in ("*.parquet", "*.png"):
        yield from sorted(p for p in data.rglob(pattern) if not p.name.startswith("."))


def current_params(params: dict, experiment: str) -> set[str]:
    """The hashes of every params form a step of ``experiment`` records now: its sections
    together, or a single section alone (as the stage table declares them)."""
    sections = params["experiments"].get(experiment)
    if sections is None:
        return set()
    hashes = set()
    for entry in stage_table.STAGES:
        chosen = {key: sections[key] for key in entry.params if key in sections}
        hashes.add(params_sha256(chosen))
        if len(entry.params) == 1 and entry.params[0] in sections:
            hashes.add(params_sha256(sections[entry.params[0]]))
    return hashes


def problems(path: Path, provenance: dict, params: dict) -> Iterator[str]:
    for source, digest in provenance.get("inputs", {}).items():
        if not Path(source).exists():
            yield f"{path}: its input {source} is missing"
        elif input_sha256(source) != digest:
            yield f"{path}: its input {source} changed after it was made"
    recorded = provenance.get("params")
    if params_sha256(recorded) != provenance.get("params_sha256"):
        yield f"{path}: its provenance was altered (the params it records do not hash as recorded)"
    elif provenance.get("experiment") in params["experiments"]:
        if provenance["params_sha256"] not in current_params(params, provenance["experiment"]):
            yield f"{path}: params.yaml changed for {provenance['experiment']} after it was made"
    step = provenance.get("step", "?")
    try:
        code = stage_code_sha256(step)
    except (ImportError, ValueError):
        yield f"{path}: made by an unknown step {step!r}"
        return
    if code != provenance.get("code_sha256"):
        yield f"{path}: the code of {step} changed after it was made"


def verify(data: Path, params: dict) -> tuple[int, list[str]]:
    """(artifacts checked, one line per problem)."""
    checked, found = 0, []
    for path in artifacts(data):
        try:
            provenance = recorded_provenance(path)
        except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
            found.append(f"{path}: unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
            continue
        checked += 1
        if provenance is None:
            found.append(f"{path}: carries no provenance: not made by this pipeline")
            continue
        found += list(problems(path, provenance, params))
    return checked, found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m latent_abstractions.pipeline.verify", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data", default="data")
    args = parser.parse_args(argv)
    params = params_module.load_or_exit(args.params)
    if not Path(args.data).is_dir():
        sys.exit(f"error: {args.data} is not a folder: run the pipeline first (make run)")
    checked, found = verify(Path(args.data), params)
    for line in found:
        print(line)
    print(f"{checked} artifacts checked, {len(found)} finding{'s' * (len(found) != 1)}")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()

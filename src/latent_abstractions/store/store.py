"""Writing a trajectory store (its layout and schema: store_layout.py) batch by batch.

A run writes into ``<store>.partial``: each finished batch becomes one Parquet file per
step it touches (written under a temporary name and renamed), then is marked done in
``_progress.json`` with the files it wrote, and its memory can go. A run killed at any
point and started again keeps the batches marked done, deletes anything else, and goes
on from the first incomplete batch; a partial store made by other params, inputs or
code (its fingerprint is the layout plus the provenance) is discarded, with a warning,
never mixed. When every batch is done the directory is renamed to ``<store>``, the
only name the pipeline engines see.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..core.artifacts import PROVENANCE_KEY, canonical_json, naming_full_disk
from .store_layout import (
    LAYOUT_KEY,
    PART_KEY,
    ROW_GROUP_BYTES,
    SCHEMA_VERSION,
    part_file,
    scalar_columns,
    schema_for,
    step_directory,
)

log = logging.getLogger("store")
PROGRESS = "_progress.json"


def partial_path(target: Path | str) -> Path:
    target = Path(target)
    return target.with_name(target.name + ".partial")


def row_bytes(schema: pa.Schema) -> int:
    total = 0
    for field in schema:
        kind = field.type
        if pa.types.is_fixed_size_list(kind):
            total += kind.list_size * kind.value_type.bit_width // 8
        else:
            total += 8
    return total


class StoreWriter:
    """``layout``: what store_layout.schema_for needs plus the row and part count of every
    recorded step (``rows``, ``parts``: {str(step): n}); ``provenance``: artifacts.provenance."""

    def __init__(self, target: Path | str, layout: dict, provenance: dict):
        self.target = Path(target)
        self.partial = partial_path(self.target)
        self.layout = {**layout, "schema_version": SCHEMA_VERSION}
        self.schema = schema_for(self.layout)
        layout_bytes, provenance_bytes = canonical_json(self.layout).encode(), canonical_json(provenance).encode()
        self.metadata = {LAYOUT_KEY: layout_bytes, PROVENANCE_KEY: provenance_bytes}
        self.fingerprint = hashlib.sha256(layout_bytes + b"\0" + provenance_bytes).hexdigest()
        self.scalars = [name for name, _ in scalar_columns(self.layout)]
        self.rows_per_group = max(1, ROW_GROUP_BYTES // row_bytes(self.schema))
        self.done, self.written = 0, []

    def start(self) -> int:
        """Prepare ``<store>.partial``; return how many batches an interrupted run of the
        same params, inputs and code already finished (0 for a fresh start)."""
        progress_file = self.partial / PROGRESS
        if progress_file.is_file():
            progress = json.loads(progress_file.read_text())
            if progress.get("fingerprint") == self.fingerprint:
                self.done, self.written = int(progress["done"]), list(progress["written"])
                log.info("resuming %s after %d finished batches", self.partial, self.done)
            else:
                log.warning("discarding %s: it was made by other params, inputs or code", self.partial)
                shutil.rmtree(self.partial)
        elif self.partial.exists():
            shutil.rmtree(self.partial)
        self.partial.mkdir(parents=True, exist_ok=True)
        keep = set(self.written) | {PROGRESS}
        for path in sorted(self.partial.rglob("*"), reverse=True):  # files before their directories
            name = path.relative_to(self.partial).as_posix()
            if path.is_file() and name not in keep:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
        return self.done

    def table(self, columns: dict) -> pa.Table:
        """Arrow table in the store's schema from {column: 1-D array | (rows, width) array}."""
        arrays = []
        for field in self.schema:
            if field.name not in columns:
                raise KeyError(f"batch lacks column {field.name}")
            value = columns[field.name]
            if pa.types.is_fixed_size_list(field.type):
                value = np.ascontiguousarray(value, dtype=field.type.value_type.to_pandas_dtype())
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(value.reshape(-1)), field.type.list_size))
            else:
                arrays.append(pa.array(value, type=field.type))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _write(self, table: pa.Table, step: int, part: int) -> str:
        name = f"{step_directory(step)}/{part_file(part)}"
        target = self.partial / name
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        table = table.replace_schema_metadata({**self.metadata, PART_KEY: canonical_json({"part": part}).encode()})
        try:
            with naming_full_disk(target):
                pq.write_table(
                    table,
                    temporary,
                    row_group_size=self.rows_per_group,
                    compression="none",
                    use_dictionary=["split"] if "split" in table.column_names else False,
                    write_statistics=self.scalars,
                    write_page_checksum=True,
                )
                os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)
        return name

    def write_batch(self, batch: int, parts: dict[int, tuple[int, pa.Table | dict]]) -> None:
        """Write batch ``batch`` (the next one): ``parts`` maps each step it fills to
        (part index in that step's directory, table or column dict); then mark it done."""
        if batch != self.done:
            raise ValueError(f"batch {batch} written out of order; {self.done} are done")
        for step, (part, table) in sorted(parts.items()):
            if isinstance(table, dict):
                table = self.table(table)
            self.written.append(self._write(table, step, part))
        self.done += 1
        progress = {"fingerprint": self.fingerprint, "done": self.done, "written": self.written}
        temporary = self.partial / f".{PROGRESS}.tmp"
        with naming_full_disk(self.partial / PROGRESS):
            temporary.write_text(json.dumps(progress))
            os.replace(temporary, self.partial / PROGRESS)

    def finish(self) -> Path:
        """Check every step has its files, then rename ``<store>.partial`` to ``<store>``."""
        for step, parts in self.layout["parts"].items():
            found = len(list((self.partial / step_directory(int(step))).glob("part_*.parquet")))
            if found != parts:
                raise RuntimeError(f"{self.partial}: step {step} has {found} of {parts} files")
        (self.partial / PROGRESS).unlink()
        if self.target.exists():
            shutil.rmtree(self.target)
        os.replace(self.partial, self.target)
        return self.target

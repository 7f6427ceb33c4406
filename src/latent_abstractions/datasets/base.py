"""The one interface every dataset presents, and its on-disk form.

On disk a dataset is two files in one folder:
- ``images.npy``: float32 array (N, C, H, W), values in [-1, 1], memory-mappable;
- ``factors.parquet``: one row per image, one column per factor (and ``<name>_bin``,
  the index of the value in the factor's sorted list of values), with the factor
  table and a content hash of the images in its metadata.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..artifacts import atomic_path, write_parquet

IMAGES_FILE = "images.npy"
FACTORS_FILE = "factors.parquet"
FACTOR_TABLE_KEY = b"latent_abstractions.factors"


@dataclasses.dataclass(frozen=True)
class Factor:
    """One generating factor: its name, kind and the values it takes."""

    name: str
    kind: str  # "continuous" or "categorical"
    values: tuple[float, ...]  # sorted values present in the dataset

    @property
    def cardinality(self) -> int:
        return len(self.values)

    @property
    def low(self) -> float:
        return float(self.values[0])

    @property
    def high(self) -> float:
        return float(self.values[-1])


@dataclasses.dataclass
class Dataset:
    images: np.ndarray  # (N, C, H, W) float32 in [-1, 1]
    factors: pd.DataFrame  # one column per factor, plus <name>_bin
    factor_table: list[Factor]

    @property
    def content_sha256(self) -> str:
        return hashlib.sha256(np.ascontiguousarray(self.images).tobytes()).hexdigest()

    def factor(self, name: str) -> Factor:
        for factor in self.factor_table:
            if factor.name == name:
                return factor
        known = ", ".join(f.name for f in self.factor_table)
        raise KeyError(f"unknown factor {name!r}; the dataset has: {known}")


def bin_index(values: np.ndarray, factor: Factor) -> np.ndarray:
    """Index of each value in the factor's sorted values (nearest one)."""
    grid = np.asarray(factor.values)
    return np.abs(np.asarray(values)[:, None] - grid[None, :]).argmin(axis=1)


def save(dataset: Dataset, folder: Path | str, provenance: dict) -> None:
    folder = Path(folder)
    with atomic_path(folder / IMAGES_FILE) as temporary:
        with open(temporary, "wb") as handle:
            np.save(handle, dataset.images.astype(np.float32, copy=False))
    table = pa.Table.from_pandas(dataset.factors, preserve_index=False)
    factor_json = json.dumps([dataclasses.asdict(f) for f in dataset.factor_table]).encode()
    table = table.replace_schema_metadata({FACTOR_TABLE_KEY: factor_json})
    meta = {**provenance, "content_sha256": dataset.content_sha256, "value_range": [-1.0, 1.0]}
    write_parquet(table, folder / FACTORS_FILE, meta)


def load(folder: Path | str, mmap: bool = True) -> Dataset:
    """Read a saved dataset; the images stay memory-mapped unless ``mmap`` is False."""
    folder = Path(folder)
    images_path, factors_path = folder / IMAGES_FILE, folder / FACTORS_FILE
    for path in (images_path, factors_path):
        if not path.is_file():
            raise FileNotFoundError(f"dataset file missing: {path}")
    images = np.load(images_path, mmap_mode="r" if mmap else None)
    table = pq.read_table(factors_path)
    metadata = table.schema.metadata or {}
    if FACTOR_TABLE_KEY not in metadata:
        raise ValueError(f"{factors_path}: no factor table in its metadata")
    factor_table = [
        Factor(name=f["name"], kind=f["kind"], values=tuple(f["values"]))
        for f in json.loads(metadata[FACTOR_TABLE_KEY])
    ]
    factors = table.to_pandas()
    if images.ndim != 4 or len(images) != len(factors):
        raise ValueError(f"{folder}: images {images.shape} do not match {len(factors)} factor rows")
    return Dataset(images=images, factors=factors, factor_table=factor_table)

"""The one interface every dataset presents, and its on-disk form.

On disk a dataset is two files in one folder:
- ``images.npy``: array (N, C, H, W), memory-mappable, either float32 with values in
  [-1, 1] or uint8 in [0, 255] (rendered or real photographs), which
  ``pixels.model_range`` maps to [-1, 1] as x / 127.5 - 1;
- ``factors.parquet``: one row per image, one column per factor (and ``<name>_bin``,
  the index of the value in the factor's sorted list of values), a ``split`` column
  ("train"/"test", see splits.py), with the factor table and a content hash of the
  images in its metadata.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..core.artifacts import PROVENANCE_KEY, atomic_path, write_parquet
from ..core.errors import InputError
from ..core.factors import Factor
from ..core.read_audit import announce
from .splits import split_column

IMAGES_FILE = "images.npy"
FACTORS_FILE = "factors.parquet"
FACTOR_TABLE_KEY = b"latent_abstractions.factors"


@dataclasses.dataclass
class Dataset:
    images: np.ndarray  # (N, C, H, W): float32 in [-1, 1], or uint8 in [0, 255]
    factors: pd.DataFrame  # one column per factor, plus <name>_bin
    factor_table: list[Factor]

    @property
    def content_sha256(self) -> str:
        digest = hashlib.sha256()
        for start in range(0, len(self.images), 4096):  # streams: images may be memory-mapped
            # rows of a C-ordered array are one buffer: hashed where they lie, no copy
            digest.update(memoryview(np.ascontiguousarray(self.images[start : start + 4096])).cast("B"))
        return digest.hexdigest()

    def condition_values(self) -> np.ndarray:
        """The network's factor input (N, n_factors): the value of a continuous factor,
        the value's index of a categorical one."""
        columns = [f.name if f.kind == "continuous" else f"{f.name}_bin" for f in self.factor_table]
        return self.factors[columns].to_numpy(dtype=np.float64)

    def bins(self) -> np.ndarray:
        """Each factor's value index (N, n_factors), for classification and exact MI."""
        return self.factors[[f"{f.name}_bin" for f in self.factor_table]].to_numpy()

    def train_rows(self) -> np.ndarray:
        if "split" not in self.factors:
            return np.arange(len(self.factors))
        return np.flatnonzero(self.factors["split"].to_numpy() == "train")

    def restricted(self, names: list[str]) -> Dataset:
        """The same images with only the named factors in the factor table (all when empty)."""
        if not names:
            return self
        known = [f.name for f in self.factor_table]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise InputError(f"unknown factor {', '.join(unknown)}; the dataset has: {', '.join(known)}")
        table = [self.factor(n) for n in names]
        return Dataset(images=self.images, factors=self.factors, factor_table=table)

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


@contextlib.contextmanager
def images_writer(folder: Path | str, shape: tuple[int, ...], dtype: np.dtype) -> Iterator[np.ndarray]:
    """A writable memory-mapped ``images.npy`` to fill, renamed into place on success:
    large data sets stream into it chunk by chunk."""
    with atomic_path(Path(folder) / IMAGES_FILE) as temporary:
        array = np.lib.format.open_memmap(temporary, mode="w+", dtype=dtype, shape=shape)
        yield array
        array.flush()
        del array


def write_factors(factors: pd.DataFrame, factor_table: list[Factor], folder: Path | str, meta: dict) -> None:
    table = pa.Table.from_pandas(factors, preserve_index=False)
    factor_json = json.dumps([f.to_dict() for f in factor_table]).encode()
    write_parquet(table.replace_schema_metadata({FACTOR_TABLE_KEY: factor_json}), Path(folder) / FACTORS_FILE, meta)


def save(dataset: Dataset, folder: Path | str, provenance: dict) -> None:
    stored = dataset.images if dataset.images.dtype == np.uint8 else dataset.images.astype(np.float32, copy=False)
    with images_writer(folder, stored.shape, stored.dtype) as array:
        array[:] = stored
    write_factors(dataset.factors, dataset.factor_table, folder, stored_meta(dataset, provenance))


def save_with_split(dataset: Dataset, split: dict, folder: Path | str, provenance: dict) -> None:
    """Save ``dataset`` with its ``split`` column made by the params' split policy."""
    dataset.factors["split"] = split_column(dataset.factors, dataset.factor_table, split)
    save(dataset, folder, provenance)


def stored_meta(dataset: Dataset, provenance: dict) -> dict:
    """Provenance plus what a reader needs to trust the images: content hash, value range."""
    value_range = [0, 255] if dataset.images.dtype == np.uint8 else [-1.0, 1.0]
    return {**provenance, "content_sha256": dataset.content_sha256, "value_range": value_range}


_CHECKED: dict[tuple[str, int, int], str] = {}  # content hash per file version (path, size, mtime)


def load(folder: Path | str, mmap: bool = True, check_content: bool = True) -> Dataset:
    """Read a saved dataset; the images stay memory-mapped unless ``mmap`` is False. The
    images are checked against the content hash their factor table records (streamed; the
    result is kept per file version, so a step that loads twice hashes once), unless
    ``check_content`` is False (the step that has just written them)."""
    folder = Path(folder)
    images_path, factors_path = folder / IMAGES_FILE, folder / FACTORS_FILE
    for path in (images_path, factors_path):
        if not path.is_file():
            raise InputError(f"dataset file missing: {path}")
    try:
        images = np.load(images_path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{images_path}: not a readable image array ({exc}); make the data set again") from None
    try:
        announce(factors_path)
        table = pq.read_table(factors_path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{factors_path}: not a readable table ({exc}); make the data set again") from None
    metadata = table.schema.metadata or {}
    if FACTOR_TABLE_KEY not in metadata:
        raise InputError(f"{factors_path}: no factor table in its metadata")
    try:
        factor_table = [Factor.from_dict(f) for f in json.loads(metadata[FACTOR_TABLE_KEY])]
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(f"{factors_path}: its factor table is malformed ({exc}); make the data set again") from None
    factors = table.to_pandas()
    if not isinstance(images, np.ndarray) or images.ndim != 4 or len(images) != len(factors):
        raise InputError(f"{folder}: images {getattr(images, 'shape', '?')} do not match {len(factors)} factor rows")
    dataset = Dataset(images=images, factors=factors, factor_table=factor_table)
    if check_content:
        _check_content(dataset, images_path, factors_path, metadata)
    return dataset


def _check_content(dataset: Dataset, images_path: Path, factors_path: Path, metadata: dict) -> None:
    try:
        recorded = json.loads(metadata.get(PROVENANCE_KEY, b"{}")).get("content_sha256")
    except (ValueError, AttributeError):
        recorded = None
    if recorded is None:
        return  # a data set written without provenance (an outside tool's): nothing to check against
    status = images_path.stat()
    version = (str(images_path.resolve()), status.st_size, status.st_mtime_ns)
    if version not in _CHECKED:
        _CHECKED[version] = dataset.content_sha256
    if _CHECKED[version] != recorded:
        raise InputError(
            f"{images_path} does not match the content hash {factors_path} records: the images changed "
            "after the data set was made; make the data set again"
        )


def traversal_rows(dataset: Dataset, reference: int = 0) -> dict[str, list[tuple[float, int]]]:
    """For each factor, (value, image index) along its values with the other factors as
    close as the data set allows to those of image ``reference`` (fewest differing bins)."""
    bins = dataset.bins()
    rows = {}
    for k, factor in enumerate(dataset.factor_table):
        others = np.delete(np.arange(bins.shape[1]), k)
        mismatch = (bins[:, others] != bins[reference, others]).sum(axis=1)
        row = []
        for v, value in enumerate(factor.values):
            candidates = np.flatnonzero(bins[:, k] == v)
            if len(candidates):
                row.append((float(value), int(candidates[mismatch[candidates].argmin()])))
        rows[factor.name] = row
    return rows

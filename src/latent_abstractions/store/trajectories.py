"""Reading a trajectory store (its layout and schema: store_layout.py), checked whole
before any row is read.

The method in full: docs/data.md, "The trajectory store".
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..core.artifacts import PROVENANCE_KEY
from ..core.errors import StoreError
from ..core.read_audit import announce
from .store_layout import (
    KEYS,
    LAYOUT_KEY,
    NETWORK_PASSES,
    PART_KEY,
    SCHEMA_VERSION,
    StoreLayout,
    denoised_column,
    factor_column,
    feature_columns_of,
    part_file,
    schema_for,
    step_directory,
)

# --- columns of a table read ------------------------------------------------------------------


def feature_columns(table: pa.Table) -> list[str]:
    """The feature columns of a table read from a store."""
    return [
        name
        for name in table.column_names
        if name in ("state", "image") or name.split(".")[0] in ("eps", "denoised", "act", "map", "full")
    ]


def vector_column(table: pa.Table, name: str, dtype=None) -> np.ndarray:
    """A fixed-size-list column as a (rows, width) array, without copying per row."""
    column = table.column(name)
    width = column.type.list_size
    column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    values = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), width)
    return values if dtype is None else values.astype(dtype, copy=False)


# --- the reader -------------------------------------------------------------------------------


@dataclasses.dataclass
class Selection:
    """What :meth:`Store.select` returns; rows are ordered by the store's key columns
    (``trajectory``; ``trajectory, branch``; ``source, repeat``) and are the same rows at
    every selected step."""

    steps: np.ndarray  # (S,) int
    t: np.ndarray  # (S,)
    log_snr: np.ndarray  # (S,)
    keys: dict  # key column -> (N,)
    features: dict  # feature column -> (S, N, width)
    factors: dict  # factor name -> (N,)


@dataclasses.dataclass
class ForkImages:
    images: object  # (M, F, K, C, H, W): parent, fork time, branch
    parent_images: object  # (M, C, H, W): each parent's own final image
    steps: np.ndarray  # (F,) fork steps
    t: np.ndarray  # (F,) fork times tau
    log_snr: np.ndarray  # (F,)
    parents: np.ndarray  # (M,) parent ids
    factors: dict  # factor name -> (M,) the parents' requested factors


@dataclasses.dataclass
class Regenerations:
    images: object  # (S, N, R, C, H, W): start time, source image, repeat
    steps: np.ndarray  # (S,)
    t: np.ndarray  # (S,)
    log_snr: np.ndarray  # (S,)
    sources: np.ndarray  # (N,) rows of the data set
    split: np.ndarray  # (N,) "train" / "test"
    factors: dict  # factor name -> (N,) the source's factors (categorical: value index)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _backend(array: np.ndarray, backend: str):
    if backend == "numpy":
        return array
    if backend == "torch":
        import torch

        array = np.ascontiguousarray(array)
        return torch.from_numpy(array if array.flags.writeable else array.copy())
    raise ValueError(f"unknown backend {backend!r}; allowed: numpy, torch")


def _expression(where) -> pc.Expression | None:
    """``where``: None, a pyarrow Expression, or {column: values list | (low, high) | value}."""
    if where is None or isinstance(where, pc.Expression):
        return where
    expression = None
    for column, condition in where.items():
        field = pc.field(column)
        if isinstance(condition, tuple) and len(condition) == 2:
            term = (field >= condition[0]) & (field <= condition[1])
        elif isinstance(condition, (list, np.ndarray, range)):
            term = field.isin(pa.array(list(np.asarray(condition).tolist())))
        else:
            term = field == condition
        expression = term if expression is None else expression & term
    return expression


def _where_columns(where) -> set[str]:
    if isinstance(where, dict):
        return set(where)
    return set()


class Store:
    """A complete store, its layout and provenance checked (see :func:`open_store`)."""

    def __init__(self, path: Path, layout: dict, provenance: dict, files: dict[int, list[Path]]):
        self.path, self.layout, self.provenance, self._files = path, layout, provenance, files  # layout: JSON form
        self.spec = StoreLayout.from_json(layout)
        self._schema = schema_for(layout)

    # what it holds
    kind = property(lambda self: self.spec.kind)
    steps = property(lambda self: list(self.spec.recorded_steps))
    times = property(lambda self: np.asarray(self.spec.recorded_t, dtype=np.float64))
    log_snrs = property(lambda self: np.asarray(self.spec.recorded_log_snr, dtype=np.float64))
    image_shape = property(lambda self: self.spec.image_shape)
    factors = property(lambda self: list(self.spec.factors))  # every factor of the network
    factor_names = property(lambda self: list(self.spec.factor_names))  # those with a column
    taps = property(lambda self: list(self.spec.extra.get("taps", [])))
    passes = property(lambda self: list(self.spec.extra.get("passes", [])))
    keys = property(lambda self: KEYS[self.spec.kind])

    @property
    def schema(self) -> pa.Schema:
        return self._schema

    @property
    def columns(self) -> list[str]:
        return self._schema.names

    def feature_columns(self) -> list[str]:
        return feature_columns_of(self.layout)

    def files(self, step: int | None = None) -> list[Path]:
        if step is None:
            return [f for s in sorted(self._files) for f in self._files[s]]
        if step not in self._files:
            raise StoreError(f"{self.path}: no recorded step {step}; it has {', '.join(map(str, sorted(self._files)))}")
        return list(self._files[step])

    # reading
    def _check_columns(self, columns: Iterable[str]) -> None:
        known = set(self.columns)
        unknown = [c for c in columns if c not in known]
        if unknown:
            raise StoreError(
                f"{self.path}: unknown column {', '.join(unknown)}; the store has: {', '.join(self.columns)}"
            )

    def _read_file(self, path: Path, columns: list[str], where, check_finite: Sequence[str]) -> pa.Table:
        announce(path)
        try:
            if where is None:
                table = pq.ParquetFile(path, page_checksum_verification=True).read(columns=columns, use_threads=True)
            else:
                table = pq.read_table(
                    path, columns=columns, filters=where, page_checksum_verification=True, partitioning=None
                )
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(f"{path}: corrupted or truncated Parquet file ({_one_line(exc)})") from None
        for name in check_finite:
            values = (
                vector_column(table, name)
                if pa.types.is_fixed_size_list(table.column(name).type)
                else table.column(name).to_numpy()
            )
            if not np.isfinite(values).all():
                row = int(np.flatnonzero((~np.isfinite(values.reshape(len(values), -1))).any(axis=1))[0])
                key = ", ".join(f"{k} {table.column(k)[row].as_py()}" for k in self.keys if k in table.column_names)
                raise StoreError(f"{path}: column {name} holds NaN or inf ({key or f'row {row}'})")
        return table

    def table(
        self,
        steps: Sequence[int] | None = None,
        columns: Sequence[str] | None = None,
        where=None,
        check_finite: bool = False,
    ) -> pa.Table:
        """The rows of ``steps`` (default: all), only ``columns`` (default: all; keys and
        ``step`` always), filtered by ``where`` ({column: values | (low, high) | value} or
        a pyarrow Expression; pushed down to row groups), as one Arrow table in step
        order. ``check_finite`` refuses NaN/inf in the selected float columns."""
        steps = self.steps if steps is None else list(steps)
        wanted = list(dict.fromkeys([*self.keys, "step", *(self.columns if columns is None else columns)]))
        self._check_columns(wanted)
        self._check_columns(_where_columns(where))
        expression = _expression(where)
        finite = [
            c
            for c in wanted
            if check_finite
            and c not in ("split",)
            and (
                pa.types.is_floating(self.schema.field(c).type)
                or pa.types.is_fixed_size_list(self.schema.field(c).type)
            )
        ]
        tables = [self._read_file(path, wanted, expression, finite) for step in steps for path in self.files(step)]
        return pa.concat_tables(tables) if tables else self.schema.empty_table().select(wanted)

    def select(
        self,
        steps: Sequence[int] | None = None,
        features: Sequence[str] | None = None,
        factors: Sequence[str] | None = None,
        where=None,
        backend: str = "numpy",
        check_finite: bool = True,
        dtype=None,
    ) -> Selection:
        """Features (default: every feature column) at ``steps`` (default: every recorded
        step) and factors (default: every factor column) of the rows ``where`` selects.

        ``features[name]`` is (steps, rows, width); ``backend`` "numpy" or "torch";
        ``dtype`` converts features (full maps are stored as float16). NaN or inf in what
        is read stops with one line naming the file (``check_finite``)."""
        steps = self.steps if steps is None else [int(s) for s in steps]
        features = self.feature_columns() if features is None else list(features)
        factors = self.factor_names if factors is None else list(factors)
        self._check_factors(factors)
        factor_columns = [factor_column(self.kind, f) for f in factors]
        extra = [c for c in ("split",) if c in self.columns]
        columns = features + factor_columns + ["t", "log_snr"] + extra
        per_step, keys = self._tables_in_key_order(steps, columns, where, check_finite)
        first = per_step[0]
        keys_out = {k: _backend(v, backend) for k, v in keys.items()}
        if extra:
            keys_out["split"] = np.asarray(first.column("split").to_pylist())
        return Selection(
            np.asarray(steps),
            np.asarray([self._step_value(t, "t", s) for t, s in zip(per_step, steps)]),
            np.asarray([self._step_value(t, "log_snr", s) for t, s in zip(per_step, steps)]),
            keys_out,
            {name: _backend(np.stack([vector_column(t, name, dtype) for t in per_step]), backend) for name in features},
            {f: _backend(first.column(c).to_numpy(), backend) for f, c in zip(factors, factor_columns)},
        )

    def _check_factors(self, factors: Sequence[str]) -> None:
        unknown = [f for f in factors if f not in self.factor_names]
        if unknown:
            raise StoreError(
                f"{self.path}: unknown factor {', '.join(unknown)}; the store has: "
                f"{', '.join(self.factor_names) or 'none (unconditional)'}"
            )

    def _tables_in_key_order(
        self, steps: Sequence[int], columns: list[str], where, check_finite: bool
    ) -> tuple[list[pa.Table], dict]:
        """One table per step, rows sorted by the key columns, and those keys; refuses
        steps that hold other rows than the first."""
        per_step, keys = [], None
        for step in steps:
            table = self.table([step], columns, where, check_finite)
            table = table.take(pc.sort_indices(table, sort_keys=[(k, "ascending") for k in self.keys]))
            step_keys = {k: table.column(k).to_numpy() for k in self.keys}
            if keys is None:
                keys = step_keys
            elif any(not np.array_equal(keys[k], step_keys[k]) for k in self.keys):
                raise StoreError(
                    f"{self.path}: step {step} holds other rows than step {steps[0]}; select one step at a time"
                )
            per_step.append(table)
        if not per_step:
            raise StoreError(f"{self.path}: no steps selected")
        return per_step, keys

    def _step_value(self, table: pa.Table, column: str, step: int) -> float:
        if table.num_rows:
            return float(table.column(column)[0].as_py())
        t, log_snr = self.spec.time_of(step)
        return float(t if column == "t" else log_snr)

    def feature(self, name: str, step: int, where=None, backend: str = "numpy", dtype=None):
        """One feature at one step: (rows, width), rows in key order (all trajectories by default)."""
        return self.select([step], [name], [], where, backend, dtype=dtype).features[name][0]

    def requested_factors(self, factors: Sequence[str] | None = None, where=None, backend: str = "numpy") -> dict:
        """The factor columns per row (read from one step: they are the same at every step)."""
        step = self.steps[-1]
        return self.select([step], [], factors, where, backend).factors

    def final_images(self, where=None, backend: str = "numpy"):
        """The sampler's output per trajectory, (N, C, H, W): the denoised estimate at the last
        step that the sampler follows (uncond + guidance (cond - uncond)). For a fork store,
        the parents' own final images."""
        if self.kind == "forks":
            return self.fork_images(backend=backend).parent_images
        if self.kind != "trajectories":
            raise StoreError(f"{self.path}: a {self.kind} store has no final images; use regenerations()")
        last = self.spec.extra["steps"]
        names = [denoised_column(p) for p in self.passes if p in NETWORK_PASSES]
        chosen = self.select([last], names, [], where)
        uncond = chosen.features[denoised_column("uncond")][0]
        if "cond" in self.passes:
            cond = chosen.features[denoised_column("cond")][0]
            guidance = float(self.spec.extra["guidance"])
            images = cond if guidance == 1.0 else uncond + guidance * (cond - uncond)
        else:
            images = uncond
        return _backend(images.reshape((-1, *self.image_shape)), backend)

    def fork_images(self, backend: str = "numpy") -> ForkImages:
        if self.kind != "forks":
            raise StoreError(f"{self.path}: a {self.kind} store, not a fork store")
        last = self.spec.extra["steps"]
        fork_steps = [s for s in self.steps if s != last]
        parents = self.select([last], ["image"], None)
        ids = parents.keys["trajectory"]
        shape = self.image_shape
        branches = int(self.spec.extra["branches"])
        images = np.empty((len(ids), len(fork_steps), branches, *shape), dtype=np.float32)
        for index, step in enumerate(fork_steps):
            chosen = self.select([step], ["image"], [])
            expected_parents = np.repeat(ids, branches)
            if not np.array_equal(chosen.keys["trajectory"], expected_parents):
                raise StoreError(f"{self.path}: fork step {step} does not hold {branches} branches of every parent")
            images[:, index] = chosen.features["image"][0].reshape(len(ids), branches, *shape)
        return ForkImages(
            _backend(images, backend),
            _backend(parents.features["image"][0].reshape(len(ids), *shape), backend),
            np.asarray(fork_steps),
            np.asarray([self.spec.time_of(s)[0] for s in fork_steps]),
            np.asarray([self.spec.time_of(s)[1] for s in fork_steps]),
            ids,
            {k: _backend(v, backend) for k, v in parents.factors.items()},
        )

    def regenerations(self, backend: str = "numpy") -> Regenerations:
        if self.kind != "forward_backward":
            raise StoreError(f"{self.path}: a {self.kind} store, not a forward-backward store")
        chosen = self.select(None, ["image"], None)
        sources, repeats = chosen.keys["source"], chosen.keys["repeat"]
        count = int(self.spec.extra["repeats"])
        unique = sources[::count]
        if (
            len(sources) != len(unique) * count
            or not np.array_equal(np.repeat(unique, count), sources)
            or not np.array_equal(np.tile(np.arange(count), len(unique)), repeats)
        ):
            raise StoreError(f"{self.path}: rows are not {count} repeats of every source image")
        images = chosen.features["image"].reshape(len(chosen.steps), len(unique), count, *self.image_shape)
        factors = {k: _backend(np.asarray(v)[::count], backend) for k, v in chosen.factors.items()}
        return Regenerations(
            _backend(images, backend),
            chosen.steps,
            chosen.t,
            chosen.log_snr,
            unique,
            np.asarray(chosen.keys["split"])[::count],
            factors,
        )

    def check_finite(self, columns: Sequence[str] | None = None, steps: Sequence[int] | None = None) -> None:
        """Read every float column (or ``columns``) at ``steps``: one line naming the file at
        the first NaN or inf."""
        floats = [c for c in (self.columns if columns is None else columns) if c != "split"]
        for step in self.steps if steps is None else steps:
            self.table([step], floats, check_finite=True)

    def verify(self) -> None:
        """Read every byte of every file (page checksums included)."""
        for path in self.files():
            self._read_file(path, self.columns, None, ())


def _signature(schema: pa.Schema) -> list[tuple]:
    """Names and types, blind to what Parquet renames (a list's item field)."""

    def kind(field: pa.Field):
        if pa.types.is_fixed_size_list(field.type):
            return ("list", str(field.type.value_type), field.type.list_size)
        return (str(field.type),)

    return [(field.name, kind(field)) for field in schema]


def _metadata(path: Path) -> tuple[dict, pq.ParquetSchema, int]:
    announce(path)
    try:
        metadata = pq.read_metadata(path)
        return metadata.metadata or {}, metadata.schema, metadata.num_rows
    except (OSError, pa.ArrowException) as exc:
        raise StoreError(f"{path}: corrupted or truncated Parquet file ({_one_line(exc)})") from None


def open_store(
    path: Path | str,
    kind: str | None = None,
    *,
    schema_version: int = SCHEMA_VERSION,
    checkpoint_sha256: str | None = None,
    code_sha256: str | None = None,
) -> Store:
    """Open a store, refusing (one line, :class:`StoreError`) one that is missing or
    incomplete, of another ``kind``, another schema version, made from another checkpoint
    or by other code than asked (``checkpoint_sha256``, ``code_sha256``: None accepts any),
    with a file missing, or with a file whose footer is unreadable (truncated or corrupted;
    the error names the file). Data pages are checked when read."""
    path = Path(path)
    files = _step_files(path)
    first = next(f for s in sorted(files) for f in files[s])
    metadata, _, _ = _metadata(first)
    if LAYOUT_KEY not in metadata or PROVENANCE_KEY not in metadata:
        raise StoreError(f"{first}: not a trajectory store file (no layout or provenance in its metadata)")
    run = {LAYOUT_KEY: metadata[LAYOUT_KEY], PROVENANCE_KEY: metadata[PROVENANCE_KEY]}
    layout, provenance = json.loads(run[LAYOUT_KEY]), json.loads(run[PROVENANCE_KEY])
    _check_made_as_asked(path, layout, provenance, kind, schema_version, checkpoint_sha256, code_sha256)
    spec = StoreLayout.from_json(layout)
    _check_complete(path, spec, files, run, _signature(schema_for(layout)))
    return Store(path, layout, provenance, {s: files[s] for s in sorted(spec.recorded_steps)})


def _step_files(path: Path) -> dict[int, list[Path]]:
    """The Parquet files of each step directory of the store at ``path``; none at all is refused."""
    if not path.is_dir():
        partial = path.with_name(path.name + ".partial")
        hint = f" (an interrupted run left {partial}; run the stage again to finish it)" if partial.exists() else ""
        raise StoreError(f"{path}: no trajectory store there{hint}")
    files = {}
    for directory in sorted(p for p in path.iterdir() if p.name.startswith("step_")):
        try:
            step = int(directory.name.removeprefix("step_"))
        except ValueError:
            raise StoreError(f"{directory}: not a step directory of a trajectory store") from None
        files[step] = sorted(directory.glob("part_*.parquet"))
    if not any(files.values()):
        raise StoreError(f"{path}: no Parquet files in the store")
    return files


def _check_made_as_asked(
    path: Path,
    layout: dict,
    provenance: dict,
    kind: str | None,
    schema_version: int,
    checkpoint_sha256: str | None,
    code_sha256: str | None,
) -> None:
    """Refuse a store of another schema version, kind, checkpoint or code than asked."""
    version = layout.get("schema_version")
    if version != schema_version:
        raise StoreError(
            f"{path}: store schema version {version}, expected {schema_version}; rerun the stage that made it"
        )
    if kind is not None and layout["kind"] != kind:
        raise StoreError(f"{path}: a {layout['kind']} store, expected a {kind} store")
    if checkpoint_sha256 is not None and layout["checkpoint_sha256"] != checkpoint_sha256:
        raise StoreError(
            f"{path}: made from checkpoint sha256 {layout['checkpoint_sha256'][:12]}..., "
            f"expected {checkpoint_sha256[:12]}...; rerun the stage that made it"
        )
    if code_sha256 is not None and provenance.get("code_sha256") != code_sha256:
        raise StoreError(
            f"{path}: made by code sha256 {str(provenance.get('code_sha256'))[:12]}..., "
            f"expected {code_sha256[:12]}...; rerun the stage that made it"
        )


def _check_complete(
    path: Path, spec: StoreLayout, files: dict[int, list[Path]], run: dict[bytes, bytes], expected: list[tuple]
) -> None:
    """Refuse a store whose steps, files or rows are not those its layout records, or a
    file from another run (``run``: the first file's layout and provenance bytes) or of
    another schema (``expected``: its signature)."""
    recorded = list(spec.recorded_steps)
    if sorted(files) != sorted(recorded):
        raise StoreError(f"{path}: holds steps {sorted(files)}, its layout records {recorded}; the store is incomplete")
    checked_schema = None
    for step in recorded:
        directory = path / step_directory(step)
        if len(files[step]) != spec.parts[step]:
            raise StoreError(
                f"{directory}: {len(files[step])} files, the layout says {spec.parts[step]}; the store is incomplete"
            )
        rows = 0
        for index, file in enumerate(files[step]):
            file_metadata, schema, count = _metadata(file)
            if any(file_metadata.get(key) != value for key, value in run.items()):
                raise StoreError(f"{file}: from another run than the rest of the store")
            _check_part(file, file_metadata, index)
            arrow_schema = file_metadata.get(b"ARROW:schema")
            if arrow_schema is None or arrow_schema != checked_schema:  # files of one run share these bytes
                if _signature(schema.to_arrow_schema()) != expected:
                    raise StoreError(f"{file}: its schema is not the one its layout describes")
                checked_schema = arrow_schema
            rows += count
        if rows != spec.rows[step]:
            raise StoreError(f"{directory}: {rows} rows, the layout says {spec.rows[step]}")


def _check_part(file: Path, metadata: dict, index: int) -> None:
    """A part holds the rows its name says: a part copied over its neighbour (its rows
    counted twice, the neighbour's lost) or renamed is refused."""
    try:
        recorded = json.loads(metadata.get(PART_KEY, b"{}")).get("part")
    except ValueError:
        recorded = None
    if file.name != part_file(index) or recorded != index:
        raise StoreError(
            f"{file}: holds part {recorded}, not part {index} of its step: a part was copied over another, "
            "renamed or lost; rerun the stage that made the store"
        )


def read_layout(path: Path | str) -> dict:
    """The layout of a store (or of one of its files)."""
    path = Path(path)
    first = next(iter(sorted(path.glob("step_*/part_*.parquet"))), None) if path.is_dir() else path
    if first is None:
        raise StoreError(f"{path}: no trajectory store there")
    metadata, _, _ = _metadata(first)
    if LAYOUT_KEY not in metadata:
        raise StoreError(f"{first}: not a trajectory store file (no layout in its metadata)")
    return json.loads(metadata[LAYOUT_KEY])


def check_finite(path: Path | str, columns: Sequence[str] | None = None) -> None:
    """Open a store and refuse NaN or inf anywhere in it (or in ``columns``)."""
    open_store(path).check_finite(columns)

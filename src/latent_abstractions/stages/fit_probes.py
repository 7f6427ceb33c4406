"""Pipeline step: a linear probe per recorded time, feature (state, denoised estimate,
each tap's activations) and factor; held-out R^2 (continuous factors) or accuracy
(categorical ones) as a tidy Parquet table."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import paths, trajectories
from ..artifacts import provenance, write_parquet, write_series_csv
from ..cli import InputError, run_step
from ..probes import held_out_accuracy, held_out_r2, split_trajectories

log = logging.getLogger("fit_probes")


def probe_table(table: pa.Table, factors: list[dict], test_fraction: float, ridge: float, seed: int) -> pd.DataFrame:
    """One row per (step, feature, factor): t, log_snr, metric (r2 or accuracy), score."""
    trajectory = table.column("trajectory").to_numpy()
    step = table.column("step").to_numpy()
    train_ids, test_ids = split_trajectories(int(trajectory.max()) + 1, test_fraction, seed)
    rows = []
    for feature in trajectories.feature_columns(table):
        vectors = trajectories.vector_column(table, feature)
        for s in np.unique(step):
            at_step = step == s
            ids = trajectory[at_step]
            for factor in factors:
                target = table.column(f"requested_{factor['name']}").to_numpy()[at_step]
                categorical = factor["kind"] == "categorical"
                probe = held_out_accuracy if categorical else held_out_r2
                rows.append({"step": int(s), "t": float(table.column("t").to_numpy()[at_step][0]),
                             "log_snr": float(table.column("log_snr").to_numpy()[at_step][0]),
                             "feature": feature, "factor": factor["name"],
                             "metric": "accuracy" if categorical else "r2",
                             "score": probe(vectors[at_step], target, train_ids[ids], test_ids[ids], ridge)})
    return pd.DataFrame(rows)


def probes_step(experiment: str, params: dict) -> None:
    source = paths.trajectories(experiment)
    try:
        layout = trajectories.read_layout(source)
        table = pq.read_table(source)
    except (OSError, ValueError) as exc:
        raise InputError(f"{source}: {exc}") from None
    settings = params["probes"]
    frame = probe_table(table, layout["factors"], settings["test_fraction"], settings["ridge"], settings["seed"])
    frame.insert(0, "experiment", experiment)
    meta = provenance("fit_probes", experiment, settings, [source])
    write_parquet(pa.Table.from_pandas(frame, preserve_index=False), paths.probes(experiment), meta)
    write_series_csv(frame, "t", ["feature", "factor"], "score", paths.plot_data(experiment, "probes"))
    final = frame[frame["step"] == frame["step"].max()]
    log.info("held-out score at the last step:\n%s", final.pivot(index="feature", columns="factor", values="score").round(3))


if __name__ == "__main__":
    run_step("fit_probes", probes_step)

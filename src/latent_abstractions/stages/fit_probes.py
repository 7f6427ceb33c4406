"""Pipeline step: linear probes for every (recorded step, feature, factor) of the
trajectory store, fitted at once (probes/: multinomial logistic regression for a
categorical factor, ridge for a continuous one; the penalty chosen on validation
trajectories; train, validation and test split by trajectory).

Targets: the factor *requested* of each trajectory, and, where a measurement of the
generated image exists (bumps: the position of the final image's bump), the factor
*measured* on what was actually drawn; the ``target`` column says which. Every row
says whether its feature was computed with the condition fed in (``sees_condition``):
such features hold the request by construction and measure how the network represents
its condition, not what the trajectory knows."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyarrow as pa

from ..analysis import generation_metrics
from ..analysis.probes import probe_frame, split_train_validation_test
from ..core.artifacts import provenance, write_parquet, write_series_csv
from ..pipeline.cli import run_step
from ..pipeline.paths import ExperimentPaths
from ..store import store_layout, trajectories

log = logging.getLogger("fit_probes")
HEADLINE_METRICS = ("accuracy", "r2")


def measured_targets(store: trajectories.Store) -> dict[str, np.ndarray]:
    """Bump positions measured on the final images, when the store holds bumps images."""
    names = [f.name for f in store.factors]
    if set(names) != {"x", "y"} or store.image_shape[0] != 1:
        return {}
    x, y = generation_metrics.bump_centres(store.final_images())
    return {"x": x, "y": y}


def probe_table(store: trajectories.Store, settings: dict) -> pd.DataFrame:
    selection = store.select()
    steps, n = selection.steps, len(selection.keys["trajectory"])
    trajectory = np.tile(selection.keys["trajectory"], len(steps))
    step = np.repeat(steps, n)
    features = {name: values.reshape(len(steps) * n, -1) for name, values in selection.features.items()}
    kinds = {f.name: f.kind for f in store.factors if f.name in selection.factors}
    split = split_train_validation_test(
        int(trajectory.max()) + 1, settings["test_fraction"], settings["validation_fraction"], settings["seed"]
    )
    frames = []
    for target, values in (("requested", selection.factors), ("measured", measured_targets(store))):
        if values:
            targets = {name: np.tile(np.asarray(values[name]), len(steps)) for name in kinds if name in values}
            frame = probe_frame(
                step,
                trajectory,
                features,
                targets,
                {k: kinds[k] for k in targets},
                split,
                penalties=settings["penalties"],
            )
            frames.append(frame.assign(target=target))
    table = pd.concat(frames, ignore_index=True)
    times = pd.DataFrame({"step": steps, "t": selection.t, "log_snr": selection.log_snr})
    table = table.merge(times, on="step")
    table["sees_condition"] = table["feature"].map(store_layout.sees_condition)
    return table


def probes_step(experiment: str, params: dict) -> None:
    files = ExperimentPaths(experiment)
    source = files.trajectories
    frame = probe_table(trajectories.open_store(source, "trajectories"), params["probes"])
    frame.insert(0, "experiment", experiment)
    meta = provenance("fit_probes", experiment, params["probes"], [source])
    write_parquet(pa.Table.from_pandas(frame, preserve_index=False), files.probes, meta)
    honest = frame[~frame["sees_condition"] & frame["metric"].isin(HEADLINE_METRICS) & (frame["target"] == "requested")]
    write_series_csv(honest, "t", ["feature", "factor"], "score", files.plot_data("probes"))
    last = honest[honest["step"] == honest["step"].max()]
    log.info(
        "held-out score at the last step (features blind to the condition):\n%s",
        last.pivot(index="feature", columns="factor", values="score").round(3),
    )


if __name__ == "__main__":
    run_step("fit_probes", probes_step)

"""Batched torch probes (latent_abstractions.analysis.probes.fit_probes) against a loop of
scikit-learn fits doing the same thing, on synthetic trajectory features of a realistic size.

Run from the repository root, no arguments (needs scikit-learn, a dev/bench-only dependency):

    .venv/bin/python benchmarks/probes_vs_sklearn.py

Problem: 512 trajectories, 8 recorded steps x 6 features (64 to 256 dims) x 6 factors
(categorical with 2, 4, 8, 10 and 10 classes, and one continuous): 288 probes. A feature
is a shared low-rank nuisance (correlated dimensions, as activations are) plus noise plus a
class embedding per factor whose strength grows along the steps (pure noise at the first).

Both sides do the same: trajectories split 75/25 into train + validation / test and 20 % of
train + validation carved out for validation (``split_train_validation_test``), features
standardised on the rows fitted, the penalty grid ``DEFAULT_PENALTIES`` (per sample: C =
1 / (penalty * m), alpha = penalty * m) fitted on train, the penalty with the lowest
validation log-loss (categorical) or squared error (continuous) kept, ties to the larger,
refitted on train + validation, scored on test. scikit-learn: ``StandardScaler`` then
``LogisticRegression(C, max_iter=1000)`` (lbfgs, its default tol) or ``Ridge(alpha)``, in
float64, one fit at a time, BLAS/OpenMP limited to one thread (on this 2-core machine its
multinomial loss was 10-40x slower with its default threading). Ours: float32 on the CPU,
timed (best of 3 after a warm-up) with torch's default threads and with one thread: on a
shared 2-core machine a parallel op can wait a scheduler tick for a busy core, so one thread
is often the faster there.

Printed: wall and CPU times; the agreement (accuracy: max and mean absolute difference in
points over the categorical probes; R^2: max absolute difference; how many penalties chosen
alike), first against scikit-learn as timed, then with the probes that differ by more than
a point refitted by scikit-learn to convergence (its default tol stops short on weakly
penalised fits; not timed); and, as the last line, ``speedup=<scikit-learn loop wall time /
ours>``, ours with the faster of the two thread settings.
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np
import torch

from latent_abstractions.analysis.probes import DEFAULT_PENALTIES, fit_probes, split_train_validation_test

N_TRAJECTORIES = 512
STEPS = 8
FEATURE_DIMS = {"state": 64, "denoised": 96, "act.down.0": 128, "act.down.1": 128, "act.mid": 192, "act.up.0": 256}
CLASSES = {"binary": 2, "shape": 4, "scale": 8, "floor_hue": 10, "object_hue": 10}
CONTINUOUS = ("position",)
SEED = 0


def make_data(seed: int = SEED):
    """Targets per trajectory and features (steps, trajectories, dims) per feature."""
    rng = np.random.default_rng(seed)
    n = N_TRAJECTORIES
    targets = {name: rng.integers(0, k, n) for name, k in CLASSES.items()}
    targets |= {name: rng.uniform(-1, 1, n) for name in CONTINUOUS}
    features = {}
    for feature, d in FEATURE_DIMS.items():
        mixing = rng.normal(size=(16, d)) * np.linspace(3, 0.3, 16)[:, None]
        stack = []
        for step in range(STEPS):
            strength = step / (STEPS - 1)  # pure noise at the first recorded step
            x = rng.normal(size=(n, 16)) @ mixing + rng.normal(size=(n, d))
            for name, k in CLASSES.items():
                x += strength * 1.5 * rng.normal(size=(k, d))[targets[name]] / np.sqrt(d) ** 0.5
            for name in CONTINUOUS:
                x += strength * 1.5 * np.outer(targets[name], rng.normal(size=d)) / np.sqrt(d) ** 0.5
            stack.append(x.astype(np.float32))
        features[feature] = np.stack(stack)
    return features, targets


def sklearn_probe(x, y, kind, masks, grid, tol=1e-4, max_iter=1000):
    """One probe the scikit-learn way: grid on train, pick on validation, refit, test score."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import log_loss
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, val, test = masks
    trainval = train | val
    labels = np.unique(y)

    def model(penalty, m):
        if kind == "categorical":
            logistic = LogisticRegression(C=1.0 / (penalty * m), tol=tol, max_iter=max_iter)
            return make_pipeline(StandardScaler(), logistic)
        return make_pipeline(StandardScaler(), Ridge(alpha=penalty * m))

    best, best_loss = None, np.inf
    for penalty in sorted(grid, reverse=True):  # strict < below: ties go to the larger penalty
        fitted = model(penalty, train.sum()).fit(x[train], y[train])
        if kind == "categorical":
            loss = log_loss(y[val], fitted.predict_proba(x[val]), labels=labels)
        else:
            loss = float(((fitted.predict(x[val]) - y[val]) ** 2).mean())
        if loss < best_loss:
            best, best_loss = penalty, loss
    fitted = model(best, trainval.sum()).fit(x[trainval], y[trainval])
    if kind == "categorical":
        return float((fitted.predict(x[test]) == y[test]).mean()), best
    pred = fitted.predict(x[test])
    return 1.0 - float(((y[test] - pred) ** 2).sum() / ((y[test] - y[test].mean()) ** 2).sum()), best


def time_ours(arrays, targets, kinds, trajectory, split, names, threads=None):
    """Best of 3 wall times of the batched fit (after a warm-up), with its result."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        fit_probes(arrays[:2], targets, kinds, trajectory, split)  # warm-up
        times, cpu = [], []
        for _ in range(3):
            start, start_cpu = time.perf_counter(), time.process_time()
            result = fit_probes(arrays, targets, kinds, trajectory, split, names=names)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    finally:
        torch.set_num_threads(previous)
    return min(times), times, min(cpu), result


def main() -> None:
    from threadpoolctl import threadpool_limits

    features, targets = make_data()
    kinds = {name: "categorical" for name in CLASSES} | {name: "continuous" for name in CONTINUOUS}
    trajectory = np.arange(N_TRAJECTORIES)
    split = split_train_validation_test(N_TRAJECTORIES, 0.25, 0.2, seed=2)
    masks = split.rows(trajectory)
    groups = [(feature, step) for feature in FEATURE_DIMS for step in range(STEPS)]
    arrays = [features[f][s] for f, s in groups]
    names = [f"{f} step {s}" for f, s in groups]
    print(
        f"{len(groups)} (feature, step) groups x {len(kinds)} factors = {len(groups) * len(kinds)} probes, "
        f"{N_TRAJECTORIES} trajectories (train {masks[0].sum()}, validation {masks[1].sum()}, "
        f"test {masks[2].sum()}), penalties {DEFAULT_PENALTIES}; torch {torch.__version__}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (other processes share the machine)"
    )

    ours_s, times, cpu, ours = time_ours(arrays, targets, kinds, trajectory, split, names)
    print(
        f"ours (batched torch, float32, {torch.get_num_threads()} threads): {ours_s:.3f} s wall "
        f"(best of 3: {', '.join(f'{t:.3f}' for t in times)}), {cpu:.3f} s CPU"
    )
    one_s, times, one_cpu, _ = time_ours(arrays, targets, kinds, trajectory, split, names, threads=1)
    print(
        f"ours (batched torch, float32, 1 thread): {one_s:.3f} s wall "
        f"(best of 3: {', '.join(f'{t:.3f}' for t in times)}), {one_cpu:.3f} s CPU"
    )

    # load scikit-learn's compiled modules (and the OpenMP runtime they bring) before limiting
    # threads: threadpoolctl only limits the libraries already loaded when the limit is set
    sklearn_probe(arrays[0].astype(np.float64), targets["floor_hue"], "categorical", masks, DEFAULT_PENALTIES[-1:])
    start, start_cpu = time.perf_counter(), time.process_time()
    reference = {}
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning, if any: it would show in the agreement
        for g, (feature, step) in enumerate(groups):
            x = features[feature][step].astype(np.float64)
            for factor, kind in kinds.items():
                reference[g, factor] = sklearn_probe(x, targets[factor], kind, masks, DEFAULT_PENALTIES)
    sklearn_s, sklearn_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    print(
        f"scikit-learn loop (float64, 1 thread, lbfgs tol 1e-4): {sklearn_s:.3f} s wall, {sklearn_cpu:.3f} s "
        f"CPU; load average now {os.getloadavg()[0]:.1f}"
    )

    def agreement(reference):
        acc, r2, same = [], [], 0
        for (g, factor), (score, penalty) in reference.items():
            key = "accuracy" if kinds[factor] == "categorical" else "r2"
            (acc if key == "accuracy" else r2).append(abs(ours[factor][key][g] - score))
            same += bool(np.isclose(ours[factor]["penalty"][g], penalty, rtol=1e-5))
        return 100 * np.array(acc), np.array(r2), same

    acc, r2, same = agreement(reference)
    test_rows = int(masks[2].sum())
    print(
        f"accuracy vs scikit-learn over {len(acc)} categorical probes: max |diff| {acc.max():.2f} points, "
        f"mean {acc.mean():.3f}, {int((acc > 0).sum())} differ at all (one test row = {100 / test_rows:.2f} "
        f"points); R^2 over {len(r2)} continuous probes: max |diff| {r2.max():.1e}; same penalty chosen: "
        f"{same} of {len(reference)}"
    )
    # scikit-learn's default tol stops short on the weakly penalised fits: where the two disagree
    # by more than a point, refit it to convergence (not timed) and compare again
    far = [
        (g, factor)
        for (g, factor), (score, _) in reference.items()
        if kinds[factor] == "categorical" and 100 * abs(ours[factor]["accuracy"][g] - score) > 1.0
    ]
    if far:
        converged = dict(reference)
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for g, factor in far:
                feature, step = groups[g]
                converged[g, factor] = sklearn_probe(
                    features[feature][step].astype(np.float64),
                    targets[factor],
                    "categorical",
                    masks,
                    DEFAULT_PENALTIES,
                    tol=1e-8,
                    max_iter=20000,
                )
        acc, _, same = agreement(converged)
        print(
            f"  {len(far)} probes differed by more than 1 point; with those refitted by scikit-learn to "
            f"convergence (tol 1e-8): max |diff| {acc.max():.2f} points, mean {acc.mean():.3f}, "
            f"same penalty chosen: {same} of {len(converged)}"
        )
    last = [ours[f]["accuracy"][[i for i, (_, s) in enumerate(groups) if s == STEPS - 1]].mean() for f in CLASSES]
    first = [ours[f]["accuracy"][[i for i, (_, s) in enumerate(groups) if s == 0]].mean() for f in CLASSES]
    print(
        "mean test accuracy at the first / last step: "
        + ", ".join(f"{f} {a:.2f}/{b:.2f}" for f, a, b in zip(CLASSES, first, last))
    )
    print(
        f"wall ratio with torch's {torch.get_num_threads()} threads: {sklearn_s / ours_s:.1f}, with 1 thread: "
        f"{sklearn_s / one_s:.1f}; CPU-time ratio, both single-threaded: {sklearn_cpu / one_cpu:.1f}"
    )
    # each side with its faster thread setting (scikit-learn: 1 thread, see the docstring)
    print(f"speedup={sklearn_s / min(ours_s, one_s):.1f}")


if __name__ == "__main__":
    main()

"""Linear probes: splits by trajectory, the batched fits against scikit-learn and closed-form
ridge, chance level on noise, clear errors on bad input, batched = one at a time."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from latent_abstractions.analysis.probes import (
    DEFAULT_PENALTIES,
    fit_probes,
    probe_frame,
    split_train_validation_test,
    split_trajectories,
)
from latent_abstractions.core.errors import InputError


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Small batched fits: a second thread buys nothing, and on a shared 2-core machine each
    parallel op can wait a scheduler tick for a busy core (10x slower tests)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blobs(rng, n, d, k, separation, noise_dims=0):
    """Class-dependent means in a correlated feature space (a random mixing), plus noise dims."""
    labels = np.arange(n) % k
    rng.shuffle(labels)
    x = rng.normal(size=(k, d))[labels] * separation + rng.normal(size=(n, d))
    x = x @ rng.normal(size=(d, d)) / np.sqrt(d) + 3.0  # correlated, offset: standardisation matters
    return np.hstack([x, rng.normal(size=(n, noise_dims))]), labels


# ------------------------------------------------------------------------------ splits


def test_split_is_disjoint_and_sized():
    train, test = split_trajectories(40, 0.25, seed=3)
    assert not np.any(train & test) and np.all(train | test)
    assert test.sum() == 10
    with pytest.raises(ValueError, match="at least 2 trajectories"):
        split_trajectories(1, 0.25, seed=0)


def test_train_validation_test_split_is_by_trajectory():
    split = split_train_validation_test(100, 0.25, 0.2, seed=3)
    parts = np.stack([split.train, split.validation, split.test])
    assert (parts.sum(0) == 1).all()  # disjoint and covering
    assert (split.test == split_trajectories(100, 0.25, seed=3)[1]).all()
    assert split.test.sum() == 25 and split.validation.sum() == 15 and split.train.sum() == 60
    # rows of one trajectory (several steps, any order) all land in the same part
    trajectory = np.random.default_rng(0).permutation(np.repeat(np.arange(100), 4))
    rows = split.rows(trajectory)
    for part, mask in zip(rows, parts):
        assert (part == mask[trajectory]).all()
    with pytest.raises(ValueError, match="at least 3 trajectories"):
        split_train_validation_test(2, 0.25, 0.2, seed=0)


# ------------------------------------------------------------------ against scikit-learn


def sklearn_probe(x, y, masks, grid):
    """The same probe the scikit-learn way, converged: grid on train, validation log-loss, refit."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    train, val, test = masks
    trainval = train | val

    def fit(penalty, rows):
        model = LogisticRegression(C=1.0 / (penalty * rows.sum()), tol=1e-10, max_iter=10_000)
        return make_pipeline(StandardScaler(), model).fit(x[rows], y[rows])

    losses = {p: log_loss(y[val], fit(p, train).predict_proba(x[val]), labels=np.unique(y)) for p in grid}
    best = min(sorted(grid, reverse=True), key=losses.get)  # ties: the larger penalty
    model = fit(best, trainval)
    return float((model.predict(x[test]) == y[test]).mean()), best, log_loss(y[test], model.predict_proba(x[test]))


@pytest.mark.parametrize("k, d, separation", [(2, 12, 0.5), (3, 30, 0.6), (6, 40, 0.8)])
def test_logistic_agrees_with_sklearn(k, d, separation):
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(k)
    n = 300
    x, y = blobs(rng, n, d, k, separation, noise_dims=5)
    split = split_train_validation_test(n, 0.3, 0.25, seed=k)
    masks = split.rows(np.arange(n))
    grid = (1e-3, 1e-2, 1e-1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        accuracy, penalty, loss = sklearn_probe(x, y, masks, grid)
    ours = fit_probes(x[None].astype(np.float32), {"f": y}, {"f": "categorical"}, np.arange(n), split, grid)["f"]
    assert 0.4 < accuracy < 0.99  # neither trivial nor hopeless
    assert abs(ours["accuracy"][0] - accuracy) <= 0.01
    assert ours["penalty"][0] == penalty
    assert ours["log_loss"][0] == pytest.approx(loss, rel=1e-2)


# ---------------------------------------------------------------------------- ridge


def test_ridge_equals_closed_form():
    rng = np.random.default_rng(5)
    n, d = 240, 15
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + 2.0
    y = x @ rng.normal(size=d) + 3.0 * rng.normal(size=n)
    split = split_train_validation_test(n, 0.25, 0.2, seed=1)
    train, val, test = split.rows(np.arange(n))

    def closed_form(rows, penalty):
        mean, std = x[rows].mean(0), x[rows].std(0)
        z = (x[rows] - mean) / std
        w = np.linalg.solve(z.T @ z + penalty * rows.sum() * np.eye(d), z.T @ (y[rows] - y[rows].mean()))
        return lambda other: ((other - mean) / std) @ w + y[rows].mean()

    grid = (1e-3, 1e-1, 10.0)
    val_mse = [((closed_form(train, p)(x[val]) - y[val]) ** 2).mean() for p in grid]
    best = grid[int(np.argmin(val_mse))]
    expected = r_squared(y[test], closed_form(train | val, best)(x[test]))
    ours = fit_probes(x[None], {"y": y}, {"y": "continuous"}, np.arange(n), split, grid, dtype=torch.float64)["y"]
    assert ours["penalty"][0] == best
    assert ours["r2"][0] == pytest.approx(expected, abs=1e-9)
    # float32, the default: close, not exact
    ours32 = fit_probes(x[None], {"y": y}, {"y": "continuous"}, np.arange(n), split, grid)["y"]
    assert ours32["r2"][0] == pytest.approx(expected, abs=1e-4)


def binomial_interval(n: int, p: float, level: float = 0.999) -> tuple[float, float]:
    """Central interval of Binomial(n, p) / n holding at least ``level`` of the mass."""
    pmf = [math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
    cdf = np.cumsum(pmf)
    tail = (1 - level) / 2
    return int(np.searchsorted(cdf, tail)) / n, int(np.searchsorted(cdf, 1 - tail)) / n


def r_squared(target: np.ndarray, prediction: np.ndarray) -> float:
    return 1.0 - float(((target - prediction) ** 2).sum()) / float(((target - target.mean()) ** 2).sum())


def test_chance_level_on_noise_and_signal_found():
    rng = np.random.default_rng(11)
    n, groups = 400, 8
    targets = {f"k{k}": rng.permutation(np.arange(n) % k) for k in (2, 4)}
    targets["x"] = rng.normal(size=n)
    kinds = {"k2": "categorical", "k4": "categorical", "x": "continuous"}
    noise = rng.normal(size=(groups, n, 30)).astype(np.float32)
    split = split_train_validation_test(n, 0.25, 0.2, seed=0)
    n_test = int(split.test.sum())
    result = fit_probes(noise, targets, kinds, np.arange(n), split)
    for k in (2, 4):
        low, high = binomial_interval(n_test, 1 / k)
        accuracy = result[f"k{k}"]["accuracy"]
        assert ((accuracy >= low) & (accuracy <= high)).all(), (k, accuracy, low, high)
        assert abs(accuracy.mean() - 1 / k) < 0.1
        assert (result[f"k{k}"]["log_loss"] > 0.9 * math.log(k)).all()
    assert (result["x"]["r2"] < 0.05).all()
    # the same rows with the factors written into them are found
    signal = noise.copy()
    signal[:, :, 0] += 3 * targets["k2"]
    signal[:, :, 1] += 3 * targets["k4"]
    signal[:, :, 2] += 6 * targets["x"]
    result = fit_probes(signal, targets, kinds, np.arange(n), split)
    assert (result["k2"]["accuracy"] > 0.9).all() and (result["k4"]["balanced_accuracy"] > 0.7).all()
    assert (result["x"]["r2"] > 0.9).all()


# ---------------------------------------------------------------------------- bad input


def one_line_error(call, *words):
    with pytest.raises(InputError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and all(word in message for word in words), message


def test_bad_input_errors():
    rng = np.random.default_rng(0)
    n = 60
    x = rng.normal(size=(2, n, 4))
    split = split_train_validation_test(n, 0.25, 0.2, seed=0)
    ids = np.arange(n)
    good = rng.integers(0, 3, n)
    kinds = {"shape": "categorical"}
    names = ["feature 'state' at step 0", "feature 'act.mid' at step 3"]

    one_line_error(lambda: fit_probes(x, {"shape": np.full(n, 2)}, kinds, ids, split), "shape", "single class")
    absent = good.copy()
    absent[split.test] = 3  # class 3 only among the test trajectories
    one_line_error(lambda: fit_probes(x, {"shape": absent}, kinds, ids, split), "shape", "[3]", "absent from")
    for bad in (np.nan, np.inf):
        broken = x.copy()
        broken[1, 5, 2] = bad
        one_line_error(
            lambda broken=broken: fit_probes(broken, {"shape": good}, kinds, ids, split, names=names),
            "NaN or infinite",
            "'act.mid' at step 3",
        )
        one_line_error(
            lambda broken=broken: fit_probes(list(broken), {"shape": good}, kinds, ids, split, names=names),
            "'act.mid' at step 3",
        )
    one_line_error(lambda: fit_probes(x, {"pos": np.ones(n)}, {"pos": "continuous"}, ids, split), "pos", "constant")
    one_line_error(lambda: fit_probes(x, {"shape": good}, {"shape": "ordinal"}, ids, split), "ordinal")


def test_bad_table_and_split_errors():
    rng = np.random.default_rng(1)
    n = 30
    step, trajectory = np.zeros(n, dtype=int), np.arange(n)
    split = split_train_validation_test(n, 0.25, 0.2, seed=0)
    targets, kinds = {"shape": rng.integers(0, 2, n)}, {"shape": "categorical"}
    features = {"state": rng.normal(size=(n, 3))}
    one_line_error(lambda: probe_frame(step, trajectory[:5], features, targets, kinds, split), "equal length")
    one_line_error(
        lambda: probe_frame(step, trajectory, {"state": features["state"][:5]}, targets, kinds, split),
        "'state' has 5 rows, the table 30",
    )
    one_line_error(lambda: fit_probes(features["state"][None], targets, {}, trajectory, split), "no factors")
    one_line_error(lambda: fit_probes(features["state"][None], targets, kinds, trajectory + 1, split), "[0, 30)")
    one_line_error(
        lambda: fit_probes(features["state"][None], targets, kinds, trajectory, split, (0.0, 1.0)), "positive"
    )
    one_line_error(lambda: split_train_validation_test(2, 0.25, 0.2, seed=0), "at least 3 trajectories")
    one_line_error(lambda: split_train_validation_test(10, 0.25, 1.0, seed=0), "validation_fraction")
    # names that do not match the groups are the caller's mistake, not bad input
    with pytest.raises(ValueError, match="1 names for 2 feature groups") as caught:
        fit_probes([features["state"]] * 2, targets, kinds, trajectory, split, names=["a"])
    assert not isinstance(caught.value, InputError)


def test_ascent_direction_falls_back_to_the_preconditioned_gradient(monkeypatch):
    """Where rounding makes the L-BFGS direction point uphill, the preconditioned gradient is
    taken instead; the curvature history's inner products (kept up to date from the
    direction's coefficients, not recomputed) stay those of its pairs, and the same optimum
    is reached."""
    from latent_abstractions.analysis.probes import lbfgs
    from latent_abstractions.analysis.probes.softmax import Softmaxes

    rng = np.random.default_rng(4)
    m, q = 80, 6
    z = torch.as_tensor(rng.normal(size=(2, m, q)))
    z[:, :, -1] = 1.0
    codes = torch.as_tensor(np.stack([rng.integers(0, k, m) for k in (2, 3)]))
    soft = Softmaxes([2, 3], codes, torch.float64)
    lam = torch.full((2, 2), 1e-2, dtype=torch.float64)
    reference, _ = lbfgs.fit_softmax(z, soft, lam, tol=1e-10, max_iter=500)
    direction, push, flipped, pushed = lbfgs.LbfgsHistory.direction, lbfgs.LbfgsHistory.push, [], []

    def uphill_at_first(history, grad):
        d = direction(history, grad)
        if len(flipped) < 4:
            flipped.append(True)
            return -d
        return d

    def checked_push(history, *args):
        push(history, *args)
        per_problem = history.member  # (C, F): sums each problem's weight columns
        sy = torch.einsum("gcip,gcjp,cf->gfij", history.s, history.y, per_problem)
        ypy = torch.einsum("gcip,gcjp,cf->gfij", history.y, history.precond[:, :, None] * history.y, per_problem)
        assert torch.allclose(history.sy, sy, rtol=1e-8, atol=1e-12)
        assert torch.allclose(history.ypy, ypy, rtol=1e-8, atol=1e-12)
        pushed.append(True)

    monkeypatch.setattr(lbfgs.LbfgsHistory, "direction", uphill_at_first)
    monkeypatch.setattr(lbfgs.LbfgsHistory, "push", checked_push)
    w, _ = lbfgs.fit_softmax(z, soft, lam, tol=1e-10, max_iter=500)
    assert len(flipped) == 4 and len(pushed) > 4
    assert torch.allclose(w, reference, atol=1e-7)


# ------------------------------------------------------------------ batched = one at a time


def test_batched_equals_one_at_a_time():
    rng = np.random.default_rng(3)
    n = 200
    targets = {"b": rng.integers(0, 2, n), "c": rng.integers(0, 5, n), "x": rng.normal(size=n)}
    kinds = {"b": "categorical", "c": "categorical", "x": "continuous"}
    strengths = np.linspace(0, 1.5, 4)[:, None, None]
    signal = np.stack([targets["b"], targets["c"], targets["x"]], 1)
    features = [rng.normal(size=(n, 10 + 3 * (g % 2))) for g in range(4)]
    for g, f in enumerate(features):
        f[:, :3] += strengths[g, 0] * signal
    split = split_train_validation_test(n, 0.25, 0.2, seed=4)
    options = dict(dtype=torch.float64, tol=1e-8)
    batched = fit_probes(features, targets, kinds, np.arange(n), split, **options)
    for g, f in enumerate(features):
        for factor, kind in kinds.items():
            alone = fit_probes([f], {factor: targets[factor]}, {factor: kind}, np.arange(n), split, **options)[factor]
            for metric, value in alone.items():
                assert batched[factor][metric][g] == pytest.approx(value[0], rel=1e-6, abs=1e-9), (g, factor, metric)


def test_probe_frame_rows():
    rng = np.random.default_rng(2)
    n_traj, steps = 120, 3
    trajectory = np.tile(np.arange(n_traj), steps)
    step = np.repeat(np.arange(steps) * 10, n_traj)
    order = rng.permutation(len(step))  # table rows in any order
    trajectory, step = trajectory[order], step[order]
    labels, value = rng.integers(0, 3, n_traj), rng.normal(size=n_traj)
    features = {"state": rng.normal(size=(len(step), 6)), "act.mid": rng.normal(size=(len(step), 9))}
    features["state"][:, 0] += 2 * labels[trajectory] * step / 10
    targets = {"shape": labels[trajectory], "pos": value[trajectory]}
    kinds = {"shape": "categorical", "pos": "continuous"}
    split = split_train_validation_test(n_traj, 0.25, 0.2, seed=0)
    frame = probe_frame(step, trajectory, features, targets, kinds, split)
    assert list(frame.columns) == ["step", "feature", "factor", "metric", "score", "penalty"]
    assert len(frame) == steps * 2 * 4  # (3 categorical metrics + r2) per (step, feature)
    assert set(frame["penalty"]) <= set(DEFAULT_PENALTIES)
    assert frame["score"].notna().all()
    # the same numbers as a direct call on step 20's rows, sorted by trajectory
    rows = np.flatnonzero(step == 20)
    rows = rows[np.argsort(trajectory[rows])]
    direct = fit_probes(
        [features["state"][rows]], {"shape": labels}, {"shape": "categorical"}, np.arange(n_traj), split
    )["shape"]
    picked = frame.query("step == 20 and feature == 'state' and factor == 'shape'").set_index("metric")["score"]
    assert picked["accuracy"] == pytest.approx(direct["accuracy"][0])
    assert picked["log_loss"] == pytest.approx(direct["log_loss"][0], rel=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(7)
    n = 300
    x, y = blobs(rng, n, 20, 4, 0.7)
    stack = np.stack([x, x[:, ::-1].copy()]).astype(np.float32)
    split = split_train_validation_test(n, 0.25, 0.2, seed=0)
    cpu = fit_probes(stack, {"f": y}, {"f": "categorical"}, np.arange(n), split)["f"]
    gpu = fit_probes(torch.as_tensor(stack, device="cuda"), {"f": y}, {"f": "categorical"}, np.arange(n), split)["f"]
    assert np.abs(cpu["accuracy"] - gpu["accuracy"]).max() <= 0.01
    assert (cpu["penalty"] == gpu["penalty"]).all()
    assert gpu["log_loss"] == pytest.approx(cpu["log_loss"], rel=1e-3)

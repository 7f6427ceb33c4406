"""Accuracy of the score-difference MI estimators (information.mutual_information) against
closed forms, and the throughput of the exact finite-mixture posterior.

Run from the repository root, no arguments (a few minutes on a 2-core CPU):

    .venv/bin/python benchmarks/mi_accuracy.py

1. Gaussian tasks (oracles.gaussian_suite): jointly Gaussian factors Y in R^K and
   X_0 = A Y + noise, so every conditional score and I(Y_k; X_t) are closed-form. The
   estimators run with those exact scores on a VP and a VE SDE; the table gives, per
   factor, the closed-form I(Y_k; X_{t_end}), each form's estimate +- its standard error,
   its relative error at t_end and its largest error over the whole curve (nats).
2. The smoke bumps data set (16 x 16, 144 images, two factors with 12 values each),
   driven by the exact epsilon of the finite mixture: the largest gap to the exact
   I(Y_k; X_t) over the curve, per form.
3. Exact-posterior throughput: images x draws per second for p(Y_k | X_t) over a finite
   image set (synthetic uint8 3 x 64 x 64 images by default, or ``--dataset FOLDER`` for a
   saved data set, e.g. the 480,000-image shapes set on a GPU).

The last line is ``max_rel_error=<number>``: the worst relative error at t_end over the
Gaussian tasks, factors, SDEs and both forms.

``--bmi`` adds an external check with the ``benchmark-mi`` package (Czyz et al.): its
closed-form MI of each task's (X_{t_end}, Y_k) Gaussian must equal ours. The package pins
numpy < 2 and an old jax, so it is installed into its own virtual environment under
.bench-venvs/ (created on first use) and never into the project's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from latent_abstractions.analysis import information
from latent_abstractions.analysis.ground_truth import FiniteMixture
from latent_abstractions.analysis.oracles import ExactEpsilon, GaussianEpsilon, gaussian_suite
from latent_abstractions.datasets import base, bumps
from latent_abstractions.diffusion.sde import SDE, VESDE, VPSDE

T_END = 1e-3
SDES = {"vp": VPSDE(), "ve": VESDE(sigma_min=0.01, sigma_max=50.0)}
BMI_VENV = Path(".bench-venvs/bmi")
# benchmark-mi 0.1.3 imports equinox 0.10, which breaks on jax >= 0.4.34.
BMI_REQUIREMENTS = ["benchmark-mi==0.1.3", "jax<0.4.31", "jaxlib<0.4.31"]
BMI_SCRIPT = """
import json, sys
import numpy as np
from bmi.samplers import SplitMultinormal
tasks = json.load(sys.stdin)
print(json.dumps([SplitMultinormal(dim_x=t["dim_x"], dim_y=1, covariance=np.asarray(t["covariance"]))
                  .mutual_information() for t in tasks]))
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=64, help="log-SNR grid points (default 64)")
    parser.add_argument("--samples", type=int, default=4096, help="draws per grid point (default 4096)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="where the exact posterior runs in the throughput measurement",
    )
    parser.add_argument("--dataset", type=Path, help="a saved data set folder for the throughput measurement")
    parser.add_argument(
        "--throughput-images",
        type=int,
        default=20_000,
        help="synthetic images for the throughput measurement (default 20,000)",
    )
    parser.add_argument("--throughput-draws", type=int, default=256, help="draws per pass (default 256)")
    parser.add_argument("--bmi", action="store_true", help="also check the closed forms against benchmark-mi")
    return parser.parse_args()


def gaussian_rows(args: argparse.Namespace) -> list[dict]:
    rows = []
    for task in gaussian_suite():
        for sde_name, sde in SDES.items():
            result = information.mutual_information(
                GaussianEpsilon(sde, task), sde, task, T_END, args.points, args.samples, args.seed, batch_size=1 << 16
            )
            truth = result.mean["exact"]
            for k in range(task.n_factors):
                row = {"task": task.name, "sde": sde_name, "factor": k, "exact": truth[-1, k]}
                for form in information.SCORE_FORMS:
                    estimate = result.mean[form][:, k]
                    row[form] = (estimate[-1], result.stderr[form][-1, k])
                    row[f"{form}_rel"] = abs(estimate[-1] - truth[-1, k]) / truth[-1, k]
                    row[f"{form}_curve"] = np.abs(estimate - truth[:, k]).max()
                rows.append(row)
    return rows


def print_gaussian_table(rows: list[dict]) -> None:
    print(
        f"Gaussian tasks: I(Y_k; X_t) at t_end = {T_END}, nats (estimate +- standard error; "
        "relative error at t_end; largest error over the curve)"
    )
    print(
        f"{'task':38s} {'sde':3s} {'k':>1s} {'exact':>6s}  {'orthogonal':>15s} {'rel':>6s} {'curve':>6s}  "
        f"{'mmse_difference':>15s} {'rel':>6s} {'curve':>6s}"
    )
    for row in rows:
        cells = [f"{row['task']:38s} {row['sde']:3s} {row['factor']:1d} {row['exact']:6.3f}"]
        for form in information.SCORE_FORMS:
            mean, error = row[form]
            cells.append(f"{mean:7.3f} +- {error:5.3f} {row[f'{form}_rel']:6.2%} {row[f'{form}_curve']:6.3f}")
        print("  ".join(cells))


def bumps_gaps(args: argparse.Namespace) -> None:
    data = bumps.make(height=16, width=16, sigma=1.0, spacing_x=1.0, spacing_y=1.0, margin=2.0)
    values, labels = data.factors[["x", "y"]].to_numpy(), data.factors[["x_bin", "y_bin"]].to_numpy()
    sde = SDES["vp"]
    result = information.mutual_information(
        ExactEpsilon(sde, data.images, values),
        sde,
        FiniteMixture(data.images, labels, values),
        T_END,
        args.points,
        args.samples,
        args.seed,
        batch_size=4096,
    )
    print(
        f"\nBumps 16 x 16 (144 images, H(Y_k) = {result.entropy[0]:.3f} nats), exact epsilon, VP, "
        f"{args.points} points x {args.samples} draws:"
    )
    for form in information.SCORE_FORMS:
        gap = np.abs(result.mean[form] - result.mean["exact"])
        error = np.hypot(result.stderr[form], result.stderr["exact"]).max()
        print(f"  {form:16s} largest gap to the exact curve {gap.max():.4f} nats (standard error up to {error:.4f})")


def throughput(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    if args.dataset:
        dataset = base.load(args.dataset)
        mixture = FiniteMixture(dataset.images, dataset.bins(), rows=dataset.train_rows())
        what = f"{args.dataset} train rows"
    else:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (args.throughput_images, 3, 64, 64), dtype=np.uint8)
        labels = np.stack([np.arange(args.throughput_images) % v for v in (10, 10, 10, 8, 4, 15)], axis=1)
        mixture = FiniteMixture(images, labels)
        what = "synthetic uint8"
    if device.type == "cuda":
        mixture.to(device)
    draws = args.throughput_draws
    x = mixture.gather(np.arange(draws) % len(mixture)).to(device)
    alpha, sigma = torch.full((draws,), 0.9, dtype=torch.float64), torch.full((draws,), 0.4, dtype=torch.float64)
    mixture.factor_posteriors(x, alpha, sigma)  # warm-up
    passes, started = 0, time.perf_counter()
    while passes < 3 or time.perf_counter() - started < 5.0:
        mixture.factor_posteriors(x, alpha, sigma)
        passes += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    rate = passes * draws * len(mixture) / (time.perf_counter() - started)
    shape = "x".join(map(str, mixture.image_shape))
    print(
        f"\nexact_mi_throughput={rate:.3e} images*draws/s ({len(mixture)} {what} images of {shape}, "
        f"{draws} draws per pass, {device}, {torch.get_num_threads()} threads)"
    )


def bmi_check(sde_names: dict[str, SDE]) -> None:
    """Our closed-form I(Y_k; X_{t_end}) against benchmark-mi's for the same Gaussian."""
    python = BMI_VENV / "bin" / "python"
    if not python.exists():
        print(f"\ncreating {BMI_VENV} with {' '.join(BMI_REQUIREMENTS)} (once) ...")
        subprocess.run([sys.executable, "-m", "venv", str(BMI_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *BMI_REQUIREMENTS], check=True)
    tasks, ours = [], []
    for task in gaussian_suite():
        for sde in sde_names.values():
            for k in range(task.n_factors):
                covariance = task.joint_covariance(sde, T_END, k)
                tasks.append({"dim_x": len(covariance) - 1, "covariance": covariance.tolist()})
                ours.append(task.mutual_information(sde, T_END)[k])
    run = subprocess.run([str(python), "-c", BMI_SCRIPT], input=json.dumps(tasks), capture_output=True, text=True)
    if run.returncode:
        sys.exit(f"benchmark-mi failed in {BMI_VENV}:\n{run.stderr[-2000:]}")
    theirs = np.asarray(json.loads(run.stdout))
    print(
        f"\nbenchmark-mi closed forms: largest difference to ours {np.abs(theirs - np.asarray(ours)).max():.2e} nats "
        f"over {len(ours)} (task, sde, factor)"
    )


def main() -> None:
    args = parse_args()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: more threads only add overhead
    started = time.perf_counter()
    rows = gaussian_rows(args)
    print_gaussian_table(rows)
    bumps_gaps(args)
    if args.bmi:
        bmi_check(SDES)
    torch.set_num_threads(threads)  # large float64 products: every core
    throughput(args)
    worst = max(row[f"{form}_rel"] for row in rows for form in information.SCORE_FORMS)
    print(f"({time.perf_counter() - started:.0f} s)")
    print(f"max_rel_error={worst:.4f}")


if __name__ == "__main__":
    main()

"""The errors a step reports in one line (cli.one_line_errors), raised where the problem
is known. A leaf module: it imports nothing of the package, so any module may raise them."""

from __future__ import annotations


class InputError(ValueError):
    """An input file (dataset, checkpoint, table) is missing or malformed."""


class StoreError(InputError):
    """A store is missing, incomplete, corrupted, or not the one asked for (one line)."""


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite: the run stops at that step, and nothing
    made after it is written."""

    def __init__(
        self, what: str, step: int, loss: float, last_finite: tuple[int, float] | None, quantity: str = "loss"
    ):
        before = (
            f"last finite loss {last_finite[1]:.6g} at step {last_finite[0]}"
            if last_finite
            else "no finite loss before it"
        )
        super().__init__(
            f"{what} diverged at step {step}: {quantity} {loss} ({before}); "
            "no weights or checkpoints from this step on were written"
        )
        self.step, self.loss, self.last_finite = step, loss, last_finite

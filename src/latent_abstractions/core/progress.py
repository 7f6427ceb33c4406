"""Progress of a long step: a tqdm bar on the terminal and, in the step's log file, one
line per tenth of the work (the bar's \\r-updates would be noise there).

    with Progress(total=len(batches), desc="sample", unit="batch") as progress:
        for batch in batches:
            ...
            progress.update(1, loss=f"{loss:.4f}")   # keywords: shown on the bar and in the lines

The lines go to the logger ``progress``, which the step's terminal handler leaves out
(cli.setup_logging): the terminal has the bar.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

LOGGER = "progress"
TENTHS = 10
log = logging.getLogger(LOGGER)
Item = TypeVar("Item")


class Progress:
    """Counts ``total`` units of work from ``initial``; logs at each tenth crossed."""

    def __init__(self, total: int, desc: str, unit: str = "it", initial: int = 0, disable: bool = False) -> None:
        self.total, self.desc, self.unit, self.done = max(int(total), 0), desc, unit, int(initial)
        self.disable = disable
        self.started = time.perf_counter()
        self.logged_tenths = self._tenths()
        self.postfix: dict[str, str] = {}
        self.bar = tqdm(
            total=self.total, desc=desc, unit=unit, initial=initial, mininterval=2.0, disable=disable, file=sys.stderr
        )

    def _tenths(self) -> int:
        return TENTHS * self.done // self.total if self.total else 0

    def update(self, n: int = 1, **postfix: object) -> None:
        self.done += n
        self.bar.update(n)
        if postfix:
            self.postfix = {key: str(value) for key, value in postfix.items()}
            self.bar.set_postfix(self.postfix, refresh=False)
        if not self.disable and self._tenths() > self.logged_tenths:
            self.logged_tenths = self._tenths()
            self._log_line()

    def _log_line(self) -> None:
        elapsed = time.perf_counter() - self.started
        extra = "".join(f", {key} {value}" for key, value in self.postfix.items())
        log.info(
            "%s: %d%% (%d/%d %s, %.0f s)%s",
            self.desc,
            100 * self.done // self.total,
            self.done,
            self.total,
            self.unit,
            elapsed,
            extra,
        )

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def progress(items: Iterable[Item], desc: str, unit: str = "it", total: int | None = None) -> Iterator[Item]:
    """``items``, counted as they are taken (``total``: their number, where len() cannot tell)."""
    count = total if total is not None else len(items)  # type: ignore[arg-type]
    with Progress(count, desc, unit) as bar:
        for item in items:
            yield item
            bar.update(1)

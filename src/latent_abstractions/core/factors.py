"""The description of a generating factor, shared by data sets, networks and analyses.

A leaf module: it imports nothing from the package, so that a network or a table
format can know what a factor is without importing the data sets.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Factor:
    """One generating factor: its name, kind and the values it takes."""

    name: str
    kind: str  # "continuous" or "categorical"
    values: tuple[float, ...]  # sorted values present in the dataset

    @classmethod
    def from_dict(cls, entry: dict) -> Factor:
        """From its JSON form (as stored in Parquet metadata and checkpoint headers)."""
        return cls(name=entry["name"], kind=entry["kind"], values=tuple(entry["values"]))

    def to_dict(self) -> dict:
        """The JSON form that ``from_dict`` reads back."""
        return {"name": self.name, "kind": self.kind, "values": list(self.values)}

    @property
    def cardinality(self) -> int:
        return len(self.values)

    @property
    def low(self) -> float:
        return float(self.values[0])

    @property
    def high(self) -> float:
        return float(self.values[-1])

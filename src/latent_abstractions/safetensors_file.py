"""Writing safetensors files byte for byte reproducibly.

safetensors keeps the header's ``__metadata__`` in a hash map, so two saves of the
same tensors and metadata can list the keys in different orders: equal content,
different bytes, and DVC would see a change where there is none. Here the header
is rewritten with sorted keys (offsets are relative to the data, so they stay
valid) and padded with spaces to 8 bytes, as the format allows.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch
from safetensors.torch import save

from .artifacts import atomic_path

HEADER_ALIGNMENT = 8


def canonical_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    raw = save(tensors, metadata=metadata)
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % HEADER_ALIGNMENT)
    return struct.pack("<Q", len(text)) + text + raw[8 + length:]


def write(tensors: dict[str, torch.Tensor], path: Path | str, metadata: dict[str, str]) -> None:
    """Save ``tensors`` with string ``metadata`` atomically and reproducibly."""
    data = canonical_bytes(tensors, metadata)
    with atomic_path(path) as temporary:
        Path(temporary).write_bytes(data)

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
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save

from .artifacts import atomic_path, canonical_json
from .read_audit import announce

HEADER_ALIGNMENT = 8


def canonical_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    raw = save(tensors, metadata=metadata)
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % HEADER_ALIGNMENT)
    return struct.pack("<Q", len(text)) + text + raw[8 + length :]


def write_checkpoint(tensors: dict[str, torch.Tensor], architecture: dict, provenance: dict, path: Path | str) -> None:
    """Weights with the architecture and provenance as sorted JSON in the header."""
    tensors = {name: value.detach().cpu().contiguous() for name, value in tensors.items()}
    write(tensors, path, {"architecture": canonical_json(architecture), "provenance": canonical_json(provenance)})


def read_checkpoint_header(path: Path | str, error: type[Exception], what: str = "checkpoint") -> dict:
    """The decoded header of a checkpoint written by :func:`write_checkpoint`, or ``error``
    with one line: missing, unreadable, or without an architecture."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    announce(path)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise error(f"{path}: not a readable safetensors checkpoint ({exc})") from None
    if "architecture" not in metadata:
        raise error(f"{path}: no architecture in the checkpoint header")
    decoded = {}
    for key, value in metadata.items():
        try:
            decoded[key] = json.loads(value)
        except json.JSONDecodeError:
            raise error(f"{path}: the header's {key} is not JSON") from None
    return decoded


def check_architecture_keys(
    path: Path | str, architecture: dict, keys: tuple, error: type[Exception], remedy: str
) -> None:
    """``error`` with one line naming the keys a builder reads that the header's architecture lacks."""
    missing = [key for key in keys if key not in architecture]
    if missing:
        raise error(f"{path}: the header's architecture lacks {', '.join(missing)}; {remedy}")


def load_weights(model: torch.nn.Module, path: Path | str, error: type[Exception]) -> None:
    """Load the checkpoint's weights into ``model`` strictly, or ``error`` with one line."""
    announce(path)
    try:
        model.load_state_dict(load_file(str(path)), strict=True)
    except (SafetensorError, RuntimeError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise error(f"{path}: weights do not fit the architecture in its header ({first_line})") from None


def write(tensors: dict[str, torch.Tensor], path: Path | str, metadata: dict[str, str]) -> None:
    """Save ``tensors`` with string ``metadata`` atomically and reproducibly."""
    data = canonical_bytes(tensors, metadata)
    with atomic_path(path) as temporary:
        Path(temporary).write_bytes(data)

"""Some rows of a stored image array, read in file order and mapped to [-1, 1].

``images`` (N, ...) stay as stored: uint8, or float in [-1, 1]; a NumPy array (a memory
map larger than memory is fine) or a tensor. ``rows`` are the rows taken, in their order
(default: all); ``positions`` index into them. A row is read in its read form: uint8
stays uint8 (one byte a pixel wherever it is kept), floats become ``float_dtype`` (default:
as stored). ``keep_on(device)`` keeps the read rows on a device, from where every later
read comes; otherwise each read goes to the stored array, its rows sorted first.
``gather`` and ``span`` return rows in the model range (pixels.tensor_model_range), on a
device and in a float dtype of the caller's choice.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .pixels import stored_as_uint8, tensor_model_range

ROWS_PER_READ = 16384  # rows copied to a device at a time: never the whole set in host memory at once


class ImageRows:
    """The images of ``rows`` of ``images``, read on demand or kept on a device."""

    def __init__(
        self,
        images: np.ndarray | torch.Tensor,
        rows: np.ndarray | None = None,
        float_dtype: torch.dtype | None = None,
    ):
        self.images, self.float_dtype = images, float_dtype
        self.rows = np.arange(len(images)) if rows is None else np.asarray(rows, dtype=np.int64)
        self.cache: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    @property
    def read_bytes(self) -> int:
        """The size of all the rows in their read form."""
        itemsize = 1 if stored_as_uint8(self.images) else _itemsize(self.float_dtype or self.images.dtype)
        return len(self.rows) * math.prod(self.image_shape) * itemsize

    def keep_on(
        self, device: torch.device | str, max_bytes: int | None = None, rows_per_read: int | None = None
    ) -> ImageRows:
        """Keep the rows in their read form on ``device`` (only when they take at most
        ``max_bytes``, if given), read ``rows_per_read`` at a time (default: all at once)."""
        if max_bytes is not None and self.read_bytes > max_bytes:
            return self
        step = rows_per_read or max(1, len(self.rows))
        cache = self._read(self.rows[:0]).to(device)  # no rows: an empty cache of the read dtype
        for start in range(0, len(self.rows), step):
            part = self._read(self.rows[start : start + step])
            if start == 0:
                cache = torch.empty((len(self.rows),) + self.image_shape, dtype=part.dtype, device=device)
            cache[start : start + len(part)] = part.to(device)
        self.cache = cache
        return self

    def read(self, positions: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The rows at ``positions`` in their read form: from the device cache when there
        is one (on its device), else from storage (on the CPU)."""
        if self.cache is not None:
            return self.cache[torch.as_tensor(positions, device=self.cache.device)]
        return self._read(self.rows[np.asarray(positions)])

    def read_span(self, start: int, stop: int) -> torch.Tensor:
        """The rows ``start:stop`` in their read form, as ``read``."""
        if self.cache is not None:
            return self.cache[start:stop]
        return self._read(self.rows[start:stop])

    def gather(
        self, positions: np.ndarray | torch.Tensor, device: torch.device | str, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """The rows at ``positions`` in [-1, 1], as ``dtype`` on ``device`` (mapped there)."""
        return tensor_model_range(self.read(positions).to(device), dtype)

    def span(
        self, start: int, stop: int, device: torch.device | str, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """The rows ``start:stop`` in [-1, 1], as ``dtype`` on ``device`` (mapped there)."""
        return tensor_model_range(self.read_span(start, stop).to(device), dtype)

    def _read(self, index: np.ndarray) -> torch.Tensor:
        """The stored rows ``index`` in their read form, on the CPU."""
        if isinstance(self.images, torch.Tensor):
            return self._read_form(self.images[torch.from_numpy(index)])
        order = np.argsort(index, kind="stable")  # memory maps read fastest in file order
        stored = np.asarray(self.images[index[order]])
        out = np.empty_like(stored)
        out[order] = stored
        return self._read_form(torch.from_numpy(out))

    def _read_form(self, chunk: torch.Tensor) -> torch.Tensor:
        if chunk.dtype == torch.uint8 or self.float_dtype is None:
            return chunk
        return chunk.to(self.float_dtype)


def _itemsize(dtype: np.dtype | torch.dtype) -> int:
    return dtype.itemsize if isinstance(dtype, torch.dtype) else np.dtype(dtype).itemsize


def half_free_memory(device: torch.device | str) -> int | None:
    """What a data set kept on ``device`` may take: half its free memory on CUDA (the rest
    is the network's), None (no bound) elsewhere."""
    device = torch.device(device)
    return torch.cuda.mem_get_info(device)[0] // 2 if device.type == "cuda" else None

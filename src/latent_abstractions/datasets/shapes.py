"""A procedural, Shapes3D-like scene (Burgess & Kim 2018): a floor, two back walls
meeting in a corner, and one object standing in the middle, seen by a camera.

The method in full: docs/data.md, "Procedural Shapes3D-like scenes".
"""

from __future__ import annotations

import colorsys
import enum
import functools
import itertools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..core.errors import InputError
from ..core.factors import Factor
from ..core.progress import Progress
from .base import Dataset, save_with_split
from .registry import EXACT_ORDER, DatasetKind

FACTOR_NAMES: tuple[str, ...] = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
_HUES = tuple(i / 10 for i in range(10))
FACTOR_VALUES: dict[str, tuple[float, ...]] = {
    "floor_hue": _HUES,
    "wall_hue": _HUES,
    "object_hue": _HUES,
    "scale": tuple(float(v) for v in np.linspace(0.75, 1.25, 8)),
    "shape": (0.0, 1.0, 2.0, 3.0),  # cube, cylinder, sphere, capsule
    "orientation": tuple(float(v) for v in np.linspace(-30.0, 30.0, 15)),  # degrees
}


class Shape(enum.IntEnum):
    """The object's shape: the value of the ``shape`` factor (as in Shapes3D)."""

    CUBE = 0
    CYLINDER = 1
    SPHERE = 2
    CAPSULE = 3


COLUMN = {name: index for index, name in enumerate(FACTOR_NAMES)}  # a factor's column in an index table
MIN_SIZE = 8
SUPERSAMPLE = 3  # rays per pixel along each axis (anti-aliasing)
_CARDINALITIES = tuple(len(FACTOR_VALUES[name]) for name in FACTOR_NAMES)

# Scene (world units; the object's nominal height is about 1 at scale 1).
_CAMERA_DISTANCE = 5.6  # horizontal distance from the vertical axis through the object
_CAMERA_HEIGHT = 2.6
_CAMERA_TARGET = np.array([0.0, 0.3, 0.0])  # inside every shape at every scale: the centre pixel is object
_FIELD_OF_VIEW = np.radians(34.0)
_CORNER = np.array([0.0, 0.0, -3.0])  # where the two back walls meet, behind the object
_WALL_NORMALS = np.array([[1.0, 0.0, 1.0], [-1.0, 0.0, 1.0]]) / np.sqrt(2.0)  # left, right wall
_LIGHT = np.array([-1.6, 5.0, 1.2])  # point light, fixed in the world
_AMBIENT = 0.3
_DIFFUSE = 0.7
_LIGHT_REFERENCE_DISTANCE = 5.0  # falloff (d_ref / d)^2, clipped at 1
_EPS = 1e-6
_BLOCK = 16  # images coloured at once inside render (keeps the temporaries in cache)
_MAKE_CHUNK = 2000  # images rendered at once by make


def _normalise(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _camera_rays(orientation_deg: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Camera position (3,) and unit ray directions (size*ss, size*ss, 3), rows top-down."""
    theta = np.radians(orientation_deg)
    eye = np.array([_CAMERA_DISTANCE * np.sin(theta), _CAMERA_HEIGHT, _CAMERA_DISTANCE * np.cos(theta)])
    forward = _normalise(_CAMERA_TARGET - eye)
    right = _normalise(np.cross(forward, [0.0, 1.0, 0.0]))
    up = np.cross(right, forward)
    samples = size * SUPERSAMPLE
    ndc = (np.arange(samples) + 0.5) / samples * 2.0 - 1.0  # sample centres in [-1, 1]
    half = np.tan(_FIELD_OF_VIEW / 2.0)
    x = ndc[None, :, None] * half
    y = -ndc[:, None, None] * half
    directions = forward + x * right + y * up
    return eye, _normalise(directions)


def _dims(shape: int, scale: float) -> tuple[float, float]:
    """(half-width or radius, height) of a shape at a scale."""
    if shape in (Shape.CUBE, Shape.CYLINDER):  # half-width, radius
        return 0.45 * scale, 0.9 * scale
    if shape == Shape.SPHERE:
        return 0.5 * scale, 1.0 * scale
    return 0.34 * scale, 1.25 * scale  # capsule: radius, overall height


def _sphere_hit(o, d, centre_y, radius):
    """Entering distance (inf on a miss) of rays o + t d into a sphere at (0, centre_y, 0)."""
    oc = o - np.array([0.0, centre_y, 0.0])
    b = np.sum(oc * d, axis=-1)
    c = np.sum(oc * oc, axis=-1) - radius**2
    disc = b * b - c
    t = -b - np.sqrt(np.maximum(disc, 0.0))
    return np.where((disc >= 0) & (t > _EPS), t, np.inf)


def _side_hit(o, d, radius, y_low, y_high):
    """Entering distance into the side of a vertical cylinder about the y axis, y in [y_low, y_high]."""
    a = d[..., 0] ** 2 + d[..., 2] ** 2
    b = o[..., 0] * d[..., 0] + o[..., 2] * d[..., 2]
    c = o[..., 0] ** 2 + o[..., 2] ** 2 - radius**2
    disc = b * b - a * c
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (-b - np.sqrt(np.maximum(disc, 0.0))) / a
        y = o[..., 1] + t * d[..., 1]
        ok = (disc >= 0) & (a > 1e-12) & (t > _EPS) & (y >= y_low) & (y <= y_high)
    return np.where(ok, t, np.inf)


def _object_hit(shape: int, scale: float, o: np.ndarray, d: np.ndarray, normals: bool = True):
    """Entering distance (inf on a miss) and, if asked, unit normals of rays into the object."""
    radius, height = _dims(shape, scale)
    o = np.broadcast_to(o, d.shape)
    if shape == Shape.CUBE:  # axis-aligned [-r, r] x [0, h] x [-r, r] (slabs)
        low = np.array([-radius, 0.0, -radius])
        high = np.array([radius, height, radius])
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / np.where(np.abs(d) < 1e-12, 1e-12, d)
        t1, t2 = (low - o) * inv, (high - o) * inv
        near, far = np.minimum(t1, t2), np.maximum(t1, t2)
        t_near, t_far = near.max(axis=-1), far.min(axis=-1)
        t = np.where((t_near <= t_far) & (t_near > _EPS), t_near, np.inf)
        if not normals:
            return t, None
        axis = near.argmax(axis=-1)
        n = np.zeros_like(d)
        chosen = np.take_along_axis(d, axis[..., None], axis=-1)[..., 0]
        np.put_along_axis(n, axis[..., None], -np.sign(chosen)[..., None], axis=-1)
        return t, n
    if shape == Shape.CYLINDER:  # side and top cap (the bottom cap sits on the floor)
        t_side = _side_hit(o, d, radius, 0.0, height)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_top = (height - o[..., 1]) / d[..., 1]
            px, pz = o[..., 0] + t_top * d[..., 0], o[..., 2] + t_top * d[..., 2]
            t_top = np.where((t_top > _EPS) & (px * px + pz * pz <= radius**2), t_top, np.inf)
        t = np.minimum(t_side, t_top)
        if not normals:
            return t, None
        p = o + np.where(np.isfinite(t), t, 0.0)[..., None] * d
        side = np.stack([p[..., 0], np.zeros_like(t), p[..., 2]], axis=-1) / radius
        n = np.where((t_top <= t_side)[..., None], np.array([0.0, 1.0, 0.0]), side)
        return t, n
    if shape == Shape.SPHERE:  # resting on the floor
        t = _sphere_hit(o, d, radius, radius)
        if not normals:
            return t, None
        p = o + np.where(np.isfinite(t), t, 0.0)[..., None] * d
        return t, (p - np.array([0.0, radius, 0.0])) / radius
    # capsule: a vertical segment from y = r to y = h - r, swept by a ball of radius r
    low, high = radius, height - radius
    t = np.minimum(
        np.minimum(_sphere_hit(o, d, low, radius), _sphere_hit(o, d, high, radius)), _side_hit(o, d, radius, low, high)
    )
    if not normals:
        return t, None
    p = o + np.where(np.isfinite(t), t, 0.0)[..., None] * d
    axis_point = np.stack([np.zeros_like(t), np.clip(p[..., 1], low, high), np.zeros_like(t)], axis=-1)
    return t, (p - axis_point) / radius


def _lambert(points: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Diffuse term (before shadows), unit direction and distance to the light."""
    to_light = _LIGHT - points
    distance = np.linalg.norm(to_light, axis=-1)
    direction = to_light / distance[..., None]
    cosine = np.maximum(np.sum(normals * direction, axis=-1), 0.0)
    falloff = np.minimum((_LIGHT_REFERENCE_DISTANCE / distance) ** 2, 1.0)
    return _DIFFUSE * cosine * falloff, direction, distance


def _pool(samples: np.ndarray, size: int) -> np.ndarray:
    """Average the SUPERSAMPLE x SUPERSAMPLE samples of each pixel: (size*ss * size*ss,) -> (size*size,)."""
    return samples.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3)).reshape(-1)


def _bounding_sphere() -> tuple[float, float]:
    """(centre height, radius) of a sphere about the y axis enclosing every shape at every scale."""
    centre, radius = 0.5 * max(_dims(s, max(FACTOR_VALUES["scale"]))[1] for s in range(4)), 0.0
    for shape, scale in itertools.product(Shape, FACTOR_VALUES["scale"]):
        r, h = _dims(shape, scale)
        horizontal = r * np.sqrt(2.0)  # the cube's corners; the round shapes are inside
        radius = max(radius, np.hypot(horizontal, centre), np.hypot(horizontal, h - centre))
    return centre, 1.01 * radius


def _crosses_sphere(o: np.ndarray, d: np.ndarray, centre_y: float, radius: float) -> np.ndarray:
    """Whether rays o + t d, t > 0, pass within ``radius`` of (0, centre_y, 0)."""
    oc = np.broadcast_to(o, d.shape) - np.array([0.0, centre_y, 0.0])
    b = np.sum(oc * d, axis=-1)
    c = np.sum(oc * oc, axis=-1) - radius**2
    return (b * b - c >= 0) & ((b < 0) | (c < 0))


@functools.lru_cache(maxsize=4)
def _weights(size: int) -> np.ndarray:
    """Per (orientation, shape, scale): (3, size*size) float32 weights of the floor,
    wall and object colours in each pixel (coverage times shading, in [0, 1]).
    Shape (15, 4, 8, 3, size*size), read-only.

    The background is traced once per orientation; the object (and its shadow) only
    for the rays that pass near it (a bounding sphere), once per shape and scale."""
    n_orient, n_shape, n_scale = (len(FACTOR_VALUES[k]) for k in ("orientation", "shape", "scale"))
    weights = np.zeros((n_orient, n_shape, n_scale, 3, size * size), dtype=np.float32)
    bound_y, bound_r = _bounding_sphere()
    for i, orientation in enumerate(FACTOR_VALUES["orientation"]):
        eye, d = _camera_rays(orientation, size)
        d = d.reshape(-1, 3)
        # Background: the ray leaves the room (floor y >= 0, in front of both walls) through
        # the first plane it crosses.
        with np.errstate(divide="ignore", invalid="ignore"):
            t_floor = np.where(d[:, 1] < -1e-12, -eye[1] / d[:, 1], np.inf)
            wall_dot = d @ _WALL_NORMALS.T
            t_walls = np.where(wall_dot < -1e-12, ((_CORNER - eye) @ _WALL_NORMALS.T) / wall_dot, np.inf)
        t_wall = t_walls.min(axis=-1)
        is_floor = t_floor <= t_wall
        t_bg = np.minimum(t_floor, t_wall)
        hit_any = np.isfinite(t_bg)
        normal_bg = np.where(is_floor[:, None], np.array([0.0, 1.0, 0.0]), _WALL_NORMALS[t_walls.argmin(axis=-1)])
        points_bg = eye + np.where(hit_any, t_bg, 0.0)[:, None] * d
        diffuse_bg, light_dir_bg, light_dist_bg = _lambert(points_bg, normal_bg)
        diffuse_bg = np.where(hit_any, diffuse_bg, 0.0)
        shade_bg_lit = _AMBIENT + diffuse_bg
        # Rays that may meet the object, and lit background samples that may be in its shadow.
        near = np.nonzero(_crosses_sphere(eye, d, bound_y, bound_r))[0]
        shadowable = np.nonzero((diffuse_bg > 0) & _crosses_sphere(points_bg, light_dir_bg, bound_y, bound_r))[0]
        for shape, scale_index in itertools.product(range(n_shape), range(n_scale)):
            scale = FACTOR_VALUES["scale"][scale_index]
            t_obj, normal_obj = _object_hit(shape, scale, eye, d[near])
            hit = t_obj < t_bg[near]
            on_object = np.zeros(len(d), dtype=bool)
            on_object[near[hit]] = True
            shade_obj = np.zeros(len(d))
            points_obj = eye + t_obj[hit, None] * d[near[hit]]
            shade_obj[near[hit]] = _AMBIENT + _lambert(points_obj, normal_obj[hit])[0]
            # Cast shadow: lit background samples whose way to the light crosses the object.
            t_shadow = _object_hit(shape, scale, points_bg[shadowable], light_dir_bg[shadowable], normals=False)[0]
            shade_bg = shade_bg_lit.copy()
            shaded = shadowable[t_shadow < light_dist_bg[shadowable]]
            shade_bg[shaded] = _AMBIENT
            shade_bg[on_object] = 0.0
            weights[i, shape, scale_index, 0] = _pool(np.where(is_floor, shade_bg, 0.0), size)
            weights[i, shape, scale_index, 1] = _pool(np.where(is_floor, 0.0, shade_bg), size)
            weights[i, shape, scale_index, 2] = _pool(shade_obj, size)
    np.clip(weights, 0.0, 1.0, out=weights)
    weights.setflags(write=False)
    return weights


@functools.lru_cache(maxsize=1)
def _hue_rgb() -> np.ndarray:
    """(10, 3) float32: the fully saturated, full-value RGB of each hue, times 255."""
    return np.array([colorsys.hsv_to_rgb(h, 1.0, 1.0) for h in _HUES], dtype=np.float32) * 255.0


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIZE:
        raise InputError(f"size must be an integer >= {MIN_SIZE}, got {size!r}")
    return int(size)


def render(indices: np.ndarray, size: int = 64) -> np.ndarray:
    """indices: (N, 6) int array of value indices per factor -> (N, size, size, 3) uint8 RGB."""
    size = _check_size(size)
    indices = np.asarray(indices)
    if indices.ndim != 2 or indices.shape[1] != len(FACTOR_NAMES):
        raise InputError(f"indices must have shape (N, {len(FACTOR_NAMES)}), got {indices.shape}")
    if len(indices) and not np.issubdtype(indices.dtype, np.integer):
        raise InputError(f"indices must be integers, got dtype {indices.dtype}")
    indices = indices.astype(np.int64, copy=False)
    for column, (name, count) in enumerate(zip(FACTOR_NAMES, _CARDINALITIES)):
        bad = (indices[:, column] < 0) | (indices[:, column] >= count)
        if bad.any():
            raise InputError(f"{name}: index {indices[bad, column][0]} out of range [0, {count - 1}]")
    out = np.empty((len(indices), size * size, 3), dtype=np.uint8)
    if len(indices) == 0:
        return out.reshape(0, size, size, 3)
    weights = _weights(size)
    rgb = _hue_rgb()
    for start in range(0, len(indices), _BLOCK):
        block = indices[start : start + _BLOCK]
        w = weights[
            block[:, COLUMN["orientation"]], block[:, COLUMN["shape"]], block[:, COLUMN["scale"]]
        ]  # (B, source, P)
        # Channels first, so that every operation runs along the P pixels.
        pixels = rgb[block[:, COLUMN["floor_hue"]]][:, :, None] * w[:, 0, None, :]  # (B, channel, P)
        pixels += rgb[block[:, COLUMN["wall_hue"]]][:, :, None] * w[:, 1, None, :]
        pixels += rgb[block[:, COLUMN["object_hue"]]][:, :, None] * w[:, 2, None, :]
        pixels += 0.5  # round half up (the weights sum to at most 1, so pixels stay below 255.5)
        out[start : start + _BLOCK] = pixels.transpose(0, 2, 1)  # truncating cast to uint8
    return out.reshape(len(indices), size, size, 3)


def _chosen(subset: dict[str, list[int]] | None) -> list[np.ndarray]:
    """The sorted, distinct value indices chosen for each factor (all of them by default)."""
    subset = {} if subset is None else subset
    unknown = [name for name in subset if name not in FACTOR_NAMES]
    if unknown:
        raise InputError(f"unknown factor {unknown[0]!r}; the factors are: {', '.join(FACTOR_NAMES)}")
    chosen = []
    for name, count in zip(FACTOR_NAMES, _CARDINALITIES):
        if name not in subset:
            chosen.append(np.arange(count))
            continue
        values = list(subset[name])
        if not values:
            raise InputError(f"{name}: empty list of value indices")
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < count:
                raise InputError(f"{name}: value index {value!r} out of range [0, {count - 1}]")
        chosen.append(np.unique(np.asarray(values, dtype=np.int64)))
    return chosen


def all_indices(subset: dict[str, list[int]] | None = None) -> np.ndarray:
    """(M, 6) int: the full factorial of the chosen value indices per factor (all values
    when a factor is not in ``subset``; the chosen indices are sorted and deduplicated),
    in row-major order (last factor fastest). Raises ValueError naming the factor for an
    unknown factor name, an out-of-range index or an empty list."""
    grids = np.meshgrid(*_chosen(subset), indexing="ij")
    return np.stack([grid.ravel() for grid in grids], axis=1).astype(np.int64)


def make(size: int = 64, subset: dict[str, list[int]] | None = None) -> Dataset:
    """The full factorial (or the subset) as a Dataset: images (N, 3, size, size) uint8
    (as the real Shapes3D; pixels.model_range maps them to [-1, 1]); a factors DataFrame
    with each factor's value and ``<name>_bin``, the index into the factor table's values,
    which are the values present, as for every data set."""
    size = _check_size(size)
    chosen = _chosen(subset)
    indices = all_indices(subset)
    images = np.empty((len(indices), 3, size, size), dtype=np.uint8)
    with Progress(len(indices), "render scenes", "image") as progress:
        for start in range(0, len(indices), _MAKE_CHUNK):
            chunk = indices[start : start + _MAKE_CHUNK]
            images[start : start + _MAKE_CHUNK] = render(chunk, size).transpose(0, 3, 1, 2)
            progress.update(len(chunk))
    factor_table = [
        Factor(name, "categorical", tuple(FACTOR_VALUES[name][i] for i in present))
        for name, present in zip(FACTOR_NAMES, chosen)
    ]
    columns = {name: np.asarray(FACTOR_VALUES[name])[indices[:, k]] for k, name in enumerate(FACTOR_NAMES)}
    columns.update(
        {
            f"{name}_bin": np.searchsorted(present, indices[:, k])
            for k, (name, present) in enumerate(zip(FACTOR_NAMES, chosen))
        }
    )
    return Dataset(images=images, factors=pd.DataFrame(columns), factor_table=factor_table)


# --- the data set kind (registry.py) ----------------------------------------------------------

SCHEMA = yaml.safe_load("""
description: Procedural Shapes3D-like scenes (floor, wall, one object; six categorical factors).
type: object
additionalProperties: false
required: [kind, size, split]
properties:
  kind: {const: shapes, description: "Procedural scenes.", default: shapes}
  size: {type: integer, minimum: 8, maximum: 64, description: "Image side, pixels (Shapes3D: 64).", default: 16}
  subset: {$ref: "#/$defs/factor_subset", default: {}}
  spacing: {$ref: "#/$defs/subset_spacing", default: any}
  split: {$ref: "#/$defs/split"}
""")
DEFINITIONS = yaml.safe_load("""
factor_subset:
  description: "Value indices to keep per factor (a factor not listed keeps all its values), e.g. {shape: [0, 2], scale: [0, 7]}."
  type: object
  additionalProperties: false
  properties:
    floor_hue: {type: array, minItems: 1, uniqueItems: true, items: {type: integer, minimum: 0, maximum: 9}, description: "Indices of floor hues 0.0..0.9.", default: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}
    wall_hue: {type: array, minItems: 1, uniqueItems: true, items: {type: integer, minimum: 0, maximum: 9}, description: "Indices of wall hues 0.0..0.9.", default: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}
    object_hue: {type: array, minItems: 1, uniqueItems: true, items: {type: integer, minimum: 0, maximum: 9}, description: "Indices of object hues 0.0..0.9.", default: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}
    scale: {type: array, minItems: 1, uniqueItems: true, items: {type: integer, minimum: 0, maximum: 7}, description: "Indices of scales 0.75..1.25.", default: [0, 1, 2, 3, 4, 5, 6, 7]}
    shape: {type: array, minItems: 1, uniqueItems: true, items: {type: integer, minimum: 0, maximum: 3}, description: "0 cube, 1 cylinder, 2 sphere, 3 capsule.", default: [0, 1, 2, 3]}
    orientation: {type: array, minItems: 1, uniqueItems: true, items: {type: integer, minimum: 0, maximum: 14}, description: "Indices of orientations -30..30 degrees.", default: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]}
subset_spacing:
  enum: [any, native]
  description: "native: every subset keeps consecutive values of its factor (the data set's own spacing), checked; an exact decision time is set by the closest values of a factor, so a subset of far-apart values decides the order by design. any: no check."
  default: any
""")  # noqa: E501 (shared with shapes3d_file)


def subset_indices(spec: dict) -> dict[str, list[int]] | None:
    """The value indices a params ``dataset`` section keeps per factor (None: all)."""
    subset = spec.get("subset")
    return {name: list(indices) for name, indices in subset.items()} if subset else None


def subset_cardinalities(spec: dict) -> dict[str, int]:
    """Values kept per factor by a params ``dataset`` section's subset."""
    subset = spec.get("subset") or {}
    return {name: len(set(subset.get(name, range(count)))) for name, count in zip(FACTOR_NAMES, _CARDINALITIES)}


def native_spacing_problem(spec: dict) -> str | None:
    """A subset declared to keep the data set's own spacing keeps consecutive values."""
    if spec.get("spacing") != "native":
        return None
    for factor, indices in (spec.get("subset") or {}).items():
        chosen = sorted(indices)
        if chosen != list(range(chosen[0], chosen[0] + len(chosen))):
            return (
                f"dataset.subset.{factor} = {indices}: spacing native needs consecutive value indices "
                "(the data set's own spacing)"
            )
    return None


def _make(spec: dict, folder: Path, provenance: dict) -> None:
    save_with_split(make(spec["size"], subset_indices(spec)), spec["split"], folder, provenance)


KIND = DatasetKind(
    name="shapes",
    schema=SCHEMA,
    factor_names=lambda spec: FACTOR_NAMES,
    image_size=lambda spec: (spec["size"], spec["size"]),
    images=lambda spec: (math.prod(subset_cardinalities(spec).values()), 3 * spec["size"] ** 2),
    cardinalities=subset_cardinalities,
    make=_make,
    studies=lambda spec: frozenset({EXACT_ORDER}),
    problem=native_spacing_problem,
    definitions=DEFINITIONS,
)

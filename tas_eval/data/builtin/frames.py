"""Video frames for the visually guided baselines, rendered on demand from a scene description.

Frames are never stored: they are a pure function of the scene (tas_eval/data/scene.py) and the
frame time, drawn with numpy masks, so two renders of a scene are byte-identical.

Camera: a pinhole camera at the listener, looking along +x (the listener's front), with a
FOV_DEG = 90 degree horizontal field of view and square pixels; ``f = (W / 2) / tan(FOV_DEG / 2)``.
A point at listener-frame (x ahead, y left, z up) maps to screen
``u = W/2 - f * y / x`` and ``v = H/2 - f * z / x`` (pixels, v downwards), i.e. for azimuth az and
elevation el: ``u = W/2 - f * tan(az)``, ``v = H/2 - f * tan(el) / cos(az)``. Azimuth +90 is the
listener's left, so sources on the left appear in the left half of the image.

Visibility rules (shared by the pictures and the labels, so that they cannot disagree):
- a source or object is IN VIEW when it is in front of the camera and the projection of its
  centre falls inside the image; anything else is not drawn at all;
- a scene source is OCCLUDED when it is in view and either its ``occluded`` flag is true or the
  projection of its centre falls on the panel of a nearer occluder; an occluded source is not drawn;
- everything else is drawn as its category's shape, with a size that shrinks with the depth
  (forward distance), far things first so near things cover them.

Sources are drawn whether or not they sound at that moment (an instrument stays visible while it
rests), which is what makes a "silent_object" a visual failure case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from tas_eval.data.scene import position_at

FPS = 10  # frames per second, the same grid as the 0.1 s annotation frames
FOV_DEG = 90.0  # horizontal field of view
FAILURE_CASES = ("out_of_view", "occluded", "silent_object", "distractor")
NEAR_M = 0.05  # things closer than this in depth are treated as behind the camera
MIN_HALF_PX = 1.5  # far objects stay at least ~3 px across so that they remain visible

# Default room when a scene has none: listener 1.2 m high, 4 m from the front wall, 3 m from each side.
_DEFAULT_ROOM = {"size_m": [8.0, 6.0, 3.0], "listener_m": [4.0, 3.0, 1.2]}


@dataclass(frozen=True)
class Look:
    """How a category is drawn: a shape kind, an RGB colour and a real-world size in metres."""

    shape: str  # ellipse | rect | triangle | diamond | trapezoid | funnel | person | bars | chair
    color: tuple[int, int, int]
    width_m: float
    height_m: float


# One fixed look per category; categories are matched after lower-casing and mapping "_"/"-" to " ".
LOOKS: dict[str, Look] = {
    "cello": Look("ellipse", (120, 66, 18), 0.55, 1.25),
    "violin": Look("ellipse", (196, 98, 30), 0.25, 0.6),
    "erhu": Look("rect", (150, 30, 30), 0.15, 0.85),
    "upright bass": Look("ellipse", (70, 36, 10), 0.75, 1.85),
    "guitar": Look("diamond", (226, 160, 72), 0.4, 1.0),
    "piano": Look("rect", (18, 18, 18), 1.5, 1.0),
    "drum": Look("ellipse", (200, 32, 32), 0.6, 0.6),
    "trumpet": Look("triangle", (242, 204, 24), 0.5, 0.35),
    "harp": Look("trapezoid", (212, 180, 70), 0.9, 1.7),
    "xylophone": Look("bars", (30, 150, 150), 1.2, 0.45),
    "speech": Look("person", (40, 80, 200), 0.5, 1.7),
    "singing": Look("person", (200, 50, 160), 0.5, 1.7),
    "flute": Look("rect", (205, 205, 215), 0.7, 0.08),
    "saxophone": Look("funnel", (190, 150, 40), 0.35, 0.8),
    "accordion": Look("bars", (130, 20, 40), 0.5, 0.45),
    "clarinet": Look("rect", (40, 40, 60), 0.08, 0.65),
    "banjo": Look("ellipse", (226, 214, 178), 0.35, 0.9),
    "bell": Look("triangle", (160, 170, 200), 0.3, 0.35),
    "organ": Look("bars", (92, 52, 30), 1.6, 1.4),
    "trombone": Look("rect", (212, 170, 52), 0.9, 0.12),
    "tuba": Look("ellipse", (176, 136, 34), 0.6, 0.9),
    # things that never sound, used as distractors
    "person": Look("person", (95, 120, 95), 0.5, 1.7),
    "chair": Look("chair", (150, 95, 60), 0.5, 0.9),
    "lamp": Look("triangle", (236, 228, 190), 0.45, 1.5),
}
_ALIASES = {
    "bass": "upright bass",
    "double bass": "upright bass",
    "contrabass": "upright bass",
    "drums": "drum",
    "singing voice": "singing",
    "voice": "singing",
    "singer": "singing",
    "male speech": "speech",
    "female speech": "speech",
    "man speaking": "speech",
    "woman speaking": "speech",
    "acoustic guitar": "guitar",
    "electric guitar": "guitar",
    "sax": "saxophone",
}
DEFAULT_LOOK = Look("rect", (120, 200, 120), 0.5, 0.5)  # unknown categories
OCCLUDER_LOOK = Look("rect", (128, 128, 128), 1.2, 2.0)  # a grey panel


def look_of(category: str) -> Look:
    """The drawing look of a category string (DEFAULT_LOOK for unknown categories)."""
    key = category.strip().lower().replace("_", " ").replace("-", " ")
    key = _ALIASES.get(key, key)
    return LOOKS.get(key, DEFAULT_LOOK)


def frame_times(duration_s: float) -> np.ndarray:
    """Times in seconds of the FPS frames of a clip: 0, 0.1, ..., (the last one before ``duration_s``)."""
    return np.arange(int(round(duration_s * FPS)), dtype=np.float64) / FPS


def _focal_px(width: int) -> float:
    return (width / 2.0) / math.tan(math.radians(FOV_DEG / 2.0))


def _project(az: float, el: float, dist: float, size: tuple[int, int]):
    """(u px, v px, depth m) of a point, or None when it is behind the camera."""
    h, w = size
    a, e = math.radians(az), math.radians(el)
    x = dist * math.cos(e) * math.cos(a)
    if x <= NEAR_M:
        return None
    y = dist * math.cos(e) * math.sin(a)
    z = dist * math.sin(e)
    f = _focal_px(w)
    return w / 2.0 - f * y / x, h / 2.0 - f * z / x, x


def _inside(p, size: tuple[int, int]) -> bool:
    return p is not None and 0.0 <= p[0] <= size[1] and 0.0 <= p[1] <= size[0]


def _object_position(obj: dict, t: float) -> tuple[float, float, float]:
    if "trajectory" in obj:
        return position_at(obj["trajectory"], t)
    return float(obj["azimuth"]), float(obj.get("elevation", 0.0)), float(obj["distance"])


def _object_look(obj: dict) -> Look:
    if obj["role"] == "occluder":
        return Look(OCCLUDER_LOOK.shape, OCCLUDER_LOOK.color, float(obj.get("width_m", OCCLUDER_LOOK.width_m)),
                    float(obj.get("height_m", OCCLUDER_LOOK.height_m)))
    return look_of(obj["category"])


def _half_px(look: Look, depth: float, size: tuple[int, int]) -> tuple[float, float]:
    f = _focal_px(size[1])
    return max(MIN_HALF_PX, f * look.width_m / 2 / depth), max(MIN_HALF_PX, f * look.height_m / 2 / depth)


def _layout(scene: dict, t: float, size: tuple[int, int]):
    """Visibility of the sources and the list of things to paint at time ``t``.

    Returns (per-source visibility dicts, [(depth, look, u, v)] to paint) -- the single place where
    both the labels and the pictures get their answer.
    """
    objects = []  # (depth, look, u, v, role)
    for obj in scene.get("visual", {}).get("objects", []):
        p = _project(*_object_position(obj, t), size)
        if _inside(p, size):
            objects.append((p[2], _object_look(obj), p[0], p[1], obj["role"]))
    panels = []
    for depth, look, u, v, role in objects:
        if role == "occluder":
            hw, hh = _half_px(look, depth, size)
            panels.append((depth, u - hw, u + hw, v - hh, v + hh))

    vis, paint = [], []
    for src in scene["sources"]:
        p = _project(*position_at(src["trajectory"], t), size)
        in_view = _inside(p, size)
        covered = in_view and any(d < p[2] and x0 <= p[0] <= x1 and y0 <= p[1] <= y1 for d, x0, x1, y0, y1 in panels)
        occluded = in_view and (bool(src.get("occluded", False)) or covered)
        drawn = in_view and not occluded
        vis.append({"in_view": in_view, "occluded": occluded, "drawn": drawn,
                    "x": None if p is None else p[0], "y": None if p is None else p[1]})
        if drawn:
            paint.append((p[2], look_of(src["category"]), p[0], p[1]))
    paint.extend((d, look, u, v) for d, look, u, v, _ in objects)
    return vis, paint


def visibility(scene: dict, t: float, size: tuple[int, int] = (224, 224)) -> list[dict]:
    """Per scene source at time ``t`` s: {"in_view", "occluded", "drawn", "x", "y"}.

    ``x``/``y`` are the projected centre in pixels of an image of ``size`` = (height, width), even
    when it falls outside the image; both are None for a source behind the camera.
    """
    return _layout(scene, t, size)[0]


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Mask of a shape in normalized box coordinates (u, v in [-1, 1], v downwards)."""
    if shape == "ellipse":
        return u * u + v * v <= 1.0
    if shape == "rect":
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0)
    if shape == "triangle":  # apex up
        return (np.abs(v) <= 1.0) & (np.abs(u) <= (v + 1.0) / 2.0)
    if shape == "funnel":  # apex down
        return (np.abs(v) <= 1.0) & (np.abs(u) <= (1.0 - v) / 2.0)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1.0
    if shape == "trapezoid":  # tall on the left, low on the right (a harp's frame)
        return (np.abs(u) <= 1.0) & (v <= 1.0) & (v >= -1.0 + 0.8 * (u + 1.0))
    if shape == "bars":  # five bars with gaps
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0) & (np.floor((u + 1.0) * 4.5) % 2 == 0)
    if shape == "chair":  # seen from the side: back on the left, seat, two legs
        back = (u <= -0.6) & (v <= 0.1)
        seat = (v >= 0.0) & (v <= 0.2)
        legs = (v >= 0.2) & ((u <= -0.75) | (u >= 0.75))
        return (np.abs(u) <= 1.0) & (np.abs(v) <= 1.0) & (back | seat | legs)
    if shape == "person":  # head over a widening body
        head = (u / 0.45) ** 2 + ((v + 0.72) / 0.28) ** 2 <= 1.0
        body = (v >= -0.42) & (v <= 1.0) & (np.abs(u) <= 0.45 + 0.5 * (v + 0.42) / 1.42)
        return head | body
    raise ValueError(f"unknown shape {shape!r}")


def _packed(color: tuple[int, int, int]) -> np.void:
    """An RGB colour as one 3-byte pixel value of an image viewed as (H, W) of V3."""
    return np.array(color, dtype=np.uint8).view("V3")[0]


def _paint(img: np.ndarray, look: Look, u: float, v: float, depth: float) -> None:
    """Paint one shape into an RGB image viewed as (H, W) 3-byte pixels (one store per pixel, several
    times cheaper than a masked store into the (H, W, 3) uint8 array)."""
    h, w = img.shape
    hw, hh = _half_px(look, depth, (h, w))
    x0, x1 = max(0, int(math.floor(u - hw))), min(w, int(math.ceil(u + hw)))
    y0, y1 = max(0, int(math.floor(v - hh))), min(h, int(math.ceil(v + hh)))
    if x0 >= x1 or y0 >= y1:
        return
    cu = ((np.arange(x0, x1) + 0.5) - u) / hw  # pixel centres in box coordinates
    cv = ((np.arange(y0, y1) + 0.5) - v) / hh
    mask = _shape_mask(look.shape, cu[None, :], cv[:, None])
    img[y0:y1, x0:x1][mask] = _packed(look.color)


@lru_cache(maxsize=16)
def _background(room_key: tuple, size: tuple[int, int]) -> np.ndarray:
    """The empty room seen from the listener: each pixel's ray hits the nearest of the six walls."""
    (lx_, ly_, lz_), (px, py, pz) = room_key
    h, w = size
    f = _focal_px(w)
    a = ((w / 2.0) - (np.arange(w) + 0.5))[None, :] / f  # ray (1, a, b): left component
    b = ((h / 2.0) - (np.arange(h) + 0.5))[:, None] / f  # up component
    a, b = np.broadcast_arrays(a, b)
    big = np.float64(1e9)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_front = np.full(a.shape, max(lx_ - px, 0.1))
        t_left = np.where(a > 0, max(ly_ - py, 0.1) / a, big)
        t_right = np.where(a < 0, max(py, 0.1) / -a, big)
        t_floor = np.where(b < 0, max(pz, 0.1) / -b, big)
        t_ceil = np.where(b > 0, max(lz_ - pz, 0.1) / b, big)
    hits = np.stack([t_front, t_left, t_right, t_floor, t_ceil])
    which = hits.argmin(axis=0)
    dist = hits.min(axis=0)
    colors = np.array([[205, 195, 175], [185, 175, 158], [185, 175, 158], [140, 100, 62], [228, 226, 220]], float)
    shade = np.clip(1.1 - 0.04 * dist, 0.6, 1.0)[..., None]  # farther surfaces a little darker
    img = np.clip(colors[which] * shade, 0, 255).astype(np.uint8)
    img.setflags(write=False)
    return img


def _room_key(scene: dict) -> tuple:
    room = scene.get("room") or _DEFAULT_ROOM
    return tuple(float(c) for c in room["size_m"]), tuple(float(c) for c in room["listener_m"])


def render_frames(scene: dict, times_s, size: tuple[int, int] = (224, 224)) -> np.ndarray:
    """RGB frames of the scene at ``times_s`` seconds: uint8 (N, H, W, 3) with ``size`` = (H, W).

    Each in-view, non-occluded source is drawn as its category's shape (LOOKS) at its position at
    that time (moving sources move), together with the scene's visual objects (distractors, silent
    objects, occluder panels), far first, over the room. Deterministic.
    """
    size = (int(size[0]), int(size[1]))
    times = np.atleast_1d(np.asarray(times_s, dtype=np.float64))
    bg = _background(_room_key(scene), size)
    out = np.empty((len(times), size[0], size[1], 3), dtype=np.uint8)
    pixels = out.view("V3")[..., 0]  # (N, H, W) 3-byte pixels sharing out's memory
    for i, t in enumerate(times):
        out[i] = bg
        _, paint = _layout(scene, float(t), size)
        for depth, look, u, v in sorted(paint, key=lambda item: -item[0]):
            _paint(pixels[i], look, u, v, depth)
    return out


def _never_sounds(src: dict, duration_s: float) -> bool:
    return not any(min(b, duration_s) > max(a, 0.0) for a, b in src.get("active", []))


def failure_cases(scene: dict, size: tuple[int, int] = (224, 224)) -> list[str]:
    """The visual failure cases of a clip, in FAILURE_CASES order, from the same rules as the pictures.

    out_of_view: a source is not in view at some frame (all of the clip or part of it);
    occluded: a source is in view but hidden at some frame; silent_object: a silent-object is in
    view at some frame, or a source that never sounds in the clip is drawn; distractor: a
    distractor object is in view at some frame. Frames are those of ``frame_times(duration_s)``.
    """
    cases = set()
    duration = float(scene["duration_s"])
    silent_sources = [_never_sounds(src, duration) for src in scene["sources"]]
    for t in frame_times(duration):
        vis = visibility(scene, float(t), size)
        for v, silent in zip(vis, silent_sources):
            if not v["in_view"]:
                cases.add("out_of_view")
            if v["occluded"]:
                cases.add("occluded")
            if v["drawn"] and silent:
                cases.add("silent_object")
        for obj in scene.get("visual", {}).get("objects", []):
            if obj["role"] in ("distractor", "silent_object") and _inside(_project(*_object_position(obj, float(t)), size), size):
                cases.add(obj["role"])
    return [c for c in FAILURE_CASES if c in cases]

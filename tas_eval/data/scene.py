"""The scene description: the one source of truth from which audio, annotations and frames are made.

A scene (``scenes/<item_id>.json``) is a dict::

    {
      "item_id": "c00007", "group_id": "g00003",      # clips of one group share room and sources
      "duration_s": 10.0, "seed": 1234,
      "room": {"size_m": [Lx, Ly, Lz], "listener_m": [x, y, z], "rt60_s": 0.45,
               "absorption": 0.3},                    # listener faces +x, its left is +y, up is +z
      "sources": [
        {"category": "cello", "seed": 99, "gain_db": -2.0,
         "trajectory": [{"t": 0.0, "azimuth": 40.0, "elevation": 0.0, "distance": 2.5}, ...],
         "active": [[0.0, 3.2], [4.1, 10.0]],         # seconds in which the source may sound
         "occluded": false}                            # hidden behind an occluder in the video
      ],
      "visual": {"cases": ["out_of_view", "distractor"],
                 "objects": [{"category": "piano", "role": "distractor" | "silent_object" | "occluder",
                              "azimuth": 10.0, "elevation": 0.0, "distance": 3.0}]}
    }

Angles are degrees. Azimuth 0 = straight ahead, +90 = LEFT, -90 = right, +-180 = behind
(counter-clockwise seen from above, the SOFA convention). Elevation +90 = straight up. Distance in
metres. A trajectory is piecewise linear in time (one point = a static source); azimuth is
interpolated along the shorter arc.

Left/center/right labels use the lateral angle asin(sin(az) cos(el)), the angle away from the median
plane that the interaural cues encode: within +-CENTER_DEADBAND_DEG it is "center", otherwise "left"
(positive) or "right" (negative). A source behind the listener is labelled by its side, as heard.
"""

from __future__ import annotations

import math

import numpy as np

CENTER_DEADBAND_DEG = 15.0
FRAME_RATE = 10  # annotation frames per second (TASBench's 0.1 s)
LABELS = ("left", "center", "right")
# One source dominates a frame when the ears receive it at least this much (dB) above every other source.
DOMINANCE_MARGIN_DB = 6.0


def position_at(trajectory: list[dict], t: float) -> tuple[float, float, float]:
    """(azimuth deg, elevation deg, distance m) of a source at time ``t`` seconds."""
    if len(trajectory) == 1 or t <= trajectory[0]["t"]:
        p = trajectory[0]
        return float(p["azimuth"]), float(p["elevation"]), float(p["distance"])
    for a, b in zip(trajectory[:-1], trajectory[1:]):
        if t <= b["t"]:
            w = (t - a["t"]) / max(b["t"] - a["t"], 1e-12)
            daz = (b["azimuth"] - a["azimuth"] + 180.0) % 360.0 - 180.0
            az = wrap_azimuth(a["azimuth"] + w * daz)
            el = a["elevation"] + w * (b["elevation"] - a["elevation"])
            dist = a["distance"] + w * (b["distance"] - a["distance"])
            return float(az), float(el), float(dist)
    p = trajectory[-1]
    return float(p["azimuth"]), float(p["elevation"]), float(p["distance"])


def wrap_azimuth(az: float) -> float:
    """Azimuth wrapped to (-180, 180] degrees."""
    az = (az + 180.0) % 360.0 - 180.0
    return 180.0 if az == -180.0 else az


def lateral_angle(azimuth: float, elevation: float) -> float:
    """Angle in degrees away from the median plane, positive to the left: asin(sin az cos el)."""
    s = math.sin(math.radians(azimuth)) * math.cos(math.radians(elevation))
    return math.degrees(math.asin(max(-1.0, min(1.0, s))))


def side_label(azimuth: float, elevation: float = 0.0) -> str:
    """"left", "center" or "right" from the lateral angle with a +-CENTER_DEADBAND_DEG dead-band."""
    lat = lateral_angle(azimuth, elevation)
    if lat > CENTER_DEADBAND_DEG:
        return "left"
    if lat < -CENTER_DEADBAND_DEG:
        return "right"
    return "center"


def direction_vector(azimuth: float, elevation: float) -> np.ndarray:
    """Unit vector in the listener frame (x ahead, y left, z up)."""
    az, el = math.radians(azimuth), math.radians(elevation)
    return np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])


def azel_from_vector(v: np.ndarray) -> tuple[float, float, float]:
    """(azimuth deg, elevation deg, distance m) of a vector in the listener frame."""
    x, y, z = (float(c) for c in v)
    dist = math.sqrt(x * x + y * y + z * z)
    az = math.degrees(math.atan2(y, x))
    el = math.degrees(math.asin(z / dist)) if dist > 0 else 0.0
    return wrap_azimuth(az), el, dist


def is_active(source: dict, t: float) -> bool:
    """Whether ``t`` seconds falls inside one of the source's active intervals."""
    return any(a <= t < b for a, b in source["active"])

"""The binaural localizer: where each 0.1 s of binaural audio comes from, by a network trained here.

It plays for the spatial metrics the part the generative backbones play for FD and KL: a fixed,
versioned network whose weights' sha256 every result records. ``tas_loc`` (the packaged weights in
weights/tas_loc.pt, trained by `tas-eval localizer train`, see weights/README.md) reads Spatial-AST's
binaural features (features.py) and gives, per 0.1 s annotation frame, posteriors over:

    azimuth    AZIMUTH_BINS bins of 360 / AZIMUTH_BINS degrees over the full circle, bin k centred on
               -180 + (k + 0.5) * width (azimuth +90 = LEFT)
    elevation  ELEVATION_EDGES_DEG bins
    distance   21 classes, 0 to 10 m in 0.5 m steps (class k = k * 0.5 m, as BAT)
    category   the built benchmark's source categories

``Localizer.locate(audio)`` returns those posteriors and the decoded estimates: azimuth (the
posterior-weighted circular mean over the peak bin and its two neighbours, degrees), elevation (the
centre of the most likely bin, degrees), distance (the posterior mean, m) and the left/center/right
side of that direction with the benchmark's +-15 degree convention (tas_eval.data.scene.side_label).
A user's checkpoint in the same format loads with ``load_localizer(path)``.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import numpy as np
import torch

from tas_eval.errors import UserError
from tas_eval.metrics.localizer.features import SAMPLE_RATE, binaural_features
from tas_eval.metrics.localizer.network import LocalizerNet
from tas_eval.paths import file_sha256

log = logging.getLogger(__name__)

LOCALIZER_ID = "tas_loc"
WEIGHTS = Path(__file__).resolve().parent / "weights" / "tas_loc.pt"
AZIMUTH_BINS = 36
ELEVATION_EDGES_DEG = (-50.0, -30.0, -10.0, 10.0, 30.0, 50.0, 70.0, 90.0)
DISTANCE_STEP_M = 0.5
DISTANCE_CLASSES = 21


def azimuth_centres() -> np.ndarray:
    """Centres (degrees) of the azimuth bins."""
    width = 360.0 / AZIMUTH_BINS
    return -180.0 + (np.arange(AZIMUTH_BINS) + 0.5) * width


def elevation_centres() -> np.ndarray:
    """Centres (degrees) of the elevation bins."""
    edges = np.asarray(ELEVATION_EDGES_DEG)
    return (edges[:-1] + edges[1:]) / 2


def azimuth_bin(azimuth_deg) -> np.ndarray:
    """Bin index of azimuths in degrees (any wrap)."""
    wrapped = (np.asarray(azimuth_deg, dtype=np.float64) + 180.0) % 360.0
    return np.minimum((wrapped / (360.0 / AZIMUTH_BINS)).astype(np.int64), AZIMUTH_BINS - 1)


def elevation_bin(elevation_deg) -> np.ndarray:
    """Bin index of elevations in degrees (clipped to the outer bins)."""
    edges = np.asarray(ELEVATION_EDGES_DEG)
    return np.clip(np.searchsorted(edges, np.asarray(elevation_deg, dtype=np.float64), side="right") - 1,
                   0, len(edges) - 2)


def distance_class(distance_m) -> np.ndarray:
    """Class index of distances in metres (0.5 m steps, clipped to 0..10 m)."""
    return np.clip(np.rint(np.asarray(distance_m, dtype=np.float64) / DISTANCE_STEP_M), 0,
                   DISTANCE_CLASSES - 1).astype(np.int64)


def head_sizes(num_categories: int) -> dict[str, int]:
    """Output sizes of the four heads."""
    return {"azimuth": AZIMUTH_BINS, "elevation": len(ELEVATION_EDGES_DEG) - 1, "distance": DISTANCE_CLASSES,
            "category": num_categories}


def decode_azimuth(posterior: torch.Tensor) -> torch.Tensor:
    """Azimuth estimates (..., ) in degrees from posteriors (..., AZIMUTH_BINS): the circular mean of the
    peak bin and its two neighbours weighted by their probabilities."""
    centres = torch.as_tensor(np.radians(azimuth_centres()), dtype=posterior.dtype, device=posterior.device)
    peak = posterior.argmax(dim=-1, keepdim=True)
    idx = torch.cat([peak - 1, peak, peak + 1], dim=-1) % AZIMUTH_BINS
    w = posterior.gather(-1, idx)
    angles = centres[idx]
    return torch.rad2deg(torch.atan2((w * torch.sin(angles)).sum(-1), (w * torch.cos(angles)).sum(-1)))


class Localizer:
    """A loaded localizer: ``id``, ``weights_sha256``, ``sample_rate`` (Hz) and ``locate``."""

    sample_rate = SAMPLE_RATE

    def __init__(self, network: LocalizerNet, config: dict, weights_sha256: str, path: str,
                 device: str | torch.device = "cpu"):
        self.network = network.to(device).eval()
        self.config = dict(config)
        self.categories = list(config["categories"])
        self.id = str(config.get("id", LOCALIZER_ID))
        self.weights_sha256 = weights_sha256
        self.path = path
        self.device = torch.device(device)

    def describe(self) -> dict:
        """{"id", "sha256"}: what a result records of the localizer that made it."""
        return {"id": self.id, "sha256": self.weights_sha256}

    @torch.inference_mode()
    def locate(self, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 2, T) binaural audio at 16 kHz (any device) -> per 0.1 s frame (B, T // 1600, ...), on that device:
        posteriors "p_azimuth", "p_elevation", "p_distance", "p_category", and estimates "azimuth" and
        "elevation" (degrees), "distance" (m), "lateral" (degrees, asin(sin az cos el), positive = left)."""
        device = audio.device
        logits = self.network(binaural_features(audio.to(self.device, torch.float32)))
        out = {f"p_{k}": torch.softmax(v.double(), dim=-1).to(device) for k, v in logits.items()}
        out["azimuth"] = decode_azimuth(out["p_azimuth"])
        el_centres = torch.as_tensor(elevation_centres(), dtype=torch.float64, device=device)
        out["elevation"] = el_centres[out["p_elevation"].argmax(dim=-1)]
        dist = torch.arange(DISTANCE_CLASSES, dtype=torch.float64, device=device) * DISTANCE_STEP_M
        out["distance"] = (out["p_distance"] * dist).sum(-1)
        out["lateral"] = torch.rad2deg(torch.asin(torch.sin(torch.deg2rad(out["azimuth"]))
                                                  * torch.cos(torch.deg2rad(out["elevation"]))))
        return out


def build_network(config: dict) -> LocalizerNet:
    """A fresh network of ``config`` ({"categories", "widths", "hidden"})."""
    return LocalizerNet(head_sizes(len(config["categories"])), tuple(config["widths"]), int(config["hidden"]))


def load_localizer(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> Localizer:
    """The localizer of checkpoint ``path`` (default: the packaged tas_loc weights) on ``device``; cached per
    path, weights sha256 and device. UserError naming the file if it is not a localizer checkpoint."""
    path = Path(path) if path is not None else WEIGHTS
    if not path.is_file():
        raise UserError(f"{path}: the localizer checkpoint does not exist"
                        + ("; train one with `tas-eval localizer train`." if path == WEIGHTS else "."))
    return _load(str(path.resolve()), file_sha256(path), str(device))


@functools.lru_cache(maxsize=4)
def _load(path: str, sha256: str, device: str) -> Localizer:
    from tas_eval.metrics.backbones import load_state_dict_strict, read_checkpoint

    ckpt = read_checkpoint(path, "localizer")
    config = ckpt.get("config")
    if not isinstance(config, dict) or not {"categories", "widths", "hidden"} <= set(config) or "model" not in ckpt:
        raise UserError(f"{path}: is not a localizer checkpoint (needs 'model' and a 'config' with categories, "
                        "widths and hidden).")
    network = build_network(config)
    load_state_dict_strict(network, ckpt["model"], path, "localizer")
    log.info("localizer %s, weights %s (sha256 %s)", config.get("id", LOCALIZER_ID), path, sha256[:12])
    return Localizer(network, config, sha256, path, device)

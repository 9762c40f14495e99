"""The cache of reference statistics of the generative metrics, keyed by content, never by folder name.

What is cached, per test split: the references' EmbeddingSet (clip and frame embeddings, logits, in
float64), i.e. the sufficient statistics of FD/FAD (their means and covariances follow exactly) plus
the per-item logits KL needs. Storing the embeddings rather than the D x D covariances keeps a file
small for wide backbones (Cnn14 with two ears: 4096-d).

The key is a JSON object of everything the embeddings depend on: backbone id, weights sha256,
backbone sample rate, channel mode, input sample rate, dataset manifest sha256, split and part, and
the version of the embedding procedure. The file is ``cache_root()/generative/<sha256 of the key>.npz``
and holds the key itself, which is checked on reading. A file that cannot be read is recomputed
(with a warning) and replaced; writes are atomic (temporary file, then rename).
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from pathlib import Path

import numpy as np

from tas_eval.io import atomic_path
from tas_eval.metrics.embeddings import EMBEDDING_VERSION, EmbeddingSet
from tas_eval.paths import cache_root

log = logging.getLogger(__name__)

FOLDER = "generative"


def reference_key(backbone, channel_mode: str, manifest_sha256: str, split: int, sr: int, part: str = "test") -> dict:
    """The cache key of the reference embeddings of ``part`` of ``split`` of a dataset for ``backbone``."""
    return {
        "backbone": backbone.id,
        "weights_sha256": backbone.weights_sha256,
        "backbone_sample_rate": int(backbone.sample_rate),
        "channel_mode": channel_mode,
        "input_sample_rate": int(sr),
        "manifest_sha256": manifest_sha256,
        "split": int(split),
        "part": part,
        "embedding_version": EMBEDDING_VERSION,
    }


def key_digest(key: dict) -> str:
    """sha256 of the key's canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def cache_path(key: dict) -> Path:
    """Where the entry of ``key`` lives."""
    return cache_root() / FOLDER / f"{key_digest(key)}.npz"


def load(key: dict):
    """The cached EmbeddingSet of ``key``, or None when there is none (or it is unreadable or of another key)."""
    path = cache_path(key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            stored = json.loads(str(z["key"]))
            if stored != key:
                log.warning("%s: holds another key than its name says; recomputing", path)
                return None
            logits = z["logits"] if bool(z["has_logits"]) else None
            emb = EmbeddingSet(item_ids=[str(i) for i in z["item_ids"]], channels=tuple(str(c) for c in z["channels"]),
                               clip=np.asarray(z["clip"], dtype=np.float64), frames=np.asarray(z["frames"], dtype=np.float64),
                               logits=None if logits is None else np.asarray(logits, dtype=np.float64))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        log.warning("%s: unreadable cache entry (%s); recomputing", path, exc)
        return None
    log.info("reference embeddings from the cache %s", path)
    return emb


def save(key: dict, emb: EmbeddingSet) -> Path:
    """Write ``emb`` as the entry of ``key``, atomically; returns its path."""
    path = cache_path(key)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, key=np.array(json.dumps(key, sort_keys=True)), item_ids=np.array(list(emb.item_ids), dtype=str),
                 channels=np.array(list(emb.channels), dtype=str), clip=emb.clip, frames=emb.frames,
                 has_logits=np.array(emb.logits is not None),
                 logits=emb.logits if emb.logits is not None else np.zeros((0,)))
    return path

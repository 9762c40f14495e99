"""The cache of reference statistics of the generative metrics, keyed by content, never by folder name.

What is cached, per test split: the references' EmbeddingSet (clip and frame embeddings, logits, in
float64), i.e. the sufficient statistics of FD/FAD (their means and covariances follow exactly) plus
the per-item logits KL needs. Storing the embeddings rather than the D x D covariances keeps a file
small for wide backbones (Cnn14 with two ears: 4096-d).

The key is a JSON object of everything the embeddings depend on: backbone id, weights sha256,
backbone sample rate, channel mode, input sample rate, dataset manifest sha256, split and part, and
the version of the embedding procedure. The file is ``cache_root()/generative/<sha256 of the key>.npz``
and holds the key itself and the sha256 of its contents (``content_sha256``), both checked on
reading: an entry rewritten under the same key, or truncated, empty or unreadable, is named in a
warning, recomputed and replaced. Writes are atomic (tas_eval.io).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from tas_eval.io import atomic_path, remove_leftovers
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


def content_sha256(emb: EmbeddingSet) -> str:
    """sha256 over what an entry holds: item ids, channel names, and the shape, dtype and bytes of every array."""
    h = hashlib.sha256()
    h.update(json.dumps([list(emb.item_ids), list(emb.channels)]).encode())
    for name, array in (("clip", emb.clip), ("frames", emb.frames), ("logits", emb.logits)):
        a = np.ascontiguousarray(np.zeros((0,)) if array is None else array, dtype=np.float64)
        h.update(f"{name}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def load(key: dict) -> EmbeddingSet | None:
    """The cached EmbeddingSet of ``key``; None (with a warning) when there is none or it cannot be trusted."""
    path = cache_path(key)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if json.loads(str(z["key"])) != key:
                log.warning("%s: holds another key than its name says; recomputing", path)
                return None
            logits = z["logits"] if bool(z["has_logits"]) else None
            emb = EmbeddingSet(item_ids=[str(i) for i in z["item_ids"]], channels=tuple(str(c) for c in z["channels"]),
                               clip=np.asarray(z["clip"], dtype=np.float64), frames=np.asarray(z["frames"], dtype=np.float64),
                               logits=None if logits is None else np.asarray(logits, dtype=np.float64))
            stored = str(z["content_sha256"]) if "content_sha256" in z.files else None
    except Exception as exc:  # numpy, zipfile and json raise many types for an empty or truncated file
        log.warning("%s: unreadable cache entry (%s: %s); recomputing", path, type(exc).__name__, exc)
        return None
    if stored != content_sha256(emb):
        log.warning("%s: its contents do not match the sha256 stored with them; recomputing", path)
        return None
    log.info("reference embeddings from the cache %s", path)
    return emb


def save(key: dict, emb: EmbeddingSet) -> Path:
    """Write ``emb`` as the entry of ``key``, atomically, with the sha256 of its contents; returns its path."""
    path = cache_path(key)
    remove_leftovers(path.parent)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, key=np.array(json.dumps(key, sort_keys=True)), item_ids=np.array(list(emb.item_ids), dtype=str),
                 channels=np.array(list(emb.channels), dtype=str), clip=emb.clip, frames=emb.frames,
                 has_logits=np.array(emb.logits is not None),
                 logits=emb.logits if emb.logits is not None else np.zeros((0,)),
                 content_sha256=np.array(content_sha256(emb)))
    return path

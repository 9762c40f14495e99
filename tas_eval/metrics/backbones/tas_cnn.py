"""tas_cnn: the offline default backbone, a small Cnn14-style classifier of the benchmark's source categories.

The standard backbones' weights (PANNs Cnn14, VGGish) cannot be downloaded here, so the harness
trains its own: Cnn14's design (log mel at 16 kHz with Cnn14's 16 kHz front end: window 512, hop 160,
64 mel bins, 50-8000 Hz; bn0 over mel bins; then, unlike Cnn14, a 2x2 average pooling stem; blocks
of two 3x3 conv + BN + ReLU with 2x2 average pooling; mean over frequency; max + mean over time; fc1 + ReLU = the embedding; a linear classifier)
at a width that trains on a CPU in minutes (blocks of 8-16-32-64 channels, a 64-d embedding).

It is trained by `tas-eval backbone train` on ISOLATED dry sources of the built-in benchmark (each
scene's sources re-synthesized alone with tas_eval.data.builtin.sources.synthesize_source at 16 kHz, so every
training example has one clean label): the sources of the train items of split 1, on random
crops (0.96 s) taken where the source sounds, with random gains. Held-out accuracy is measured on the sources
of the test items of split 1, one prediction per whole clip. The weights ship in weights/tas_cnn.pt;
weights/README.md has the command that rebuilds them and what it measured.

Checkpoint format: {"model": state_dict, "classes": [category, ...], "widths": [...],
"embedding_dim": int, "training": {...}} (readable with torch.load(weights_only=True)).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from tas_eval.errors import UserError
from tas_eval.metrics.backbones import Backbone, load_state_dict_strict, read_checkpoint, write_checkpoint
from tas_eval.paths import file_sha256
from tas_eval.metrics.backbones.panns import CONFIGS, ConvBlock, LogMelFrontEnd

log = logging.getLogger(__name__)

WEIGHTS = Path(__file__).resolve().parent / "weights" / "tas_cnn.pt"
SAMPLE_RATE, WINDOW, HOP, MEL_BINS, FMIN, FMAX = CONFIGS["16k"]
WIDTHS = (8, 16, 32, 64)
EMBEDDING_DIM = 64
TRAIN_SPLIT = 1

# Training recipe (the defaults `tas-eval backbone train` uses).
CROP_FRAMES = 96  # 0.96 s, the frame of FAD
BATCH = 32
STEPS = 400
LR = 2e-3
GAIN_DB = (-12.0, 12.0)  # random gain of a training crop, dB


class TasCnn(nn.Module):
    """Log mel (16 kHz, Cnn14 front end) -> bn0 -> 2x2 average pooling -> conv blocks -> mean over frequency -> max + mean over
    time -> fc1 + ReLU (embedding) -> fc_out (logits over ``num_classes`` categories)."""

    def __init__(self, num_classes: int, widths: tuple[int, ...] = WIDTHS, embedding_dim: int = EMBEDDING_DIM):
        super().__init__()
        front = LogMelFrontEnd(SAMPLE_RATE, WINDOW, HOP, MEL_BINS, FMIN, FMAX)
        self.spectrogram_extractor = front.spectrogram_extractor
        self.logmel_extractor = front.logmel_extractor
        self.bn0 = nn.BatchNorm2d(MEL_BINS)
        chans = (1,) + tuple(widths)
        self.blocks = nn.ModuleList(ConvBlock(chans[i], chans[i + 1]) for i in range(len(widths)))
        self.fc1 = nn.Linear(widths[-1], embedding_dim)
        self.fc_out = nn.Linear(embedding_dim, num_classes)
        self.dropout = nn.Dropout(0.2)

    def logmel(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, T) audio at 16 kHz -> (B, 1, frames, 64) log mel in dB (the fixed front end)."""
        return self.logmel_extractor(self.spectrogram_extractor(audio))

    def forward_logmel(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, frames, 64) log mel -> (embedding (B, D), logits (B, C))."""
        x = self.bn0(x.transpose(1, 3).contiguous()).transpose(1, 3).contiguous()
        # A 2x2 average pooling stem (20 ms x 2 mel bins) makes it ~4x cheaper to train on a CPU.
        x = F.avg_pool2d(x, 2)
        for block in self.blocks:
            x = self.dropout(block(x))
        x = x.mean(dim=3)
        x = x.max(dim=2).values + x.mean(dim=2)
        emb = F.relu(self.fc1(self.dropout(x)))
        return emb, self.fc_out(self.dropout(emb))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_logmel(self.logmel(audio))


class TasCnnBackbone(Backbone):
    """The tas_cnn classifier: 128-d embeddings, logits over the benchmark's source categories."""

    id = "tas_cnn"
    sample_rate = SAMPLE_RATE
    embedding_dim = EMBEDDING_DIM

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None, device="cpu") -> "TasCnnBackbone":
        path = Path(path) if path is not None else WEIGHTS
        if path == WEIGHTS and not path.is_file():
            raise UserError(f"{path}: the tas_cnn weights are missing; rebuild them with `tas-eval backbone train` "
                            f"(see {WEIGHTS.parent / 'README.md'}).")
        ckpt = read_checkpoint(path, "tas_cnn")
        for key in ("model", "classes", "widths", "embedding_dim"):
            if key not in ckpt:
                raise UserError(f"{path}: is not a tas_cnn checkpoint (no '{key}').")
        network = TasCnn(len(ckpt["classes"]), tuple(ckpt["widths"]), int(ckpt["embedding_dim"]))
        load_state_dict_strict(network, ckpt["model"], path, "tas_cnn")
        backbone = cls(network, device)
        backbone.classes = list(ckpt["classes"])
        backbone.num_classes = len(backbone.classes)
        backbone.embedding_dim = int(ckpt["embedding_dim"])
        backbone.weights_sha256 = file_sha256(path)
        backbone.checkpoint_path = str(path)
        return backbone

    def _forward(self, audio: torch.Tensor):
        # The five 2x2 poolings (stem and blocks) need at least 32 frames.
        min_len = 32 * HOP
        if audio.shape[-1] < min_len:
            audio = F.pad(audio, (0, min_len - audio.shape[-1]))
        return self.network(audio)


# ----------------------------------------------------------------------------------------- training


def _active_frames(active: list, num_frames: int) -> np.ndarray:
    """Boolean mask of the STFT frames (centres at f * HOP / SAMPLE_RATE seconds) inside the active intervals."""
    t = np.arange(num_frames) * HOP / SAMPLE_RATE
    mask = np.zeros(num_frames, dtype=bool)
    for a, b in active:
        mask |= (t >= a) & (t < b)
    return mask


def isolated_sources(benchmark, ids: list[str], front: nn.Module, desc: str) -> list[dict]:
    """Every source of the scenes ``ids``, synthesized alone (dry, 16 kHz): its category, log mel
    (frames, 64) float32 and the mask of frames where it sounds."""
    from tas_eval.data.builtin.sources import synthesize_source

    out = []
    for item_id in tqdm(ids, desc=desc, unit="scene"):
        scene = benchmark.scene(item_id)
        for k, src in enumerate(scene["sources"]):
            audio = synthesize_source(src["category"], float(scene["duration_s"]), [tuple(a) for a in src["active"]],
                                      int(src["seed"]), SAMPLE_RATE)
            with torch.no_grad():
                mel = front(torch.from_numpy(audio.astype(np.float32))[None])[0, 0].numpy()
            out.append({"item_id": item_id, "index": k, "category": src["category"], "logmel": mel,
                        "active": _active_frames(src["active"], mel.shape[0])})
    return out


def _crop_batch(sources: list[dict], by_class: list[list[int]], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """BATCH class-balanced crops of CROP_FRAMES frames centred on sounding frames, with random gains."""
    xs, ys = [], []
    for _ in range(BATCH):
        c = int(rng.integers(len(by_class)))
        while not by_class[c]:
            c = int(rng.integers(len(by_class)))
        s = sources[by_class[c][int(rng.integers(len(by_class[c])))]]
        mel, active = s["logmel"], s["active"]
        sounding = np.flatnonzero(active)
        centre = int(sounding[rng.integers(len(sounding))]) if len(sounding) else int(rng.integers(mel.shape[0]))
        start = int(np.clip(centre - CROP_FRAMES // 2, 0, max(0, mel.shape[0] - CROP_FRAMES)))
        crop = mel[start : start + CROP_FRAMES]
        # A gain of g dB adds g to every log-mel value (above the floor of silence).
        floor = 10 * np.log10(1e-10)
        crop = np.where(crop > floor + 1e-3, crop + rng.uniform(*GAIN_DB), crop)
        xs.append(crop)
        ys.append(c)
    return np.stack(xs)[:, None].astype(np.float32), np.asarray(ys)


@torch.no_grad()
def accuracy(network: TasCnn, sources: list[dict], classes: list[str], device) -> float:
    """Fraction of sources whose whole clip (all frames, silent parts too) is classified as their category."""
    network.eval()
    correct = 0
    for s in sources:
        x = torch.from_numpy(s["logmel"])[None, None].to(device)
        _, logits = network.forward_logmel(x)
        correct += int(classes[int(logits.argmax(dim=1))] == s["category"])
    return correct / max(1, len(sources))


@torch.no_grad()
def crop_accuracy(network: TasCnn, sources: list[dict], classes: list[str], device) -> tuple[float, int]:
    """(accuracy, count) over every non-overlapping 0.96 s window (96 frames) in which a source sounds throughout."""
    network.eval()
    correct = total = 0
    for s in sources:
        starts = [a for a in range(0, s["logmel"].shape[0] - CROP_FRAMES + 1, CROP_FRAMES) if s["active"][a : a + CROP_FRAMES].all()]
        if not starts:
            continue
        x = torch.from_numpy(np.stack([s["logmel"][a : a + CROP_FRAMES] for a in starts]))[:, None].to(device)
        _, logits = network.forward_logmel(x)
        correct += int((logits.argmax(dim=1).cpu() == classes.index(s["category"])).sum())
        total += len(starts)
    return correct / max(1, total), total


def train(benchmark, out: str | os.PathLike, device: str = "cpu", seed: int = 0, steps: int = STEPS,
          split: int = TRAIN_SPLIT) -> dict:
    """Train tas_cnn on the isolated sources of the train items of ``split``; write the checkpoint to ``out``.

    Returns the training record (also stored in the checkpoint): classes, counts, steps, seconds,
    train and held-out (test items of ``split``) accuracy, dataset id and manifest hash.
    """
    from tas_eval.data.builtin.sources import category_names

    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    classes = category_names()
    network = TasCnn(len(classes))
    front = nn.Sequential(network.spectrogram_extractor, network.logmel_extractor).eval()
    train_src = isolated_sources(benchmark, benchmark.split_ids(split, "train"), front, "tas_cnn: train sources")
    test_src = isolated_sources(benchmark, benchmark.split_ids(split, "test"), front, "tas_cnn: test sources")
    unknown = sorted({s["category"] for s in train_src + test_src} - set(classes))
    if unknown:
        raise UserError(f"{benchmark.root}: scenes use categories {unknown} that tas_eval.data.builtin.sources does not know.")
    by_class = [[i for i, s in enumerate(train_src) if s["category"] == c] for c in classes]

    network.to(device).train()
    opt = torch.optim.AdamW(network.parameters(), lr=LR, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps, pct_start=0.1)
    running = None
    bar = tqdm(range(steps), desc="tas_cnn: training", unit="step")
    for _ in bar:
        x, y = _crop_batch(train_src, by_class, rng)
        _, logits = network.forward_logmel(torch.from_numpy(x).to(device))
        loss = F.cross_entropy(logits, torch.from_numpy(y).to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        bar.set_postfix(loss=f"{running:.3f}")
    network.eval()
    record = {
        "dataset_id": benchmark.id,
        "manifest_sha256": benchmark.content_hash,
        "split": split,
        "seed": seed,
        "steps": steps,
        "batch": BATCH,
        "crop_frames": CROP_FRAMES,
        "train_sources": len(train_src),
        "test_sources": len(test_src),
        "train_accuracy": accuracy(network, train_src, classes, device),
        "held_out_accuracy": accuracy(network, test_src, classes, device),
        "held_out_frame_accuracy": crop_accuracy(network, test_src, classes, device)[0],
        "held_out_frames": crop_accuracy(network, test_src, classes, device)[1],
        "seconds": round(time.perf_counter() - start, 1),
    }
    ckpt = {"model": {k: v.detach().cpu() for k, v in network.state_dict().items()}, "classes": classes,
            "widths": list(WIDTHS), "embedding_dim": EMBEDDING_DIM, "training": record}
    record.update(write_checkpoint(ckpt, out))
    return record

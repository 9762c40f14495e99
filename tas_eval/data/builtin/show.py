"""What `tas-eval data show ITEM` shows of a built item: its annotations as text, and a figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tas_eval.data.builtin.benchmark import Benchmark


def describe(bench: Benchmark, item_id: str) -> str:
    """Human-readable annotation of one item: scene, dense text as time ranges, clip prompts."""
    scene, ann = bench.scene(item_id), bench.annotation(item_id)
    lines = [f"item {item_id} of {bench.id}: {scene['duration_s']:.1f} s, room "
             f"{' x '.join(f'{v:.1f}' for v in scene['room']['size_m'])} m, RT60 {scene['room']['rt60_s']:.2f} s"]
    for s in scene["sources"]:
        traj = " -> ".join(f"az {p['azimuth']:+.0f} el {p['elevation']:+.0f} {p['distance']:.1f} m" for p in s["trajectory"])
        active = ", ".join(f"{a:.1f}-{b:.1f}" for a, b in s["active"])
        lines.append(f"  source {s['category']}: {traj}; active {active} s{'; occluded' if s['occluded'] else ''}")
    lines.append(f"  visual cases: {', '.join(scene['visual']['cases']) or 'none'}")
    lines.append("dense text (0.1 s frames, merged where unchanged):")
    frames = ann["frames"]
    start = 0
    for k in range(1, len(frames) + 1):
        if k == len(frames) or frames[k]["text"] != frames[start]["text"]:
            end = frames[k - 1]["t0"] + 1 / ann["frame_rate"]
            lines.append(f"  {frames[start]['t0']:5.1f}-{end:5.1f} s  {frames[start]['text']}")
            start = k
    lines.append("clip prompts:")
    for p in ann["clip_prompts"]:
        lines.append(f"  [{p['type']}{', held out' if p.get('held_out') else ''}] {p['text']}")
    return "\n".join(lines)


def write_figure(bench: Benchmark, item_id: str, path: Path) -> None:
    """PNG with both ears' spectrograms, the ILD over time (dB, per 0.1 s frame) and one video frame."""
    import matplotlib

    matplotlib.use("Agg")
    import librosa
    import matplotlib.pyplot as plt

    from tas_eval.data.builtin.frames import render_frames

    audio = bench.binaural(item_id)
    sr = bench.sample_rate
    hop = sr // 10
    n = audio.shape[1] // hop
    energy = (audio[:, : n * hop].reshape(2, n, hop) ** 2).mean(axis=2)
    ild = 10 * np.log10(np.maximum(energy[0], 1e-12) / np.maximum(energy[1], 1e-12))
    scene = bench.scene(item_id)
    frame = render_frames(scene, [scene["duration_s"] / 2])[0]

    fig, axes = plt.subplots(4, 1, figsize=(9, 11), gridspec_kw={"height_ratios": [1, 1, 0.7, 1.4]})
    for ax, ch, name in ((axes[0], 0, "left ear"), (axes[1], 1, "right ear")):
        spec = librosa.amplitude_to_db(np.abs(librosa.stft(audio[ch], n_fft=512, hop_length=160)), ref=np.max)
        ax.imshow(spec, origin="lower", aspect="auto", extent=[0, audio.shape[1] / sr, 0, sr / 2000], vmin=-80, vmax=0)
        ax.set_ylabel("kHz")
        ax.set_title(f"{item_id}: {name}")
    axes[2].plot((np.arange(n) + 0.5) * 0.1, ild)
    axes[2].axhline(0, color="grey", lw=0.5)
    axes[2].set_ylabel("ILD (dB, + = left)")
    axes[2].set_xlabel("time (s)")
    axes[3].imshow(frame)
    axes[3].set_title(f"frame at {scene['duration_s'] / 2:.1f} s")
    axes[3].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)

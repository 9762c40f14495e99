"""Speed of the trained baselines: training steps/s, inference real-time factor, batched vs per-window.

    python3 benchmarks/models_speed.py [--profile small] [--models ours_saf,mono2binaural_visual]
                                       [--device cpu|cuda] [--steps 3] [--seconds 10] [--train-only]
                                       [--precisions fp32,bf16]

For each model, at the settings of ``--profile`` (its configs dict), from a fresh network:
  - training: ``--steps`` optimizer steps on random crops and prompts (after one warm-up step);
    steps per second (wall) and CPU seconds per step of this process;
  - inference: ``spatialize`` of one ``--seconds`` clip of noise with a dense prompt per 0.1 s frame
    (visual models get random frames); real-time factor = wall seconds / audio seconds;
  - sliding-window inference of that clip three ways: all windows in one call per sampling run,
    the chunks that ``spatialize`` uses on this device (baselines/common/inference.py:window_chunk),
    and a loop of one window per call (``max_batch=1``); the loop's time over each batched time, and
    the largest absolute difference between the outputs (the same seeds are used, so it should be ~1e-6).
``--train-only`` skips the inference figures (the paper profile's 50-step sampling takes hours on a CPU).
``--precisions`` times each model in each precision of ``tas-eval run --precision`` (tas_eval.device.autocast:
bf16 runs the networks under bfloat16 autocast), one row each.
The device, torch's thread count and the torch version are printed with the numbers: CPU figures
depend on how many other jobs share the machine, so compare rows of one run only.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from baselines.common.inference import window_chunk
from tas_eval.audio import mono_from_binaural, sliding_window_inference, window_starts
from tas_eval.device import autocast
from tas_eval.models import get_model_class

# Sep-Stereo and PseudoBinaural are APNet at inference; their training steps add separation pairs or pseudo
# crops to APNet's, which random crops cannot stand in for (their fit time is in their results files).
DEFAULT_MODELS = ["ours", "ours_saf", "audio_only", "add", "conv", "ours_saf_tokens", "mono2binaural_text",
                  "mono2binaural_visual", "apnet_text", "apnet_visual"]
TEXTS = ["the cello on the left, the piano on the right", "the singer in the center", "silence",
         "the drum on the right", "the guitar on the left, the harp in the center, the violin on the right"]


class RandomCrops:
    """Stand-in for CropSampler: random audio, prompts and frames of the right shapes."""

    def __init__(self, crop_s: float, sr: int = 16000, seed: int = 0):
        self.length = int(round(crop_s * sr))
        self.rng = np.random.default_rng(seed)

    def batch(self, step: int, batch_size: int) -> dict:
        binaural = torch.from_numpy(self.rng.standard_normal((batch_size, 2, self.length)).astype(np.float32))
        mono = mono_from_binaural(binaural)
        return {"mono": mono, "binaural": binaural, "diff": binaural[:, 0:1] - binaural[:, 1:2],
                "prompts": [TEXTS[(step + i) % len(TEXTS)] for i in range(batch_size)],
                "item_ids": [f"x{i}" for i in range(batch_size)], "centres_s": [0.5] * batch_size}

    def frames(self, item_ids, times_s, size) -> np.ndarray:
        return self.rng.integers(0, 256, (len(item_ids), size[0], size[1], 3), dtype=np.uint8)


def random_frames(times_s, size=(224, 224)) -> np.ndarray:
    """A frame function of the runner's contract that draws noise images (rendering cost excluded)."""
    return np.random.default_rng(0).integers(0, 256, (len(np.atleast_1d(times_s)), size[0], size[1], 3), dtype=np.uint8)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(name: str, profile: str, device: str, steps: int, seconds: float, train_only: bool = False) -> dict:
    cls = get_model_class(name)
    config = cls.configs[profile]
    model = cls()
    torch.manual_seed(0)
    model._build(config)
    model.to(device)
    sampler = RandomCrops(float(config["crop_s"]))
    optimizer = torch.optim.Adam(model.net.parameters(), lr=1e-4)
    batch_size = int(config["batch_size"])

    def train_step(step: int) -> None:
        loss = model.batch_loss(sampler, sampler.batch(step, batch_size), torch.Generator().manual_seed(step))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.net.train()
    train_step(0)  # warm-up (allocations, text cache)
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    for k in range(1, steps + 1):
        train_step(k)
    sync(device)
    train_wall, train_cpu = (time.perf_counter() - wall) / steps, (time.process_time() - cpu) / steps
    trained = {"model": name, "train_steps_per_s": 1.0 / train_wall, "train_cpu_s_per_step": train_cpu,
               "batch": batch_size, "crop_s": float(config["crop_s"]), "steps": int(config["steps"])}
    if train_only:
        return trained
    model.net.eval()

    sr = 16000
    n = int(seconds * sr)
    mono = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 1, n)).astype(np.float32) * 0.1).to(device)
    prompt = {"text": TEXTS[0], "frames": [{"t0": k / 10, "text": TEXTS[k % len(TEXTS)]} for k in range(int(seconds * 10))]}
    guidance = cls.guidance
    prompts = [prompt] if "text" in guidance else None
    frames = [random_frames] if "visual" in guidance else None
    torch.manual_seed(0)
    model.spatialize(mono[..., : int(config["crop_s"] * sr) * 2], sr, prompts, frames)  # warm-up
    sync(device)
    wall = time.perf_counter()
    model.spatialize(mono, sr, prompts, frames)
    sync(device)
    rtf = (time.perf_counter() - wall) / seconds

    if hasattr(model, "diffusion"):
        predict = model.window_predictor(prompt if prompts else None, sr, base_seed=7)
    else:
        predict = model.window_predictor(prompt if prompts else None, random_frames if frames else None, sr)
    window, hop = int(round(float(config["crop_s"]) * sr)), int(round(float(config["hop_s"]) * sr))
    chunk = window_chunk(config, window, torch.device(device), cls.cpu_chunk_samples)

    def timed(max_batch):
        sync(device)
        start = time.perf_counter()
        out = sliding_window_inference(predict, mono[0], window, hop, max_batch)
        sync(device)
        return out, time.perf_counter() - start

    with torch.no_grad():
        timed(chunk)  # warm-up at the chunk size
        every, t_every = timed(None)
        chunked, t_chunk = timed(chunk)
        looped, t_looped = timed(1)
    diff = max(float((every - looped).abs().max()), float((chunked - looped).abs().max()))
    return {**trained, "rtf": rtf,
            "windows": len(window_starts(n, window, hop)), "chunk": chunk or 0,
            "all_s": t_every, "chunked_s": t_chunk, "looped_s": t_looped,
            "speedup_all": t_looped / t_every, "speedup_chunked": t_looped / t_chunk, "max_abs_diff": diff}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="small", help="config profile of the models (tiny, small, paper)")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the inference clip")
    parser.add_argument("--train-only", action="store_true", help="time training only")
    parser.add_argument("--precisions", default="fp32", help="comma-separated, of fp32 and bf16")
    args = parser.parse_args()
    runs = [(name.strip(), p.strip()) for name in args.models.split(",") for p in args.precisions.split(",")]
    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    print(f"device {args.device} ({device_name}), torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"profile {args.profile}" + ("" if args.train_only else f", {args.seconds:g} s clip"))
    if args.train_only:
        print(f"{'model':22s} {'prec':>4s} {'batch':>5s} {'train step/s':>12s} {'cpu s/step':>10s} {'profile steps':>13s} "
              f"{'hours for them':>14s}")
        for name, precision in runs:
            with autocast(args.device, precision):
                r = measure(name, args.profile, args.device, args.steps, args.seconds, train_only=True)
            print(f"{r['model']:22s} {precision:>4s} {r['batch']:5d} {r['train_steps_per_s']:12.4f} "
                  f"{r['train_cpu_s_per_step']:10.2f} "
                  f"{r['steps']:13d} {r['steps'] / r['train_steps_per_s'] / 3600:14.2f}", flush=True)
        return
    print("all: every window in one call; chunk: the windows per call spatialize uses here (0 = all); "
          "loop: one window per call; x: loop time / batched time")
    header = (f"{'model':22s} {'prec':>4s} {'batch':>5s} {'train step/s':>12s} {'cpu s/step':>10s} {'RTF':>7s} {'windows':>7s} "
              f"{'chunk':>5s} {'all s':>6s} {'chunk s':>7s} {'loop s':>7s} {'x all':>5s} {'x chunk':>7s} {'max|diff|':>9s}")
    print(header)
    for name, precision in runs:
        with autocast(args.device, precision):
            r = measure(name, args.profile, args.device, args.steps, args.seconds)
        print(f"{r['model']:22s} {precision:>4s} {r['batch']:5d} {r['train_steps_per_s']:12.3f} {r['train_cpu_s_per_step']:10.2f} "
              f"{r['rtf']:7.3f} {r['windows']:7d} {r['chunk']:5d} {r['all_s']:6.2f} {r['chunked_s']:7.2f} "
              f"{r['looped_s']:7.2f} {r['speedup_all']:5.1f} {r['speedup_chunked']:7.1f} {r['max_abs_diff']:9.1e}",
              flush=True)


if __name__ == "__main__":
    main()

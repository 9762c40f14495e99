"""The transforms the metrics share: librosa-exact STFT, scipy-exact Hilbert envelope, and a cache.

STFT (``stft``): frames centred on ``t * hop`` (``center=True``), the signal padded by ``n_fft // 2``
on both sides with zeros (``pad_mode="constant"``, librosa >= 0.9) or by reflection (``"reflect"``,
torch.stft's default, which auraloss and BinauralSpeechSynthesis use); a periodic Hann window of
``win`` samples zero-padded to ``n_fft`` in the middle (librosa's ``pad_center``). The result equals
``librosa.stft(x, n_fft, hop, win, center=True, pad_mode=...)`` transposed to (..., frames, bins).

Hilbert envelope (``hilbert_envelope``): ``|scipy.signal.hilbert(x)|`` over the whole signal, computed
as ``sqrt(x^2 + H(x)^2)`` with H the Hilbert transform (spectrum -i X on positive frequencies, 0 at DC
and Nyquist), which is what scipy's analytic signal contains.

``TransformCache`` lets the metrics evaluated on one batch share one transform per (signal,
parameters, dtype): the batch is transformed once, not once per metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from tas_eval.errors import UserError


@dataclass(frozen=True)
class STFTParams:
    """STFT parameters in samples; ``pad_mode`` is the centre padding, "constant" (zeros) or "reflect"."""

    n_fft: int
    hop: int
    win: int
    pad_mode: str = "constant"


# The FAIR-Play line of work (2.5D-Visual-Sound, PseudoBinaural): librosa.stft(n_fft=512, hop_length=160,
# win_length=400), librosa >= 0.9 zero padding.
FAIRPLAY_STFT = STFTParams(512, 160, 400, "constant")


def hann_window(params: STFTParams, dtype: torch.dtype, device: torch.device | str = "cpu") -> torch.Tensor:
    """Periodic Hann window of ``win`` samples, zero-padded to ``n_fft`` in the middle (librosa's pad_center)."""
    window = torch.zeros(params.n_fft, dtype=dtype, device=device)
    left = (params.n_fft - params.win) // 2
    window[left : left + params.win] = torch.hann_window(params.win, periodic=True, dtype=dtype, device=device)
    return window


def frames(x: torch.Tensor, params: STFTParams, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The centred, padded frames of real ``x`` (..., T) in ``dtype``, unwindowed: a view of shape
    (prod(...), frames, n_fft) over one padded copy of the signal (see the module docstring)."""
    length = x.shape[-1]
    pad = params.n_fft // 2
    if params.pad_mode == "reflect" and length <= pad:
        raise UserError(f"A clip of {length} samples is too short for a {params.n_fft}-point STFT with reflect padding "
                        f"(it needs more than {pad} samples).")
    flat = x.reshape(-1, 1, length).to(dtype)
    padded = torch.nn.functional.pad(flat, (pad, pad), mode=params.pad_mode).squeeze(1)
    return padded.unfold(-1, params.n_fft, params.hop)


def stft(x: torch.Tensor, params: STFTParams, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Complex STFT of real ``x`` (..., T) computed in ``dtype``: (..., frames, n_fft // 2 + 1).

    Equal to librosa.stft with the same parameters, transposed (see the module docstring).
    """
    spec = torch.fft.rfft(frames(x, params, dtype) * hann_window(params, dtype, x.device), dim=-1)
    return spec.reshape(*x.shape[:-1], spec.shape[-2], spec.shape[-1])


def power(spec: torch.Tensor) -> torch.Tensor:
    """|spec|^2 of a complex tensor, as a real tensor of the matching precision."""
    # The squares of .real and .imag give the same bits as squaring the interleaved view and adding
    # the pairs, and avoid abs(), whose hypot is several times slower on a CPU.
    return spec.real.square() + spec.imag.square()


def whole_batches(device: torch.device | str) -> bool:
    """Whether the metrics take whole batches and whole spectra at once on ``device``: on a GPU, yes; on a CPU
    one clip (and for mrstft one block of frames) at a time, where big temporaries fall out of the caches.
    The values are the same either way (tests/unit/test_metrics_signal.py runs the GPU layout on a CPU)."""
    return torch.device(device).type == "cuda"


def item_chunks(num_items: int, device: torch.device) -> list[slice]:
    """Slices of the batch for the large transforms (``whole_batches``)."""
    step = num_items if whole_batches(device) else 1
    return [slice(i, i + step) for i in range(0, num_items, step)]


def hilbert_envelope(x: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``|scipy.signal.hilbert(x)|`` along the last axis (the whole signal at once), in ``dtype``."""
    x = x.to(dtype)
    n = x.shape[-1]
    spec = torch.fft.rfft(x, dim=-1)
    # -i X on the positive frequencies; DC and (for even n) Nyquist carry no Hilbert component.
    quad = torch.complex(spec.imag, -spec.real)
    quad[..., 0] = 0
    if n % 2 == 0:
        quad[..., -1] = 0
    h = torch.fft.irfft(quad, n=n, dim=-1)
    return torch.sqrt(x * x + h * h)


class TransformCache:
    """Memo of transforms of the tensors of one batch, keyed by (tensor identity, name, parameters).

    It keeps a reference to every source tensor, so an identity cannot be reused by another tensor
    while the cache lives. Create one per batch and drop it afterwards.
    """

    def __init__(self):
        self._store: dict[tuple, tuple[tuple[torch.Tensor, ...], torch.Tensor]] = {}

    def get(self, sources: tuple[torch.Tensor, ...], key: tuple, compute: Callable[[], torch.Tensor]):
        """The memoised ``compute()`` for ``sources`` and ``key``."""
        full_key = (tuple(id(s) for s in sources), key)
        hit = self._store.get(full_key)
        if hit is not None and all(a is b for a, b in zip(hit[0], sources)):
            return hit[1]
        value = compute()
        self._store[full_key] = (sources, value)
        return value


def memo(cache: TransformCache | None, sources: tuple[torch.Tensor, ...], key: tuple, compute: Callable):
    """``compute()`` through ``cache`` when there is one."""
    return compute() if cache is None else cache.get(sources, key, compute)


def cached_stft(x: torch.Tensor, params: STFTParams, dtype: torch.dtype, cache: TransformCache | None) -> torch.Tensor:
    """``stft(x, params, dtype)``, shared through ``cache``."""
    return memo(cache, (x,), ("stft", params, dtype), lambda: stft(x, params, dtype))


def cached_power(x: torch.Tensor, params: STFTParams, dtype: torch.dtype, cache: TransformCache | None) -> torch.Tensor:
    """``|stft(x)|^2``, shared through ``cache``."""
    return memo(cache, (x,), ("power", params, dtype), lambda: power(cached_stft(x, params, dtype, cache)))


def cached_envelope(x: torch.Tensor, dtype: torch.dtype, cache: TransformCache | None) -> torch.Tensor:
    """``hilbert_envelope(x, dtype)``, shared through ``cache``."""
    return memo(cache, (x,), ("envelope", dtype), lambda: hilbert_envelope(x, dtype))

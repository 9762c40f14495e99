"""Gaussian diffusion (DDPM, Ho et al. 2020) with a DDPM ancestral sampler and a DDIM sampler.

The TAS paper (seed 000, eqs. 3-4) diffuses the difference signal a = L - R over N steps and learns
the reverse process conditioned on the mono audio and the prompt; it gives no schedule, so the
defaults are DiffWave's (Kong et al. 2021), whose architecture the TAS spatialization network
follows: N = 50 steps, betas linear from 1e-4; the last beta must make abar_N = prod(1 - beta) small
for the data's scale (0.05, DiffWave's value for waveforms of small amplitude, leaves abar_N = 0.28).

A denoiser is any function ``denoise(x_t (N, C, T), t (N,) long) -> prediction`` of the noise
(``parameterization="eps"``, as DiffWave) or of the clean signal (``"x0"``). Sampling noise comes
from one torch.Generator per row, so a row's result does not depend on which other rows share
its batch (batched and per-window inference give the same output).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class GaussianDiffusion:
    """A linear-beta DDPM schedule of ``steps`` steps and its training loss and samplers."""

    def __init__(self, steps: int = 50, beta_start: float = 1e-4, beta_end: float = 0.25, parameterization: str = "eps"):
        if parameterization not in ("eps", "x0"):
            raise ValueError(f"parameterization must be 'eps' or 'x0', not {parameterization!r}")
        self.steps = steps
        self.parameterization = parameterization
        self.betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
        self.alphas = 1.0 - self.betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)

    @property
    def terminal_alpha_bar(self) -> float:
        """abar_N: the share of signal power left at the last step (sampling assumes it is ~0)."""
        return float(self.alpha_bars[-1])

    def _ab(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return self.alpha_bars.to(like.device)[t].to(like.dtype).view(-1, *([1] * (like.ndim - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise (t is 0-based: t = 0 is the first step)."""
        ab = self._ab(t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def loss(self, denoise: Denoiser, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean squared error of the prediction at a uniformly drawn step (the simple DDPM loss)."""
        t = torch.randint(0, self.steps, (x0.shape[0],), generator=generator, device="cpu").to(x0.device)
        noise = torch.randn(x0.shape, generator=generator, device="cpu").to(x0.device, x0.dtype)
        pred = denoise(self.q_sample(x0, t, noise), t)
        target = noise if self.parameterization == "eps" else x0
        return torch.mean((pred - target) ** 2)

    def _x0_eps(self, x_t: torch.Tensor, t: torch.Tensor, pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # the sampler's state keeps x_t's precision (float32) when the network ran under bfloat16 autocast
        pred = pred.to(torch.promote_types(pred.dtype, x_t.dtype))
        ab = self._ab(t, x_t)
        if self.parameterization == "eps":
            eps = pred
            x0 = (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()
        else:
            x0 = pred
            eps = (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()
        return x0, eps

    @staticmethod
    def _noise(shape: Sequence[int], generators: list[torch.Generator], like: torch.Tensor | None = None, device=None) -> torch.Tensor:
        rows = [torch.randn(tuple(shape[1:]), generator=g) for g in generators]
        out = torch.stack(rows)
        return out.to(device if like is None else like.device)

    @torch.no_grad()
    def sample(self, denoise: Denoiser, shape: Sequence[int], seeds: Sequence[int], sampler: str = "ddpm",
               sample_steps: int | None = None, device="cpu") -> torch.Tensor:
        """Draw ``shape[0]`` samples; row i uses its own generator seeded by ``seeds[i]``.

        ``sampler="ddpm"``: ancestral sampling through all ``steps`` (posterior variance beta-tilde).
        ``sampler="ddim"``: deterministic DDIM (eta = 0) over ``sample_steps`` evenly spaced steps.
        """
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        x = self._noise(shape, generators, device=device)
        if sampler == "ddpm":
            for n in reversed(range(self.steps)):
                t = torch.full((shape[0],), n, dtype=torch.long, device=device)
                x0, _ = self._x0_eps(x, t, denoise(x, t))
                ab = self.alpha_bars[n].item()
                ab_prev = self.alpha_bars[n - 1].item() if n > 0 else 1.0
                beta = self.betas[n].item()
                # Mean of q(x_{n-1} | x_n, x0) (Ho et al. eq. 7).
                mean = (ab_prev ** 0.5 * beta / (1 - ab)) * x0 + ((1 - beta) ** 0.5 * (1 - ab_prev) / (1 - ab)) * x
                if n > 0:
                    var = beta * (1 - ab_prev) / (1 - ab)
                    x = mean + var ** 0.5 * self._noise(shape, generators, like=x)
                else:
                    x = mean
            return x
        if sampler == "ddim":
            count = min(self.steps, sample_steps or self.steps)
            ts = torch.linspace(self.steps - 1, 0, count).round().long().tolist()
            for i, n in enumerate(ts):
                t = torch.full((shape[0],), n, dtype=torch.long, device=device)
                x0, eps = self._x0_eps(x, t, denoise(x, t))
                if i + 1 < len(ts):
                    ab_prev = self.alpha_bars[ts[i + 1]].item()
                    x = ab_prev ** 0.5 * x0 + (1 - ab_prev) ** 0.5 * eps
                else:
                    x = x0
            return x
        raise ValueError(f"sampler must be 'ddpm' or 'ddim', not {sampler!r}")

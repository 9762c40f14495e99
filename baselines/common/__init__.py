"""Shared building blocks of the baselines: prompt parser, text and visual encoders, UNet, diffusion."""

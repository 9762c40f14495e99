"""Reimplementations of published models and training-free baselines, registered through tas_eval.models."""

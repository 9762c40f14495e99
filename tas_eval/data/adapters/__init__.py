"""Adapters for the real datasets in their published layouts: FAIR-Play, TASBench-style dense
annotations and SpatialTAS-style prompt files."""

from tas_eval.data.adapters.fairplay import FairPlay
from tas_eval.data.adapters.spatialtas import SpatialTAS, load_spatialtas
from tas_eval.data.adapters.tasbench import load_tasbench

__all__ = ["FairPlay", "SpatialTAS", "load_spatialtas", "load_tasbench"]

"""The built-in benchmark: synthesized deterministically from measured HRIRs and sampled sources
(build.py), read through the dataset protocol (benchmark.py)."""

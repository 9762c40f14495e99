"""tas-eval: evaluation and benchmarking harness for text-guided audio spatialization."""

__version__ = "0.1.0"

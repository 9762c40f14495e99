"""The built-in benchmark (built deterministically from measured HRIRs and sampled sources) and
adapters for the real datasets in their published layouts."""

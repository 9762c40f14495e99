"""Datasets: the protocol every dataset meets (protocol.py), the registry (registry.py), the built-in
benchmark (builtin/) and adapters for real datasets in their published layouts (adapters/)."""

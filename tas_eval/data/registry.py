"""The dataset registry: built-ins by name, third-party datasets through the ``tas_eval.datasets``
entry-point group, e.g. in a package's pyproject.toml::

    [project.entry-points."tas_eval.datasets"]
    my_data = "my_package.data:MyDataset"       # a tas_eval.data.protocol.Dataset subclass
"""

from __future__ import annotations

from tas_eval.data.protocol import DataOptions, Dataset
from tas_eval.registry import Registry

DATASETS = Registry("dataset", "tas_eval.datasets")
DEFAULT_DATASET = "builtin"

_BUILTIN = {
    "builtin": "tas_eval.data.builtin.benchmark:Benchmark",
    "fairplay": "tas_eval.data.adapters.fairplay:FairPlay",
    "spatialtas": "tas_eval.data.adapters.spatialtas:SpatialTAS",
}
for _name, _target in _BUILTIN.items():
    DATASETS.add_lazy(_name, _target)


def open_dataset(name: str = DEFAULT_DATASET, options: DataOptions | None = None,
                 build_if_missing: bool = False) -> Dataset:
    """The dataset registered under ``name``, opened with ``options`` (UserError with "did you mean" if unknown)."""
    return DATASETS.get(name).open(options or DataOptions(), build_if_missing=build_if_missing)


def dataset_classes() -> dict[str, type]:
    """Every registered dataset class by name, built-ins first."""
    names = DATASETS.names()
    ordered = [n for n in _BUILTIN if n in names] + [n for n in names if n not in _BUILTIN]
    return {n: DATASETS.get(n) for n in ordered}

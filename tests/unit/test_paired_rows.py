"""scripts/paired_rows.py pairs per-item metrics per item and the question-answering gaps per question."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "paired_rows.py"


@pytest.fixture(scope="module")
def paired_rows():
    spec = importlib.util.spec_from_file_location("paired_rows", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def answers(item: str, rights: dict[str, bool]) -> list[dict]:
    return [{"id": f"{item}-{kind}", "right_prediction": r, "right_reference": True} for kind, r in rights.items()]


def test_a_per_item_metric_pairs_the_items_both_rows_scored(paired_rows):
    first = {"a": {"side_acc": 0.5}, "b": {"side_acc": 1.0}, "c": {"side_acc": None}}
    other = {"a": {"side_acc": 0.25}, "c": {"side_acc": 0.1}}
    assert paired_rows.pairs_of("side_acc", first, other) == [(0.5, 0.25)]


def test_the_mean_paired_difference_of_a_gap_is_the_difference_of_the_recorded_gaps(paired_rows):
    """Row 1 gets 1 of 3 direction questions right, row 2 gets 3 of 3; with the references right on all,
    the gaps are 66.7 and 0 points, so gap(row 1) - gap(row 2) = +66.7. The doa question is not a
    direction question and is left out."""
    first = {"c1": {"qa": answers("c1", {"left_right-0": True, "above-0": False, "doa-0": True})},
             "c2": {"qa": answers("c2", {"left_right-0": False})}}
    other = {"c1": {"qa": answers("c1", {"left_right-0": True, "above-0": True, "doa-0": False})},
             "c2": {"qa": answers("c2", {"left_right-0": True})}}
    pairs = paired_rows.pairs_of("qa_direction", first, other)
    assert len(pairs) == 3
    assert sum(a - b for a, b in pairs) / len(pairs) == pytest.approx((100 - 100 / 3) - 0.0)
    assert paired_rows.pairs_of("qa_doa", first, other) == [(-100.0, -0.0)]

#!/usr/bin/python3
"""The experiment report's statistics on hand-made rows (no training)."""

import math
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "experiments"))
import report  # noqa: E402
from report import Row  # noqa: E402


def rows_of(scheme, setting, dice_by_subject, structures=("knee/femur", "knee/tibia")):
    """Rows giving each subject the same Dice on every bone (so its score is that Dice)."""
    return [Row("schemes", scheme, setting, 0, "knee", subject, s, dice, 1.0, 0.5)
            for subject, dice in dice_by_subject.items() for s in structures]


class ReportTest(unittest.TestCase):
    def test_subject_score_is_mean_over_bones_and_undefined_distances_are_counted(self):
        rows = [Row("schemes", "a", "central", 0, "knee", "s1", "knee/femur", 0.8, 2.0, 1.0),
                Row("schemes", "a", "central", 0, "knee", "s1", "knee/tibia", 0.6, math.inf, 1.0)]
        self.assertAlmostEqual(report.subject_scores(rows, "a", "central")[("knee", "s1")], 0.7)
        self.assertTrue(math.isnan(report.subject_scores(rows, "a", "central", "hd95")[("knee", "s1")]))
        self.assertEqual(report.mean_sd([0.5, math.nan, 0.7]), "0.600 ± 0.141 (1 undefined)")
        self.assertEqual(report.mean_sd([math.nan]), "–")

    def test_wilcoxon_pairs_subjects_and_matches_the_exact_distribution(self):
        # Baselines spread widely, gains small and of mixed sign: only the right pairing gives
        # these differences (ranks 1..6, the smallest negative), so exact two-sided p = 4 / 2^6.
        base = [0.2, 0.9, 0.5, 0.3, 0.7, 0.6]
        gain = [0.01, 0.02, -0.005, 0.03, 0.015, 0.025]
        full = {f"s{i}": b + g for i, (b, g) in enumerate(zip(base, gain))}
        rows = (rows_of("full", "fedbn", full)
                + rows_of("individual", "local", {f"s{i}": b for i, b in enumerate(base)}))
        x, y = report.paired(rows, ("full", "fedbn"), ("individual", "local"))
        self.assertEqual(len(x), 6)
        for a, b, g in zip(x, y, gain):
            self.assertAlmostEqual(a - b, g)
        self.assertAlmostEqual(report.wilcoxon_p(x, y), 4 / 64)
        table = report.wilcoxon_table(rows, {"full": "full"}, ("full", "fedbn"))
        self.assertIn("| individual, local | 6 | +0.016 | 5 / 1 | 0.0625 |", table)

    def test_identical_schemes_have_no_p_value_and_unpaired_subjects_are_dropped(self):
        same = {"s1": 0.5, "s2": 0.6}
        rows = rows_of("full", "fedbn", same) + rows_of("shared", "central", dict(same, s3=0.9))
        x, y = report.paired(rows, ("full", "fedbn"), ("shared", "central"))
        self.assertEqual(len(x), 2)
        self.assertTrue(math.isnan(report.wilcoxon_p(x, y)))

    def test_federated_over_central_ratio(self):
        rows = (rows_of("full", "central", {"s1": 0.8, "s2": 0.6})
                + rows_of("full", "fedbn", {"s1": 0.7, "s2": 0.7})
                + rows_of("full", "fedavg", {"s1": 0.35, "s2": 0.35}))
        table = report.ratio_table(rows, {"full": "full"})
        self.assertIn("| full | 0.700 | 0.500 | 1.000 |", table)


if __name__ == "__main__":
    unittest.main()

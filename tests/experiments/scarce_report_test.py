#!/usr/bin/python3
"""The scarce-site report's statistics on hand-made rows: unit pairing, Holm, effect size."""

import math
import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "experiments"))
import scarce_report  # noqa: E402


def row(scheme, fold, seed, site, subject, dice, joint="shoulder"):
    return {"scheme": scheme, "fold": fold, "seed": seed, "site": site, "joint": joint,
            "subject": subject, "dice": dice}


class ScarceReportTest(unittest.TestCase):
    def test_holm_by_hand(self):
        # Sorted 0.01, 0.03, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.03), max(0.06, 1 x 0.04).
        adjusted = scarce_report.holm([0.01, 0.04, 0.03, math.nan])
        self.assertAlmostEqual(adjusted[0], 0.03)
        self.assertAlmostEqual(adjusted[1], 0.06)
        self.assertAlmostEqual(adjusted[2], 0.06)
        self.assertTrue(math.isnan(adjusted[3]))
        self.assertEqual(scarce_report.holm([0.9, 0.8]), [1.0, 1.0])

    def test_units_pair_by_fold_and_seed_and_average_subjects(self):
        results = [row("a", 0, 1, "scarce", "s1", 0.5), row("a", 0, 1, "scarce", "s2", 0.7),
                   row("a", 1, 1, "scarce", "s1", 0.2),
                   row("b", 1, 1, "scarce", "s1", 0.1), row("b", 0, 1, "scarce", "s1", 0.4),
                   row("b", 2, 1, "scarce", "s1", 0.9)]  # unit (2, 1) has no partner in "a"
        x, y = scarce_report.paired(results, "scarce", "a", "b")
        self.assertEqual(len(x), 2)
        self.assertAlmostEqual(x[0], 0.6)  # unit (0, 1): mean of 0.5 and 0.7
        self.assertAlmostEqual(y[0], 0.4)
        self.assertAlmostEqual(x[1], 0.2)
        self.assertAlmostEqual(y[1], 0.1)

    def test_bone_table_averages_units_and_subjects_per_site_bone_and_scheme(self):
        def bone(scheme, fold, subject, site, structure, dice):
            return {"scheme": scheme, "fold": fold, "seed": 1, "site": site,
                    "structure": structure, "subject": subject, "dice": dice}
        rows = [bone("recipe", 0, "s1", "north", "knee/fibula", 0.0),
                bone("recipe", 1, "s1", "north", "knee/fibula", 0.6),
                bone("individual", 0, "s1", "north", "knee/fibula", 0.5),
                bone("individual", 0, "s2", "north", "knee/fibula", 0.7),
                bone("individual", 0, "s1", "east", "knee/femur", 0.9)]
        lines = scarce_report.structure_table(rows).splitlines()
        # Schemes in report order, rows sorted by (site, bone); a cell nobody measured is "–".
        self.assertEqual(lines[0],
                         "| site | bone | alone (individual) | recipe (federated) |")
        self.assertEqual(lines[2], "| east | knee/femur | 0.90 | – |")
        self.assertEqual(lines[3], "| north | knee/fibula | 0.60 | 0.30 |")
        self.assertEqual(len(lines), 4)

    def test_effect_size_and_exact_test(self):
        x = [0.6, 0.7, 0.65, 0.8, 0.75, 0.7]
        y = [0.5, 0.55, 0.6, 0.6, 0.7, 0.6]
        diffs = [a - b for a, b in zip(x, y)]
        mean = sum(diffs) / len(diffs)
        sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
        self.assertAlmostEqual(scarce_report.cohen_dz(x, y), mean / sd)
        # All six differences positive: the exact two-sided p is 2 / 2^6.
        self.assertAlmostEqual(scarce_report.wilcoxon_p(x, y), 2 / 64)
        self.assertTrue(math.isnan(scarce_report.wilcoxon_p(x, x)))


if __name__ == "__main__":
    unittest.main()

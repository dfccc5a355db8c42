"""Unit tests of the harness's metric functions, with a worked example
computed by hand (the arithmetic is in the comments).

Run: python3 -m unittest discover -s bench/quality -p 'test_*.py'
"""

import math
import unittest

from metrics import (
    evidence_recall_at_k,
    ndcg_at_k,
    parse_evidence,
    recall_at_k,
)

# One query, five results, three relevant documents of which two are found.
RANKED = ["d3", "d1", "d7", "d2", "d5"]
RELEVANT = {"d1", "d2", "d9"}


class BeirMetrics(unittest.TestCase):
    def test_ndcg_worked_example(self):
        # Hits at ranks 2 and 4: DCG = 1/log2(3) + 1/log2(5)
        #   = 0.630930 + 0.430677 = 1.061606.
        # Ideal: three relevant at ranks 1..3: 1/log2(2) + 1/log2(3) + 1/log2(4)
        #   = 1 + 0.630930 + 0.5 = 2.130930.
        # nDCG@5 = 1.061606 / 2.130930 = 0.498189.
        self.assertAlmostEqual(ndcg_at_k(RANKED, RELEVANT, 5), 0.498189, places=6)
        # @2: DCG = 0.630930; ideal (two slots) = 1.630930 -> 0.386853.
        self.assertAlmostEqual(ndcg_at_k(RANKED, RELEVANT, 2), 0.386853, places=6)
        # @1: the first result is not relevant.
        self.assertEqual(ndcg_at_k(RANKED, RELEVANT, 1), 0.0)

    def test_ndcg_bounds(self):
        self.assertEqual(ndcg_at_k(["d1", "d2", "d9"], RELEVANT, 10), 1.0)
        self.assertEqual(ndcg_at_k([], RELEVANT, 10), 0.0)
        self.assertEqual(ndcg_at_k(RANKED, set(), 10), 0.0)
        # A repeated id counts once, at its first rank.
        self.assertAlmostEqual(
            ndcg_at_k(["d1", "d1", "d2"], {"d1", "d2"}, 2),
            (1 + 1 / math.log2(3)) / (1 + 1 / math.log2(3)),
        )

    def test_recall_worked_example(self):
        # Two of the three relevant documents are in the top 5; none in the top 1;
        # one (d1) in the top 2.
        self.assertAlmostEqual(recall_at_k(RANKED, RELEVANT, 5), 2 / 3)
        self.assertAlmostEqual(recall_at_k(RANKED, RELEVANT, 2), 1 / 3)
        self.assertEqual(recall_at_k(RANKED, RELEVANT, 1), 0.0)
        self.assertEqual(recall_at_k(RANKED, RELEVANT, 100), 2 / 3)


class LocomoMetrics(unittest.TestCase):
    KNOWN = {"D1:3", "D8:6", "D9:17", "D30:5", "D2:1"}

    def test_parse_evidence_is_lenient_and_counts_what_it_skips(self):
        ids, skipped = parse_evidence(
            ["D1:3", "D8:6; D9:17", "D", "D30:05", "D1:3", "D99:1"], self.KNOWN
        )
        self.assertEqual(ids, ["D1:3", "D8:6", "D9:17", "D30:5"])
        self.assertEqual(skipped, ["D", "D99:1"])
        self.assertEqual(parse_evidence([], self.KNOWN), ([], []))
        self.assertEqual(parse_evidence(None, self.KNOWN), ([], []))

    def test_evidence_recall_worked_example(self):
        # Evidence D1:3, D2:1, D8:6. Retrieved memories best first; the second
        # holds two identical turns stored once.
        ranked = [{"D5:1"}, {"D1:3", "D4:4"}, {"D7:2"}, {"D8:6"}, {"D2:1"}]
        evidence = ["D1:3", "D2:1", "D8:6"]
        self.assertEqual(evidence_recall_at_k(ranked, evidence, 1), 0.0)
        self.assertAlmostEqual(evidence_recall_at_k(ranked, evidence, 2), 1 / 3)
        self.assertAlmostEqual(evidence_recall_at_k(ranked, evidence, 4), 2 / 3)
        self.assertEqual(evidence_recall_at_k(ranked, evidence, 5), 1.0)
        self.assertEqual(evidence_recall_at_k(ranked, evidence, 20), 1.0)


if __name__ == "__main__":
    unittest.main()

"""The scale benchmark's generator and recall arithmetic (numpy only)."""

import unittest

import numpy as np

import data
import vector_search


def unit_rows(n, d=384, seed=1):
    v = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class GenerateTest(unittest.TestCase):
    def setUp(self):
        self.texts = [f"text {i}" for i in range(50)]
        self.vecs = unit_rows(50)
        self.ids, self.users, self.contents, self.rows, self.heavy, self.n_heavy = data.generate(
            230, self.texts, self.vecs
        )

    def test_sizes_and_the_heavy_users_share(self):
        self.assertEqual(len(self.ids), 230)
        self.assertEqual(self.rows.shape, (230, 384))
        self.assertEqual(self.n_heavy, int(230 * data.HEAVY_SHARE))
        self.assertEqual(self.users[: self.n_heavy], [self.heavy] * self.n_heavy)
        self.assertNotIn(self.heavy, self.users[self.n_heavy :])

    def test_every_row_is_a_distinct_memory(self):
        self.assertEqual(len(set(self.ids)), 230)
        self.assertEqual(len(set(zip(self.users, self.contents))), 230)

    def test_copies_are_unit_vectors_near_their_original(self):
        np.testing.assert_allclose(np.linalg.norm(self.rows, axis=1), 1.0, rtol=1e-5)
        np.testing.assert_array_equal(self.rows[:50], self.vecs)
        cos = np.sum(self.rows[50:100] * self.vecs, axis=1)
        self.assertTrue(np.all(cos > 0.85) and np.all(cos < 0.95), cos)

    def test_the_same_seed_generates_the_same_rows(self):
        again = data.generate(230, self.texts, self.vecs)
        self.assertEqual(again[0], self.ids)
        np.testing.assert_array_equal(again[3], self.rows)


class RecallTest(unittest.TestCase):
    def test_recall_counts_the_shared_top_k(self):
        truth = [list(range(10)), list(range(10))]
        got = [list(range(10)), list(range(5)) + list(range(100, 105))]
        self.assertAlmostEqual(vector_search.recall(got, truth), 0.75)

    def test_order_within_the_top_k_does_not_matter(self):
        self.assertEqual(vector_search.recall([list(range(9, -1, -1))], [list(range(10))]), 1.0)


if __name__ == "__main__":
    unittest.main()

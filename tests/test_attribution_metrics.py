"""Attribution comparison metrics on hand-made attributions with known answers: threshold sets, IoU and its
closed-form random baseline (checked against simulation), spread AUC with paired tests + BH-FDR, positional
statistics, and the linguistic breakdown from an annotation TSV."""
from __future__ import annotations

import numpy as np
import pytest

from braintune.analysis import attribution_metrics as M


def padded(rows, width):
    """Attribution rows of different context lengths -> (n, width), NaN-padded."""
    out = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def test_threshold_sets_take_the_fewest_words_reaching_the_mass():
    uniform = np.ones((1, 40))
    sizes = M.important_sets(uniform).sum(-1)[:, 0]
    np.testing.assert_array_equal(sizes, np.ceil(np.array(M.THRESHOLDS) * 40 / 100))  # ceil(t·n)
    scores = padded([[0.2, -0.5, 0.3], [0.0, 1.0]], 5)  # signs ignored; NaN = outside the context
    sets = M.important_sets(scores, thresholds=(50, 60, 80, 98))
    np.testing.assert_array_equal(sets[:, 0, :3], [[0, 1, 0], [0, 1, 1], [0, 1, 1], [1, 1, 1]])
    np.testing.assert_array_equal(sets[:, 1], [[0, 1, 0, 0, 0]] * 4)  # one word holds all the mass
    assert not sets[..., 3:].any()


def test_iou_of_a_set_with_itself_is_one_and_with_a_disjoint_set_zero():
    a = np.array([1, 1, 0, 0, 1], bool)
    assert M.iou(a, a) == 1.0 and M.iou(a, ~a) == 0.0 and M.iou(a, np.array([1, 0, 0, 0, 0], bool)) == 1 / 3


@pytest.mark.parametrize("n,k1,k2", [(40, 4, 10), (20, 15, 12), (300, 30, 9), (10, 10, 3)])
def test_random_iou_baseline_matches_simulation(n, k1, k2):
    rng = np.random.default_rng(0)
    draws = 20000
    a = np.argsort(rng.random((draws, n)), 1) < k1  # uniform random k1-subsets
    b = np.argsort(rng.random((draws, n)), 1) < k2
    sim = M.iou(a, b)
    expected = M.expected_random_iou(n, k1, k2)
    assert abs(sim.mean() - expected) < 4 * sim.std() / np.sqrt(draws) + 1e-12
    assert expected == pytest.approx(M.expected_random_iou(n, k2, k1))
    if k1 == n:
        assert expected == pytest.approx(k2 / n)  # B is inside A: IoU = k2 / n exactly


def test_iou_table_uses_each_trs_context_and_set_sizes():
    rng = np.random.default_rng(1)
    a, b = padded([rng.random(30), rng.random(12)], 30), padded([rng.random(30), rng.random(12)], 30)
    sa, sb = M.important_sets(a), M.important_sets(b)
    obs, base = M.iou_table(sa, sb, M.context_lengths(a))
    i, j = 6, 1  # threshold 30 %, second TR (12 words)
    assert base[i, j] == pytest.approx(M.expected_random_iou(12, sa[i, j].sum(), sb[i, j].sum()))
    assert obs[i, j] == pytest.approx(M.iou(sa[i, j], sb[i, j]))
    _, self_base = M.iou_table(sa, sa, M.context_lengths(a))
    assert np.all(M.iou_table(sa, sa, M.context_lengths(a))[0] == 1) and np.all(self_base <= 1)


def test_spread_auc_and_paired_tests_find_the_broader_attribution():
    rng = np.random.default_rng(2)
    broad = rng.uniform(0.5, 1.0, (30, 40))  # near-uniform attribution
    focused = rng.exponential(1.0, (30, 40)) ** 4  # a few words dominate
    auc_b, auc_f = M.spread_auc(M.important_sets(broad)), M.spread_auc(M.important_sets(focused))
    assert np.all(auc_b > auc_f)
    sizes_b, sizes_f = M.important_sets(broad).sum(-1), M.important_sets(focused).sum(-1)  # (n_thr, n)
    res = M.compare_paired(sizes_b[4:], sizes_f[4:])  # thresholds 10 %..98 %
    assert res["reject"].all() and np.all(res["mean_diff"] > 0) and np.all(res["p_adjusted"] >= res["p"])
    null = M.compare_paired(rng.normal(size=(8, 30)), rng.normal(size=(8, 30)))
    assert null["reject"].sum() <= 1
    uniform_auc = M.spread_auc(M.important_sets(np.ones((1, 40))))[0]
    assert uniform_auc == pytest.approx(np.trapezoid(np.ceil(np.array(M.THRESHOLDS) * 0.4), np.array(M.THRESHOLDS) / 100))


def test_positional_statistics_of_known_profiles():
    n = 40
    uniform = M.positional_stats(np.ones((1, n)))
    assert uniform["center_of_mass"][0] == pytest.approx((n - 1) / 2)
    assert uniform["variance"][0] == pytest.approx((n ** 2 - 1) / 12)
    assert uniform["entropy_normalized"][0] == pytest.approx(1.0)
    one = np.zeros((1, n))
    one[0, 3] = -2.0
    stats = M.positional_stats(one)
    assert stats["center_of_mass"][0] == 3 and stats["variance"][0] == 0 and stats["entropy"][0] == 0
    recency = 0.8 ** np.arange(n)[None]  # planted recency profile
    assert M.positional_stats(recency)["center_of_mass"][0] < n / 4
    scores = padded([[3, 1, 1, 1], [3, 1]], 4)
    profile = M.positional_profile(M.important_sets(scores, (50,)), scores)
    np.testing.assert_allclose(profile, [[1.0, 0.0, 0.0, 0.0]])  # position 0 important in both TRs
    np.testing.assert_allclose(M.positional_profile(M.important_sets(scores, (70,)), scores, bins=[0, 2, 4]),
                               [[3 / 4, 1 / 2]])  # TR0 keeps words 0-2, TR1 word 0


def test_linguistic_breakdown_from_an_annotation_tsv(tmp_path):
    words = ["harry", "ran", "to", "the", "hall", "quickly"]
    path = tmp_path / "annotations.tsv"
    path.write_text("word_index\tword\tfeatures\n0\tHarry\tcharacters,semantic\n1\tran\tmotion,verb\n"
                    "4\thall\tsemantic\n5\tquickly\t\n")
    ann = M.read_word_annotations(path, len(words), words)
    assert set(ann) == {"characters", "semantic", "motion", "verb"} and ann["semantic"].tolist() == [1, 0, 0, 0, 1, 0]
    # two TRs: contexts end at word 4 (5 words) and word 5 (6 words); position j is word last - j
    scores = padded([[1] * 5, [1] * 6], 6)
    a = np.array([[1, 0, 0, 1, 1, 0], [0, 1, 0, 0, 0, 1]], bool)  # TR0: hall, ran, harry; TR1: hall, harry
    b = np.array([[1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 0]], bool)  # TR0: hall; TR1: ran
    out = M.linguistic_breakdown(a, b, np.array([4, 5]), scores, ann)
    assert out["semantic"] == pytest.approx((3 / 4, 0, 1 / 4))  # harry x2 (a only), hall x2 (both once, a once)
    assert out["motion"] == pytest.approx((1 / 2, 1 / 2, 0))  # ran: a only in TR0, b only in TR1
    bad = tmp_path / "bad.tsv"
    bad.write_text("word_index\tword\tfeatures\n2\tsky\tsemantic\n")
    with pytest.raises(ValueError, match="bad.tsv' line 2"):
        M.read_word_annotations(bad, len(words), words)


def test_masked_words_pick_the_top_and_random_positions():
    scores = padded([[0.1, -5.0, 0.2, 0.3] + [0.0] * 96, [1.0, 2.0]], 100)
    top = M.masked_words(scores, np.array([200, 50]), frac=0.02, mode="top")
    assert top[0].tolist() == [199, 200 - 3] and top[1].tolist() == [49]  # 2 of 100 words; 1 of 2
    rand = M.masked_words(scores, np.array([200, 50]), frac=0.02, mode="random", seed=3)
    assert len(rand[0]) == 2 and np.all((rand[0] > 100) & (rand[0] <= 200)) and rand[1][0] in (49, 50)

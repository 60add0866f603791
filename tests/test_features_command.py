"""``evaluate.py features``: every run's layer features on the TR clock, with the row times and the look-ahead bound."""
from __future__ import annotations

import json

import numpy as np

from braintune.commands.evaluate import main


def test_features_command_writes_each_run_with_row_times_and_bound(tmp_path):
    out = tmp_path / "feats"
    argv = ["features", "-c", "configs/demo.yaml", f"data.root={tmp_path / 'stories'}", "data.synthetic.stories=2",
            "data.synthetic.story_seconds=40", "data.synthetic.participants=2", "data.synthetic.targets=[4,4]",
            "data.heldout_participants=[]", "alignment.layers=[1,3]", f"alignment.cache_dir={tmp_path / 'cache'}",
            f"out_dir={out}"]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["files"]) == ["story01", "story02", "wheretheressmoke"]
    assert summary["extraction"]["mode"] == "bounded" and summary["extraction"]["lookahead_s"] == 0.0
    assert summary["extraction"]["lookahead_bound_s"] == summary["extraction"]["declared_reach_s"] > 0
    with np.load(out / "features" / "story01.npz") as f:
        # 40 s of audio in the LeBel layout: 30 scan volumes, 10 rows, row j at 2j + 11 s; layers 1 and 3 (the headline)
        assert f["features"].shape == (2, 10, 48) and f["features"].dtype == np.float32
        np.testing.assert_array_equal(f["layers"], [1, 3])
        np.testing.assert_array_equal(f["row_times_s"], 11.0 + 2.0 * np.arange(10))
        first = f["features"].copy()
    assert main(argv) == 0  # the second extraction is served by the feature cache, identically
    again = json.loads((out / "summary.json").read_text())
    assert again["feature_cache"]["hits"] == 3 and again["feature_cache"]["misses"] == 0
    with np.load(out / "features" / "story01.npz") as f:
        np.testing.assert_array_equal(f["features"], first)


def test_a_layer_the_backbone_lacks_is_refused_before_extraction(tmp_path, capsys):
    argv = ["features", "-c", "configs/demo.yaml", f"data.root={tmp_path / 'stories'}", "data.synthetic.stories=2",
            "data.synthetic.story_seconds=40", "data.synthetic.participants=2", "data.synthetic.targets=[4,4]",
            "data.heldout_participants=[]", "alignment.layers=[1,99]", "alignment.cache_dir=null",
            f"out_dir={tmp_path / 'feats'}"]
    assert main(argv) == 2  # the demo backbone has 4 hidden states
    err = capsys.readouterr().err
    assert "alignment.layers [1, 99]" in err and "hidden states [99]" in err and "Traceback" not in err
    assert not (tmp_path / "feats" / "features").exists()

"""`python -m braintune inspect`: summary text and JSON for a dataset, status 2 and a one-line message for bad data."""
import json
import subprocess
import sys

import h5py

from braintune.commands.inspect import main
from braintune.data.formats.synthetic_friends import FriendsSpec, write_friends_dataset


def test_inspect_json_and_problems(tmp_path, capsys):
    spec = FriendsSpec(participants=2, episodes=1, episode_seconds=24.0, targets=[6, 9], movie10=False)
    root = write_friends_dataset(tmp_path / "d", spec)
    h5 = next((root / "fmri/sub-02/func").glob("*.h5"))
    with h5py.File(h5, "a") as f:
        del f["ses-002_task-s06e01b"]
    assert main([str(root), "--format", "algonauts", "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    # 24 s = 16 TRs of 1.49 s, 6 left after the Algonauts default of 5 TRs dropped at each edge
    assert "s06e01a: 6 TRs x 1.49 s" in out and "1/2 participants" in out and "5 TRs dropped at each run edge" in out
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["participants"] == ["sub-01", "sub-02"] and s["runs"] == ["s06e01a", "s06e01b"]
    assert s["n_trs"] == {"s06e01a": 6, "s06e01b": 6} and s["n_targets"] == {"sub-01": 6, "sub-02": 9}
    assert s["trimmed_trs"] == 5 and s["showings"] == {}
    assert any("s06e01b" in p and "sub-02" in p for p in s["problems"])


def test_inspect_lists_stimuli_shown_twice(tmp_path, capsys):
    root = write_friends_dataset(tmp_path / "d", FriendsSpec(participants=1, episodes=1, episode_seconds=24.0, targets=[6]))
    assert main([str(root), "--format", "algonauts", "--trim-trs", "2", "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "life01.mkv: life01_run-1, life01_run-2" in out and "life01_run-2: 12 TRs x 1.49 s" in out
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["showings"] == {str(root / "stimuli/movies/movie10/life/life01.mkv"): ["life01_run-1", "life01_run-2"]}
    assert s["trimmed_trs"] == 2


def test_inspect_bad_data_exits_without_traceback(tmp_path):
    root = write_friends_dataset(tmp_path / "d", FriendsSpec(participants=1, episodes=1, episode_seconds=12.0, targets=[6], movie10=False))
    h5 = next((root / "fmri/sub-01/func").glob("*.h5"))
    h5.write_bytes(h5.read_bytes()[:500])
    proc = subprocess.run([sys.executable, "-m", "braintune", "inspect", str(root), "--format", "algonauts"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and h5.name in proc.stderr and "Traceback" not in proc.stderr

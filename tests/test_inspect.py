"""`python -m braintune inspect`: summary text and JSON for a dataset, status 2 and a one-line message for bad data."""
import json
import subprocess
import sys

import h5py

from braintune.commands.inspect import main
from braintune.data.formats.synthetic_friends import FriendsSpec, write_friends_dataset


def test_inspect_json_and_problems(tmp_path, capsys):
    spec = FriendsSpec(participants=2, episodes=1, episode_seconds=12.0, targets=[6, 9], movie10=False)
    root = write_friends_dataset(tmp_path / "d", spec)
    h5 = next((root / "fmri/sub-02/func").glob("*.h5"))
    with h5py.File(h5, "a") as f:
        del f["ses-002_task-s06e01b"]
    assert main([str(root), "--format", "algonauts", "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "s06e01a: 8 TRs x 1.49 s" in out and "1/2 participants" in out
    s = json.loads((tmp_path / "s.json").read_text())
    assert s["participants"] == ["sub-01", "sub-02"] and s["runs"] == ["s06e01a", "s06e01b"]
    assert s["n_trs"] == {"s06e01a": 8, "s06e01b": 8} and s["n_targets"] == {"sub-01": 6, "sub-02": 9}
    assert any("s06e01b" in p and "sub-02" in p for p in s["problems"])


def test_inspect_bad_data_exits_without_traceback(tmp_path):
    root = write_friends_dataset(tmp_path / "d", FriendsSpec(participants=1, episodes=1, episode_seconds=12.0, targets=[6], movie10=False))
    h5 = next((root / "fmri/sub-01/func").glob("*.h5"))
    h5.write_bytes(h5.read_bytes()[:500])
    proc = subprocess.run([sys.executable, "-m", "braintune", "inspect", str(root), "--format", "algonauts"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and h5.name in proc.stderr and "Traceback" not in proc.stderr

"""report.py: a fake run dir -> one self-contained HTML page with every section; the demo's table on stdout."""
import base64
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from braintune import report

CHROMIUM = Path("/usr/bin/chromium")


def _alignment(mean_r: float, layers: dict, regions: dict | None = None) -> dict:
    out = {"mean_r": mean_r, "layer": 2, "layers": layers,
           "participants": {"sub-01": {"mean_r": mean_r - 0.01}, "sub-02": {"mean_r": mean_r + 0.01}}}
    return {**out, "regions": regions} if regions else out


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    (run / "logs" / "version_0").mkdir(parents=True)
    (run / "config.yaml").write_text("backbone:\n  name: wav2vec2-tiny  # <&>\noptim:\n  lr: 0.001\n")
    rows = ["epoch,step,train/loss,val/loss,val/pearson,downstream/mustard/f1"]
    for step in range(1, 9):
        rows.append(f"{(step - 1) // 4},{step},{1 / step:.3f},,,")
        if step % 4 == 0:
            rows.append(f"{(step - 1) // 4},{step},,{1.2 / step:.3f},{0.05 * step:.3f},{0.5 + 0.02 * step:.3f}")
    (run / "logs" / "version_0" / "metrics.csv").write_text("\n".join(rows) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    fig.savefig(run / "alignment_by_layer.png")
    fig.savefig(run / "r_map_sub-01.png")
    plt.close(fig)
    summary = {
        "runs": {"test": ["story_c"]},
        "alignment": {"before": _alignment(0.10, {"0": 0.05, "2": 0.10}, {"auditory": 0.2}),
                      "after": {**_alignment(0.15, {"0": 0.06, "2": 0.15}, {"auditory": 0.3}), "ci": [0.12, 0.18],
                                "layers_ci": {"2": [0.13, 0.17]}}},
        "plots": ["alignment_by_layer.png"],
        "brain_maps": {"model": ["r_map_sub-01.png", "r_map_sub-01.nii.gz"], "parcels": "no brain maps for h5 data"},
        "tasks": {"mustard": {"model": "tuned", "layer": 3, "accuracy": 0.7, "f1": 0.68, "chance": 0.5,
                              "ci": {"accuracy": [0.6, 0.8]}}},
    }
    (run / "summary.json").write_text(json.dumps(summary))
    return run


class _Page(HTMLParser):
    """Headings, image sources and any unclosed tag of a page."""

    def __init__(self):
        super().__init__()
        self.headings, self.sources, self.stack, self._in_heading = [], [], [], False

    def handle_starttag(self, tag, attrs):
        if tag not in ("meta", "img", "br"):
            self.stack.append(tag)
        self._in_heading = tag in ("h2", "h3")
        self.sources += [v for k, v in attrs if k == "src"]

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, f"</{tag}> closes nothing open"
        self._in_heading = False

    def handle_data(self, data):
        if self._in_heading:
            self.headings.append(data)


def test_report_page_has_every_section_and_inlines_images(run_dir, capsys):
    assert report.main([str(run_dir / "summary.json")]) == 0  # the Makefile passes the summary
    out = capsys.readouterr().out
    assert "Brain alignment on the held-out test run(s) [story_c]" in out and "+0.050" in out
    page_path = run_dir / "report.html"
    assert f"report: {page_path}" in out
    text = page_path.read_text()
    page = _Page()
    page.feed(text)
    page.close()
    assert page.stack == []  # every tag closed
    assert set(report.SECTIONS) <= set(page.headings)
    assert len(page.sources) == 3  # curves + 2 PNGs, the summary's plot listed once
    for src in page.sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wav2vec2-tiny  # &lt;&amp;&gt;" in text  # config shown, escaped
    assert "0.150 [0.120, 0.180]" in text and "0.150 [0.130, 0.170]" in text  # headline and layer CIs
    assert "auditory" in text and "+0.100" in text  # region change
    assert "no brain maps for h5 data" in text and "r_map_sub-01.nii.gz" in text
    assert "accuracy 0.700 [0.600, 0.800]" in text and "downstream/mustard/f1" in text
    assert f"python train.py -c {run_dir / 'config.yaml'}" in text


def test_report_without_data_says_so(tmp_path, capsys):
    assert report.main([str(tmp_path)]) == 0
    text = (tmp_path / "report.html").read_text()
    for phrase in ("no config.yaml", "no training curves", "no alignment", "no brain maps or figures",
                   "no downstream results"):
        assert phrase in text
    (tmp_path / "summary.json").write_text("{not json")
    assert report.main([str(tmp_path)]) == 2
    assert "summary.json' is not valid JSON" in capsys.readouterr().err
    assert report.main([str(tmp_path / "nowhere")]) == 2


def test_compare_summary_shows_models_and_differences(tmp_path):
    summary = {"models": {"base": _alignment(0.1, {"1": 0.1}), "tuned": _alignment(0.2, {"1": 0.2})},
               "differences": {"tuned - base": {"headline": {"participants": {"sub-01": {"mean_diff": 0.1,
                                                                                         "ci": [0.05, 0.15]}},
                                                             "mean_diff": 0.1}}},
               "command": ["python", "evaluate.py", "compare", "-c", "configs/demo.yaml"]}
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    text = report.build_report(tmp_path)
    assert "<th>base</th><th>tuned</th>" in text and "0.100 [0.050, 0.150]" in text
    assert "python evaluate.py compare -c configs/demo.yaml" in text


@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless check needs /usr/bin/chromium")
def test_report_loads_in_headless_chromium(run_dir, tmp_path):
    page = report.write_report(run_dir)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    done = subprocess.run([str(CHROMIUM), *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    for section in report.SECTIONS:
        assert f"<h2>{section}</h2>" in done.stdout
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    shot = tmp_path / "page.png"
    subprocess.run([str(CHROMIUM), *flags, f"--screenshot={shot}", "--window-size=1280,4000", page.as_uri()],
                   capture_output=True, timeout=120, check=False)
    assert shot.is_file() and shot.stat().st_size > 10_000
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)

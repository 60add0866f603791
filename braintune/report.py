"""summary.json of a training run -> the before/after alignment table printed at the end of ``make demo``."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def alignment_table(summary: dict) -> str:
    """Rows: every tuned and held-out participant; columns: mean test r before and after tuning, and the change."""
    a = summary.get("alignment")
    if not a:
        return "no alignment in this summary (alignment.after_training was false)"
    rows = [("participant", "group", "before r", "after r", "change")]
    groups = [("tuned", a)] + ([("held out", a["heldout_participant"])] if "heldout_participant" in a else [])
    for label, g in groups:
        for p, before in g["before"]["participants"].items():
            after = g["after"]["participants"][p]
            rows.append((p, label, f"{before['mean_r']:.3f}", f"{after['mean_r']:.3f}", f"{after['mean_r'] - before['mean_r']:+.3f}"))
        rows.append((f"mean ({label})", "", f"{g['before']['mean_r']:.3f}", f"{g['after']['mean_r']:.3f}",
                     f"{g['after']['mean_r'] - g['before']['mean_r']:+.3f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    layer = g["after"].get("layer")
    test = ", ".join(summary.get("runs", {}).get("test", []))
    return "\n".join(
        [f"Brain alignment on the held-out test run(s) [{test}]: mean Pearson r over targets, layer {layer}", ""] + lines
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0] if argv else "runs/demo/summary.json")
    print(alignment_table(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())

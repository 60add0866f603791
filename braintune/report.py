"""A run directory -> ``RUN_DIR/report.html`` (one self-contained page) and the before/after table on stdout.

``python -m braintune.report RUN_DIR`` (or ``RUN_DIR/summary.json``). The page shows the run's config, training
curves (``logs/version_*/metrics.csv``), alignment by layer and region, the PNGs the run wrote (``plots``,
``brain_maps`` and ``*.png``), downstream results (``tasks`` or logged ``downstream/*``) and the commands. Images
are inlined as base64 data URIs. Every key is optional: a section without data says so. A confidence interval is
shown where an alignment summary has one: ``ci`` ([low, high]) beside ``mean_r``, ``layers_ci[layer]``,
``regions_ci[region]``; compare's ``differences[...]["headline"]`` and downstream's ``ci[metric]`` as written.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
import shlex
import sys
from pathlib import Path

SECTIONS = ("Configuration", "Training curves", "Alignment", "Brain maps and figures", "Downstream results", "Commands")
CURVES = ("train/loss", "val/loss", "val/pearson")
STYLE = ("body{font-family:sans-serif;max-width:1250px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;margin:.5em 0 1em}"
         "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}"
         "th:first-child,td:first-child{text-align:left}pre{background:#f5f5f5;padding:1em;overflow-x:auto}"
         "img{max-width:100%;display:block;margin:.5em 0}.empty{color:#888;font-style:italic}")


def alignment_table(summary: dict) -> str:
    """Rows: every tuned and held-out participant; columns: mean test r before and after tuning, and the change."""
    a = summary.get("alignment")
    if not a or "before" not in a or "after" not in a:
        return "no alignment in this summary (alignment.after_training was false)"
    rows = [("participant", "group", "before r", "after r", "change")]
    held = a.get("heldout_participant") or {}
    for label, g in [("tuned", a)] + ([("held out", held)] if "before" in held and "after" in held else []):
        after = g["after"].get("participants") or {}
        for p, before in (g["before"].get("participants") or {}).items():
            rows.append((p, label, *_before_after(before.get("mean_r"), (after.get(p) or {}).get("mean_r"))))
        rows.append((f"mean ({label})", "", *_before_after(g["before"].get("mean_r"), g["after"].get("mean_r"))))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    test = ", ".join(summary.get("runs", {}).get("test", []))
    heading = (f"Brain alignment on the held-out test run(s) [{test}]: mean Pearson r over targets, "
               f"layer {a['after'].get('layer')}")
    return "\n".join([heading, ""] + lines)


def _before_after(before, after) -> tuple[str, str, str]:
    both = isinstance(before, (int, float)) and isinstance(after, (int, float))
    return _fmt(before), _fmt(after), f"{after - before:+.3f}" if both else "–"


def read_metrics(run_dir: Path) -> dict[str, tuple[list[float], list[float]]]:
    """Every ``logs/version_*/metrics.csv`` (in version order, so a resumed run continues) -> {metric: (steps,
    values)}, the non-empty cells of each column; the step is the ``step`` column, else the row number."""
    files = sorted(run_dir.glob("logs/version_*/metrics.csv"),
                   key=lambda f: int(re.sub(r"\D", "", f.parent.name) or 0))
    out: dict[str, tuple[list[float], list[float]]] = {}
    for f in files:
        with f.open(newline="") as handle:
            for i, row in enumerate(csv.DictReader(handle)):
                step = float(row["step"]) if row.get("step") else float(i)
                for key, cell in row.items():
                    if key not in ("step", "epoch", None) and cell not in ("", None):
                        try:
                            value = float(cell)
                        except ValueError:
                            continue
                        out.setdefault(key, ([], []))[0].append(step)
                        out[key][1].append(value)
    return out


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(data: str, alt: str) -> str:
    alt = html.escape(alt)
    return f'<figure><img alt="{alt}" src="data:image/png;base64,{data}"><figcaption>{alt}</figcaption></figure>'


def _empty(text: str) -> str:
    return f'<p class="empty">{html.escape(text)}</p>'


def _table(header, rows) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value, ci=None) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "–" if value is None else str(value)
    text = f"{value:.3f}"
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(c, (int, float)) for c in ci):
        text += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return text


def curves_section(metrics: dict) -> str:
    """``train/loss``, ``val/loss`` (left) and ``val/pearson`` (right) against the optimizer step."""
    shown = [k for k in CURVES if k in metrics]
    if not shown:
        return _empty(f"no training curves: no {', '.join(CURVES)} in logs/version_*/metrics.csv")
    from .evaluation.plots import pyplot  # here, not at import: the report's other sections need no scipy

    plt = pyplot()

    fig, (loss_ax, r_ax) = plt.subplots(1, 2, figsize=(10, 3.2))
    for key in shown:
        ax = r_ax if key == "val/pearson" else loss_ax
        ax.plot(*metrics[key], marker="o" if key.startswith("val") else None, ms=3, label=key)
    loss_ax.set(xlabel="step", ylabel="loss", title="Loss")
    r_ax.set(xlabel="step", ylabel="mean Pearson r", title="Validation r")
    for ax in (loss_ax, r_ax):
        if ax.lines:
            ax.legend(fontsize=8)
        else:
            ax.set_axis_off()
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return _img(data, "training curves (" + ", ".join(shown) + ")")


def _keyed_table(columns: dict[str, dict], key: str, label: str) -> str:
    """One row per layer/region (``key`` of each alignment summary), one column per summary, CIs from ``key_ci``;
    a change column when the columns are before and after."""
    names = sorted({k for c in columns.values() for k in (c.get(key) or {})},
                   key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))  # layers in number order
    if not names:
        return ""
    rows = []
    for k in names:
        cells = [_fmt((c.get(key) or {}).get(k), (c.get(f"{key}_ci") or {}).get(k)) for c in columns.values()]
        if list(columns) == ["before", "after"]:
            b, a = ((c.get(key) or {}).get(k) for c in columns.values())
            cells.append(f"{a - b:+.3f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) else "–")
        rows.append([k] + cells)
    change = ["change"] if list(columns) == ["before", "after"] else []
    return _table([label] + list(columns) + change, rows)


def _group_html(title: str, columns: dict[str, dict]) -> str:
    headline = [[n, c.get("layer", "–"), _fmt(c.get("mean_r"), c.get("ci")), _fmt(c.get("mean_r_normalized"))]
                for n, c in columns.items()]
    parts = [f"<h3>{html.escape(title)}</h3>", _table(["", "headline layer", "mean r", "mean normalised r"], headline)]
    parts += [_keyed_table(columns, "layers", "layer"), _keyed_table(columns, "regions", "region")]
    return "".join(parts)


def alignment_section(summary: dict) -> str:
    """Train (``alignment.before/after``), compare (``models``, ``differences``) or alignment summaries."""
    a, parts = summary.get("alignment") or {}, []
    if "before" in a and "after" in a:
        parts.append(_group_html("Tuned participants", {"before": a["before"], "after": a["after"]}))
        held = a.get("heldout_participant") or {}
        if "before" in held and "after" in held:
            parts.append(_group_html("Held-out participants", {"before": held["before"], "after": held["after"]}))
    elif isinstance(summary.get("models"), dict):
        parts.append(_group_html("Models", summary["models"]))
    elif "layers" in summary and "mean_r" in summary:
        parts.append(_group_html("Model", {"model": summary}))
    for name, diff in (summary.get("differences") or {}).items():
        head = (diff or {}).get("headline") or {}
        rows = [[p, _fmt(v.get("mean_diff"), v.get("ci"))] for p, v in (head.get("participants") or {}).items()]
        rows.append(["mean", _fmt(head.get("mean_diff"))])
        parts.append(f"<h3>Difference {html.escape(name)} (headline layer, 95% CI)</h3>"
                     + _table(["participant", "mean r difference"], rows))
    return "".join(parts) or _empty("no alignment in this summary (no alignment.before/after, models or layers)")


def _resolve(item: str, run_dir: Path) -> Path | None:
    """A file named in the summary: as written (relative to the working directory), in the run dir, or by name."""
    for candidate in (Path(item), run_dir / item, run_dir / Path(item).name):
        if candidate.is_file():
            return candidate
    return None


def figures_section(summary: dict, run_dir: Path) -> str:
    """Every PNG listed under ``plots`` / ``brain_maps`` (strings, lists or dicts of them) and every ``*.png`` in the
    run dir, inlined; other listed files are named, and strings that are no file (reasons) are quoted."""
    pngs, notes = [], []

    def visit(item, label: str) -> None:
        if isinstance(item, dict):
            for k, v in item.items():
                visit(v, f"{label}/{k}")
        elif isinstance(item, (list, tuple)):
            for v in item:
                visit(v, label)
        elif isinstance(item, str):
            found = _resolve(item, run_dir) if len(item) < 4096 else None
            if found is not None and found.suffix.lower() == ".png":
                pngs.append(found)
            else:
                notes.append(f"{label}: {item}" + ("" if found else " (not found)" if item.endswith(".png") else ""))

    visit(summary.get("plots"), "plots")
    visit(summary.get("brain_maps"), "brain_maps")
    pngs += sorted(run_dir.glob("*.png"))
    unique = list({p.resolve(): p for p in pngs}.values())
    parts = [_img(base64.b64encode(p.read_bytes()).decode("ascii"), p.name) for p in unique]
    parts += ["<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>"] if notes else []
    return "".join(parts) or _empty("no brain maps or figures: no plots / brain_maps in summary.json and no *.png "
                                    "in the run dir")


def downstream_section(summary: dict, metrics: dict) -> str:
    """Summary ``tasks`` (per model: headline layer, metrics with CIs, chance; comparisons), else the last logged
    ``downstream/*`` value of each metric."""
    rows, comparisons = [], []
    for task, result in (summary.get("tasks") or {}).items():
        models = result.get("models") or {result.get("model", "model"): result}
        for model, m in models.items():
            ci = m.get("ci") or {}
            scores = "; ".join(f"{k} {_fmt(m[k], ci.get(k))}" for k in ("accuracy", "f1", "r")
                               if isinstance(m.get(k), (int, float)))
            rows.append([task, model, m.get("layer", "–"), scores or "–", _fmt(m.get("chance"))])
        for c in result.get("comparisons") or []:
            comparisons.append([task, f"{c.get('a')} - {c.get('b')}", c.get("metric", ""),
                                _fmt(c.get("difference"), c.get("ci")), _fmt(c.get("mcnemar_p"))])
    parts = [_table(["task", "model", "layer", "test score [95% CI]", "chance"], rows)] if rows else []
    if comparisons:
        parts.append(_table(["task", "models", "metric", "difference [95% CI]", "McNemar p"], comparisons))
    logged = {k: v for k, v in metrics.items() if k.startswith("downstream/")}
    if logged:
        parts.append("<h3>Logged during training</h3>" + _table(
            ["metric", "step", "last value"], [[k, f"{s[-1]:g}", _fmt(v[-1])] for k, (s, v) in sorted(logged.items())]))
    return "".join(parts) or _empty("no downstream results: no tasks in summary.json, no downstream/* metric logged")


def commands_section(summary: dict, run_dir: Path) -> str:
    """The summary's ``command`` (a command line, or its argv list) and ``commands`` (a list of those), else the
    training command rebuilt from the saved config; then this report's own command."""
    given = ([summary["command"]] if summary.get("command") else []) + list(summary.get("commands") or [])
    lines = [shlex.join(map(str, c)) if isinstance(c, (list, tuple)) else str(c) for c in given]
    rebuilt = f"python train.py -c {shlex.quote(str(run_dir / 'config.yaml'))}  # rebuilt: no command in the summary"
    lines = (lines or [rebuilt]) + [f"python -m braintune.report {shlex.quote(str(run_dir))}"]
    return "<pre>" + html.escape("\n".join(lines)) + "</pre>"


def read_summary(run_dir: Path) -> dict:
    """``run_dir/summary.json``, or {} when the run wrote none."""
    path = run_dir / "summary.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError as err:
        raise ValueError(f"'{path}' is not valid JSON ({err}); rerun the command that wrote it") from err


def build_report(run_dir: Path) -> str:
    """The HTML page of ``run_dir``."""
    summary = read_summary(run_dir)
    config = run_dir / "config.yaml"
    metrics = read_metrics(run_dir)
    config_html = f"<pre>{html.escape(config.read_text())}</pre>" if config.is_file() else None
    bodies = [config_html or _empty(f"no config.yaml in {run_dir}"),
              curves_section(metrics), alignment_section(summary), figures_section(summary, run_dir),
              downstream_section(summary, metrics), commands_section(summary, run_dir)]
    anchors = [re.sub(r"\W+", "-", s.lower()) for s in SECTIONS]
    nav = " · ".join(f'<a href="#{a}">{html.escape(s)}</a>' for a, s in zip(anchors, SECTIONS))
    sections = "".join(f'<section id="{a}"><h2>{html.escape(s)}</h2>{b}</section>'
                       for a, s, b in zip(anchors, SECTIONS, bodies))
    title = html.escape(f"braintune report: {run_dir.name}")
    missing = "" if summary else _empty(f"no summary.json in {run_dir}")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{STYLE}</style>'
            f"</head><body><h1>{title}</h1>{missing}<nav>{nav}</nav>{sections}</body></html>\n")


def write_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html`` and return its path."""
    run_dir = Path(run_dir)
    out = run_dir / "report.html"
    out.write_text(build_report(run_dir), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    target = Path(argv[0] if argv else "runs/demo")
    run_dir = target.parent if target.name == "summary.json" or target.is_file() else target
    if not run_dir.is_dir():
        print(f"braintune.report: '{target}' is neither a run directory nor its summary.json", file=sys.stderr)
        return 2
    try:
        summary = read_summary(run_dir)
        print(alignment_table(summary) if summary else f"no summary.json in {run_dir}")
        print(f"report: {write_report(run_dir)}")
    except ValueError as err:
        print(f"braintune.report: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

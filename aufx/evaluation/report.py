"""report.html: the metrics.json of a run as one self-contained page (plots embedded as base64 PNGs).

Plots use matplotlib's object API on the Agg canvas, so nothing changes the global backend of the app's process.
"""
from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from aufx.evaluation.instruments import label


def fmt(value) -> str:
    """How every number appears in the report (and in the CLI summary): 3 decimals, n/a, or ∞."""
    if value is None:
        return "n/a"
    if isinstance(value, str) or not math.isfinite(value):
        return "∞" if str(value) in ("inf", "Infinity") else str(value)
    return f"{value:.3f}"


def _ms(stats: dict | None) -> str:
    """mean ± std; infinite values (PSNR of identical pixels) are counted beside it."""
    if not stats:
        return "n/a"
    inf = f"{stats['n_infinite']} × ∞" if stats.get("n_infinite") else ""
    if stats["mean"] is None:
        return inf
    return f"{fmt(stats['mean'])} ± {fmt(stats['std'])}" + (f" (+ {inf})" if inf else "")


def summary_rows(result: dict) -> list[tuple[str, str]]:
    """(column, value) in the layout of papers: AU error, identity, LPIPS, PSNR, SSIM, emotion accuracy. Columns read
    by a model name it, and say when it is AUFX's own (self-referential)."""
    s, m = result["summary"], result["metrics"]
    au = s.get("au")
    ident = s.get("identity")
    by = {k: f" ({label(v)})" if label(v) else "" for k, v in result.get("instruments", {}).items()}
    rows = []
    if "au" in m:
        rows += [(f"AU MAE ↓{by.get('au', '')}", fmt(au["mae"]) if au else "n/a"),
                 (f"AU RMSE ↓{by.get('au', '')}", fmt(au["rmse"]) if au else "n/a")]
    if "identity" in m:
        rows.append((f"Identity cos ↑{by.get('identity', '')}", _ms(ident["cosine"]) if ident else "n/a"))
        if ident and "same_person_rate" in ident:
            rows.append((f"Same person ↑{by.get('identity', '')}", fmt(ident["same_person_rate"])))
    if "lpips" in m:
        rows.append(("LPIPS ↓", _ms(s["lpips"])))
    for key, name in (("psnr", "PSNR"), ("ssim", "SSIM")):
        if key in m:
            rows += [(f"{name} ↑", _ms(s[key]["image"])), (f"{name} face ↑", _ms(s[key]["face"]))]
    for metric in m:
        if metric.startswith("emotion:"):
            conf = s["emotion"].get(metric.split(":", 1)[1])
            rows.append((f"Emotion acc ↑{by.get(metric, '')}", fmt(conf["accuracy"]) if conf else "n/a"))
    return rows


def self_referential(result: dict) -> list[tuple[str, str]]:
    """(metric, why) for every figure of a run that AUFX's own model produced."""
    return [(k, v["note"]) for k, v in result.get("instruments", {}).items() if v.get("self_referential")]


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _per_au_errors(au: dict, reader: str) -> Figure:
    codes = list(au["per_au"])
    fig = Figure(figsize=(max(5.0, 0.45 * len(codes) + 1.5), 3.2), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(codes))
    ax.bar(x, [au["per_au"][c]["mae"] for c in codes], color="#4c72b0", label="MAE")
    ax.plot(x, [au["per_au"][c]["rmse"] for c in codes], "o", color="#dd8452", label="RMSE")
    ax.set_xticks(x, codes, rotation=60, fontsize=8)
    ax.set_ylim(0, max(0.05, 1.15 * max(au["per_au"][c]["rmse"] for c in codes)))
    ax.set_ylabel("error (0..1 scale)")
    ax.set_title(f"AU error per AU (lower is better), read by {reader}", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def _scatter(records: list[dict], codes: list[str], reader: str) -> Figure:
    cols = min(6, len(codes))
    rows = math.ceil(len(codes) / cols)
    fig = Figure(figsize=(2.1 * cols, 2.1 * rows), layout="constrained")
    for i, code in enumerate(codes):
        ax = fig.add_subplot(rows, cols, i + 1)
        pts = np.array([(r["au"]["target"][code], r["au"]["measured"][code]) for r in records
                        if r.get("au") and code in r["au"]["target"]])
        ax.plot([0, 1], [0, 1], color="0.7", lw=0.8)
        ax.scatter(pts[:, 0], pts[:, 1], s=10, alpha=0.7)
        ax.set(xlim=(-0.05, 1.05), ylim=(-0.05, 1.05), title=code)
        ax.tick_params(labelsize=6)
    fig.supxlabel("target")
    fig.supylabel(f"measured ({reader})")
    return fig


def _identity_hist(values: list[float], instrument: str) -> Figure:
    fig = Figure(figsize=(4.5, 3.0), layout="constrained")
    ax = fig.add_subplot()
    ax.hist(values, bins=min(30, max(5, len(values))), color="#55a868")
    ax.set(xlabel=f"cosine similarity source/output ({instrument})", ylabel="images",
           title="Identity (higher is better)")
    return fig


def _confusion(conf: dict, instrument: str) -> Figure:
    mat = np.array(conf["matrix"])
    fig = Figure(figsize=(1.0 + 0.55 * len(conf["cols"]), 1.0 + 0.5 * len(conf["rows"])), layout="constrained")
    ax = fig.add_subplot()
    ax.imshow(mat, cmap="Blues")
    for (i, j), v in np.ndenumerate(mat):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                    color="white" if v > mat.max() / 2 else "black")
    ylabels = [r + (" (not covered)" if r in conf["not_covered"] else "") for r in conf["rows"]]
    ax.set_xticks(range(len(conf["cols"])), conf["cols"], rotation=45, fontsize=8)
    ax.set_yticks(range(len(conf["rows"])), ylabels, fontsize=8)
    ax.set(xlabel=f"predicted ({instrument})", ylabel="intended", title=f"Emotion confusion ({instrument})")
    return fig


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def figures(result: dict) -> list[tuple[str, Figure]]:
    """The report's plots with their titles: the page embeds them, the app's Evaluate tab shows them as PNGs."""
    s, records, inst = result["summary"], result["per_image"], result.get("instruments", {})

    def by(metric: str, default: str) -> str:
        return label(inst.get(metric)) or default

    figs = []
    if s.get("au"):
        figs.append(("Per-AU error", _per_au_errors(s["au"], by("au", "?"))))
        figs.append(("Target vs measured, per AU", _scatter(records, list(s["au"]["per_au"]), by("au", "?"))))
    cos = [r["identity"]["cosine"] for r in records if r.get("identity")]
    if cos:
        figs.append(("Identity", _identity_hist(cos, by("identity", result["metrics"]["identity"]["backend"]))))
    for backend, conf in s.get("emotion", {}).items():
        if conf["n"] or conf["excluded"]:
            name = by(f"emotion:{backend}", backend)
            figs.append((f"Emotion confusion ({name})", _confusion(conf, name)))
    return figs


def _per_image_rows(records: list[dict]) -> list[list[str]]:
    rows = []
    for r in records:
        emo = "; ".join(f"{b}: {e['label']}" for b, e in (r.get("emotion") or {}).items())
        rows.append([Path(r["gen"]).name, Path(r["source"]).name, r.get("intended") or "",
                     fmt((r.get("au") or {}).get("mae")), fmt((r.get("identity") or {}).get("cosine")),
                     fmt(r.get("lpips")), fmt((r.get("psnr") or {}).get("image")),
                     fmt((r.get("psnr") or {}).get("face")), fmt((r.get("ssim") or {}).get("image")),
                     fmt((r.get("ssim") or {}).get("face")), emo, " ".join(r.get("notes", []))])
    return rows


CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left}th{background:#f3f3f3}
.unavailable{color:#a33}figure{display:inline-block;margin:1em}img{max-width:100%}"""
_YES_NO = {True: "yes", False: "no"}  # self-referential; None: not known (a caller's own measure_aus)


def write_report(result: dict, path: Path) -> Path:
    """Write report.html for a metrics dict (as returned by aufx.evaluation.evaluate.evaluate)."""
    rows = summary_rows(result)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>AUFX evaluation</title><style>{CSS}</style>"
             "</head><body><h1>AUFX evaluation</h1>",
             f"<p>{result['summary']['n_images']} image pairs, created {html.escape(result['created'])}; "
             f"AUFX {html.escape(str(result['versions']['aufx']))}. Values are mean ± std over images.</p>",
             "<h2>Summary</h2>", _table([r[0] for r in rows], [[r[1] for r in rows]])]
    missing = [(k, v) for k, v in result["metrics"].items() if v["status"] != "ok"]
    if missing:
        parts.append("<ul>" + "".join(f"<li class='unavailable'>{html.escape(k)}: unavailable — "
                                      f"{html.escape(v['reason'])}</li>" for k, v in missing) + "</ul>")
    inst = result.get("instruments", {})
    if inst:
        parts += ["<h2>Instruments</h2><p>What produced each number. A self-referential figure comes from AUFX's own "
                  "model judging AUFX's edits: it can agree with an edit that an outside reader would not.</p>",
                  _table(["metric", "instrument", "self-referential", "note"],
                         [[k, v["instrument"] or "none", _YES_NO.get(v["self_referential"], "unknown"), v["note"]]
                          for k, v in inst.items()])]
    au = result["summary"].get("au")
    if au:
        parts += [f"<h2>AU error per AU, read by {html.escape(label(inst.get('au')) or '?')}</h2>",
                  _table(["AU", "MAE ↓", "RMSE ↓", "n"],
                         [[c, fmt(v["mae"]), fmt(v["rmse"]), v["n"]] for c, v in au["per_au"].items()])]
    parts.append("<h2>Plots</h2>")
    parts += [f"<figure><img alt='{html.escape(t)}' src='data:image/png;base64,{_png(f)}'><figcaption>"
              f"{html.escape(t)}</figcaption></figure>" for t, f in figures(result)]
    parts += ["<h2>Backends</h2>",
              _table(["backend", "kind", "status", "licence", "reason"],
                     [[n, b["kind"], b["status"], b["licence"], b.get("reason", "")]
                      for n, b in result["backends"].items()]),
              "<h2>Per image</h2>",
              _table(["output", "source", "intended", "AU MAE", "ID cos", "LPIPS", "PSNR", "PSNR face", "SSIM",
                      "SSIM face", "emotion", "notes"], _per_image_rows(result["per_image"]))]
    if result["unpaired"]:
        parts += ["<h2>Unpaired outputs</h2>", _table(["path", "reason"],
                                                      [[u["path"], u["reason"]] for u in result["unpaired"]])]
    parts += ["<h2>Versions</h2>", _table(["package", "version"],
                                          [[k, v or "not installed"] for k, v in result["versions"].items()]),
              "</body></html>"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(parts), encoding="utf-8")
    return path

"""Per-image records -> the summary researchers report: AU error, identity, LPIPS, PSNR, SSIM, emotion accuracy."""
from __future__ import annotations

import math

import numpy as np

from aufx.model.presets import EMOTIONS
from aufx.evaluation import au_error


def stats(values: list[float | None]) -> dict | None:
    """Mean, std and count of the finite values; infinite ones (PSNR of identical pixels) are counted apart."""
    vals = [v for v in values if v is not None]
    finite = [v for v in vals if math.isfinite(v)]
    if not vals:
        return None
    out = {"mean": float(np.mean(finite)) if finite else None, "std": float(np.std(finite)) if finite else None,
           "n": len(finite)}
    if len(finite) < len(vals):
        out["n_infinite"] = len(vals) - len(finite)
    return out


def confusion(records: list[dict], backend: str, labels: tuple[str, ...]) -> dict:
    """Rows: intended category (all 8); columns: the backend's labels. Accuracy over rows the backend covers."""
    rows, cols = list(EMOTIONS), list(labels)
    matrix = np.zeros((len(rows), len(cols)), int)
    for rec in records:
        got = rec.get("emotion", {}).get(backend)
        if got and rec.get("intended"):
            matrix[rows.index(rec["intended"]), cols.index(got["label"])] += 1
    covered = [r for r in rows if r in cols]
    hits = sum(matrix[rows.index(r), cols.index(r)] for r in covered)
    n = int(sum(matrix[rows.index(r)].sum() for r in covered))
    not_covered = [r for r in rows if r not in cols]
    return {"accuracy": hits / n if n else None, "n": n, "rows": rows, "cols": cols, "matrix": matrix.tolist(),
            "not_covered": not_covered, "excluded": int(sum(matrix[rows.index(r)].sum() for r in not_covered))}


def summarize(records: list[dict], emotion_labels: dict[str, tuple[str, ...]]) -> dict:
    def values(key, sub=None):
        return [(r[key] or {}).get(sub) if sub else r[key] for r in records if key in r]

    ident = [r["identity"] for r in records if r.get("identity")]
    return {
        "n_images": len(records),
        "au": au_error.summarize([r["au"] for r in records if r.get("au")]),
        "identity": None if not ident else {
            "cosine": stats([i["cosine"] for i in ident]), "distance": stats([i["distance"] for i in ident]),
            **({"same_person_rate": float(np.mean([i["same_person"] for i in ident]))}
               if "same_person" in ident[0] else {})},
        "lpips": stats(values("lpips")),
        "psnr": {"image": stats(values("psnr", "image")), "face": stats(values("psnr", "face"))},
        "ssim": {"image": stats(values("ssim", "image")), "face": stats(values("ssim", "face"))},
        "emotion": {b: confusion(records, b, labels) for b, labels in emotion_labels.items()},
    }

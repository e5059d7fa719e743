"""What produced each number of an evaluation, as metrics.json ("instruments") and the report name it.

A figure is *self-referential* when AUFX's own model judges AUFX's edits: it can agree with an edit that an outside
reader would not, so reports say so beside the number. The AU error is self-referential when the AUFX estimator
reads the outputs; OpenFace (the user's build, or CSVs the user made with it) is the outside reader and the default
wherever it is configured. The prototype emotion check is always self-referential; FER2013 is its outside figure.
"""
from __future__ import annotations

from aufx.evaluation import backends
from aufx.openface_runner import AUFX_SOURCE as AUFX_ESTIMATOR  # "AUFX estimator": aufx.model.estimate
from aufx.openface_runner import SOURCE as OPENFACE_RUN  # "OpenFace 2.x static": the user's binary, run here

OPENFACE_CSVS = "OpenFace 2.x (the user's CSVs)"  # --gens_openface_dir: read by whichever OpenFace made them
CALLER = "the caller's measure_aus"  # a function handed to the Evaluator (benchmarks, tests): not known here

AU_NOTES = {
    AUFX_ESTIMATOR: "self-referential: AUFX's own estimator was fitted partly on warp edits, and its AU16, AU24, "
                    "AU27, AU43 and left/right split come from the editor's own AU basis, so it can agree with an "
                    "edit that an outside reader would not; configure OpenFace (OPENFACE_BIN, --openface_bin) or "
                    "pass --gens_openface_dir for an outside reading",
    OPENFACE_RUN: "an outside reader; the warp engine's render gains were calibrated against it on 5 development "
                  "faces, so judge it on other faces",
    OPENFACE_CSVS: "an outside reader (whichever OpenFace model made the CSVs)",
}
PIXEL = {
    "psnr": "scikit-image peak_signal_noise_ratio (data range 255)",
    "ssim": "scikit-image structural_similarity (Gaussian sigma 1.5, as Wang et al. 2004)",
}


def au_instrument(measured_by: str | None, fallback: str = "") -> dict:
    """{'instrument', 'self_referential' (None: not known), 'note'} of the AUs read on the outputs; ``fallback``
    says why an outside reader was not used."""
    if measured_by is None:
        return {"instrument": None, "self_referential": None, "note": "no AU measurement"}
    known = measured_by in AU_NOTES
    note = AU_NOTES.get(measured_by, "a function supplied by the caller; what it measures with is not known here")
    return {"instrument": measured_by, "self_referential": measured_by == AUFX_ESTIMATOR if known else None,
            "note": f"{note} ({fallback})" if fallback and measured_by == AUFX_ESTIMATOR else note}


def describe(metric_status: dict[str, dict], au: dict) -> dict[str, dict]:
    """Per metric of a run: the instrument behind its numbers, whether it is self-referential, and why.
    ``au`` is :func:`au_instrument`'s answer for the run (the prototype judge reads the same AUs)."""
    out = {}
    for metric, status in metric_status.items():
        if metric == "au":
            out[metric] = au
        elif metric in PIXEL:
            out[metric] = {"instrument": PIXEL[metric], "self_referential": False, "note": "a formula on pixels"}
        else:
            info = backends.info(status["backend"])
            name = info["instrument"]
            if status["backend"] == "prototype":
                name = f"{name} on AUs read by {au['instrument'] or 'nothing'}"
            out[metric] = {"instrument": name, "self_referential": info.get("self_referential", False),
                           "note": info.get("note", "")}
    return out


def label(entry: dict | None) -> str:
    """How a column names its instrument: 'dlib ResNet descriptor', 'AUFX estimator, self-referential'."""
    if not entry or not entry.get("instrument"):
        return ""
    return entry["instrument"] + (", self-referential" if entry.get("self_referential") else "")

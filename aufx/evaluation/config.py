"""Every evaluation setting and its default, in one place."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

METRICS = ("au", "identity", "lpips", "psnr", "ssim", "emotion")
AU_BACKENDS = ("auto", "aufx", "openface")


@dataclass
class EvalConfig:
    gens: Path = Path("outputs")  # generated images (searched recursively); sidecars `<image>.json` beside them
    refs: Path | None = None  # source images, matched to generated ones by base name (see aufx/evaluation/pairing.py)
    au_csv: Path | None = None  # annotations `image_path,AU01,...,AU45` (0..1) giving target AUs
    report: Path = Path("results/metrics.json")  # report.html and its plots are written beside it
    metrics: tuple[str, ...] = METRICS
    gens_openface_dir: Path | None = None  # OpenFace 2.x CSVs of the generated images, named `<stem>.csv`
    # What reads the outputs' AUs: "openface" (your binary, run here: an outside reader), "aufx" (AUFX's estimator:
    # self-referential), or "auto": OpenFace where it is configured (openface_bin / $OPENFACE_BIN), else the estimator.
    au_backend: str = "auto"
    openface_bin: Path | None = None  # OpenFace 2.x FeatureExtraction for "openface" and "auto" (else $OPENFACE_BIN)
    identity_backend: str = "dlib"  # offline default; "facenet" where facenet-pytorch and its weights are installed
    emotion_backends: tuple[str, ...] = ("fer",)  # "fer" (independent CNN, 7 classes) and/or "prototype" (8 classes)
    detector_upsample: int = 0  # dlib HOG detector upsampling; 0 finds faces >= ~80 px, 1 smaller ones (4x slower)
    face_margin: float = 0.2  # detector boxes grown by this fraction per side so brows and chin are in the region
    neutral_max: float = 0.15  # prototype matcher: "neutral" when no AU channel reaches this (below FACS trace A)
    write_html: bool = True
    source_roots: tuple[Path, ...] = ()  # when set (the app's --allowed-dirs), sidecar inputs are read only inside

    def __post_init__(self):
        self.gens = Path(self.gens)
        self.report = Path(self.report)
        self.refs = Path(self.refs) if self.refs else None
        self.au_csv = Path(self.au_csv) if self.au_csv else None
        self.gens_openface_dir = Path(self.gens_openface_dir) if self.gens_openface_dir else None
        self.metrics = tuple(self.metrics)
        self.emotion_backends = tuple(self.emotion_backends)
        if self.au_backend not in AU_BACKENDS:
            raise ValueError(f"au_backend must be one of {', '.join(AU_BACKENDS)}, got {self.au_backend!r}")
        unknown = sorted(set(self.metrics) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(METRICS)}")

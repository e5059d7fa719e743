"""`python -m aufx ...`: every action of the app, scriptable.

    python -m aufx edit --input face.jpg --au "AU12:0.8,AU06:0.6" --output out.png
    python -m aufx edit --input face.jpg --preset happy --intensity 0.8 --output out.png
    python -m aufx estimate --input face.jpg [--estimator results/estimator.json | --estimator openface]
    python -m aufx presets
    python -m aufx animate --input portrait.jpg --track track.jsonl --output out.mp4
    python -m aufx edit-video --input clip.mp4 --au "AU12:0.8" --output out.mp4
    python -m aufx stimuli --identities faces/ --conditions conditions.yaml --out stimuli/
    python -m aufx app [--port 7860]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from aufx import __version__
from aufx.au import AUError
from aufx.diffusion.errors import EngineUnavailable
from aufx.engines import registry
from aufx.face.analysis import FaceNotFoundError
from aufx.io.images import ImageReadError

USER_ERRORS = (AUError, FaceNotFoundError, ImageReadError, FileNotFoundError, EngineUnavailable)


def _file_format_errors() -> tuple[type[Exception], ...]:
    """Errors in the user's data files; imported only when an error occurs (pandas and ffmpeg load slowly)."""
    from aufx.model.calibration import CalibrationError
    from aufx.io.arkit import ARKitFormatError
    from aufx.io.keyframes import KeyframeError
    from aufx.io.openface import OpenFaceFormatError
    from aufx.io.video import VideoFormatError
    from aufx.sequence import SequenceError

    return CalibrationError, ARKitFormatError, KeyframeError, OpenFaceFormatError, VideoFormatError, SequenceError


def _add_edit(sub) -> None:
    p = sub.add_parser("edit", help="edit the expression of a face by AUs or a preset")
    p.add_argument("--input", "-i", required=True, help="image file (JPEG, PNG, TIFF, WebP; any bit depth)")
    p.add_argument("--output", "-o", required=True, help="output image (.png carries the metadata inside too)")
    _add_target(p)
    p.add_argument("--face", type=int, default=0, help="which face when there are several (0 = largest)")
    p.add_argument("--engine", choices=registry.names(), default="warp",
                   help="; ".join(f"{n}: {registry.spec(n).summary}" for n in registry.names()))
    p.add_argument("--seed", type=int, default=None, help="random seed (seeded engines: diffusion)")
    p.add_argument("--no-measure", action="store_true", help="skip re-measuring AUs on the output")
    _add_estimator(p)
    registry.add_cli_args(p)


def _add_estimator(p) -> None:
    p.add_argument("--estimator", type=Path, help="calibration JSON from python -m aufx.training.fit_estimator: also "
                   "report AUs on your OpenFace data's scale")


def _add_target(p) -> None:
    p.add_argument("--au", default="", help='target AUs, e.g. "AU04:0.6,AU12:0.7,R14:0.2" (0..1 = OpenFace _r / 5)')
    p.add_argument("--preset", help="emotion prototype: neutral happy sad surprise fear disgust anger contempt")
    p.add_argument("--intensity", type=float, default=1.0, help="scale of the preset, 0..1 (default 1)")
    p.add_argument("--optional", action="store_true", help="include a preset's contested AUs (AU7 in fear)")
    p.add_argument("--neutral", action="store_true",
                   help="start from all AUs at 0 instead of the face's measured AUs")
    p.add_argument("--only-named", dest="only_named", action="store_true",
                   help="a preset changes only the AUs it names (default: it replaces the whole expression)")


def _add_estimate(sub) -> None:
    p = sub.add_parser("estimate", help="print the AUs measured on each face as JSON")
    p.add_argument("--input", "-i", required=True)
    p.add_argument("--per-side", action="store_true", help="report L/R values for bilateral AUs")
    p.add_argument("--estimator", help="'openface': measure with your OpenFace 2.x (see --openface_bin); or a "
                   "calibration JSON from python -m aufx.training.fit_estimator (AUs on your OpenFace data's scale)")
    p.add_argument("--openface_bin", help="OpenFace 2.x FeatureExtraction (default: $OPENFACE_BIN)")


def _add_animate(sub) -> None:
    p = sub.add_parser("animate", help="render a portrait driven by an AU track (ARKit JSONL, OpenFace CSV) or "
                       "AU keyframes; track values are absolute AU targets")
    p.add_argument("--input", "-i", required=True, help="portrait image")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--track", help="ARKit JSONL recording (.jsonl) or OpenFace FeatureExtraction CSV (.csv)")
    src.add_argument("--keyframes", help="AU keyframes JSON (see aufx/io/keyframes.py)")
    p.add_argument("--output", "-o", required=True, help="video to write: .mp4 or .gif")
    p.add_argument("--fps", type=float, help="output frame rate (default: the track's own)")
    p.add_argument("--smooth", type=float, metavar="HZ",
                   help="One-Euro cutoff at rest on the AU track, 0 = off (default: 1 for --track, 0 for --keyframes)")
    p.add_argument("--face", type=int, default=0, help="which face when there are several (0 = largest)")


def _add_edit_video(sub) -> None:
    p = sub.add_parser("edit-video", help="edit the expression of the face in every frame of a video")
    p.add_argument("--input", "-i", required=True, help="video file (anything ffmpeg reads)")
    p.add_argument("--output", "-o", required=True, help="video to write: .mp4 (keeps the audio) or .gif")
    _add_target(p)
    p.add_argument("--smooth", type=float, default=1.0, metavar="HZ",
                   help="One-Euro cutoff at rest on the tracked landmarks, 0 = off (default %(default)s)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m aufx", description="Edit facial expressions by FACS Action "
                                     "Units and measure the result.")
    parser.add_argument("--version", action="version", version=f"aufx {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_edit(sub)
    _add_estimate(sub)
    _add_animate(sub)
    _add_edit_video(sub)
    sub.add_parser("presets", help="list the emotion presets with their AUs and sources")
    sub.add_parser("annotate", help="OpenFace CSVs -> annotations CSV (see python -m aufx.training.annotations -h)",
                   add_help=False)
    sub.add_parser("stimuli", help="build a stimulus set with its manifest (see python -m aufx stimuli -h)",
                   add_help=False)
    sub.add_parser("app", help="start the web app on 127.0.0.1 (see python -m aufx app -h)", add_help=False)
    return parser


def _request(args, **fields):
    """The edit the target flags ask for (checked here: a bad AU token or preset fails before any work)."""
    from aufx.request import EditRequest

    return EditRequest(preset=args.preset, intensity=args.intensity, include_optional=args.optional,
                       neutral=args.neutral, only_named=args.only_named, au_text=args.au, **fields)


def cmd_edit(args) -> int:
    from aufx.io.images import save_image
    from aufx.pipeline import run

    t0 = time.perf_counter()
    src, dst = Path(args.input), Path(args.output)
    if dst.exists() and dst.resolve() == src.resolve():
        raise AUError(f"--output {dst} is the input file; AUFX never overwrites its input")
    calibration = _load_calibration(args.estimator)
    request = _request(args, image=src, face_index=args.face, engine=args.engine, seed=args.seed,
                       engine_options=registry.options_from_args(args.engine, args), measure=not args.no_measure)
    editor, result = run(request)
    face = editor.face(args.face)
    result.timings_ms["cli_total"] = (time.perf_counter() - t0) * 1000
    meta = request.describe(result, output=str(dst))
    if calibration is not None:
        meta["calibrated"] = _calibrated_edit(calibration, face, result.image, not args.no_measure)
    save_image(dst, result.image, meta)
    Path(str(dst) + ".json").write_text(json.dumps(meta, indent=2))
    print(json.dumps({"output": str(dst), "face": face.describe(), "target_aus": meta["target_aus"],
                      "measured_output": meta["measured_output"],
                      **({"calibrated": meta["calibrated"]} if calibration is not None else {})}))
    return 0


def _load_calibration(path: Path | None):
    """The --estimator calibration, read before any work so that a bad file fails fast."""
    if path is None:
        return None
    from aufx.model.calibration import Calibration

    return Calibration.load(path)


def _calibrated_edit(calibration, face, output, measure_output: bool) -> dict:
    """AUs on the calibration's (OpenFace) scale, on the input face and on the same face re-detected in the output.
    Targets stay on the editor's scale: the calibration only changes what is reported."""
    from aufx.model.estimate import estimate_calibrated
    from aufx.pipeline import match_face

    after = match_face(output, face) if measure_output else None
    return {"estimator": calibration.source, "aus": list(calibration.aus),
            "measured_input": estimate_calibrated(face, calibration).per_au(calibration.aus),
            "measured_output": estimate_calibrated(after, calibration).per_au(calibration.aus) if after is not None
            else None}


def cmd_estimate(args) -> int:
    from aufx.model.estimate import estimate_calibrated
    from aufx.openface_runner import AUFX_SOURCE
    from aufx.pipeline import Editor

    if args.estimator == "openface":
        return _estimate_openface(args)
    calibration = _load_calibration(Path(args.estimator) if args.estimator else None)
    editor = Editor(args.input)
    out = []
    for i, face in enumerate(editor.faces):
        aus = estimate_calibrated(face, calibration) if calibration is not None else editor.measured(i)
        row = {"face": i, **face.describe(), "aus": aus.as_dict() if args.per_side else aus.per_au(),
               "source": AUFX_SOURCE}
        if calibration is not None:
            row.update(estimator=calibration.source, calibrated_aus=list(calibration.aus))
        out.append(row)
    print(json.dumps(out, indent=2))
    return 0


def _estimate_openface(args) -> int:
    """OpenFace's static reading of every face AUFX finds (AUFX's order), one FeatureExtraction call in all."""
    from aufx.au import get_au
    from aufx.io.openface import OPENFACE_AUS
    from aufx.openface_runner import SOURCE, OpenFaceError, shared_openface
    from aufx.pipeline import Editor

    try:
        openface = shared_openface(args.openface_bin)
        editor = Editor(args.input)
        readings = openface.read_faces(editor.image, editor.faces)
    except OpenFaceError as exc:
        print(f"aufx: error: {exc}", file=sys.stderr)
        return 2
    out = []
    for i, (face, reading) in enumerate(zip(editor.faces, readings)):
        row = {"face": i, **face.describe(), "aus": None, "source": SOURCE}
        if reading is None:
            row["note"] = "OpenFace found no face in this face's crop"
        else:
            sides = [ch for a in OPENFACE_AUS for ch in get_au(a).channels()]
            row["aus"] = ({ch: round(reading.aus[ch], 3) for ch in sides} if args.per_side
                          else reading.aus.per_au(OPENFACE_AUS))
            row["openface"] = {"confidence": reading.confidence, "box": list(reading.box) if reading.box else None}
        out.append(row)
    print(json.dumps(out, indent=2))
    return 0


@contextmanager
def _progress(desc: str):
    """A tqdm bar on stderr, fed by the sequence functions' progress(done, total) callback."""
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit="frame", file=sys.stderr)

    def update(done: int, total: int | None) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()


def _write_sidecar(summary, **params) -> dict:
    meta = {"aufx_version": __version__, **summary.as_dict(), **params}
    Path(summary.output + ".json").write_text(json.dumps(meta, indent=2))
    print(json.dumps(meta))
    return meta


def cmd_animate(args) -> int:
    from aufx.io.smoothing import OneEuroConfig
    from aufx.pipeline import Editor
    from aufx.sequence import AnimateConfig, SequenceError, animate_portrait, check_output, load_track

    check_output(args.output)
    source = args.track or args.keyframes
    if args.keyframes and Path(args.keyframes).suffix.lower() != ".json":
        raise SequenceError(f"--keyframes {args.keyframes}: expected a .json keyframe file")
    track = load_track(source)
    recorded = Path(source).suffix.lower() != ".json"  # recordings jitter, authored keyframes do not
    smooth = args.smooth if args.smooth is not None else (1.0 if recorded else 0.0)
    config = AnimateConfig(args.fps, OneEuroConfig(min_cutoff=smooth) if smooth > 0 else None, args.face)
    editor = Editor(args.input)
    with _progress("animate") as progress:
        summary = animate_portrait(editor, track, args.output, config, progress)
    _write_sidecar(summary, input=str(args.input), track=str(source), smooth_hz=smooth, face_index=args.face,
                   targets="absolute: each frame's AUs are the track's values; AUs it leaves at 0 are set to 0")
    return 0


def cmd_edit_video(args) -> int:
    from dataclasses import replace

    from aufx.sequence import VideoEditConfig, check_output, edit_video

    check_output(args.output)
    request = _request(args)
    smoothing = VideoEditConfig().landmark_smoothing
    config = VideoEditConfig(replace(smoothing, min_cutoff=args.smooth) if args.smooth > 0 else None)
    with _progress("edit-video") as progress:
        summary = edit_video(args.input, args.output, request, config, progress)
    _write_sidecar(summary, input=str(args.input), au_text=args.au, preset=args.preset,
                   intensity=args.intensity if args.preset else None, neutral=args.neutral, smooth_hz=args.smooth)
    return 0


def cmd_presets(_args) -> int:
    from aufx.model.presets import emotion_presets

    print(json.dumps(emotion_presets(), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "annotate":
        from aufx.training.annotations import main as annotate

        return annotate(argv[1:])
    if argv and argv[0] == "stimuli":
        from aufx.study.stimuli import main as stimuli

        return stimuli(argv[1:])
    if argv and argv[0] == "app":
        from aufx.app import main as app

        app(argv[1:])
        return 0
    args = build_parser().parse_args(argv)
    try:
        return {"edit": cmd_edit, "estimate": cmd_estimate, "presets": cmd_presets, "animate": cmd_animate,
                "edit-video": cmd_edit_video}[args.command](args)
    except (*USER_ERRORS, *_file_format_errors()) as exc:
        print(f"aufx: error: {exc}", file=sys.stderr)
        return 2

"""`python -m aufx ...`: every action of the app, scriptable.

    python -m aufx edit --input face.jpg --au "AU12:0.8,AU06:0.6" --output out.png
    python -m aufx edit --input face.jpg --preset happy --intensity 0.8 --output out.png
    python -m aufx estimate --input face.jpg
    python -m aufx presets
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from aufx import __version__
from aufx.au import AUError
from aufx.diffusion.errors import EngineUnavailable
from aufx.face.analysis import FaceNotFoundError
from aufx.io.images import ImageReadError

USER_ERRORS = (AUError, FaceNotFoundError, ImageReadError, FileNotFoundError, EngineUnavailable)


def _add_edit(sub) -> None:
    p = sub.add_parser("edit", help="edit the expression of a face by AUs or a preset")
    p.add_argument("--input", "-i", required=True, help="image file (JPEG, PNG, TIFF, WebP; any bit depth)")
    p.add_argument("--output", "-o", required=True, help="output image (.png carries the metadata inside too)")
    p.add_argument("--au", default="", help='target AUs, e.g. "AU04:0.6,AU12:0.7,R14:0.2" (0..1 = OpenFace _r / 5)')
    p.add_argument("--preset", help="emotion prototype: neutral happy sad surprise fear disgust anger contempt")
    p.add_argument("--intensity", type=float, default=1.0, help="scale of the preset, 0..1 (default 1)")
    p.add_argument("--optional", action="store_true", help="include a preset's contested AUs (AU7 in fear)")
    p.add_argument("--neutral", action="store_true",
                   help="start from all AUs at 0 instead of the face's measured AUs")
    p.add_argument("--face", type=int, default=0, help="which face when there are several (0 = largest)")
    p.add_argument("--engine", choices=("warp", "diffusion"), default="warp")
    p.add_argument("--seed", type=int, default=None, help="random seed (diffusion engine)")
    p.add_argument("--no-measure", action="store_true", help="skip re-measuring AUs on the output")


def _add_estimate(sub) -> None:
    p = sub.add_parser("estimate", help="print the AUs measured on each face as JSON")
    p.add_argument("--input", "-i", required=True)
    p.add_argument("--per-side", action="store_true", help="report L/R values for bilateral AUs")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m aufx", description="Edit facial expressions by FACS Action "
                                     "Units and measure the result.")
    parser.add_argument("--version", action="version", version=f"aufx {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_edit(sub)
    _add_estimate(sub)
    sub.add_parser("presets", help="list the emotion presets with their AUs and sources")
    sub.add_parser("annotate", help="OpenFace CSVs -> annotations CSV (see python -m training.annotations -h)",
                   add_help=False)
    return parser


def cmd_edit(args) -> int:
    from aufx.io.images import save_image
    from aufx.pipeline import Editor, build_target

    t0 = time.perf_counter()
    src, dst = Path(args.input), Path(args.output)
    if dst.exists() and dst.resolve() == src.resolve():
        raise AUError(f"--output {dst} is the input file; AUFX never overwrites its input")
    editor = Editor(src)
    face = editor.face(args.face)
    measured = editor.measured(args.face)
    target = build_target(measured, args.au, args.preset, args.intensity, args.neutral, args.optional)
    extra = getattr(args, "diffusion_options", {})
    result = editor.edit(target, args.face, args.engine, measure_output=not args.no_measure, seed=args.seed, **extra)
    result.timings_ms["cli_total"] = (time.perf_counter() - t0) * 1000
    meta = result.metadata(input=str(src), output=str(dst), preset=args.preset,
                           intensity=args.intensity if args.preset else None, au_text=args.au, seed=args.seed,
                           faces_found=len(editor.faces), image_size=list(editor.image.shape[:2]))
    save_image(dst, result.image, meta)
    Path(str(dst) + ".json").write_text(json.dumps(meta, indent=2))
    print(json.dumps({"output": str(dst), "face": face.describe(), "target_aus": meta["target_aus"],
                      "measured_output": meta["measured_output"]}))
    return 0


def cmd_estimate(args) -> int:
    from aufx.pipeline import Editor

    editor = Editor(args.input)
    out = []
    for i, face in enumerate(editor.faces):
        aus = editor.measured(i)
        out.append({"face": i, **face.describe(), "aus": aus.as_dict() if args.per_side else aus.per_au()})
    print(json.dumps(out, indent=2))
    return 0


def cmd_presets(_args) -> int:
    from aufx.presets import emotion_presets

    print(json.dumps(emotion_presets(), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "annotate":
        from training.annotations import main as annotate

        return annotate(argv[1:])
    parser = build_parser()
    if argv and argv[0] == "edit" and "--engine" in argv and "diffusion" in argv:
        try:
            from aufx.engines.diffusion import add_diffusion_args
            add_diffusion_args(parser._subparsers._group_actions[0].choices["edit"])
        except ImportError as exc:
            print(f"aufx: error: the diffusion engine is unavailable ({exc})", file=sys.stderr)
            return 2
    args = parser.parse_args(argv)
    if getattr(args, "engine", None) == "diffusion":
        from aufx.engines.diffusion import config_from_args
        args.diffusion_options = {"config": config_from_args(args)}
    try:
        return {"edit": cmd_edit, "estimate": cmd_estimate, "presets": cmd_presets}[args.command](args)
    except USER_ERRORS as exc:
        print(f"aufx: error: {exc}", file=sys.stderr)
        return 2

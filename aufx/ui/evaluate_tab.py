"""The Evaluate tab: score edited images against their sources with aufx/evaluation/evaluate.py and show its report.

Folders are paths on the machine running the app, or uploads (a zip, or the files themselves) unpacked into the
session's work folder. The evaluation library and its models (dlib, the FER network; MediaPipe to measure AUs) load
when the tab is first used, never at app start.
"""
from __future__ import annotations

import re
from pathlib import Path

import gradio as gr
import pandas as pd

from aufx.ui.batch_jobs import InputError, Workspace, folder_input, shown_errors, workspace_state, zip_folder
from aufx.ui.config import AppConfig
from aufx.ui.errors import client_message
from aufx.ui.paths import PathPolicy, policy
from aufx.evaluation.config import METRICS, EvalConfig

LABELS = {"au": "AU error", "identity": "Identity", "lpips": "LPIPS", "psnr": "PSNR", "ssim": "SSIM",
          "emotion": "Emotion accuracy"}
REPORT = "aufx_evaluation"  # the report folder, and the name of its zip
INTRO = """### Evaluate edited images
Each generated image is paired with its source (its `.json` sidecar names it; otherwise the name before `__` must
match a reference image) and scored: **AU error** (target vs measured, lower is better), **identity** similarity,
**LPIPS**, **PSNR**, **SSIM** and **emotion** recognition. Paths are on the machine running the app; uploads are
limited by `--max-file-size`. Same as `python -m aufx.evaluation.evaluate`.
Every column names the instrument that read it. AUs are read by your OpenFace where the server was started with
`OPENFACE_BIN` set (an outside reader), else by the AUFX estimator, which is *self-referential*: AUFX's own model
judging its edits. The EMFACS-prototype emotion check is self-referential too; FER2013 is the outside judge."""
STATUS_COLUMNS = ["metric", "status", "backend", "instrument", "note"]
SUMMARY_LAYOUT = ["AU error ↓", "Identity ↑", "LPIPS ↓", "PSNR ↑", "SSIM ↑", "Emotion acc ↑"]  # until a run fills it


def _folders(ws: Workspace, refs_dir, refs_files, gens_dir, gens_files, paths: PathPolicy) -> tuple[Path | None, Path]:
    uploads = ws.fresh("uploads")
    gens = folder_input(gens_dir, gens_files, uploads / "gens", "Generated images", paths)
    if gens is None:
        raise InputError("Give the generated images: a folder path, or upload a zip or the files.")
    return folder_input(refs_dir, refs_files, uploads / "refs", "Reference images", paths), gens


def _status_table(metric_status: dict, instruments: dict) -> pd.DataFrame:
    from aufx.evaluation.instruments import label

    rows = [[name, s["status"], s.get("backend", ""), label(instruments.get(name)),
             s.get("reason", s.get("face_region", ""))] for name, s in metric_status.items()]
    return pd.DataFrame(rows, columns=STATUS_COLUMNS)


def _summary_table(result: dict) -> pd.DataFrame:
    """One row in the layout papers use: AU error, identity, LPIPS, PSNR, SSIM, emotion accuracy."""
    from aufx.evaluation.report import summary_rows

    rows = summary_rows(result)
    return pd.DataFrame([[value for _, value in rows]], columns=[label for label, _ in rows])


def _write_plots(result: dict, folder: Path) -> list[tuple[str, str]]:
    """The report's plots as PNG files (the page embeds them; the gallery and the zip need files)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from aufx.evaluation.report import figures

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for title, fig in figures(result):
        path = folder / (re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_") + ".png")
        FigureCanvasAgg(fig).print_png(str(path))
        out.append((str(path), title))
    return out


def _status(result: dict) -> str:
    from aufx.evaluation.report import self_referential

    lines = [f"**{len(result['per_image'])} image pairs scored** ({result['throughput_images_per_s']:.2f} pairs/s)."]
    au = result["instruments"].get("au")
    if au and au["instrument"]:
        lines[0] += f" AUs read by {au['instrument']}."
    lines += [f"{name} is self-referential: {why}." for name, why in self_referential(result)]
    lines += [f"{name}: unavailable ({m['reason']})" for name, m in result["metrics"].items() if m["status"] != "ok"]
    if result["unpaired"]:
        first = result["unpaired"][0]
        lines.append(client_message(f"{len(result['unpaired'])} generated image(s) unpaired, e.g. "
                                    f"{Path(first['path']).name}: {first['reason']} (all are listed in metrics.json)."))
    return "  \n".join(lines)


def build(cfg: AppConfig = AppConfig()) -> None:
    state = workspace_state(cfg)
    paths = policy(cfg)
    gr.Markdown(INTRO)
    with gr.Row(equal_height=False):
        with gr.Column():
            gens_dir = gr.Textbox(label="Generated images: folder", placeholder="outputs/",
                                  info="Searched recursively; the .json sidecars beside the images give sources "
                                       "and target AUs.")
            gens_files = gr.File(label="... or upload them: a zip, or the images with their .json sidecars",
                                 file_count="multiple", type="filepath", height=120)
            refs_dir = gr.Textbox(label="Reference (source) images: folder", placeholder="faces/",
                                  info="Optional when the sidecars' input paths exist here.")
            refs_files = gr.File(label="... or upload them: a zip, or the images", file_count="multiple",
                                 type="filepath", height=120)
        with gr.Column():
            au_csv = gr.Textbox(label="Annotations CSV (optional)", placeholder="data/annotations_test.csv",
                                info="image_path,AU01,...,AU45 (0..1): target AUs for images without a sidecar.")
            openface_dir = gr.Textbox(label="OpenFace CSV folder (optional)", placeholder="openface_out/",
                                      info="OpenFace 2.x CSVs of the generated images (<stem>.csv); without it "
                                           "AUs are read by your OpenFace where the server has OPENFACE_BIN "
                                           "set, else by the AUFX estimator (self-referential).")
            metrics = gr.CheckboxGroup([(LABELS[m], m) for m in METRICS], value=list(METRICS), label="Metrics",
                                       info="'Check availability' loads the models and marks those that cannot run.")
            with gr.Row():
                check_btn = gr.Button("Check availability", size="sm", elem_id="eval-check")
                run_btn = gr.Button("Evaluate", variant="primary", elem_id="eval-run")
            availability = gr.Dataframe(headers=STATUS_COLUMNS, label="Metric availability", interactive=False,
                                        wrap=True, visible=False, column_widths=["14%", "12%", "10%", "24%", "40%"])
    status = gr.Markdown(label="Status", elem_id="eval-status")
    summary = gr.Dataframe(headers=SUMMARY_LAYOUT, label="Summary (mean ± std over image pairs)", interactive=False,
                           wrap=True, elem_id="eval-summary")
    plots = gr.Gallery(label="Plots", columns=2, height="auto", object_fit="contain")
    report = gr.File(label="Report: metrics.json, report.html, plots (zip)", interactive=False)

    def check() -> pd.DataFrame:
        """Every metric's status with the reason a model cannot load, as the evaluator itself decides it."""
        from aufx.evaluation.au_error import aufx_measure
        from aufx.evaluation.evaluate import Evaluator

        ev = Evaluator(EvalConfig(metrics=METRICS, openface_bin=cfg.openface_bin or None), aufx_measure)
        return _status_table(ev.metric_status, ev.instruments())

    def mark(table: pd.DataFrame):
        """Show the checkboxes' availability in their labels, and the table with the reasons."""
        down = {m.split(":")[0] for m, s in zip(table["metric"], table["status"]) if s != "ok"}
        choices = [(LABELS[m] + (" (unavailable)" if m in down else ""), m) for m in METRICS]
        return gr.CheckboxGroup(choices=choices), gr.Dataframe(visible=True)

    @shown_errors(ValueError, FileNotFoundError)  # the evaluation's messages: a missing folder, a bad annotations CSV
    def evaluate(refs_dir: str, refs_files: list[str] | None, gens_dir: str, gens_files: list[str] | None,
                 au_csv: str, openface_dir: str, metrics: list[str], ws: Workspace | None,
                 progress=gr.Progress()):
        from aufx.evaluation.au_error import aufx_measure
        from aufx.evaluation.evaluate import evaluate as run

        if not metrics:
            raise InputError("Choose at least one metric.")
        ws = ws or Workspace()
        refs, gens = _folders(ws, refs_dir, refs_files, gens_dir, gens_files, paths)
        out = ws.fresh("report") / REPORT
        config = EvalConfig(gens=gens, refs=refs, au_csv=paths.read(au_csv, "Annotations CSV", folder=False),
                            gens_openface_dir=paths.read(openface_dir, "OpenFace CSV folder"),
                            report=out / "metrics.json", metrics=tuple(metrics), openface_bin=cfg.openface_bin or None,
                            source_roots=(*paths.allowed, ws.root.resolve()))
        measure = None if config.gens_openface_dir else aufx_measure
        progress(0, desc="Loading the models")  # seconds on first use, before the first pair is scored
        result = run(config, measure, lambda i, n: progress((i, n), desc="Scoring image pairs", unit="pairs"))
        if not result["per_image"]:
            why = client_message("; ".join(f"{Path(u['path']).name}: {u['reason']}" for u in result["unpaired"][:3]))
            raise InputError(f"No image pairs to score. {why or 'The generated-images folder holds no images.'}")
        gallery = _write_plots(result, out / "plots")
        archive = zip_folder(out, out.with_suffix(".zip"))
        return _summary_table(result), gallery, str(archive), _status(result), ws

    batch = dict(concurrency_id="batch", concurrency_limit=1)  # one CPU-heavy job at a time, apart from the sliders
    check_btn.click(check, None, [availability], api_name="metric_status", **batch).success(
        mark, [availability], [metrics, availability], api_visibility="private", queue=False)
    run_btn.click(evaluate, [refs_dir, refs_files, gens_dir, gens_files, au_csv, openface_dir, metrics, state],
                  [summary, plots, report, status, state], api_name="evaluate", **batch)

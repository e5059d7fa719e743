"""The Study tab: build a stimulus set, export it as a study page, merge participants' responses back.

Each step uses the session's last result: the page is exported from the last stimulus set, and responses are merged
with its manifest unless another manifest is uploaded. The libraries do the work (aufx/study); this file wires them.
"""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import gradio as gr

from aufx.au import PRESETS_DIR
from aufx.diffusion.errors import EngineUnavailable
from aufx.study import (StudyError, export_study, load_study, merge_responses, read_manifest, read_responses,
                        summarize)
from aufx.study.conditions import load_conditions
from aufx.study.design import PAIR_BY, TASKS
from aufx.study.merge import write_outputs
from aufx.study.page import DEFAULT_QUESTIONS
from aufx.study.stimuli import build_stimuli
from aufx.study.stimulus_config import CROPS, MASKS, StimulusConfig
from aufx.ui.batch_jobs import InputError, Workspace, folder_input, shown_errors, workspace_state, zip_folder
from aufx.ui.config import AppConfig
from aufx.ui.errors import guarded
from aufx.ui.paths import PathPolicy, policy

EXAMPLE_CONDITIONS = PRESETS_DIR / "conditions_example.yaml"
STIMULI = "stimuli"  # the last build's folder inside the session's work folder: <root>/build/stimuli
SHOWN_MANIFEST = ["file", "identity", "condition", "intensity", "engine", "target_aus", "measured_aus",
                  "identity_distance"]
HIDDEN_ANALYSIS = ["params", "sha256"]  # long and only for provenance: in the CSV, not on screen


def _stimuli_dir(ws: Workspace | None) -> Path:
    """The session's last stimulus set: the export and the merge start from it."""
    if ws is None or not (ws.root / "build" / STIMULI / "manifest.csv").is_file():
        raise InputError("Build a stimulus set first (step 1), or upload its manifest.csv.")
    return ws.root / "build" / STIMULI


def _intensities(text: str) -> tuple[float, ...]:
    """'0, 0.5, 1' -> (0.0, 0.5, 1.0); empty gives () and keeps the YAML's (ConditionSet checks the values)."""
    try:
        return tuple(float(p) for p in re.split(r"[,;\s]+", text.strip()) if p)
    except ValueError:
        raise InputError(f"Intensities: numbers in [0, 1] separated by commas, got {text!r}") from None


def _config(ws: Workspace, identities: Path, yaml_text: str, intensities: str, options: dict) -> StimulusConfig:
    conditions_file = ws.fresh("conditions") / "conditions.yaml"  # a file, so YAML errors name their line
    conditions_file.write_text(yaml_text or "", encoding="utf-8")
    conditions = load_conditions(conditions_file)
    levels = _intensities(intensities or "")
    if levels:
        conditions = replace(conditions, intensities=levels)
    return StimulusConfig(identities=identities, conditions=conditions, out=ws.fresh("build") / STIMULI,
                          make_zip=True, **options)


def _read_text(path: str) -> str:
    """An uploaded conditions file goes into the editor, so what is built is always what is shown."""
    return Path(path).read_text(encoding="utf-8")


def _build_section(state: gr.State, paths: PathPolicy) -> None:
    gr.Markdown("### 1. Build a stimulus set\nEvery identity (one photo each) x condition x intensity, aligned, "
                "masked and measured; same as `python -m aufx stimuli`. Paths are on the machine running the app.")
    with gr.Row(equal_height=False):
        with gr.Column():
            identities_dir = gr.Textbox(label="Identities: folder of face photos (file name = identity)",
                                        placeholder="faces/")
            identity_files = gr.File(label="... or upload the photos (or a zip of them)", file_count="multiple",
                                     type="filepath", height=120)
            conditions_file = gr.File(label="Load a conditions YAML into the editor below", type="filepath",
                                      file_types=[".yaml", ".yml"], height=90)
            conditions_text = gr.Code(EXAMPLE_CONDITIONS.read_text(encoding="utf-8"), language="yaml",
                                      label="Conditions (YAML)", lines=14)
        with gr.Column():
            intensities = gr.Textbox(label="Intensities", placeholder="0, 0.5, 1",
                                     info="Comma-separated, 0..1; empty keeps the YAML's.")
            with gr.Row():
                crop = gr.Radio(list(CROPS), value=StimulusConfig.crop, label="Crop",
                                info="standard: aligned square; none: the photo's own frame")
                size = gr.Number(StimulusConfig.size, precision=0, label="Size (px, standard crop)")
            with gr.Row():
                mask = gr.Radio(list(MASKS), value=StimulusConfig.mask, label="Mask")
                background = gr.Dropdown(["gray", "keep"], value=StimulusConfig.background, allow_custom_value=True,
                                         label="Background", info="gray, keep (mask none) or #rrggbb")
            seed = gr.Number(StimulusConfig.seed, precision=0, label="Seed")
            with gr.Row():
                measure = gr.Checkbox(True, label="Measure AUs on every output")
                identity = gr.Checkbox(True, label="Identity distance (dlib)")
            build_btn = gr.Button("Build stimuli", variant="primary", elem_id="study-build")
    status = gr.Markdown(label="Status")
    sheet = gr.Image(label="Contact sheet", type="filepath", interactive=False)
    manifest = gr.Dataframe(label="Manifest (the full one is in the zip)", interactive=False, wrap=True,
                            max_height=400)
    archive = gr.File(label="Stimulus set: manifest.csv, build.json, contact sheet, images (zip)", interactive=False)

    @shown_errors(StudyError, EngineUnavailable)
    def build(identities_dir: str, identity_files: list[str] | None, conditions_text: str, intensities: str,
              crop: str, size: float, mask: str, background: str, seed: float, measure: bool, identity: bool,
              ws: Workspace | None, progress=gr.Progress()):
        ws = ws or Workspace()
        photos = folder_input(identities_dir, identity_files, ws.fresh("identities"), "Identities", paths)
        if photos is None:
            raise InputError("Give the identities: a folder path, or upload the photos.")
        options = dict(crop=crop, size=int(size or 0), mask=mask, background=(background or "").strip(),
                       seed=int(seed or 0), measure_output=bool(measure),
                       identity_backend=StimulusConfig.identity_backend if identity else None)
        config = _config(ws, photos, conditions_text, intensities, options)
        summary = build_stimuli(config, lambda done, total: progress((done, total), desc="Rendering stimuli",
                                                                     unit="images"))
        table = read_manifest(config.out / "manifest.csv")[SHOWN_MANIFEST]
        return str(summary.sheet), table, str(summary.archive), summary.report().replace("\n", "  \n"), ws

    conditions_file.upload(guarded(_read_text, (UnicodeDecodeError,)), conditions_file, conditions_text,
                           api_visibility="private", queue=False)
    build_btn.click(build, [identities_dir, identity_files, conditions_text, intensities, crop, size, mask,
                            background, seed, measure, identity, state], [sheet, manifest, archive, status, state],
                    api_name="build_stimuli", concurrency_id="batch", concurrency_limit=1)  # shares Evaluate's queue


def _export_section(state: gr.State) -> None:
    gr.Markdown("### 2. Export the study page\nA self-contained folder (open `index.html` from disk, no server, no "
                "network) made from the last stimulus set; each participant downloads a response CSV at the end.")
    with gr.Row():
        task = gr.Radio(list(TASKS), value=TASKS[0], label="Task",
                        info="identification: one face, 8 emotion buttons; pairwise: two faces")
        pair_by = gr.Dropdown(list(PAIR_BY), value=PAIR_BY[0], label="Pairwise: faces differ in")
        seed = gr.Number(0, precision=0, label="Seed", info="with the participant code, fixes the trial order")
    question = gr.Textbox(label="Question (empty: the default)", placeholder=DEFAULT_QUESTIONS["identification"],
                          info="In pairwise studies {condition} is replaced by the pair's condition.")
    export_btn = gr.Button("Export study page", variant="primary", elem_id="study-export")
    status = gr.Markdown(label="Status")
    study = gr.File(label="Study folder (zip)", interactive=False)

    @shown_errors(StudyError)
    def export(task: str, pair_by: str, seed: float, question: str, ws: Workspace | None):
        stimuli = _stimuli_dir(ws)
        folder = ws.fresh("study") / "study"
        seed = int(seed or 0)
        export_study(stimuli, folder, task, seed=seed, question=(question or "").strip() or None, pair_by=pair_by)
        trials = len(load_study(folder)["trials"])
        note = f"**{task}** study, {trials} trials, seed {seed}: unzip it and open `study/index.html`."
        return str(zip_folder(folder, folder.with_suffix(".zip"))), note, ws

    export_btn.click(export, [task, pair_by, seed, question, state], [study, status, state], api_name="export_study")


def _merge_section(state: gr.State) -> None:
    gr.Markdown("### 3. Merge responses\nThe participants' response CSVs joined with the manifest of the last "
                "stimulus set (or the one you upload), re-scored, and summarised.")
    with gr.Row():
        responses = gr.File(label="Response CSVs", file_count="multiple", type="filepath", file_types=[".csv"],
                            height=120)
        manifest = gr.File(label="manifest.csv (optional: default is the last build's)", type="filepath",
                           file_types=[".csv"], height=120)
    merge_btn = gr.Button("Merge responses", variant="primary", elem_id="study-merge")
    status = gr.Markdown(label="Status")
    with gr.Row(equal_height=False):
        accuracy = gr.Dataframe(label="Accuracy per condition", interactive=False)
        confusion = gr.Dataframe(label="Confusion matrix (identification) / choice rates (pairwise)",
                                 interactive=False)
    analysis = gr.Dataframe(label="Analysis: one row per response", interactive=False, wrap=True, max_height=400)
    files = gr.File(label="analysis.csv + summary.json", file_count="multiple", interactive=False)

    @shown_errors(StudyError)
    def merge(response_files: list[str] | None, manifest_file: str | None, ws: Workspace | None):
        if not response_files:
            raise InputError("Upload the participants' response CSVs.")
        manifest_path = Path(manifest_file) if manifest_file else _stimuli_dir(ws) / "manifest.csv"
        merged = merge_responses(read_manifest(manifest_path), read_responses(response_files))
        tables = summarize(merged)
        ws = ws or Workspace()
        out = ws.fresh("analysis")
        write_outputs(merged, tables, out / "analysis.csv", out / "summary.json", None)
        second = tables["confusion"] if "confusion" in tables else tables["preference"]
        note = (f"**{len(merged)} responses** from {merged['participant'].nunique()} participant(s), task "
                f"{merged['task'].iloc[0]}, manifest {'uploaded' if manifest_file else 'of the last build'}.")
        shown = merged.drop(columns=HIDDEN_ANALYSIS, errors="ignore")
        return (tables["accuracy_by_condition"], second, shown, [str(out / "analysis.csv"), str(out / "summary.json")],
                note, ws)

    merge_btn.click(merge, [responses, manifest, state], [accuracy, confusion, analysis, files, status, state],
                    api_name="merge_responses")


def build(cfg: AppConfig = AppConfig()) -> None:
    state = workspace_state(cfg)
    _build_section(state, policy(cfg))
    _export_section(state)
    _merge_section(state)

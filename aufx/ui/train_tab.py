"""The Train tab: fine-tune the diffusion engine's AU LoRA on your own annotated faces, from the app.

The run is the command-line pipeline of training/README.md started in the background (annotations from OpenFace
CSVs, face alignment, the AU regressor, `python -m aufx.training.train`), one run per server. The page polls its loss log
(history.jsonl) and console log; a finished LoRA opens in the Edit tab's diffusion engine with one click.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, fields
from functools import partial
from pathlib import Path

import gradio as gr

from aufx.au import catalogue
from aufx.ui.config import AppConfig
from aufx.ui.edit_tab import EditTab
from aufx.ui.errors import client_error, guarded
from aufx.ui.paths import PathPolicy, PathRefused, policy, shown
from aufx.ui.train_runner import LORA_FILE, RunBusy, Step, TrainRunner, log_tail
from aufx.training.config import DEFAULT_YAML, MIXED_PRECISION, TrainConfig, load_yaml, parser

RUNNER = TrainRunner()
T = TrainConfig()  # the form starts at the trainer's own defaults
# The form's fields and what only the server decides: the free-text flags may not set them. The rest of TrainConfig's
# fields hold no paths and may be passed as extra flags.
FORM_FIELDS = {"train_csv", "img_root", "au_keys", "pretrained_model", "lora_rank", "batch_size", "max_steps", "lr",
               "mixed_precision", "lambda_au", "lambda_id", "lambda_lpips", "resolution", "output_dir",
               "checkpoint_every", "resume", "au_regressor", "config", "allow_download"}
ALL_FIELDS = {f.name for f in fields(TrainConfig)} | {"config"}
FREE_FIELDS = ALL_FIELDS - FORM_FIELDS
BOOL_FIELDS = {f.name for f in fields(TrainConfig) if isinstance(getattr(T, f.name), bool)}
SOURCES = [("Annotation CSV (image_path,AU01,...)", "csv"), ("Image folder + OpenFace CSV folder", "openface")]
REGRESSORS = [("Train one first", "train"), ("Use an existing folder", "folder"), ("None (AU loss off)", "none")]
PLOT_POINTS = 1000  # per loss term: a 20k-step run stays light in the browser
INTRO = """### Train the diffusion engine's AU LoRA
Paths are folders and files on the server. The run does what `training/README.md` does from the command line:
OpenFace CSVs → annotation CSV (`aufx.training.annotations`), faces aligned and cropped (`aufx.training.preprocess`), the AU
regressor behind the AU loss (`aufx.training.train_au_regressor`), then `python -m aufx.training.train` with
`aufx/training/configs/train_sd15_lora.yaml` and the settings below. Everything lands in the output folder: the LoRA, run
card, `history.jsonl`, TensorBoard `logs/`, `checkpoints/` and the console log `train_app.log`. One run per server."""


@dataclass(frozen=True)
class Data:
    """Where the training rows come from, after the preparation steps."""
    csv: Path
    root: Path
    steps: tuple[Step, ...]


def build(edit: EditTab, tabs: gr.Tabs, tab: gr.Tab, cfg: AppConfig = AppConfig()) -> None:
    """The tab's form and run view; ``tab``'s selection refreshes the view, "Open in Edit tab" switches ``tabs``.
    Paths are checked against the app's allowed folders, and the run writes only under its output root."""
    paths = policy(cfg)
    gr.Markdown(INTRO)
    with gr.Row(equal_height=False):
        with gr.Column(scale=5):
            form = _form()
        with gr.Column(scale=6):
            with gr.Row():
                start = gr.Button("Start training", variant="primary", elem_id="train-start")
                stop = gr.Button("Stop", variant="stop", elem_id="train-stop")
                open_edit = gr.Button("Open in Edit tab", elem_id="train-open")
            status = gr.Markdown("No run yet.", elem_id="train-status")
            plot = gr.LinePlot(x="step", y="value", color="term", label="Losses (history.jsonl)", height=280)
            log = gr.Textbox(label="Log (train_app.log)", lines=14, max_lines=14, autoscroll=True, interactive=False)
            with gr.Accordion("Run details", open=False):
                details = gr.JSON(label="Run")
    view = [status, plot, log, details]
    timer = gr.Timer(2.0, active=False)

    start.click(guarded(partial(train_start, paths)), list(form.values()), view, api_name="train_start",
                concurrency_id="train").success(
        _poll, None, [timer], queue=False, api_visibility="private")
    stop.click(guarded(train_stop), None, view, api_name="train_stop", concurrency_id="train")
    gr.on([], guarded(train_status), None, view, api_name="train_status")
    gr.on([timer.tick, tab.select], _tick, None, [*view, timer], queue=False, api_visibility="private")
    panel = edit.engine
    opened = open_edit.click(guarded(partial(open_in_edit, paths)), [form["output_dir"], form["base_model"]],
                             [tabs, panel.box, panel.engine, panel.model, panel.lora_path], api_visibility="private")
    edit.apply_engine(opened)


def _form() -> dict[str, gr.components.Component]:
    """The run's settings by train_start's parameter names, in its order."""
    with gr.Accordion("Data", open=True):
        source = gr.Radio(SOURCES, value="csv", label="Training data")
        with gr.Column() as csv_box:
            annotations_csv = gr.Textbox(T.train_csv, label="Annotation CSV")
            image_root = gr.Textbox(T.img_root, label="Image root (the CSV's image_path is relative to it)")
        with gr.Column(visible=False) as openface_box:
            image_dir = gr.Textbox("", label="Image folder")
            openface_dir = gr.Textbox("", label="OpenFace CSV folder (paired with the images by name)")
        align = gr.Checkbox(True, label="Align and crop the faces first (aufx.training.preprocess; untick for its crops)")
        regressor = gr.Radio(REGRESSORS, value="train", label="AU regressor (for the AU loss)")
        regressor_dir = gr.Textbox("", label="AU regressor folder (au_regressor.safetensors/.json)", visible=False)
    source.change(lambda s: (gr.Column(visible=s == "csv"), gr.Column(visible=s == "openface")), [source],
                  [csv_box, openface_box], queue=False, api_visibility="private")
    regressor.change(lambda r: gr.Textbox(visible=r == "folder"), [regressor], [regressor_dir], queue=False,
                     api_visibility="private")
    with gr.Accordion("Model and LoRA", open=True):
        base_model = gr.Textbox(T.pretrained_model, label="Base model (local diffusers folder or Hugging Face id)")
        au_keys = gr.CheckboxGroup([a.code for a in catalogue()], value=list(T.au_keys), label="AUs the LoRA learns")
        with gr.Row():
            lora_rank = gr.Number(T.lora_rank, precision=0, label="LoRA rank")
            resolution = gr.Number(T.resolution, precision=0, step=64, label="Image size (px)")
    with gr.Accordion("Optimisation and losses", open=True):
        with gr.Row():
            batch_size = gr.Number(T.batch_size, precision=0, label="Batch size")
            max_steps = gr.Number(T.max_steps, precision=0, label="Max steps")
            lr = gr.Number(T.lr, label="Learning rate")
        mixed_precision = gr.Radio(list(MIXED_PRECISION), value=T.mixed_precision,
                                   label="Mixed precision (GPU; a CPU trains in fp32)")
        with gr.Row():
            lambda_au = gr.Number(T.lambda_au, label="λ AU")
            lambda_id = gr.Number(T.lambda_id, label="λ identity")
            lambda_lpips = gr.Number(T.lambda_lpips, label="λ LPIPS")
    with gr.Accordion("Output", open=True):
        output_dir = gr.Textbox(T.output_dir, label="Output folder")
        with gr.Row():
            checkpoint_every = gr.Number(T.checkpoint_every, precision=0, label="Checkpoint every N steps")
            resume = gr.Checkbox(False, label="Resume from its newest checkpoint")
        extra_flags = gr.Textbox("", label="More flags for aufx.training.train", placeholder="--num_workers 0 --seed 1",
                                 info="Any TrainConfig field, e.g. --lora_alpha 8 --lr_warmup_steps 100 --balance")
    return dict(source=source, annotations_csv=annotations_csv, image_root=image_root, image_dir=image_dir,
                openface_dir=openface_dir, align=align, regressor=regressor, regressor_dir=regressor_dir,
                base_model=base_model, au_keys=au_keys, lora_rank=lora_rank, batch_size=batch_size,
                max_steps=max_steps, lr=lr, mixed_precision=mixed_precision, lambda_au=lambda_au,
                lambda_id=lambda_id, lambda_lpips=lambda_lpips, resolution=resolution, output_dir=output_dir,
                checkpoint_every=checkpoint_every, resume=resume, extra_flags=extra_flags)


# Events --------------------------------------------------------------------------------------------------------------
def train_start(paths: PathPolicy, source: str, annotations_csv: str, image_root: str, image_dir: str,
                openface_dir: str, align: bool, regressor: str, regressor_dir: str, base_model: str,
                au_keys: list[str], lora_rank: int, batch_size: int, max_steps: int, lr: float, mixed_precision: str, lambda_au: float,
                lambda_id: float, lambda_lpips: float, resolution: int, output_dir: str, checkpoint_every: int,
                resume: bool, extra_flags: str):
    """Check the settings as the trainer will, then start the run in the background. Every path must lie in the
    allowed folders and the output folder in the output root; the extra flags may not touch the form's fields."""
    try:
        out = paths.write(output_dir, "Output folder")
        extra = _extra_flags(extra_flags)
        _check_fresh(out, resume)
        data = _data(paths, source, annotations_csv, image_root, image_dir, openface_dir, align, resolution, out)
        keys = list(au_keys or [])
        if not keys:
            raise ValueError("choose at least one AU for the LoRA to learn")
        flags = {"pretrained_model": paths.model(base_model, "Base model") or T.pretrained_model,
                 "lora_rank": lora_rank, "batch_size": batch_size, "max_steps": max_steps, "lr": lr,
                 "mixed_precision": mixed_precision, "lambda_au": lambda_au, "lambda_id": lambda_id,
                 "lambda_lpips": lambda_lpips, "resolution": resolution, "checkpoint_every": checkpoint_every}
        steps, reg = _regressor(paths, regressor, regressor_dir, lambda_au, data, keys, out)
        argv = _train_argv(data, out, keys, flags, reg, resume, extra)
        RUNNER.start([*data.steps, *steps, Step("training", tuple(argv))], out, _validated(argv[1:]).max_steps)
    except (RunBusy, ValueError, OSError) as exc:  # OSError: a folder that cannot be read or written
        raise client_error(exc) from None
    return _view()


def train_stop():
    """Stop the run: its current step's processes get SIGTERM, and SIGKILL if they are still there after 10 s."""
    RUNNER.stop()
    return _view()


def train_status():
    """The run as the page shows it: status line, losses, log tail, details."""
    return _view()


def open_in_edit(paths: PathPolicy, output_dir: str, base_model: str):
    """The run's LoRA in the Edit tab's diffusion engine, on the base model it was trained on."""
    out = paths.read(output_dir, "Output folder")
    if out is None:
        raise PathRefused("Output folder: the field is empty")
    lora = out / LORA_FILE
    if not lora.is_file():
        raise gr.Error(f"no {LORA_FILE} in the output folder yet: it is written when a run finishes",
                       print_exception=False)
    return gr.Tabs(selected="edit"), gr.Accordion(open=True), "diffusion", _trained_on(out) or base_model, str(lora)


# Settings -> steps ---------------------------------------------------------------------------------------------------
def _required(paths: PathPolicy, text: str, what: str, folder: bool = True) -> Path:
    path = paths.read(text, what, folder)
    if path is None:
        raise PathRefused(f"{what}: the field is empty")
    return path


def _extra_flags(text: str | None) -> list[str]:
    """The free-text flags, split as a shell would; only TrainConfig fields the form does not set, spelled out in
    full (the trainer's argparse would take '--output' for '--output_dir')."""
    try:
        tokens = shlex.split(text or "")
    except ValueError as exc:
        raise ValueError(f"training flags: {exc}") from None
    for token in tokens:
        if not token.startswith("-") or _number(token):
            continue
        name = token[2:].split("=", 1)[0] if token.startswith("--") else ""
        field = name[3:] if name.startswith("no-") and name[3:] in BOOL_FIELDS else name
        if field in FORM_FIELDS:
            raise ValueError(f"training flags: --{field} is set by the form above; change it there")
        if field not in FREE_FIELDS and (not field or any(f.startswith(field) for f in ALL_FIELDS)):
            raise ValueError(f"training flags: {shown(token)}: write flags in full, e.g. --lora_alpha 8")
    return tokens  # an unknown name is left to the trainer's parser, which names it


def _number(token: str) -> bool:
    try:
        float(token)
        return True
    except ValueError:
        return False


def _check_fresh(out: Path, resume: bool) -> None:
    """The trainer refuses to mix a fresh run with old checkpoints; say so before anything starts."""
    if not resume and any(out.glob("checkpoints/step_*/trainer_state.json")):
        raise ValueError(f"{out} already holds checkpoints: tick 'Resume' to continue that run, or choose another "
                         "output folder")


def _data(paths: PathPolicy, source: str, annotations_csv: str, image_root: str, image_dir: str, openface_dir: str,
          align: bool, size: int | None, out: Path) -> Data:
    """The annotation CSV (built from OpenFace CSVs when asked), aligned and cropped when asked."""
    if source == "openface":
        images = _required(paths, image_dir, "Image folder")
        openface = _required(paths, openface_dir, "OpenFace CSV folder")
        csv, root = out / "data" / "annotations.csv", images
        steps = [Step("annotations", ("aufx.training.annotations", "--img_dir", str(images), "--openface_dir",
                                      str(openface), "--out_csv", str(csv)))]
    else:
        csv = _required(paths, annotations_csv, "Annotation CSV", folder=False)
        root, steps = _required(paths, image_root, "Image root"), []
    if align:
        aligned = out / "data" / "aligned"
        steps.append(Step("alignment", ("aufx.training.preprocess", "--annotations", str(csv), "--img_root", str(root),
                                        "--size", str(size), "--out", str(aligned))))
        csv, root = aligned / "annotations.csv", aligned
    return Data(csv, root, tuple(steps))


def _regressor(paths: PathPolicy, choice: str, folder: str, lambda_au: float, data: Data, keys: list[str],
               out: Path) -> tuple[list[Step], Path | None]:
    """(steps, regressor folder) for the AU loss; none when it is off."""
    if choice == "none" or not lambda_au:
        return [], None
    if choice == "folder":
        return [], _required(paths, folder, "AU regressor folder")
    step = Step("AU regressor", ("aufx.training.train_au_regressor", "--annotations", str(data.csv), "--img_root",
                                 str(data.root), "--out", str(out), "--au_keys", *keys))
    return [step], out


def _train_argv(data: Data, out: Path, keys: list[str], flags: dict, regressor: Path | None, resume: bool,
                extra: list[str]) -> list[str]:
    argv = ["aufx.training.train", "--config", str(DEFAULT_YAML), "--train_csv", str(data.csv), "--img_root",
            str(data.root), "--output_dir", str(out), "--au_keys", *keys]
    for name, value in flags.items():
        argv += [f"--{name}", str(value)]
    if regressor is not None:
        argv += ["--au_regressor", str(regressor)]
    return argv + (["--resume"] if resume else []) + extra


def _validated(argv: list[str]) -> TrainConfig:
    """The TrainConfig the trainer will build from ``argv``: a bad flag or value is reported now, not in the log."""
    p = parser()
    p.error = _reject
    args = vars(p.parse_args(argv))
    values = load_yaml(args.pop("config"))
    values.update({k: v for k, v in args.items() if v is not None})
    return TrainConfig(**values)


def _reject(message: str):
    raise ValueError(f"training flags: {message}")


def _trained_on(out: Path) -> str | None:
    """The base model recorded in the run card, so the LoRA opens on the model it fits."""
    card = out / "run_card.json"
    return json.loads(card.read_text())["config"]["pretrained_model"] if card.is_file() else None


# The view ------------------------------------------------------------------------------------------------------------
def _view() -> tuple:
    info = RUNNER.status()
    run = RUNNER.run
    if run is None:
        return "No run yet.", None, "", info
    return _headline(info), _losses(run.history()), log_tail(run.log), info


def _tick():
    """The timer's poll: the view, and the timer itself stops once the run is over."""
    view = _view()
    return (*view, gr.Timer(active=view[-1]["state"] == "running"))


def _poll():
    return gr.Timer(active=True)


def _headline(info: dict) -> str:
    state, elapsed = info["state"], f"{info['elapsed_s']:.0f} s"
    progress = f"step {info['step']} / {info['max_steps']}"
    if state == "running":
        return f"**Running**: {info['stage']}, {progress}, {elapsed}."
    if state == "done":
        return f"**Done** in {elapsed} ({progress}): `{info['lora']}`. *Open in Edit tab* uses it."
    if state == "stopped":
        return f"**Stopped** during {info['stage']} ({progress}, {elapsed})."
    return f"**Failed** during {info['stage']} (exit code {info['returncode']}): the log below says why."


def _losses(rows: list[dict]):
    """Long-format table for the plot: one row per (step, loss term), thinned to PLOT_POINTS steps."""
    import pandas as pd

    if not rows:
        return None
    keep = rows[::max(1, len(rows) // PLOT_POINTS)]
    if keep[-1] is not rows[-1]:
        keep.append(rows[-1])
    long = [{"step": r["step"], "term": k, "value": v} for r in keep for k, v in r.items() if k not in ("step", "lr")]
    return pd.DataFrame(long)

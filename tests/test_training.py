"""LoRA training end to end on the CPU: a small AU-annotated set made from the test faces, preprocessing, the AU
regressor, training of a tiny random SD model, kill-and-resume, and the engine loading the result.

The training set is made the way a researcher's would be, only with known AUs: warp-engine edits of the two test
faces (8 emotion prototypes x 2 intensities) -> images + OpenFace-format CSVs -> aufx.training.annotations ->
aufx.training.preprocess. Training runs at 32 px (the tiny VAE halves it: 16x16 latents) so a step takes ~0.1 s.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import types
from importlib.metadata import version
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from aufx.au import AUVector, get_au
from aufx.diffusion.config import DiffusionConfig
from aufx.diffusion.tiny import save_tiny_model
from aufx.model.deform import deform
from aufx.engines.diffusion import DiffusionEngine
from aufx.face.analysis import analyze_faces
from aufx.io.openface import OPENFACE_AUS, write_openface_csv
from aufx.engines.diffusion import face_mask
from aufx.model.presets import EMOTIONS, preset_vector
from aufx.training import checkpoint
from aufx.training.align import alignment_matrix, align_face, eye_centres, template
from aufx.training.annotations import AnnotationConfig, write_annotations
from aufx.training.au_regressor import load_regressor
from aufx.training.config import DEFAULT_YAML, TrainConfig, from_args, load_yaml, save_yaml
from aufx.training.data import EpochSampler, balanced_weights, parse_label, read_annotations
from aufx.training.losses import ALEXNET_WEIGHTS, FACENET_WEIGHTS, build_image_losses
from aufx.training.preprocess import main as preprocess_main
from aufx.training.train import main as train_main
from aufx.training.train import train
from aufx.training.train_au_regressor import RegressorConfig, train_regressor

ROOT = Path(__file__).resolve().parents[1]
STEPS = 60  # the main run; it checkpoints at STEPS // 2


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, astronaut_editor, grace_editor):
    """Train/ + OpenFace/ as a researcher has them, the annotation CSV (with an emotion column), aligned 64 px crops."""
    root = tmp_path_factory.mktemp("data")
    img_dir, of_dir = root / "Train", root / "OpenFace"
    img_dir.mkdir()
    labels = {}
    for who, editor in (("astronaut", astronaut_editor), ("grace", grace_editor)):
        for emotion in EMOTIONS:
            for k, intensity in enumerate((0.5, 1.0)):
                target = preset_vector(emotion, intensity)
                name = f"{who}_{emotion}_{k}"
                out = editor.edit(target, measure_output=False).image
                cv2.imwrite(str(img_dir / f"{name}.png"), cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
                # OpenFace measures both sides of a bilateral AU together
                row = {f"{au}_r": 5 * max(target[c] for c in get_au(au).channels()) for au in OPENFACE_AUS}
                write_openface_csv(of_dir / f"{name}.csv", [row], kind="image")
                labels[name] = emotion
    cv2.imwrite(str(img_dir / "no_face.png"), np.full((96, 96, 3), 90, np.uint8))
    write_openface_csv(of_dir / "no_face.csv", [{"AU12_r": 2.0}], kind="image")
    annotations = root / "annotations_train.csv"
    write_annotations(AnnotationConfig(img_dir, of_dir, annotations))
    table = pd.read_csv(annotations)
    table["emotion"] = [labels.get(Path(p).stem, "neutral") for p in table["image_path"]]
    table.to_csv(annotations, index=False)
    code = preprocess_main(["--annotations", str(annotations), "--img_root", ".", "--size", "64",
                            "--out", str(root / "aligned"), "--ext", "png"])
    assert code == 0
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny"), controlnet=False)


@pytest.fixture(scope="module")
def regressor(dataset):
    aligned = dataset / "aligned"
    history = train_regressor(RegressorConfig(str(aligned / "annotations.csv"), str(aligned), str(dataset / "reg"),
                                              input_size=64, width=16, epochs=25, batch_size=8, num_workers=0),
                              progress=False)
    return dataset / "reg", history


def _config(dataset, tiny, regressor_dir, out, **kw) -> TrainConfig:
    aligned = dataset / "aligned"
    base = dict(train_csv=str(aligned / "annotations.csv"), img_root=str(aligned), pretrained_model=str(tiny.model_dir),
                au_regressor=regressor_dir and str(regressor_dir), output_dir=str(out), resolution=32, batch_size=4,
                max_steps=STEPS, lr=2e-3, lr_warmup_steps=5, lora_rank=4, lora_alpha=4.0, au_hidden=32, num_workers=0,
                checkpoint_every=STEPS // 2, keep_checkpoints=2, log_every=10, aux_max_timestep=1000, aux_samples=1,
                balance=True,
                cpu=True)  # also on a GPU machine: the bit-exact resume and the run card's checks are CPU facts
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def run(dataset, tiny, regressor, tmp_path_factory):
    """One uninterrupted run, with the warnings it logged."""
    out = tmp_path_factory.mktemp("run")
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("aufx.training.train").addHandler(handler)
    try:
        card = train(_config(dataset, tiny, regressor[0], out), progress=False)
    finally:
        logging.getLogger("aufx.training.train").removeHandler(handler)
    return out, card, _history(out), [r.getMessage() for r in records]


def _history(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]


# --- preprocessing ------------------------------------------------------------------------------------------------


def test_preprocess_keeps_rows_in_step_and_reports_faces_not_found(dataset):
    source = pd.read_csv(dataset / "annotations_train.csv")
    aligned = pd.read_csv(dataset / "aligned" / "annotations.csv")
    assert len(source) == 33 and len(aligned) == 32
    assert list(aligned.columns) == list(source.columns)  # AUs and the emotion column travel with the crops
    by_name = source.set_index(source["image_path"].map(lambda p: Path(p).stem))
    for _, row in aligned.iterrows():
        src = by_name.loc[Path(row["image_path"]).stem]
        assert row[list(OPENFACE_AUS)].tolist() == pytest.approx(src[list(OPENFACE_AUS)].tolist())
        assert row["emotion"] == src["emotion"]
        crop = cv2.imread(str(dataset / "aligned" / row["image_path"]))
        assert crop.shape == (64, 64, 3)
    report = (dataset / "aligned" / "preprocess_report.txt").read_text().splitlines()
    assert report[0] == "faces not found (rows left out): 1" and report[1].endswith("no_face.png")
    assert report[-1] == "summary: rows=33 written=32 no_face=1 unreadable=0 several_faces=0"


def test_alignment_puts_the_eyes_on_the_template_and_removes_roll(grace, grace_editor):
    face = grace_editor.face()
    m = alignment_matrix(face, 256)
    right, left = (m @ np.r_[p, 1.0] for p in eye_centres(face.landmarks))
    tpl = template()
    assert right[1] == pytest.approx(left[1], abs=1e-6)  # eye line horizontal
    assert (right + left) / 2 == pytest.approx(np.array(tpl.eye_mid) * 256, abs=1e-6)
    h, w = grace.shape[:2]
    rotated = cv2.warpAffine(grace, cv2.getRotationMatrix2D((w / 2, h / 2), 20, 1.0), (w, h))
    upright = align_face(grace, face, 64).astype(float)
    turned = align_face(rotated, analyze_faces(rotated)[0], 64).astype(float)
    centre = slice(16, 48)  # the corners of the rotated image are filled borders
    assert np.abs(upright[centre, centre] - turned[centre, centre]).mean() < 12


# --- configuration and data ---------------------------------------------------------------------------------------


def test_yaml_mirrors_the_dataclass_and_flags_override_it(tmp_path):
    assert load_yaml(DEFAULT_YAML) == TrainConfig().to_dict()
    cfg = from_args(["--config", str(DEFAULT_YAML), "--au_keys", "AU1", "12", "--lr", "3e-4", "--no-hflip",
                     "--resume", "--au_regressor", "runs/reg"])
    assert (cfg.au_keys, cfg.lr, cfg.hflip, cfg.resume, cfg.au_regressor) == (("AU01", "AU12"), 3e-4, False,
                                                                                "latest", "runs/reg")
    assert cfg.batch_size == TrainConfig.batch_size
    (tmp_path / "bad.yaml").write_text("lerning_rate: 1\n")
    with pytest.raises(ValueError, match="lerning_rate"):
        from_args(["--config", str(tmp_path / "bad.yaml")])
    with pytest.raises(ValueError, match="mixed_precision"):
        TrainConfig(mixed_precision="fp8")


def test_balanced_sampling_draws_classes_equally():
    assert [parse_label(v) for v in ("Happy", 3, "7", "8", "unknown", 2.0)] == [1, 3, 7, -1, -1, 2]
    labels = np.array([0] * 90 + [1] * 10 + [-1] * 5)
    weights = balanced_weights(labels)
    assert weights[labels < 0].sum() == 0
    sampler = EpochSampler(len(labels), seed=0, weights=weights)
    drawn = np.concatenate([labels[list(sampler)] for sampler.epoch in range(40)])
    assert set(np.unique(drawn)) == {0, 1} and abs((drawn == 1).mean() - 0.5) < 0.03
    sampler.set_epoch(3)
    assert list(sampler) == list(sampler)  # the order depends on (seed, epoch) only
    assert list(EpochSampler(20, seed=1)) != list(EpochSampler(20, seed=2))


def test_annotation_errors_name_the_problem(tmp_path):
    (tmp_path / "a.csv").write_text("image_path,AU12\nx.png,3.5\n")
    with pytest.raises(ValueError, match=r"normalised to \[0, 1\]"):
        read_annotations(tmp_path / "a.csv", tmp_path, ("AU12",))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['AU45'\]"):
        read_annotations(tmp_path / "a.csv", tmp_path, ("AU12", "AU45"))


# --- AU regressor -------------------------------------------------------------------------------------------------


def test_au_regressor_trains_and_is_saved_with_its_config(regressor):
    folder, history = regressor
    steps = history["step_loss"]
    assert np.mean(steps[-8:]) < 0.6 * np.mean(steps[:8])
    config = json.loads((folder / "au_regressor.json").read_text())
    assert config["au_keys"] == list(OPENFACE_AUS) and config["input_size"] == 64
    model = load_regressor(folder)
    out = model(torch.zeros(2, 3, 32, 32))  # any input size: resized inside
    assert out.shape == (2, len(OPENFACE_AUS)) and ((out >= 0) & (out <= 1)).all()


# --- LoRA training ------------------------------------------------------------------------------------------------


def test_training_loss_falls(run):
    _, card, history, _ = run
    assert [h["step"] for h in history] == list(range(1, STEPS + 1))
    loss = np.array([h["loss"] for h in history])
    assert loss[-15:].mean() < loss[:15].mean() - 0.02
    assert card["steps"] == STEPS and card["steps_per_second"] > 0
    assert all("au" in h for h in history[:5])  # aux_max_timestep 1000: every batch has AU-loss samples


def test_run_outputs_card_and_losses_on_offline_models(run):
    """facenet-pytorch and lpips are not installed here: identity and perceptual run on the offline models instead,
    and the card, the README and the log say which model each term used and why."""
    out, card, history, warnings = run
    assert {"lora_unet.safetensors", "run_card.json", "README.md", "train_config.yaml", "history.jsonl",
            "au_regressor.safetensors", "au_regressor.json"} <= {p.name for p in out.iterdir()}
    saved = json.loads((out / "run_card.json").read_text())
    assert saved["losses"]["au"]["active"] and saved["losses"]["noise"]["active"]
    for name, package, model in (("identity", "facenet-pytorch", "dlib ResNet"), ("perceptual", "lpips", "MS-SSIM")):
        s = saved["losses"][name]
        assert s["active"] and model in s["model"] and f"{package} is not importable: not installed" in s["reason"]
        assert any(f"{name} loss uses" in w and model in w for w in warnings)
        assert all(name in h and np.isfinite(h[name]) for h in history)
    readme = (out / "README.md").read_text()
    assert "## Losses on a fallback model" in readme and "## Losses switched off" not in readme
    assert not saved["losses_off"] and yaml.safe_load((out / "train_config.yaml").read_text())["lambda_id"] == 0.5
    assert saved["resolved"]["mixed_precision"] == "no" and "fp32 on the CPU" in saved["resolved"]["precision_note"]
    assert saved["data"]["classes"]["happy"] == 4 and saved["data"]["sampler"] == "balanced"
    assert set(saved["final_losses"]) == {"loss", "noise", "au", "identity", "perceptual"}
    speed = saved["speed"]
    assert speed["warmup_steps"] == 2 and speed["timed_steps"] == STEPS - 2 and speed["peak_gpu_memory_gib"] is None
    assert speed["images_per_second"] == pytest.approx(speed["steps_per_second"] * 4, rel=1e-3)
    assert "images/s over 58 steps (the first 2 left out" in readme
    assert saved["versions"]["torch"] == version("torch") and saved["versions"]["accelerate"] == version("accelerate")
    assert list((out / "logs").rglob("events.out.tfevents.*"))  # TensorBoard
    assert [p.name for _, p in checkpoint.list_checkpoints(out / "checkpoints")] == [
        checkpoint.checkpoint_name(STEPS // 2), checkpoint.checkpoint_name(STEPS)]


def test_resume_after_a_kill_continues_exactly(run, dataset, tiny, regressor, tmp_path):
    """A run killed after its mid checkpoint (and during the next save) resumes in a new process to the same state."""
    full, _, history, _ = run
    half = STEPS // 2
    killed = tmp_path / "killed"
    shutil.copytree(full / "checkpoints" / checkpoint.checkpoint_name(half),
                    killed / "checkpoints" / checkpoint.checkpoint_name(half))
    partial = killed / "checkpoints" / f".tmp-{checkpoint.checkpoint_name(STEPS)}"  # the save the kill interrupted
    partial.mkdir()
    (partial / "optimizer.bin").write_bytes(b"truncated")
    config = tmp_path / "run.yaml"
    save_yaml(_config(dataset, tiny, regressor[0], full), config)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "aufx.training.train", "--config", str(config), "--output_dir",
                           str(killed), "--resume"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"resumed from {killed / 'checkpoints' / checkpoint.checkpoint_name(half)} at step {half}" in proc.stdout
    resumed = _history(killed)
    assert [h["step"] for h in resumed] == list(range(half + 1, STEPS + 1))
    assert [h["loss"] for h in resumed] == [h["loss"] for h in history[half:]]  # bit for bit
    a, b = (p / "checkpoints" / checkpoint.checkpoint_name(STEPS) for p in (full, killed))
    for name in ("trainable.safetensors", "ema.safetensors"):
        x, y = load_file(str(a / name)), load_file(str(b / name))
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    opt_a, opt_b = (torch.load(p / "optimizer.bin", weights_only=False) for p in (a, b))
    assert opt_a["state"].keys() == opt_b["state"].keys()
    for k in opt_a["state"]:
        assert all(torch.equal(opt_a["state"][k][s], opt_b["state"][k][s]) for s in ("step", "exp_avg", "exp_avg_sq"))
    rng_a, rng_b = (torch.load(p / "random_states_0.pkl", weights_only=False) for p in (a, b))
    assert torch.equal(rng_a["torch_manual_seed"], rng_b["torch_manual_seed"])
    assert json.loads((b / "trainer_state.json").read_text())["ema"] == json.loads(
        (a / "trainer_state.json").read_text())["ema"]
    assert not partial.exists()  # replaced by the completed save


def test_a_fresh_run_refuses_to_mix_with_old_checkpoints(run, dataset, tiny, regressor, capsys):
    full, _, _, _ = run
    code = train_main(["--config", str(full / "train_config.yaml"), "--max_steps", "2"])
    assert code == 2 and "already holds checkpoints" in capsys.readouterr().err


def test_missing_base_model_says_what_to_fetch(dataset, tiny, regressor, tmp_path, capsys):
    cfg = _config(dataset, tiny, regressor[0], tmp_path / "out", pretrained_model=str(tmp_path / "no_model"))
    save_yaml(cfg, tmp_path / "c.yaml")
    assert train_main(["--config", str(tmp_path / "c.yaml")]) == 2
    captured = capsys.readouterr()
    assert "does not exist" in captured.err
    assert "hf download stable-diffusion-v1-5/stable-diffusion-v1-5" in captured.err
    assert ("class counts (emotion; balanced): neutral 4, happy 4, sad 4, surprise 4, fear 4, disgust 4, anger 4, "
            "contempt 4, other 0") in captured.out


def test_trained_lora_loads_in_the_engine_and_changes_its_output(run, tiny, grace_editor):
    out, card, _, _ = run
    face = grace_editor.face()
    target = AUVector({"AU06": 0.6, "AU12": 0.8})
    d = deform(face, target)
    warped = grace_editor.engine("warp").render(grace_editor.image, face, target, d)
    mask = face_mask(face, d)
    common = dict(model=str(tiny.model_dir), crop_size=64, steps=4, strength=0.5, prompt="a face")
    plain = DiffusionEngine(DiffusionConfig(**common)).refine(warped, mask, target, seed=0)
    engine = DiffusionEngine(DiffusionConfig(**common, lora_path=str(out / "lora_unet.safetensors")))
    with_lora = engine.refine(warped, mask, target, seed=0)
    assert with_lora.shape == plain.shape and not np.array_equal(with_lora, plain)
    assert engine.params()["lora_sha256"] == card["outputs"]["lora_sha256"]


def test_gradient_accumulation_counts_optimiser_steps_and_rotates_checkpoints(dataset, tiny, tmp_path):
    """Also: no AU regressor given -> the AU loss is off with the reason; EMA and the tracker can be off."""
    out = tmp_path / "accum"
    card = train(_config(dataset, tiny, None, out, max_steps=3, grad_accum=2, checkpoint_every=1, keep_checkpoints=2,
                         ema=False, report_to=None, balance=False), progress=False)
    assert [h["step"] for h in _history(out)] == [1, 2, 3]
    assert [s for s, _ in checkpoint.list_checkpoints(out / "checkpoints")] == [2, 3]
    last = out / "checkpoints" / checkpoint.checkpoint_name(3)
    opt = torch.load(last / "optimizer.bin", weights_only=False)
    assert {float(s["step"]) for s in opt["state"].values()} == {3.0}  # 3 optimiser steps from 6 micro-batches
    assert json.loads((last / "trainer_state.json").read_text())["data_position"]["grad_accum"] == 2
    assert not (last / "ema.safetensors").exists() and card["outputs"]["weights"] == "last"
    assert not card["losses"]["au"]["active"] and "no --au_regressor" in card["losses_off"]["au"]
    assert (out / "train_config.yaml").read_text().startswith("# au loss OFF (lambda 1): no --au_regressor")
    assert "## Losses switched off" in (out / "README.md").read_text()
    assert (card["speed"]["timed_steps"], card["speed"]["warmup_steps"]) == (1, 2)
    assert not (out / "logs").exists()


def test_facenet_and_lpips_are_first_choice_where_their_models_load(tmp_path, monkeypatch):
    """Stand-ins for facenet-pytorch and lpips (not installable here: they need torchvision) exercise the path taken
    where they exist; without their weights the offline models take over and say why."""
    class Embedder(torch.nn.Module):
        def __init__(self, pretrained=None, classify=False):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, stride=4)

        def forward(self, x):
            assert x.shape[-2:] == (160, 160)  # facenet's input size
            return self.conv(x).mean(dim=(2, 3))

    class Perceptual(torch.nn.Module):
        def __init__(self, net="alex", verbose=False):
            super().__init__()

        def forward(self, a, b):
            return (a - b).abs().mean(dim=(1, 2, 3))

    monkeypatch.setitem(sys.modules, "facenet_pytorch", types.SimpleNamespace(InceptionResnetV1=Embedder))
    monkeypatch.setitem(sys.modules, "lpips", types.SimpleNamespace(LPIPS=Perceptual))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    warnings = []
    missing = build_image_losses(0.0, 0.5, 0.2, None, ("AU12",), warnings.append)
    assert "dlib" in missing.status["identity"].model and "VGGFace2 weights not found" in warnings[0]
    assert "MS-SSIM" in missing.status["perceptual"].model and "AlexNet weights for LPIPS not found" in warnings[1]
    assert missing.status["au"].reason == "weight 0"
    (tmp_path / "checkpoints").mkdir()
    torch.save(Embedder().state_dict(), tmp_path / "checkpoints" / FACENET_WEIGHTS)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / ALEXNET_WEIGHTS).write_bytes(b"present")
    losses = build_image_losses(0.0, 0.5, 0.2, None, ("AU12",), warnings.append)
    assert "facenet" in losses.status["identity"].model and "LPIPS" in losses.status["perceptual"].model
    assert not losses.status["identity"].reason and len(warnings) == 2
    real = torch.rand(2, 3, 64, 64) * 2 - 1
    fake = (real + 0.3 * torch.randn_like(real)).requires_grad_()
    terms = losses(fake, real, torch.zeros(2, 1))
    assert set(terms) == {"identity", "perceptual"} and all(v.item() > 0 for v in terms.values())
    sum(terms.values()).backward()
    assert fake.grad.abs().sum() > 0

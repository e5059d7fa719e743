"""The Sequence tab, the Edit tab's engine selector and the Train tab, driven through gradio_client on the running app:
a keyframe animation and a video edit (frame counts, rates), diffusion with missing weights (warp kept, message
shown) and with a tiny random model (the final pass refined); a tiny LoRA training run from an annotation CSV started,
followed and loaded into the Edit tab's engine, and one from image + OpenFace folders stopped mid-run."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from aufx.face.analysis import analyze_faces
from aufx.io.video import read_video, write_video
from app_fixtures import ANALYZE_SLIDERS_AT, rgb, sliders

MOUTH = (slice(120, 165), slice(190, 260))  # rows, columns around the astronaut's mouth (512x512)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from aufx.diffusion.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny"), controlnet=False)


def client(app, folder: Path) -> Client:
    return Client(app.url, verbose=False, analytics_enabled=False, download_files=str(folder))


def _frames(path: str | Path) -> tuple[list[np.ndarray], object]:
    frames, meta = read_video(path)
    return list(frames), meta


# Sequence tab --------------------------------------------------------------------------------------------------------
def test_animate_keyframes(app, photo, tmp_path):
    keys = tmp_path / "smile.json"
    keys.write_text(json.dumps({"fps": 10, "keyframes": [{"t": 0.0, "aus": {}}, {"t": 1.0, "aus": {"AU12": 0.9}}]}))
    c = client(app, tmp_path)
    video, meta = c.predict(handle_file(str(photo)), handle_file(str(keys)), "mp4", 20, api_name="/animate")
    frames, info = _frames(video)
    assert (info.n_frames, info.fps, info.size) == (22, 20.0, (512, 512))  # 0..1 s, each key lasting 0.1 s, at 20 fps
    assert info.duration == pytest.approx(1.1) and meta["frames"] == 22 and meta["smooth_hz"] == 0.0
    first, last = (analyze_faces(f)[0] for f in (frames[0], frames[-1]))  # re-detected in the decoded video
    corners = [61, 291]
    rise = -((last.landmarks[corners, :2] - first.landmarks[corners, :2]) @ first.pose.image_axes()[1]).mean()
    assert rise > 0.03 * first.pose.scale, rise  # the smile grew: the lip corners rose (0.05 IPD measured)

    (tmp_path / "bad.json").write_text('{"fps": 10, "keyframes": [{"t": 0, "aus": {"AU99": 1}}]}')
    with pytest.raises(AppError, match="unknown AU 'AU99'"):
        c.predict(handle_file(str(photo)), handle_file(str(tmp_path / "bad.json")), api_name="/animate")


def test_edit_video_keeps_every_frame(app, photo, tmp_path):
    face = np.asarray(Image.open(photo).convert("RGB"))
    clip = write_video(tmp_path / "clip.mp4", [np.roll(face, 2 * i, axis=1) for i in range(8)], fps=8)
    video, meta = client(app, tmp_path).predict(handle_file(str(clip)), "AU12:0.9", api_name="/edit_video")
    edited, info = _frames(video)
    source, _ = _frames(clip)
    assert (info.n_frames, info.fps, info.size) == (8, 8.0, (512, 512))
    assert meta["edited"] == 8 and meta["passed_through"] == 0 and meta["au_text"] == "AU12:0.9"
    change = [np.abs(e[MOUTH].astype(np.int16) - s[MOUTH]).mean() for e, s in zip(edited, source)]
    assert min(change) > 2  # the mouth is edited in every frame


# Engine selector ------------------------------------------------------------------------------------------------------
def _engine(c: Client, model: str, **kw) -> tuple:
    options = dict(engine="diffusion", model=model, strength=0.5, steps=4, crop_size=64, seed=3) | kw
    return c.predict(**options, api_name="/set_engine")


def _warp_then_final(c: Client, values: dict) -> tuple[np.ndarray, np.ndarray, tuple]:
    """A slider drag (/edit: always the warp) and its release (/edit_final: the chosen engine)."""
    _before, warp = c.predict(**values, api_name="/edit")
    warp = rgb(warp)
    final = c.predict(**values, api_name="/edit_final")
    return warp, rgb(final[-4][1]), final


def test_diffusion_without_weights_keeps_the_warp_result(app, photo, tmp_path):
    c = client(app, tmp_path)
    values = sliders(c.predict(handle_file(str(photo)), api_name="/analyze"), ANALYZE_SLIDERS_AT)
    status = _engine(c, str(tmp_path / "no_such_model"))[-1]
    assert "Diffusion unavailable" in status and "does not exist" in status and "hf download" in status
    warp, final, full = _warp_then_final(c, {**values, "AU12": 1.0})
    assert np.array_equal(warp, final)  # the warp result is kept...
    assert "does not exist" in full[-1] and sliders(full)["AU12"] == 1.0  # ...with the reason, and the edit goes on
    png, meta = (Path(p) for p in c.predict(api_name="/download"))
    assert json.loads(meta.read_text())["engine"] == "warp"


def test_diffusion_refines_the_final_pass(app, photo, tiny, tmp_path):
    c = client(app, tmp_path)
    values = sliders(c.predict(handle_file(str(photo)), api_name="/analyze"), ANALYZE_SLIDERS_AT)
    assert "unavailable" not in _engine(c, str(tiny.model_dir))[-1]
    warp, final, full = _warp_then_final(c, {**values, "AU12": 1.0})
    assert np.abs(final[MOUTH] - warp[MOUTH]).mean() > 2  # the random model repainted the face...
    assert np.array_equal(final[:64, :64], warp[:64, :64])  # ...and nothing far from it
    meta = json.loads(Path(c.predict(api_name="/download")[1]).read_text())
    assert meta["engine"] == "diffusion" and meta["engine_params"]["model"] == str(tiny.model_dir)
    assert meta["engine_params"]["crop_size"] == 64 and meta["engine_params"]["seed"] == 3
    c.predict(engine="warp", api_name="/set_engine")  # back to the warp: the same edit, unrefined
    assert np.array_equal(rgb(c.predict(**sliders(full), api_name="/edit_final")[-4][1]), warp)


# Train tab ------------------------------------------------------------------------------------------------------------
def _faces(folder: Path, photo: Path) -> list[Path]:
    """Eight 32 px face crops (already aligned: no preprocessing needed)."""
    face = Image.open(photo).convert("RGB").crop((130, 40, 350, 260))
    for i in range(8):
        face.rotate(3 * i).resize((32, 32)).save(folder / f"face{i}.png")
    return sorted(folder.glob("face*.png"))


def _annotations(folder: Path, photo: Path) -> Path:
    """The faces and their annotation CSV."""
    rows = ["image_path,AU06,AU12"] + [f"{p.name},{i / 8:.3f},{1 - i / 8:.3f}"
                                       for i, p in enumerate(_faces(folder, photo))]
    (folder / "annotations.csv").write_text("\n".join(rows) + "\n")
    return folder / "annotations.csv"


def _openface(folder: Path, photo: Path) -> tuple[Path, Path]:
    """The faces in one folder, an OpenFace CSV per face (AUxx_r on OpenFace's 0..5 scale) in another."""
    from aufx.io.openface import write_openface_csv

    images, csvs = folder / "images", folder / "openface"
    images.mkdir()
    for i, face in enumerate(_faces(images, photo)):
        write_openface_csv(csvs / f"{face.stem}.csv", [{"AU06_r": 5 * i / 8, "AU12_r": 5 - 5 * i / 8}], kind="image")
    return images, csvs


def _start(c: Client, data: dict, tiny, out: Path, max_steps: int, extra: str = "--num_workers 0") -> tuple:
    """A tiny run: 32 px crops of the tiny random model, rank 4, noise loss only."""
    return c.predict(**data, align=False, regressor="none", base_model=str(tiny.model_dir), au_keys=["AU06", "AU12"],
                     lora_rank=4, batch_size=4, max_steps=max_steps, lr=1e-3, mixed_precision="no", lambda_au=0.0,
                     lambda_id=0.0, lambda_lpips=0.0, resolution=32, output_dir=str(out), checkpoint_every=3,
                     extra_flags=f"{extra} --au_hidden 32 --lr_warmup_steps 1", api_name="/train_start")


def _wait(c: Client, until, timeout_s: float = 60.0) -> tuple:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        view = c.predict(api_name="/train_status")
        if until(view[-1]):
            return view
        time.sleep(0.5)
    raise TimeoutError(f"training status after {timeout_s} s: {view[-1]}\n{view[2][-3000:]}")


def test_a_training_run_from_start_to_the_edit_tab(app, photo, tiny, tmp_path):
    c = client(app, tmp_path)
    csv, out = _annotations(tmp_path, photo), tmp_path / "run"
    data = dict(source="csv", annotations_csv=str(csv), image_root=str(tmp_path))
    assert _start(c, data, tiny, out, max_steps=6)[-1]["state"] == "running"
    status, plot, log, info = _wait(c, lambda i: i["state"] != "running")
    assert info["state"] == "done" and info["step"] == 6 and "Done" in status, log[-3000:]
    assert Path(info["lora"]) == out / "lora_unet.safetensors" and Path(info["lora"]).stat().st_size > 0
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == list(range(1, 7)) and all(np.isfinite(h["loss"]) for h in history)
    assert plot["columns"] == ["step", "term", "value"]  # the loss curve on the page: both terms, every step
    assert [(p[0], p[1]) for p in plot["data"]] == [(s, t) for s in range(1, 7) for t in ("loss", "noise")]
    assert "data: 8 images" in log and "run done (exit code 0)" in log

    # What "Open in Edit tab" sets: the diffusion engine on the run's base model with its LoRA.
    values = sliders(c.predict(handle_file(str(photo)), api_name="/analyze"), ANALYZE_SLIDERS_AT)
    assert "unavailable" not in _engine(c, str(tiny.model_dir), lora_path=info["lora"])[-1]
    c.predict(**{**values, "AU12": 1.0}, api_name="/edit_final")
    meta = json.loads(Path(c.predict(api_name="/download")[1]).read_text())
    assert meta["engine"] == "diffusion" and meta["engine_params"]["lora_path"] == info["lora"]


def _group(pgid: int) -> list[int]:
    """Processes still in a process group (a stopped run must leave none, data-loader workers included)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            out.append(int(stat.parent.name))
    return out


def test_folders_to_a_long_run_that_stop_ends(app, photo, tiny, tmp_path):
    c = client(app, tmp_path)
    images, csvs = _openface(tmp_path, photo)
    data = dict(source="openface", image_dir=str(images), openface_dir=str(csvs))
    with pytest.raises(AppError, match="unrecognized arguments: --lerning_rate"):
        _start(c, data, tiny, tmp_path / "typo", max_steps=10, extra="--lerning_rate 1")
    _start(c, data, tiny, tmp_path / "long", max_steps=100_000, extra="--num_workers 1")
    info = _wait(c, lambda i: i["step"] >= 2)[-1]
    annotations = (tmp_path / "long" / "data" / "annotations.csv").read_text().splitlines()
    assert len(annotations) == 9 and "AU06" in annotations[0]  # OpenFace CSVs -> annotations -> training
    assert _group(info["pid"])  # the trainer and its data-loader worker
    with pytest.raises(AppError, match="already going"):
        _start(c, data, tiny, tmp_path / "second", max_steps=6)
    status, _plot, log, info = c.predict(api_name="/train_stop")
    assert info["state"] == "stopped" and "Stopped" in status and "run stopped" in log
    assert not Path(f"/proc/{info['pid']}").exists() and _group(info["pid"]) == []
    assert info["step"] < 100_000 and not (tmp_path / "long" / "lora_unet.safetensors").exists()

"""The running app driven through gradio_client, as a script would: a preset, a slider, the download; the stateless
/edit_image; user errors; two users at once; the live endpoint; no torch in a warp-mode server; and the app
benchmark's own calls."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from aufx.au import AUVector
from aufx.engines.warp import WarpEngine
from aufx.io.images import read_png_metadata
from aufx.pipeline import Editor
from app_fixtures import ANALYZE_SLIDERS_AT, grace_hopper, rgb, sliders

MOUTH_CORNERS = [61, 291]  # MediaPipe face-mesh indices of the outer lip corners


def client(app, folder: Path) -> Client:
    return Client(app.url, verbose=False, analytics_enabled=False, download_files=str(folder))


def _download(c: Client) -> tuple[Path, dict]:
    png, sidecar = (Path(p) for p in c.predict(api_name="/download"))
    assert png.suffix == ".png" and sidecar.name == png.name + ".json"
    return png, json.loads(sidecar.read_text())


def _corners(path: Path) -> np.ndarray:
    return Editor(path).face(0).landmarks[MOUTH_CORNERS, :2]


def test_preset_slider_download_round_trip(app, photo, tmp_path):
    c = client(app, tmp_path)
    analyzed = c.predict(handle_file(str(photo)), api_name="/analyze")
    measured = sliders(analyzed, ANALYZE_SLIDERS_AT)
    assert measured["AU12"] > 0.3  # she smiles: the sliders start at the measured AUs, not at 0

    happy = c.predict("happy", 1.0, api_name="/apply_preset")
    values = sliders(happy)
    assert values["AU12"] == 0.8 and values["AU06"] == 0.6 and values["AU25"] == 0.6 and values["AU26"] == 0.2
    assert all(v == 0 for k, v in values.items() if k[1:] not in ("U06", "06", "U12", "12", "U25", "U26"))
    png, meta = _download(c)
    assert read_png_metadata(png) == meta
    assert meta["target_aus"] == {"AU06": 0.6, "AU12": 0.8, "AU25": 0.6, "AU26": 0.2} and meta["preset"] == "happy"

    source, edited = rgb(photo), rgb(png)
    assert edited.shape == source.shape  # full resolution
    x0, y0, x1, y1 = WarpEngine().prepare(Editor(photo).face(0)).roi  # the face and the margin the warp fades in
    outside = np.ones(source.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(edited[outside], source[outside])
    (mx0, my0), (mx1, my1) = _corners(photo).min(0).astype(int) - 8, _corners(photo).max(0).astype(int) + 12
    assert np.abs(edited[my0:my1, mx0:mx1] - source[my0:my1, mx0:mx1]).mean() > 2.0  # the mouth changed

    # From the neutralised face, one slider: AU12 up. Only that AU changes, and the re-detected corners rise.
    neutral = sliders(c.predict(api_name="/neutralise"))
    assert set(neutral.values()) == {0.0}
    neutral_png, neutral_meta = _download(c)
    values = {**neutral, "AU12": 1.0}
    c.predict(**values, api_name="/edit")
    final = c.predict(**values, api_name="/edit_final")
    assert sliders(final)["AU12"] == 1.0
    png, meta = _download(c)
    assert meta["target_aus"] == {"AU12": 1.0}
    rise = _corners(neutral_png)[:, 1] - _corners(png)[:, 1]
    assert (rise > 1.0).all(), f"mouth corners moved by {rise} px (positive = up)"
    # and the re-measured smile is stronger than the neutralised one. The estimator reads on OpenFace's scale, which
    # sees far less of the warp's smile than the slider asks for (README, "Fidelity"): 0.47 -> 0.55 here.
    assert AUVector(meta["measured_output"]).au("AU12") > AUVector(neutral_meta["measured_output"]).au("AU12") + 0.05


def test_presets_save_and_load(app, photo, tmp_path):
    c = client(app, tmp_path)
    c.predict(handle_file(str(photo)), api_name="/analyze")
    c.predict(api_name="/neutralise")
    c.predict("AU04:0.6,R14:0.3", api_name="/set_aus")
    saved = Path(c.predict("frown", api_name="/save_preset"))
    data = json.loads(saved.read_text())
    assert data["name"] == "frown" and data["aus"]["AU04"] == 0.6 and data["aus"]["R14"] == 0.3
    c.predict(api_name="/reset")
    loaded = c.predict(handle_file(str(saved)), api_name="/load_preset")
    assert sliders(loaded)["AU04"] == 0.6 and sliders(loaded)["R14"] == 0.3 and sliders(loaded)["L14"] == 0.0
    assert "AU04:0.6" in loaded[-2] and "R14:0.3" in loaded[-2]  # the AU text box


def test_intensity_rescales_the_last_preset_only(app, photo, tmp_path):
    c = client(app, tmp_path)
    c.predict(handle_file(str(photo)), api_name="/analyze")
    c.predict("sad", 1.0, api_name="/apply_preset")
    assert c.predict(0.5, api_name="/set_intensity")[-2] == "AU01:0.45,AU04:0.15,AU15:0.4,AU17:0.2"
    c.predict("AU09:0.2", api_name="/set_aus")  # any other edit ends the preset...
    untouched = c.predict(0.9, api_name="/set_intensity")  # ...so the intensity no longer changes anything
    assert all(v == {"__type__": "update"} for v in untouched)
    assert _download(c)[1]["target_aus"] == {"AU01": 0.45, "AU04": 0.15, "AU09": 0.2, "AU15": 0.4, "AU17": 0.2}


def test_one_side_of_a_bilateral_au(app, photo, tmp_path):
    c = client(app, tmp_path)
    c.predict(handle_file(str(photo)), api_name="/analyze")
    values = sliders(c.predict(api_name="/neutralise"))
    split = c.predict(True, api_name="/split_mouth")
    assert split[0] == {"__type__": "update", "visible": False, "value": 0.0}  # AU10's linked slider hides
    final = c.predict(**{**values, "L12": 0.9}, api_name="/edit_final")
    assert sliders(final)["L12"] == 0.9 and sliders(final)["R12"] == 0.0 and sliders(final)["AU12"] == 0.45
    assert final[-2] == "L12:0.9"
    assert _download(c)[1]["target_aus"] == {"L12": 0.9}


def test_several_faces_pick_one(app, photo, tmp_path):
    from PIL import Image

    # Two heads side by side, each large enough in the frame for MediaPipe's face detector.
    left = Image.open(photo).convert("RGB").crop((100, 0, 356, 256)).resize((300, 300))
    right = Image.open(grace_hopper()).convert("RGB").crop((100, 30, 420, 350)).resize((300, 300))
    group = Image.new("RGB", (600, 300))
    group.paste(left, (0, 0))
    group.paste(right, (300, 0))
    path = tmp_path / "two.png"
    group.save(path)
    c = client(app, tmp_path)
    choices = c.predict(handle_file(str(path)), api_name="/analyze")[0]["choices"]
    assert [value for _label, value in choices] == [0, 1]
    boxes = Editor(path).faces
    pick = next(i for i, f in enumerate(boxes) if f.box[0] >= left.width)  # Grace Hopper, on the right
    c.predict(pick, api_name="/select_face")
    c.predict("surprise", 1.0, api_name="/apply_preset")
    png, meta = _download(c)
    assert meta["face_index"] == pick and meta["face"]["box"] == list(boxes[pick].box) and meta["faces_found"] == 2
    edited, source = rgb(png), rgb(path)
    assert np.array_equal(edited[:, :left.width], source[:, :left.width])  # the other face is untouched
    assert not np.array_equal(edited[:, left.width:], source[:, left.width:])
    with pytest.raises(AppError, match="face 2 requested but 2 found"):
        c.predict(handle_file(str(path)), "", "happy", 1.0, 2, False, api_name="/edit_image")


def test_edit_image_is_stateless_and_embeds_metadata(app, photo, tmp_path):
    c = client(app, tmp_path)
    png, meta = c.predict(handle_file(str(photo)), "AU12:0.9,R14:0.2", "", 1.0, 0, False, api_name="/edit_image")
    assert meta["target_aus"]["AU12"] == 0.9 and meta["target_aus"]["R14"] == 0.2
    assert read_png_metadata(png)["target_aus"] == meta["target_aus"]
    assert rgb(png).shape == rgb(photo).shape
    _, meta = c.predict(handle_file(str(photo)), "", "surprise", 0.5, 0, True, api_name="/edit_image")
    assert meta["target_aus"] == {"AU01": 0.4, "AU02": 0.4, "AU05": 0.2, "AU25": 0.3, "AU26": 0.35}
    _, sad = c.predict(handle_file(str(photo)), "", "sad", 1.0, 0, False, api_name="/edit_image")
    assert "AU12" not in sad["target_aus"]  # a preset replaces the whole expression: her smile goes
    _, kept = c.predict(handle_file(str(photo)), "", "sad", 1.0, 0, False, True, api_name="/edit_image")
    assert AUVector(kept["target_aus"]).au("AU12") > 0.3 and kept["target_aus"]["AU15"] == 0.8 and kept["only_named"]


@pytest.mark.parametrize("make, args, message", [
    ("corrupt", ("", "", 1.0, 0, False), "not a readable image"),
    ("blank", ("", "", 1.0, 0, False), "no face found"),
    ("photo", ("", "", 1.0, 3, False), "face 3 requested but 1 found"),
    ("photo", ("AU99:0.5", "", 1.0, 0, False), "unknown AU 'AU99'"),
    ("photo", ("AU12:1.5", "", 1.0, 0, False), "AU values are normalised intensities in [0, 1]"),
])
def test_user_errors_reach_the_client(app, photo, tmp_path, make, args, message):
    path = {"photo": photo, "corrupt": tmp_path / "broken.jpg", "blank": tmp_path / "wall.png"}[make]
    if make == "corrupt":
        path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    elif make == "blank":
        from PIL import Image

        Image.new("RGB", (320, 240), (180, 170, 160)).save(path)
    with pytest.raises(AppError, match=message.replace("[", r"\[").replace("]", r"\]")):
        client(app, tmp_path).predict(handle_file(str(path)), *args, api_name="/edit_image")


def test_unusable_photos_in_the_edit_tab(app, photo, tmp_path):
    from PIL import Image

    c = client(app, tmp_path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(AppError, match="broken.jpg: not a readable image"):
        c.predict(handle_file(str(broken)), api_name="/analyze")
    c.predict(handle_file(str(photo)), api_name="/analyze")
    wall = tmp_path / "wall.png"
    Image.new("RGB", (320, 240), (180, 170, 160)).save(wall)
    with pytest.raises(AppError, match="wall.png: no face found"):
        c.predict(handle_file(str(wall)), api_name="/analyze")
    png, meta = _download(c)  # the photo analysed before the failed one is still there to edit
    assert meta["input"] == photo.name


def test_actions_before_a_photo_say_what_to_do(app, tmp_path):
    with pytest.raises(AppError, match="Load a photo first"):
        client(app, tmp_path).predict("happy", 1.0, api_name="/apply_preset")


def test_two_users_at_once_get_their_own_results(app, photo, tmp_path):
    jobs = {"astronaut": (photo, "happy"), "grace": (grace_hopper(), "sad")}
    results, errors = {}, []
    barrier = threading.Barrier(len(jobs))

    def work(name: str, path: Path, preset: str) -> None:
        try:
            folder = tmp_path / name
            folder.mkdir()
            c = client(app, folder)
            c.predict(handle_file(str(path)), api_name="/analyze")
            barrier.wait(timeout=30)  # both sessions hold an analysed photo before either edits
            c.predict(preset, 0.8, api_name="/apply_preset")
            results[name] = _download(c)
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n, *job)) for n, job in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for name, (path, preset) in jobs.items():
        png, meta = results[name]
        assert meta["input"] == path.name and meta["preset"] == preset
        assert rgb(png).shape == rgb(path).shape
    assert results["astronaut"][1]["target_aus"] == {"AU06": 0.48, "AU12": 0.64, "AU25": 0.48, "AU26": 0.16}
    assert results["grace"][1]["target_aus"] == {"AU01": 0.72, "AU04": 0.24, "AU15": 0.64, "AU17": 0.32}


def test_live_frame_mirror_and_puppet(app, photo, tmp_path):
    c = client(app, tmp_path)
    frame, text = c.predict(handle_file(str(photo)), "Mirror", "surprise", 1.0, api_name="/live_frame")
    assert "mirror" in text and "no face" not in text
    assert rgb(frame).shape == rgb(photo).shape and np.abs(rgb(frame) - rgb(photo)).mean() > 0.5
    status = c.predict(handle_file(str(grace_hopper())), api_name="/set_portrait")
    assert "ready" in status
    frame, text = c.predict(handle_file(str(photo)), "Puppet", "happy", 1.0, api_name="/live_frame")
    assert "puppet" in text and rgb(frame).shape == rgb(grace_hopper()).shape
    for _ in range(2):
        _, text = c.predict(handle_file(str(photo)), "Puppet", "happy", 1.0, api_name="/live_frame")
    assert " fps" in text and not text.startswith("**0.0 fps")


def test_warp_server_never_loads_torch(app):
    """After all the edits above, the server process has not mapped libtorch (warp mode stays light)."""
    assert not app.mapped("libtorch")


def _listening(port: int) -> set[str]:
    """Local addresses (hex, as the kernel lists them) with a socket listening on ``port``."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hexport = local.split(":")
            if state == "0A" and int(hexport, 16) == port:
                out.add(address)
    return out


def test_local_only_bounded_uploads_no_analytics(app):
    import httpx

    port = int(app.url.rstrip("/").rsplit(":", 1)[1])
    assert _listening(port) == {"0100007F"}  # 127.0.0.1 only: nothing on 0.0.0.0 or another interface
    big = np.random.default_rng(0).integers(0, 255, 26 * 1024 * 1024, dtype=np.uint8).tobytes()
    r = httpx.post(app.url + "gradio_api/upload", files={"files": ("big.png", big, "image/png")}, trust_env=False,
                   timeout=60)
    assert r.status_code == 413  # over the 25 MB limit
    assert httpx.get(app.url + "config", trust_env=False).json()["analytics_enabled"] is False


def test_the_app_benchmark_speaks_the_app_s_protocol(app, photo):
    """`eval/bench.py --app` drives the page's queue protocol by hand (join, the event stream, fetching the image).
    It stopped running when the app's analyze event gained a third session state and nothing noticed: one pass of
    it here (a photo, three slider moves, the final pass) fails if the app and the benchmark part ways again."""
    from eval.bench_app import _slider_latency

    live, final = _slider_latency(app.url, photo, repeats=1)
    assert 0 < live < 30_000 and 0 < final < 30_000

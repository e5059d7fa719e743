"""The running app against a hostile client: folders outside --allowed-dirs refused on every
tab with the same words whether or not they exist, Train flags that cannot override the form, short errors without
server paths for a corpus of bad inputs, the result cache bounded by size, and large images worked on one at a time
with the waiting client told so. Everything through gradio_client, as a script would."""
from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError


GENERIC = "upstream Gradio app has raised an exception"
OUTSIDE = "is outside the folders this app may use"


def client(app, folder: Path) -> Client:
    return Client(app.url, verbose=False, analytics_enabled=False, download_files=str(folder))


def _refusal(c: Client, *args, api_name: str) -> str:
    with pytest.raises(AppError) as err:
        c.predict(*args, api_name=api_name)
    return str(err.value)


def _short(message: str) -> None:
    assert len(message) <= 300, (len(message), message[:400])
    assert GENERIC not in message and "/tmp/" not in message and "/work/" not in message, message


# Folders the server may read ----------------------------------------------------------------------------------------
def test_folders_outside_the_allowed_ones_are_refused_alike(app, tmp_path):
    """An existing and a missing folder outside the allowed ones give the same message, on every tab's path field."""
    c = client(app, tmp_path)
    calls = {
        "/evaluate": lambda p: ("", None, p, None, "", "", ["psnr"]),
        "/build_stimuli": lambda p: (p, None, "conditions: []", "", "standard", 256, "oval", "gray", 0, False, False),
    }
    for api, args in calls.items():
        there, missing = (_refusal(c, *args(p), api_name=api) for p in ("/root", "/root/no_such_folder_x"))
        assert OUTSIDE in there and there.replace("/root", "") == missing.replace("/root/no_such_folder_x", "")
        _short(there)
    # /etc/shadow as the annotations CSV: no more "an annotations CSV needs an 'image_path' column"
    gens = tmp_path / "gens"
    gens.mkdir()
    shadow = _refusal(c, "", None, str(gens), None, "/etc/shadow", "", ["psnr"], api_name="/evaluate")
    nothing = _refusal(c, "", None, str(gens), None, "/etc/no_such_file", "", ["psnr"], api_name="/evaluate")
    assert OUTSIDE in shadow and shadow.replace("shadow", "no_such_file") == nothing
    # ../ and symlinks do not get out either
    link = tmp_path / "link"
    link.symlink_to("/etc")
    assert OUTSIDE in _refusal(c, "", None, str(link), None, "", "", ["psnr"], api_name="/evaluate")
    assert OUTSIDE in _refusal(c, "", None, str(tmp_path) + "/.." * 12 + "/etc", None, "", "", ["psnr"],
                               api_name="/evaluate")
    # a folder inside the allowed ones is read as before (here: empty, so nothing to score)
    assert "No image pairs to score" in _refusal(c, "", None, str(gens), None, "", "", ["psnr"], api_name="/evaluate")


def test_sidecars_cannot_point_evaluation_outside(app, photo, tmp_path):
    """A sidecar naming a source image outside the allowed folders is unpaired, whether that file exists or not;
    the same source inside them is scored."""
    import json
    import shutil

    outside = Path("/var/tmp") / f"aufx_outside_{os.getpid()}.png"  # a real photo, outside /tmp and the checkout
    shutil.copyfile(photo, outside)
    try:
        gens = tmp_path / "gens"
        gens.mkdir()
        for name, source in (("a.png", str(outside)), ("b.png", "/no/such/file.png")):
            shutil.copyfile(photo, gens / name)
            (gens / f"{name}.json").write_text(json.dumps({"input": source, "target_aus": {"AU12": 0.5}}))
        c = client(app, tmp_path)
        message = _refusal(c, "", None, str(gens), None, "", "", ["psnr"], api_name="/evaluate")
        assert "No image pairs to score" in message and message.count("not found") == 2, message
        _short(message)
        (gens / "a.png.json").write_text(json.dumps({"input": str(photo), "target_aus": {"AU12": 0.5}}))
        assert "1 image pairs scored" in c.predict("", None, str(gens), None, "", "", ["psnr"],
                                                   api_name="/evaluate")[3]
    finally:
        outside.unlink()


def test_engine_weights_only_from_allowed_folders(app, tmp_path):
    c = client(app, tmp_path)
    args = ["diffusion", "runwayml/stable-diffusion-v1-5", "/etc/passwd", "", "mesh", 0.35, 7.5, 25, False, 0, 512]
    message = _refusal(c, *args, api_name="/set_engine")
    assert "LoRA file" in message and OUTSIDE in message
    args[1], args[2] = "/root/models/sd15", ""
    assert "Base model" in _refusal(c, *args, api_name="/set_engine")


# Train: free-text flags and the output root ------------------------------------------------------------------------
TRAIN = dict(source="csv", annotations_csv="", image_root="", image_dir="", openface_dir="", align=False,
             regressor="none", regressor_dir="", base_model="", au_keys=["AU12"], lora_rank=4, batch_size=1,
             max_steps=1, lr=1e-4, mixed_precision="no", lambda_au=0.0, lambda_id=0.0, lambda_lpips=0.0,
             resolution=32, checkpoint_every=1, resume=False)


def test_train_flags_cannot_override_the_form_or_write_outside(app, tmp_path):
    c = client(app, tmp_path)
    csv = tmp_path / "annotations.csv"
    csv.write_text("image_path,AU12\nx.png,0.5\n")
    form = {**TRAIN, "annotations_csv": str(csv), "image_root": str(tmp_path), "output_dir": str(tmp_path / "run")}
    before = c.predict(api_name="/train_status")[-1]  # the app is shared: an earlier test may have run and stopped
    for flags, expected in (("--output_dir /etc/aufx_x", "--output_dir is set by the form"),
                            ("--output_dir=/etc/aufx_x", "--output_dir is set by the form"),
                            ("--outp /etc/aufx_x", "write flags in full"),
                            ("--config /etc/passwd", "--config is set by the form"),
                            ("--train_csv /etc/shadow", "--train_csv is set by the form"),
                            ("--allow_download", "--allow_download is set by the form")):
        with pytest.raises(AppError, match=expected):
            c.predict(**form, extra_flags=flags, api_name="/train_start")
    with pytest.raises(AppError, match=OUTSIDE):
        c.predict(**{**form, "output_dir": "/etc/aufx_x"}, extra_flags="", api_name="/train_start")
    readable_only = Path(__file__).resolve().parents[1] / "aufx_refused_run"  # allowed to read, not the output root
    with pytest.raises(AppError, match="outside the output folder this app writes to"):
        c.predict(**{**form, "output_dir": str(readable_only)}, extra_flags="", api_name="/train_start")
    assert not readable_only.exists()
    with pytest.raises(AppError, match=OUTSIDE):
        c.predict(**{**form, "annotations_csv": "/etc/shadow"}, extra_flags="", api_name="/train_start")
    assert not Path("/etc/aufx_x").exists() and not (tmp_path / "run").exists()
    assert c.predict(api_name="/train_status")[-1] == before  # no run was started by any refused request


# Short errors, never the generic handler -----------------------------------------------------------------------------
def _nested(path: Path, depth: int = 100_000) -> Path:
    path.write_text('{"name": "x", "aus": ' + "[" * depth + "]" * depth + "}")
    return path


def test_a_corpus_of_hostile_inputs_gets_short_messages(app, photo, tmp_path):
    c = client(app, tmp_path)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(4000))
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    token = "AU12:" + "9" * 100_000
    corpus = [
        ("/edit_image", (handle_file(str(photo)), token, "", 1.0, 0, False), "in [0, 1]"),
        ("/edit_image", (handle_file(str(photo)), "", "x" * 50_000, 1.0, 0, False), "unknown preset"),
        ("/edit_image", (handle_file(str(photo)), "", "happy", "abc", 0, False), "intensity: expected a number"),
        ("/edit_image", (handle_file(str(garbage)), "", "happy", 1.0, 0, False), "not a readable image"),
        ("/edit_image", (handle_file(str(photo)), "", "happy", 1.0, 10**9, False), "requested but 1 found"),
        ("/analyze", (handle_file(str(garbage)),), "not a readable image"),
        ("/analyze", (handle_file(str(empty)),), "not a readable image"),
        ("/live_frame", (handle_file(str(garbage)), "Mirror", "happy", 1.0), "not a readable image"),
        ("/animate", (handle_file(str(garbage)), handle_file(str(garbage)), "mp4", 0, 1.0, 0), "not a readable"),
    ]
    for api, args, expected in corpus:
        message = _refusal(c, *args, api_name=api)
        assert expected in message, (api, message)
        _short(message)
    c.predict(handle_file(str(photo)), api_name="/analyze")
    for api, args, expected in [
        ("/set_aus", (token,), "in [0, 1]"),
        ("/set_aus", ("AU12:" + "x" * 100_000,), "bad AU token"),
        ("/set_aus", ("AU12:0.5," * 20_000,), ""),
        ("/apply_preset", ("nope" * 10_000, 1.0), "unknown preset"),
        ("/load_preset", (handle_file(str(_nested(tmp_path / "deep.json"))),), "nested too deeply"),
        ("/load_preset", (handle_file(str(garbage)),), ""),
        ("/select_face", (7,), "not in the list of choices"),
    ]:
        try:
            c.predict(*args, api_name=api)
        except AppError as exc:
            assert expected in str(exc), (api, str(exc))
            _short(str(exc))
        else:
            assert not expected, f"{api} accepted {str(args)[:80]}"
    assert c.predict("AU12:0.4", api_name="/set_aus")  # the session survived all of it


# Caches bounded by size; large images one at a time ----------------------------------------------------------------
@pytest.fixture(scope="module")
def tight_app(tmp_path_factory):
    """An app of its own with a small cache bound, its own temp folders, and a low large-image threshold."""
    from eval.app_harness import start_app

    tmp = tmp_path_factory.mktemp("tight")
    env = {"TMPDIR": str(tmp), "GRADIO_TEMP_DIR": str(tmp / "gradio")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        proc = start_app(tmp / "app.log", ("--cache-max-mb", "6", "--cache-grace-s", "0", "--large-image-mp", "2"))
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    proc.tmp = tmp
    yield proc
    proc.stop()


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_many_edits_keep_the_cache_under_its_bound(tight_app, photo, tmp_path):
    c = client(tight_app, tmp_path)
    sizes, written = [], 0
    for i in range(24):  # distinct results, so neither Gradio nor the app can share files between them
        png, meta = c.predict(handle_file(str(photo)), f"AU12:{0.2 + i / 40:.3f}", "", 1.0, 0, False,
                              api_name="/edit_image")
        written += 2 * Path(png).stat().st_size  # the app's copy and Gradio's cached copy
        sizes.append(_folder_bytes(tight_app.tmp / "gradio") + _folder_bytes(tight_app.tmp / "aufx-api"))
    assert written > 3 * (6 << 20)  # far more than the bound went through the cache
    last = 2 * Path(png).stat().st_size
    assert max(sizes) <= (6 << 20) + last, [s >> 20 for s in sizes]  # the bound, plus the result being fetched


def test_large_images_wait_their_turn_and_are_told(tight_app, astronaut, tmp_path):
    big = tmp_path / "big.jpg"
    cv2.imwrite(str(big), cv2.resize(astronaut, (2600, 2600))[..., ::-1])  # 6.8 MP, above the 2 MP threshold
    first, second = client(tight_app, tmp_path / "a"), client(tight_app, tmp_path / "b")
    job1 = first.submit(handle_file(str(big)), "", "happy", 1.0, 0, False, api_name="/edit_image")
    while job1.status().code.name in ("STARTING", "JOINING_QUEUE", "QUEUE", "SENDING_DATA"):
        time.sleep(0.02)
    job2 = second.submit(handle_file(str(big)), "", "sad", 1.0, 0, False, api_name="/edit_image")
    logs = []
    while not job2.done():
        log = job2.status().log
        if log:
            logs.append(log[0])
        time.sleep(0.02)
    png1, _ = job1.result()
    png2, meta2 = job2.result()
    assert any("Waiting" in m and "one large image" in m for m in logs), logs
    assert cv2.imread(png2).shape[:2] == (2600, 2600) and meta2["preset"] == "sad"  # full resolution kept


# Exposure ------------------------------------------------------------------------------------------------------------
def test_a_public_host_prints_what_it_exposes(tmp_path, capsys):
    import app as app_module
    from aufx.ui.app_builder import launch

    def config(*argv: str):
        return app_module.config_from_args(app_module.parse_args(list(argv)))

    cfg = config("--host", "0.0.0.0", "--allowed-dirs", str(tmp_path), "--output-root", str(tmp_path))
    launched = {}

    class Demo:
        def launch(self, **kwargs):
            launched.update(kwargs)

    launch(Demo(), cfg, block=False)
    out = capsys.readouterr().out
    assert launched["server_name"] == "0.0.0.0" and "anyone who can reach this address" in out
    assert str(tmp_path) in out and "--allowed-dirs" in out
    launch(Demo(), config("--allowed-dirs", str(tmp_path), "--output-root", str(tmp_path)), block=False)
    assert capsys.readouterr().out == ""  # 127.0.0.1: nothing to warn about
    with pytest.raises(SystemExit, match="must be inside one of --allowed-dirs"):
        config("--allowed-dirs", str(tmp_path), "--output-root", "/etc")


def test_messages_are_cut_and_name_no_server_path():
    from aufx.ui.errors import client_message
    from aufx.ui.paths import shown

    assert client_message("x.png: not readable ([Errno 2] No such file: '/tmp/gradio/3f9a/x.png')") == \
        "x.png: not readable ([Errno 2] No such file: 'x.png')"
    assert client_message(f"Field: {shown('/etc/shadow')} is outside") == "Field: `/etc/shadow` is outside"
    assert client_message("see https://huggingface.co/docs/hub and AU04:0.6,R14:0.2") == \
        "see https://huggingface.co/docs/hub and AU04:0.6,R14:0.2"
    long = client_message("bad AU token " + "A" * 100_000 + " " + "word " * 100)
    assert len(long) <= 300 and "A" * 40 not in long and long.startswith("bad AU token AAA")

"""One request, one engine interface: the registry, the shared engine cache, a third engine plugged in through the
same path, and one description of a result whichever entry point made it."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aufx.au import AUError, AUVector
from aufx.cli import main
from aufx.engines import registry
from aufx.engines.base import Engine
from aufx.engines.registry import EngineSpec
from aufx.io.files import atomic_path
from aufx.io.images import read_png_metadata
from aufx.model.deform import deform
from aufx.pipeline import MatchConfig, match_face, run
from aufx.request import EditRequest

ROOT = Path(__file__).resolve().parents[1]
ASKED = "AU12:0.8,AU06:0.6"
PER_ENTRY_POINT = {"input", "output", "source", "timings_ms"}  # where the file went, which door, how long


def test_registry_lists_the_engines_without_importing_them():
    assert registry.names()[:2] == ("warp", "diffusion")
    code = ("import sys; from aufx.engines import registry; from aufx.cli import build_parser; "
            "from aufx.ui.engine_panel import build_engine_panel; names = registry.names(); build_parser(); "
            "print(sorted(m for m in ('torch', 'diffusers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_engine_is_a_short_error_naming_the_choices(astronaut_editor, capsys, tmp_path):
    for make in (lambda: EditRequest(engine="gan"), lambda: registry.engine("gan"),
                 lambda: astronaut_editor.edit(AUVector(), engine="gan")):
        with pytest.raises(AUError) as err:
            make()
        assert str(err.value) == "unknown engine 'gan'; choose one of: warp, diffusion"
    Image.fromarray(astronaut_editor.image).save(tmp_path / "a.png")
    with pytest.raises(SystemExit):
        main(["edit", "-i", str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png"), "--engine", "gan"])
    assert "choose from 'warp', 'diffusion'" in capsys.readouterr().err
    assert not (tmp_path / "o.png").exists()


def test_one_engine_cache(astronaut_editor, grace_editor):
    warp = registry.engine("warp")
    assert astronaut_editor.engine("warp") is warp is grace_editor.engine("warp")
    assert registry.engine("warp", seed=7) is warp  # the warp is not seeded: one instance for every seed
    assert isinstance(warp, Engine)


def test_request_checks_its_inputs_before_any_work():
    with pytest.raises(AUError, match="AU99"):
        EditRequest("missing.png", au_text="AU99:0.5")
    with pytest.raises(AUError, match="grumpy"):
        EditRequest(preset="grumpy")


def test_target_semantics():
    smiling = AUVector({"AU06": 0.6, "AU12": 0.8})
    sad = EditRequest(preset="sad").target(smiling)
    assert sad.au("AU12") == 0.0 and sad.au("AU15") > 0  # a preset replaces the whole expression
    kept = EditRequest(preset="sad", only_named=True).target(smiling)
    assert kept.au("AU12") == 0.8 and kept.au("AU15") == sad.au("AU15")
    assert EditRequest(au_text="AU04:0.6", neutral=True).target(smiling) == AUVector({"AU04": 0.6})
    sliders = AUVector({"AU01": 0.3, "L12": 0.5})
    assert EditRequest(preset="happy", neutral=True, aus=sliders).target(smiling) == sliders  # a whole vector wins


class Recording:
    """A third engine: records what it is given and returns the photo upside down."""

    name = "recording"
    calls: list = []

    def __init__(self, flip: bool = True):
        self.flip = flip

    def params(self) -> dict:
        return {"flip": self.flip}

    def render(self, image, face, target, deformation, out=None):
        Recording.calls.append((image, face, target, deformation))
        return np.ascontiguousarray(image[::-1]) if self.flip else image.copy()


@pytest.fixture
def recording(monkeypatch):
    monkeypatch.setitem(registry._ENGINES, "recording", EngineSpec("recording", Recording, "test engine"))
    Recording.calls = []
    yield Recording
    for key in [k for k in registry._cache if k[0] == "recording"]:
        registry._cache.pop(key)


def test_a_registered_engine_is_selectable_and_gets_the_same_arguments(recording, astronaut, tmp_path):
    request = EditRequest(astronaut, name="astronaut", au_text=ASKED, engine="recording", measure=False)
    editor, result = run(request)
    image, face, target, d = recording.calls[-1]
    assert image is editor.image and face is editor.face(0)
    assert target == request.target(editor.measured(0)) == result.target
    assert np.array_equal(d.target_landmarks, deform(face, target).target_landmarks)
    assert np.array_equal(result.image, astronaut[::-1])
    meta = request.describe(result)
    assert (meta["engine"], meta["engine_params"]) == ("recording", {"flip": True})

    src = tmp_path / "astronaut.png"  # the CLI lists and runs it too
    Image.fromarray(astronaut).save(src)
    assert main(["edit", "-i", str(src), "-o", str(tmp_path / "out.png"), "--au", ASKED, "--engine", "recording",
                 "--no-measure"]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), astronaut[::-1])
    assert recording.calls[-1][2] == target
    assert read_png_metadata(tmp_path / "out.png")["engine"] == "recording"


def test_every_entry_point_describes_the_same_request_alike(astronaut, tmp_path, capsys):
    import gradio as gr

    from aufx.ui import batch_api
    from aufx.ui.config import AppConfig
    from aufx.ui.session import EditSession

    src = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(src)
    assert main(["edit", "-i", str(src), "-o", str(tmp_path / "cli.png"), "--au", ASKED]) == 0
    cli = json.loads((tmp_path / "cli.png.json").read_text())
    assert read_png_metadata(tmp_path / "cli.png") == cli  # PNG text and sidecar: one description

    with gr.Blocks() as demo:
        batch_api.register(AppConfig())
    edit_image = next(f.fn for f in demo.fns.values() if f.api_name == "edit_image")
    png, api = edit_image(str(src), ASKED, "", 1.0, 0, False, False)
    api = json.loads(json.dumps(api))  # as the client receives it
    assert read_png_metadata(png) == api

    _, direct = run(EditRequest(src, au_text=ASKED))
    library = json.loads(json.dumps(EditRequest(src, au_text=ASKED).describe(direct)))

    def same(meta):
        return {k: v for k, v in meta.items() if k not in PER_ENTRY_POINT}

    assert same(cli) == same(api) == same(library)
    assert cli["input"] == library["input"] == str(src) and api["input"] == "astronaut.png"
    assert (cli["au_text"], cli["preset"], cli["intensity"], cli["only_named"], cli["seed"]) == (ASKED, None, None,
                                                                                               False, None)
    assert cli["target_aus"]["AU12"] == 0.8 and cli["measured_output"] not in (None, cli["measured_input"])

    session = EditSession.open(str(src), "astronaut.png", AppConfig())
    try:
        session.apply_text(ASKED)  # the app's sliders: the whole target, so au_text is its text form
        _, sidecar = session.download()
        app = json.loads(Path(sidecar).read_text())
    finally:
        session.close()
    assert same(app) == {**same(cli), "au_text": AUVector(cli["target_aus"]).to_text()}
    assert app["source"] == "aufx app" and api["source"] == "aufx app /edit_image"


def test_match_face_threshold_is_a_config_field(astronaut_editor):
    face = astronaut_editor.face(0)
    assert match_face(astronaut_editor.image, face) is not None
    assert match_face(astronaut_editor.image, face, MatchConfig(min_overlap=1.0)) is None  # IoU never exceeds 1


def test_atomic_writes_leave_nothing_half_written(tmp_path):
    target = tmp_path / "deep" / "out.bin"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
        assert not target.exists()
    assert target.read_bytes() == b"new"
    with pytest.raises(RuntimeError), atomic_path(target, keep_suffix=True) as tmp:
        assert tmp.name == "out.bin.part.bin"
        tmp.write_bytes(b"half")
        raise RuntimeError("encoder failed")
    assert target.read_bytes() == b"new" and sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]

"""The package as a user installs it: a wheel built from the checkout (offline: no build isolation, no dependencies)
holds only ``aufx`` with every data file, and ``python -m aufx edit`` run from that install in another folder, with
the checkout out of reach, edits a real face."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "aufx")  # what the build reads

# Runs the CLI in the installed package and reports which files every loaded aufx module came from.
PROBE = """
import json, sys
from aufx.__main__ import run
sys.argv[1:] = {argv!r}
code = run()
files = sorted({{m.__file__ for n, m in list(sys.modules.items()) if n.split(".")[0] == "aufx" and
                 getattr(m, "__file__", None)}})
print("AUFX_FILES=" + json.dumps(files), file=sys.stderr)
raise SystemExit(code)
"""

# Builds the app's Blocks (every tab, with its static files and YAML defaults) from the installed package.
APP_PROBE = """
import json, sys
import gradio as gr
from aufx.ui.app_builder import build_app
demo = build_app()
print(json.dumps([b.label for b in demo.blocks.values() if isinstance(b, gr.Tab)]))
files = sorted({m.__file__ for n, m in list(sys.modules.items()) if n.split(".")[0] == "aufx" and
                getattr(m, "__file__", None)})
print("AUFX_FILES=" + json.dumps(files), file=sys.stderr)
"""


def _data_files() -> set[str]:
    """Every file under aufx/ that is not Python source: tables, weights, YAML, static pages."""
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / "aufx").rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".py", ".pyc")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the checkout's sources (the build leaves build/ and egg-info behind)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, src / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "--disable-pip-version-check", "-q", "-w", str(tmp / "dist"), str(src)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    (built,) = (tmp / "dist").glob("aufx-*.whl")
    return built


def test_wheel_holds_only_aufx_and_its_data(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"aufx"}  # no eval/, training/ or other generic top-level names
    missing = _data_files() - set(names)
    assert not missing, f"data files missing from the wheel: {sorted(missing)}"
    assert {"aufx/assets/canonical_face.json", "aufx/presets/emotions.json", "aufx/evaluation/backends.json",
            "aufx/training/configs/train_sd15_lora.yaml", "aufx/study/static/index.html",
            "aufx/ui/static/live.js"} <= set(names)
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "aufx = aufx.__main__:run" in entry


@pytest.fixture(scope="module")
def site(wheel) -> Path:
    """The wheel installed into a folder of its own, as ``pip install`` puts it into site-packages."""
    target = wheel.parent / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                           "--disable-pip-version-check", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return target


def _env(site: Path) -> dict[str, str]:
    """Dependencies from this interpreter's site-packages, aufx only from the install: PYTHONPATH comes before the
    checkout's editable finder, and the working folder holds no aufx."""
    return {**os.environ, "PYTHONPATH": str(site), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}


def _aufx_files(stderr: str) -> list[str]:
    return json.loads(next(ln for ln in stderr.splitlines() if ln.startswith("AUFX_FILES="))[11:])


def test_edit_runs_from_the_installed_wheel(site, tmp_path, astronaut):
    import cv2

    from aufx.face.analysis import analyze_faces
    from aufx.face.topology import topology

    work = tmp_path / "elsewhere"
    work.mkdir()
    cv2.imwrite(str(work / "astronaut.png"), cv2.cvtColor(astronaut, cv2.COLOR_RGB2BGR))
    argv = ["edit", "-i", "astronaut.png", "-o", "happy.png", "--preset", "happy"]
    run = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], cwd=work, env=_env(site),
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    files = _aufx_files(run.stderr)
    assert files and all(Path(f).resolve().is_relative_to(site.resolve()) for f in files), files
    reply = json.loads(run.stdout.strip().splitlines()[-1])
    assert reply["target_aus"]["AU12"] > 0.5

    out = cv2.cvtColor(cv2.imread(str(work / "happy.png")), cv2.COLOR_BGR2RGB)
    assert out.shape == astronaut.shape
    (before,) = analyze_faces(astronaut)[:1]
    found = analyze_faces(out)
    assert found, "no face re-detected in the installed package's output"
    groups = topology().groups
    lips = before.landmarks[[*groups["lips_outer_upper"], *groups["lips_outer_lower"]], :2]
    x0, y0 = np.floor(lips.min(0)).astype(int) - 5
    x1, y1 = np.ceil(lips.max(0)).astype(int) + 5
    change = np.abs(out[y0:y1, x0:x1].astype(int) - astronaut[y0:y1, x0:x1].astype(int)).mean()
    assert change > 3.0, f"mouth region changed by only {change:.2f} grey levels"
    assert np.array_equal(out[:40], astronaut[:40])  # far from the face nothing moves


def test_the_aufx_script_of_the_install_runs(site, tmp_path):
    script = site / "bin" / "aufx"  # what pip writes from [project.scripts]
    run = subprocess.run([sys.executable, str(script), "presets"], cwd=tmp_path, env=_env(site), capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    presets = json.loads(run.stdout)
    assert len(presets) == 8 and presets["happy"]["aus"]["AU12"] > 0


def test_app_builds_every_tab_from_the_installed_wheel(site, tmp_path):
    run = subprocess.run([sys.executable, "-c", APP_PROBE], cwd=tmp_path, env=_env(site), capture_output=True,
                         text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    assert all(Path(f).resolve().is_relative_to(site.resolve()) for f in _aufx_files(run.stderr))
    assert json.loads(run.stdout.strip().splitlines()[-1]) == ["Edit", "Live", "Sequence", "Train", "Evaluate",
                                                                "Study"]

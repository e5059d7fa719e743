"""Starting the app stays light: no torch, diffusers or transformers (warp mode never needs them), and MediaPipe
waits for the first photo. Checked in a fresh interpreter that really launches the server and serves its page."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from eval.app_harness import OFFLINE_ENV, free_port

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "diffusers", "transformers", "peft", "accelerate", "mediapipe")

PROBE = """
import json, sys, urllib.request
import app
before = sorted(m for m in sys.modules if m.split(".")[0] in HEAVY)
demo = app.main(["--port", PORT], block=False)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(f"http://127.0.0.1:{PORT}/", timeout=10) as r:
    status = r.status
after = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
demo.close()
print(json.dumps({"status": status, "on_import": before, "after_start": after}))
"""


def test_starting_the_app_loads_no_heavy_library():
    code = f"HEAVY = {HEAVY!r}\nPORT = {str(free_port())!r}\n" + PROBE
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, **OFFLINE_ENV},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result == {"status": 200, "on_import": [], "after_start": []}

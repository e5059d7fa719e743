"""Which code made a result: a folder's digest changes with any file's bytes or name, not with Python's caches."""
from __future__ import annotations

import shutil

from aufx.io.digest import folder_digest
from aufx.resources import code_digest, package_dir


def test_folder_digest_follows_every_file_but_not_the_caches(tmp_path):
    src = package_dir("presets")
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(src, a)
    shutil.copytree(src, b)
    assert folder_digest(a) == folder_digest(b) == folder_digest(src)
    (b / "__pycache__").mkdir()
    (b / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    assert folder_digest(b) == folder_digest(a)
    emotions = b / "emotions.json"
    emotions.write_text(emotions.read_text().replace('"AU12": 0.8', '"AU12": 0.7'))  # one preset strength
    assert folder_digest(b) != folder_digest(a)
    shutil.copytree(src, b, dirs_exist_ok=True)
    (b / "emotions.json").rename(b / "emotions_old.json")
    assert folder_digest(b) != folder_digest(a)


def test_the_package_has_one_code_digest():
    assert code_digest() == folder_digest(package_dir(".")) and len(code_digest()) == 12

"""Researchers' data in and out: OpenFace CSVs, ARKit JSONL, AU keyframes, AU tracks, smoothing and video files.

Import the submodule you need (``from aufx.io.openface import read_openface_csv``); nothing heavy is imported here.
"""

"""User studies on generated stimuli: export a stimulus folder as a static study page, merge the responses back.

    index = export_study("stimuli", "study", task="identification", seed=1)   # open index.as_uri() in a browser
    # each participant downloads aufx_<task>_<code>.csv at the end
    analysis = merge_responses(read_manifest("stimuli/manifest.csv"), read_responses(["p01.csv", "p02.csv"]))
    tables = summarize(analysis)   # or: python -m aufx.study.merge --manifest ... --responses ... --out ...
"""
from aufx.study.analysis import summarize
from aufx.study.manifest import MANIFEST_COLUMNS, StudyError, read_manifest
from aufx.study.responses import merge_responses, read_responses
from aufx.study.page import export_study, load_study

__all__ = ["MANIFEST_COLUMNS", "StudyError", "export_study", "load_study", "merge_responses", "read_manifest",
           "read_responses", "summarize"]

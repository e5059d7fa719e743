"""The study page: a self-contained export, a reproducible and counterbalanced trial order, and complete runs of both
tasks in headless Chromium whose downloaded responses merge back with the manifest."""
from __future__ import annotations

import re
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from aufx.model.presets import EMOTIONS
from aufx.study import (StudyError, export_study, load_study, merge_responses, read_manifest, read_responses,
                        summarize)
from study_fixtures import make_stimuli

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic", "--window-size=1200,900")


# Fixtures ------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stimuli(tmp_path_factory) -> Path:
    return make_stimuli(tmp_path_factory.mktemp("stimuli"))


@pytest.fixture(scope="module")
def ident_study(stimuli, tmp_path_factory) -> Path:
    return export_study(stimuli, tmp_path_factory.mktemp("ident") / "study", seed=11, block_by="identity",
                        iti_ms=100)


@pytest.fixture(scope="module")
def pair_study(stimuli, tmp_path_factory) -> Path:
    return export_study(stimuli, tmp_path_factory.mktemp("pair") / "study", task="pairwise", seed=5, repeats=2,
                        iti_ms=100)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads):
    """Debian's Chromium through its own chromedriver; Selenium Manager stays offline."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.fail(f"the browser tests need {CHROMIUM} and {CHROMEDRIVER}: run `make browser`")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={downloads.parent / 'chromium-profile'}")
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SE_OFFLINE", "true")
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    yield driver
    driver.quit()


# Helpers -------------------------------------------------------------------------------------------------------------
def plan(driver, code: str) -> dict:
    """The order the page computes for ``code`` (the page's own plan.js, not a Python re-implementation)."""
    return driver.execute_script("return AUFXPlan.buildPlan(window.AUFX_STUDY, arguments[0]);", code)


def trial_order(p: dict) -> list[tuple[int, tuple[int, ...]]]:
    return [(t["trial"], tuple(t["items"])) for t in p["trials"]]


def start(driver, index: Path, code: str) -> None:
    driver.get(index.as_uri())
    driver.find_element(By.ID, "participant").send_keys(code, Keys.ENTER)
    begin = driver.find_element(By.ID, "begin")
    WebDriverWait(driver, 5).until(lambda d: begin.is_enabled())
    begin.click()


def wait_for_trial(driver, n: int) -> None:
    WebDriverWait(driver, 5, poll_frequency=0.02).until(lambda d: d.execute_script(
        "const s = document.getElementById('stage'); return s.dataset.ready === 'true' && s.dataset.trial === "
        "arguments[0];", str(n)))


def shown_images(driver) -> list[str]:
    return [img.get_dom_attribute("src") for img in driver.find_elements(By.CSS_SELECTOR, "#faces img")]


def download_csv(driver, downloads: Path, name: str) -> Path:
    """Click the download link, wait for the file, and check it equals the textarea fallback."""
    WebDriverWait(driver, 5).until(lambda d: d.find_element(By.ID, "screen-end").is_displayed())
    driver.find_element(By.ID, "download").click()
    path = downloads / name
    deadline = time.monotonic() + 10
    while not path.is_file() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.is_file(), f"no download {name}; got {sorted(p.name for p in downloads.iterdir())}"
    fallback = driver.find_element(By.ID, "csv").get_property("value")
    assert path.read_text(encoding="utf-8") == fallback
    return path


def no_console_errors(driver) -> None:
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


# Export (no browser) -------------------------------------------------------------------------------------------------
def test_export_is_self_contained(ident_study, stimuli):
    folder = ident_study.parent
    texts = {p.name: p.read_text(encoding="utf-8") for p in folder.iterdir() if p.is_file()}
    assert set(texts) == {"index.html", "study.css", "plan.js", "study.js", "study.json", "study_data.js"}
    for name, text in texts.items():
        assert not re.search(r"https?://", text), f"external reference in {name}"
    assert "url(" not in texts["study.css"]
    refs = re.findall(r'(?:src|href)="([^"#]+)"', texts["index.html"])
    assert sorted(refs) == ["plan.js", "study.css", "study.js", "study_data.js"]
    assert texts["study_data.js"].startswith("window.AUFX_STUDY = ")

    study = load_study(folder)
    manifest = read_manifest(stimuli / "manifest.csv")
    assert sorted(i["file"] for i in study["items"]) == sorted(manifest["file"])
    assert len(study["trials"]) == len(manifest)
    for item in study["items"]:
        copied = folder / item["src"]
        assert copied.read_bytes() == (stimuli / "images" / item["file"]).read_bytes()
        assert item["condition"] not in item["src"] and item["identity"] not in item["src"]
    assert {t["expected"] for t in study["trials"]} == {"neutral", "happy", "sad", None}  # smirk has no answer


def test_pairs_differ_only_in_the_compared_column(stimuli, tmp_path):
    study = load_study(export_study(stimuli, tmp_path / "intensity", task="pairwise").parent)
    items = study["items"]
    assert len(study["trials"]) == 4  # happy and sad, 0.5 vs 1.0 (warp), for two identities
    for trial in study["trials"]:
        a, b = (items[i] for i in trial["items"])
        assert (a["identity"], a["condition"], a["engine"]) == (b["identity"], b["condition"], b["engine"])
        assert a["intensity"] < b["intensity"] and trial["expected"] == trial["items"][1]
        assert trial["question"] == f"Which face looks more {a['condition']}?"

    study = load_study(export_study(stimuli, tmp_path / "engine", task="pairwise", pair_by="engine").parent)
    engines = [{study["items"][i]["engine"] for i in t["items"]} for t in study["trials"]]
    assert engines == [{"warp", "diffusion"}] * 2 and all(t["expected"] is None for t in study["trials"])
    assert study["trials"][0]["question"] == "Which face looks more natural?"


def test_conditions_select_the_stimuli(stimuli, tmp_path):
    study = load_study(export_study(stimuli, tmp_path / "s", conditions=["happy", "sad"]).parent)
    assert sorted(i["condition"] for i in study["items"]) == ["happy"] * 6 + ["sad"] * 4


def test_export_errors_name_the_problem(stimuli, tmp_path):
    with pytest.raises(StudyError, match="'joy'.*not in the manifest"):
        export_study(stimuli, tmp_path / "a", conditions=["joy"])
    with pytest.raises(StudyError, match="no pairs"):
        export_study(stimuli, tmp_path / "b", task="pairwise", pair_by="engine", conditions=["sad"])
    with pytest.raises(StudyError, match="task must be one of"):
        export_study(stimuli, tmp_path / "c", task="rating")

    broken = shutil.copytree(stimuli, tmp_path / "broken")
    target = broken / "images" / "hopper_sad_1.0_warp.png"
    target.write_bytes(target.read_bytes() + b"\0")
    with pytest.raises(StudyError, match="hopper_sad_1.0_warp.png.*changed since the manifest"):
        export_study(broken, tmp_path / "d")
    target.unlink()
    with pytest.raises(StudyError, match="hopper_sad_1.0_warp.png.*does not exist"):
        export_study(broken, tmp_path / "d")
    assert not (tmp_path / "d").exists()  # nothing half-written that would block the next try


def test_export_overwrites_only_a_study_folder(stimuli, tmp_path):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(StudyError, match="not a study folder"):
        export_study(stimuli, other, overwrite=True)
    index = export_study(stimuli, tmp_path / "study", seed=1)
    with pytest.raises(StudyError, match="overwrite=True"):
        export_study(stimuli, index.parent, seed=2)
    export_study(stimuli, index.parent, seed=2, conditions=["sad"], overwrite=True)
    study = load_study(index.parent)
    assert study["seed"] == 2 and len(list((index.parent / "images").iterdir())) == len(study["items"]) == 4


# Trial order (the page's plan.js, evaluated in the browser) ----------------------------------------------------------
def test_same_code_same_order_other_code_other_order(browser, ident_study, stimuli, tmp_path):
    browser.get(ident_study.as_uri())
    first = plan(browser, "P01")
    browser.refresh()
    assert plan(browser, "P01") == first
    assert plan(browser, " P01 ") == first  # codes are trimmed, as on the entry screen
    other = plan(browser, "P02")
    assert trial_order(other) != trial_order(first)
    n = len(load_study(ident_study.parent)["trials"])
    for p in (first, other):
        assert sorted(t["trial"] for t in p["trials"]) == list(range(n))
        blocks = [t["block"] for t in p["trials"]]
        assert blocks == sorted(blocks, key=p["blockOrder"].index)  # blocks are contiguous, in the row's order

    reseeded = export_study(stimuli, tmp_path / "seed12", seed=12, block_by="identity")
    browser.get(reseeded.as_uri())
    assert trial_order(plan(browser, "P01")) != trial_order(first)


def test_block_order_counterbalances_across_participants(browser, ident_study):
    browser.get(ident_study.as_uri())
    rows = {}
    for i in range(40):
        p = plan(browser, f"P{i:02d}")
        rows.setdefault(p["latinRow"], p["blockOrder"])
    assert rows == {0: [0, 1], 1: [1, 0]}  # two identities: each comes first for half the Latin-square rows


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
def test_latin_square_rows_are_balanced(browser, ident_study, k):
    browser.get(ident_study.as_uri())
    count = browser.execute_script("return AUFXPlan.latinRowCount(arguments[0]);", k)
    rows = [browser.execute_script("return AUFXPlan.latinRow(arguments[0], arguments[1]);", k, r)
            for r in range(count)]
    assert all(sorted(row) == list(range(k)) for row in rows)
    positions = Counter((pos, b) for row in rows for pos, b in enumerate(row))
    assert set(positions.values()) == {count // k}  # every block in every position equally often
    if k > 1:
        carryover = Counter(pair for row in rows for pair in zip(row, row[1:]))
        assert len(carryover) == k * (k - 1) and len(set(carryover.values())) == 1  # and after every other block


def test_pairwise_sides_are_counterbalanced(browser, pair_study, stimuli, tmp_path):
    browser.get(pair_study.as_uri())
    study = load_study(pair_study.parent)
    for code in ("P01", "P02", "lab-7"):
        shown = Counter(trial_order(plan(browser, code)))
        expected = Counter({(i, tuple(t["items"])): 1 for i, t in enumerate(study["trials"])})
        expected.update({(i, tuple(reversed(t["items"]))): 1 for i, t in enumerate(study["trials"])})
        assert shown == expected  # with two repeats, every pair once in each arrangement

    once = export_study(stimuli, tmp_path / "once", task="pairwise", seed=5, conditions=["happy", "sad"])
    browser.get(once.as_uri())
    study = load_study(once.parent)
    first_left = Counter()
    for i in range(20):
        p = plan(browser, f"P{i:02d}")
        as_built = [t["items"] == study["trials"][t["trial"]]["items"] for t in p["trials"]]
        assert sum(as_built) == len(as_built) // 2  # within a participant, half the pairs each way round
        first_left.update(t["trial"] for t, built in zip(p["trials"], as_built) if built)
    assert all(0 < first_left[i] < 20 for i in range(len(study["trials"])))  # across participants, both ways


# Complete runs in the browser ----------------------------------------------------------------------------------------
def test_identification_run_merges_with_manifest(browser, ident_study, stimuli, downloads):
    study = load_study(ident_study.parent)
    keys = [c["key"] for c in study["categories"]]
    assert keys == list(EMOTIONS)
    browser.get(ident_study.as_uri())
    browser.find_element(By.ID, "participant").send_keys("bad code!", Keys.ENTER)
    assert browser.find_element(By.ID, "participant-error").is_displayed()
    expected_plan = plan(browser, "P07")
    browser.find_element(By.ID, "participant").clear()
    start(browser, ident_study, "P07")

    answers = []
    for n, entry in enumerate(expected_plan["trials"], 1):
        wait_for_trial(browser, n)
        item = study["items"][entry["items"][0]]
        assert shown_images(browser) == [item["src"]]  # the page shows the planned order
        truth = study["trials"][entry["trial"]]["expected"] or "surprise"
        answer = truth if n % 3 else keys[(keys.index(truth) + 1) % len(keys)]  # every third answer is wrong
        if n % 2:
            browser.find_element(By.CSS_SELECTOR, f'#choices button[data-response="{answer}"]').click()
        else:
            ActionChains(browser).send_keys(str(keys.index(answer) + 1)).perform()
        answers.append((item["file"], item["condition"], item["intensity"], answer))

    path = download_csv(browser, downloads, "aufx_identification_P07.csv")
    no_console_errors(browser)
    analysis = merge_responses(read_manifest(stimuli / "manifest.csv"), read_responses([path]))
    assert len(analysis) == len(answers) == len(study["trials"])
    assert list(zip(analysis["file"], analysis["response"])) == [(f, a) for f, _, _, a in answers]
    assert list(analysis["trial"]) == list(range(1, len(answers) + 1))
    assert analysis["rt_ms"].between(0, 10_000).all() and (analysis["participant"] == "P07").all()
    assert analysis["study_seed"].eq("11").all()  # the page's seed; "seed" is the manifest's (builder) seed
    assert analysis["seed"].eq("7").all() and analysis["params"].str.startswith("{").all()

    tables = summarize(analysis)
    hits = {}
    for _, condition, intensity, answer in answers:
        if condition in EMOTIONS:
            hits.setdefault(condition, []).append(answer == condition)
    by_condition = tables["accuracy_by_condition"].set_index("condition")
    assert sorted(by_condition.index) == sorted(hits)
    for condition, h in hits.items():
        assert by_condition.at[condition, "n"] == len(h)
        assert by_condition.at[condition, "accuracy"] == pytest.approx(sum(h) / len(h))
    confusion = tables["confusion"].set_index("condition")
    assert list(confusion.columns) == list(EMOTIONS) and confusion.to_numpy().sum() == len(answers)
    smirk = Counter(a for _, c, _, a in answers if c == "smirk")
    assert {k: v for k, v in confusion.loc["smirk"].items() if v} == dict(smirk)


def test_pairwise_run_merges_with_manifest(browser, pair_study, stimuli, downloads):
    study = load_study(pair_study.parent)
    browser.get(pair_study.as_uri())
    expected_plan = plan(browser, "P08")
    start(browser, pair_study, "P08")

    keys = {"left": [Keys.ARROW_LEFT, "f"], "right": [Keys.ARROW_RIGHT, "j"]}
    chosen = []
    for n, entry in enumerate(expected_plan["trials"], 1):
        wait_for_trial(browser, n)
        left, right = (study["items"][i] for i in entry["items"])
        assert shown_images(browser) == [left["src"], right["src"]]
        side = "left" if n % 4 in (1, 2) else "right"
        if n % 2:
            browser.find_element(By.CSS_SELECTOR, f'#faces button[data-response="{side}"]').click()
        else:
            ActionChains(browser).send_keys(keys[side][n % 4 // 2]).perform()
        pick = left if side == "left" else right
        other = right if side == "left" else left
        chosen.append((left["file"], right["file"], side, pick["file"], pick["intensity"] > other["intensity"]))

    path = download_csv(browser, downloads, "aufx_pairwise_P08.csv")
    no_console_errors(browser)
    analysis = merge_responses(read_manifest(stimuli / "manifest.csv"), read_responses([path]))
    assert len(analysis) == len(chosen) == 2 * len(study["trials"])
    got = zip(analysis["file_left"], analysis["file_right"], analysis["response"], analysis["chosen_file"],
              analysis["correct"].astype(bool))
    assert list(got) == chosen
    assert (analysis["condition_left"] == analysis["condition_right"]).all()

    tables = summarize(analysis)
    assert tables["side_bias"].set_index("participant").at["P08", "left_rate"] == pytest.approx(0.5)
    by_condition = tables["accuracy_by_condition"].set_index("condition")
    for condition in ("happy", "sad"):
        mine = [c for (fl, _, _, _, c) in chosen if f"_{condition}_" in fl]
        assert by_condition.at[condition, "accuracy"] == pytest.approx(sum(mine) / len(mine))
    preference = tables["preference"].set_index("value")
    assert preference["shown"].sum() == 2 * len(chosen) and preference["chosen"].sum() == len(chosen)

/* The study page: participant code, instructions, one screen per trial, and the responses as a CSV download.
   The trial order comes from AUFXPlan.buildPlan (plan.js); the study itself from window.AUFX_STUDY. */
(function () {
  "use strict";

  const study = window.AUFX_STUDY;
  const $ = (id) => document.getElementById(id);
  const CODE = /^[A-Za-z0-9._-]{1,40}$/;
  const COLUMNS = {
    identification: ["participant", "task", "trial", "block", "repeat", "file", "identity", "condition", "intensity",
      "engine", "question", "response", "correct", "rt_ms", "study_seed", "timestamp"],
    pairwise: ["participant", "task", "trial", "block", "repeat", "compare", "file_left", "file_right", "identity",
      "condition_left", "condition_right", "intensity_left", "intensity_right", "engine_left", "engine_right",
      "question", "response", "chosen_file", "correct", "rt_ms", "study_seed", "timestamp"],
  };
  const PAIR_KEYS = {ArrowLeft: 0, f: 0, F: 0, ArrowRight: 1, j: 1, J: 1};

  let participant = "";
  let plan = null;
  let position = 0;
  let shownAt = 0;
  let accepting = false;
  const responses = [];
  const preloaded = [];  // keeps the decoded images alive so trials show without loading delays

  function fail(message) {
    const box = $("fatal");
    box.textContent = message;
    box.hidden = false;
  }

  function show(screen) {
    for (const section of document.querySelectorAll(".screen")) {
      section.hidden = section.id !== "screen-" + screen;
    }
    const heading = document.querySelector("#screen-" + screen + " h2[tabindex]");
    if (heading) {
      heading.focus();
    }
  }

  function paragraphs(container, text) {
    for (const part of text.split(/\n\s*\n/)) {
      const p = document.createElement("p");
      p.textContent = part.trim();
      container.appendChild(p);
    }
  }

  function preload() {
    return Promise.all(study.items.map((item) => {
      const img = new Image();
      img.src = item.src;
      preloaded.push(img);
      return img.decode().catch(() => {
        throw new Error("The image for " + item.file + " could not be loaded; the study folder is incomplete.");
      });
    }));
  }

  /* Buttons are built once; the identification buttons carry the category key, the pairwise ones the side. */
  function buildChoices() {
    const choices = $("choices");
    if (study.task === "identification") {
      study.categories.forEach((category, i) => {
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.response = category.key;
        const key = document.createElement("span");
        key.className = "key";
        key.setAttribute("aria-hidden", "true");
        key.textContent = String(i + 1);
        button.append(key, category.label);
        button.setAttribute("aria-keyshortcuts", String(i + 1));
        button.addEventListener("click", () => respond(category.key));
        choices.appendChild(button);
      });
      const figure = document.createElement("figure");
      const img = document.createElement("img");
      img.alt = "Face to judge";
      figure.appendChild(img);
      $("faces").appendChild(figure);
    } else {
      ["Left", "Right"].forEach((side, i) => {
        const figure = document.createElement("figure");
        const img = document.createElement("img");
        img.alt = side + " face";
        const button = document.createElement("button");
        button.type = "button";
        button.dataset.response = side.toLowerCase();
        button.textContent = side + (i === 0 ? " (F or \u2190)" : " (J or \u2192)");
        button.setAttribute("aria-keyshortcuts", i === 0 ? "F ArrowLeft" : "J ArrowRight");
        button.addEventListener("click", () => respond(side.toLowerCase()));
        figure.append(img, button);
        $("faces").appendChild(figure);
      });
    }
  }

  function updateProgress() {
    const total = plan.trials.length;
    $("progress-text").textContent = "Trial " + Math.min(position + 1, total) + " of " + total;
    $("progress-bar").value = position / total;
  }

  /* Fixation for iti_ms, then the faces; the response clock starts once they have been painted. */
  function nextTrial() {
    if (position >= plan.trials.length) {
      finish();
      return;
    }
    accepting = false;
    $("stage").dataset.ready = "false";
    $("stage").hidden = true;
    $("fixation").hidden = false;
    updateProgress();
    const entry = plan.trials[position];
    const trial = study.trials[entry.trial];
    const images = $("faces").querySelectorAll("img");
    entry.items.forEach((item, i) => { images[i].src = study.items[item].src; });
    $("question").textContent = trial.question || study.question;
    const decoded = Promise.all(Array.from(images, (img) => img.decode()));
    const waited = new Promise((resolve) => setTimeout(resolve, study.iti_ms));
    Promise.all([decoded, waited]).then(() => {
      $("fixation").hidden = true;
      $("stage").hidden = false;
      requestAnimationFrame(() => requestAnimationFrame(() => {
        shownAt = performance.now();
        accepting = true;
        $("stage").dataset.trial = String(position + 1);
        $("stage").dataset.ready = "true";
      }));
    }, (error) => fail("A face image could not be shown: " + error));
  }

  function record(entry, response, rt) {
    const trial = study.trials[entry.trial];
    const row = {
      participant: participant, task: study.task, trial: position + 1, block: study.blocks[entry.block],
      repeat: entry.repeat + 1, question: trial.question || study.question, response: response,
      rt_ms: Math.round(rt), study_seed: study.seed, timestamp: new Date().toISOString(),
    };
    if (study.task === "identification") {
      const item = study.items[entry.items[0]];
      for (const key of ["file", "identity", "condition", "intensity", "engine"]) {
        row[key] = item[key];
      }
      row.correct = trial.expected === null ? "" : Number(response === trial.expected);
    } else {
      const [left, right] = entry.items.map((i) => study.items[i]);
      const chosen = entry.items[response === "left" ? 0 : 1];
      Object.assign(row, {
        compare: study.pair_by, file_left: left.file, file_right: right.file, identity: left.identity,
        condition_left: left.condition, condition_right: right.condition, intensity_left: left.intensity,
        intensity_right: right.intensity, engine_left: left.engine, engine_right: right.engine,
        chosen_file: study.items[chosen].file,
        correct: trial.expected === null ? "" : Number(chosen === trial.expected),
      });
    }
    responses.push(row);
  }

  function respond(response) {
    if (!accepting) {
      return;
    }
    accepting = false;
    record(plan.trials[position], response, performance.now() - shownAt);
    position += 1;
    $("stage").focus({preventScroll: true});  // so a held Enter/Space cannot answer the next trial as well
    nextTrial();
  }

  function csvField(value) {
    const text = String(value);
    return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  function toCsv() {
    const columns = COLUMNS[study.task];
    const lines = [columns.join(",")];
    for (const row of responses) {
      lines.push(columns.map((c) => csvField(row[c])).join(","));
    }
    return lines.join("\r\n") + "\r\n";
  }

  function finish() {
    const csv = toCsv();
    const link = $("download");
    link.href = URL.createObjectURL(new Blob([csv], {type: "text/csv"}));
    link.download = "aufx_" + study.task + "_" + participant + ".csv";
    $("csv").value = csv;
    show("end");
  }

  function onKey(event) {
    if (!accepting || event.repeat || event.ctrlKey || event.altKey || event.metaKey) {
      return;
    }
    if (study.task === "identification") {
      const index = Number(event.key) - 1;
      if (Number.isInteger(index) && index >= 0 && index < study.categories.length) {
        respond(study.categories[index].key);
      }
    } else if (event.key in PAIR_KEYS) {
      event.preventDefault();
      respond(PAIR_KEYS[event.key] === 0 ? "left" : "right");
    }
  }

  function start(event) {
    event.preventDefault();
    const code = $("participant").value.trim();
    if (!CODE.test(code)) {
      $("participant-error").textContent =
        "Please enter a code of 1 to 40 letters, digits, dots, dashes or underscores.";
      $("participant-error").hidden = false;
      $("participant").setAttribute("aria-invalid", "true");
      $("participant").focus();
      return;
    }
    participant = code;
    plan = window.AUFXPlan.buildPlan(study, code);
    show("instructions");
    preload().then(() => {
      $("loading").textContent = plan.trials.length + " trials. Press Begin when you are ready.";
      $("begin").disabled = false;
    }, (error) => fail(error.message));
  }

  function init() {
    if (!study || !window.AUFXPlan) {
      fail("The study data is missing: open index.html inside the exported study folder.");
      return;
    }
    document.title = study.title;
    $("title").textContent = study.title;
    paragraphs($("instructions"), study.instructions);
    buildChoices();
    $("code-form").addEventListener("submit", start);
    $("begin").addEventListener("click", () => {
      show("trial");
      $("stage").focus({preventScroll: true});
      nextTrial();
    });
    document.addEventListener("keydown", onKey);
    show("code");
    $("participant").focus();
  }

  init();
})();

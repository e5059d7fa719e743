# Two commands for a fresh machine:  `make app` (set up, then launch the app)  and  `make test` (set up, then test).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export GRADIO_ANALYTICS_ENABLED := False
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: setup app test bench browser clean

$(VENV)/.installed: requirements.txt requirements-nodeps.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q --upgrade pip
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -e .
	touch $@

setup: $(VENV)/.installed

app: setup
	$(PY) app.py $(ARGS)

browser:
	bash tools/install_browser.sh

test: setup browser
	$(PY) -m pytest -q $(ARGS)

bench: setup
	$(PY) eval/bench.py $(ARGS)

clean:
	rm -rf $(VENV)

# Two entry points, both working from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test setup clean screenshot

setup: $(STAMP)

$(STAMP): pyproject.toml constraints-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints-cpu.txt -e '.[test]'
	touch $@

demo: $(STAMP)
	$(BIN)/bench run suites/demo.yaml
	$(BIN)/bench report suites/demo.yaml --open

test: $(STAMP)
	$(BIN)/python -m pytest

# docs/report.png from the demo's report (after `make demo`), so the README shows what the demo produces.
screenshot: $(STAMP)
	$(BIN)/python scripts/report_screenshot.py reports/demo docs/report.png

clean:
	rm -rf $(VENV) results reports

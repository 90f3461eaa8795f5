# fer_keras: every target calls an entry point a user can also call directly.
# A flag is passed only when its variable is set, so an unset variable leaves the decision to the
# config file and RunConfig's defaults (fer_keras/config.py), never to a second default here.
PY      ?= .venv/bin/python
# Without CONFIG: the demo config for the built-in demo data (DATA unset or demo), else the protocol.
CONFIG  ?= $(if $(filter-out demo,$(DATA)),configs/protocol.yaml,configs/demo.yaml)
opt = $(if $(2),$(1) $(2))

.PHONY: setup train fast crossdomain realcheck test lint models predict clean-demo

setup:                 ## create .venv and install the package with its test tools
	python3 -m venv .venv
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[cpu,dev]'

train:                 ## one run: make train MODEL=resnet18 RES=48 [DATA=.. BALANCE=.. PRETRAIN=.. ...]
	$(PY) -m fer_keras.train --config $(CONFIG) $(call opt,--dataset,$(DATA)) $(call opt,--out,$(OUT)) \
	  $(call opt,--model,$(MODEL)) $(call opt,--res,$(RES)) $(call opt,--data-root,$(DATA_ROOT)) \
	  $(call opt,--balance,$(BALANCE)) $(call opt,--pretrain,$(PRETRAIN)) \
	  $(call opt,--epochs,$(EPOCHS)) $(call opt,--batch,$(BATCH)) $(call opt,--lr,$(LR)) \
	  $(call opt,--seed,$(SEED)) $(call opt,--limit-per-class,$(LIMIT)) \
	  $(call opt,--crossdomain,$(CROSSDOMAIN)) $(call opt,--pipeline,$(PIPELINE)) $(ARGS)

FAST_OUT  ?= runs/fast
FAST_REAL  = $(or $(REAL),../shared/data/fer2013)
fast:                  ## the fast recipe (ours, not the protocol) on FER2013: make fast EPOCHS=30 [FAST_OUT=runs/fast REAL=.. CROSS=btfer_dir]
	$(PY) -m fer_keras.train --config configs/fast.yaml --data-root $(dir $(FAST_REAL)) --dataset $(notdir $(FAST_REAL)) \
	  --crossdomain $(if $(CROSS),$(abspath $(CROSS)),null) --out $(FAST_OUT) $(call opt,--epochs,$(EPOCHS)) \
	  $(call opt,--model,$(MODEL)) $(ARGS)
	$(if $(CROSS),$(PY) -m fer_keras.evaluate.crossdomain --runs $(FAST_OUT))

crossdomain:           ## evaluate every finished run lacking a cross-domain result [TEST=folder]
	$(PY) -m fer_keras.evaluate.crossdomain $(call opt,--runs,$(OUT)) $(call opt,--data,$(TEST)) $(ARGS)

realcheck:             ## does a run learn on real faces? full FER2013, a few epochs [REAL=folder EPOCHS=5 MODEL=sequential_simple]
	$(PY) -m fer_keras.realcheck $(call opt,--data,$(REAL)) $(call opt,--epochs,$(EPOCHS)) $(call opt,--model,$(MODEL)) $(ARGS)

test:                  ## the test suite (the command CI runs)
	$(PY) -m pytest -q

lint:
	$(PY) -m ruff check fer_keras data_prep tests

models:                ## table of registered models
	$(PY) -m fer_keras.models $(ARGS)

predict:               ## expressions on a photo or folder: make predict PHOTO=.. [RUN=runs/<id> PRED_OUT=r.csv ANNOTATE=dir]
	$(call need,PHOTO)$(PY) -m fer_keras.predict $(PHOTO) $(call opt,--run,$(RUN)) \
	  $(call opt,--out,$(PRED_OUT)) $(call opt,--annotate,$(ANNOTATE)) $(ARGS)

# --- data preparation (data_prep/README.md): SRC is read, never modified; DST is new ---
need = $(if $($(1)),,$(error $(1)=... is required))
.PHONY: crop dedupe balance review anonymize import

crop:                  ## MTCNN face crops: make crop SRC=raw DST=cropped [MARGIN=20 SIZE=256 WORKERS=n]
	$(call need,SRC)$(call need,DST)$(PY) -m data_prep.crop --src $(SRC) --dst $(DST) \
	  $(call opt,--margin,$(MARGIN)) $(call opt,--size,$(SIZE)) $(call opt,--workers,$(WORKERS)) $(ARGS)

dedupe:                ## duplicate report: make dedupe SRC=data/x DST=/tmp/dups [THRESHOLD=6] [ARGS=--exclude]
	$(call need,SRC)$(call need,DST)$(PY) -m data_prep.dedupe --root $(SRC) --out $(DST) \
	  $(call opt,--threshold,$(THRESHOLD)) $(ARGS)

balance:               ## N per class: make balance SRC=data/x DST=data/y [N=300 SEED=0 SPLIT=train]
	$(call need,SRC)$(call need,DST)$(PY) -m data_prep.balance --src $(SRC) --dst $(DST) \
	  $(call opt,--per-class,$(N)) $(call opt,--seed,$(SEED)) $(call opt,--split,$(SPLIT)) $(ARGS)

review:                ## contact sheets for the manual pass: make review SRC=data/x DST=/tmp/review
	$(call need,SRC)$(call need,DST)$(PY) -m data_prep.review sheets --root $(SRC) --out $(DST) $(ARGS)

anonymize:             ## hash names: make anonymize SRC=raw DST=release MAPPING=private/names.csv
	$(call need,SRC)$(call need,DST)$(call need,MAPPING)$(PY) -m data_prep.anonymize \
	  --src $(SRC) --dst $(DST) --mapping $(MAPPING) $(ARGS)

import:                ## make import DATASET=fer2013_csv|ferplus|rafdb|affectnet|ckplus|jaffe|folders SRC=.. DST=..
	$(call need,DATASET)$(call need,SRC)$(call need,DST)$(PY) -m data_prep.importers $(DATASET) \
	  --src $(SRC) --dst $(DST) $(ARGS)

# --- experiment grids and the report (fer_keras.grid, fer_keras.report) ---
GRID   ?= experiments/demo.yaml

.PHONY: grid grid-dry report

grid:                  ## run every missing point of a grid: make grid GRID=experiments/demo.yaml [ONLY="model=esr fold=0" SHARD=i/n (0-based) GRID_ARGS=..]
	$(PY) -m fer_keras.grid $(GRID) $(foreach o,$(ONLY),--only '$(o)') $(call opt,--shard,$(SHARD)) $(GRID_ARGS)

grid-dry:              ## list a grid's runs, their ids and states; trains nothing
	$(PY) -m fer_keras.grid $(GRID) --dry-run $(foreach o,$(ONLY),--only '$(o)') $(call opt,--shard,$(SHARD)) $(GRID_ARGS)

report:                ## tables, figures, report.html from every run under OUT: make report [OUT=runs REPORT=report PAPER_CSV=paper.csv]
	$(PY) -m fer_keras.report $(call opt,--runs,$(OUT)) $(call opt,--out,$(REPORT)) $(call opt,--paper-csv,$(PAPER_CSV)) \
	  $(REPORT_ARGS)

# --- benchmarks and TFLite export (fer_keras.bench, fer_keras.export) ---
.PHONY: bench export export-check

bench:                 ## speed: input pipelines, training, inference, TFLite; writes bench/results.{json,md}
	$(PY) -m fer_keras.bench $(call opt,--out,$(BENCH_OUT)) $(call opt,--models,$(MODELS)) $(call opt,--res,$(RES)) \
	  $(call opt,--data,$(BENCH_DATA)) $(call opt,--repeats,$(REPEATS)) $(ARGS)

export:                ## make export RUN=<run-dir-or-id> [FORMAT=tflite QUANT=none|float16|int8]
	$(PY) -m fer_keras.export $(RUN) $(call opt,--runs,$(OUT)) $(call opt,--format,$(FORMAT)) $(call opt,--quant,$(QUANT)) \
	  $(call opt,--data-root,$(DATA_ROOT)) $(ARGS)

export-check:          ## which registered models convert to TFLite (random weights, 48 px)
	$(PY) -m fer_keras.export --all-models $(call opt,--out,$(BENCH_OUT)) $(call opt,--res,$(RES)) $(ARGS)

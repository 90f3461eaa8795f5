# fer_keras: every target calls an entry point a user can also call directly.
PY      ?= .venv/bin/python
DATA    ?= demo
CONFIG  ?= $(if $(filter demo,$(DATA)),configs/demo.yaml,configs/protocol.yaml)
OUT     ?= runs
opt = $(if $(2),$(1) $(2))

.PHONY: setup train crossdomain test lint models clean-demo

setup:                 ## create .venv and install the package with its test tools
	python3 -m venv .venv
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[cpu,dev]'

train:                 ## one run: make train MODEL=resnet18 RES=48 [DATA=.. BALANCE=.. PRETRAIN=.. ...]
	$(PY) -m fer_keras.train --config $(CONFIG) --dataset $(DATA) --out $(OUT) \
	  $(call opt,--model,$(MODEL)) $(call opt,--res,$(RES)) $(call opt,--data-root,$(DATA_ROOT)) \
	  $(call opt,--balance,$(BALANCE)) $(call opt,--pretrain,$(PRETRAIN)) \
	  $(call opt,--epochs,$(EPOCHS)) $(call opt,--batch,$(BATCH)) $(call opt,--lr,$(LR)) \
	  $(call opt,--seed,$(SEED)) $(call opt,--limit-per-class,$(LIMIT)) \
	  $(call opt,--crossdomain,$(CROSSDOMAIN)) $(call opt,--pipeline,$(PIPELINE)) $(ARGS)

crossdomain:           ## evaluate every finished run lacking a cross-domain result [TEST=folder]
	$(PY) -m fer_keras.evaluate.crossdomain --runs $(OUT) $(call opt,--data,$(TEST)) $(ARGS)

test:                  ## the test suite (the command CI runs)
	$(PY) -m pytest -q

lint:
	$(PY) -m ruff check fer_keras data_prep tests

models:                ## table of registered models
	$(PY) -m fer_keras.models

# --- experiment grids and the report (fer_keras.grid, fer_keras.report) ---
GRID   ?= experiments/demo.yaml
REPORT ?= report

.PHONY: grid grid-dry report

grid:                  ## run every missing point of a grid: make grid GRID=experiments/demo.yaml [SHARD=i/n GRID_ARGS=..]
	$(PY) -m fer_keras.grid $(GRID) $(call opt,--shard,$(SHARD)) $(GRID_ARGS)

grid-dry:              ## list a grid's runs, their ids and states; trains nothing
	$(PY) -m fer_keras.grid $(GRID) --dry-run $(call opt,--shard,$(SHARD)) $(GRID_ARGS)

report:                ## tables, figures and report.html from every run under OUT: make report [OUT=runs REPORT=report]
	$(PY) -m fer_keras.report --runs $(OUT) --out $(REPORT) $(REPORT_ARGS)

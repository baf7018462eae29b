# caracal.hardened: test and demo entry points. Everything runs through tests/platform/, which
# prepares the machine itself (Debian packages, Docker engine, virtual environment, images).
#   make test                 the whole suite (what CI runs through .ci/run)
#   make demo                 deploy to a disposable Debian 13 systemd container
#   make bench                what the playbooks cost on a demo host (prints, asserts nothing)
#   make molecule SCENARIO=x  one scenario (all scenarios without SCENARIO)

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PLATFORM := tests/platform
SCENARIO ?=
# A phase that finds nothing to test exits 77: not an error for a single make target.
PHASE = $(PLATFORM)/phase.sh

.PHONY: help test setup lint yamllint ansible-lint sanity unit image-contract integration build molecule demo demo-clean bench

help:
	@echo "make test                  setup, lint, sanity, unit, image contract, build check, every molecule scenario"
	@echo "make demo                  deploy playbooks/deploy.yml to the disposable container caracal-demo"
	@echo "make demo-clean            remove caracal-demo"
	@echo "make bench                 deploy, no-op re-run, rotation timings on a fresh demo host (caracal-bench)"
	@echo "make setup                 prepare this machine (idempotent)"
	@echo "make lint                  yamllint and ansible-lint (production profile)"
	@echo "make sanity | unit | image-contract | build"
	@echo "make image-contract        the stand-in service images against Caracal's startup contract (make integration: the same)"
	@echo "make molecule [SCENARIO=name]"

test:
	$(PLATFORM)/test-all.sh

setup:
	$(PLATFORM)/setup.sh

lint: setup
	$(PHASE) yamllint
	$(PHASE) ansible-lint

yamllint ansible-lint sanity build: setup
	$(PHASE) $@

unit image-contract: setup
	$(PHASE) $@ || [ $$? -eq 77 ]

# The old name of image-contract (tests/image_contract/ is not Ansible integration targets).
integration: image-contract

molecule: setup
	$(PHASE) molecule $(SCENARIO) || [ $$? -eq 77 ]

demo:
	$(PLATFORM)/demo.sh

demo-clean:
	$(PLATFORM)/demo.sh clean

bench:
	tests/bench/bench.sh

# Carapace: `make run` boots the default image in QEMU; `make test` is what CI runs.
RECIPE ?= recipes/x86-64-qemu.toml
TEST_RECIPE ?= recipes/x86-64-qemu-test.toml
CARGO ?= cargo
CARAPACE = $(CARGO) run -q --release -p carapace-image --

.PHONY: all deps build image run run-until-ready test test-unit test-system test-slow test-all lint bench clean

all: image

## Install the host tools (QEMU, OVMF, erofs-utils, ...). Idempotent.
deps:
	./scripts/deps.sh

## Build the default x86-64 image: out/x86-64-qemu/carapace.img, .img.zst, sbom.json
image build: deps
	$(CARAPACE) build --recipe $(RECIPE)

## Build (if needed) and boot the default image in QEMU, serial console on this terminal.
run: deps
	$(CARAPACE) build --recipe $(RECIPE)
	$(CARAPACE) run --recipe $(RECIPE)

## Boot to the ready line, power off through QMP, print the boot time.
run-until-ready: deps
	$(CARAPACE) build --recipe $(RECIPE)
	$(CARAPACE) run --recipe $(RECIPE) --until-ready --fresh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## Unit tests, the DNS stub against a fake upstream on loopback, the firewall's real ruleset in
## network namespaces (root, no QEMU), and the agent (channels, LLM client, agentd itself)
## against the fakes of Telegram and the LLM APIs on loopback.
test-unit:
	$(CARGO) test --workspace --lib --bins
	$(CARGO) test -p carapace-image --test lock --test update_cli
	$(CARGO) test -p carapace-netd --test dns_stub --test links
	$(CARGO) test -p carapace-tests --test firewall
	$(CARGO) test -p carapace-im -p carapace-llm -p carapace-agentd --tests

## Whole-system tests: build the test image and boot it in QEMU (one machine at a time).
SYSTEM_TESTS = --test system --test data --test logging --test network --test wifi --test agent \
	--test update --test power_cuts
# Power cuts during updates: make test cuts once in each step of an update, make test-all
# 100. A cut costs about 55 s under TCG (measured 2026-11-30 on a busy 2-core machine: 20 cuts
# in 20 minutes, builds and pairing included); issue 8 asks for 20 in make test, but make test
# already runs past its 40 minutes with 4 (README), so 16 more (about 15 minutes) wait until
# the rest of make test is cheaper.
POWER_CUTS ?= 4

test-system:
	CARAPACE_POWER_CUTS=$(POWER_CUTS) $(CARGO) test -p carapace-tests $(SYSTEM_TESTS) -- --test-threads=1 --nocapture

## Slower suites: boots that keep failing before ready end in a degraded boot (8 minutes);
## the shipped recipe built twice in two checkouts gives the same bytes (11 minutes); 100
## power cuts during updates.
test-slow:
	$(CARGO) test -p carapace-tests --test unready_boots --test reproducible -- --test-threads=1 --nocapture
	CARAPACE_POWER_CUTS=100 $(CARGO) test -p carapace-tests --test power_cuts -- --nocapture


test: deps lint test-unit test-system

test-all: test test-slow

## Image size, boot time and idle memory against a minimal Debian + systemd image; the DNS
## stub's latency and the allow-set insertion against dnsmasq; agentd against ZeroClaw on the
## same fakes (start, memory, message → LLM latency, bytes per turn); what a box downloads for
## an agentd-only and a kernel-only update, with chunks, with patches and as a whole image; the
## time from /update to committed beside a plain reboot.
bench: deps
	$(CARGO) bench -p carapace-netd --bench dns
	$(CARGO) bench -p carapace-tests --bench images
	$(CARGO) bench -p carapace-agentd --bench agent
	$(CARGO) bench -p carapace-tests --bench update_size
	$(CARGO) bench -p carapace-tests --bench update_time

clean:
	rm -rf out target

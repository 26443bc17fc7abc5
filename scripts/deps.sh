#!/bin/sh
# Installs the host tools that building, booting and testing Carapace images need.
# Idempotent: a second run installs nothing. Never touches the host's apt sources.
set -eu

need_apt=""
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

for pkg in qemu-system-x86 ovmf erofs-utils e2fsprogs cryptsetup-bin zstd apt cpio debootstrap \
           debian-archive-keyring gpgv ca-certificates \
           nftables iproute2 dnsmasq-base nmap openssl espeak-ng opus-tools python3-venv \
           fonts-dejavu-core \
           qemu-system-arm qemu-efi-aarch64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
           device-tree-compiler \
           sbsigntool python3-cryptography python3-pefile python3-yaml python3-requests \
           swtpm swtpm-tools; do
    have "$pkg" || need_apt="$need_apt $pkg"
done

if [ -n "$need_apt" ]; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -q
    # The machine image ships qemu-utils from backports, which blocks bookworm's
    # qemu-system-x86; pin qemu-utils to the version qemu-system-x86 wants.
    qemu_ver=$(apt-cache policy qemu-system-x86 | awk '/Candidate:/ {print $2}')
    extra=""
    if ! have qemu-system-x86 && [ -n "$qemu_ver" ]; then
        extra="qemu-utils=$qemu_ver"
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
        --allow-downgrades $extra $need_apt
fi

command -v cargo >/dev/null || { echo "deps: cargo not found; install Rust (rustup) first" >&2; exit 1; }
if ! rustup component list --installed 2>/dev/null | grep -q clippy; then
    rustup component add clippy rustfmt 2>/dev/null || true
fi
# The arm64 images' binaries are cross-built (gcc-aarch64-linux-gnu links them statically
# against libc6-dev-arm64-cross); recipes/arm64-qemu.toml boots under qemu-system-aarch64.
if ! rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
    rustup target add aarch64-unknown-linux-gnu
fi
# OpenAI's Python client, pinned: the inference engine's local API is tested the way OpenAI's
# clients call it (infer/tests/api.rs). espeak-ng above speaks the engine's test audio, and
# opus-tools' opusenc (libopus) makes voice notes of it as the IM apps send them (Ogg Opus).
# fonts-dejavu-core gives the OCR tests (infer/tests/ocr.rs) the font they draw their pages with.
OPENAI_VERSION=3.57.0
venv="$(dirname "$0")/../out/venv-openai"
if ! "$venv/bin/python" -c "import sys, openai; sys.exit(openai.__version__ != '$OPENAI_VERSION')" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "openai==$OPENAI_VERSION"
fi
# componentize-py, pinned by version and by its wheels' sha256: `carapace skill build` turns a
# skill's Python into a WebAssembly component with it (image/src/skill_build.rs names the version).
COMPONENTIZE_PY_VERSION=0.25.1
venv="$(dirname "$0")/../out/venv-skills"
if ! "$venv/bin/componentize-py" --version 2>/dev/null | grep -qx "componentize-py $COMPONENTIZE_PY_VERSION"; then
    python3 -m venv "$venv"
    pins="$(mktemp)"
    cat > "$pins" <<PINS
componentize-py==$COMPONENTIZE_PY_VERSION \\
    --hash=sha256:8623cd8cab8453cb0cd8bf03f3c7103420d06f2f3d360186a280a70a1ca5e89f \\
    --hash=sha256:7b6a87c520358166843af0daa86d2312d7af4cbcbbf1e598951085cf7f2991ca
PINS
    "$venv/bin/pip" install -q --disable-pip-version-check --only-binary=:all: --require-hashes -r "$pins"
    rm -f "$pins"
fi
# virt-firmware, pinned by version and by its wheel's sha256: `carapace build --secure-boot-keys`
# enrolls the owner's Secure Boot keys into a copy of OVMF's variable store with its
# virt-fw-vars (image/src/secure_boot.rs). Its dependencies are Debian's (above), which the venv
# sees; sbsigntool's sbsign signs systemd-boot and the unified kernel images.
VIRT_FIRMWARE_VERSION=26.10
venv="$(dirname "$0")/../out/venv-secureboot"
if ! "$venv/bin/pip" show virt-firmware 2>/dev/null | grep -qx "Version: $VIRT_FIRMWARE_VERSION"; then
    python3 -m venv --system-site-packages "$venv"
    pins="$(mktemp)"
    cat > "$pins" <<PINS
virt-firmware==$VIRT_FIRMWARE_VERSION \\
    --hash=sha256:17400a94e9030d02861d00b030fd2f3c2d5b023aa68e955b29b1d58474925391
PINS
    "$venv/bin/pip" install -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --require-hashes -r "$pins"
    rm -f "$pins"
fi
# componentize-js, pinned by version and by every package's sha512: npm ci installs exactly the
# tree in scripts/node-skills/package-lock.json, checks each tarball against its integrity hash
# and fails when the lock and package.json disagree. `carapace skill build` turns a skill's
# JavaScript into a WebAssembly component with it (image/src/skill_build/js.rs names the
# version); it needs Node.js 20 or newer. No install scripts run: none of these packages has one.
COMPONENTIZE_JS_VERSION=0.23.0
pins="$(cd "$(dirname "$0")" && pwd)/node-skills"
prefix="$(cd "$(dirname "$0")/.." && pwd)/out/node-skills"
if ! command -v npm >/dev/null || ! node -e 'process.exit(parseInt(process.versions.node) >= 20 ? 0 : 1)'; then
    echo "deps: Node.js 20 or newer (node and npm) not found; install it first (nodejs.org)" >&2
    exit 1
fi
installed="$(PACKAGE="$prefix/node_modules/@bytecodealliance/componentize-js/package.json" \
    node -p 'require(process.env.PACKAGE).version' 2>/dev/null || true)"
if [ "$installed" != "$COMPONENTIZE_JS_VERSION" ] || ! cmp -s "$pins/package-lock.json" "$prefix/package-lock.json"; then
    mkdir -p "$prefix"
    cp "$pins/package.json" "$pins/package-lock.json" "$prefix/"
    npm ci --prefix "$prefix" --ignore-scripts --no-audit --no-fund --loglevel=error
fi
echo "deps: ok"

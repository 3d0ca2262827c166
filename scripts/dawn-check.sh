#!/usr/bin/env bash
# Runs every portable WGSL shader in Dawn (Chrome's WebGPU engine, the npm package `webgpu`) on
# Mesa's software Vulkan driver, at WebGPU's default limits, against test vectors the Rust CPU
# reference writes (`gpucnn selftest --export-vectors`). Installs what it needs, idempotently:
#   - Mesa 25's lavapipe, extracted beside the stock driver into /opt/mesa25 (Dawn refuses
#     bookworm's Mesa 22.3: it lacks shaderUniform*ArrayDynamicIndexing); nothing is upgraded.
#   - `npm ci` in scripts/dawn (node_modules is git-ignored).
# Usage: scripts/dawn-check.sh [--class tiny|odd|large]... [--op NAME] [--subgroups]
#   (default: the tiny and odd classes; --subgroups also runs the subgroup shaders' browser
#   forms, see scripts/dawn/replay.mjs). GPUCNN_BIN names the gpucnn binary to export with
#   (default: the debug build, which `cargo build` brings up to date); DAWN_JSON=FILE also
#   writes the rows as JSON.
# Exit status: 0 when every exported check passes in Dawn, 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

MESA_VERSION="25.0.7-2~bpo12+1"
MESA_DIR=/opt/mesa25
ICD="$MESA_DIR/lvp.json"

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

if [ ! -f "$ICD" ]; then
    echo "dawn: installing Mesa $MESA_VERSION lavapipe into $MESA_DIR (beside the stock driver)"
    mirror=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)
    mirror=${mirror:-http://deb.debian.org/debian}
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
        echo "deb $mirror bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/bpo.list >/dev/null
    fi
    $SUDO apt-get update -qq
    tmp=$(mktemp -d)
    chmod 755 "$tmp" # apt downloads as the _apt user
    (cd "$tmp" && apt-get download -qq "mesa-vulkan-drivers=$MESA_VERSION")
    $SUDO dpkg -x "$tmp"/mesa-vulkan-drivers_25*.deb "$MESA_DIR"
    sed "s#libvulkan_lvp.so#$MESA_DIR/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so#" \
        "$MESA_DIR/usr/share/vulkan/icd.d/lvp_icd.json" | $SUDO tee "$ICD" >/dev/null
    rm -rf "$tmp"
fi

# A stamp of the lock file `npm ci` last installed: reinstall only when the lock file changed.
stamp=scripts/dawn/node_modules/.gpucnn-installed-lock
if ! cmp -s scripts/dawn/package-lock.json "$stamp"; then
    echo "dawn: npm ci in scripts/dawn"
    (cd scripts/dawn && npm ci --no-audit --no-fund --loglevel=error)
    cp scripts/dawn/package-lock.json "$stamp"
fi

# The vectors: written by the Rust CPU reference and wgpu (`gpucnn selftest --export-vectors`).
classes=()
op=()
replay_flags=()
while [ $# -gt 0 ]; do
    case "$1" in
    --class) classes+=(--class "$2"); shift 2 ;;
    --op) op=(--op "$2"); shift 2 ;;
    --subgroups) replay_flags+=(--subgroups); shift ;;
    *) echo "dawn-check.sh: unknown argument '$1' (use --class CLASS, --op NAME, --subgroups)" >&2; exit 2 ;;
    esac
done
# Tiny and odd by default: the large class writes 1.2 GB of vectors (a 16.8M-element add, a
# 2.7M-parameter Adam step) and adds a minute; run it by hand with --class large.
[ ${#classes[@]} -eq 0 ] && classes=(--class tiny --class odd)
bin="${GPUCNN_BIN:-}"
if [ -z "$bin" ]; then
    cargo build --locked --quiet --bin gpucnn # a no-op when it is up to date
    bin="${CARGO_TARGET_DIR:-target}/debug/gpucnn"
fi
vectors="$(mktemp -d)"
trap 'rm -rf "$vectors"' EXIT
# The rows (the ordinary selftest on wgpu) are shown only if a check fails there.
if ! "$bin" selftest "${classes[@]}" "${op[@]}" --export-vectors "$vectors" >"$vectors/selftest.txt"; then
    cat "$vectors/selftest.txt"
    echo "dawn: gpucnn selftest failed on wgpu while exporting the vectors" >&2
    exit 1
fi

# Replay in Dawn on Mesa 25's lavapipe (the stock driver stays the one gpucnn itself uses).
VK_ICD_FILENAMES="$ICD" node scripts/dawn/replay.mjs "$vectors" "${replay_flags[@]}" ${DAWN_JSON:+--json "$DAWN_JSON"}

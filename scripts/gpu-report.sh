#!/usr/bin/env bash
# gpu-report.sh — everything worth knowing about gpucnn on one GPU, in one call, as one JSON and
# one text report: the adapter, `gpucnn selftest --json` (every kernel against the CPU
# reference), the kernel benches, `gpucnn profile` (every op of a step at the Keras example's
# shape), the whole training step at that shape (the train_step bench), and, when a Python with
# PyTorch is at hand, ../shared/peers/torch_step.py on the same model and batch (fp32 and TF32).
#
# It runs prebuilt binaries only (a GPU machine often has no Rust toolchain). Build them where
# cargo is, strip them, and copy them beside the checkout:
#
#   cargo build --release && cargo bench --no-run
#   mkdir -p dev-out && cp target/release/gpucnn dev-out/ && strip dev-out/gpucnn
#   cp "$(ls -t target/release/deps/kernels-* | grep -v '\.d$' | head -1)" dev-out/kernels
#   cp "$(ls -t target/release/deps/train_step-* | grep -v '\.d$' | head -1)" dev-out/train_step
#   strip dev-out/kernels dev-out/train_step
#
# then, on the GPU machine:
#
#   scripts/gpu-report.sh --bin dev-out --out report [--torch "python3 torch_step.py"]
#
# Options:
#   --bin DIR        folder holding gpucnn, kernels and train_step (default: dev-out)
#   --out DIR        where report.json, report.txt and the raw outputs go (default: gpu-report)
#   --size N         image size of the profile and the step (default: 180, the example's)
#   --batch N        batch of the profile and the step (default: 128, the example's)
#   --torch CMD      the PyTorch peer command (its flags --size/--batch/--tf32 are appended);
#                    default: none, the report says so
#   --kernels FILTER only the kernel benches whose name contains FILTER (criterion's filter)
#   --quick          shorter benches (1 s of measurement per kernel case, 3 s for the step
#                    instead of 10) and 1 profile step, for a smoke run on a software adapter
#
# Every part runs even if an earlier one failed; each part's exit status is in the report, and
# the script's own status is 1 if any part failed.
set -u

bin=dev-out
out=gpu-report
size=180
batch=128
torch=""
quick=0
kfilter=()
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --size) size="$2"; shift 2 ;;
        --batch) batch="$2"; shift 2 ;;
        --torch) torch="$2"; shift 2 ;;
        --kernels) kfilter=("$2"); shift 2 ;;
        --quick) quick=1; shift ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu-report.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
for exe in gpucnn kernels train_step; do
    if [ ! -x "$bin/$exe" ]; then
        echo "gpu-report.sh: $bin/$exe is missing or not executable; build and copy it as --help says, or point --bin at its folder" >&2
        exit 2
    fi
done
case "$size$batch" in
    *[!0-9]*) echo "gpu-report.sh: --size and --batch take whole numbers" >&2; exit 2 ;;
esac
mkdir -p "$out" || exit 1
# A folder reused from an earlier run: drop that run's parts first, so that nothing of it (a
# PyTorch result from a run given --torch, say) is reported as this run's.
for f in info.txt selftest.json kernels.txt profile.json step.txt torch_fp32.txt torch_tf32.txt \
    report.txt report.json info.err selftest.err kernels.err profile.err step.err \
    torch_fp32.err torch_tf32.err; do
    rm -f "$out/$f"
done
bin=$(cd "$bin" && pwd)

kcrit=()
crit=(--measurement-time 10 --warm-up-time 2)
steps=5
if [ "$quick" = 1 ]; then
    kcrit=(--measurement-time 1 --warm-up-time 1)
    crit=(--measurement-time 3 --warm-up-time 1)
    steps=1
fi

failed=0
status_lines=()
# part NAME FILE CMD...: runs CMD with stdout to $out/FILE and stderr to $out/NAME.err, timed.
part() {
    local name="$1" file="$2"
    shift 2
    echo "== $name: $*" >&2
    local t0 rc
    t0=$(date +%s)
    "$@" >"$out/$file" 2>"$out/$name.err"
    rc=$?
    [ "$rc" = 0 ] || failed=1
    status_lines+=("$name $rc $(( $(date +%s) - t0 ))")
    echo "   exit $rc in $(( $(date +%s) - t0 )) s" >&2
}

part info info.txt "$bin/gpucnn" info
part selftest selftest.json "$bin/gpucnn" selftest --json
part kernels kernels.txt "$bin/kernels" --bench "${kcrit[@]}" "${kfilter[@]}"
part profile profile.json "$bin/gpucnn" profile --image-size "$size" --batch-size "$batch" \
    --width 1 --steps "$steps" --json
part step step.txt env GPUCNN_STEP_CASES="${size}x${batch}" "$bin/train_step" --bench "${crit[@]}"
if [ -n "$torch" ]; then
    part torch_fp32 torch_fp32.txt sh -c "$torch --size $size --batch $batch"
    part torch_tf32 torch_tf32.txt sh -c "$torch --size $size --batch $batch --tf32"
fi

# The text report: the lines a reader looks for first, then where the rest is.
{
    echo "gpucnn GPU report, $(date -u +%Y-%m-%dT%H:%M:%SZ), $(uname -n)"
    echo
    echo "## adapter"
    cat "$out/info.txt"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    echo
    echo "## parts (name, exit status, seconds)"
    printf '%s\n' "${status_lines[@]}"
    echo
    echo "## selftest"
    grep -o '"ok": *[a-z]*' "$out/selftest.json" | sort | uniq -c
    echo
    echo "## whole training step, ${size}x${size}, batch $batch"
    grep -E '^train_step/.*img/s' "$out/step.txt"
    for t in torch_fp32 torch_tf32; do
        [ -f "$out/$t.txt" ] && grep -E 'images/s' "$out/$t.txt" | sed "s/^/$t: /"
    done
    [ -n "$torch" ] || echo "(no --torch command given: PyTorch not measured)"
    echo
    echo "## kernel benches (criterion: time per iteration, low/estimate/high)"
    awk '/^[^ ]/ {name = $1} /time:/ {sub(/.*time: */, ""); print name, $0}' "$out/kernels.txt"
    echo
    echo "raw outputs: $out/{info.txt,selftest.json,kernels.txt,profile.json,step.txt,*.err}"
} >"$out/report.txt"

# The JSON report: the raw JSON parts embedded, the text parts as strings.
if command -v python3 >/dev/null; then
    python3 - "$out" "$size" "$batch" "${status_lines[@]}" <<'EOF'
import json, os, sys
out, size, batch, statuses = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
def text(name):
    p = os.path.join(out, name)
    return open(p, errors="replace").read() if os.path.exists(p) else None
def js(name):
    t = text(name)
    try:
        return json.loads(t) if t else None
    except json.JSONDecodeError as e:
        return {"unparsable": str(e)}
report = {
    "shape": {"image_size": size, "batch": batch},
    "parts": {s.split()[0]: {"exit": int(s.split()[1]), "seconds": int(s.split()[2])} for s in statuses},
    "info": text("info.txt"),
    "selftest": js("selftest.json"),
    "profile": js("profile.json"),
    "step": [l for l in (text("step.txt") or "").splitlines() if l.startswith("train_step/") and "img/s" in l],
    "kernels": text("kernels.txt"),
    "torch": {t: text(t + ".txt") for t in ("torch_fp32", "torch_tf32") if text(t + ".txt") is not None},
}
json.dump(report, open(os.path.join(out, "report.json"), "w"), indent=1)
prof = report["profile"]
if isinstance(prof, dict) and prof.get("ops"):
    ops = sorted(prof["ops"], key=lambda o: -o["seconds"])
    total = sum(o["seconds"] for o in ops) or 1.0
    with open(os.path.join(out, "report.txt"), "a") as f:
        f.write("\n## profile: the 15 slowest ops of a step (of %d; full table in profile.json)\n" % len(ops))
        for o in ops[:15]:
            gf = o["flops"] / o["seconds"] / 1e9 if o["seconds"] > 0 and o["flops"] else 0.0
            f.write("%-22s %-32s %-10s %9.3f ms %5.1f%% %8.1f GFLOP/s\n" % (
                o["layer"][:22], o["op"][:32], o["variant"][:10], o["seconds"] * 1e3,
                100 * o["seconds"] / total, gf))
EOF
else
    echo "gpu-report.sh: no python3 here, so no report.json (report.txt and the raw parts are written)" >&2
fi
cat "$out/report.txt"
exit "$failed"

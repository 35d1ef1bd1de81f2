#!/usr/bin/env bash
# The phantom measurements quoted in docs/phantoms.md and docs/methods.md, reproducible:
#
#   bench/phantom_experiments.sh [--build-dir build] [--out bench-out/phantoms] [--steps 2400]
#                                [--threads 1] EXPERIMENT...
#
# EXPERIMENT:
#   scarcity  knee (PD) individual model trained on 8 vs 1 labelled subject(s), same steps,
#             evaluated on 5 held-out knees (PD)
#   domains   the 8-subject knee model evaluated on the same 5 held-out knees imaged as PD (its own
#             contrast), T1 and T2-FS (--share-anatomy: identical bones, other contrast)
#   losses    multi-domain model (ankle T1 + knee PD + shoulder T2-FS, 6 subjects each) with and
#             without the contrastive and shape-prior losses, evaluated on 3 held-out per joint
#
# Each experiment writes its runs and `evaluate` tables under OUT and prints a summary; every
# figure in the docs names the command and the file it came from. Not a test: minutes per run.
set -euo pipefail

build_dir=build
out=bench-out/phantoms
steps=2400
threads=1
experiments=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build_dir="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    scarcity|domains|losses) experiments+=("$1"); shift ;;
    *) echo "phantom_experiments: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ ${#experiments[@]} -gt 0 ]] || { sed -n '2,18p' "$0"; exit 2; }
site="$(realpath "$build_dir/site_agent/fedjoint-site")"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
mkdir -p "$out"
out="$(realpath "$out")"

phantoms() {  # phantoms DIR ARGS...: generate once (same seed -> same files)
  local dir="$1"; shift
  [[ -f "$dir/manifest.yaml" ]] || "$site" phantoms --out "$dir" "$@" >/dev/null
}

# subset MANIFEST N OUT: the first N subjects of a manifest (paths made absolute).
subset() {
  /usr/bin/python3 - "$1" "$2" "$3" <<'EOF'
import os, sys, yaml
src, n, dst = sys.argv[1], int(sys.argv[2]), sys.argv[3]
m = yaml.safe_load(open(src))
base = os.path.dirname(os.path.abspath(src))
subjects = m["subjects"][:n]
for s in subjects:
    for key in ("image", "label"):
        if key in s:
            s[key] = os.path.join(base, s[key])
yaml.safe_dump({"subjects": subjects, "labels": m["labels"]}, open(dst, "w"), sort_keys=False)
EOF
}

# merge OUT MANIFEST...: one manifest of several sites' subjects.
merge() {
  /usr/bin/python3 - "$@" <<'EOF'
import os, sys, yaml
dst, sources = sys.argv[1], sys.argv[2:]
subjects, labels = [], {}
for src in sources:
    m = yaml.safe_load(open(src))
    base = os.path.dirname(os.path.abspath(src))
    for s in m["subjects"]:
        for key in ("image", "label"):
            if key in s:
                s[key] = os.path.join(base, s[key])
        subjects.append(s)
    labels.update(m["labels"])
yaml.safe_dump({"subjects": subjects, "labels": labels}, open(dst, "w"), sort_keys=False)
EOF
}

# train NAME MANIFEST JOINTS_YAML CONTRASTIVE PRIOR: one `fedjoint-site train` run.
train() {
  local name="$1" manifest="$2" joints="$3" contrastive="$4" prior="$5"
  local dir="$out/runs/$name"
  mkdir -p "$dir"
  cat >"$dir/config.yaml" <<EOF
name: $name
state_dir: state
manifest: $manifest
threads: $threads
loader_threads: 1
seed: 1
model:
  joints:
$joints
training:
  steps: $steps
  batch_size: 8
  validation_fraction: 0
  optimizer: {name: adamw, learning_rate: 0.002, schedule: cosine, warmup_steps: 30, grad_clip_norm: 1.0}
  loss: {contrastive_weight: $contrastive, shape_prior_weight: $prior}
EOF
  if [[ ! -f "$dir/model.safetensors" ]]; then
    echo "training $name ($steps steps)..."
    local t0=$(date +%s)
    "$site" train --config "$dir/config.yaml" --out "$dir" --quiet >"$dir/train.log" 2>&1 ||
      { tail -n 20 "$dir/train.log" >&2; exit 1; }
    echo "$name: $(( $(date +%s) - t0 )) s wall" | tee "$dir/wall.txt"
  fi
}

evaluate() {  # evaluate RUN TEST_MANIFEST NAME
  "$site" evaluate --model "$out/runs/$1/model.safetensors" --manifest "$2" \
    --out "$out/runs/$1/eval-$3" >/dev/null 2>&1 || { echo "evaluate $1 on $3 failed" >&2; exit 1; }
  echo "== $1 on $3"
  sed -n '/^| structure/,/^$/p' "$out/runs/$1/eval-$3/metrics.md"
}

knee_joints="    - {name: knee, structures: [femur, tibia, patella, fibula]}"
data="$out/data"
phantoms "$data/knee-pd" --joint knee --domain pd --subjects 8 --seed 2
for d in pd t1 t2fs; do
  phantoms "$data/knee-test-$d" --joint knee --domain "$d" --subjects 5 --seed 21 \
    --first-index 100 --share-anatomy
done

for e in "${experiments[@]}"; do
  case "$e" in
    scarcity)
      subset "$data/knee-pd/manifest.yaml" 8 "$data/knee-pd-8.yaml"
      subset "$data/knee-pd/manifest.yaml" 1 "$data/knee-pd-1.yaml"
      train knee-8 "$data/knee-pd-8.yaml" "$knee_joints" 0 0
      train knee-1 "$data/knee-pd-1.yaml" "$knee_joints" 0 0
      evaluate knee-8 "$data/knee-test-pd/manifest.yaml" pd
      evaluate knee-1 "$data/knee-test-pd/manifest.yaml" pd
      ;;
    domains)
      subset "$data/knee-pd/manifest.yaml" 8 "$data/knee-pd-8.yaml"
      train knee-8 "$data/knee-pd-8.yaml" "$knee_joints" 0 0
      for d in pd t1 t2fs; do evaluate knee-8 "$data/knee-test-$d/manifest.yaml" "$d"; done
      ;;
    losses)
      phantoms "$data/ankle-t1" --joint ankle --domain t1 --subjects 6 --seed 11
      phantoms "$data/shoulder-t2fs" --joint shoulder --domain t2fs --subjects 6 --seed 13
      phantoms "$data/ankle-test" --joint ankle --domain t1 --subjects 3 --seed 11 --first-index 100
      phantoms "$data/shoulder-test" --joint shoulder --domain t2fs --subjects 3 --seed 13 \
        --first-index 100
      subset "$data/knee-pd/manifest.yaml" 6 "$data/knee-pd-6.yaml"
      merge "$data/multi.yaml" "$data/ankle-t1/manifest.yaml" "$data/knee-pd-6.yaml" \
        "$data/shoulder-t2fs/manifest.yaml"
      subset "$data/knee-test-pd/manifest.yaml" 3 "$data/knee-test-3.yaml"
      merge "$data/multi-test.yaml" "$data/ankle-test/manifest.yaml" "$data/knee-test-3.yaml" \
        "$data/shoulder-test/manifest.yaml"
      multi_joints="    - {name: ankle, structures: [tibia, talus, calcaneus]}
$knee_joints
    - {name: shoulder, structures: [humerus, scapula]}"
      train multi-plain "$data/multi.yaml" "$multi_joints" 0 0
      train multi-contrastive-prior "$data/multi.yaml" "$multi_joints" 0.1 0.01
      evaluate multi-plain "$data/multi-test.yaml" test
      evaluate multi-contrastive-prior "$data/multi-test.yaml" test
      ;;
  esac
done

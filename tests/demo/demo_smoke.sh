#!/usr/bin/env bash
# demo_smoke.sh SOURCE_DIR BUILD_DIR OUT_DIR — runs scripts/demo.sh at a smoke budget and checks
# that it made what SUMMARY.md promises.
set -euo pipefail
source_dir="$1" build_dir="$2" out="$3"
cd "$source_dir"
DEMO_ROUNDS=1 DEMO_STEPS=4 DEMO_PRIOR_ROUNDS=1 DEMO_PRIOR_STEPS=4 DEMO_TEST_SUBJECTS=1 \
  scripts/demo.sh --build-dir "$build_dir" --out "$out"

check() { [[ -s "$1" ]] || { echo "demo_smoke: $1 is missing or empty" >&2; exit 1; }; }
check "$out/SUMMARY.md"
check "$out/dice.md"
check "$out/coordinator/state/rounds.jsonl"
[[ $(wc -l <"$out/coordinator/state/rounds.jsonl") -eq 2 ]] ||
  { echo "demo_smoke: rounds.jsonl should hold the 2 rounds of the smoke job" >&2; exit 1; }
for s in ankle knee shoulder; do
  check "$out/sites/$s/state/final/model.safetensors"
  check "$out/sites/$s/evaluation/federated/metrics.csv"
  check "$out/sites/$s/evaluation/individual/metrics.csv"
  # The site's key was made in its own folder and never copied to the coordinator's.
  if find "$out/coordinator" -name "site-$s.key" | grep -q .; then
    echo "demo_smoke: site-$s's private key is in the coordinator's folder" >&2; exit 1
  fi
done
check "$out/segmentation/knee-100_labels.nii.gz"
ls "$out"/segmentation/surfaces/*.stl >/dev/null
grep -q "site-shoulder" "$out/dice.md"
echo "demo_smoke: ok"

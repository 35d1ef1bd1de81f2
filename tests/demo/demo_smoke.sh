#!/usr/bin/env bash
# demo_smoke.sh SOURCE_DIR BUILD_DIR OUT_DIR — runs scripts/demo.sh at a smoke budget and checks
# that it made what SUMMARY.md promises.
set -euo pipefail
source_dir="$1" build_dir="$2" out="$3"
cd "$source_dir"
DEMO_ROUNDS=2 DEMO_STEPS=2 DEMO_PERSONAL_STEPS=2 DEMO_TEST_SUBJECTS=1 \
  scripts/demo.sh --build-dir "$build_dir" --out "$out"

die() { echo "demo_smoke: $*" >&2; exit 1; }
check() { [[ -s "$1" ]] || die "$1 is missing or empty"; }
check "$out/SUMMARY.md"
check "$out/dice.md"
check "$out/coordinator/state/rounds.jsonl"
[[ $(wc -l <"$out/coordinator/state/rounds.jsonl") -eq 2 ]] ||
  die "rounds.jsonl should hold the 2 rounds of the smoke job"
# Every round aggregated all four sites' updates.
[[ $(grep -c "finished with 4 update" "$out/logs/coordinator.log") -eq 2 ]] ||
  die "every round should finish with the updates of the four sites (logs/coordinator.log)"
declare -A joints=([north]="knee ankle" [east]="knee shoulder" [south]="ankle shoulder"
                   [scarce]="shoulder")
for s in north east south scarce; do
  check "$out/sites/$s/data/train/manifest.yaml"
  check "$out/sites/$s/data/test/manifest.yaml"
  check "$out/sites/$s/state/final/model.safetensors"
  check "$out/sites/$s/state/personalized/model.safetensors"
  check "$out/sites/$s/state/individual/model.safetensors"
  grep -q "personalized model in" "$out/logs/site-$s.log" || die "site-$s did not personalize"
  # The optimizer state stayed at the site between rounds.
  ls "$out/sites/$s/state/optimizer/"* >/dev/null 2>&1 || die "site-$s kept no optimizer state"
  for m in federated personalized individual; do
    check "$out/sites/$s/evaluation/$m/metrics.csv"
  done
  for j in ${joints[$s]}; do
    # The training manifest holds the joint, and the table has its row with five numbers.
    grep -q "joint: $j" "$out/sites/$s/data/train/manifest.yaml" ||
      die "site-$s's training manifest has no $j scans"
    grep -Eq "^\| site-$s \| $j \| 1 \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [-+][0-9.]+ \(" \
      "$out/dice.md" || die "dice.md has no row for site-$s $j"
  done
  # The site's key was made in its own folder and never copied to the coordinator's.
  if find "$out/coordinator" -name "site-$s.key" | grep -q .; then
    die "site-$s's private key is in the coordinator's folder"
  fi
  check "$out/sites/$s/pki/site-$s.key"
done
[[ $(grep -c "^| site-" "$out/dice.md") -gt 6 ]] || die "dice.md has no per-bone table"
check "$out/segmentation/scarce-shoulder-100_labels.nii.gz"
ls "$out"/segmentation/surfaces/*.stl >/dev/null
grep -q "sites/<site>/state/personalized" "$out/SUMMARY.md" || die "SUMMARY.md lists no personalized models"
echo "demo_smoke: ok"

#!/usr/bin/env bash
# scarce_site_quick.sh SOURCE_DIR BUILD_DIR OUT_DIR — `make scarce-site` at the --quick size (four
# real federations on loopback, personalization included), then checks every row and table that
# results.md promises. The numbers are meaningless at this size.
set -euo pipefail
source_dir="$1" build_dir="$2" out="$3"
rm -rf "$out"
/usr/bin/python3 "$source_dir/bench/experiments/scarce_site.py" --quick \
  --build-dir "$build_dir" --out "$out"

fail() { echo "scarce_site_quick: $*" >&2; exit 1; }
for f in results.md results.csv structures.csv scarce_dice.png; do
  [[ -s "$out/$f" ]] || fail "$out/$f is missing or empty"
done
[[ "$(head -c 8 "$out/scarce_dice.png" | od -An -tx1 | tr -d ' ')" == "89504e470d0a1a0a" ]] ||
  fail "scarce_dice.png is not a PNG"
# 1 fold x 1 seed x 5 schemes x 7 test subjects (north knee + ankle, east knee + shoulder, south
# ankle + shoulder, scarce shoulder; 1 each).
rows=$(($(wc -l <"$out/results.csv") - 1))
[[ "$rows" -eq 35 ]] || fail "results.csv has $rows rows, expected 35"
# Per bone: 1 unit x 5 schemes x (2 x (4 knee + 3 ankle) + 3 x 2 shoulder bones).
rows=$(($(wc -l <"$out/structures.csv") - 1))
[[ "$rows" -eq 100 ]] || fail "structures.csv has $rows rows, expected 100"
for heading in "## Mean Dice" "## The scarce site" "## Every site" "## Federated / pooled" \
  "## Dice per bone"; do
  grep -q "^$heading" "$out/results.md" || fail "results.md lacks '$heading'"
done
# Every site's personalized model exists, beside its final one.
for site in north east south scarce; do
  for run in "$out"/runs/fold0-seed1/recipe/sites/$site/state/{final,personalized}; do
    [[ -s "$run/model.safetensors" ]] || fail "$run/model.safetensors is missing"
  done
done
grep -q "fedjoint.personalized" "$out/runs/fold0-seed1/recipe/sites/scarce/state/personalized/model.safetensors" ||
  fail "the personalized model does not say how it was made"
echo "scarce_site_quick: ok"

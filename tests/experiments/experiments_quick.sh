#!/usr/bin/env bash
# experiments_quick.sh SOURCE_DIR BUILD_DIR OUT_DIR — `make experiments` at the --quick size, then
# checks that it made every table row and figure results.md promises.
set -euo pipefail
source_dir="$1" build_dir="$2" out="$3"
rm -rf "$out"
/usr/bin/python3 "$source_dir/bench/experiments/run_experiments.py" --quick \
  --build-dir "$build_dir" --out "$out"

fail() { echo "experiments_quick: $*" >&2; exit 1; }
for f in results.md results.csv dice_per_scheme.png scarcity.png dice_per_round.png; do
  [[ -s "$out/$f" ]] || fail "$out/$f is missing or empty"
done
for f in "$out"/*.png; do
  [[ "$(head -c 8 "$f" | od -An -tx1 | tr -d ' ')" == "89504e470d0a1a0a" ]] || fail "$f is not a PNG"
done
# Quick size: 2 subjects per site and 2 folds, so every subject is tested once per configuration:
# 14 configurations (individual, transfer, 4 schemes x central/FedAvg/FedBN) x 2 subjects x 9 bones
# (ankle 3, knee 4, shoulder 2); scarcity: 2 sizes x 2 settings x 1 held-out knee x 4 bones.
rows=$(($(wc -l <"$out/results.csv") - 1))
expected=$((14 * 2 * (3 + 4 + 2) + 2 * 2 * 4))
[[ "$rows" -eq "$expected" ]] || fail "results.csv has $rows rows, expected $expected"
for heading in "## Dice" "## HD95" "## ASSD" "## Paired Wilcoxon" "## Federated / centralized" \
               "## Scarcity" "## Validation Dice per round"; do
  grep -q "^$heading" "$out/results.md" || fail "results.md lacks '$heading'"
done
# Both Wilcoxon tables compare the full model with the 13 other configurations, on 6 subjects.
wilcoxon_rows=$(sed -n '/^## Paired Wilcoxon/,/^## Federated/p' "$out/results.md" |
  grep -c "^| .* | 6 | " || true)
[[ "$wilcoxon_rows" -eq 26 ]] || fail "results.md has $wilcoxon_rows Wilcoxon rows, expected 26"
echo "experiments_quick: ok"

#!/usr/bin/env bash
# The README's first command (`make demo`) runs this after building.
#
# The full demo — phantom data for three hospital sites, a consortium PKI, a coordinator and three
# site agents federating over mutual TLS, evaluation and segmentation — is built up issue by issue.
# Until every piece exists this script runs the end-to-end path that does exist, and says plainly
# what is still missing. It never pretends.
set -euo pipefail

build_dir=build
out_dir=demo-out
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build_dir="$2"; shift 2 ;;
    --out) out_dir="$2"; shift 2 ;;
    *) echo "demo: unknown option $1" >&2; exit 2 ;;
  esac
done

site="$build_dir/site_agent/fedjoint-site"
coordinator="$build_dir/coordinator/fedjoint-coordinator"
mkdir -p "$out_dir"
step() { printf '\n== %s\n' "$*"; }

has_command() {  # has_command BINARY SUBCOMMAND
  "$1" --help 2>/dev/null | grep -qE "^  $2( |$)"
}

missing=()
ran=()

step "Checking the configuration examples"
for f in configs/*.yaml; do
  [[ -e "$f" ]] || continue
  case "$f" in
    *coordinator*) bin="$coordinator" ;;
    *) bin="$site" ;;
  esac
  if has_command "$bin" check-config; then
    "$bin" check-config "$f"
    ran+=("check-config $f")
  fi
done

step "Generating phantom data for three sites"
if has_command "$site" phantoms; then
  "$site" phantoms --joint ankle --domain t1 --subjects 3 --seed 1 --out "$out_dir/data/ankle"
  "$site" phantoms --joint knee --domain pd --subjects 3 --seed 2 --out "$out_dir/data/knee"
  "$site" phantoms --joint shoulder --domain t2fs --subjects 3 --seed 3 --out "$out_dir/data/shoulder"
  ran+=("phantoms for ankle/t1, knee/pd, shoulder/t2fs in $out_dir/data")
  if has_command "$site" check-data; then
    for j in ankle knee shoulder; do "$site" check-data "$out_dir/data/$j/manifest.yaml"; done
    ran+=("check-data on each site's manifest")
  else
    missing+=("check-data (site manifest validation)")
  fi
else
  missing+=("phantoms (built-in data)")
fi

step "Consortium PKI"
if has_command "$coordinator" pki; then
  "$coordinator" pki init --out "$out_dir/pki" --force
  for j in ankle knee shoulder; do
    "$site" pki request --site "site-$j" --out "$out_dir/sites/$j/pki"
    "$coordinator" pki sign "$out_dir/sites/$j/pki/site-$j.csr" --pki "$out_dir/pki"
  done
  ran+=("PKI: consortium CA, coordinator certificate, three site certificates via CSRs")
else
  missing+=("PKI (pki init / request / sign)")
fi

for piece in "federated rounds (coordinator serve + site run)" \
             "evaluation table (federated vs individual Dice per bone)" \
             "segmentation of a held-out scan (segment)"; do
  missing+=("$piece")
done

step "Summary"
{
  echo "# fedjoint demo — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "## What ran"
  for r in "${ran[@]}"; do echo "- $r"; done
  echo
  echo "## Not built yet (see the open issues)"
  for m in "${missing[@]}"; do echo "- $m"; done
} > "$out_dir/SUMMARY.md"
cat "$out_dir/SUMMARY.md"
if [[ ${#missing[@]} -gt 0 ]]; then
  echo
  echo "demo: INCOMPLETE — ${#missing[@]} piece(s) of the federated demo do not exist yet (listed above)."
fi

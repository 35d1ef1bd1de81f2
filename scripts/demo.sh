#!/usr/bin/env bash
# The README's first command (`make demo`) runs this after building: a real federation of four
# hospital sites on loopback, as separate processes, over mutual TLS, on the built-in phantoms.
# The consortium is the one of `make scarce-site` (bench/experiments/consortium.py):
#
#   site-north   knee PD (6 labelled scans) + ankle T1 (4)
#   site-east    knee T2-FS (4) + shoulder PD-FS (4, stronger bias field)
#   site-south   ankle PD (3) + shoulder T2-FS (5), both noisier, 0.9 mm pixels, 3.5 mm slices
#   site-scarce  shoulder T2-FS (2 labelled), noisier, stronger bias field: the scarce site
#
#   1. phantom scans for the four sites (one manifest per site), plus held-out test scans
#   2. the consortium PKI with the real CSR flow (each site's key is made in its own folder)
#   3. coordinator + four `fedjoint-site run` agents: one segmentation phase with the federated
#      recipe (FedBN scopes, uniform weighting, one learning-rate schedule over the phase, AdamW
#      state kept at the site across rounds), then each site fine-tunes the final model on its
#      own scans (personalization); a live progress line
#   4. each site trains an individual model on its own scans alone (the baseline), with as many
#      steps as a federated site trains and personalizes in all
#   5. federated, personalized and individual models evaluated on each site's held-out scans:
#      a Dice table per site and joint
#   6. `fedjoint-site segment` on one held-out scan of the scarce site with its personalized
#      model: NIfTI labels and bone surfaces
#   7. $out/SUMMARY.md lists what was made and where
#
# Exits non-zero, naming the step, if any step fails; Ctrl-C stops every process it started.
# DEMO_ROUNDS, DEMO_STEPS, DEMO_PERSONAL_STEPS and DEMO_TEST_SUBJECTS change the budget
# (tests/demo runs it at a smoke size).
set -euo pipefail

build_dir=build
out=demo-out
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build_dir="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "demo: unknown option $1" >&2; exit 2 ;;
  esac
done

# Budget: meant to keep the whole demo near 10 minutes on 2 cores, and the same as `make
# scarce-site`'s (docs/results.md). 12 x 25 + 60 used 19 min of CPU time in all (19.5 min wall on
# 2 shared cores); 10 x 20 + 50 took 7 min 13 s on 2 idle cores (README).
rounds=${DEMO_ROUNDS:-10}                 # federated rounds
steps=${DEMO_STEPS:-20}                   # local steps per site per round
personal_steps=${DEMO_PERSONAL_STEPS:-50} # fine-tuning steps of the final model at each site
test_subjects=${DEMO_TEST_SUBJECTS:-3}    # held-out scans per site and joint
for v in rounds steps personal_steps test_subjects; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "demo: $v must be a positive integer, got '${!v}'" >&2; exit 2; }
done
# The most compute any federated site spends: its rounds, then its personalization.
individual_steps=$((rounds * steps + personal_steps))
warmup_steps=20
if (( warmup_steps > rounds * steps / 4 )); then warmup_steps=$((rounds * steps / 4)); fi

site_bin="$(realpath "$build_dir/site_agent/fedjoint-site")"
coord_bin="$(realpath "$build_dir/coordinator/fedjoint-coordinator")"
for b in "$site_bin" "$coord_bin"; do
  [[ -x "$b" ]] || { echo "demo: $b is missing; run 'make demo' (it builds first)" >&2; exit 1; }
done
python=/usr/bin/python3
[[ -x "$python" ]] || python=python3
"$python" -c 'import yaml' 2>/dev/null ||
  { echo "demo: $python has no yaml module; run scripts/install-deps.sh (python3-yaml)" >&2; exit 1; }
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
script_dir="$(cd "$(dirname "$0")" && pwd)"

# A previous demo's folder is replaced only if a demo made it.
if [[ -e "$out" ]]; then
  if [[ -f "$out/.fedjoint-demo" ]]; then
    rm -rf "$out"
  else
    echo "demo: $out exists and was not made by the demo; choose another --out" >&2
    exit 1
  fi
fi
mkdir -p "$out/logs"
touch "$out/.fedjoint-demo"
out="$(realpath "$out")"
started=$(date +%s)

pids=()
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  exit "$status"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted; stopping every process it started" >&2; exit 130' INT TERM

current_step=""
step() { current_step="$*"; printf '\n== %s\n' "$*"; }
fail() { echo "demo: FAILED at step '$current_step': $*" >&2; exit 1; }
elapsed() { local s=$(( $(date +%s) - started )); printf '%dm%02ds' $((s / 60)) $((s % 60)); }
# run LOG CMD...: runs a command with its output in LOG; on failure shows the log's tail.
run() {
  local log="$1"; shift
  if ! "$@" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    fail "$(basename "$1") ${2:-} failed (log: $log)"
  fi
}

sites=(north east south scarce)
# parallel_sites WHAT LOG_NAME FUNCTION: runs `FUNCTION SITE` for every site at once, each with
# its output in logs/LOG_NAME-SITE.log; a failure shows that log's tail and stops the demo.
parallel_sites() {
  local what="$1" log_name="$2" fn="$3" s
  declare -A job
  for s in "${sites[@]}"; do
    ("$fn" "$s") >"$out/logs/$log_name-$s.log" 2>&1 &
    job[$s]=$!
    pids+=("${job[$s]}")
  done
  for s in "${sites[@]}"; do
    if ! wait "${job[$s]}"; then
      tail -n 20 "$out/logs/$log_name-$s.log" >&2
      fail "$what at site-$s failed (log: $out/logs/$log_name-$s.log)"
    fi
  done
}

# Each site's datasets, one a line: joint, MR contrast, labelled training scans, phantom seed,
# further `phantoms` options (acquisition: noise, bias field, pixel size, slice thickness).
low_field="--noise-scale 1.6 --pixel-mm 0.9 --slice-thickness 3.5"
declare -A datasets=(
  [north]="knee pd 6 21
ankle t1 4 22"
  [east]="knee t2fs 4 31
shoulder pdfs 4 32 --bias-scale 1.5"
  [south]="ankle pd 3 41 $low_field
shoulder t2fs 5 42 $low_field"
  [scarce]="shoulder t2fs 2 51 --noise-scale 1.7 --bias-scale 1.5"
)
declare -A seed=([north]=21 [east]=31 [south]=41 [scarce]=51)   # training seed of each site
declare -A structures=([ankle]="calcaneus, talus, tibia" [knee]="femur, tibia, patella, fibula"
                       [shoulder]="humerus, scapula")
# site_joints SITE: the site's joints, one a line.
site_joints() { while read -r joint _; do echo "$joint"; done <<<"${datasets[$1]}"; }

# merge_manifests OUT.yaml DIR...: one manifest from the `phantoms` folders DIR (each with its
# manifest.yaml): subject ids name their joint, paths are relative to OUT's folder.
merge_manifests() {
  "$python" - "$@" <<'EOF'
import os, sys, yaml
out, folders = sys.argv[1], sys.argv[2:]
base = os.path.dirname(os.path.abspath(out))
subjects, labels, seen = [], {}, set()
for folder in folders:
    path = os.path.join(folder, "manifest.yaml")
    with open(path) as f:
        m = yaml.safe_load(f)
    for s in m["subjects"]:
        s = dict(s)
        # Two joints' phantom sets of one site may number their subjects alike.
        if not str(s["id"]).startswith(s["joint"] + "-"):
            s["id"] = f"{s['joint']}-{s['id']}"
        if s["id"] in seen:
            sys.exit(f"merge_manifests: subject id {s['id']} twice ({path})")
        seen.add(s["id"])
        for key in ("image", "label"):
            if key in s:
                p = s[key] if os.path.isabs(s[key]) else os.path.join(os.path.abspath(folder), s[key])
                s[key] = os.path.relpath(p, base)
        subjects.append(s)
    for joint, names in m["labels"].items():
        if labels.setdefault(joint, names) != names:
            sys.exit(f"merge_manifests: {path}: labels of {joint} differ from another set's")
os.makedirs(base, exist_ok=True)
with open(out + ".tmp", "w") as f:
    f.write("# fedjoint site manifest: " + ", ".join(folders) + "\n")
    yaml.safe_dump({"subjects": subjects, "labels": labels}, f, sort_keys=False)
os.replace(out + ".tmp", out)
print(f"{out}: {len(subjects)} subjects, joints {', '.join(labels)}")
EOF
}

step "1/7 Phantom scans for four sites"
# One generator process per site (each is single-threaded), in parallel; each set of a site goes
# to data/<joint>-{train,test}/, the site's manifests (both joints) to data/{train,test}/.
make_site_data() {
  local s="$1" joint domain n phantom_seed args data="$out/sites/$1/data"
  local train_sets=() test_sets=()
  while read -r joint domain n phantom_seed args; do
    # shellcheck disable=SC2086  # $args: several options
    "$site_bin" phantoms --joint "$joint" --domain "$domain" --subjects "$n" \
      --seed "$phantom_seed" $args --out "$data/$joint-train"
    # shellcheck disable=SC2086
    "$site_bin" phantoms --joint "$joint" --domain "$domain" --subjects "$test_subjects" \
      --first-index 100 --seed "$phantom_seed" $args --out "$data/$joint-test"
    train_sets+=("$data/$joint-train")
    test_sets+=("$data/$joint-test")
  done <<<"${datasets[$s]}"
  merge_manifests "$data/train/manifest.yaml" "${train_sets[@]}"
  merge_manifests "$data/test/manifest.yaml" "${test_sets[@]}"
  "$site_bin" check-data "$data/train/manifest.yaml"
}
parallel_sites "phantoms, manifests or check-data" phantoms make_site_data
data_seconds=$(( $(date +%s) - started ))
for s in "${sites[@]}"; do
  desc=""
  while read -r joint domain n _ args; do
    desc+="${desc:+ + }$joint/$domain $n labelled${args:+ ($args)}"
  done <<<"${datasets[$s]}"
  echo "site-$s: $desc; $test_subjects held out per joint"
done

step "2/7 Consortium PKI (CSR flow: site keys never leave the site folders)"
run "$out/logs/pki-init.log" "$coord_bin" pki init --out "$out/coordinator/pki" \
  --host localhost --ip 127.0.0.1
for s in "${sites[@]}"; do
  pki="$out/sites/$s/pki"
  run "$out/logs/pki-request-$s.log" "$site_bin" pki request --site "site-$s" --out "$pki"
  # The operator receives only the CSR, and sends back the certificate and the CA certificate.
  run "$out/logs/pki-sign-$s.log" "$coord_bin" pki sign "$pki/site-$s.csr" \
    --pki "$out/coordinator/pki"
  cp "$out/coordinator/pki/issued/site-$s.crt" "$pki/site-$s.crt"
  cp "$out/coordinator/pki/ca.crt" "$pki/ca.crt"
  echo "site-$s: certificate issued"
done

port=$("$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# segmentation_model_yaml INDENT JOINT...: the segmentation network's `model` section (the CPU
# default of docs/methods.md), the same for the federation and the individual baselines.
# 1.25 mm pixels x 128 covers the phantoms' whole field of view, so the network trains on the
# framing `segment` and `evaluate` show it (docs/methods.md).
segmentation_model_yaml() {
  local indent="$1" j
  shift
  printf '%s%s\n' "$indent" "architecture: unet_resnet" "$indent" "encoder_depth: 18" \
    "$indent" "width_multiplier: 0.25" "$indent" "input_size: 128" \
    "$indent" "in_plane_spacing_mm: 1.25" "$indent" "variant: domain" "$indent" "joints:"
  for j in "$@"; do
    printf '%s  - name: %s\n%s    structures: [%s]\n' "$indent" "$j" "$indent" "${structures[$j]}"
  done
}
optimizer_yaml="{name: adamw, learning_rate: 0.005, schedule: cosine, warmup_steps: $warmup_steps, grad_clip_norm: 1.0"

cat >"$out/coordinator/coordinator.yaml" <<EOF
listen: "127.0.0.1:$port"
state_dir: state
tls:
  ca_cert: pki/ca.crt
  server_cert: pki/server.crt
  server_key: pki/server.key
  crl: pki/crl.pem
signing_key: pki/signing.key
job:
  id: fedjoint-demo
  min_sites: 4
  min_updates: 4
  round_deadline_s: 600
  phases:
    - name: segmentation
      rounds: $rounds
      model:
$(segmentation_model_yaml "        " ankle knee shoulder)
      # Normalization stays at each site (FedBN), output heads are averaged among the sites that
      # hold the joint, everything else over all four.
      scopes:
        - {pattern: '*.norms.*', scope: site}
        - {pattern: 'heads.*', scope: domain}
        - {pattern: '*', scope: global}
      # Every site moves the shared network as much: the scarce site's two scans count as much
      # as north's ten.
      weighting: uniform
      local:
        steps: $steps
        batch_size: 8
        validation_fraction: 0
        # One warm-up and one cosine decay over the whole phase (rounds x steps), and each
        # site's AdamW moments kept at the site from round to round (they never leave it).
        optimizer: $optimizer_yaml,
                    federated_schedule: phase, keep_state_across_rounds: true}
        loss: {contrastive_weight: 0, shape_prior_weight: 0}
logging: {level: info}
EOF
run "$out/logs/check-config-coordinator.log" "$coord_bin" check-config "$out/coordinator/coordinator.yaml"

for s in "${sites[@]}"; do
  mapfile -t joints < <(site_joints "$s")
  cat >"$out/sites/$s/site.yaml" <<EOF
name: site-$s
coordinator: "localhost:$port"
tls:
  ca_cert: pki/ca.crt
  cert: pki/site-$s.crt
  key: pki/site-$s.key
state_dir: state
manifest: data/train/manifest.yaml
threads: 1          # four sites share the demo machine's cores
loader_threads: 1
seed: ${seed[$s]}
training:
  validation_fraction: 0
# After the job: the final model fine-tuned on this site's scans (decoder, heads and
# normalization; the encoder stays as the federation left it) into state/personalized.
personalization: {steps: $personal_steps, learning_rate: 0.001, parameters: decoder}
EOF
  # The individual baseline: the same network for this site's joints, its data alone.
  cat >"$out/sites/$s/individual.yaml" <<EOF
name: site-$s
state_dir: state
manifest: data/train/manifest.yaml
threads: 1          # the four baselines train side by side, like the federation
loader_threads: 1
seed: ${seed[$s]}
model:
$(segmentation_model_yaml "  " "${joints[@]}")
training:
  steps: $individual_steps
  batch_size: 8
  validation_fraction: 0
  optimizer: $optimizer_yaml}
  loss: {contrastive_weight: 0, shape_prior_weight: 0}
EOF
  run "$out/logs/check-config-$s.log" "$site_bin" check-config "$out/sites/$s/site.yaml"
  run "$out/logs/check-config-individual-$s.log" "$site_bin" check-config "$out/sites/$s/individual.yaml"
done

step "3/7 Federation: coordinator and four site agents over mutual TLS on 127.0.0.1:$port"
echo "segmentation: $rounds rounds x $steps steps per site, then $personal_steps personalization steps at each site"
(cd "$out/coordinator" && exec "$coord_bin" serve --config coordinator.yaml) \
  >"$out/logs/coordinator.log" 2>&1 &
coord_pid=$!
pids+=("$coord_pid")
# Sites start once the coordinator listens (they would retry with backoff anyway, only slower).
for _ in $(seq 1 100); do
  grep -q "listening on" "$out/logs/coordinator.log" 2>/dev/null && break
  kill -0 "$coord_pid" 2>/dev/null || break
  sleep 0.2
done
declare -A site_pid
for s in "${sites[@]}"; do
  (cd "$out/sites/$s" && exec "$site_bin" run --config site.yaml) >"$out/logs/site-$s.log" 2>&1 &
  site_pid[$s]=$!
  pids+=("${site_pid[$s]}")
done

fed_started=$(date +%s)
last_line=""
while true; do
  running=0
  for s in "${sites[@]}"; do
    if kill -0 "${site_pid[$s]}" 2>/dev/null; then running=$((running + 1)); fi
  done
  if ! kill -0 "$coord_pid" 2>/dev/null; then
    wait "$coord_pid" || { tail -n 20 "$out/logs/coordinator.log" >&2; fail "the coordinator stopped (log: $out/logs/coordinator.log)"; }
  fi
  finished=$(grep -c "finished with" "$out/logs/coordinator.log" || true)
  now=$(date +%s)
  eta="?"
  if [[ "$finished" -gt 0 && "$finished" -lt "$rounds" ]]; then
    per_round=$(( (now - fed_started) / finished ))
    left=$(( per_round * (rounds - finished) ))
    eta="$((left / 60))m$(printf '%02d' $((left % 60)))s + personalization"
  elif [[ "$finished" -ge "$rounds" ]]; then
    eta="personalizing"
  fi
  # Per site: its last loss (of a round, or of personalization), "P" while personalizing, "done".
  status=""
  for s in "${sites[@]}"; do
    log="$out/logs/site-$s.log"
    l=$(grep -o "loss [0-9.]*" "$log" 2>/dev/null | tail -n 1 | cut -d' ' -f2 || true)
    if grep -q "personalized model in" "$log" 2>/dev/null; then state=" done"
    elif grep -q "job finished" "$log" 2>/dev/null; then state=" P"
    else state=""; fi
    status+=" $s ${l:--}$state"
  done
  line="[$(elapsed)] round $finished/$rounds finished · $running/4 sites running · loss:$status · ETA $eta"
  if [[ "$line" != "$last_line" ]]; then echo "$line"; last_line="$line"; fi
  [[ "$running" -eq 0 ]] && break
  sleep 5
done
for s in "${sites[@]}"; do
  if ! wait "${site_pid[$s]}"; then
    tail -n 20 "$out/logs/site-$s.log" >&2
    fail "site-$s stopped with an error (log: $out/logs/site-$s.log)"
  fi
  for m in final personalized; do
    [[ -s "$out/sites/$s/state/$m/model.safetensors" ]] ||
      fail "site-$s made no $m model (log: $out/logs/site-$s.log)"
  done
done
kill "$coord_pid" 2>/dev/null || true
wait "$coord_pid" 2>/dev/null || true
fed_seconds=$(( $(date +%s) - fed_started ))
echo "federation and personalization done in ${fed_seconds}s: each site's federated model (global weights + its own normalization) is in sites/<site>/state/final, its personalized one in sites/<site>/state/personalized"
"$coord_bin" status --state "$out/coordinator/state" >"$out/coordinator/status.txt" 2>&1 || true

step "4/7 Individual baselines: each site alone, $individual_steps steps ($rounds x $steps + $personal_steps)"
# The four sites train at the same time with one thread each, as they did in the federation.
ind_started=$(date +%s)
train_individual() {
  cd "$out/sites/$1" && exec "$site_bin" train --config individual.yaml --out state/individual --quiet
}
parallel_sites "individual training" train-individual train_individual
ind_seconds=$(( $(date +%s) - ind_started ))
echo "four individual models trained in ${ind_seconds}s"

step "5/7 Evaluation on each site's held-out scans"
eval_started=$(date +%s)
# Per site: the three models one after the other; the four sites at once, one thread each.
evaluate_site() {
  local s="$1" dir="$out/sites/$1"
  "$site_bin" evaluate --model "$dir/state/final" --manifest "$dir/data/test/manifest.yaml" \
    --out "$dir/evaluation/federated" --save-predictions --threads 1 &&
    "$site_bin" evaluate --model "$dir/state/personalized" \
      --manifest "$dir/data/test/manifest.yaml" --out "$dir/evaluation/personalized" \
      --save-predictions --threads 1 &&
    "$site_bin" evaluate --model "$dir/state/individual/model.safetensors" \
      --manifest "$dir/data/test/manifest.yaml" --out "$dir/evaluation/individual" --threads 1
}
parallel_sites "evaluation" evaluate "evaluate_site"
eval_seconds=$(( $(date +%s) - eval_started ))
table_args=()
for s in "${sites[@]}"; do
  e="$out/sites/$s/evaluation"
  table_args+=("site-$s=$e/federated/metrics.csv,$e/personalized/metrics.csv,$e/individual/metrics.csv")
done
"$python" "$script_dir/demo_table.py" "$out/dice.md" "${table_args[@]}" ||
  fail "could not make the Dice table"

step "6/7 Segmenting a held-out scan of the scarce site with its personalized model"
scan="$out/sites/scarce/data/shoulder-test/subject-100_image.nii.gz"
# The personalized model is this site's own fine-tune of the signed global model: no consortium
# signature covers its weights, so `segment` takes it only with --allow-unsigned, and checks the
# signature of the global model it started from (beside it in state/personalized/).
run "$out/logs/segment.log" "$site_bin" segment \
  --model "$out/sites/scarce/state/personalized" --allow-unsigned \
  --config "$out/sites/scarce/site.yaml" --joint shoulder --input "$scan" \
  --output "$out/segmentation/scarce-shoulder-100_labels.nii.gz" \
  --surfaces "$out/segmentation/surfaces"
ls "$out/segmentation/surfaces"

step "7/7 Summary"
total=$(elapsed)
{
  echo "# fedjoint demo — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "Wall time $total on $(nproc) cores: phantoms ${data_seconds}s, federation and personalization ${fed_seconds}s," \
    "individual baselines ${ind_seconds}s, evaluation ${eval_seconds}s."
  echo "Budget: $rounds rounds x $steps local steps per site, $personal_steps personalization" \
    "steps; each individual baseline $individual_steps steps; $test_subjects held-out scans per" \
    "site and joint."
  echo
  echo "## Dice on held-out scans"
  echo
  cat "$out/dice.md"
  echo
  echo "## What is where"
  echo
  echo "| path | what |"
  echo "| --- | --- |"
  echo "| sites/<site>/data/<joint>-train, <joint>-test | phantom scans (NIfTI) of one joint, with the generator's manifest |"
  echo "| sites/<site>/data/train, data/test | the site's manifests (all its joints): what it trains on, what it is tested on |"
  echo "| coordinator/pki | consortium CA, coordinator TLS and model-signing certificates, issued site certificates, CRL |"
  echo "| sites/<site>/pki | the site's private key (made there), its certificate and the CA certificate |"
  echo "| coordinator/coordinator.yaml, sites/<site>/site.yaml | the configurations the federation ran with |"
  echo "| sites/<site>/individual.yaml | the individual baseline's configuration |"
  echo "| coordinator/state | signed global model of every round (rounds/NNNN), rounds.jsonl, state.json |"
  echo "| coordinator/status.txt | \`fedjoint-coordinator status\` at the end |"
  echo "| sites/<site>/state/final | the site's federated model: global weights + its own normalization |"
  echo "| sites/<site>/state/personalized | the federated model fine-tuned on the site's own scans (and the signed global model it started from) |"
  echo "| sites/<site>/state/optimizer | the site's AdamW state between rounds (never sent) |"
  echo "| sites/<site>/state/individual | the individual baseline's run (model.safetensors, metrics.jsonl) |"
  echo "| sites/<site>/evaluation/{federated,personalized,individual} | per-subject Dice, HD95, ASSD (metrics.csv, metrics.md); predictions of the first two |"
  echo "| dice.md | the Dice tables above |"
  echo "| segmentation/ | labels of one held-out shoulder scan of site-scarce and one surface mesh per bone |"
  echo "| logs/ | every process's log |"
} >"$out/SUMMARY.md"
cat "$out/SUMMARY.md"
echo
echo "demo: done in $total; everything is in $out"

#!/usr/bin/env bash
# The README's first command (`make demo`) runs this after building: a real federation of three
# hospital sites on loopback, as separate processes, over mutual TLS, on the built-in phantoms.
#
#   1. phantom scans for three sites (ankle/T1, knee/PD, shoulder/T2-FS), plus held-out test scans
#   2. the consortium PKI with the real CSR flow (each site's key is made in its own folder)
#   3. coordinator + three `fedjoint-site run` agents: a shape-prior phase, then segmentation with
#      the contrastive and shape-prior losses, with a live progress line
#   4. each site trains an individual model with the same number of local steps (the baseline)
#   5. both models evaluated on each site's held-out scans: a Dice table per bone per site
#   6. `fedjoint-site segment` on one held-out scan: NIfTI labels and bone surfaces
#   7. $out/SUMMARY.md lists what was made and where
#
# Exits non-zero, naming the step, if any step fails; Ctrl-C stops every process it started.
# DEMO_ROUNDS, DEMO_STEPS, DEMO_PRIOR_ROUNDS, DEMO_PRIOR_STEPS and DEMO_TEST_SUBJECTS change the
# budget (tests/demo runs it at a smoke size).
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

# Budget: chosen so that the whole demo takes about 10 minutes on 2 cores (README). Many short
# rounds rather than few long ones: sites drift apart less between averagings (16 x 38 steps gave
# a mean Dice 0.83 / 0.78 / 0.44 on ankle / knee / shoulder, 8 x 75 steps 0.73 / 0.52 / 0.35, in
# the same wall time; docs/methods.md).
rounds=${DEMO_ROUNDS:-16}           # segmentation rounds
steps=${DEMO_STEPS:-38}             # local steps per site per segmentation round
prior_rounds=${DEMO_PRIOR_ROUNDS:-1}
prior_steps=${DEMO_PRIOR_STEPS:-30}
test_subjects=${DEMO_TEST_SUBJECTS:-3}   # held-out scans per site
individual_steps=$((rounds * steps))

site_bin="$(realpath "$build_dir/site_agent/fedjoint-site")"
coord_bin="$(realpath "$build_dir/coordinator/fedjoint-coordinator")"
for b in "$site_bin" "$coord_bin"; do
  [[ -x "$b" ]] || { echo "demo: $b is missing; run 'make demo' (it builds first)" >&2; exit 1; }
done
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

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

sites=(ankle knee shoulder)
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

declare -A domain=([ankle]=t1 [knee]=pd [shoulder]=t2fs)
declare -A labelled=([ankle]=4 [knee]=4 [shoulder]=2)   # shoulder: the scarce site
declare -A seed=([ankle]=11 [knee]=12 [shoulder]=13)
declare -A structures=([ankle]="calcaneus, talus, tibia" [knee]="femur, tibia, patella, fibula"
                       [shoulder]="humerus, scapula")

step "1/7 Phantom scans for three sites"
# One generator process per site (each is single-threaded), in parallel.
make_site_data() {
  local s="$1"
  "$site_bin" phantoms --joint "$s" --domain "${domain[$s]}" --subjects "${labelled[$s]}" \
    --seed "${seed[$s]}" --out "$out/sites/$s/data/train" &&
    "$site_bin" phantoms --joint "$s" --domain "${domain[$s]}" --subjects "$test_subjects" \
      --first-index 100 --seed "${seed[$s]}" --out "$out/sites/$s/data/test" &&
    "$site_bin" check-data "$out/sites/$s/data/train/manifest.yaml"
}
parallel_sites "phantoms or check-data" phantoms make_site_data
for s in "${sites[@]}"; do
  echo "site-$s: ${labelled[$s]} labelled ${domain[$s]} scans for training, $test_subjects held out"
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

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# The model every phase and every individual run uses (docs/methods.md: the CPU default).
joints_yaml() {
  local indent="$1"
  shift
  for s in "$@"; do
    printf '%s- name: %s\n%s  structures: [%s]\n' "$indent" "$s" "$indent" "${structures[$s]}"
  done
}

# segmentation_model_yaml INDENT SITE...: the segmentation network's `model` section (the CPU
# default of docs/methods.md), the same for the federation and the individual baselines.
# 1.25 mm pixels x 128 covers the phantoms' whole 130-150 mm field of view, so the network trains
# on the framing `segment` and `evaluate` show it (at 1 mm it trained on a 128 mm centre crop and
# Dice on whole scans fell well below validation Dice; docs/methods.md).
segmentation_model_yaml() {
  local indent="$1"
  shift
  printf '%s%s\n' "$indent" "architecture: unet_resnet" "$indent" "encoder_depth: 18" \
    "$indent" "width_multiplier: 0.25" "$indent" "input_size: 128" \
    "$indent" "in_plane_spacing_mm: 1.25" "$indent" "variant: domain" "$indent" "joints:"
  joints_yaml "$indent  " "$@"
}

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
  min_sites: 3
  min_updates: 3
  round_deadline_s: 600
  phases:
    - name: shape_prior
      rounds: $prior_rounds
      model:
        architecture: shape_autoencoder
        input_size: 128
        in_plane_spacing_mm: 1.25
        joints:
$(joints_yaml "          " "${sites[@]}")
      local:
        steps: $prior_steps
        batch_size: 8
        optimizer: {name: adamw, learning_rate: 0.002}
    - name: segmentation
      rounds: $rounds
      model:
$(segmentation_model_yaml "        " "${sites[@]}")
      local:
        steps: $steps
        batch_size: 8
        validation_fraction: 0
        # The individual runs' rate, with a warm-up each round: a fresh Adam moves every weight
        # by ~lr per step at first, and sites that drift apart average into a worse model.
        optimizer: {name: adamw, learning_rate: ${FED_LR:-0.005}, schedule: cosine, warmup_steps: 10,
                    grad_clip_norm: 1.0}
        loss:
          contrastive_weight: 0.1
          contrastive_temperature: 0.1
          shape_prior_weight: 0.01
logging: {level: info}
EOF
run "$out/logs/check-config-coordinator.log" "$coord_bin" check-config "$out/coordinator/coordinator.yaml"

for s in "${sites[@]}"; do
  cat >"$out/sites/$s/site.yaml" <<EOF
name: site-$s
coordinator: "localhost:$port"
tls:
  ca_cert: pki/ca.crt
  cert: pki/site-$s.crt
  key: pki/site-$s.key
state_dir: state
manifest: data/train/manifest.yaml
threads: 1          # three sites share the demo machine's cores
loader_threads: 1
seed: ${seed[$s]}
training:
  validation_fraction: 0
EOF
  # The individual baseline: the same network, this site's data alone, the same local steps.
  cat >"$out/sites/$s/individual.yaml" <<EOF
name: site-$s
state_dir: state
manifest: data/train/manifest.yaml
threads: 1          # the three baselines train side by side, like the federation
loader_threads: 1
seed: ${seed[$s]}
model:
$(segmentation_model_yaml "  " "$s")
training:
  steps: $individual_steps
  batch_size: 8
  validation_fraction: 0
  optimizer: {name: adamw, learning_rate: ${IND_LR:-0.005}, schedule: cosine, grad_clip_norm: 1.0}
  loss: {contrastive_weight: 0, shape_prior_weight: 0}
EOF
  run "$out/logs/check-config-$s.log" "$site_bin" check-config "$out/sites/$s/site.yaml"
done

step "3/7 Federation: coordinator and three site agents over mutual TLS on 127.0.0.1:$port"
echo "phases: shape_prior ($prior_rounds rounds x $prior_steps steps), segmentation ($rounds rounds x $steps steps per site)"
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

total_rounds=$((prior_rounds + rounds))
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
  if [[ "$finished" -gt 0 ]]; then
    per_round=$(( (now - fed_started) / finished ))
    eta="$(( per_round * (total_rounds - finished) / 60 ))m$(printf '%02d' $(( per_round * (total_rounds - finished) % 60 )))s"
  fi
  losses=""
  for s in "${sites[@]}"; do
    l=$(grep -o "loss [0-9.]*" "$out/logs/site-$s.log" 2>/dev/null | tail -n 1 | cut -d' ' -f2 || true)
    losses+=" $s ${l:--}"
  done
  line="[$(elapsed)] round $finished/$total_rounds finished · $running/3 sites running · loss:$losses · ETA $eta"
  if [[ "$line" != "$last_line" ]]; then echo "$line"; last_line="$line"; fi
  [[ "$running" -eq 0 ]] && break
  sleep 5
done
for s in "${sites[@]}"; do
  if ! wait "${site_pid[$s]}"; then
    tail -n 20 "$out/logs/site-$s.log" >&2
    fail "site-$s stopped with an error (log: $out/logs/site-$s.log)"
  fi
done
kill "$coord_pid" 2>/dev/null || true
wait "$coord_pid" 2>/dev/null || true
fed_seconds=$(( $(date +%s) - fed_started ))
echo "federation done in ${fed_seconds}s; each site's final model (global weights + its own normalization) is in sites/<site>/state/final"
"$coord_bin" status --state "$out/coordinator/state" >"$out/coordinator/status.txt" 2>&1 || true

step "4/7 Individual baselines: each site alone, $individual_steps steps (the same local budget)"
# The three sites train at the same time with one thread each, as they did in the federation.
ind_started=$(date +%s)
train_individual() {
  cd "$out/sites/$1" && exec "$site_bin" train --config individual.yaml --out state/individual --quiet
}
parallel_sites "individual training" train-individual train_individual
echo "three individual models trained ($(elapsed))"
ind_seconds=$(( $(date +%s) - ind_started ))

step "5/7 Evaluation on each site's held-out scans"
table_args=()
for s in "${sites[@]}"; do
  dir="$out/sites/$s"
  run "$out/logs/evaluate-federated-$s.log" "$site_bin" evaluate --model "$dir/state/final" \
    --manifest "$dir/data/test/manifest.yaml" --out "$dir/evaluation/federated" --save-predictions
  run "$out/logs/evaluate-individual-$s.log" "$site_bin" evaluate \
    --model "$dir/state/individual/model.safetensors" \
    --manifest "$dir/data/test/manifest.yaml" --out "$dir/evaluation/individual"
  table_args+=("site-$s=$dir/evaluation/federated/metrics.csv,$dir/evaluation/individual/metrics.csv")
done
python3 "$(dirname "$0")/demo_table.py" "$out/dice.md" "${table_args[@]}" ||
  fail "could not make the Dice table"

step "6/7 Segmenting a held-out knee scan with the federated model"
scan="$out/sites/knee/data/test/subject-100_image.nii.gz"
run "$out/logs/segment.log" "$site_bin" segment --model "$out/sites/knee/state/final" \
  --config "$out/sites/knee/site.yaml" --joint knee --input "$scan" \
  --output "$out/segmentation/knee-100_labels.nii.gz" --surfaces "$out/segmentation/surfaces"
ls "$out/segmentation/surfaces"

step "7/7 Summary"
total=$(elapsed)
{
  echo "# fedjoint demo — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "Wall time $total on $(nproc) cores: federation ${fed_seconds}s, individual baselines ${ind_seconds}s."
  echo
  echo "## Dice on held-out scans (federated vs individual, same local steps)"
  echo
  cat "$out/dice.md"
  echo
  echo "## What is where"
  echo
  echo "| path | what |"
  echo "| --- | --- |"
  echo "| sites/<site>/data/train, data/test | phantom scans (NIfTI) and manifests |"
  echo "| coordinator/pki | consortium CA, coordinator TLS and model-signing certificates, issued site certificates, CRL |"
  echo "| sites/<site>/pki | the site's private key (made there), its certificate and the CA certificate |"
  echo "| coordinator/coordinator.yaml, sites/<site>/site.yaml | the configurations the processes ran with |"
  echo "| coordinator/state | signed global model of every round (rounds/NNNN), rounds.jsonl, state.json |"
  echo "| coordinator/status.txt | \`fedjoint-coordinator status\` at the end |"
  echo "| sites/<site>/state/final | the site's federated model: global weights + its own normalization |"
  echo "| sites/<site>/state/individual | the individual baseline's run (model.safetensors, metrics.jsonl) |"
  echo "| sites/<site>/evaluation/{federated,individual} | per-subject Dice, HD95, ASSD (metrics.csv, metrics.md) |"
  echo "| segmentation/ | labels of one held-out knee scan and one surface mesh per bone |"
  echo "| logs/ | every process's log |"
} >"$out/SUMMARY.md"
cat "$out/SUMMARY.md"
echo
echo "demo: done in $total; everything is in $out"

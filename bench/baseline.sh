#!/usr/bin/env bash
# The BASELINE: the stack's deployment done by hand, the way its users do it today, as one plain
# script. On every node in turn: copy the wheels (the hosts have no route to the registries) and
# `pip install` them offline, copy the weights; then `ray start` the head and the workers and run
# the vLLM OpenAI server on the head. Same wheelhouse, same Ray flags and environment, same vLLM
# flags as the stack's dev config (stack/ray_units.py, stack/vllm_unit.py); the bench
# checks that with `baseline.sh commands` before it runs the baseline.
#
#   bench/baseline.sh provision   packages and weights only
#   bench/baseline.sh up          provision, then Ray and vLLM; returns once /health answers
#   bench/baseline.sh down        stop what `up` started (process groups from pid files on the hosts)
#   bench/baseline.sh commands    print the Ray and vLLM command lines it runs, start nothing
#
# Inputs (environment):
#   BASELINE_HOSTS         cluster addresses, the head first ("10.201.0.11 10.201.0.12")
#   BASELINE_SSH_KEY       the SSH key for every host
#   BASELINE_SSH_USER      who logs in (root, or a user with password-less sudo: rvs on lab hosts)
#   BASELINE_WHEELHOUSE    folder with requirements.lock and the wheels
#   BASELINE_PLUGIN_WHEELS our own wheels in it (relative paths, installed --no-deps), may be empty
#   BASELINE_MODEL         folder with the model's weights
#   BASELINE_SERVED_NAME   the model's name in the API (tiny-qwen2)
#   BASELINE_API_KEY, BASELINE_RAY_TOKEN
# Prints `BENCH <phase> <host or all> <seconds>` for each phase it times.
set -euo pipefail

read -r -a HOSTS <<<"${BASELINE_HOSTS:?addresses of the hosts, the head first}"
HEAD=${HOSTS[0]}
SERVED_NAME=${BASELINE_SERVED_NAME:-tiny-qwen2}
ROOT=/opt/baseline
WHEELS=$ROOT/wheels
VENV=$ROOT/venv
MODEL_DIR=$ROOT/models/$SERVED_NAME
RUN_DIR=/run/baseline
TOKEN_FILE=/etc/baseline/ray_token
RAY_TEMP=/var/lib/baseline/ray
INTERFACE=eth0 # the interface holding the cluster address on every lab host
API_PORT=8000
READY_TIMEOUT=600

SSH=(ssh -i "${BASELINE_SSH_KEY:-.lab/ssh/id_ed25519}" -o BatchMode=yes -o StrictHostKeyChecking=no
  -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=10)

now() { date +%s.%N; }
report() { awk -v phase="$1" -v where="$2" -v start="$3" -v end="$(now)" \
  'BEGIN { printf "BENCH %s %s %.2f\n", phase, where, end - start }'; }
SSH_USER=${BASELINE_SSH_USER:-root}
# Runs the script as root on the host: directly, or through sudo when logged in as another user.
on() {
  local host=$1; shift
  if [ "$SSH_USER" = root ]; then "${SSH[@]}" "root@$host" "$*"; else "${SSH[@]}" "$SSH_USER@$host" "sudo -n bash -c $(printf %q "$*")"; fi
}

# --- the command lines: the dev stack's settings, written out -----------------------------------
ray_env() { # $1: the node's address
  echo "GLOO_SOCKET_IFNAME=$INTERFACE NCCL_SOCKET_IFNAME=$INTERFACE VLLM_HOST_IP=$1 NCCL_IB_DISABLE=1" \
    "RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH=$TOKEN_FILE"
}

ray_command() { # $1: the node's address
  local command="$VENV/bin/ray start --block --disable-usage-stats --node-ip-address=$1"
  if [ "$1" = "$HEAD" ]; then
    command+=" --head --port=6379 --ray-client-server-port=10001 --include-dashboard=false"
    command+=" --dashboard-host=$HEAD --dashboard-port=8265"
  else
    command+=" --address=$HEAD:6379"
  fi
  command+=" --node-manager-port=6380 --object-manager-port=6381 --dashboard-agent-grpc-port=6382"
  command+=" --dashboard-agent-listen-port=52365 --metrics-export-port=6383 --runtime-env-agent-port=6384"
  command+=" --min-worker-port=10002 --max-worker-port=10100 --temp-dir=$RAY_TEMP"
  command+=" --num-cpus=2 --memory=$((6 << 30)) --object-store-memory=$((1 << 29))"
  echo "$command --resources='{\"cpu_stage\":1}'"
}

vllm_env() {
  echo "$(ray_env "$HEAD") RAY_ADDRESS=$HEAD:6379 HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1 VLLM_DO_NOT_TRACK=1" \
    "VLLM_CPU_KVCACHE_SPACE=1"
}

vllm_command() {
  echo "$VENV/bin/python -m vllm.entrypoints.openai.api_server --model=$MODEL_DIR" \
    "--served-model-name=$SERVED_NAME --host=$HEAD --port=$API_PORT --pipeline-parallel-size=${#HOSTS[@]}" \
    "--tensor-parallel-size=1 --distributed-executor-backend=ray --dtype=bfloat16 --max-model-len=1024" \
    "--enforce-eager"
}

# --- provisioning, node by node ------------------------------------------------------------------
push() { # $1: local folder, $2: host, $3: remote folder
  tar -C "$1" -cf - . | on "$2" "mkdir -p '$3' && tar -C '$3' -xf - --no-same-owner"
}

provision() {
  local wheelhouse=${BASELINE_WHEELHOUSE:?the wheelhouse folder} model=${BASELINE_MODEL:?the weights folder}
  local host started
  for host in "${HOSTS[@]}"; do
    started=$(now)
    push "$wheelhouse" "$host" "$WHEELS"
    report copy_wheels "$host" "$started"
    started=$(now)
    on "$host" "set -e; python3 -m venv $VENV
      pip='$VENV/bin/python -m pip --disable-pip-version-check --no-cache-dir'
      \$pip install --quiet --no-index --no-deps --find-links $WHEELS -r $WHEELS/requirements.lock
      for wheel in ${BASELINE_PLUGIN_WHEELS:-}; do \$pip install --quiet --no-index --no-deps $WHEELS/\$wheel; done"
    report install "$host" "$started"
    started=$(now)
    push "$model" "$host" "$MODEL_DIR"
    report copy_weights "$host" "$started"
  done
}

# --- services ------------------------------------------------------------------------------------
start_detached() { # $1: host, $2: name, $3: environment, $4: command; then wait for $5 (if given) in its log
  local log=/var/log/baseline-$2.log ready=${5:-}
  on "$1" "set -e; mkdir -p $RUN_DIR; cd /
    nohup setsid env $3 $4 >$log 2>&1 </dev/null & echo \$! >$RUN_DIR/$2.pid
    if [ -n '$ready' ]; then
      timeout 300 sh -c 'until grep -q \"$ready\" $log; do sleep 0.5; done' || { tail -n 30 $log >&2; exit 1; }
    fi"
}

start_services() {
  local host started
  for host in "${HOSTS[@]}"; do
    on "$host" "mkdir -p \$(dirname $TOKEN_FILE) && umask 077 && printf %s '${BASELINE_RAY_TOKEN:?}' >$TOKEN_FILE"
  done
  started=$(now)
  start_detached "$HEAD" ray "$(ray_env "$HEAD")" "$(ray_command "$HEAD")" "Ray runtime started"
  report ray_head all "$started"
  started=$(now)
  for host in "${HOSTS[@]:1}"; do
    start_detached "$host" ray "$(ray_env "$host")" "$(ray_command "$host")" "Ray runtime started"
  done
  report ray_workers all "$started"
  started=$(now)
  start_detached "$HEAD" vllm "$(vllm_env) VLLM_API_KEY=${BASELINE_API_KEY:?}" "$(vllm_command)"
  local deadline=$(($(date +%s) + READY_TIMEOUT))
  until curl -sf -o /dev/null "http://$HEAD:$API_PORT/health"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      on "$HEAD" "tail -n 40 /var/log/baseline-vllm.log" >&2
      echo "vLLM not healthy after $READY_TIMEOUT s" >&2
      exit 1
    fi
    sleep 1
  done
  report vllm_ready all "$started"
}

stop_services() {
  local index host
  for ((index = ${#HOSTS[@]} - 1; index >= 0; index--)); do
    host=${HOSTS[index]}
    # vLLM before Ray; each pid file names a process group `setsid` made; only those are signalled.
    on "$host" "for name in vllm ray; do
        pidfile=$RUN_DIR/\$name.pid; [ -f \$pidfile ] || continue; group=\$(cat \$pidfile)
        kill -TERM -- -\$group 2>/dev/null || true
        for i in \$(seq 60); do kill -0 -- -\$group 2>/dev/null || break; sleep 0.5; done
        kill -KILL -- -\$group 2>/dev/null || true
        rm -f \$pidfile
      done" || echo "could not stop the services on $host" >&2
  done
}

case "${1:-}" in
  provision)
    started=$(now); provision; report provision all "$started" ;;
  up)
    started=$(now); provision; report provision all "$started"; start_services; report up all "$started" ;;
  down) stop_services ;;
  commands)
    echo "ray-head-env: $(ray_env "$HEAD")"
    echo "ray-head: $(ray_command "$HEAD")"
    if [ "${#HOSTS[@]}" -gt 1 ]; then
      echo "ray-worker-env: $(ray_env "${HOSTS[1]}")"
      echo "ray-worker: $(ray_command "${HOSTS[1]}")"
    fi
    echo "vllm-env: $(vllm_env)"
    echo "vllm: $(vllm_command)" ;;
  *) echo "usage: $0 provision|up|down|commands" >&2; exit 2 ;;
esac

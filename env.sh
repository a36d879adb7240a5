# Source this file (`source env.sh`) to use the project's pinned Pulumi offline:
# the pinned CLI and the project's venv on PATH, state in a local file backend, secrets
# encrypted with a passphrase, no update checks and no plugin downloads.
RVS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)
RVS_PULUMI_VERSION=$(sed -n 's/^PULUMI_VERSION := //p' "$RVS_ROOT/Makefile")
export PATH="$RVS_ROOT/.tools/pulumi/$RVS_PULUMI_VERSION/bin:$RVS_ROOT/.venv/bin:$PATH"
export PULUMI_HOME="$RVS_ROOT/.pulumi/home"
export PULUMI_BACKEND_URL="${PULUMI_BACKEND_URL:-file://$RVS_ROOT/.pulumi/state}"
export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_PYTHON_CMD="$RVS_ROOT/.venv/bin/python"
# The shipped stack files carry no encryptionsalt (each checkout has its own passphrase), so the
# first `pulumi stack init` writes this checkout's salt into Pulumi.<stack>.yaml. Should that line be
# lost (a `git checkout` of the file), Pulumi takes the salt back from the stack's state.
export PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER=true
# A passphrase of your own (PULUMI_CONFIG_PASSPHRASE[_FILE]) wins over the generated local one.
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  export PULUMI_CONFIG_PASSPHRASE_FILE="$RVS_ROOT/.pulumi/passphrase"
fi

#!/usr/bin/env bash
# `make demo`: the dev stack on two lab hosts, from bare hosts to a chat completion.
# `make demo-down` (`tools/demo.sh down`): destroy the dev stack's resources, then the lab.
set -euo pipefail
cd "$(dirname "$0")/.."
source env.sh

if [[ "${1:-}" == down ]]; then
  if pulumi stack select dev 2>/dev/null; then
    time pulumi destroy --yes --skip-preview
  fi
  python -m lab down
  exit 0
fi

python -m lab up --hosts 2
pulumi stack select --create dev
time pulumi up --yes --skip-preview
echo
pulumi stack output
echo
python tools/chat.py --stack dev

#!/usr/bin/env bash
# `make demo`: the dev stack on two lab hosts, from bare hosts to a chat completion.
set -euo pipefail
cd "$(dirname "$0")/.."
source env.sh

python -m lab up --hosts 2
pulumi stack select --create dev
time pulumi up --yes --skip-preview
echo
pulumi stack output
echo
python tools/chat.py --stack dev

#!/usr/bin/env bash
# The plain shell behind examples/ci/pulumi-preview.yml, runnable on any stack from any CI:
# previews STACK of the Pulumi project in PROJECT_DIR and writes the review summary (Markdown, for a
# pull-request comment) to OUT. Pulumi's environment is the caller's: the pinned CLI and the project's
# venv on PATH, the backend and the passphrase set (`source env.sh` does all of it on a controller).
#   usage: examples/ci/review.sh STACK [PROJECT_DIR] [OUT]     (defaults: the repository, review.md)
# Exits with the preview's status, so the job fails where the preview does.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
stack=${1:?usage: review.sh STACK [PROJECT_DIR] [OUT]}
project=$(cd "${2:-$root}" && pwd)
out=$(realpath -m "${3:-review.md}")

cd "$root"
python -m tools.review --stack "$stack" --cwd "$project" --out "$out"
echo "review summary of $stack written to $out"

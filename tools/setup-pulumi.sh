#!/usr/bin/env bash
# Installs the pinned Pulumi CLI, a Python language host and the dynamic-provider shim into
# .tools/pulumi/<version>/bin. Uses a `pulumi` on PATH when it is exactly the pinned version,
# else builds the CLI from the Go module proxy (go.mod/go.sum in tools/pulumi-cli pin every
# module by hash). Idempotent: a finished install is reused, keyed by version.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^PULUMI_VERSION := //p' "$root/Makefile")
bin="$root/.tools/pulumi/$version/bin"
python="$root/.venv/bin/python"
sdk_dir() { (cd "$root/tools/pulumi-cli" && "$("$root/tools/setup-go.sh" path)" list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3); }

install_cli() {
  local existing
  existing=$(command -v pulumi || true)
  if [[ -n "$existing" && "$existing" != "$bin/pulumi" && "$("$existing" version 2>/dev/null)" == "$version" ]]; then
    echo "pulumi: using $existing ($version)"
    ln -sf "$existing" "$bin/pulumi"
    return
  fi
  local go
  go=$("$root/tools/setup-go.sh" path)
  echo "pulumi: building $version with $go from the Go module proxy (first time: 7-15 min on 2 cores)"
  (cd "$root/tools/pulumi-cli" && "$go" build -trimpath -buildvcs=false -o "$bin/pulumi.partial" \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
  mv "$bin/pulumi.partial" "$bin/pulumi"
}

install_python_support() {
  local sdk
  sdk=$(sdk_dir)
  # Pulumi's own scripts, shipped in the sdk/v3 module at the pinned version.
  install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$bin/"
  install -m 0755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$bin/"
  # The language host: ours, since Pulumi's Go one is not served (README, Troubleshooting).
  install -m 0644 "$root/tools/pulumi_language_python.py" "$bin/"
  cat > "$bin/pulumi-language-python" <<SH
#!/bin/sh
RVS_PULUMI_VERSION=$version exec "$python" "$bin/pulumi_language_python.py" "\$@"
SH
  chmod 0755 "$bin/pulumi-language-python"
}

mkdir -p "$bin"
[[ -x "$bin/pulumi" && "$("$bin/pulumi" version)" == "$version" ]] || install_cli
install_python_support
"$bin/pulumi" version

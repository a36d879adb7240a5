#!/usr/bin/env bash
# A Go toolchain for building the pinned Pulumi CLI (tools/pulumi-cli/go.mod's `go` line or newer).
#   path    print the `go` to build with: the machine's when new enough, else the pinned toolchain,
#           fetched once from the Go module proxy (golang.org/toolchain) into .tools/ and checked by sha256
#   doctor  one line saying which Go setup would use
# Debian 12 ships Go 1.19 and Ubuntu 24.04 Go 1.22, both too old, so a new controller needs no Go of its own.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GO_VERSION=1.26.8
GO_ZIP_SHA256=30c2b1bf7dcc88d3eb0a1364e47ddd9128edb3110a30e8a0ef61cd5856b31de7  # linux-amd64
pinned_dir="$root/.tools/go-$GO_VERSION"
needed=$(sed -n 's/^go //p' "$root/tools/pulumi-cli/go.mod")

# new_enough GO: its version is at least go.mod's (compared as dotted numbers).
new_enough() {
  local have
  have=$("$1" env GOVERSION 2>/dev/null) || return 1
  have=${have#go}
  [[ "$(printf '%s\n%s\n' "$needed" "${have%%[-+ ]*}" | sort -V | head -1)" == "$needed" ]]
}

fetch_pinned() {
  local arch proxy url zip
  case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) echo "no Go toolchain for $(uname -m)" >&2; exit 1 ;; esac
  [[ $arch == amd64 ]] || { echo "setup-go: only linux-amd64's sha256 is pinned; install Go >= $needed yourself" >&2; exit 1; }
  proxy=${GOPROXY:-https://proxy.golang.org}
  proxy=${proxy%%[,|]*}
  url="$proxy/golang.org/toolchain/@v/v0.0.1-go$GO_VERSION.linux-$arch.zip"
  zip="$root/.tools/go-$GO_VERSION.zip.partial"
  mkdir -p "$root/.tools"
  echo "go: fetching go$GO_VERSION from $url" >&2
  python3.11 - "$url" "$zip" "$GO_ZIP_SHA256" "$pinned_dir" <<'PY'
import hashlib, os, shutil, sys, urllib.request, zipfile
url, zip_path, sha256, target = sys.argv[1:]
with urllib.request.urlopen(url, timeout=120) as response, open(zip_path, "wb") as out:
    shutil.copyfileobj(response, out)
digest = hashlib.sha256(open(zip_path, "rb").read()).hexdigest()
if digest != sha256:
    sys.exit(f"go toolchain from {url}: sha256 {digest}, expected {sha256}")
partial = target + ".partial"
shutil.rmtree(partial, ignore_errors=True)
with zipfile.ZipFile(zip_path) as archive:
    for entry in archive.infolist():
        # Entries are golang.org/toolchain@<version>/...: drop that prefix, keep modes.
        name = entry.filename.split("/", 2)[2] if entry.filename.count("/") >= 2 else ""
        if not name or entry.is_dir():
            continue
        path = os.path.join(partial, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with archive.open(entry) as source, open(path, "wb") as out:
            shutil.copyfileobj(source, out)
        os.chmod(path, (entry.external_attr >> 16) & 0o777 or 0o644)
shutil.rmtree(target, ignore_errors=True)  # an earlier fetch that lost its bin/go
os.rename(partial, target)
os.unlink(zip_path)
PY
}

go_to_use() {
  local machine
  machine=$(command -v go || true)
  if [[ -n $machine ]] && new_enough "$machine"; then echo "$machine"; return; fi
  [[ -x "$pinned_dir/bin/go" ]] || fetch_pinned
  echo "$pinned_dir/bin/go"
}

case "${1:-}" in
  path) go_to_use ;;
  doctor)
    machine=$(command -v go || true)
    if [[ -n $machine ]] && new_enough "$machine"; then echo "  go:     $("$machine" env GOVERSION) ($machine, >= $needed)"
    elif [[ -x "$pinned_dir/bin/go" ]]; then echo "  go:     go$GO_VERSION ($pinned_dir/bin/go, fetched by make setup)"
    else echo "  go:     none >= $needed yet; make setup fetches go$GO_VERSION if the Pulumi CLI has to be built"; fi ;;
  *) echo "usage: $0 path|doctor" >&2; exit 2 ;;
esac

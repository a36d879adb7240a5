#!/usr/bin/env bash
# The controller's system packages, from the one list in tools/system-packages.tsv.
#   install  install what is missing (root, apt-get), once; as non-root print the exact apt-get line
#   check    exit 1 and name what is missing, installing nothing (the lab's preflight)
#   doctor   every requirement with its state and version, then the toolchains setup builds with
#   list     the package names, one a line
# Plain bash and coreutils only: it runs before any Python this project installs exists.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
table="$root/tools/system-packages.tsv"

rows() { grep -v '^#' "$table" | grep -v '^[[:space:]]*$'; }

# present PROOFS: every comma-separated proof holds (a command, an absolute path, python3.11:module).
present() {
  local proof
  IFS=, read -ra proofs <<<"$1"
  for proof in "${proofs[@]}"; do
    case "$proof" in
      /*) [[ -e "$proof" ]] || return 1 ;;
      *:*) "${proof%%:*}" -c "import ${proof#*:}" >/dev/null 2>&1 || return 1 ;;
      *) command -v "$proof" >/dev/null 2>&1 || return 1 ;;
    esac
  done
}

missing_packages() {
  local package proofs why
  while IFS=$'\t' read -r package proofs why; do
    present "$proofs" || echo "$package"
  done < <(rows)
}

why_of() { rows | awk -F'\t' -v p="$1" '$1 == p { print $3 }'; }

install_line() { echo "apt-get update && apt-get install -y --no-install-recommends $*"; }

explain() {
  local package
  echo "missing system packages on this controller:" >&2
  for package in "$@"; do echo "  $package: $(why_of "$package")" >&2; done
}

install() {
  local -a missing
  mapfile -t missing < <(missing_packages)
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if [[ $EUID -ne 0 ]]; then
    explain "${missing[@]}"
    echo "run as root: $(install_line "${missing[@]}")" >&2
    return 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    explain "${missing[@]}"
    echo "this controller has no apt-get (Debian 12/13 and Ubuntu 22.04/24.04 are supported): install them with its package manager" >&2
    return 1
  fi
  echo "installing system packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" || {
      echo "apt-get could not install: ${missing[*]} (see its output above)" >&2
      return 1
    }
  mapfile -t missing < <(missing_packages)
  if [[ ${#missing[@]} -ne 0 ]]; then
    explain "${missing[@]}"
    echo "apt-get reported success but these are still missing" >&2
    return 1
  fi
}

check() {
  local -a missing
  mapfile -t missing < <(missing_packages)
  [[ ${#missing[@]} -eq 0 ]] && return 0
  explain "${missing[@]}"
  echo "run \`make setup\` as root, or: $(install_line "${missing[@]}")" >&2
  return 1
}

version_of() {
  local package=$1 proofs=$2 first version
  version=$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$package" 2>/dev/null)
  if [[ $version == installed\ * ]]; then echo "${version#installed }"; return; fi
  first=${proofs%%,*}
  case "$first" in
    /*|*:*) echo "present, not from a Debian package" ;;
    *) echo "present, not from a Debian package: $(command -v "$first")" ;;
  esac
}

doctor() {
  local package proofs why state version bad=0
  printf '%-8s %-24s %-44s %s\n' STATE PACKAGE VERSION "NEEDED FOR"
  while IFS=$'\t' read -r package proofs why; do
    if present "$proofs"; then state=ok; version=$(version_of "$package" "$proofs")
    else state=MISSING; version="-"; bad=1; fi
    printf '%-8s %-24s %-44s %s\n' "$state" "$package" "$version" "$why"
  done < <(rows)
  echo
  echo "toolchains (made by make setup, not system packages):"
  "$root/tools/setup-go.sh" doctor
  local tool
  tool=$(ls -d "$root"/.tools/uv-*/bin/uv 2>/dev/null | head -1)
  if [[ -n $tool ]]; then echo "  uv:     $("$tool" --version) ($tool)"; else echo "  uv:     not yet installed (make setup)"; fi
  tool=$(ls -d "$root"/.tools/pulumi/*/bin/pulumi 2>/dev/null | head -1)
  if [[ -n $tool ]]; then echo "  pulumi: $("$tool" version) ($tool)"; else echo "  pulumi: not yet built (make setup)"; fi
  [[ $bad -eq 0 ]] || { echo; check; }
}

case "${1:-}" in
  install) install ;;
  check) check ;;
  doctor) doctor ;;
  list) rows | cut -f1 ;;
  *) echo "usage: $0 install|check|doctor|list" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# dev.sh: the two commands a new user needs.
#
#   ./dev.sh up     check the machine, build paydr, and bring up the local
#                   two-region environment (paydr up); ./dev.sh down stops it
#   ./dev.sh test   check (and where possible install) what the tests need,
#                   then run every test: unit, real PostgreSQL, the emulator,
#                   real terraform validate, and the local environment
#
# Anything else is passed to paydr: ./dev.sh synth, ./dev.sh dr status, ...
set -euo pipefail
cd "$(dirname "$0")"

bin=.paydr/bin
missing=()

say() { printf '%s\n' "$*" >&2; }

need_go() {
  if ! command -v go >/dev/null 2>&1; then
    say "missing: Go 1.26 or newer (https://go.dev/dl, or your package manager); paydr is written in Go."
    exit 1
  fi
  local v
  v=$(go env GOVERSION | sed 's/^go//')
  case "$v" in
    1.2[6-9]*|1.[3-9]*|[2-9].*) ;;
    *) say "missing: Go 1.26 or newer (found $v)"; exit 1 ;;
  esac
}

check_terraform() {
  local tf=${PAYDR_TERRAFORM:-terraform}
  if ! command -v "$tf" >/dev/null 2>&1; then
    missing+=("terraform >= 1.11 (install it from your package source and put it on PATH, or set PAYDR_TERRAFORM)")
    return
  fi
  local v
  v=$("$tf" version -json 2>/dev/null | sed -n 's/.*"terraform_version": *"\([0-9.]*\)".*/\1/p')
  case "$v" in
    1.1[1-9]*|1.[2-9][0-9]*|[2-9].*) ;;
    *) missing+=("terraform >= 1.11 (found ${v:-unknown}); write-only arguments need 1.11") ;;
  esac
  local found=""
  for d in ${PAYDR_PROVIDER_MIRROR:-} /opt/tf-plugins "${XDG_DATA_HOME:-$HOME/.local/share}/terraform/plugins" "$HOME/.terraform.d/plugins" /usr/local/share/terraform/plugins /usr/share/terraform/plugins; do
    if [ -e "$d/registry.terraform.io/hashicorp/aws/5.100.0" ] || ls "$d"/registry.terraform.io/hashicorp/aws/terraform-provider-aws_5.100.0_* >/dev/null 2>&1; then
      found=$d
      break
    fi
  done
  if [ -z "$found" ]; then
    missing+=("the hashicorp/aws 5.100.0 provider in a filesystem mirror (terraform providers mirror DIR on a connected machine, then PAYDR_PROVIDER_MIRROR=DIR); paydr never downloads providers")
  fi
}

check_moto() {
  if ! command -v "${PAYDR_MOTO_SERVER:-moto_server}" >/dev/null 2>&1; then
    missing+=("moto_server, the AWS API emulator (pip install 'moto[server]>=5.2', or set PAYDR_MOTO_SERVER)")
  fi
}

check_postgres() {
  local dirs=("${PAYDR_PG_BIN:-}" /usr/lib/postgresql/15/bin /usr/local/bin /usr/bin)
  for d in "${dirs[@]}"; do
    if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] && [ -x "$d/pg_basebackup" ]; then
      return
    fi
  done
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing PostgreSQL 15 server binaries (apt-get install postgresql-15) ..."
    if apt-get install -y -q postgresql-15 >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q postgresql-15 >/dev/null 2>&1; }; then
      return
    fi
  fi
  missing+=("PostgreSQL 15 server binaries: initdb, pg_ctl, postgres, pg_basebackup (apt-get install postgresql-15, or set PAYDR_PG_BIN to their directory)")
}

check_rie() {
  # The Lambda Runtime Interface Emulator runs the real bootstrap as Lambda does.
  if command -v aws-lambda-rie >/dev/null 2>&1 || [ -x "$(go env GOPATH)/bin/aws-lambda-rie" ]; then
    return
  fi
  say "installing aws-lambda-rie (go install) ..."
  if ! go install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d >/dev/null 2>&1; then
    missing+=("aws-lambda-rie (go install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@v0.0.0-20261030222936-bef5c4ba774d)")
  fi
}

report_missing() {
  if [ ${#missing[@]} -gt 0 ]; then
    say "paydr needs, and this machine lacks:"
    for m in "${missing[@]}"; do say "  - $m"; done
    exit 1
  fi
}

build() {
  # paydr-aws beside paydr runs the commands that call AWS APIs (paydr dr,
  # paydr serve), so that paydr itself links no AWS SDK and starts fast.
  mkdir -p "$bin"
  go build -o "$bin/" ./cmd/paydr ./cmd/paydr-aws
}

case "${1:-}" in
  up)
    shift
    need_go; check_terraform; check_moto; check_postgres; report_missing
    build
    exec "$bin/paydr" up "$@"
    ;;
  test)
    shift
    need_go; check_terraform; check_moto; check_postgres; check_rie; report_missing
    export PATH="$(go env GOPATH)/bin:$PATH"
    if ! command -v "${PAYDR_TRIVY:-trivy}" >/dev/null 2>&1; then
      say "optional: trivy is not installed, so the scan test (internal/scan) stops after the offline plan;"
      say "  install it with: GOEXPERIMENT=jsonv2 go install github.com/aquasecurity/trivy/cmd/trivy@v0.74.0 (a cold build takes minutes)"
    fi
    say "go vet ./..."
    go vet ./...
    say "go test ./... (unit, PostgreSQL, emulator, terraform, local environment)"
    # The packages that bring an environment up (internal/dr/localdr,
    # internal/local) are the suite's long pole, and most of their time is
    # waiting: on the provider's fixed waits, on drill clocks. When they do
    # want the CPU (a plan, a drill's failover) the rest of the suite,
    # CPU-bound, would hold them up. So the rest runs beside them at a
    # lower priority (nice 10; what a process starts inherits it) and fills
    # the cores they leave idle. internal/dr/awsdr stays at the normal
    # priority with them: its backends give each emulator call 500 ms, by
    # design (a lost region must fail fast), which a starved emulator
    # missed. Packages start in the order given, the longest first.
    rest=()
    while IFS= read -r p; do
      case "$p" in paydr/internal/dr/localdr|paydr/internal/local|paydr/internal/dr/awsdr) ;; *) rest+=("$p") ;; esac
    done < <(go list ./...)
    go test -p 3 -count=1 -timeout 80m "$@" ./internal/dr/localdr ./internal/local ./internal/dr/awsdr &
    envpid=$!
    trap 'kill "$envpid" 2>/dev/null || true' EXIT
    rc=0
    nice -n 10 go test -p "$(( $(nproc) * 2 ))" -count=1 -timeout 80m "$@" "${rest[@]}" || rc=$?
    wait "$envpid" || rc=$?
    trap - EXIT
    if [ "$rc" -ne 0 ]; then
      say "FAIL: go test exited $rc (see the FAIL lines above)"
      exit 1
    fi
    ;;
  ""|-h|--help|help)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    ;;
  *)
    need_go
    build
    exec "$bin/paydr" "$@"
    ;;
esac

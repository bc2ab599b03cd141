#!/usr/bin/env bash
# Trust between the controller and a remote Incus host (`make remote-add`, `make remote-token`).
#
#   scripts/remote.sh token CLIENT        on the remote host: print a one-time trust token
#   scripts/remote.sh add REMOTE TOKEN    on the controller: add the remote from that token
#
# The token carries the server's addresses and certificate fingerprint, so `incus remote
# add` checks the certificate by itself (no --accept-certificate). Adding a remote that
# already exists does nothing; after adding, one API call proves that the remote trusts us.
set -euo pipefail

die() { printf 'remote-%s: %s\n' "$1" "$2" >&2; exit 2; }

remote_url() {
  incus remote list --format csv 2>/dev/null \
    | awk -F, -v want="$1" '{name = $1; sub(/ \(current\)$/, "", name)} name == want {print $2}'
}

cmd_token() {
  local client=$1
  [ -n "$client" ] || die token "CLIENT=<name of the controller> is required"
  [[ "$client" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] \
    || die token "CLIENT '$client': use letters, digits, dots, dashes or underscores"
  incus config trust add "$client" --quiet
}

cmd_add() {
  local remote=$1 token=$2 url err
  [ -n "$remote" ] && [ -n "$token" ] \
    || die add "REMOTE=<name> and TOKEN=<token> are required (on the remote host: make remote-token CLIENT=<this machine>)"
  [[ "$remote" =~ ^[A-Za-z0-9][A-Za-z0-9_-]*$ ]] \
    || die add "REMOTE '$remote': use letters, digits, dashes or underscores"
  # A trust token is base64 JSON naming the server's fingerprint; anything else would be
  # taken by `incus remote add` for an address to look up.
  if ! printf '%s' "$token" | base64 -d 2>/dev/null | grep -q '"fingerprint"'; then
    die add "TOKEN is not an Incus trust token (make remote-token CLIENT=<this machine> prints one on the remote host)"
  fi
  url=$(remote_url "$remote")
  if [ -n "$url" ]; then
    echo "remote-add: remote $remote already exists ($url): nothing done"
    return 0
  fi
  if ! err=$(incus remote add "$remote" "$token" 2>&1 </dev/null); then
    err=$(printf '%s\n' "$err" | tail -n 1)
    die add "incus remote add $remote failed: ${err#Error: }"
  fi
  if ! err=$(incus query "$remote:/1.0" 2>&1 >/dev/null); then
    die add "remote $remote was added but does not answer: ${err#Error: }"
  fi
  echo "remote-add: added $remote ($(remote_url "$remote")); set global.incus_remote: $remote in infra.yml"
}

case "${1:-}" in
  token) cmd_token "${2:-}" ;;
  add) cmd_add "${2:-}" "${3:-}" ;;
  *) sed -n '2,9p' "$0"; exit 2 ;;
esac

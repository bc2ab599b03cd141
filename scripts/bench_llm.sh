#!/usr/bin/env bash
# `make bench` part: the Open WebUI install (ADR-067) in a fresh instance, then the no-op
# apply that follows. The controller's wheelhouse cache (.cache/open_webui) is used as found:
# the line says whether it was a hit (a miss adds the PyPI download, about 1.3 min here).
# Owns the lab b11-* (project b11web, 10.158.1.0/24, table anklumeb11); deleted at the start
# and the end.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
lab=$(mktemp -d /tmp/anklume-bench-llm.XXXXXX)

cleanup() {
  (cd "$lab" && make --no-print-directory -o .venv/.installed destroy FORCE=1 >/dev/null 2>&1) || true
  nft delete table inet anklumeb11 2>/dev/null || true
  rm -rf "$lab"
}
trap cleanup EXIT

for name in site.yml ansible.cfg roles plugins collections scripts anklume Makefile .venv; do
  ln -s "$repo/$name" "$lab/$name"
done
cat >"$lab/infra.yml" <<'YAML'
project_name: b11llm
global: {base_subnet: "10.158", admin_domain: ""}
domains:
  b11web:
    subnet_id: 1
    ephemeral: true
    machines:
      b11-webui: {type: lxc, ip: "10.158.1.10", roles: [open_webui]}
YAML
run() { (cd "$lab" && make --no-print-directory -o .venv/.installed "$@") >"$lab/out.log" 2>&1 \
  || { tail -n 40 "$lab/out.log" >&2; exit 1; }; }
run destroy FORCE=1
run sync
printf 'incus_nftables_table: anklumeb11\nopen_webui_ollama_base_url: http://10.158.1.1:11434\nopen_webui_wheelhouse_root: %s\n' \
  "$repo/.cache/open_webui" >>"$lab/group_vars/all.yml"
hit=miss
compgen -G "$repo/.cache/open_webui/wheelhouse-*.complete" >/dev/null && hit=hit
start=$SECONDS; run apply; cold=$((SECONDS - start))
start=$SECONDS; run apply; noop=$((SECONDS - start))
changed=$(grep -o 'changed=[0-9]*' "$lab/out.log" | sort -u | tr '\n' ' ')
printf '%-52s %6s\n' "open_webui" "seconds"
printf '%-52s %6s\n' "install in a new instance (wheelhouse cache: $hit)" "$cold"
printf '%-52s %6s\n' "second apply (no-op: $changed)" "$noop"
# A no-op that changed something names the tasks (it should not happen: say which).
awk '/^TASK \[/ {task=$0} /^changed: / {print "  changed in the no-op apply: " task}' "$lab/out.log"

#!/usr/bin/env bash
# `make bench`: every benchmark part, each printing its own table.
# Figures are measured here, never asserted in tests.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== bench: sync (generator) =="
.venv/bin/python scripts/bench_sync.py

echo
echo "== bench: the daily front (help, a refused variable, a run stopped by the lock; ADR-071) =="
.venv/bin/python scripts/bench_lock.py

echo
echo "== bench: no-op apply of the shipped infra.yml, before and after (ADR-058) =="
.venv/bin/python scripts/bench_noop.py

echo
echo "== bench: no-op apply against the floor (one-task play + bulk read), with its profile =="
.venv/bin/python scripts/profile_apply.py shipped 4 50

for part in scripts/bench_apply.sh scripts/bench_snapshots.sh scripts/bench_runner.sh scripts/bench_llm.sh; do
  if [ -f "$part" ]; then
    echo
    echo "== bench: $(basename "$part" .sh | sed 's/^bench_//') =="
    bash "$part"
  fi
done

echo
echo "== bench: firewall path (firewall_mode vm, sys-firewall as lxc) vs host path, round trip =="
.venv/bin/python scripts/bench_firewall.py

echo
echo "== bench: scale (4, 12, 50 instances; BENCH_SCALE_SIZES to change) =="
.venv/bin/python scripts/bench_scale.py

echo
echo "== bench: disposables (make disp, ready vs new vs incus launch --ephemeral by hand) =="
.venv/bin/python scripts/bench_disp.py

echo
echo "== bench: class (a template of 24 students vs the same written by hand; BENCH_CLASS_SIZE) =="
.venv/bin/python scripts/bench_class.py

echo
echo "== bench: backup and restore of the shipped instances vs plain incus export/import (ADR-087, ADR-089) =="
.venv/bin/python scripts/bench_backup.py

echo
echo "== bench: gui (make gui to the window mapped, cold and warm; ADR-091) =="
.venv/bin/python scripts/bench_gui.py

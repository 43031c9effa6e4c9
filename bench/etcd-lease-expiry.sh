#!/usr/bin/env bash
# etcd 3.4 (Debian's etcd-server): does one lease expiry that deletes many keys at once make
# every later Txn dearer? Found while writing bench/fleet.sh, where a throughput run after a
# 20,000-key DeleteRange got 5x less out of etcd. The fleet puts every key on the lease of the
# minute its entry expires in (src/fleet/lease_window.rs), so etcd deletes a whole minute of
# logouts in one write when that lease expires.
#
# Method: one etcd member (data in /dev/shm, so no disk in the figures) on free 127.0.0.1 ports;
# fleet_probe etcd-load writes 3,000 single-put Txns (8 connections, the JSON gateway) and the
# member's CPU time (utime + stime from /proc) per Txn is read; then KEYS keys are put on a
# 4-second lease, the lease expires (etcd deletes them in one write), and the 3,000 Txns
# are measured again, twice. Nothing asserts; it prints one line per step.
#
# Usage: bench/etcd-lease-expiry.sh            (about 30 s)
# Env:   KEYS=30000  keys on the lease;  ETCD=<path> (default: etcd on PATH)
# Needs: etcd, curl, jq, python3, cargo (builds examples/fleet_probe).
#
# Why (etcd 3.4 source, mvcc/backend/tx_buffer.go and backend.go): every Txn reads through
# ConcurrentReadTx, which copies the read buffer, and bucketBuffer.Copy allocates
# len(buf), the largest number of entries one write batch ever put there, not what is in it
# now. etcd 3.5 no longer copies for a Txn that writes (etcd-io/etcd#12896) and shares one
# copy between reads (etcd-io/etcd#12933).
set -euo pipefail

KEYS=${KEYS:-30000}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ETCD=${ETCD:-$(command -v etcd || true)}
[[ -n $ETCD ]] || { echo "etcd-lease-expiry: no etcd (apt-get install etcd-server)" >&2; exit 1; }
cargo build -q --release --example fleet_probe --manifest-path "$ROOT/Cargo.toml"
PROBE=$ROOT/target/release/examples/fleet_probe

DIR=$(mktemp -d /dev/shm/bcl-etcd-lease.XXXXXX)
read -r CLIENT PEER <<< "$(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
PY
)"
while read -r var; do unset "$var"; done < <(compgen -e | grep '^ETCD_' || true)
"$ETCD" --name m0 --data-dir "$DIR/m0" \
  --listen-client-urls "http://127.0.0.1:$CLIENT" --advertise-client-urls "http://127.0.0.1:$CLIENT" \
  --listen-peer-urls "http://127.0.0.1:$PEER" --initial-advertise-peer-urls "http://127.0.0.1:$PEER" \
  --initial-cluster "m0=http://127.0.0.1:$PEER" --logger zap --log-outputs stderr > "$DIR/etcd.log" 2>&1 &
ETCD_PID=$!
cleanup() { kill -9 "$ETCD_PID" 2>/dev/null || true; wait "$ETCD_PID" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
for _ in $(seq 1 300); do
  curl -s --max-time 1 "http://127.0.0.1:$CLIENT/health" | grep -q true && break
  kill -0 "$ETCD_PID" 2>/dev/null || { cat "$DIR/etcd.log" >&2; exit 1; }
  sleep 0.1
done

api() { curl -s --max-time 30 -X POST "http://127.0.0.1:$CLIENT$1" -d "$2"; }
ticks() { awk '{print $14 + $15}' "/proc/$ETCD_PID/stat"; }
TICK=$(getconf CLK_TCK)
step=0
measure() { # label: 3,000 single-put Txns, etcd CPU per Txn
  local t0 t1 out
  step=$((step + 1))
  t0=$(ticks)
  out=$("$PROBE" etcd-load --etcd "127.0.0.1:$CLIENT" --prefix /x/ --count 3000 --from $((step * 100000)) \
    --sid-prefix probe- --puts-per-txn 1 --connections 8)
  t1=$(ticks)
  printf '%-52s %5d Txn/s, etcd %5d µs CPU per Txn\n' "$1" "$(jq '.per_s | floor' <<< "$out")" \
    $(( (t1 - t0) * 1000000 / TICK / 3000 ))
}

echo "etcd $("$ETCD" --version | awk '/^etcd Version/ {print $3}'), one member, data on tmpfs; $(nproc) CPUs"
measure "fresh"
measure "fresh, again"
LEASE=$(api /v3/lease/grant '{"TTL": 4}' | jq -r .ID)
"$PROBE" etcd-load --etcd "127.0.0.1:$CLIENT" --prefix /x/ --count "$KEYS" --sid-prefix leased- \
  --lease "$LEASE" --connections 4 > /dev/null
measure "$KEYS keys on a lease, not expired yet"
for _ in $(seq 1 100); do
  [[ $(api /v3/lease/timetolive "{\"ID\": \"$LEASE\"}" | jq -r .TTL) == -1 ]] && break
  sleep 0.2
done
left=$(api /v3/kv/range "{\"key\":\"$(printf '/x/r/' | base64)\",\"range_end\":\"$(printf '/x/r0' | base64)\",\"count_only\":true}" | jq -r '.count // 0')
echo "lease expired: $left keys left under /x/ (the ${step}x3,000 probe keys)"
measure "after the expiry ($KEYS keys deleted in one write)"
measure "after the expiry, again"

#!/usr/bin/env bash
# netjes policy side by side with the classic tools it replaces, all from
# Debian's packages: postfix-policyd-spf-python for SPF and postgrey for
# greylisting. The same load (policy_load: CONNS connections, N requests in
# all) goes to each, with DNS from the test DNS server on 127.0.0.153:53.
#
# policyd-spf is a stdin/stdout program that Postfix's spawn(8) starts per
# connection; socat does the same here. Its resolver reads
# /etc/resolv.conf, so it runs in a mount namespace where that file names
# the test server: the machine's own resolver is never changed.
#
# Prints requests per second and the p99 latency, and netjes's ratio to
# each classic tool, from one run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
CONNS=${CONNS:-20}
N=${N:-20000}

need=()
command -v policyd-spf >/dev/null 2>&1 || need+=(postfix-policyd-spf-python)
command -v postgrey >/dev/null 2>&1 || need+=(postgrey)
command -v socat >/dev/null 2>&1 || need+=(socat)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
apt_install "${need[@]}"
cargo build --release --locked -q -p netjes -p netjes-testdns --bins
cargo build --release --locked -q -p netjes-policy --example policy_load
BIN=target/release
LOAD="$BIN/examples/policy_load"

bench_workdir

cat > "$W/zone" <<'Z'
bench.example.        TXT "v=spf1 ip4:192.0.2.0/24 -all"
mail.bench.example.   TXT "v=spf1 a -all"
mail.bench.example.   A   192.0.2.10
Z
test_dns "$W/zone"

netjes_policy() { # $1 port, $2 spf on/off, $3 greylist on/off, $4 Redis URL (optional)
    mkdir -p "$W/n$1"
    printf 'listen = "inet:127.0.0.1:%s"\ndata_dir = "%s"\ntrusted_networks = []\nhostname = "mx.bench"\n[spf]\nenabled = %s\n[greylist]\nenabled = %s\n' \
        "$1" "$W/n$1" "$2" "$3" > "$W/n$1.toml"
    if [ -n "${4:-}" ]; then printf '[store]\nurl = "%s"\n' "$4" >> "$W/n$1.toml"; fi
    RUST_LOG=warn "$BIN/netjes" policy --config "$W/n$1.toml" --nameserver 127.0.0.153:53 2>/dev/null &
    pids+=($!)
    wait_port "$1"
}

# SPF: netjes (greylisting off) against policyd-spf.
netjes_policy 20040 true false
"$LOAD" 127.0.0.1:20040 "$CONNS" "$N" spf > "$W/netjes-spf.json"
with_test_resolver socat TCP-LISTEN:20041,bind=127.0.0.1,reuseaddr,fork EXEC:/usr/bin/policyd-spf &
pids+=($!)
wait_port 20041
"$LOAD" 127.0.0.1:20041 "$CONNS" "$N" spf > "$W/policyd-spf.json"

# Greylisting: netjes (SPF off) against postgrey, both with a new triplet
# every request.
netjes_policy 20042 false true
"$LOAD" 127.0.0.1:20042 "$CONNS" "$N" greylist > "$W/netjes-grey.json"
mkdir -p "$W/pg" && chown postgrey "$W/pg" 2>/dev/null || true
postgrey --inet=127.0.0.1:20043 --dbdir="$W/pg" --delay=300 --pidfile="$W/pg/pid" 2>/dev/null &
pids+=($!)
wait_port 20043
"$LOAD" 127.0.0.1:20043 "$CONNS" "$N" greylist > "$W/postgrey.json"

# Greylisting with the state in Redis (a local redis-server on a unix
# socket, append-only file synced every second as a production Redis
# would run): one netjes policy, then two sharing it, each given half the
# load at the same time (two MX hosts).
redis-server --port 0 --unixsocket "$W/redis.sock" --dir "$W" --save '' --appendonly yes --appendfsync everysec --daemonize no >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$W/redis.sock" ] && break; sleep 0.1; done
netjes_policy 20044 false true "redis+unix://$W/redis.sock"
"$LOAD" 127.0.0.1:20044 "$CONNS" "$N" greylist > "$W/netjes-redis.json"
netjes_policy 20045 false true "redis+unix://$W/redis.sock"
"$LOAD" 127.0.0.1:20044 "$((CONNS / 2))" "$((N / 2))" greylist > "$W/netjes-redis2a.json" &
la=$!
"$LOAD" 127.0.0.1:20045 "$((CONNS / 2))" "$((N / 2))" greylist > "$W/netjes-redis2b.json"
wait "$la"

python3 - "$W" "$CONNS" <<'PY'
import json, sys, os
w, conns = sys.argv[1], sys.argv[2]
r = {k: json.load(open(os.path.join(w, k + ".json"))) for k in ["netjes-spf", "policyd-spf", "netjes-grey", "postgrey", "netjes-redis", "netjes-redis2a", "netjes-redis2b"]}
# Two hosts at once: the requests of both over the longer of the two runs.
a, b = r["netjes-redis2a"], r["netjes-redis2b"]
secs = max(a["requests"] / a["rps"], b["requests"] / b["rps"])
r["netjes-redis2"] = {"requests": a["requests"] + b["requests"], "rps": (a["requests"] + b["requests"]) / secs, "p99_ms": max(a["p99_ms"], b["p99_ms"])}
print(f"{conns} connections, {r['netjes-spf']['requests']:,} requests each, one run\n")
print("| service | requests/s | p99 latency |")
print("|---|---|---|")
for k, label in [("netjes-spf", "netjes policy, SPF"), ("policyd-spf", "postfix-policyd-spf-python"), ("netjes-grey", "netjes policy, greylisting"), ("netjes-redis", "netjes policy, greylisting in Redis"), ("netjes-redis2", "two netjes policy sharing Redis (together)"), ("postgrey", "postgrey")]:
    print(f"| {label} | {r[k]['rps']:,.0f} | {r[k]['p99_ms']:.2f} ms |")
def ratio(a, b):
    return r[a]['rps'] / r[b]['rps'], r[b]['p99_ms'] / r[a]['p99_ms']
t, l = ratio("netjes-spf", "policyd-spf")
print(f"\nSPF: netjes answers {t:.0f}x the requests per second of policyd-spf, with a p99 {l:.0f}x lower.")
t, l = ratio("netjes-grey", "postgrey")
print(f"Greylisting: netjes answers {t:.0f}x the requests per second of postgrey, with a p99 {l:.0f}x lower.")
t, l = ratio("netjes-redis", "postgrey")
print(f"Greylisting in Redis: {t:.0f}x postgrey's requests per second, p99 {l:.0f}x lower.")
t, l = ratio("netjes-redis2", "postgrey")
print(f"Two hosts sharing Redis, together: {t:.0f}x postgrey's requests per second, p99 {l:.0f}x lower.")
PY

#!/usr/bin/env bash
# netjes milter side by side with OpenDKIM (signing) and OpenDKIM plus
# OpenDMARC (verification), and with rspamd 3.4 (its milter: the proxy
# worker in milter mode, scanning itself, with only its DKIM signing, DKIM,
# SPF, DMARC and ARC modules on), all from Debian's packages. The same milter
# client load (milter_load: CONNS connections, N messages in all, whole
# SMTP transactions) goes to each; for verification the client passes each
# message through OpenDKIM and then OpenDMARC, as Postfix chains them.
#
# Both sides use the same KeyTable and SigningTable, and DNS from the test
# DNS server on 127.0.0.153:53. The classic tools reach it through a private
# mount namespace's resolv.conf; the machine's resolver is never changed.
#
# Prints messages per second, messages per CPU second of the daemon(s) and
# the p99 latency, and netjes's ratios, from one run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
CONNS=${CONNS:-8}
N=${N:-4000}

need=()
command -v opendkim >/dev/null 2>&1 || need+=(opendkim)
command -v opendmarc >/dev/null 2>&1 || need+=(opendmarc)
command -v rspamd >/dev/null 2>&1 || need+=(rspamd)
apt_install "${need[@]}"
cargo build --release --locked -q -p netjes -p netjes-testdns --bins
cargo build --release --locked -q -p netjes-milter --example milter_load
BIN=target/release
LOAD="$BIN/examples/milter_load"

bench_workdir

mkdir -p "$W/keys"
"$BIN/netjes" dkim keygen --domain example.com --selector s1 --out-dir "$W/keys" >/dev/null
chown opendkim "$W/keys/s1.private"
chmod 600 "$W/keys/s1.private"
echo "s1 example.com:s1:$W/keys/s1.private" > "$W/KeyTable"
echo "*@example.com s1" > "$W/SigningTable"
{
    echo 'example.com.         TXT "v=spf1 ip4:192.0.2.0/24 -all"'
    echo '_dmarc.example.com.  TXT "v=DMARC1; p=reject"'
    sed -e 's/^s1._domainkey\t*IN\t*TXT\t*(/s1._domainkey.example.com. TXT/' -e 's/ *)  *;.*$//' "$W/keys/s1.txt" | tr -d '\n\t' | sed 's/"  *"/" "/g'
    echo
} > "$W/zone"
test_dns "$W/zone"

python3 - "$W" <<'PY'
import sys
w = sys.argv[1]
head = "From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: benchmark\nDate: Mon, 23 Nov 2026 09:00:00 +0000\nMessage-ID: <bench@example.com>\nMIME-Version: 1.0\nContent-Type: text/plain\n\n"
line = "The quick brown fox jumps over the lazy dog, again and again and again.\n"
# Whole lines: Debian's OpenDKIM 2.11 answers accept without signing when
# the body ends in a partial line (the answers column counts signatures).
for name, size in [("4k", 4 * 1024), ("100k", 100 * 1024)]:
    body = line * (size // len(line))
    open(f"{w}/{name}.eml", "w").write(head + body)
PY
"$BIN/netjes" dkim sign --domain example.com --selector s1 --key "$W/keys/s1.private" "$W/4k.eml" > "$W/4k-signed.eml"

cpu() { local t=0; for p in "$@"; do set -- $(cut -d' ' -f14,15 "/proc/$p/stat"); t=$((t + $1 + $2)); done; echo "$t"; }
measure() { # $1 name, $2 client ip, $3 message, $4.. "port:pid" of each milter
    local name=$1 ip=$2 msg=$3; shift 3
    local ports=() ps=()
    for x in "$@"; do ports+=("127.0.0.1:${x%%:*}"); ps+=("${x##*:}"); done
    "$LOAD" "$CONNS" 200 "$ip" "$msg" "${ports[@]}" >/dev/null   # warm the caches
    local c0; c0=$(cpu "${ps[@]}")
    "$LOAD" "$CONNS" "$N" "$ip" "$msg" "${ports[@]}" > "$W/$name.json"
    local c1; c1=$(cpu "${ps[@]}")
    python3 - "$W/$name.json" "$((c1 - c0))" "$(getconf CLK_TCK)" <<'PY'
import json, sys
p, ticks, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
d = json.load(open(p))
d["cpu_seconds"] = ticks / hz
json.dump(d, open(p, "w"))
PY
}

# netjes milter.
printf 'listen = "inet:20070@127.0.0.1"\nauthserv_id = "mx.bench"\ninternal_hosts = ["127.0.0.1"]\nkey_table = "%s/KeyTable"\nsigning_table = "refile:%s/SigningTable"\ndata_dir = "%s/nd"\n' "$W" "$W" "$W" > "$W/milter.toml"
RUST_LOG=warn "$BIN/netjes" milter --config "$W/milter.toml" --nameserver 127.0.0.153:53 2>/dev/null &
NJ=$!; pids+=($NJ); wait_port 20070

# OpenDKIM (signs and verifies) and OpenDMARC (SPF and DMARC), in a mount
# namespace whose resolv.conf names the test DNS server.
cat > "$W/opendkim.conf" <<CONF
Syslog no
Mode sv
Socket inet:20071@127.0.0.1
KeyTable file:$W/KeyTable
SigningTable refile:$W/SigningTable
InternalHosts 127.0.0.1
Canonicalization relaxed/relaxed
Nameservers 127.0.0.153
UserID opendkim
Background no
PidFile $W/opendkim.pid
CONF
cat > "$W/opendmarc.conf" <<CONF
Syslog false
Socket inet:20072@127.0.0.1
AuthservID mx.bench
TrustedAuthservIDs mx.bench
SPFSelfValidate true
RejectFailures true
UserID opendmarc
Background false
PidFile $W/opendmarc.pid
CONF
with_test_resolver opendkim -f -x "$W/opendkim.conf" &
pids+=($!); wait_port 20071
OD=$(pgrep -f "opendkim -f -x $W/opendkim.conf" | tail -1); pids+=($OD)
with_test_resolver opendmarc -f -c "$W/opendmarc.conf" &
pids+=($!); wait_port 20072
OM=$(pgrep -f "opendmarc -f -c $W/opendmarc.conf" | tail -1); pids+=($OM)

# rspamd: the system's configuration with local.d and override.d of our
# own (--var LOCAL_CONFDIR): every module off but the five, DNS from the
# test server, DMARC's reject enforced as netjes does (rspamd's default
# only scores it), Authentication-Results added as netjes adds it.
R="$W/rspamd"
mkdir -p "$R/local.d" "$R/override.d" "$R/db" "$R/run" "$R/log"
chown -R _rspamd "$R/db" "$R/run" "$R/log"
cp "$W/keys/s1.private" "$W/keys/rspamd.private"; chown _rspamd "$W/keys/rspamd.private"; chmod 600 "$W/keys/rspamd.private"
echo 'dns { nameserver = ["127.0.0.153:53"]; timeout = 2s; retransmits = 2; }' > "$R/local.d/options.inc"
printf 'bind_socket = "127.0.0.1:20073";\nmilter = yes;\ntimeout = 120s;\nupstream "local" { default = yes; self_scan = yes; }\ncount = 1;\n' > "$R/override.d/worker-proxy.inc"
for w in normal controller fuzzy; do echo 'enabled = false;' > "$R/override.d/worker-$w.inc"; done
for m in antivirus asn aws_s3 bimi chartable clickhouse dcc elastic emails external_relay external_services force_actions forged_recipients fuzzy_check greylist hfilter history_redis http_headers maillist metadata_exporter metric_exporter mid mime_types multimap mx_check neural once_received p0f phishing ratelimit rbl regexp replies reputation rspamd_update spamassassin spamtrap surbl trie url_redirector whitelist; do
    echo 'enabled = false;' > "$R/override.d/$m.conf"
done
printf 'enabled = true;\nsign_local = true;\nuse_domain = "header";\nallow_username_mismatch = true;\npath = "%s";\nselector = "s1";\n' "$W/keys/rspamd.private" > "$R/local.d/dkim_signing.conf"
echo 'actions = { reject = "reject"; quarantine = "add_header"; }' > "$R/local.d/dmarc.conf"
echo 'use = ["authentication-results"];' > "$R/local.d/milter_headers.conf"
printf 'type = "console";\nlevel = "error";\n' > "$R/local.d/logging.inc"
rspamd -f -u _rspamd -g _rspamd -c /etc/rspamd/rspamd.conf --var=LOCAL_CONFDIR="$R" --var=DBDIR="$R/db" --var=RUNDIR="$R/run" --var=LOGDIR="$R/log" >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 300); do (echo > /dev/tcp/127.0.0.1/20073) 2>/dev/null && break; sleep 0.1; done
RS=$(pgrep -f "rspamd: " | tr '\n' ' ')

measure netjes-sign-4k 127.0.0.1 "$W/4k.eml" "20070:$NJ"
measure opendkim-sign-4k 127.0.0.1 "$W/4k.eml" "20071:$OD"
measure netjes-sign-100k 127.0.0.1 "$W/100k.eml" "20070:$NJ"
measure opendkim-sign-100k 127.0.0.1 "$W/100k.eml" "20071:$OD"
measure netjes-verify-4k 192.0.2.7 "$W/4k-signed.eml" "20070:$NJ"
measure classic-verify-4k 192.0.2.7 "$W/4k-signed.eml" "20071:$OD" "20072:$OM"
# rspamd's CPU is that of all its processes (main, proxy, hs_helper).
rspamd_measure() { # $1 name, $2 client ip, $3 message
    local name=$1 ip=$2 msg=$3
    "$LOAD" "$CONNS" 200 "$ip" "$msg" 127.0.0.1:20073 >/dev/null
    local c0; c0=$(cpu $RS)
    "$LOAD" "$CONNS" "$N" "$ip" "$msg" 127.0.0.1:20073 > "$W/$name.json"
    local c1; c1=$(cpu $RS)
    python3 - "$W/$name.json" "$((c1 - c0))" "$(getconf CLK_TCK)" <<'PY'
import json, sys
p, ticks, hz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
d = json.load(open(p))
d["cpu_seconds"] = ticks / hz
json.dump(d, open(p, "w"))
PY
}
rspamd_measure rspamd-sign-4k 127.0.0.1 "$W/4k.eml"
rspamd_measure rspamd-sign-100k 127.0.0.1 "$W/100k.eml"
rspamd_measure rspamd-verify-4k 192.0.2.7 "$W/4k-signed.eml"

python3 - "$W" "$CONNS" "$N" <<'PY'
import json, sys, os
w, conns, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
r = {k[:-5]: json.load(open(os.path.join(w, k))) for k in os.listdir(w) if k.endswith(".json")}
print(f"{conns} connections, {n:,} messages each, one run\n")
print("| work | milter | messages/s | messages per CPU second | p99 | answers |")
print("|---|---|---|---|---|---|")
rows = [("sign-4k", "RSA-2048 signing, 4 KB", "opendkim"), ("sign-100k", "RSA-2048 signing, 100 KB", "opendkim"), ("verify-4k", "SPF+DKIM+DMARC verification, 4 KB", "classic")]
for key, label, other in rows:
    for who, name in [("netjes", "netjes milter"), (other, "OpenDKIM" if other == "opendkim" else "OpenDKIM + OpenDMARC"), ("rspamd", "rspamd 3.4 (milter)")]:
        d = r[f"{who}-{key}"]
        per_cpu = d["messages"] / d["cpu_seconds"] if d["cpu_seconds"] > 0 else float("nan")
        outcomes = ", ".join(f"{k} {v}" for k, v in d["outcomes"].items())
        print(f"| {label} | {name} | {d['rate']:,.0f} | {per_cpu:,.0f} | {d['p99_ms']:.2f} ms | {outcomes} |")
print()
for key, label, other in rows:
    a, b = r[f"netjes-{key}"], r[f"{other}-{key}"]
    cpu = (a["messages"] / a["cpu_seconds"]) / (b["messages"] / b["cpu_seconds"]) if a["cpu_seconds"] and b["cpu_seconds"] else float("nan")
    print(f"{label}: netjes {a['rate'] / b['rate']:.1f}x the messages per second, {cpu:.1f}x per CPU second, p99 {b['p99_ms'] / a['p99_ms']:.1f}x lower.")
    c = r[f"rspamd-{key}"]
    cpu = (a["messages"] / a["cpu_seconds"]) / (c["messages"] / c["cpu_seconds"]) if a["cpu_seconds"] and c["cpu_seconds"] else float("nan")
    print(f"{label}, against rspamd: netjes {a['rate'] / c['rate']:.1f}x the messages per second, {cpu:.1f}x per CPU second, p99 {c['p99_ms'] / a['p99_ms']:.1f}x lower.")
PY

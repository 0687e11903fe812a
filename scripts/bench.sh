#!/usr/bin/env bash
# Runs the engine's criterion benchmarks and `openssl speed rsa2048` in one
# go and prints messages per second per core, with RSA-2048 signing as a
# fraction of what OpenSSL does on this machine (the physical limit).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p netjes-auth --bench auth -- --noplot >/dev/null
cargo bench -p netjes-check --bench check -- --noplot >/dev/null
cargo bench -p netjes-analyze --bench analyze -- --noplot >/dev/null
openssl_sign=$(openssl speed -seconds 3 rsa2048 2>/dev/null | awk '/^rsa 2048 bits/ {print $6}')
python3 - "$openssl_sign" <<'PY'
import json, sys, os
base = "target/criterion"
rows = [
    ("dkim_sign_4k/rsa2048", "DKIM sign, RSA-2048, 4 KB"),
    ("dkim_sign_4k/ed25519", "DKIM sign, Ed25519, 4 KB"),
    ("dkim_verify_4k/rsa2048", "DKIM verify, RSA-2048, 4 KB"),
    ("dkim_verify_4k/ed25519", "DKIM verify, Ed25519, 4 KB"),
    ("spf/include_tree_warm_cache", "SPF, 3-level include tree, warm cache"),
    ("verify_10k/spf_dkim_arc_dmarc_warm_cache", "verify (SPF+DKIM+ARC+DMARC), 10 KB, warm cache"),
]
openssl = float(sys.argv[1])
print(f"| benchmark | messages/s per core |")
print(f"|---|---|")
for key, label in rows:
    est = json.load(open(os.path.join(base, key, "new", "estimates.json")))
    ns = est["mean"]["point_estimate"]
    print(f"| {label} | {1e9/ns:,.0f} |")
sign = 1e9 / json.load(open(os.path.join(base, "dkim_sign_4k/rsa2048/new/estimates.json")))["mean"]["point_estimate"]
print(f"\nopenssl speed rsa2048: {openssl:,.0f} signs/s; DKIM RSA-2048 signing runs at {sign/openssl:.0%} of it.")
audit_ms = json.load(open(os.path.join(base, "check/audit_20ms_per_answer/new/estimates.json")))["mean"]["point_estimate"] / 1e6
import glob
for d in glob.glob(os.path.join(base, "analyze", "corpus_*")):
    n = int(os.path.basename(d).split("_")[1])
    ns = json.load(open(os.path.join(d, "new", "estimates.json")))["mean"]["point_estimate"]
    print(f"netjes analyze over the {n} corpus messages, warm DNS cache, no blocklists: {n * 1e9 / ns:,.0f} messages/s.")
print(f"netjes check, 20 ms per DNS answer: {audit_ms:.0f} ms wall against a critical path of 80 ms ({audit_ms/80:.2f}x).")
PY

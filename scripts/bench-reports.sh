#!/usr/bin/env bash
# Reads the corpora's DMARC aggregate reports with netjes (criterion) and
# with parsedmarc (from PyPI, in a virtualenv under target/; offline: no
# DNS, no downloads), over the same files (those both read), and prints
# reports/s and MB/s of each and the ratio, from one run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
bench_workdir
python=$(parsedmarc_venv)
# The candidates: every aggregate report file of the corpora.
find testdata/parsedmarc-samples/aggregate testdata/dmarc-report-viewer/dmarc-reports \
     testdata/opendmarc-aggregate-reports testdata/mox-testdata/dmarc-reports \
     testdata/mail-auth-resources/dmarc-feedback \
     -maxdepth 1 -type f \( -name '*.xml' -o -name '*.gz' -o -name '*.zip' \) | sort > "$W/candidates"
"$python" - "$W/candidates" "$W/files" "$W/parsedmarc.json" <<'PY'
import sys, time, json, logging, parsedmarc
logging.disable(logging.CRITICAL)
cands = [l.strip() for l in open(sys.argv[1]) if l.strip()]
data = {p: open(p, "rb").read() for p in cands}
def parse(b):
    return parsedmarc.parse_aggregate_report_file(b, offline=True, always_use_local_files=True)
ok = []
for p in cands:
    try:
        parse(data[p]); ok.append(p)
    except Exception:
        pass
import os
open(sys.argv[2], "w").write("".join(os.path.abspath(p) + "\n" for p in ok))
size = sum(len(data[p]) for p in ok)
rounds, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < 10 or rounds < 3:
    for p in ok:
        parse(data[p])
    rounds += 1
secs = (time.perf_counter() - t0) / rounds
json.dump({"files": len(ok), "bytes": size, "seconds": secs, "candidates": len(cands)}, open(sys.argv[3], "w"))
PY
NETJES_BENCH_FILES="$W/files" cargo bench -q -p netjes-reports --bench reports -- --noplot >"$W/bench.log" 2>&1 || { cat "$W/bench.log"; exit 1; }
python3 - "$W/parsedmarc.json" <<'PY'
import json, sys, glob
p = json.load(open(sys.argv[1]))
d = glob.glob("target/criterion/reports/aggregate_corpus_*_files")
d = [x for x in d if x.endswith(f"_{p['files']}_files")][0]
ns = json.load(open(d + "/new/estimates.json"))["mean"]["point_estimate"]
n_secs = ns / 1e9
mb = p["bytes"] / 1e6
print(f"{p['files']} aggregate reports ({mb:.2f} MB) that both read, of {p['candidates']} in the corpora")
print("| reader | reports/s | MB/s |")
print("|---|---|---|")
print(f"| netjes | {p['files']/n_secs:,.0f} | {mb/n_secs:,.1f} |")
print(f"| parsedmarc 11.1.0 (offline) | {p['files']/p['seconds']:,.0f} | {mb/p['seconds']:,.2f} |")
print(f"netjes reads them {p['seconds']/n_secs:,.0f} times as fast as parsedmarc.")
PY

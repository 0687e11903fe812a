#!/usr/bin/env bash
# Runs every netjes test. It installs what the tests need when it is missing,
# so that it works on a fresh machine: a C compiler for the crypto crates,
# SpamAssassin's spamd for `analyze --spamd`, and Postfix with swaks for the
# policy service's and the milter's end-to-end tests (a private Postfix
# instance on 127.0.0.1; the system's Postfix is never touched), dkimpy,
# Dovecot for reading reports over IMAP, Redis and PostgreSQL for shared state, xmllint and parsedmarc for the
# reports netjes writes, and Chromium with its WebDriver
# for the web UI's browser tests.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
# Debian's spamassassin ships its rules in /usr/share/spamassassin, so no
# sa-update (and no network) is needed to run it.
command -v spamd >/dev/null 2>&1 || need_apt+=(spamassassin spamd)
[ -x /usr/sbin/postfix ] || need_apt+=(postfix)
command -v swaks >/dev/null 2>&1 || need_apt+=(swaks)
# Postfix's SMTP client logs in to a customer's smarthost through Cyrus
# SASL's PLAIN and LOGIN modules.
compgen -G "/usr/lib/*/sasl2/libplain.so*" >/dev/null || need_apt+=(libsasl2-modules)
# dkimpy, the independent verifier of what the milter signs.
/usr/bin/python3 -c "import dkim" >/dev/null 2>&1 || need_apt+=(python3-dkim)
# Dovecot: the IMAP server that report mailboxes are read from in tests
# (a throwaway instance per test; the system's is never started).
[ -x /usr/sbin/dovecot ] || need_apt+=(dovecot-imapd)
# Redis: the policy service's shared state (a throwaway instance on a
# unix socket per test; the tests never use the system's).
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# PostgreSQL: the milters' shared verdicts (initdb in a temporary folder
# per test, as the postgres user; the system's cluster is never used).
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need_apt+=(postgresql)
# xmllint checks the reports netjes writes against RFC 9990's schema.
command -v xmllint >/dev/null 2>&1 || need_apt+=(libxml2-utils)
# systemd-analyze checks the units in contrib/ (only `verify`; no systemd
# needs to run).
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
apt_install "${need_apt[@]}"
# parsedmarc (PyPI), the reference reader the reports netjes writes must
# satisfy, in a virtualenv under target/.
NETJES_PARSEDMARC=$(parsedmarc_venv)
export NETJES_PARSEDMARC

# Tests never query public DNS: every test starts its own DNS server on
# 127.0.0.1. This makes a forgotten --nameserver fail loudly instead.
export NETJES_TEST=1
# A one-off build gains nothing from incremental state, which would double
# the target directory's size. A developer may set CARGO_INCREMENTAL=1.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
cargo test --workspace --locked --no-fail-fast "$@"
# The fuzz targets (a crate of their own, outside the workspace) must keep
# building as the parsers change.
cargo check --locked --manifest-path fuzz/Cargo.toml

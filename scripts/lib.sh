# Shell helpers shared by scripts/test.sh and the bench scripts (sourced).

# apt_install PKG...: installs Debian packages, through sudo when not root.
apt_install() {
    (($#)) || return 0
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# bench_workdir: a scratch directory in $W under target/ (not /tmp:
# OpenDKIM refuses keys on a path others can write to), removed at exit
# with every process whose pid is added to the pids array.
bench_workdir() {
    mkdir -p target
    W=$(mktemp -d -p "$PWD/target" bench.XXXXXX)
    chmod 755 "$W"
    pids=()
    trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"' EXIT
}

# wait_port PORT: until something listens on 127.0.0.1:PORT (10 s at most).
wait_port() {
    for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
    echo "port $1 never opened" >&2
    exit 1
}

# test_dns ZONEFILE: the test DNS server on 127.0.0.153:53, and
# $W/resolv.conf naming it, for the classic tools (see with_test_resolver).
test_dns() {
    target/release/netjes-testdns "$1" 127.0.0.153:53 2>/dev/null &
    pids+=($!)
    echo "nameserver 127.0.0.153" > "$W/resolv.conf"
}

# with_test_resolver CMD... &: runs CMD (in place of the background
# subshell, so its pid is CMD's) in a private mount namespace whose
# /etc/resolv.conf names the test DNS server; the machine's is untouched.
with_test_resolver() {
    exec unshare -m sh -c "mount --bind '$W/resolv.conf' /etc/resolv.conf && exec \"\$@\"" sh "$@"
}

# parsedmarc_venv: parsedmarc from PyPI in a virtualenv under target/ (the
# reference reader that netjes's reports are checked with, and benched
# against); prints the venv's python.
parsedmarc_venv() {
    local venv=target/parsedmarc-venv
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import parsedmarc" 2>/dev/null; then
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install -q 'parsedmarc==11.1.0' >&2
    fi
    echo "$PWD/$venv/bin/python"
}

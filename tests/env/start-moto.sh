#!/usr/bin/env bash
# Starts moto's S3 server on 127.0.0.1:58300 (the PITR tests' object
# storage for barman-cloud), unless it already answers. Data lives in
# memory only; the tests use a bucket of their own per run. Safe to run again.
set -euo pipefail

port=${ZPERSIST_MOTO_PORT:-58300}
dir=/run/zpersist-test-moto
moto_venv=${ZPERSIST_MOTO_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/zpersist-test/moto-venv}

answers() {
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null
}

answers && exit 0
if [ ! -x "$moto_venv/bin/moto_server" ]; then
    echo "error: $moto_venv/bin/moto_server is missing; run tests/env/install.sh first" >&2
    exit 1
fi
mkdir -p "$dir"
if [ -f "$dir/moto.pid" ] && kill -0 "$(cat "$dir/moto.pid")" 2>/dev/null; then
    kill "$(cat "$dir/moto.pid")"
fi
setsid "$moto_venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 </dev/null &
echo $! >"$dir/moto.pid"
for _ in $(seq 1 100); do
    answers && exit 0
    sleep 0.1
done
echo "error: moto's S3 server did not answer on 127.0.0.1:$port within 10 s; see $dir/moto.log" >&2
exit 1

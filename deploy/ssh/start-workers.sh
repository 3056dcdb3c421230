#!/usr/bin/env bash
# Starts one p2plab worker on each host over ssh, and writes the workers file for the controller.
#
#   p2plab token p2plab.token                                  # once
#   deploy/ssh/start-workers.sh node1 node2 alice@node3       # writes workers.txt
#   p2plab script my.rhai --workers workers.txt --token-file p2plab.token
#   deploy/ssh/start-workers.sh --stop node1 node2 alice@node3
#
# What each host needs: ssh without a password prompt, `sudo` without a password (the worker
# runs as root), and the same p2plab build with libp2plab_shim.so next to it, at $P2PLAB_REMOTE.
# The token is copied to a folder of your own in the host's /tmp (mode 0700, file 0600), never
# passed on a command line. The worker's output goes to that folder's worker.log.
#
# Settings, from the environment:
#   P2PLAB_PORT          TCP (control) and UDP (data plane) port of the workers   [7000]
#   P2PLAB_TOKEN_FILE    the token, as written by `p2plab token FILE`              [p2plab.token]
#   P2PLAB_WORKERS_FILE  the workers file to write (one host:port a line)          [workers.txt]
#   P2PLAB_REMOTE        path of p2plab on the hosts                               [/usr/local/bin/p2plab]
#   P2PLAB_LISTEN_HOST   address the workers listen on                             [0.0.0.0]
set -euo pipefail

PORT=${P2PLAB_PORT:-7000}
TOKEN_FILE=${P2PLAB_TOKEN_FILE:-p2plab.token}
WORKERS_FILE=${P2PLAB_WORKERS_FILE:-workers.txt}
REMOTE=${P2PLAB_REMOTE:-/usr/local/bin/p2plab}
LISTEN_HOST=${P2PLAB_LISTEN_HOST:-0.0.0.0}
SSH=(ssh -o BatchMode=yes -o ConnectTimeout=10)

usage() {
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

action=start
if [[ ${1:-} == --stop ]]; then
    action=stop
    shift
fi
if [[ $# -eq 0 || ${1:-} == -* ]]; then
    usage
fi
if ! [[ $PORT =~ ^[0-9]+$ ]] || ((PORT < 1 || PORT > 65535)); then
    echo "error: P2PLAB_PORT must be a port number, not \"$PORT\"" >&2
    exit 2
fi

# Runs on each host, as you, through `bash -s`. The values come first, as assignments.
read -r -d '' REMOTE_SCRIPT <<'EOF' || true
set -euo pipefail
dir=/tmp/p2plab-worker-$(id -un)-$PORT
pidfile=$dir/worker.pid
running() { [[ -f $pidfile ]] && ps -p "$(cat "$pidfile")" -o args= 2>/dev/null | grep -q p2plab; }

if [[ $ACTION == stop ]]; then
    if running; then
        pid=$(cat "$pidfile")
        sudo -n kill -TERM "$pid"
        for _ in $(seq 50); do running || break; sleep 0.1; done
        if running; then sudo -n kill -KILL "$pid"; echo "$(hostname): killed worker $pid"; fi
        echo "$(hostname): stopped the worker on port $PORT"
    else
        echo "$(hostname): no worker of yours on port $PORT"
    fi
    rm -f "$pidfile" "$dir/token"
    exit 0
fi

if [[ ! -x $BIN ]]; then
    echo "$(hostname): $BIN is not an executable file (set P2PLAB_REMOTE)" >&2; exit 1
fi
if [[ ! -e $(dirname "$BIN")/libp2plab_shim.so ]]; then
    echo "$(hostname): the bind shim libp2plab_shim.so is not next to $BIN" >&2; exit 1
fi
mkdir -p -m 700 "$dir"
if [[ ! -O $dir ]]; then echo "$(hostname): $dir belongs to someone else" >&2; exit 1; fi
if running; then
    echo "$(hostname): a worker is already running (pid $(cat "$pidfile")); stop it first with --stop" >&2
    exit 1
fi
(umask 077 && printf '%s' "$TOKEN_B64" | base64 -d > "$dir/token")
# setsid: the worker outlives this ssh session. Its output goes to a file, so ssh returns.
setsid sudo -n "$BIN" worker --listen "$LISTEN:$PORT" --token-file "$dir/token" \
    > "$dir/worker.log" 2>&1 < /dev/null &
echo $! > "$pidfile"
sleep 1
if ! running; then
    echo "$(hostname): the worker did not start; its log ($dir/worker.log) says:" >&2
    tail -n 20 "$dir/worker.log" >&2
    exit 1
fi
echo "$(hostname): worker listening on $LISTEN:$PORT (log: $dir/worker.log)"
EOF

token_b64=
if [[ $action == start ]]; then
    if [[ ! -r $TOKEN_FILE ]]; then
        echo "error: no token file $TOKEN_FILE: make one with \`p2plab token $TOKEN_FILE\`" >&2
        exit 2
    fi
    token_b64=$(base64 -w0 < "$TOKEN_FILE")
fi

failed=0
hosts=()
for target in "$@"; do
    # The values travel on standard input with the script, so the token is never on a command line.
    if {
        printf 'ACTION=%q PORT=%q BIN=%q LISTEN=%q TOKEN_B64=%q\n' \
            "$action" "$PORT" "$REMOTE" "$LISTEN_HOST" "$token_b64"
        printf '%s\n' "$REMOTE_SCRIPT"
    } | "${SSH[@]}" "$target" bash -s; then
        hosts+=("${target#*@}")
    else
        echo "error: $target: failed (see above)" >&2
        failed=1
    fi
done

if [[ $action == start ]]; then
    {
        echo "# written by $(basename "$0") on $(date -u +%Y-%m-%dT%H:%M:%SZ); worker k is line k, from 0"
        for host in "${hosts[@]}"; do
            echo "$host:$PORT"
        done
    } > "$WORKERS_FILE"
    echo "${#hosts[@]} worker(s) in $WORKERS_FILE"
    if ((failed)); then
        echo "error: some workers did not start: $WORKERS_FILE lists only those that did" >&2
    fi
fi
exit "$failed"

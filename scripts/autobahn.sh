#!/usr/bin/env bash
# The Autobahn|Testsuite 0.8.2 against both roles, all cases (1-7, 9, 10, 12, 13):
#   server:     `wstest -m fuzzingclient` against examples/echo.rs (the actix-web
#               route, with ws::on_connect);
#   standalone: the same against `echo --standalone` (Server::listen);
#   client:     `wstest -m fuzzingserver` against examples/autobahn_client.rs
#               (ws::Client with permessage-deflate, echoing every case).
# AUTOBAHN_ROLES chooses (default "server client"); the roles run at the same time. Fails unless every case is OK or INFORMATIONAL in
# both the suite's verdict and its closing verdict (`behavior`, `behaviorClose`).
# Prints the counts per section. Reports: target/autobahn/reports/*/index.html.
#
# The suite runs on Python 2.7 (AUTOBAHN_PYTHON, else pyenv's 2.7.18, else
# python2.7 on PATH); it is installed under target/autobahn/prefix from
# config/autobahn/requirements.txt. Without Python 2.7 this says so and exits 0,
# except under CI=true, where it fails.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$root/target/autobahn
mkdir -p "$work"

find_python() {
  local candidates=("${AUTOBAHN_PYTHON:-}" "$HOME/.pyenv/versions/2.7.18/bin/python")
  if command -v pyenv >/dev/null; then
    candidates+=("$(PYENV_VERSION=2.7.18 pyenv which python 2>/dev/null || true)")
  fi
  candidates+=("$(command -v python2.7 || true)")
  local p
  for p in "${candidates[@]}"; do
    if [ -n "$p" ] && [ -x "$p" ] &&
      "$p" -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

if ! python=$(find_python); then
  if [ "${CI:-}" = true ]; then
    echo "autobahn: no Python 2.7 found (AUTOBAHN_PYTHON, pyenv 2.7.18, python2.7); CI needs it" >&2
    exit 1
  fi
  echo "autobahn: no Python 2.7 found (AUTOBAHN_PYTHON, pyenv 2.7.18, python2.7): skipped" >&2
  exit 0
fi

prefix=$work/prefix
site=$prefix/lib/python2.7/site-packages
stamp=$prefix/.requirements
if ! cmp -s "$stamp" config/autobahn/requirements.txt; then
  echo "autobahn: installing the suite into $prefix"
  rm -rf "$prefix"
  PYTHONWARNINGS=ignore "$python" -m pip install -q --disable-pip-version-check \
    --prefix "$prefix" -r config/autobahn/requirements.txt
  cp config/autobahn/requirements.txt "$stamp"
fi
# PYTHONPATH alone would not read zope.interface's .pth file: addsitedir does.
launcher='
import site, sys
site.addsitedir(sys.argv[1])
sys.argv = ["wstest"] + sys.argv[2:]
from autobahntestsuite.wstest import run
run()'
export PYTHONWARNINGS=ignore
wstest=("$python" -c "$launcher" "$site")

cargo build --release --example echo --example autobahn_client
bin=$root/target/release/examples

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# Wait until something listens on 127.0.0.1:$1 (at most 30 s).
wait_port() {
  local i
  for i in $(seq 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "autobahn: nothing listens on port $1" >&2
  return 1
}

# The server role: fuzzingclient against the echo example ($1: report name,
# $2: port, then the example's extra arguments).
server_role() {
  local name=$1 port=$2
  shift 2
  local spec=$work/fuzzingclient-$name.json
  sed -e "s#ws://127.0.0.1:19001#ws://127.0.0.1:$port#" -e "s#reports/server#reports/$name#" \
    config/autobahn/fuzzingclient.json >"$spec"
  "$bin/echo" --bind "127.0.0.1:$port" "$@" >"$work/$name-echo.log" 2>&1 &
  local echo_pid=$!
  trap 'kill "$echo_pid" 2>/dev/null || true' EXIT
  wait_port "$port"
  local started=$SECONDS
  (cd "$work" && exec "${wstest[@]}" -m fuzzingclient -s "$spec") >"$work/$name-wstest.log" 2>&1
  echo "autobahn: $name role took $((SECONDS - started)) s"
  kill "$echo_pid" 2>/dev/null || true
}

# The client role: fuzzingserver, and our client against it.
client_role() {
  (cd "$work" && exec "${wstest[@]}" -m fuzzingserver -s "$root/config/autobahn/fuzzingserver.json") \
    >"$work/client-wstest.log" 2>&1 &
  local suite_pid=$!
  trap 'kill "$suite_pid" 2>/dev/null || true' EXIT
  wait_port 19002
  local started=$SECONDS
  "$bin/autobahn_client" ws://127.0.0.1:19002 websocket-driver >"$work/client.log" 2>&1
  echo "autobahn: client role took $((SECONDS - started)) s"
  kill "$suite_pid" 2>/dev/null || true
}

rm -rf "$work/reports"
started=$SECONDS
for role in ${AUTOBAHN_ROLES:-server client}; do
  case $role in
    server) server_role server 19001 & ;;
    standalone) server_role standalone 19003 --standalone & ;;
    client) client_role & ;;
    *) echo "autobahn: unknown role $role (server, standalone, client)" >&2; exit 2 ;;
  esac
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
pids=()
echo "autobahn: all roles took $((SECONDS - started)) s"
if [ "$status" != 0 ]; then
  echo "autobahn: a role did not finish; logs in $work" >&2
  exit 1
fi

if python3 - "$work/reports" <<'PY'
import collections, json, os, sys

GOOD = {"OK", "INFORMATIONAL"}
failed = False
for role in sorted(os.listdir(sys.argv[1])):
    path = os.path.join(sys.argv[1], role, "index.json")
    with open(path) as f:
        agents = json.load(f)
    for agent, cases in sorted(agents.items()):
        per_section = collections.OrderedDict()
        totals = {"behavior": collections.Counter(), "behaviorClose": collections.Counter()}
        bad = []
        def key(case):
            return [int(p) for p in case.split(".")]
        for case in sorted(cases, key=key):
            result = cases[case]
            section = case.split(".")[0]
            counts = per_section.setdefault(section, collections.Counter())
            for verdict in ("behavior", "behaviorClose"):
                totals[verdict][result[verdict]] += 1
            counts[result["behavior"]] += 1
            if result["behavior"] not in GOOD or result["behaviorClose"] not in GOOD:
                bad.append((case, result["behavior"], result["behaviorClose"]))
        print("%s (%s): %d cases" % (role, agent, len(cases)))
        for section, counts in per_section.items():
            print("  section %-3s %s" % (section, ", ".join(
                "%s %d" % (v, n) for v, n in sorted(counts.items()))))
        for verdict in ("behavior", "behaviorClose"):
            print("  %-13s %s" % (verdict, ", ".join(
                "%s %d" % (v, n) for v, n in sorted(totals[verdict].items()))))
        for case, behavior, close in bad:
            print("  NOT OK: %s behavior=%s behaviorClose=%s" % (case, behavior, close))
            # What the suite saw, so that a failure in CI can be diagnosed from its log.
            try:
                with open(os.path.join(sys.argv[1], role, cases[case]["reportfile"])) as f:
                    report = json.load(f)
            except (OSError, ValueError, KeyError):
                continue
            for field in ("description", "result", "resultClose", "wasNotCleanReason",
                          "droppedByMe", "closedByMe", "failedByMe", "wasClean",
                          "duration", "started", "remoteCloseCode"):
                print("    %-18s %s" % (field, report.get(field)))
        failed = failed or bool(bad)
sys.exit(1 if failed else 0)
PY
then
  :
else
  status=$?
  # The programs' own logs (a panic, a worker restart) for the failures above.
  for log in "$work"/*-echo.log "$work"/client.log; do
    [ -s "$log" ] || continue
    echo "autobahn: last lines of $log:"
    tail -n 40 "$log"
  done
  exit "$status"
fi

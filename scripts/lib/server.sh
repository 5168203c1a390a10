# scripts/lib/server.sh: one benchmark server at a time, for the bench scripts
# (bench-compare.sh, w0-sweep.sh, spin-check.sh). Sourced, not run.
#
# The sourcing script defines `log` (its own prefix) and `dry` (1: print, run
# nothing), and sets PIN (scripts/pin.sh) and, optionally, PIN_RT (an array of
# pin.sh options for the server, e.g. (--rt 1)). It gets:
#   show CMD...                     print a command, shell-quoted
#   start_pinned NAME CPUS PORT LOG SETTLE CMD...
#                                   start CMD pinned to CPUS in the background
#                                   (SRV_PID), wait until PORT accepts, then
#                                   SETTLE seconds; 1 if it died or never came up
#   stop_server                     SIGTERM, up to 10 s, then SIGKILL (SRV_PID)
# and the traps that stop the server when the script exits or is interrupted.

show() { printf '%q ' "$@"; echo; }

SRV_PID=""
stop_server() {
    if [[ -n "$SRV_PID" && "$SRV_PID" != DRY ]] && kill -0 "$SRV_PID" 2>/dev/null; then
        kill -TERM "$SRV_PID" 2>/dev/null
        for _ in $(seq 1 100); do kill -0 "$SRV_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$SRV_PID" 2>/dev/null && kill -KILL "$SRV_PID" 2>/dev/null
        wait "$SRV_PID" 2>/dev/null
    fi
    SRV_PID=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

start_pinned() { # start_pinned NAME CPUS PORT LOG SETTLE CMD...
    local name=$1 cpus=$2 port=$3 out=$4 settle=$5; shift 5
    if [[ $dry -eq 1 ]]; then show "$PIN" ${PIN_RT[@]+"${PIN_RT[@]}"} "$cpus" -- "$@" '&'; SRV_PID=DRY; return 0; fi
    "$PIN" ${PIN_RT[@]+"${PIN_RT[@]}"} "$cpus" -- "$@" >"$out" 2>&1 &
    SRV_PID=$!
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then sleep "$settle"; return 0; fi
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.1
    done
    log "$name did not come up on port $port (see $out)"; stop_server; return 1
}

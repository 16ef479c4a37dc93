# Shared by scripts/stack, scripts/demo and scripts/test. Sourced, not run.
#
# Everything here is idempotent: a second run finds what the first one made and
# moves on. Slow artefacts (the Asterisk root filesystem) live in a cache
# outside the work tree so fresh clones reuse them.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE_DIR=${DIALER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dialer-server}
ROOTFS=${ASTERISK_ROOTFS:-$CACHE_DIR/asterisk-rootfs}
VENV=${DIALER_VENV:-$ROOT/.venv}

log() { printf '\033[1m[%s]\033[0m %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Port slots: the default ports of a stack. "demo" is slot 0 and "test" slot 1
# (ports that docs, users and the test suite rely on); any other name takes
# STACK_PORT_SLOT, 2 by default (the benchmarks' "bench"), and keeps the slot
# it was started on (see stack_slot). Slot s = 5r + g (g 0-4, r 0-1) moves
# slot 0's signalling ports up by 10000 g + 200 r and gets the 2,000 RTP ports
# from 10000 (g + 1) + 2000 r (1,000 calls of two ports each): every slot of
# 0-9 stays below 65536 and shares no port with another (`scripts/stack ports`
# prints them all and checks it).
STACK_SLOTS=10
# A stack runs up to this many Asterisk instances (a pool of PBXs), each with
# its own sipp far end: PBX 1 on the slot's ports above, the others on their
# own (see pbx_ports).
STACK_PBX_MAX=3

# Sets SLOT_<NAME>_PORT (and SLOT_RTP_START/END) to slot $1's defaults.
slot_ports() {
    local slot=$1
    local g=$((slot % 5)) r=$((slot / 5))
    local offset=$((g * 10000 + r * 200))
    SLOT_PG_PORT=$((55432 + slot))
    SLOT_AMI_PORT=$((5038 + offset))
    SLOT_SIP_PORT=$((5060 + offset))
    # sipp's far end; the agents of agent-mode tests take SIPP_PORT + 5..8.
    SLOT_SIPP_PORT=$((5070 + offset))
    # sipp's RTP: the far end's at +0 and +2, the agents' from +100.
    SLOT_SIPP_MEDIA_PORT=$((6000 + offset))
    SLOT_SIPP_CONTROL_PORT=$((8888 + offset))
    SLOT_HTTP_PORT=$((8080 + offset))
    SLOT_RTP_START=$((10000 * (g + 1) + 2000 * r))
    SLOT_RTP_END=$((SLOT_RTP_START + 1999))
    # The streaming replica of the slot's PostgreSQL (scripts/stack replica-start).
    SLOT_PG_REPLICA_PORT=$((55442 + slot))
}

# Sets PBX_<NAME>_PORT (and PBX_RTP_START/END) to the ports of PBX $2 of slot
# $1. PBX 1 is the slot's own Asterisk and sipp (slot_ports). PBX 2 and 3 of
# slot s = 5r + g take block b = 2r + (PBX - 2) of ports that no slot uses:
# 10000 g + 5300 + 50 b on for AMI (+0), SIP (+1), sipp (+2), its agents
# (sipp + 5 to + 8) and sipp's control port (+20); sipp's media from
# 10000 g + 5600 + 10 b (agents' media 100 above it, as for PBX 1); and 400
# Asterisk RTP ports (200 calls at once) from 10000 g + 6400 + 400 b.
pbx_ports() {
    local slot=$1 pbx=$2
    if [ "$pbx" = 1 ]; then
        slot_ports "$slot"
        PBX_AMI_PORT=$SLOT_AMI_PORT PBX_SIP_PORT=$SLOT_SIP_PORT PBX_SIPP_PORT=$SLOT_SIPP_PORT
        PBX_SIPP_MEDIA_PORT=$SLOT_SIPP_MEDIA_PORT PBX_SIPP_CONTROL_PORT=$SLOT_SIPP_CONTROL_PORT
        PBX_RTP_START=$SLOT_RTP_START PBX_RTP_END=$SLOT_RTP_END
        return
    fi
    local g=$((slot % 5)) r=$((slot / 5))
    local b=$((2 * r + pbx - 2))
    local base=$((g * 10000 + 5300 + 50 * b))
    PBX_AMI_PORT=$base
    PBX_SIP_PORT=$((base + 1))
    PBX_SIPP_PORT=$((base + 2))
    PBX_SIPP_CONTROL_PORT=$((base + 20))
    PBX_SIPP_MEDIA_PORT=$((g * 10000 + 5600 + 10 * b))
    PBX_RTP_START=$((g * 10000 + 6400 + 400 * b))
    PBX_RTP_END=$((PBX_RTP_START + 399))
}

# A PBX number of the stack: 1 to STACK_PBX_MAX (default 1).
pbx_number() {
    local pbx=${1:-1}
    if ! [[ $pbx =~ ^[1-9]$ ]] || [ "$pbx" -gt "$STACK_PBX_MAX" ]; then
        die "PBX $pbx: a stack's PBXs are numbered 1 to $STACK_PBX_MAX"
    fi
    echo "$pbx"
}

# The port slot of stack $1: demo 0 and test 1; any other name STACK_PORT_SLOT,
# else the slot it was last started on ($STATE_DIR/slot), else 2.
stack_slot() {
    case "$1" in
        demo) echo 0; return ;;
        test) echo 1; return ;;
    esac
    local slot=${STACK_PORT_SLOT:-}
    [ -n "$slot" ] || slot=$(cat "$STATE_DIR/slot" 2>/dev/null || echo 2)
    if ! [[ $slot =~ ^[0-9]{1,4}$ ]] || [ "$((10#$slot))" -ge "$STACK_SLOTS" ]; then
        die "STACK_PORT_SLOT=$slot: a port slot is 0 to $((STACK_SLOTS - 1)) (see scripts/stack ports)"
    fi
    echo "$((10#$slot))"
}

# Every value can be overridden from the environment (PG_PORT=...). What
# `scripts/stack env` exported for another stack (STACK_ENV_OF=name:slot) is
# not taken for this one: a shell that evaluated the demo's settings must not
# put a second stack on the demo's ports (`unset STACK_ENV_OF` to override a
# port of a second stack from such a shell).
stack_defaults() {
    STACK_NAME=${STACK_NAME:-demo}
    STATE_DIR=${STACK_STATE_DIR:-/var/tmp/dialer-stack/$STACK_NAME}
    local other=${STACK_ENV_OF:-}
    if [ -n "$other" ] && [ "${other%%:*}" != "$STACK_NAME" ]; then
        if [ -n "${PG_PORT:-}${PG_REPLICA_PORT:-}${SIP_PORT:-}${SIPP_PORT:-}${SIPP_MEDIA_PORT:-}${SIPP_CONTROL_PORT:-}" ]; then
            log "ignoring the ports of stack '${other%%:*}' in the environment (scripts/stack env)"
        fi
        unset PG_PORT PG_REPLICA_PORT SIP_PORT SIPP_PORT SIPP_MEDIA_PORT SIPP_CONTROL_PORT
        [ "${STACK_PORT_SLOT:-}" != "${other#*:}" ] || unset STACK_PORT_SLOT
    fi
    STACK_PORT_SLOT=$(stack_slot "$STACK_NAME") || exit 1
    STACK_ENV_OF=$STACK_NAME:$STACK_PORT_SLOT
    slot_ports "$STACK_PORT_SLOT"
    PG_PORT=${PG_PORT:-$SLOT_PG_PORT}
    PG_REPLICA_PORT=${PG_REPLICA_PORT:-$SLOT_PG_REPLICA_PORT}
    AMI_PORT=${AMI_PORT:-$SLOT_AMI_PORT}
    SIP_PORT=${SIP_PORT:-$SLOT_SIP_PORT}
    SIPP_PORT=${SIPP_PORT:-$SLOT_SIPP_PORT}
    SIPP_MEDIA_PORT=${SIPP_MEDIA_PORT:-$SLOT_SIPP_MEDIA_PORT}
    SIPP_CONTROL_PORT=${SIPP_CONTROL_PORT:-$SLOT_SIPP_CONTROL_PORT}
    RTP_START=${RTP_START:-$SLOT_RTP_START}
    RTP_END=${RTP_END:-$((RTP_START + 1999))}
    HTTP_PORT=${HTTP_PORT:-$SLOT_HTTP_PORT}
    AMI_USERNAME=${AMI_USERNAME:-dialer}
    AMI_SECRET=${AMI_SECRET:-dialer-secret}
    # Asterisk runs chrooted, so its per-stack files live inside the rootfs.
    AST_INSTANCE=/dialer-stacks/$STACK_NAME
    if [ -n "${DATABASE_URL:-}" ]; then
        EXTERNAL_DB=1
    else
        EXTERNAL_DB=0
        DATABASE_URL=postgresql://postgres@127.0.0.1:$PG_PORT/dialer
    fi
}

apt_updated=0
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "need root to install: ${missing[*]}"
    log "installing ${missing[*]} (apt)"
    if [ $apt_updated -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The newest Debian postgresql server binaries (pg_ctl, initdb are not on PATH).
pg_bindir() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
    echo "$dir"
}

# A project virtualenv with the package and its test/dev extras installed.
ensure_venv() {
    local py=${PYTHON:-python3}
    command -v "$py" >/dev/null || apt_install python3
    "$py" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null \
        || die "$py is older than 3.11"
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating virtualenv $VENV"
        if ! "$py" -m venv "$VENV" 2>/dev/null; then
            rm -rf "$VENV"
            apt_install python3-venv
            "$py" -m venv "$VENV"
        fi
    fi
    # Reinstall only when the project's metadata changed since the last install.
    local stamp="$VENV/.installed" want
    want=$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
        log "installing the project into $VENV (pip)"
        local pip_log="$VENV/pip.log"
        if ! { "$VENV/bin/python" -m pip install --upgrade pip \
            && "$VENV/bin/python" -m pip install -e "$ROOT[dev]"; } >"$pip_log" 2>&1; then
            tail -n 30 "$pip_log" >&2
            die "pip install failed, see $pip_log"
        fi
        echo "$want" >"$stamp"
    fi
}

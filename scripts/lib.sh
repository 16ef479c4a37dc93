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

# Stack names pick non-overlapping default ports, so a test stack runs beside
# a demo stack. Every value can be overridden from the environment.
stack_defaults() {
    STACK_NAME=${STACK_NAME:-demo}
    case "$STACK_NAME" in
        demo) local base=0 ;;
        test) local base=1 ;;
        *) local base=${STACK_PORT_SLOT:-2} ;;
    esac
    PG_PORT=${PG_PORT:-$((55432 + base))}
    AMI_PORT=${AMI_PORT:-$((5038 + base * 10000))}
    SIP_PORT=${SIP_PORT:-$((5060 + base * 10000))}
    SIPP_PORT=${SIPP_PORT:-$((5070 + base * 10000))}
    SIPP_MEDIA_PORT=${SIPP_MEDIA_PORT:-$((6000 + base * 10000))}
    SIPP_CONTROL_PORT=${SIPP_CONTROL_PORT:-$((8888 + base * 10000))}
    RTP_START=${RTP_START:-$((30000 + base * 10000))}
    RTP_END=${RTP_END:-$((RTP_START + 8000))}
    HTTP_PORT=${HTTP_PORT:-$((8080 + base * 10000))}
    AMI_USERNAME=${AMI_USERNAME:-dialer}
    AMI_SECRET=${AMI_SECRET:-dialer-secret}
    STATE_DIR=${STACK_STATE_DIR:-/var/tmp/dialer-stack/$STACK_NAME}
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

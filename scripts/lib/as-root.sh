# Sourced by the quick-start commands (scripts/demo, scripts/test): they make
# pools and install packages, so they run as root. Root runs them as they are
# (sudo need not be installed); anyone else is asked for sudo, keeping the
# PATH and Rust toolchain they called with (sudo's secure_path would hide a
# rustup-installed cargo).
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
        echo "error: $0 creates ZFS pools and installs packages, so it runs as root; sudo is not installed: run it as root" >&2
        exit 2
    fi
    echo "$0 needs root: asking sudo" >&2
    exec sudo env PATH="$PATH" \
        CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" \
        "$PWD/scripts/${0##*/}" "$@"
fi
# Root's tools (zfs-fuse, zpool, sshd) live in sbin, which a user's PATH
# kept through sudo, or `su` without `-`, does not have.
for dir in /usr/local/sbin /usr/sbin /sbin; do
    case ":$PATH:" in *":$dir:"*) ;; *) PATH="$PATH:$dir" ;; esac
done
export PATH

#!/usr/bin/env bash
# Prints the Debian mirror apt already uses on this machine for SUITE (the
# first `URIs:` of a deb822 source naming it, or the first one-line `deb URI
# SUITE`): the test images and backports are fetched from it, never from a
# name written here. Exits 1, saying so, where apt has none.
# Usage: apt-mirror.sh SUITE
set -euo pipefail
suite=${1:?suite}
{
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v suite="$suite" '
            function flush() {
                if (is_deb && has_suite && uri != "") { print uri; found = 1; exit }
                is_deb = 0; has_suite = 0; uri = ""
            }
            /^[[:space:]]*$/ { flush(); next }
            /^Types:/ { for (i = 2; i <= NF; i++) if ($i == "deb") is_deb = 1 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) has_suite = 1 }
            /^URIs:/ { uri = $2 }
            END { if (!found) flush() }
        ' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        sed -e 's/\[[^]]*\]//' "$f" | awk -v suite="$suite" '$1 == "deb" && $3 == suite { print $2 }'
    done
} | head -n1 | grep . || {
    echo "error: apt has no source for Debian $suite in /etc/apt/sources.list or /etc/apt/sources.list.d; add one (the test images are fetched from the mirror apt uses)" >&2
    exit 1
}

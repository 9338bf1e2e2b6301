#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The container root of the system tests: a minimal Debian 12 with systemd, dbus-daemon,
# polkitd and pcpd's run-time libraries, built once with mmdebstrap from Debian's archive
# and cached as a zstd tarball outside the clone. Prints the path of the tarball.
#
#   root.sh            build the tarball when it is missing, print its path
#   root.sh --path     print the path only (nothing is built)
#
# The cache is keyed on everything that decides its content (suite, archive, packages,
# hooks): a change to this list builds a new tarball next to the old one. Two runs that
# find it missing at once build it once (flock). The old tarballs are left for the admin
# (du -h /var/cache/pcpd-test-root-*).
#
# Why mmdebstrap and not debootstrap: debootstrap does not resolve virtual packages, and
# polkitd depends on "default-logind | logind"; mmdebstrap resolves through apt, and is
# faster (measured: 3 min 25 s against 4 min 41 s, download-bound).
#
# Environment: PCPD_TEST_CACHE_DIR (default /var/cache), PCPD_TEST_MIRROR (default
# http://deb.debian.org/debian), PCPD_TEST_SECURITY_MIRROR (default
# http://deb.debian.org/debian-security).
set -euo pipefail

SUITE=bookworm
MIRROR=${PCPD_TEST_MIRROR:-http://deb.debian.org/debian}
SECURITY=${PCPD_TEST_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
CACHE_DIR=${PCPD_TEST_CACHE_DIR:-/var/cache}

# systemd as PID 1 and what pcpd's unit needs around it (dbus-daemon, polkitd and the
# logind that polkitd depends on), pcpd's libraries (libnm0: discovery through
# NetworkManager; libgupnp-1.6-0: the UPnP-IGD backend), and the tools the checks run inside (ip, ps, kill for ExecReload=).
PACKAGES=(
    systemd systemd-sysv dbus libpam-systemd polkitd
    libglib2.0-0 libnm0 libgupnp-1.6-0
    iproute2 procps
)
SOURCES=(
    "deb $MIRROR $SUITE main"
    "deb $MIRROR $SUITE-updates main"
    "deb $SECURITY $SUITE-security main"
)
# the hostname, and an empty machine-id: a fresh one each boot (systemd-nspawn)
HOOKS=(
    'echo pcpd-test > "$1/etc/hostname"'
    ': > "$1/etc/machine-id"'
)

key=$(printf '%s\n' "v1" "$SUITE" "${PACKAGES[@]}" "${SOURCES[@]}" "${HOOKS[@]}" | sha256sum | cut -c1-16)
tarball="$CACHE_DIR/pcpd-test-root-$key.tar.zst"

if [ "${1:-}" = --path ]; then
    echo "$tarball"
    exit 0
fi
if [ -s "$tarball" ]; then
    echo "$tarball"
    exit 0
fi

command -v mmdebstrap >/dev/null || {
    echo "root.sh: mmdebstrap is not installed (scripts/install-deps.sh installs it)" >&2
    exit 1
}
mkdir -p "$CACHE_DIR"
exec 9>"$tarball.lock"
flock 9
if [ -s "$tarball" ]; then # built by another run while we waited
    echo "$tarball"
    exit 0
fi

t0=$SECONDS
tmp="$tarball.tmp.$$"
trap 'rm -f "$tmp"' EXIT
hook_args=()
for h in "${HOOKS[@]}"; do
    hook_args+=(--customize-hook="$h")
done
echo "root.sh: building the container root (Debian $SUITE, once per machine; a few minutes)" >&2
# the output name's suffix makes mmdebstrap write a zstd tarball directly
if ! mmdebstrap --quiet --variant=minbase --include="$(IFS=,; echo "${PACKAGES[*]}")" \
    --format=tar "${hook_args[@]}" "$SUITE" "$tmp.tar.zst" "${SOURCES[@]}" >&2; then
    rm -f "$tmp.tar.zst"
    echo "root.sh: mmdebstrap failed (network? the archive at $MIRROR?)" >&2
    exit 1
fi
mv "$tmp.tar.zst" "$tarball"
echo "root.sh: built $tarball ($(du -h "$tarball" | cut -f1)) in $((SECONDS - t0)) s" >&2
echo "$tarball"

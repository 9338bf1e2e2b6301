#!/bin/bash
# Installs the Debian 12 packages pcpd needs to build, run its demo and run its tests.
# Idempotent and quiet when everything is already there. Needs root (or sudo) only when
# something is missing.
set -euo pipefail

PACKAGES=(
    # build
    meson ninja-build pkg-config gcc clang libclang-rt-14-dev gettext
    libsystemd-dev libglib2.0-dev libnm-dev libcmocka-dev
    # bus and data tests
    dbus-daemon python3-dbusmock libxml2-utils
    # integration lab: namespaces, NAT, a real PCP router and a NAT-PMP client
    iproute2 nftables miniupnpd-nftables natpmpc
    # memory checks
    valgrind
    # NetworkManager discovery: a real NetworkManager (dhclient backend) leased by dnsmasq
    # in a namespace (tests/nm), read through libnm from Python
    network-manager isc-dhcp-client dnsmasq-base python3-gi gir1.2-nm-1.0
    # install paths (pkg-config files of dbus and polkit) and the system tests: a
    # container booting Debian's systemd, its root built once with mmdebstrap
    libdbus-1-dev libpolkit-gobject-1-dev systemd-container mmdebstrap zstd
    # the GNOME app (clients/gnome) and its headless GUI tests: Xvfb, fonts and icons for a
    # bare image, the SVG loader, AT-SPI for the accessibility check, data validators
    libgtk-4-dev libadwaita-1-dev
    xvfb xauth fonts-dejavu-core adwaita-icon-theme librsvg2-common
    at-spi2-core gir1.2-atspi-2.0 appstream desktop-file-utils
    # the demo's polkit (the real one, on its private bus); pcpctl's completion, run by
    # bash and zsh in its test, and bash-completion.pc for where it is installed
    polkitd zsh bash-completion
    # UPnP-IGD backend (daemon/pcpd-upnp.c): GUPnP 1.6 with gssdp and libsoup 3
    libgupnp-1.6-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# miniupnpd's postinst must not start a router on the host: policy-rc.d forbids it
# for the duration of the install (only if no policy is present already).
policy=/usr/sbin/policy-rc.d
own_policy=no
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    own_policy=yes
fi
trap '[ "$own_policy" = yes ] && $SUDO rm -f "$policy"' EXIT
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# network-manager's postinst enables its service: on a host booted with systemd that we
# just gave NetworkManager to, it would take over the host's interfaces at the next boot.
# The tests run their own NetworkManager in a namespace; the packaged one stays off.
if printf '%s\n' "${missing[@]}" | grep -qx network-manager && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now NetworkManager.service NetworkManager-wait-online.service \
        NetworkManager-dispatcher.service >/dev/null 2>&1 || true
fi
echo "install-deps: done" >&2

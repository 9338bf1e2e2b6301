#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# meson install step: puts the example configuration in place as the configuration
# (install-config.sh EXAMPLE CONFIG) unless a configuration is there already, so that
# installing again never overwrites what an admin wrote. DESTDIR is honoured.
set -eu
src="${DESTDIR:-}$1"
dst="${DESTDIR:-}$2"
if [ -e "$dst" ] || [ -L "$dst" ]; then
    echo "Keeping the existing $2 (the example is $1)"
    exit 0
fi
mkdir -p "$(dirname "$dst")"
install -m 0644 "$src" "$dst"
echo "Installing $1 as $2"

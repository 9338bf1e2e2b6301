#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Runs a command with a root directory of its own that is the host's plus a
/.flatpak-info, the way a Flatpak sandbox looks from outside (/proc/PID/root/.flatpak-info).

  unshare --mount --propagation private -- fake-sandbox.py NEWROOT INFO -- COMMAND...

Must run in a private mount namespace (as root): it mounts a tmpfs on NEWROOT (an empty
directory), binds every top-level directory of / into it, copies INFO to
NEWROOT/.flatpak-info, chroots there and execs COMMAND. Nothing of it is seen outside the
namespace, which goes with the command.
"""

import os
import shutil
import subprocess
import sys


def main():
    if len(sys.argv) < 5 or sys.argv[3] != '--':
        sys.exit('usage: fake-sandbox.py NEWROOT INFO -- COMMAND...')
    newroot, info, command = sys.argv[1], sys.argv[2], sys.argv[4:]
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'mode=755', 'tmpfs', newroot], check=True)
    for name in os.listdir('/'):
        src, dst = '/' + name, os.path.join(newroot, name)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        elif os.path.isdir(src):
            os.mkdir(dst)
            subprocess.run(['mount', '--rbind', src, dst], check=True)
    shutil.copyfile(info, os.path.join(newroot, '.flatpak-info'))
    os.chmod(os.path.join(newroot, '.flatpak-info'), 0o644)
    os.chroot(newroot)
    os.chdir('/')
    os.execv(command[0], command)


if __name__ == '__main__':
    main()

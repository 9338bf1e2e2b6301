#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Another application's window on the test's X display, as when the GUI tests run side by
side on one X server: it takes the keyboard focus (the app's window becomes inactive).
Prints "ACTIVE" once its window has the focus; exits when its stdin closes."""

import sys

import gi

gi.require_version('Gtk', '4.0')
from gi.repository import GLib, Gtk  # noqa: E402


def main():
    loop = GLib.MainLoop()
    win = Gtk.Window(title='Focus Thief')
    win.set_child(Gtk.Button(label='Elsewhere'))

    def on_active(w, _pspec):
        if w.is_active():
            print('ACTIVE', flush=True)

    win.connect('notify::is-active', on_active)
    GLib.io_add_watch(sys.stdin.fileno(), GLib.PRIORITY_DEFAULT, GLib.IO_IN | GLib.IO_HUP,
                      lambda *a: loop.quit() if not sys.stdin.readline() else True)
    win.present()
    loop.run()


if __name__ == '__main__':
    main()

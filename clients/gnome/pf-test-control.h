/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Test-only control of the app, enabled by the hidden --test-control option (not in
 * --help). The tests send one command a line on stdin and read the answers on stdout:
 *
 *   dump                 the page as text (one widget a line, indented), then "END"
 *   screenshot PATH      a PNG of the window after its next paint -> "SCREENSHOT PATH"
 *   activate LABEL       activate the control labelled LABEL, like a click -> "OK" | "ERROR ..."
 *   key NAME             a key press as GTK's key bindings handle it (Tab, ISO_Left_Tab, Down,
 *                        Up, Return), then "FOCUS <the focused control>"
 *   focus                "FOCUS <the focused control>"
 *   tick                 what the window's 30 s timer does, now -> "OK"
 *   counts               "COUNTS passwd=<passwd lookups made> texts=<row texts changed>"
 *   quit
 *
 * Between the answers the app prints "EVENT <n> <what>" whenever the page changed because of
 * the service, polkit or a toast, so a test waits for events instead of sleeping.
 */

#include "pf-window.h"

void pf_test_control_start(PfWindow *window);

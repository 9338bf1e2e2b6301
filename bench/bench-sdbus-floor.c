/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * bench-sdbus-floor: what any sd-bus client of pcpd costs as a whole process, the floors
 * bench/run-pcpctl-bench.sh measures next to pcpctl.
 *
 *   bench-sdbus-floor linked   libsystemd loaded and relocated, nothing done
 *   bench-sdbus-floor ping     + connect to the system bus, authenticate, Hello, one
 *                              Peer.Ping to org.freedesktop.PCP1 and its reply
 *
 * No setlocale(), no parsing, no output: the difference to pcpctl is pcpctl's own.
 */

#include <stdio.h>
#include <string.h>
#include <systemd/sd-bus.h>

int main(int argc, char **argv) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus *bus = NULL;
        int r;

        if (argc != 2 || (strcmp(argv[1], "linked") != 0 && strcmp(argv[1], "ping") != 0)) {
                fprintf(stderr, "usage: bench-sdbus-floor linked|ping\n");
                return 2;
        }
        if (strcmp(argv[1], "linked") == 0)
                /* a call into libsystemd, so that the linker keeps it (--as-needed) */
                return sd_bus_error_is_set(&error) ? 1 : 0;

        r = sd_bus_open_system(&bus);
        if (r >= 0)
                r = sd_bus_call_method(bus, "org.freedesktop.PCP1", "/org/freedesktop/PCP1", "org.freedesktop.DBus.Peer",
                                       "Ping", &error, NULL, "");
        if (r < 0)
                fprintf(stderr, "bench-sdbus-floor: %s\n", error.message ? error.message : strerror(-r));
        sd_bus_error_free(&error);
        sd_bus_flush_close_unref(bus);
        return r < 0 ? 1 : 0;
}

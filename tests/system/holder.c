/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * pcpd-test-holder: an application that holds one port mapping through pcpd on the
 * system bus, for the system tests (tests/system/run.sh).
 *
 *   pcpd-test-holder tcp|udp PORT
 *
 * Binds PORT on every IPv4 address (a TCP socket listens: sock_diag only reports bound
 * TCP sockets that listen or are connected), asks pcpd for a mapping of it
 * (AddMapping), and prints one line per event on standard output:
 *
 *   added PATH
 *   state STATE EXTERNAL_ADDRESS EXTERNAL_PORT UID APP_ID
 *   pcpd-gone | pcpd-back
 *   error NAME MESSAGE           (and exits with status 3)
 *
 * It does what an application holding a mapping should do when pcpd restarts: watch the
 * name's owner, and when pcpd is back ask again for the same port (the restored mapping,
 * with its nonce and external port, is then its own again). It holds the mapping until
 * it is killed.
 */

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "pcp1-contract.h"

#define _cleanup_(f) __attribute__((cleanup(f)))

typedef struct holder {
        sd_bus *bus;
        const char *protocol;
        uint16_t port;
        char *path;
        sd_bus_slot *props_slot;
} holder;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        fflush(stdout);
}

static int print_state(holder *h) {
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
        char *state = NULL, *address = NULL, *app = NULL;
        uint16_t ext = 0;
        uint32_t uid = 0;
        int r;

        r = sd_bus_get_property_string(h->bus, PCP1_BUS_NAME, h->path, PCP1_MAPPING_IFACE, "State", &err, &state);
        if (r >= 0)
                r = sd_bus_get_property_string(h->bus, PCP1_BUS_NAME, h->path, PCP1_MAPPING_IFACE, "ExternalAddress",
                                               &err, &address);
        if (r >= 0)
                r = sd_bus_get_property_trivial(h->bus, PCP1_BUS_NAME, h->path, PCP1_MAPPING_IFACE, "ExternalPort", &err,
                                                'q', &ext);
        if (r >= 0)
                r = sd_bus_get_property_trivial(h->bus, PCP1_BUS_NAME, h->path, PCP1_MAPPING_IFACE, "UID", &err, 'u',
                                                &uid);
        if (r >= 0)
                r = sd_bus_get_property_string(h->bus, PCP1_BUS_NAME, h->path, PCP1_MAPPING_IFACE, "AppId", &err, &app);
        if (r >= 0)
                say("state %s %s %u %u %s", state, *address ? address : "-", ext, uid, *app ? app : "-");
        else /* pcpd may be going away right now: the name watch reports that */
                say("note cannot read %s: %s", h->path, err.message ?: strerror(-r));
        free(state);
        free(address);
        free(app);
        return 0;
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        return print_state(userdata);
}

static int add_mapping(holder *h) {
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *path;
        int r;

        h->props_slot = sd_bus_slot_unref(h->props_slot);
        r = sd_bus_call_method(h->bus, PCP1_BUS_NAME, PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE, "AddMapping", &err, &reply,
                               "sqqa{sv}", h->protocol, h->port, (uint16_t) 0, 1, "description", "s",
                               "pcpd system test");
        if (r < 0) {
                say("error %s %s", err.name ?: "errno", err.message ?: strerror(-r));
                exit(3);
        }
        r = sd_bus_message_read(reply, "o", &path);
        if (r < 0) {
                say("error reply %s", strerror(-r));
                exit(3);
        }
        free(h->path);
        h->path = strdup(path);
        sd_bus_message_unref(reply);
        if (h->path == NULL)
                exit(4);
        say("added %s", h->path);
        r = sd_bus_match_signal(h->bus, &h->props_slot, PCP1_BUS_NAME, h->path, "org.freedesktop.DBus.Properties",
                                "PropertiesChanged", on_properties_changed, h);
        if (r < 0) {
                say("error match %s", strerror(-r));
                exit(3);
        }
        return print_state(h);
}

static int on_name_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        holder *h = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (*new_owner == '\0') {
                say("pcpd-gone");
                return 0;
        }
        say("pcpd-back");
        return add_mapping(h);
}

static int bind_port(const char *protocol, uint16_t port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = INADDR_ANY };
        int tcp = strcmp(protocol, "tcp") == 0;
        int fd = socket(AF_INET, tcp ? SOCK_STREAM : SOCK_DGRAM, 0);

        if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || (tcp && listen(fd, 1) < 0)) {
                say("error bind %s port %u: %s", protocol, port, strerror(errno));
                exit(2);
        }
        return fd;
}

int main(int argc, char **argv) {
        holder h = { 0 };
        char *end;
        unsigned long port;
        int r;

        if (argc != 3 || (strcmp(argv[1], "tcp") != 0 && strcmp(argv[1], "udp") != 0)) {
                fprintf(stderr, "usage: %s tcp|udp PORT\n", argv[0]);
                return 2;
        }
        port = strtoul(argv[2], &end, 10);
        if (*end != '\0' || port == 0 || port > 65535) {
                fprintf(stderr, "%s: '%s' is not a port (1-65535)\n", argv[0], argv[2]);
                return 2;
        }
        h.protocol = argv[1];
        h.port = (uint16_t) port;
        (void) bind_port(h.protocol, h.port); /* held until exit */

        r = sd_bus_open_system(&h.bus);
        if (r < 0) {
                say("error bus %s", strerror(-r));
                return 3;
        }
        r = sd_bus_add_match(h.bus, NULL,
                             "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                             "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" PCP1_BUS_NAME "'",
                             on_name_owner_changed, &h);
        if (r < 0) {
                say("error match %s", strerror(-r));
                return 3;
        }
        add_mapping(&h);
        for (;;) {
                r = sd_bus_process(h.bus, NULL);
                if (r < 0) {
                        say("error bus %s", strerror(-r));
                        return 3;
                }
                if (r > 0)
                        continue;
                r = sd_bus_wait(h.bus, UINT64_MAX);
                if (r < 0 && r != -EINTR) {
                        say("error bus %s", strerror(-r));
                        return 3;
                }
        }
}

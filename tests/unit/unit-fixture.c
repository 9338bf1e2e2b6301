/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "unit-fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pcpd-state.h"

sd_bus *unit_offline_bus(void) {
        sd_bus *bus = NULL;
        int fds[2];

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) < 0)
                return NULL;
        if (sd_bus_new(&bus) < 0 || sd_bus_set_fd(bus, fds[0], fds[0]) < 0 || sd_bus_start(bus) < 0) {
                if (bus == NULL)
                        close(fds[0]);
                close(fds[1]);
                return sd_bus_flush_close_unref(bus);
        }
        close(fds[1]);
        return bus;
}

int unit_offline_bus_setup(sd_bus **bus_ret) {
        *bus_ret = unit_offline_bus();
        return *bus_ret != NULL ? 0 : -1;
}

int unit_offline_bus_teardown(sd_bus **bus_ret) {
        *bus_ret = sd_bus_flush_close_unref(*bus_ret);
        return 0;
}

pcpd_manager *unit_manager_new(const pcpd_config *config, const char *dir, GMainLoop *loop,
                               const pcpd_manager_listener *listener, void *userdata) {
        g_autoptr(GError) error = NULL;
        g_autofree char *why = NULL;
        pcpd_state *loaded = NULL;
        pcpd_manager *m = NULL;
        int fd = -1;

        if (pcpd_state_dir_open(dir, &fd, &why) < 0)
                fail_msg("state directory %s: %s", dir, why);
        if (pcpd_state_load(fd, dir, &loaded, &error) < 0)
                fail_msg("state in %s: %s", dir, error->message);
        assert_int_equal(pcpd_manager_new(config, dir, fd, loaded, loop, listener, userdata, &m), 0);
        assert_non_null(m);
        return m;
}

char *unit_make_own_dir(const char *what) {
        g_autofree char *tmpl = g_strdup_printf("pcpd-test-%s-XXXXXX", what);
        g_autoptr(GError) error = NULL;
        char *d = g_dir_make_tmp(tmpl, &error);

        if (d == NULL)
                fail_msg("temporary directory %s: %s", tmpl, error->message);
        assert_int_equal(g_chmod(d, 0700), 0);
        return d;
}

int unit_open_dir(const char *dir) {
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0)
                fail_msg("open %s: %s", dir, g_strerror(errno));
        return fd;
}

char *unit_slurp(const char *dir, const char *name) {
        g_autofree char *p = g_build_filename(dir, name, NULL);
        char *text = NULL;

        if (!g_file_get_contents(p, &text, NULL, NULL))
                return NULL;
        return text;
}

int unit_rm_own_dir(const char *dir) {
        g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
        const char *name;
        int r = 0;

        /* only this test's directory, by its exact path: the files the test or the manager
         * wrote; unlink() says EISDIR of a directory (never of a link to one) */
        while (d != NULL && (name = g_dir_read_name(d)) != NULL) {
                g_autofree char *p = g_build_filename(dir, name, NULL);
                int q = 0;

                if (unlink(p) < 0)
                        q = errno == EISDIR ? unit_rm_own_dir(p) : -errno;
                if (r == 0)
                        r = q;
        }
        if (rmdir(dir) < 0 && r == 0)
                r = -errno;
        return r;
}

pcpd_state_mapping *unit_state_record(uint64_t id, uint16_t version, const char *description) {
        pcpd_state_mapping m = {
                .id = id,
                .has_nonce = true,
                .server = (char *) "192.0.2.1:5351",
                .opcode = PCP_OPCODE_MAP,
                .protocol = 17,
                .family = AF_INET,
                .internal_port = (uint16_t) (1000 + id % 60000),
                .lifetime = 3600,
                .external_address = (char *) "198.51.100.7",
                .external_port = version,
                .uid = 1000,
                .app_id = (char *) "org.example.App",
                .app_id_source = (char *) "flatpak",
                .description = (char *) description,
                .created = 1700000000000000ull + id,
        };

        for (size_t i = 0; i < PCP_NONCE_LEN; i++)
                m.nonce[i] = (uint8_t) (id + i);
        return pcpd_state_mapping_copy(&m);
}

uint64_t *unit_record_ids(GHashTable *records, size_t *ret_n) {
        uint64_t *ids = g_new(uint64_t, MAX(g_hash_table_size(records), 1u));
        GHashTableIter it;
        gpointer key;
        size_t n = 0;

        g_hash_table_iter_init(&it, records);
        while (g_hash_table_iter_next(&it, &key, NULL))
                ids[n++] = *(const uint64_t *) key;
        *ret_n = n;
        return ids;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: the configuration parser (daemon/pcpd-conf.c, pcpd_config_load_data(),
 * which reads one file's text as pcpd_config_load() reads pcpd.conf and each drop-in).
 *
 * The input is pcpd.conf, optionally followed by the line "%dropin" and a drop-in read
 * over it.
 *
 * Checked, besides no crash / leak / sanitizer report:
 *  - a file that is refused changes nothing and says why in a sentence that names the
 *    file and is UTF-8 (it goes to the journal, where anything else is an unreadable blob);
 *  - what is accepted is within the documented ranges, with at most 16 servers, each a
 *    usable address and port whose text reads back as the same endpoint;
 *  - the settings written out again as a file read back the same, and reading a file
 *    again over its own result changes nothing;
 *  - reading allocates at most a bound linear in the input's size (fuzz-alloc.h).
 */

#include <string.h>

#include "fuzz-alloc.h"
#include "fuzz-common.h"
#include "pcpd-conf.h"

#define DROPIN_LINE "\n%dropin\n"
#define ALLOC_BOUND(len) ((size_t) (len) * 256 + 256 * 1024)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
        fuzz_alloc_init();
        return 0;
}

static bool config_eq(const pcpd_config *a, const pcpd_config *b) {
        if (a->enabled != b->enabled || a->default_lifetime != b->default_lifetime ||
            a->max_lifetime != b->max_lifetime || a->max_mappings_per_user != b->max_mappings_per_user ||
            a->max_mappings != b->max_mappings || a->grace_seconds != b->grace_seconds ||
            a->use_default_routers != b->use_default_routers || a->announce_port != b->announce_port ||
            a->n_servers != b->n_servers)
                return false;
        for (size_t i = 0; i < a->n_servers; i++)
                if (strcmp(a->servers[i].text, b->servers[i].text) != 0 ||
                    memcmp(&a->servers[i].addr, &b->servers[i].addr, sizeof(a->servers[i].addr)) != 0)
                        return false;
        return true;
}

static void config_copy(pcpd_config *dst, const pcpd_config *src) {
        *dst = *src;
        for (size_t i = 0; i < src->n_servers; i++)
                dst->servers[i].text = g_strdup(src->servers[i].text);
}

static void check_config(const pcpd_config *c) {
        fuzz_check(c->default_lifetime >= 120 && c->default_lifetime <= 7 * 86400, "DefaultLifetime %u",
                   c->default_lifetime);
        fuzz_check(c->max_lifetime >= 120 && c->max_lifetime <= 7 * 86400, "MaxLifetime %u", c->max_lifetime);
        fuzz_check(c->max_mappings_per_user <= 65536, "MaxMappingsPerUser %u", c->max_mappings_per_user);
        fuzz_check(c->max_mappings >= 1 && c->max_mappings <= 131070, "MaxMappings %u", c->max_mappings);
        fuzz_check(c->grace_seconds <= 3600, "GraceSeconds %u", c->grace_seconds);
        fuzz_check(c->announce_port >= 1, "AnnouncePort 0");
        fuzz_check(c->n_servers <= PCPD_MAX_CONFIG_SERVERS, "%zu servers", c->n_servers);
        for (size_t i = 0; i < c->n_servers; i++) {
                const pcpd_config_server *s = &c->servers[i];
                struct sockaddr_in6 again;

                fuzz_check(s->text != NULL && s->text[0] != '\0', "server %zu without a text", i);
                fuzz_check(strpbrk(s->text, " ;,\t\r\n\v\f") == NULL, "server text '%s' holds a separator", s->text);
                fuzz_check(s->addr.sin6_family == AF_INET6 && s->addr.sin6_port != 0 &&
                                   !pcp_addr_is_unspecified(&s->addr.sin6_addr),
                           "server %s: unusable address", s->text);
                fuzz_check(pcpd_parse_endpoint(s->text, PCP_SERVER_PORT, &again) &&
                                   memcmp(&again, &s->addr, sizeof(again)) == 0,
                           "server %s reads differently again", s->text);
        }
}

/* c as a file */
static GString *format_config(const pcpd_config *c) {
        GString *s = g_string_new("[Daemon]\n");

        g_string_append_printf(s, "Enabled=%s\n", c->enabled ? "true" : "false");
        g_string_append_printf(s, "DefaultLifetime=%u\nMaxLifetime=%u\n", c->default_lifetime, c->max_lifetime);
        g_string_append_printf(s, "MaxMappingsPerUser=%u\nMaxMappings=%u\n", c->max_mappings_per_user,
                               c->max_mappings);
        g_string_append_printf(s, "GraceSeconds=%u\n[Servers]\nServers=", c->grace_seconds);
        for (size_t i = 0; i < c->n_servers; i++)
                g_string_append_printf(s, "%s%s", i > 0 ? " " : "", c->servers[i].text);
        g_string_append_printf(s, "\nUseDefaultRouters=%s\nAnnouncePort=%u\n", c->use_default_routers ? "yes" : "no",
                               c->announce_port);
        return s;
}

/* reads text over c; checks what either outcome must be */
static bool load(pcpd_config *c, const char *name, const char *text, size_t len) {
        g_autoptr(GError) error = NULL;
        pcpd_config before;
        size_t peak;
        bool ok;

        config_copy(&before, c);
        fuzz_alloc_begin();
        ok = pcpd_config_load_data(c, name, text, len, &error);
        peak = fuzz_alloc_peak();
        fuzz_check(peak <= ALLOC_BOUND(len), "reading %zu bytes took %zu bytes", len, peak);
        if (ok) {
                fuzz_check(error == NULL, "accepted with an error");
                check_config(c);
        } else {
                fuzz_check(error != NULL && error->message != NULL, "refused without an error");
                fuzz_check(g_str_has_prefix(error->message, name), "the error does not name the file: %s",
                           error->message);
                fuzz_check(g_utf8_validate(error->message, -1, NULL), "the error is not UTF-8: %s", error->message);
                fuzz_check(config_eq(&before, c), "a refused file changed the configuration");
        }
        pcpd_config_clear(&before);
        return ok;
}

static void check_roundtrip(const pcpd_config *c) {
        g_autoptr(GString) text = format_config(c);
        g_autoptr(GError) error = NULL;
        pcpd_config back;

        pcpd_config_init(&back);
        fuzz_check(pcpd_config_load_data(&back, "written", text->str, text->len, &error),
                   "the settings written out are refused: %s\n%s", error->message, text->str);
        fuzz_check(config_eq(c, &back), "the settings written out read back differently:\n%s", text->str);
        pcpd_config_clear(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *text = (const char *) data, *sep = memmem(data, size, DROPIN_LINE, strlen(DROPIN_LINE));
        size_t len = sep != NULL ? (size_t) (sep - text) : size;
        pcpd_config c, again;

        pcpd_config_init(&c);
        if (load(&c, "/etc/pcpd/pcpd.conf", text, len)) {
                check_roundtrip(&c);
                /* the same file over its own result: nothing changes */
                config_copy(&again, &c);
                fuzz_check(load(&again, "/etc/pcpd/pcpd.conf", text, len), "refused the second time");
                fuzz_check(config_eq(&c, &again), "read twice, it gives something else");
                pcpd_config_clear(&again);
        }
        if (sep != NULL) {
                const char *dropin = sep + strlen(DROPIN_LINE);

                if (load(&c, "/etc/pcpd/pcpd.conf.d/50-fuzz.conf", dropin, size - len - strlen(DROPIN_LINE)))
                        check_roundtrip(&c);
        }
        pcpd_config_clear(&c);
        return 0;
}

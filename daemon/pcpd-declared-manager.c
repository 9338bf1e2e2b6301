/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpd-declared-manager.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pcpd-holders.h"
#include "pcpd-log.h"
#include "pcpd-state.h"

GPtrArray *pcpd_manager_get_declared(pcpd_manager *m) {
        return m->declared;
}

pcpd_mapping *pcpd_manager_declared_mapping(pcpd_manager *m, const char *name) {
        void *v;

        for (size_t i = 0; pcpd_mapping_set_next(&m->mappings, &i, &v);) {
                pcpd_mapping *mp = v;
                if (pcpd_mapping_declared(mp) != NULL && strcmp(pcpd_mapping_declared(mp), name) == 0)
                        return mp;
        }
        return NULL;
}

/* Restored after a restart (no old declaration to compare with): does the mapping still
 * say what d says? (Not the external port: a server's grant replaced the suggestion.) */
static bool mapping_says(pcpd_manager *m, const pcpd_mapping *mp, const pcpd_declared *d) {
        uint32_t lifetime = MIN(d->lifetime ? d->lifetime : m->config.default_lifetime, m->config.max_lifetime);

        return mp->opcode == PCP_OPCODE_MAP && mp->protocol == d->protocol && mp->internal_port == d->port &&
               (d->family == 0 || mp->family == d->family) && mp->lifetime == lifetime &&
               g_strcmp0(mp->description, d->description) == 0 && mp->has_third_party == d->has_third_party &&
               (!d->has_third_party || memcmp(pcpd_mapping_third_party(mp), &d->third_party, sizeof(d->third_party)) == 0);
}

/* The request that maps d. */
static pcpd_mapping_request declared_request(const pcpd_declared *d) {
        return (pcpd_mapping_request) {
                .opcode = PCP_OPCODE_MAP,
                .protocol = d->protocol,
                .family = d->family,
                .internal_port = d->port,
                .suggested_port = d->external_port,
                .lifetime = d->lifetime,
                .description = d->description,
                .has_third_party = d->has_third_party,
                .third_party = d->third_party,
                .persistent = true,
                .uid = 0,
                .app_id = "",
                .app_id_source = "none",
                .declared = d->name,
        };
}

/* The family d's mapping is of, or would be if it were made now: its Family= (or its
 * ThirdParty='s), else the one pcpd_manager_add_mapping() chooses now for a request that
 * leaves it open (IPv4 when there is an IPv4 server or address, IPv6 otherwise: the same
 * for every such declaration at one time). */
static int declared_family_now(pcpd_manager *m, const pcpd_declared *d) {
        pcpd_mapping_request req = declared_request(d);
        int family = d->family;

        if (family == 0)
                (void) pcpd_manager_internal_addresses(m, &req, &family, NULL, 0);
        return family;
}

static const char *family_text(int family) {
        return family == AF_INET6 ? "IPv6" : "IPv4";
}

/* The family of d's port: its mapping's when it has one, else the one it would be mapped
 * in now (declared_family_now(): one without Family= gets one family when it is mapped,
 * not both). */
static int declared_family(pcpd_manager *m, const pcpd_declared *d) {
        pcpd_mapping *mp = pcpd_manager_declared_mapping(m, d->name);

        return mp != NULL ? mp->family : declared_family_now(m, d);
}

/* Another declaration of set than d (by name) that would hold what d would: the same
 * protocol, port and family upstream. One port of a family is one mapping (the manager
 * shares it among the requests of its uid): two declarations cannot both have it. d is
 * a new one (DeclareMapping), of the family it would be mapped in now. The family of the
 * clash in *ret_family. NULL when none. */
static pcpd_declared *declared_clash(pcpd_manager *m, GPtrArray *set, const pcpd_declared *d, int *ret_family) {
        int d_family = -1; /* asked for at the first declaration of d's port */

        for (guint i = 0; set != NULL && i < set->len; i++) {
                pcpd_declared *e = set->pdata[i];
                int family;

                if (strcmp(e->name, d->name) == 0 || e->protocol != d->protocol || e->port != d->port)
                        continue;
                family = declared_family(m, e);
                if (d_family < 0)
                        d_family = declared_family_now(m, d);
                if (family == d_family) {
                        *ret_family = family;
                        return e;
                }
        }
        return NULL;
}

/* The rule for a port two declarations of m->declared have (the same protocol, port and
 * family: declared_family()): the first by name has it, whatever had it before (a file
 * added later, a mapping restored after a restart, made again after the network or port
 * mapping came back). The one before d by name that has d's port, or NULL when d is the
 * first; the family of the port in *ret_family. */
static pcpd_declared *declared_first(pcpd_manager *m, const pcpd_declared *d, int *ret_family) {
        int d_family = -1;

        for (guint i = 0; m->declared != NULL && i < m->declared->len; i++) {
                pcpd_declared *e = m->declared->pdata[i];

                if (strcmp(e->name, d->name) >= 0) /* sorted by name */
                        break;
                if (e->protocol != d->protocol || e->port != d->port)
                        continue;
                if (d_family < 0)
                        d_family = declared_family(m, d);
                if (declared_family(m, e) == d_family) {
                        *ret_family = d_family;
                        return e;
                }
        }
        return NULL;
}

/* For a declaration without Family= whose mapping would be of `family`: why (a clause,
 * after a comma), so that a clash with a declaration of one family is not a puzzle; ""
 * for one with a family. */
static const char *family_why(const pcpd_declared *d, int family) {
        if (d->family != 0)
                return "";
        return family == AF_INET6 ? ", and one without Family= is mapped over IPv6 here now (there is no IPv4 "
                                    "server or address)"
                                  : ", and one without Family= is mapped over IPv4 here now (there is an IPv4 "
                                    "server or address)";
}

/* why d cannot be mapped now, logged when it is not what was logged last for d */
static void declared_unmapped(pcpd_declared *d, const char *why, bool retried) {
        g_autofree char *reason = NULL;
        bool said = d->told_lost; /* declared_give_up() said why just now */
        size_t n;

        d->told_lost = false;
        if (g_strcmp0(d->last_error, why) == 0)
                return;
        g_free(d->last_error);
        d->last_error = g_strdup(why);
        if (said)
                return;
        /* the reason is a sentence, its period dropped before what follows */
        reason = g_strdup(why);
        n = strlen(reason);
        if (n > 0 && reason[n - 1] == '.')
                reason[n - 1] = '\0';
        if (retried)
                g_warning("Declared mapping %s (%s): cannot map it now: %s; trying again every %u s", d->name,
                          d->path, reason, PCPD_DECLARED_RETRY_S);
        else
                g_warning("Declared mapping %s (%s): cannot map it: %s", d->name, d->path, reason);
}

/* Why d waits for first's port (declared_first()): a sentence naming both. */
static char *declared_waits(pcpd_manager *m, const pcpd_declared *d, const pcpd_declared *first, int family) {
        const char *proto = pcp_protocol_to_string(d->protocol) ?: "this protocol";

        if (pcpd_manager_declared_mapping(m, first->name) != NULL)
                return g_strdup_printf("%s port %u is declared already as %s (%s), which has its %s mapping%s; %s "
                                       "comes first by name: %s is mapped once %s is not.",
                                       proto, d->port, first->name, first->path, family_text(family),
                                       family_why(d, family), first->name, d->name, first->name);
        return g_strdup_printf("%s port %u is declared already as %s (%s), which comes first by name and so has "
                               "the %s port%s; %s is mapped once %s is not.",
                               proto, d->port, first->name, first->path, family_text(family), family_why(d, family),
                               d->name, first->name);
}

/* Asks for d's mapping; false (logged once per distinct reason) when it cannot be made now. */
static bool declared_map(pcpd_manager *m, pcpd_declared *d) {
        g_auto(pcpd_failure) err = PCPD_FAILURE_NULL;
        pcpd_mapping_request req = declared_request(d);
        pcpd_mapping *mp;
        int family = 0;
        pcpd_declared *first = declared_first(m, d, &family);

        if (first != NULL) {
                /* d waits (checked again with the others) until that one is undeclared or
                 * changed (or, without Family=, until it would be mapped over the other
                 * family): mapped or not now, the port is the first one's */
                g_autofree char *why = declared_waits(m, d, first, family);
                declared_unmapped(d, why, false);
                return false;
        }
        if (pcpd_manager_add_mapping(m, &req, &mp, &err) < 0) {
                declared_unmapped(d, err.message ?: "unknown error", true);
                return false;
        }
        if (pcpd_mapping_declared(mp) != NULL && strcmp(pcpd_mapping_declared(mp), d->name) != 0) {
                /* (declared_sync() gave up a later one's mapping of the port first: not
                 * reached while the mapping's declaration is in force) */
                g_autofree char *why = g_strdup_printf("%s port %u is mapped already for the declaration %s.",
                                                       pcp_protocol_to_string(d->protocol) ?: "this protocol",
                                                       d->port, pcpd_mapping_declared(mp));
                declared_unmapped(d, why, false);
                return false;
        }
        if (pcpd_mapping_declared(mp) == NULL) { /* joined root's own mapping of the port: it is this one now */
                pcpd_mapping_set_str(mp, declared, d->name);
                pcpd_manager_emit_mapping_changed(m, mp, PCPD_MAPPING_CHANGED_DECLARED);
        }
        g_clear_pointer(&d->last_error, g_free);
        d->told_lost = false;
        g_message("Declared mapping %s (%s): %s", d->name, d->path, PCPD_MAPPING_PATH(mp));
        return true;
}

/* The mapping of every declaration that has it against the rule (declared_first(): one
 * before it by name declares its port too, say a file added since, with its mapping
 * restored after a restart or kept over a reload) is removed, said as a warning naming
 * both, so that the first one has the port. */
static void declared_give_up(pcpd_manager *m) {
        for (guint i = 0; m->declared != NULL && i < m->declared->len; i++) {
                pcpd_declared *d = m->declared->pdata[i], *first;
                pcpd_mapping *mp = pcpd_manager_declared_mapping(m, d->name);
                int family = 0;

                if (mp == NULL || (first = declared_first(m, d, &family)) == NULL)
                        continue;
                g_warning("Declared mapping %s (%s): %s port %u is declared also as %s (%s), which comes first by "
                          "name: the %s port is %s's, %s's mapping %s is removed; %s is mapped once %s is not",
                          d->name, d->path, pcp_protocol_to_string(d->protocol) ?: "this protocol", d->port,
                          first->name, first->path, family_text(family), first->name, d->name, PCPD_MAPPING_PATH(mp),
                          d->name, first->name);
                d->told_lost = true; /* said: its reason to wait is not said again */
                pcpd_manager_remove_mapping(m, mp, PCPD_REMOVED_RELEASED);
        }
}

static gboolean on_declared_retry(gpointer data);

/* The rule enforced (declared_give_up()), then every declaration without a mapping is
 * asked for; the retry runs while one is left. */
static void declared_sync(pcpd_manager *m) {
        bool changed = false;

        declared_give_up(m);
        for (guint i = 0; m->declared != NULL && i < m->declared->len; i++) {
                pcpd_declared *d = m->declared->pdata[i];
                bool before = pcpd_manager_declared_mapping(m, d->name) != NULL;
                bool has = before || declared_map(m, d);

                /* a new mapping (a new path), or one that went and could not be made again */
                changed = changed || has != d->had_mapping || (has && !before);
                d->had_mapping = has;
        }
        if (changed)
                pcpd_manager_emit_changed(m, PCPD_MANAGER_CHANGED_DECLARED_MAPPINGS);
        /* also when none is missing: a mapping that goes later (released, its server gone)
         * is asked for again */
        if (m->declared != NULL && m->declared->len > 0) {
                if (m->declared_retry == 0)
                        m->declared_retry = g_timeout_add_seconds(PCPD_DECLARED_RETRY_S, on_declared_retry, m);
        } else if (m->declared_retry != 0) {
                g_source_remove(m->declared_retry);
                m->declared_retry = 0;
        }
}

static gboolean on_declared_retry(gpointer data) {
        pcpd_manager *m = data;

        m->declared_retry = 0;
        declared_sync(m);
        return G_SOURCE_REMOVE;
}

void pcpd_manager_declared_sync_now(pcpd_manager *m) {
        if (m->declared_retry != 0) {
                g_source_remove(m->declared_retry);
                m->declared_retry = 0;
        }
        declared_sync(m);
}

void pcpd_manager_set_declared(pcpd_manager *m, GPtrArray *set) {
        g_autoptr(GPtrArray) old = m->declared;
        g_autoptr(GPtrArray) all = pcpd_manager_list_mappings(m);
        unsigned removed = 0, changed = 0;

        m->declared = set;
        for (guint i = 0; i < all->len; i++) {
                pcpd_mapping *mp = all->pdata[i];
                pcpd_declared *d, *was;

                if (pcpd_mapping_declared(mp) == NULL)
                        continue;
                d = pcpd_declared_find(set, pcpd_mapping_declared(mp));
                was = pcpd_declared_find(old, pcpd_mapping_declared(mp));
                if (d == NULL) {
                        g_message("Declared mapping %s is no longer declared: removing %s", pcpd_mapping_declared(mp), PCPD_MAPPING_PATH(mp));
                        pcpd_manager_remove_mapping(m, mp, PCPD_REMOVED_RELEASED);
                        removed++;
                } else if (was != NULL ? !pcpd_declared_equal(was, d) : !mapping_says(m, mp, d)) {
                        g_message("Declared mapping %s changed (%s): asking for it again", d->name, d->path);
                        pcpd_manager_remove_mapping(m, mp, PCPD_REMOVED_RELEASED);
                        changed++;
                } else if (was != NULL && was->last_error != NULL)
                        d->last_error = g_strdup(was->last_error);
        }
        for (guint i = 0; old != NULL && i < old->len; i++) {
                pcpd_declared *was = old->pdata[i], *d = pcpd_declared_find(set, was->name);
                /* a declaration that could not be mapped: its reason was logged already */
                if (d != NULL && d->last_error == NULL && was->last_error != NULL && pcpd_declared_equal(was, d))
                        d->last_error = g_strdup(was->last_error);
        }
        declared_sync(m);
        if (set->len > 0 || removed > 0) {
                /* singular and plural said right; what did not happen is not said */
                g_autofree char *in_force = set->len == 0 ? g_strdup("No declared mapping")
                                            : set->len == 1
                                                    ? g_strdup("1 declared mapping")
                                                    : g_strdup_printf("%u declared mappings", set->len);
                g_autofree char *what =
                        removed > 0 && changed > 0
                                ? g_strdup_printf(" (%u removed, %u changed)", removed, changed)
                        : removed > 0 ? g_strdup_printf(" (%u removed)", removed)
                        : changed > 0 ? g_strdup_printf(" (%u changed)", changed)
                                      : g_strdup("");

                g_message("%s in force%s", in_force, what);
        }
        pcpd_manager_emit_changed(m, PCPD_MANAGER_CHANGED_DECLARED_MAPPINGS);
}

/* The state directory's mappings.d, created when missing. */
static int runtime_dir(pcpd_manager *m) {
        int fd;

        if (mkdirat(m->state_fd, PCPD_DECLARED_DIR, 0700) < 0 && errno != EEXIST)
                return -errno;
        fd = openat(m->state_fd, PCPD_DECLARED_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

static GPtrArray *set_copy_without(GPtrArray *set, const char *name) {
        GPtrArray *n = g_ptr_array_new_with_free_func((GDestroyNotify) pcpd_declared_free);

        for (guint i = 0; set != NULL && i < set->len; i++) {
                pcpd_declared *d = set->pdata[i];
                if (strcmp(d->name, name) != 0)
                        g_ptr_array_add(n, pcpd_declared_copy(d));
        }
        return n;
}

static gint compare_names(gconstpointer a, gconstpointer b) {
        return strcmp((*(pcpd_declared *const *) a)->name, (*(pcpd_declared *const *) b)->name);
}

int pcpd_manager_declare(pcpd_manager *m, const pcpd_declared *d, char **ret_path, pcpd_failure *error) {
        pcpd_declared *cur = pcpd_declared_find(m->declared, d->name);
        g_autoptr(GString) text = g_string_new(NULL);
        g_autofree char *file = g_strconcat(d->name, ".conf", NULL);
        pcpd_declared *n, *other;
        GPtrArray *set;
        pcpd_mapping *mp;
        int fd, r, family = 0;

        if (cur != NULL && !cur->runtime)
                return pcpd_fail(
                        error, PCPD_ERROR_CONFLICT,
                        "'%s' is declared in %s, which pcpd does not change: edit that file and run "
                        "systemctl reload pcpd.",
                        d->name, cur->path);
        other = declared_clash(m, m->declared, d, &family);
        if (other != NULL)
                return pcpd_fail(
                        error, PCPD_ERROR_CONFLICT,
                        "%s port %u is declared already for %s, as '%s' (%s)%s; one port of a family is one "
                        "mapping: %s%s first, or declare another port%s. Nothing was changed.",
                        pcp_protocol_to_string(d->protocol) ?: "This protocol's", d->port, family_text(family),
                        other->name, other->path, family_why(d, family),
                        other->runtime ? "pcpctl undeclare " : "remove that file and reload pcpd",
                        other->runtime ? other->name : "", d->family == 0 ? " or the other family" : "");
        if (cur == NULL && m->declared != NULL && m->declared->len >= PCPD_DECLARED_MAX)
                return pcpd_fail(error, PCPD_ERROR_QUOTA_EXCEEDED,
                                 "There are %d declared mappings already, the most pcpd keeps.",
                                 PCPD_DECLARED_MAX);
        pcpd_declared_format(text, d);
        fd = runtime_dir(m);
        r = fd < 0 ? fd : pcpd_state_write_atomic(fd, file, text->str, text->len);
        if (fd >= 0)
                close(fd);
        if (r < 0)
                return pcpd_fail(error, PCPD_ERROR_CANNOT_SAVE_STATE,
                                 "Cannot save the declaration in %s/" PCPD_DECLARED_DIR ": %s", m->state_dir,
                                 g_strerror(-r));

        n = pcpd_declared_copy(d);
        n->runtime = true;
        g_free(n->path);
        n->path = g_strdup_printf("%s/" PCPD_DECLARED_DIR "/%s", m->state_dir, file);
        g_clear_pointer(&n->last_error, g_free);
        set = set_copy_without(m->declared, d->name);
        g_ptr_array_add(set, n);
        g_ptr_array_sort(set, compare_names);
        g_message("Declared mapping %s %s by a D-Bus call, saved in %s", d->name, cur != NULL ? "replaced" : "added",
                  n->path);
        pcpd_manager_set_declared(m, set);
        mp = pcpd_manager_declared_mapping(m, d->name);
        *ret_path = g_strdup(mp != NULL ? PCPD_MAPPING_PATH(mp) : "/");
        return 0;
}

int pcpd_manager_undeclare(pcpd_manager *m, const char *name, pcpd_failure *error) {
        pcpd_declared *cur = pcpd_declared_find(m->declared, name);
        g_autofree char *file = g_strconcat(name, ".conf", NULL);
        int fd, r = 0;

        if (cur == NULL)
                return pcpd_fail(error, PCPD_ERROR_NOT_FOUND, "No mapping is declared as '%s'.", name);
        if (!cur->runtime)
                return pcpd_fail(
                        error, PCPD_ERROR_CONFLICT,
                        "'%s' is declared in %s, which pcpd does not change: remove that file and run "
                        "systemctl reload pcpd.",
                        name, cur->path);
        fd = runtime_dir(m);
        if (fd < 0)
                r = fd;
        else if (unlinkat(fd, file, 0) < 0 && errno != ENOENT)
                r = -errno;
        else if (fsync(fd) < 0)
                r = -errno;
        if (fd >= 0)
                close(fd);
        if (r < 0)
                return pcpd_fail(error, PCPD_ERROR_CANNOT_SAVE_STATE,
                                 "Cannot remove %s: %s; the mapping stays declared.", cur->path,
                                 g_strerror(-r));
        g_message("Declared mapping %s removed by a D-Bus call", name);
        pcpd_manager_set_declared(m, set_copy_without(m->declared, name));
        return 0;
}

int pcpd_manager_release_refused(pcpd_manager *m, const pcpd_mapping *mp, const char *holder, pcpd_failure *error) {
        const char *name = pcpd_mapping_declared(mp);
        g_autofree char *how = NULL;
        pcpd_declared *d;

        if (name == NULL || (holder != NULL && pcpd_holders_holds(mp, holder) > 0))
                return 0;
        d = pcpd_declared_find(m->declared, name);
        how = d != NULL && !d->runtime ? g_strdup_printf("remove %s and reload pcpd to remove it", d->path)
                                       : g_strdup_printf("pcpctl undeclare %s removes it", name);
        return pcpd_fail(error, PCPD_ERROR_CONFLICT,
                         "Mapping %s is the declared mapping %s, which pcpd keeps for good: %s. Nothing was changed.",
                         PCPD_MAPPING_PATH(mp), name, how);
}

void pcpd_manager_declared_free(pcpd_manager *m) {
        if (m->declared_retry != 0)
                g_source_remove(m->declared_retry);
        m->declared_retry = 0;
        g_clear_pointer(&m->declared, g_ptr_array_unref);
}

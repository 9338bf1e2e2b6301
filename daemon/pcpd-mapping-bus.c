/* SPDX-License-Identifier: LGPL-2.1-or-later */

/*
 * The org.freedesktop.PCP1.Mapping objects: their vtable and signals. Each property is
 * one vtable entry that knows its own value: most are read by sd-bus straight from the
 * mapping's field (a NULL getter and the field's offset: sd-bus appends the basic value it
 * finds there, "" for a NULL string), the few that need a word made from a number have one
 * small getter each. Nothing compares property names (InterfacesAdded, which carries every
 * property, is the largest part of what a mapping costs on the bus).
 */

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pcpd-bus.h"
#include "pcpd-mapping-bus.h"

/* ---- getters ---- */

/* A field sd-bus reads itself must have the C type the signature's basic type is read as:
 * char * for "s" (NULL is ""), uint8_t "y", uint16_t "q", uint32_t "u", uint64_t "t" (an
 * int for "b": a bool field needs a getter). */
#define FIELD_IS(field, type)                                                                     \
        G_STATIC_ASSERT(__builtin_types_compatible_p(__typeof__(((pcpd_mapping *) NULL)->field), type))

FIELD_IS(internal_address, char *);
FIELD_IS(external_address, char *);
FIELD_IS(state, const char *);
FIELD_IS(error, const char *);
FIELD_IS(server_text, char *);
FIELD_IS(description, char *);
FIELD_IS(owner, char *);
FIELD_IS(app_id, char *);
FIELD_IS(app_id_source, const char *);
FIELD_IS(rare, struct pcpd_mapping_rare *);
FIELD_IS(protocol, uint8_t);
FIELD_IS(opcode, uint8_t);
FIELD_IS(internal_port, uint16_t);
FIELD_IS(suggested_port, uint16_t);
FIELD_IS(external_port, uint16_t);
FIELD_IS(remote_port, uint16_t);
FIELD_IS(granted, uint32_t);
FIELD_IS(expires_at, uint64_t);
FIELD_IS(created, uint64_t);
FIELD_IS(family, uint8_t);
FIELD_IS(persistent, bool);
/* "u" from uid_t and pid_t: the same 32 bits as the (uint32_t) casts they were */
G_STATIC_ASSERT(sizeof(uid_t) == sizeof(uint32_t) && sizeof(pid_t) == sizeof(uint32_t));
FIELD_IS(uid, uid_t);
FIELD_IS(pid, pid_t);

/* The getters below get the address of their field (the vtable entry's offset). */

static int get_opcode(sd_bus *bus, const char *path, const char *iface, const char *property, sd_bus_message *reply,
                      void *userdata, sd_bus_error *error) {
        const char *s = pcp_opcode_to_string(*(const uint8_t *) userdata);

        return sd_bus_message_append_basic(reply, 's', s ?: "");
}

static int get_family(sd_bus *bus, const char *path, const char *iface, const char *property, sd_bus_message *reply,
                      void *userdata, sd_bus_error *error) {
        return sd_bus_message_append_basic(reply, 's', *(const uint8_t *) userdata == AF_INET ? "ipv4" : "ipv6");
}

/* the protocol's name, or its number in decimal when it has none */
static int get_protocol(sd_bus *bus, const char *path, const char *iface, const char *property,
                        sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        uint8_t protocol = *(const uint8_t *) userdata;
        const char *n = pcp_protocol_to_string(protocol);
        char num[4];

        if (n == NULL) {
                g_snprintf(num, sizeof(num), "%u", protocol);
                n = num;
        }
        return sd_bus_message_append_basic(reply, 's', n);
}

/* RemoteAddress and Declared, from the mapping's block of rare fields (the vtable entry's
 * offset is mp->rare's): "" when it has none */
static int get_remote_address(sd_bus *bus, const char *path, const char *iface, const char *property,
                              sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        const struct pcpd_mapping_rare *r = *(struct pcpd_mapping_rare *const *) userdata;

        return sd_bus_message_append_basic(reply, 's', r != NULL && r->remote_address != NULL ? r->remote_address : "");
}

static int get_declared(sd_bus *bus, const char *path, const char *iface, const char *property, sd_bus_message *reply,
                        void *userdata, sd_bus_error *error) {
        const struct pcpd_mapping_rare *r = *(struct pcpd_mapping_rare *const *) userdata;

        return sd_bus_message_append_basic(reply, 's', r != NULL && r->declared != NULL ? r->declared : "");
}

static int get_bool(sd_bus *bus, const char *path, const char *iface, const char *property, sd_bus_message *reply,
                    void *userdata, sd_bus_error *error) {
        int b = *(const bool *) userdata;

        return sd_bus_message_append_basic(reply, 'b', &b);
}

/* ---- the vtable ---- */

static int method_release(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        return pcpd_bus_release(msg, userdata, error);
}

/* read by sd-bus from the field; read through a getter given the field */
#define FIELD(name, sig, field, flags) SD_BUS_PROPERTY(name, sig, NULL, offsetof(pcpd_mapping, field), flags)
#define GETTER(name, sig, getter, field, flags) SD_BUS_PROPERTY(name, sig, getter, offsetof(pcpd_mapping, field), flags)
#define CONST SD_BUS_VTABLE_PROPERTY_CONST
#define CHANGE SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE

/* The order is the contract's (dbus/org.freedesktop.PCP1.Mapping.xml): GetAll and
 * InterfacesAdded list them so. The flags are its EmitsChangedSignal annotations
 * (tests/bus/test-introspection.py): RemoteAddress, RemotePort and Description do not
 * change today, but the contract does not promise they never will. */
static const sd_bus_vtable mapping_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Release", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT, method_release,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        GETTER("Opcode", "s", get_opcode, opcode, CONST),
        GETTER("Family", "s", get_family, family, CONST),
        GETTER("Protocol", "s", get_protocol, protocol, CONST),
        FIELD("ProtocolNumber", "y", protocol, CONST),
        FIELD("InternalAddress", "s", internal_address, CHANGE),
        FIELD("InternalPort", "q", internal_port, CONST),
        FIELD("SuggestedExternalPort", "q", suggested_port, CHANGE), /* follows the port last granted */
        FIELD("ExternalAddress", "s", external_address, CHANGE),
        FIELD("ExternalPort", "q", external_port, CHANGE),
        GETTER("RemoteAddress", "s", get_remote_address, rare, CHANGE),
        FIELD("RemotePort", "q", remote_port, CHANGE),
        FIELD("Lifetime", "u", granted, CHANGE),
        FIELD("ExpiresAt", "t", expires_at, CHANGE),
        FIELD("State", "s", state, CHANGE),
        FIELD("Error", "s", error, CHANGE),
        FIELD("Server", "s", server_text, CHANGE), /* a direct mapping moves to a server that appears */
        FIELD("Description", "s", description, CHANGE),
        GETTER("Persistent", "b", get_bool, persistent, CHANGE),
        GETTER("Declared", "s", get_declared, rare, CHANGE),
        FIELD("Owner", "s", owner, CHANGE),
        FIELD("UID", "u", uid, CONST),
        FIELD("PID", "u", pid, CHANGE),
        FIELD("AppId", "s", app_id, CONST),
        FIELD("AppIdSource", "s", app_id_source, CONST),
        FIELD("Created", "t", created, CONST),
        SD_BUS_VTABLE_END,
};

static int mapping_find(sd_bus *bus, const char *path, const char *iface, void *userdata, void **found,
                        sd_bus_error *error) {
        pcpd_mapping *mp = pcpd_manager_find_path(userdata, path);

        if (mp == NULL)
                return 0;
        *found = mp;
        return 1;
}

static int mapping_enumerate(sd_bus *bus, const char *path, void *userdata, char ***nodes, sd_bus_error *error) {
        pcpd_manager *m = userdata;
        void *v;
        /* sd-bus frees the list and its strings with free() */
        char **l = calloc(pcpd_manager_n_mappings(m) + 1, sizeof(char *));
        size_t n = 0;

        if (l == NULL)
                return -ENOMEM;
        for (size_t i = 0; pcpd_mapping_set_next(&m->mappings, &i, &v);) {
                l[n] = strdup(PCPD_MAPPING_PATH((pcpd_mapping *) v));
                if (l[n] == NULL) {
                        while (n > 0)
                                free(l[--n]);
                        free(l);
                        return -ENOMEM;
                }
                n++;
        }
        *nodes = l;
        return 1;
}

int pcpd_mapping_bus_register(pcpd_manager *m, sd_bus *bus) {
        int r;

        r = sd_bus_add_fallback_vtable(bus, NULL, PCP1_MAPPING_PATH_PREFIX, PCP1_MAPPING_IFACE, mapping_vtable,
                                       mapping_find, m);
        if (r < 0)
                return r;
        return sd_bus_add_node_enumerator(bus, NULL, PCP1_MAPPING_PATH_PREFIX, mapping_enumerate, m);
}

/* ---- signals, built from the vtables ---- */

/*
 * sd-bus's emitters (sd_bus_emit_properties_changed_strv(), sd_bus_emit_object_added())
 * find the vtable of a path by walking its object tree, and the properties changed by name
 * in its tables, for each prefix of the path: 42,000 instructions for the grant's
 * PropertiesChanged, 16,000 for MappingCount's, 120,000 for a mapping's InterfacesAdded.
 * pcpd knows the vtable and the object: the messages below are built from the vtable entry
 * by entry, as sd-bus builds them (bus-objects.c: the same containers, the same values, a
 * NULL string as "", the same order), and are the same messages.
 */

#define VTABLE_NEXT(vt, v)                                                                        \
        ((const sd_bus_vtable *) (const void *) ((const uint8_t *) (v) + (vt)[0].x.start.element_size))

static bool vtable_is_property(const sd_bus_vtable *v) {
        return v->type == _SD_BUS_VTABLE_PROPERTY || v->type == _SD_BUS_VTABLE_WRITABLE_PROPERTY;
}

static const sd_bus_vtable *vtable_property(const sd_bus_vtable *vt, const char *name) {
        for (const sd_bus_vtable *v = VTABLE_NEXT(vt, vt); v->type != _SD_BUS_VTABLE_END; v = VTABLE_NEXT(vt, v))
                if (vtable_is_property(v) && strcmp(v->x.property.member, name) == 0)
                        return v;
        return NULL;
}

/* {sv}: the property's name and its value, read as a GetAll reads it */
static int append_property(sd_bus *bus, sd_bus_message *m, const char *path, const char *iface,
                           const sd_bus_vtable *v, void *object, sd_bus_error *error) {
        void *field = (uint8_t *) object + v->x.property.offset;
        const char *sig = v->x.property.signature;
        const void *value = field;
        int r;

        r = sd_bus_message_open_container(m, 'e', "sv");
        if (r >= 0)
                r = sd_bus_message_append_basic(m, 's', v->x.property.member);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'v', sig);
        if (r < 0)
                return r;
        if (v->x.property.get != NULL)
                r = v->x.property.get(bus, path, iface, v->x.property.member, m, field, error);
        else if (strcmp(sig, "as") == 0)
                r = sd_bus_message_append_strv(m, *(char ***) field);
        else {
                if (sig[0] == 's' || sig[0] == 'g')
                        value = *(const char **) field ?: "";
                else if (sig[0] == 'o')
                        value = *(const char **) field;
                r = sd_bus_message_append_basic(m, sig[0], value);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

int pcpd_bus_emit_properties_changed(sd_bus *bus, const char *path, const char *iface, const sd_bus_vtable *vt,
                                     void *object, const char *const *names) {
        __attribute__((cleanup(sd_bus_message_unrefp))) sd_bus_message *m = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        bool invalidated = false;
        int r;

        if (names == NULL || names[0] == NULL)
                return 0;
        r = sd_bus_message_new_signal(bus, &m, path, "org.freedesktop.DBus.Properties", "PropertiesChanged");
        if (r >= 0)
                r = sd_bus_message_append_basic(m, 's', iface);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        for (size_t i = 0; r >= 0 && names[i] != NULL; i++) {
                const sd_bus_vtable *v = vtable_property(vt, names[i]);

                if (v == NULL)
                        r = -ENOENT;
                else if (!(v->flags & (SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE | SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION)))
                        r = -EDOM;
                else if (v->flags & SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION)
                        invalidated = true;
                else
                        r = append_property(bus, m, path, iface, v, object, &error);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "s");
        for (size_t i = 0; r >= 0 && invalidated && names[i] != NULL; i++) {
                const sd_bus_vtable *v = vtable_property(vt, names[i]);

                if (v != NULL && (v->flags & SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION))
                        r = sd_bus_message_append_basic(m, 's', names[i]);
        }
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_send(bus, m, NULL);
        sd_bus_error_free(&error);
        return r;
}

/* the interfaces sd-bus serves on every object, listed first by InterfacesAdded and
 * InterfacesRemoved */
static const char *const builtin_interfaces[] = {
        "org.freedesktop.DBus.Peer",
        "org.freedesktop.DBus.Introspectable",
        "org.freedesktop.DBus.Properties",
};

/* InterfacesAdded from the object manager: the built-in interfaces with no properties,
 * then the Mapping interface with every property (none is hidden or explicit) */
static int emit_mapping_added(sd_bus *bus, pcpd_mapping *mp) {
        __attribute__((cleanup(sd_bus_message_unrefp))) sd_bus_message *m = NULL;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_message_new_signal(bus, &m, PCP1_MANAGER_PATH, "org.freedesktop.DBus.ObjectManager",
                                      "InterfacesAdded");
        if (r >= 0)
                r = sd_bus_message_append_basic(m, 'o', PCPD_MAPPING_PATH(mp));
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sa{sv}}");
        for (size_t i = 0; r >= 0 && i < G_N_ELEMENTS(builtin_interfaces); i++) {
                /* sd_bus_message_append(m, "{sa{sv}}", name, 0) without parsing the format */
                r = sd_bus_message_open_container(m, 'e', "sa{sv}");
                if (r >= 0)
                        r = sd_bus_message_append_basic(m, 's', builtin_interfaces[i]);
                if (r >= 0)
                        r = sd_bus_message_open_container(m, 'a', "{sv}");
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
                if (r >= 0)
                        r = sd_bus_message_close_container(m);
        }
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'e', "sa{sv}");
        if (r >= 0)
                r = sd_bus_message_append_basic(m, 's', PCP1_MAPPING_IFACE);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        for (const sd_bus_vtable *v = VTABLE_NEXT(mapping_vtable, mapping_vtable); r >= 0 && v->type != _SD_BUS_VTABLE_END;
             v = VTABLE_NEXT(mapping_vtable, v))
                if (vtable_is_property(v) && !(v->flags & (SD_BUS_VTABLE_HIDDEN | SD_BUS_VTABLE_PROPERTY_EXPLICIT)))
                        r = append_property(bus, m, PCPD_MAPPING_PATH(mp), PCP1_MAPPING_IFACE, v, mp, &error);
        for (int k = 0; r >= 0 && k < 3; k++) /* a{sv}, {sa{sv}}, a{sa{sv}} */
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_send(bus, m, NULL);
        sd_bus_error_free(&error);
        return r;
}

static int emit_mapping_removed(sd_bus *bus, pcpd_mapping *mp) {
        __attribute__((cleanup(sd_bus_message_unrefp))) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_signal(bus, &m, PCP1_MANAGER_PATH, "org.freedesktop.DBus.ObjectManager",
                                      "InterfacesRemoved");
        if (r >= 0)
                r = sd_bus_message_append_basic(m, 'o', PCPD_MAPPING_PATH(mp));
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "s");
        for (size_t i = 0; r >= 0 && i < G_N_ELEMENTS(builtin_interfaces); i++)
                r = sd_bus_message_append_basic(m, 's', builtin_interfaces[i]);
        if (r >= 0)
                r = sd_bus_message_append_basic(m, 's', PCP1_MAPPING_IFACE);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_send(bus, m, NULL);
        return r;
}

/* what changed -> the properties PropertiesChanged lists, in this order */
static const struct {
        pcpd_mapping_changed bit;
        const char *name;
} mapping_properties[] = {
        { PCPD_MAPPING_CHANGED_SERVER, "Server" },
        { PCPD_MAPPING_CHANGED_STATE, "State" },
        { PCPD_MAPPING_CHANGED_ERROR, "Error" },
        { PCPD_MAPPING_CHANGED_EXTERNAL_ADDRESS, "ExternalAddress" },
        { PCPD_MAPPING_CHANGED_EXTERNAL_PORT, "ExternalPort" },
        { PCPD_MAPPING_CHANGED_SUGGESTED_PORT, "SuggestedExternalPort" },
        { PCPD_MAPPING_CHANGED_LIFETIME, "Lifetime" },
        { PCPD_MAPPING_CHANGED_EXPIRES_AT, "ExpiresAt" },
        { PCPD_MAPPING_CHANGED_INTERNAL_ADDRESS, "InternalAddress" },
        { PCPD_MAPPING_CHANGED_PERSISTENT, "Persistent" },
        { PCPD_MAPPING_CHANGED_DECLARED, "Declared" },
        { PCPD_MAPPING_CHANGED_OWNER, "Owner" },
        { PCPD_MAPPING_CHANGED_PID, "PID" },
};

size_t pcpd_bus_mapping_property_names(pcpd_mapping_changed what, const char **ret, size_t max) {
        size_t n = 0;

        if (max == 0)
                return 0;
        for (size_t i = 0; i < G_N_ELEMENTS(mapping_properties) && n + 1 < max; i++)
                if (what & mapping_properties[i].bit)
                        ret[n++] = mapping_properties[i].name;
        ret[n] = NULL;
        return n;
}

void pcpd_mapping_bus_added(sd_bus *bus, pcpd_mapping *mp) {
        if (bus != NULL)
                (void) emit_mapping_added(bus, mp);
}

void pcpd_mapping_bus_changed(sd_bus *bus, pcpd_mapping *mp, pcpd_mapping_changed what) {
        const char *names[G_N_ELEMENTS(mapping_properties) + 1];

        if (bus != NULL && pcpd_bus_mapping_property_names(what, names, G_N_ELEMENTS(names)) > 0)
                (void) pcpd_bus_emit_properties_changed(bus, PCPD_MAPPING_PATH(mp), PCP1_MAPPING_IFACE, mapping_vtable, mp, names);
}

/* MappingRemoved(o path, s reason): sd_bus_emit_signal(..., "os", ...) without parsing the
 * format */
static int emit_mapping_removed_reason(sd_bus *bus, pcpd_mapping *mp, pcpd_remove_reason reason) {
        __attribute__((cleanup(sd_bus_message_unrefp))) sd_bus_message *m = NULL;
        int r;

        r = sd_bus_message_new_signal(bus, &m, PCP1_MANAGER_PATH, PCP1_MANAGER_IFACE, "MappingRemoved");
        if (r >= 0)
                r = sd_bus_message_append_basic(m, 'o', PCPD_MAPPING_PATH(mp));
        if (r >= 0)
                r = sd_bus_message_append_basic(m, 's', pcpd_remove_reason_to_string(reason));
        if (r >= 0)
                r = sd_bus_send(bus, m, NULL);
        return r;
}

void pcpd_mapping_bus_removed(sd_bus *bus, pcpd_mapping *mp, pcpd_remove_reason reason) {
        if (bus == NULL)
                return;
        (void) emit_mapping_removed(bus, mp);
        (void) emit_mapping_removed_reason(bus, mp, reason);
}

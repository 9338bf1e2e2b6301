/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* pcpctl's side of the bus: the connection, calls that polkit may have to authorise, and
 * the properties of the manager and of mappings read into typed structs. */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "pcp1-contract.h"

#define PROPERTIES_IFACE "org.freedesktop.DBus.Properties"
#define OBJECT_MANAGER_IFACE "org.freedesktop.DBus.ObjectManager"

/* match rules of the signals pcpctl follows */
#define MATCH_PROPERTIES                                                                                    \
        "type='signal',sender='" PCP1_BUS_NAME "',interface='" PROPERTIES_IFACE "',"                        \
        "member='PropertiesChanged',path_namespace='" PCP1_MANAGER_PATH "'"
#define MATCH_MAPPING_REMOVED                                                                               \
        "type='signal',sender='" PCP1_BUS_NAME "',path='" PCP1_MANAGER_PATH "',interface='" PCP1_MANAGER_IFACE \
        "',member='MappingRemoved'"
#define MATCH_INTERFACES_ADDED                                                                              \
        "type='signal',sender='" PCP1_BUS_NAME "',path='" PCP1_MANAGER_PATH "',interface='" OBJECT_MANAGER_IFACE \
        "',member='InterfacesAdded'"
/* every signal of pcpd: of the manager and of the mappings */
#define MATCH_PCPD_SIGNALS                                                                                  \
        "type='signal',sender='" PCP1_BUS_NAME "',path_namespace='" PCP1_MANAGER_PATH "'"
#define MATCH_NAME_OWNER                                                                                    \
        "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"                         \
        "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" PCP1_BUS_NAME "'"
#define MATCH_DISCONNECTED                                                                                  \
        "type='signal',sender='org.freedesktop.DBus.Local',path='/org/freedesktop/DBus/Local',"             \
        "interface='org.freedesktop.DBus.Local',member='Disconnected'"

/* ---- the connection ---- */

/* The system bus ($DBUS_SYSTEM_BUS_ADDRESS when set); logs its error. */
int bus_connect(bool ask_password, sd_bus **ret);

/* A sentence for an error from the bus or a negative errno: the daemon's own messages are
 * meant for users; the bus's are replaced where a better one is known, and a refusal of
 * polkit's under --no-ask-password says what to do. Valid until the next call. */
const char *bus_error_message(const sd_bus_error *error, int r);

int bus_new_call(sd_bus *bus, const char *path, const char *interface, const char *member,
                 sd_bus_message **ret);
/* A method call on pcpd that may need polkit's authorization: with a terminal agent and a
 * long timeout when polkit may ask the user. */
int bus_call_authorized(sd_bus *bus, bool ask_password, sd_bus_message *m, sd_bus_error *error,
                        sd_bus_message **reply);
/* The same, answered to callback in the event loop; bus_call_authorized_end() when the
 * answer is in (or no longer awaited) stops the agent. */
int bus_call_authorized_async(sd_bus *bus, bool ask_password, sd_bus_message *m, sd_bus_slot **slot,
                              sd_bus_message_handler_t callback, void *userdata);
void bus_call_authorized_end(void);

/* ---- properties into typed structs ---- */

typedef struct ServerInfo {
        char *interface;
        char *address;
        char *source;
        char *protocol;
        uint32_t epoch;
} ServerInfo;

typedef struct ServerList {
        ServerInfo *items;
        size_t n;
} ServerList;

/* DeclaredMappings: (name, file, mapping path or "/") each, as three parallel lists */
typedef struct DeclaredList {
        bool present; /* a newer pcpd: the property was there */
        char **names;
        char **files;
        char **mappings;
} DeclaredList;

typedef struct ManagerInfo {
        char *version;
        bool enabled;
        char *state;
        char *state_error; /* newer pcpd only: see has_state_error */
        bool has_state_error;
        ServerList servers;
        char **external_addresses;
        char **prefix64;
        uint32_t default_lifetime;
        uint32_t max_mappings_per_user;
        uint32_t mapping_count;
        DeclaredList declared;
} ManagerInfo;

typedef struct MappingInfo {
        char *path;
        char *opcode;
        char *family;
        char *protocol;
        uint8_t protocol_number;
        char *internal_address;
        uint16_t internal_port;
        uint16_t suggested_external_port;
        char *external_address;
        uint16_t external_port;
        char *remote_address;
        uint16_t remote_port;
        uint32_t lifetime;
        uint64_t expires_at;
        char *state;
        char *error;
        char *server;
        char *description;
        bool persistent;
        char *owner;
        uint32_t uid;
        uint32_t pid;
        char *app_id;
        char *app_id_source;
        uint64_t created;
        char *declared; /* "" or absent (an older pcpd): not declared */
} MappingInfo;

/* Bits of the properties a signal or reply carried (see the PROP_* names). */
typedef uint64_t PropMask;

enum {
        MANAGER_VERSION,
        MANAGER_ENABLED,
        MANAGER_STATE,
        MANAGER_STATE_ERROR,
        MANAGER_SERVERS,
        MANAGER_EXTERNAL_ADDRESSES,
        MANAGER_PREFIX64,
        MANAGER_DEFAULT_LIFETIME,
        MANAGER_MAX_MAPPINGS_PER_USER,
        MANAGER_MAPPING_COUNT,
        MANAGER_DECLARED_MAPPINGS,
        _MANAGER_PROP_MAX,
};

enum {
        MAPPING_OPCODE,
        MAPPING_FAMILY,
        MAPPING_PROTOCOL,
        MAPPING_PROTOCOL_NUMBER,
        MAPPING_INTERNAL_ADDRESS,
        MAPPING_INTERNAL_PORT,
        MAPPING_SUGGESTED_EXTERNAL_PORT,
        MAPPING_EXTERNAL_ADDRESS,
        MAPPING_EXTERNAL_PORT,
        MAPPING_REMOTE_ADDRESS,
        MAPPING_REMOTE_PORT,
        MAPPING_LIFETIME,
        MAPPING_EXPIRES_AT,
        MAPPING_STATE,
        MAPPING_ERROR,
        MAPPING_SERVER,
        MAPPING_DESCRIPTION,
        MAPPING_PERSISTENT,
        MAPPING_OWNER,
        MAPPING_UID,
        MAPPING_PID,
        MAPPING_APP_ID,
        MAPPING_APP_ID_SOURCE,
        MAPPING_CREATED,
        MAPPING_DECLARED,
        _MAPPING_PROP_MAX,
};

#define PROP_BIT(p) ((PropMask) 1 << (p))

/* The D-Bus name of a property (for JSON and for what changed). */
const char *manager_property_name(unsigned p);
const char *mapping_property_name(unsigned p);

void manager_info_done(ManagerInfo *i);
int manager_info_copy(const ManagerInfo *from, ManagerInfo *to);
void mapping_info_done(MappingInfo *i);
void mappings_free(MappingInfo *m, size_t n);

/* Read an a{sv} at the read position into the struct. Changed-set semantics: fields not
 * in the message stay as they are; names unknown to pcpctl, or of an unexpected type
 * (additions to the API), are skipped. ret_seen (may be NULL) gets the bits of the
 * properties read. */
int manager_info_read(sd_bus_message *m, ManagerInfo *i, PropMask *ret_seen);
int mapping_info_read(sd_bus_message *m, MappingInfo *i, PropMask *ret_seen);

/* Manager.GetAll */
int manager_info_get(sd_bus *bus, ManagerInfo *ret, sd_bus_error *error);
/* A property outside the table, the message at its variant: 1 when it was read (the
 * variant entered and left), 0 to have it skipped, < 0 to fail. */
typedef int (*PropOther)(sd_bus_message *m, const char *name, void *userdata);
/* manager_info_get(), and other() sees the properties pcpctl has no field for */
int manager_info_get_other(sd_bus *bus, ManagerInfo *ret, sd_bus_error *error, PropOther other, void *other_data);
/* One mapping's GetAll */
int mapping_info_get(sd_bus *bus, const char *path, MappingInfo *ret, sd_bus_error *error);
/* Every mapping (GetManagedObjects), ordered by id. */
int mappings_get(sd_bus *bus, MappingInfo **ret, size_t *ret_n, sd_bus_error *error);
/* The mappings of a GetManagedObjects reply, ordered by id. */
int mappings_read_managed(sd_bus_message *reply, MappingInfo **ret, size_t *ret_n);
/* InterfacesAdded: the path and the Mapping interface's properties; 0 when the signal
 * is about another interface. */
int mapping_info_read_added(sd_bus_message *m, MappingInfo *ret);

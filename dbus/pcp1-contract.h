/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The strings of the org.freedesktop.PCP1 contract, shared by pcpd, pcpctl and the GNOME
 * app. The documented introspection XML next to this file is the authority for names and
 * signatures; this header only spells the values that the XML documents in prose (states,
 * reasons, sources, error names) once, so no client keeps its own copy.
 */

/* names */
#define PCP1_BUS_NAME "org.freedesktop.PCP1"
#define PCP1_MANAGER_PATH "/org/freedesktop/PCP1"
#define PCP1_MAPPING_PATH_PREFIX "/org/freedesktop/PCP1/mapping" /* + "/<id>" */
#define PCP1_MANAGER_IFACE "org.freedesktop.PCP1.Manager"
#define PCP1_MAPPING_IFACE "org.freedesktop.PCP1.Mapping"

/* errors: org.freedesktop.PCP1.Error.<Name> */
#define PCP1_ERROR_PREFIX "org.freedesktop.PCP1.Error."
#define PCP1_ERROR_DISABLED PCP1_ERROR_PREFIX "Disabled"
#define PCP1_ERROR_NOT_AUTHORIZED PCP1_ERROR_PREFIX "NotAuthorized"
#define PCP1_ERROR_PORT_NOT_OWNED PCP1_ERROR_PREFIX "PortNotOwned"
#define PCP1_ERROR_CONFLICT PCP1_ERROR_PREFIX "Conflict"
#define PCP1_ERROR_QUOTA_EXCEEDED PCP1_ERROR_PREFIX "QuotaExceeded"
#define PCP1_ERROR_NO_SERVER PCP1_ERROR_PREFIX "NoServer"
#define PCP1_ERROR_UNSUPPORTED PCP1_ERROR_PREFIX "Unsupported"
#define PCP1_ERROR_SERVER_REFUSED PCP1_ERROR_PREFIX "ServerRefused"
#define PCP1_ERROR_NOT_FOUND PCP1_ERROR_PREFIX "NotFound"
#define PCP1_ERROR_CANNOT_SAVE_STATE PCP1_ERROR_PREFIX "CannotSaveState"
/* Reload: a file of the configuration is invalid; nothing was changed */
#define PCP1_ERROR_INVALID_CONFIGURATION PCP1_ERROR_PREFIX "InvalidConfiguration"
/* too many of the caller's (or of all callers') requests wait for polkit already */
#define PCP1_ERROR_TOO_MANY_PENDING PCP1_ERROR_PREFIX "TooManyPending"
/* pcpd is stopping: nothing that changes mappings or configuration is done any more */
#define PCP1_ERROR_STOPPING PCP1_ERROR_PREFIX "Stopping"

/* polkit actions */
#define PCP1_ACTION_MAP "org.freedesktop.PCP1.map"
#define PCP1_ACTION_MAP_PRIVILEGED "org.freedesktop.PCP1.map-privileged"
#define PCP1_ACTION_REVOKE "org.freedesktop.PCP1.revoke"
#define PCP1_ACTION_CONFIGURE "org.freedesktop.PCP1.configure"

/* Manager.State */
#define PCP1_STATE_DISABLED "disabled"
#define PCP1_STATE_NO_NETWORK "no-network"
#define PCP1_STATE_DISCOVERING "discovering"
#define PCP1_STATE_READY "ready"
#define PCP1_STATE_UNSUPPORTED "unsupported"

/* Mapping.State */
#define PCP1_MAPPING_PENDING "pending"
#define PCP1_MAPPING_ACTIVE "active"
#define PCP1_MAPPING_RENEWING "renewing"
#define PCP1_MAPPING_FAILED "failed"

/* Mapping.Error: "" or an RFC 6887 result name ("NO_RESOURCES", ...), or one of these */
#define PCP1_MAPPING_ERROR_UNREACHABLE "UNREACHABLE"
#define PCP1_MAPPING_ERROR_EXPIRED "EXPIRED"
#define PCP1_MAPPING_ERROR_DISABLED "DISABLED"
#define PCP1_MAPPING_ERROR_NO_SERVER "NO_SERVER" /* its server is gone and none serves it now: it waits */

/* Mapping.Opcode, Mapping.Family */
#define PCP1_OPCODE_MAP "map"
#define PCP1_OPCODE_PEER "peer"
#define PCP1_FAMILY_IPV4 "ipv4"
#define PCP1_FAMILY_IPV6 "ipv6"

/* MappingRemoved reasons */
#define PCP1_REASON_RELEASED "released"
#define PCP1_REASON_OWNER_VANISHED "owner-vanished"
#define PCP1_REASON_REVOKED "revoked"
#define PCP1_REASON_DISABLED "disabled"
#define PCP1_REASON_NETWORK_LOST "network-lost"
/* reserved, not emitted by this version (see MappingRemoved in the XML) */
#define PCP1_REASON_EXPIRED "expired"
#define PCP1_REASON_SERVER_REFUSED "server-refused"

/* Servers: source and protocol */
#define PCP1_SOURCE_DHCPV4 "dhcpv4"
#define PCP1_SOURCE_DHCPV6 "dhcpv6"
#define PCP1_SOURCE_GATEWAY "gateway"
#define PCP1_SOURCE_CONFIG "config"
#define PCP1_PROTOCOL_PCP "pcp"
#define PCP1_PROTOCOL_NATPMP "nat-pmp"
#define PCP1_PROTOCOL_NONE "none"
/* a router that speaks only UPnP-IGD, found by SSDP (pcpd's UPnP-IGD backend) */
#define PCP1_SOURCE_SSDP "ssdp"
#define PCP1_PROTOCOL_UPNP_IGD "upnp-igd"

/* Mapping.AppIdSource */
#define PCP1_APP_ID_FLATPAK "flatpak"
#define PCP1_APP_ID_SNAP "snap"
#define PCP1_APP_ID_SYSTEMD_UNIT "systemd-unit"
#define PCP1_APP_ID_DECLARED "declared"
#define PCP1_APP_ID_NONE "none"

/* limits the daemon enforces on what a caller sends (octets) */
#define PCP1_MAX_DESCRIPTION 256
#define PCP1_MAX_APP_ID 255

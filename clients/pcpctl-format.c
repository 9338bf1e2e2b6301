/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "config.h"

#include "pcpctl-format.h"

#include <inttypes.h>
#include <stdio.h>

#include "pcpctl-output.h"
#include "pcpctl-util.h"

char *format_endpoint(const char *address, uint16_t port) {
        char *s;
        int r;

        if (isempty(address))
                r = port > 0 ? asprintf(&s, "*:%u", port) : asprintf(&s, "-");
        else if (strchr(address, ':') != NULL)
                r = asprintf(&s, "[%s]:%u", address, port);
        else
                r = asprintf(&s, "%s:%u", address, port);
        return r < 0 ? NULL : s;
}

char *describe_mapping(const MappingInfo *i) {
        _cleanup_free_ char *external = NULL, *remote = NULL, *proto = NULL, *error = NULL, *st = NULL;
        const char *state = strempty(i->state);
        char *s;
        int r;

        proto = text_sanitize(isempty(i->protocol) ? "?" : i->protocol);
        error = text_sanitize(i->error);
        st = text_sanitize(state);
        if (proto == NULL || error == NULL || st == NULL)
                return NULL;

        if (streq(state, PCP1_MAPPING_ACTIVE) || streq(state, PCP1_MAPPING_RENEWING)) {
                external = format_endpoint(i->external_address, i->external_port);
                if (external == NULL)
                        return NULL;
                if (!isempty(i->remote_address)) {
                        remote = format_endpoint(i->remote_address, i->remote_port);
                        if (remote == NULL)
                                return NULL;
                        r = asprintf(&s, _("%s %u -> %s (peer %s, lifetime %" PRIu32 " s)%s"), proto,
                                     i->internal_port, external, remote, i->lifetime,
                                     streq(state, PCP1_MAPPING_RENEWING) ? _(", renewing") : "");
                } else
                        r = asprintf(&s, _("%s %u -> %s (lifetime %" PRIu32 " s)%s"), proto, i->internal_port,
                                     external, i->lifetime,
                                     streq(state, PCP1_MAPPING_RENEWING) ? _(", renewing") : "");
        } else if (streq(state, PCP1_MAPPING_FAILED))
                r = asprintf(&s, _("%s %u: failed (%s), retrying"), proto, i->internal_port,
                             isempty(error) ? _("unknown error") : error);
        else if (streq(state, PCP1_MAPPING_PENDING))
                r = asprintf(&s, _("%s %u: pending"), proto, i->internal_port);
        else
                r = asprintf(&s, "%s %u: %s", proto, i->internal_port, st);
        return r < 0 ? NULL : s;
}

const char *removal_reason_explained(const char *reason) {
        if (streq(reason, PCP1_REASON_OWNER_VANISHED))
                return _("its owner went away");
        if (streq(reason, PCP1_REASON_REVOKED))
                return _("by an administrator or another program");
        if (streq(reason, PCP1_REASON_DISABLED))
                return _("pcpd was switched off");
        if (streq(reason, PCP1_REASON_EXPIRED))
                return _("not renewed in time");
        if (streq(reason, PCP1_REASON_NETWORK_LOST))
                return _("its network is gone");
        if (streq(reason, PCP1_REASON_SERVER_REFUSED))
                return _("the router refused it for good");
        return NULL;
}

const char *mapping_state_color(const char *state) {
        if (streq_ptr(state, PCP1_MAPPING_ACTIVE))
                return ansi_highlight_green();
        if (streq_ptr(state, PCP1_MAPPING_PENDING) || streq_ptr(state, PCP1_MAPPING_RENEWING))
                return ansi_highlight_yellow();
        if (streq_ptr(state, PCP1_MAPPING_FAILED))
                return ansi_highlight_red();
        return "";
}

const char *manager_state_color(const char *state) {
        if (streq_ptr(state, PCP1_STATE_READY))
                return ansi_highlight_green();
        if (streq_ptr(state, PCP1_STATE_DISCOVERING))
                return ansi_highlight_yellow();
        if (streq_ptr(state, PCP1_STATE_DISABLED))
                return ansi_grey();
        if (streq_ptr(state, PCP1_STATE_NO_NETWORK) || streq_ptr(state, PCP1_STATE_UNSUPPORTED))
                return ansi_highlight_red();
        return "";
}

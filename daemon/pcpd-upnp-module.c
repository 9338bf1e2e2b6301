/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pcpd-upnp.so's one exported symbol (pcpd-upnp-module.h; pcpd-module.map hides the rest). */

#include "pcpd-upnp-module.h"

const pcpd_upnp_module pcpd_upnp_module_table = {
        .header = { .abi = PCPD_UPNP_MODULE_ABI, .size = sizeof(pcpd_upnp_module) },
        .new_ = pcpd_upnp_new,
        .free_ = pcpd_upnp_free,
        .set_interface = pcpd_upnp_set_interface,
        .refuse_reason = pcpd_upnp_refuse_reason,
        .add = pcpd_upnp_add,
        .remove = pcpd_upnp_remove,
        .remove_record = pcpd_upnp_remove_record,
        .forget = pcpd_upnp_forget,
        .get = pcpd_upnp_get,
        .get_record = pcpd_upnp_get_record,
        .get_igd = pcpd_upnp_get_igd,
        .count = pcpd_upnp_count,
        .n_busy = pcpd_upnp_n_busy,
        .get_stats = pcpd_upnp_get_stats,
        .state_to_string = pcpd_upnp_state_to_string,
        .error_name = pcpd_upnp_error_name,
        .sizeof_info = sizeof(pcpd_upnp_info),
        .sizeof_request = sizeof(pcpd_upnp_request),
        .sizeof_record = sizeof(pcpd_upnp_record),
        .sizeof_igd_info = sizeof(pcpd_upnp_igd_info),
        .sizeof_event = sizeof(pcpd_upnp_event),
        .sizeof_stats = sizeof(pcpd_upnp_stats),
};

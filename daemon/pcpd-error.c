/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpd-error.h"

#include <errno.h>
#include <stdarg.h>

int pcpd_error_to_errno(pcpd_error error) {
        switch (error) {
        case PCPD_ERROR_INVALID_ARGS:
                return -EINVAL;
        case PCPD_ERROR_DISABLED:
                return -ENETDOWN;
        case PCPD_ERROR_CONFLICT:
                return -EADDRINUSE;
        case PCPD_ERROR_QUOTA_EXCEEDED:
                return -EDQUOT;
        case PCPD_ERROR_NO_SERVER:
                return -EHOSTUNREACH;
        case PCPD_ERROR_UNSUPPORTED:
                return -EOPNOTSUPP;
        case PCPD_ERROR_NOT_FOUND:
                return -ENOENT;
        case PCPD_ERROR_CANNOT_SAVE_STATE:
                return -ENOSPC;
        case PCPD_ERROR_STOPPING:
                return -ESHUTDOWN;
        case PCPD_ERROR_INVALID_CONFIGURATION:
                return -EBADMSG;
        case PCPD_ERROR_NONE:
        case _PCPD_ERROR_MAX:
                break;
        }
        return -EIO;
}

int pcpd_fail(pcpd_failure *f, pcpd_error error, const char *format, ...) {
        va_list ap;

        g_return_val_if_fail(error > PCPD_ERROR_NONE && error < _PCPD_ERROR_MAX, -EIO);
        if (f != NULL) {
                g_free(f->message);
                f->error = error;
                va_start(ap, format);
                f->message = g_strdup_vprintf(format, ap);
                va_end(ap);
        }
        return pcpd_error_to_errno(error);
}

void pcpd_failure_clear(pcpd_failure *f) {
        if (f == NULL)
                return;
        g_clear_pointer(&f->message, g_free);
        f->error = PCPD_ERROR_NONE;
}

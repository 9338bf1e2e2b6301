/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpd-addr.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int pcpd_prefix_from_string(const char *s, struct in6_addr *ret_addr, uint8_t *ret_len) {
        char host[PCP_ADDR_STRLEN];
        const char *slash;
        struct in6_addr a;
        unsigned max, len = 0;
        size_t n;

        if (s == NULL)
                return -EINVAL;
        slash = strchr(s, '/');
        n = slash != NULL ? (size_t) (slash - s) : strlen(s);
        if (n == 0 || n >= sizeof(host))
                return -EINVAL;
        memcpy(host, s, n);
        host[n] = '\0';
        if (!pcp_addr_from_string(host, &a))
                return -EINVAL;
        max = pcp_addr_is_ipv4(&a) ? 32 : 128;
        if (slash == NULL)
                len = max;
        else {
                /* decimal digits only: no sign, no blanks, nothing after them */
                const char *p = slash + 1;

                if (*p == '\0' || strspn(p, "0123456789") != strlen(p))
                        return -EINVAL;
                for (; *p != '\0'; p++) {
                        len = len * 10 + (unsigned) (*p - '0');
                        if (len > max)
                                return -EINVAL;
                }
                if (len == 0)
                        return -EINVAL;
        }
        *ret_addr = a;
        *ret_len = (uint8_t) (max == 32 ? 96 + len : len);
        return 0;
}

char *pcpd_prefix_to_string(const struct in6_addr *a, uint8_t len, char buf[static PCPD_PREFIX_STRLEN]) {
        char addr[PCP_ADDR_STRLEN];
        bool v4 = pcp_addr_is_ipv4(a);

        snprintf(buf, PCPD_PREFIX_STRLEN, "%s/%u", pcp_addr_to_string(a, addr),
                 v4 && len >= 96 ? len - 96u : (unsigned) len);
        return buf;
}

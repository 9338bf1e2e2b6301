/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpctl-output.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <langinfo.h>
#include <libintl.h>
#include <locale.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <systemd/sd-login.h>
#include <time.h>
#include <unistd.h>
#include <wchar.h>

#define _(s) gettext(s)

#define TABLE_MAX_CELLS (1024u * 1024u)

/* ---- text ---- */

/* Length of the valid UTF-8 sequence at s (1-4), 0 if s does not start one. Stores the
 * code point. */
static size_t utf8_decode(const unsigned char *s, uint32_t *ret) {
        uint32_t c;
        size_t len;

        if (s[0] < 0x80) {
                *ret = s[0];
                return 1;
        }
        if ((s[0] & 0xe0) == 0xc0) {
                len = 2;
                c = s[0] & 0x1f;
        } else if ((s[0] & 0xf0) == 0xe0) {
                len = 3;
                c = s[0] & 0x0f;
        } else if ((s[0] & 0xf8) == 0xf0) {
                len = 4;
                c = s[0] & 0x07;
        } else
                return 0;

        for (size_t i = 1; i < len; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                c = (c << 6) | (s[i] & 0x3f);
        }

        /* overlong forms, surrogates, beyond Unicode */
        if ((len == 2 && c < 0x80) || (len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
            (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
                return 0;

        *ret = c;
        return len;
}

bool text_is_valid_utf8(const char *s) {
        const unsigned char *p = (const unsigned char *) s;

        while (*p != '\0') {
                uint32_t c;
                size_t n = utf8_decode(p, &c);

                if (n == 0)
                        return false;
                p += n;
        }
        return true;
}

char *text_sanitize(const char *s) {
        const unsigned char *p;
        char *buf, *q;

        if (s == NULL)
                s = "";

        /* worst case: every byte becomes \xNN */
        if (strlen(s) > (SIZE_MAX - 1) / 4)
                return NULL;
        buf = malloc(strlen(s) * 4 + 1);
        if (buf == NULL)
                return NULL;

        q = buf;
        p = (const unsigned char *) s;
        while (*p != '\0') {
                uint32_t c;
                size_t n = utf8_decode(p, &c);

                /* C0 and C1 controls and DEL would move the cursor or worse */
                if (n == 0 || c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0)) {
                        q += sprintf(q, "\\x%02x", *p);
                        p++;
                        continue;
                }
                memcpy(q, p, n);
                q += n;
                p += n;
        }
        *q = '\0';
        return buf;
}

/* Length of the ANSI CSI sequence at p ("\x1b[...m"), 0 if there is none. */
static size_t ansi_sequence_length(const unsigned char *p) {
        size_t n = 2;

        if (p[0] != 0x1b || p[1] != '[')
                return 0;
        while (p[n] != '\0' && (p[n] < 0x40 || p[n] > 0x7e))
                n++;
        return p[n] != '\0' ? n + 1 : n;
}

/* Cells of the character at p (its length in *ret_len). */
static size_t char_width(const unsigned char *p, size_t *ret_len) {
        uint32_t c;
        size_t n = utf8_decode(p, &c);
        int w;

        if (n == 0) {
                *ret_len = 1;
                return 1;
        }
        *ret_len = n;
        w = wcwidth((wchar_t) c);
        return w < 0 ? 1 : (size_t) w;
}

size_t text_width(const char *s) {
        const unsigned char *p = (const unsigned char *) s;
        size_t width = 0;

        while (*p != '\0') {
                size_t n = ansi_sequence_length(p);

                if (n > 0) {
                        p += n;
                        continue;
                }
                width += char_width(p, &n);
                p += n;
        }
        return width;
}

static bool is_locale_utf8(void) {
        const char *set = nl_langinfo(CODESET);

        return set != NULL && (strcasecmp(set, "UTF-8") == 0 || strcasecmp(set, "utf8") == 0);
}

char *text_ellipsize(const char *s, size_t width) {
        const char *dots = is_locale_utf8() ? "\u2026" : "...";
        size_t dots_width = is_locale_utf8() ? 1 : 3;
        const unsigned char *p = (const unsigned char *) s;
        size_t used = 0, keep;
        char *r;

        if (text_width(s) <= width)
                return strdup(s);
        if (width < dots_width) { /* no room for the ellipsis */
                dots = "";
                dots_width = 0;
        }

        /* the longest prefix that leaves room for the ellipsis */
        while (*p != '\0') {
                size_t n, w = char_width(p, &n);

                if (used + w > width - dots_width)
                        break;
                used += w;
                p += n;
        }
        keep = (size_t) ((const char *) p - s);
        r = malloc(keep + strlen(dots) + 1);
        if (r == NULL)
                return NULL;
        memcpy(r, s, keep);
        strcpy(r + keep, dots);
        return r;
}

/* ---- the terminal ---- */

static int cached_on_tty = -1, cached_stdout_tty = -1, cached_colors = -1, cached_colors256 = -1,
           cached_underline = -1;
static size_t cached_columns = 0;

bool on_tty(void) {
        /* both: a pipe on either side means a script is reading */
        if (cached_on_tty < 0)
                cached_on_tty = isatty(STDOUT_FILENO) > 0 && isatty(STDERR_FILENO) > 0;
        return cached_on_tty;
}

static bool stdout_is_tty(void) {
        if (cached_stdout_tty < 0)
                cached_stdout_tty = isatty(STDOUT_FILENO) > 0;
        return cached_stdout_tty;
}

size_t columns(void) {
        if (cached_columns == 0) {
                const char *e = getenv("COLUMNS");
                struct winsize ws = {0};
                char *end = NULL;
                unsigned long v = 0;

                if (e != NULL) {
                        errno = 0;
                        v = strtoul(e, &end, 10);
                        if (errno != 0 || end == e || *end != '\0' || v > 65535)
                                v = 0;
                }
                if (v == 0 && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) >= 0)
                        v = ws.ws_col;
                cached_columns = v > 0 ? v : 80;
        }
        return cached_columns;
}

size_t output_width(bool full) {
        return full || !stdout_is_tty() ? SIZE_MAX : columns();
}

/* systemd's booleans */
static int parse_boolean(const char *v) {
        static const char *const yes[] = {"1", "yes", "y", "true", "t", "on"};
        static const char *const no[] = {"0", "no", "n", "false", "f", "off"};

        for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
                if (strcasecmp(v, yes[i]) == 0)
                        return 1;
        for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
                if (strcasecmp(v, no[i]) == 0)
                        return 0;
        return -EINVAL;
}

static bool term_is_dumb(void) {
        const char *t = getenv("TERM");

        return t == NULL || strcmp(t, "dumb") == 0;
}

bool colors_enabled(void) {
        if (cached_colors < 0) {
                const char *e = getenv("SYSTEMD_COLORS");
                int b = -1;

                cached_colors256 = 1;
                if (e != NULL) {
                        if (strcmp(e, "16") == 0) {
                                b = 1;
                                cached_colors256 = 0;
                        } else if (strcmp(e, "256") == 0 || strcmp(e, "24bit") == 0)
                                b = 1;
                        else
                                b = parse_boolean(e); /* unparsable: as if unset */
                }
                if (b >= 0)
                        cached_colors = b;
                else if (getenv("NO_COLOR") != NULL) /* its value does not matter */
                        cached_colors = 0;
                else
                        cached_colors = on_tty() && !term_is_dumb();
        }
        return cached_colors;
}

bool underline_enabled(void) {
        if (cached_underline < 0) {
                const char *t = getenv("TERM");

                cached_underline = colors_enabled() && (t == NULL || strcmp(t, "linux") != 0);
        }
        return cached_underline;
}

#define ANSI(name, seq)                                                                                     \
        const char *name(void) {                                                                            \
                return colors_enabled() ? (seq) : "";                                                       \
        }

ANSI(ansi_normal, "\x1b[0m")
ANSI(ansi_highlight, "\x1b[0;1;39m")
ANSI(ansi_green, "\x1b[0;32m")
ANSI(ansi_red, "\x1b[0;31m")
ANSI(ansi_yellow, "\x1b[0;33m")
ANSI(ansi_highlight_green, "\x1b[0;1;32m")
ANSI(ansi_highlight_red, "\x1b[0;1;31m")
ANSI(ansi_highlight_yellow, "\x1b[0;1;33m")

const char *ansi_grey(void) {
        if (!colors_enabled())
                return "";
        /* 16 colours have no grey: "bright black" is the nearest */
        return cached_colors256 ? "\x1b[0;38;5;245m" : "\x1b[0;90m";
}

const char *ansi_underline(void) {
        return underline_enabled() ? "\x1b[0;4m" : "";
}

/* ---- times ---- */

const char *format_timespan(char *buf, size_t size, uint64_t usec) {
        static const struct {
                const char *suffix;
                uint64_t usec;
        } units[] = {
                {"d", UINT64_C(86400000000)},
                {"h", UINT64_C(3600000000)},
                {"min", UINT64_C(60000000)},
                {"s", UINT64_C(1000000)},
        };
        size_t used = 0;
        unsigned shown = 0;

        if (size == 0)
                return buf;
        buf[0] = '\0';

        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && shown < 2; i++) {
                uint64_t n = usec / units[i].usec;
                int k;

                if (n == 0 && shown == 0)
                        continue;
                usec -= n * units[i].usec;
                if (n == 0) /* "1h" rather than "1h 0min" */
                        break;
                k = snprintf(buf + used, size - used, "%s%" PRIu64 "%s", shown > 0 ? " " : "", n,
                             units[i].suffix);
                if (k < 0 || (size_t) k >= size - used)
                        break;
                used += (size_t) k;
                shown++;
        }
        if (shown == 0)
                snprintf(buf, size, "0s");
        return buf;
}

const char *format_relative(char *buf, size_t size, uint64_t usec, uint64_t now) {
        char span[64];

        if (usec / 1000000 == now / 1000000)
                snprintf(buf, size, "%s", _("now"));
        else if (usec > now)
                snprintf(buf, size, _("in %s"), format_timespan(span, sizeof(span), usec - now));
        else
                snprintf(buf, size, _("%s ago"), format_timespan(span, sizeof(span), now - usec));
        return buf;
}

bool time_locale_from_environment = false;

const char *format_clock(char *buf, size_t size, uint64_t usec, uint64_t now) {
        static bool time_locale_loaded = false;
        time_t t = (time_t) (usec / 1000000), n = (time_t) (now / 1000000);
        struct tm tm, tn;

        if (time_locale_from_environment && !time_locale_loaded) {
                setlocale(LC_TIME, "");
                time_locale_loaded = true;
        }
        if (localtime_r(&t, &tm) == NULL || localtime_r(&n, &tn) == NULL) {
                snprintf(buf, size, "@%" PRIu64, usec / 1000000);
                return buf;
        }
        if (tm.tm_year == tn.tm_year && tm.tm_yday == tn.tm_yday)
                strftime(buf, size, "%H:%M:%S", &tm);
        else
                strftime(buf, size, "%a %Y-%m-%d %H:%M:%S", &tm);
        return buf;
}

/* ---- tables ---- */

struct Table {
        size_t n_columns;
        size_t n_cells; /* headers included */
        size_t allocated;
        char **cells;
        const char **colors;
        unsigned *weights;
        size_t *min_widths;
        bool *hidden;
        size_t width;
        bool header;
};

Table *table_new(size_t n_columns, const char *const *headers) {
        Table *t;

        if (n_columns == 0)
                return NULL;

        t = calloc(1, sizeof(Table));
        if (t == NULL)
                return NULL;
        t->n_columns = n_columns;
        t->width = SIZE_MAX;
        t->header = true;
        t->weights = calloc(n_columns, sizeof(unsigned));
        t->min_widths = calloc(n_columns, sizeof(size_t));
        t->hidden = calloc(n_columns, sizeof(bool));
        if (t->weights == NULL || t->min_widths == NULL || t->hidden == NULL || table_add_row(t, headers, NULL) < 0)
                return table_free(t);
        return t;
}

Table *table_free(Table *t) {
        if (t == NULL)
                return NULL;
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t->colors);
        free(t->weights);
        free(t->min_widths);
        free(t->hidden);
        free(t);
        return NULL;
}

void table_set_shrink(Table *t, size_t column, unsigned weight, size_t min_width) {
        if (column >= t->n_columns)
                return;
        t->weights[column] = weight;
        t->min_widths[column] = min_width;
}

void table_set_width(Table *t, size_t width) {
        t->width = width;
}

void table_set_header(Table *t, bool header) {
        t->header = header;
}

void table_hide_column(Table *t, size_t column) {
        if (column < t->n_columns)
                t->hidden[column] = true;
}

static size_t visible_columns(const Table *t) {
        size_t n = 0;

        for (size_t c = 0; c < t->n_columns; c++)
                n += !t->hidden[c];
        return n;
}

int table_add_row(Table *t, const char *const *cells, const char *const *colors) {
        if (t->n_cells + t->n_columns > TABLE_MAX_CELLS)
                return -E2BIG;

        if (t->n_cells + t->n_columns > t->allocated) {
                size_t n = (t->n_cells + t->n_columns) * 2;
                char **c = realloc(t->cells, n * sizeof(char *));
                const char **k;

                if (c == NULL)
                        return -ENOMEM;
                t->cells = c;
                k = realloc(t->colors, n * sizeof(char *));
                if (k == NULL)
                        return -ENOMEM;
                t->colors = k;
                t->allocated = n;
        }

        for (size_t i = 0; i < t->n_columns; i++) {
                char *s = text_sanitize(cells[i]);

                if (s == NULL) {
                        while (i > 0)
                                free(t->cells[t->n_cells + --i]);
                        return -ENOMEM;
                }
                t->cells[t->n_cells + i] = s;
                t->colors[t->n_cells + i] = colors != NULL ? colors[i] : NULL;
        }
        t->n_cells += t->n_columns;
        return 0;
}

size_t table_n_rows(const Table *t) {
        return t->n_cells / t->n_columns - 1;
}

static const char *cell_text(const Table *t, size_t i) {
        /* an empty data cell is shown as "-", as systemd shows a missing value */
        return t->cells[i][0] == '\0' && i >= t->n_columns ? "-" : t->cells[i];
}

/* Column widths that fit t->width (as well as the columns' minimums allow). */
static void table_layout(const Table *t, size_t *widths) {
        size_t first = t->header ? 0 : t->n_columns, total = 0, need, avail, extra, gaps;
        size_t *mins = calloc(t->n_columns, sizeof(size_t));

        for (size_t i = first; i < t->n_cells; i++) {
                size_t w = text_width(cell_text(t, i));

                if (!t->hidden[i % t->n_columns] && w > widths[i % t->n_columns])
                        widths[i % t->n_columns] = w;
        }
        for (size_t c = 0; c < t->n_columns; c++)
                total += widths[c];
        gaps = visible_columns(t) > 0 ? visible_columns(t) - 1 : 0;
        need = total + gaps;
        if (t->width == SIZE_MAX || need <= t->width || mins == NULL) {
                free(mins);
                return;
        }

        /* every column that may shrink goes down to its minimum, then the room left goes
         * to them by weight, the heaviest first, none getting more than it needs: what
         * matters most is whole before anything else gets a cell more */
        total = 0;
        for (size_t c = 0; c < t->n_columns; c++) {
                size_t m = widths[c];

                if (t->weights[c] > 0 && t->min_widths[c] < m)
                        m = t->min_widths[c];
                mins[c] = m;
                total += m;
        }
        avail = t->width > gaps ? t->width - gaps : 0;
        extra = avail > total ? avail - total : 0;

        for (size_t c = 0; c < t->n_columns; c++) {
                size_t natural = widths[c];

                widths[c] = mins[c];
                mins[c] = natural; /* from here on: what each column would like */
        }
        while (extra > 0) {
                size_t best = t->n_columns, want;

                for (size_t c = 0; c < t->n_columns; c++)
                        if (t->weights[c] > 0 && !t->hidden[c] && widths[c] < mins[c] &&
                            (best == t->n_columns || t->weights[c] > t->weights[best]))
                                best = c;
                if (best == t->n_columns)
                        break;
                want = mins[best] - widths[best];
                if (want > extra)
                        want = extra;
                widths[best] += want;
                extra -= want;
        }
        free(mins);
}

int table_print(Table *t, FILE *f) {
        size_t first = t->header ? 0 : t->n_columns;
        size_t *widths = calloc(t->n_columns, sizeof(size_t));

        if (widths == NULL)
                return -ENOMEM;
        table_layout(t, widths);

        size_t last_column = 0;

        for (size_t c = 0; c < t->n_columns; c++)
                if (!t->hidden[c])
                        last_column = c;

        for (size_t i = first; i < t->n_cells; i++) {
                size_t column = i % t->n_columns, w;
                bool header = i < t->n_columns, last = column == last_column;
                const char *text = cell_text(t, i);
                const char *color = header ? ansi_underline()
                                   : t->cells[i][0] == '\0' ? ansi_grey()
                                                            : (t->colors[i] != NULL ? t->colors[i] : "");
                char *cut = NULL;

                if (t->hidden[column])
                        continue;
                if (text_width(text) > widths[column]) {
                        cut = text_ellipsize(text, widths[column]);
                        if (cut == NULL) {
                                free(widths);
                                return -ENOMEM;
                        }
                        text = cut;
                }
                w = text_width(text);
                fputs(color, f);
                fputs(text, f);
                /* the header is underlined from its first column to its last, gaps included */
                if (!header && color[0] != '\0')
                        fputs(ansi_normal(), f);
                if (!last)
                        fprintf(f, "%*s", (int) (widths[column] - w + 1), "");
                if (header && last && color[0] != '\0')
                        fputs(ansi_normal(), f);
                if (last)
                        fputc('\n', f);
                free(cut);
        }

        free(widths);
        return ferror(f) ? -EIO : 0;
}

/* ---- the pager ---- */

static pid_t pager_pid = 0;
static bool pager_has_stderr = false;

/* When no pager can be started: copy, so that the output is not lost. */
_Noreturn static void pager_fallback(void) {
        char buf[4096];
        ssize_t n;

        while ((n = read(STDIN_FILENO, buf, sizeof(buf))) > 0) {
                char *p = buf;

                while (n > 0) {
                        ssize_t k = write(STDOUT_FILENO, p, (size_t) n);

                        if (k <= 0)
                                _exit(EXIT_FAILURE);
                        p += k;
                        n -= k;
                }
        }
        _exit(n < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
}

void pager_open(bool disabled) {
        const char *pager, *less, *e;
        bool trust_pager;
        int fd[2], secure;
        uid_t uid;
        pid_t pid;

        if (disabled || pager_pid > 0)
                return;
        /* decided for the terminal, not for the pipe to the pager */
        (void) columns();
        (void) stdout_is_tty();
        (void) underline_enabled();
        if (!on_tty() || term_is_dumb())
                return;

        pager = getenv("SYSTEMD_PAGER");
        if (pager == NULL)
                pager = getenv("PAGER");
        if (pager != NULL && (pager[strspn(pager, " \t")] == '\0' || strcmp(pager, "cat") == 0))
                return;

        /* the pager must not become a way for a program that gained privileges to run
         * a shell: unless told, secure mode (less only, LESSSECURE=1) when we do not run
         * as the owner of the session */
        e = getenv("SYSTEMD_PAGERSECURE");
        trust_pager = e != NULL;
        if (e != NULL) {
                secure = parse_boolean(e);
                if (secure < 0) /* unparsable: the safe side */
                        secure = 1;
        } else
                secure = sd_pid_get_owner_uid(0, &uid) < 0 || uid != geteuid();

        if (pipe2(fd, O_CLOEXEC) < 0)
                return;
        fflush(stdout);
        fflush(stderr);

        pid = fork();
        if (pid < 0) {
                close(fd[0]);
                close(fd[1]);
                return;
        }
        if (pid == 0) {
                /* the pager */
                if (dup2(fd[0], STDIN_FILENO) < 0)
                        _exit(EXIT_FAILURE);
                close(fd[0]);
                close(fd[1]);
                /* no zombie pager when pcpctl is killed */
                (void) prctl(PR_SET_PDEATHSIG, SIGTERM);
                signal(SIGINT, SIG_DFL);
                signal(SIGPIPE, SIG_DFL);

                less = getenv("SYSTEMD_LESS");
                (void) setenv("LESS", less != NULL ? less : "FRSXMK", 1);
                if (getenv("SYSTEMD_LESSCHARSET") != NULL)
                        (void) setenv("LESSCHARSET", getenv("SYSTEMD_LESSCHARSET"), 1);
                else if (is_locale_utf8())
                        (void) setenv("LESSCHARSET", "utf-8", 1);
                if (secure)
                        (void) setenv("LESSSECURE", "1", 1);

                if (pager != NULL && (!secure || trust_pager)) {
                        execlp("/bin/sh", "sh", "-c", pager, (char *) NULL);
                        _exit(EXIT_FAILURE);
                }
                /* Debian's alternative for pagers is "pager"; only less has a secure mode */
                if (!secure)
                        execlp("pager", "pager", (char *) NULL);
                execlp("less", "less", (char *) NULL);
                if (!secure)
                        execlp("more", "more", (char *) NULL);
                pager_fallback();
        }

        /* our output goes to the pager; so do errors when they went to the terminal */
        if (dup2(fd[1], STDOUT_FILENO) < 0) {
                close(fd[0]);
                close(fd[1]);
                return;
        }
        if (isatty(STDERR_FILENO) > 0)
                pager_has_stderr = dup2(fd[1], STDERR_FILENO) >= 0;
        close(fd[0]);
        close(fd[1]);
        pager_pid = pid;
}

void pager_close(void) {
        if (pager_pid <= 0)
                return;
        fflush(stdout);
        fflush(stderr);
        /* end of input for the pager: every descriptor that writes to it */
        (void) close(STDOUT_FILENO);
        if (pager_has_stderr)
                (void) close(STDERR_FILENO);
        (void) kill(pager_pid, SIGCONT);
        while (waitpid(pager_pid, NULL, 0) < 0 && errno == EINTR)
                ;
        pager_pid = 0;
}

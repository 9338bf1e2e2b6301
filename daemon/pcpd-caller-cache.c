/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include "pcpd-caller-cache.h"

#include <errno.h>
#include <glib.h>
#include <string.h>

#include "pcpd-caller.h"

#ifndef _cleanup_
#define _cleanup_(f) __attribute__((cleanup(f)))
#endif

struct pcpd_caller_cache {
        sd_bus *bus;
        sd_bus_slot *name_slot; /* NameOwnerChanged of names that left */
        GHashTable *by_name;    /* unique name -> pcpd_caller* (a reference) */
        GHashTable *asking;     /* pcpd_caller* whose question is out (a reference each) */
        GQueue lru;             /* answered entries in by_name, least recently used first */
        pcpd_caller_ask ask;    /* asks who c->name is in place of the bus (tests), or NULL */
        void *ask_userdata;
};

struct pcpd_caller_wait {
        pcpd_caller *caller;
        pcpd_caller_callback cb; /* NULL once cancelled */
        void *userdata;
        bool dispatching; /* its answer is being given: freed by the one giving it */
};

pcpd_caller *pcpd_caller_ref(pcpd_caller *c) {
        if (c != NULL)
                c->n_ref++;
        return c;
}

pcpd_caller *pcpd_caller_unref(pcpd_caller *c) {
        if (c == NULL || --c->n_ref > 0)
                return NULL;
        g_assert(c->slot == NULL && c->lru == NULL);
        if (c->waiters != NULL)
                g_ptr_array_free(c->waiters, TRUE);
        g_free(c->name);
        g_free(c->security_label);
        g_free(c->app_id);
        g_free(c);
        return NULL;
}

void pcpd_caller_app(pcpd_caller *c, uint64_t received, const char **ret_id, const char **ret_source) {
        if (!c->app_known) {
                pcpd_caller_detect_app(c->pid, c->uid, c->security_label, received, &c->app_id, &c->app_id_source);
                c->app_known = true;
        }
        *ret_id = c->app_id;
        *ret_source = c->app_id_source;
}

/* the cache lets go of c (it left the bus, was evicted, or the bus could not say) */
static void cache_drop(pcpd_caller_cache *cache, pcpd_caller *c) {
        if (c->lru != NULL) {
                g_queue_delete_link(&cache->lru, c->lru);
                c->lru = NULL;
        }
        g_hash_table_remove(cache->by_name, c->name); /* unrefs c */
}

static void give_answer(pcpd_caller *c, pcpd_caller *answer, const sd_bus_error *error) {
        GPtrArray *waiters = c->waiters;

        c->waiters = NULL;
        if (waiters == NULL)
                return;
        for (guint i = 0; i < waiters->len; i++)
                ((pcpd_caller_wait *) waiters->pdata[i])->dispatching = true;
        for (guint i = 0; i < waiters->len; i++) {
                pcpd_caller_wait *w = waiters->pdata[i];
                pcpd_caller_callback cb = w->cb;
                w->cb = NULL;
                if (cb != NULL)
                        cb(answer, error, w->userdata);
        }
        g_ptr_array_free(waiters, TRUE); /* frees the waits */
}

/* "a{sv}" of GetConnectionCredentials into c; false without a uid */
static bool read_credentials(sd_bus_message *reply, pcpd_caller *c) {
        bool have_uid = false;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        while (r >= 0 && (r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                const char *key;
                r = sd_bus_message_read(reply, "s", &key);
                if (r < 0)
                        break;
                if (strcmp(key, "UnixUserID") == 0) {
                        uint32_t u;
                        r = sd_bus_message_read(reply, "v", "u", &u);
                        c->uid = u;
                        have_uid = r >= 0;
                } else if (strcmp(key, "ProcessID") == 0) {
                        uint32_t pid;
                        r = sd_bus_message_read(reply, "v", "u", &pid);
                        c->pid = (pid_t) pid;
                } else if (strcmp(key, "LinuxSecurityLabel") == 0) {
                        const void *label;
                        size_t size;
                        r = sd_bus_message_enter_container(reply, 'v', "ay");
                        if (r >= 0)
                                r = sd_bus_message_read_array(reply, 'y', &label, &size);
                        if (r >= 0)
                                r = sd_bus_message_exit_container(reply);
                        if (r >= 0 && size > 0 && size <= 4096) {
                                g_free(c->security_label);
                                c->security_label = g_strndup(label, size);
                        }
                } else
                        r = sd_bus_message_skip(reply, "v");
                if (r >= 0)
                        r = sd_bus_message_exit_container(reply);
        }
        return r >= 0 && have_uid;
}

void pcpd_caller_cache_answer(pcpd_caller *c, sd_bus_message *reply) {
        pcpd_caller_cache *cache = c->cache;
        _cleanup_(sd_bus_error_free) sd_bus_error err = SD_BUS_ERROR_NULL;
        bool kept = g_hash_table_lookup(cache->by_name, c->name) == c;

        c->slot = sd_bus_slot_unref(c->slot);
        g_hash_table_steal(cache->asking, c); /* its reference is ours until the end */
        if (sd_bus_message_is_method_error(reply, NULL))
                sd_bus_error_setf(&err, SD_BUS_ERROR_ACCESS_DENIED, "Cannot identify the caller: %s",
                                  sd_bus_message_get_error(reply)->message ?: "unknown error");
        else if (!read_credentials(reply, c))
                sd_bus_error_set(&err, SD_BUS_ERROR_ACCESS_DENIED, "Cannot identify the caller's user.");

        if (sd_bus_error_is_set(&err)) {
                /* nothing kept: the next call asks again */
                if (kept)
                        cache_drop(cache, c);
                give_answer(c, NULL, &err);
        } else {
                if (kept) {
                        g_queue_push_tail(&cache->lru, c);
                        c->lru = cache->lru.tail;
                        /* the least recently used answer goes; those still asked about stay */
                        while (g_queue_get_length(&cache->lru) > PCPD_CALLER_CACHE_MAX)
                                cache_drop(cache, g_queue_peek_head(&cache->lru));
                }
                give_answer(c, c, NULL);
        }
        pcpd_caller_unref(c);
}

static int on_credentials(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        pcpd_caller_cache_answer(userdata, reply);
        return 0;
}

pcpd_caller *pcpd_caller_cache_get(pcpd_caller_cache *cache, const char *name) {
        pcpd_caller *c = g_hash_table_lookup(cache->by_name, name);

        if (c == NULL || c->lru == NULL) /* unknown, or not answered yet */
                return NULL;
        if (c->lru != cache->lru.tail) {
                g_queue_unlink(&cache->lru, c->lru);
                g_queue_push_tail_link(&cache->lru, c->lru);
        }
        return c;
}

int pcpd_caller_cache_query(pcpd_caller_cache *cache, const char *name, pcpd_caller_callback cb, void *userdata,
                            pcpd_caller_wait **ret_wait) {
        pcpd_caller *c = g_hash_table_lookup(cache->by_name, name);
        pcpd_caller_wait *w;
        int r;

        g_return_val_if_fail(name != NULL && cb != NULL, -EINVAL);
        g_return_val_if_fail(c == NULL || c->lru == NULL, -EEXIST); /* answered: pcpd_caller_cache_get() */
        if (c == NULL) {
                c = g_new0(pcpd_caller, 1);
                c->n_ref = 1;
                c->name = g_strdup(name);
                c->cache = cache;
                c->app_id_source = "none";
                if (cache->ask != NULL)
                        r = cache->ask(c, cache->ask_userdata);
                else
                        r = sd_bus_call_method_async(cache->bus, &c->slot, "org.freedesktop.DBus",
                                                     "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                                     "GetConnectionCredentials", on_credentials, c, "s", name);
                if (r < 0) {
                        pcpd_caller_unref(c);
                        return r;
                }
                g_hash_table_add(cache->asking, pcpd_caller_ref(c));
                g_hash_table_insert(cache->by_name, c->name, c);
        }
        if (c->waiters == NULL)
                c->waiters = g_ptr_array_new_with_free_func(g_free);
        w = g_new0(pcpd_caller_wait, 1);
        w->caller = c;
        w->cb = cb;
        w->userdata = userdata;
        g_ptr_array_add(c->waiters, w);
        *ret_wait = w;
        return 0;
}

void pcpd_caller_wait_cancel(pcpd_caller_wait *w) {
        if (w == NULL)
                return;
        if (w->dispatching) {
                w->cb = NULL;
                return;
        }
        g_ptr_array_remove_fast(w->caller->waiters, w); /* frees w */
}

unsigned pcpd_caller_cache_size(pcpd_caller_cache *cache) {
        return g_hash_table_size(cache->by_name);
}

void pcpd_caller_cache_name_left(pcpd_caller_cache *cache, const char *name) {
        pcpd_caller *c = g_hash_table_lookup(cache->by_name, name);

        if (c == NULL)
                return;
        /* a question still out is answered all the same, and not kept */
        cache_drop(cache, c);
        g_debug("Caller %s left the bus: its credentials are forgotten (%u connections known)", name,
                g_hash_table_size(cache->by_name));
}

static int on_name_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(msg, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (name[0] == ':' && new_owner[0] == '\0')
                pcpd_caller_cache_name_left(userdata, name);
        return 0;
}

static void caller_forget(gpointer p) {
        pcpd_caller *c = p;

        c->lru = NULL; /* the queue goes with the cache, or the link already went */
        pcpd_caller_unref(c);
}

static pcpd_caller_cache *cache_alloc(void) {
        pcpd_caller_cache *cache = g_new0(pcpd_caller_cache, 1);

        cache->by_name = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, caller_forget);
        cache->asking = g_hash_table_new(g_direct_hash, g_direct_equal);
        g_queue_init(&cache->lru);
        return cache;
}

int pcpd_caller_cache_new(sd_bus *bus, pcpd_caller_cache **ret) {
        pcpd_caller_cache *cache = cache_alloc();
        int r;

        cache->bus = sd_bus_ref(bus);
        /* only unique names that left (arg2, the new owner, empty): the bus sends pcpd each
         * NameOwnerChanged once however many of its rules match it */
        r = sd_bus_add_match(bus, &cache->name_slot,
                             "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                             "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg2=''",
                             on_name_owner_changed, cache);
        if (r < 0) {
                pcpd_caller_cache_free(cache);
                return r;
        }
        *ret = cache;
        return 0;
}

pcpd_caller_cache *pcpd_caller_cache_new_unbound(pcpd_caller_ask ask, void *userdata) {
        pcpd_caller_cache *cache = cache_alloc();

        g_assert(ask != NULL);
        cache->ask = ask;
        cache->ask_userdata = userdata;
        return cache;
}

pcpd_caller_cache *pcpd_caller_cache_free(pcpd_caller_cache *cache) {
        GHashTableIter it;
        gpointer k;

        if (cache == NULL)
                return NULL;
        cache->name_slot = sd_bus_slot_unref(cache->name_slot);
        /* questions still out: no answer will come */
        g_hash_table_iter_init(&it, cache->asking);
        while (g_hash_table_iter_next(&it, &k, NULL)) {
                pcpd_caller *c = k;
                c->slot = sd_bus_slot_unref(c->slot);
                if (c->waiters != NULL) {
                        g_ptr_array_free(c->waiters, TRUE);
                        c->waiters = NULL;
                }
                c->cache = NULL;
                g_hash_table_iter_remove(&it);
                pcpd_caller_unref(c);
        }
        g_hash_table_destroy(cache->asking);
        g_queue_clear(&cache->lru);
        g_hash_table_destroy(cache->by_name);
        sd_bus_unref(cache->bus);
        g_free(cache);
        return NULL;
}

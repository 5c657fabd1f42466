// SPDX-License-Identifier: GPL-2.0
/*
 * etcd v3 client over the JSON gateway (POST /v3/...), libcurl + json-c.
 * Transport only: no nodemesh schema, no daemon logic.
 *
 * Wire facts (etcd 3.4, see DESIGN.md §4): keys and values are base64,
 * 64-bit numbers are JSON strings (parsed with strtoll/strtoull, never as
 * doubles), fields equal to their zero value are omitted, errors are
 * {"error","message","code"} with a gRPC code, watch messages are one
 * {"result":{...}} per line.
 *
 * Errors: every call returns 0 or a negative errno and, when @err is not
 * NULL, a reason in the form
 *   "failed to range nodemesh/ on http://127.0.0.1:2379: HTTP 401: etcdserver: invalid auth token"
 * Distinct codes a caller acts on:
 *   -ESTALE        header.cluster_id changed: a different etcd answers;
 *                  re-list after nm_etcd_forget_cluster_id()
 *   -ERANGE        revision compacted (range at an old revision, watch)
 *   -EACCES        permission denied (RBAC)
 *   -EPERM         authentication failed (bad user or password)
 *   -ENOENT        key or lease not found, lease expired
 *   -EBADMSG       malformed reply (JSON, base64, number)
 *   -ECONNREFUSED, -ETIMEDOUT, -EPROTO (TLS), -EIO: transport, after
 *                  trying every endpoint
 *
 * Threads: one struct nm_etcd may be shared; unary calls serialise on its
 * own curl handle, and each nm_etcd_watch() runs on a handle of its own,
 * so a watch blocking in one thread does not stall puts from another.
 */
#ifndef NM_AGENT_ETCD_H
#define NM_AGENT_ETCD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#define NM_ETCD_ERR_MAX 512
#define NM_ETCD_MAX_ENDPOINTS 16

struct nm_etcd_err {
	char msg[NM_ETCD_ERR_MAX];
};

struct nm_etcd_config {
	/* "http://host:port" or "https://host:port", tried in order. */
	const char *endpoints[NM_ETCD_MAX_ENDPOINTS];
	size_t n_endpoints;
	/* TLS (https endpoints): CA bundle; client cert and key for mTLS. */
	const char *ca_file;
	const char *cert_file;
	const char *key_file;
	/* Token auth when @username is set. */
	const char *username;
	const char *password;
	/* 0: defaults (2000 ms connect, 10000 ms per unary request). */
	long connect_timeout_ms;
	long request_timeout_ms;
};

struct nm_etcd;

int nm_etcd_open(const struct nm_etcd_config *cfg, struct nm_etcd **out,
		 struct nm_etcd_err *err);
void nm_etcd_close(struct nm_etcd *c);

/* The cluster_id remembered from the first reply (0: none yet). */
__u64 nm_etcd_cluster_id(struct nm_etcd *c);
/* Accept whatever cluster answers next (after handling -ESTALE). */
void nm_etcd_forget_cluster_id(struct nm_etcd *c);
/* The endpoint the next call tries first. */
const char *nm_etcd_endpoint(struct nm_etcd *c);

struct nm_etcd_kv {
	char *key; /* NUL-terminated, @key_len bytes before it */
	size_t key_len;
	char *value; /* NUL-terminated, may hold NULs itself */
	size_t value_len;
	__s64 create_revision;
	__s64 mod_revision;
	__s64 version;
	__u64 lease;
};

void nm_etcd_kv_free(struct nm_etcd_kv *kv);

struct nm_etcd_kvs {
	struct nm_etcd_kv *kv;
	size_t n, cap;
	__s64 revision; /* header revision the range was read at */
	__s64 count; /* total matching keys (first page) */
	bool more; /* decoders: another page follows */
};

void nm_etcd_kvs_free(struct nm_etcd_kvs *kvs);

struct nm_etcd_range_opts {
	const char *key;
	bool prefix; /* every key starting with @key */
	__s64 revision; /* 0: latest */
	__s64 page_size; /* 0: one request for everything */
};

/*
 * Call @cb for every key, page by page: the first page fixes the revision
 * (unless @o->revision does) and later pages read at that revision, from
 * last key + "\0", so writes made while paging never leak in. @cb returning
 * non-zero stops and is returned. @revision gets the revision read at.
 */
typedef int (*nm_etcd_kv_cb)(const struct nm_etcd_kv *kv, void *arg);
int nm_etcd_range_each(struct nm_etcd *c, const struct nm_etcd_range_opts *o,
		       nm_etcd_kv_cb cb, void *arg, __s64 *revision,
		       struct nm_etcd_err *err);
/* The same, collected into @out (free with nm_etcd_kvs_free()). */
int nm_etcd_range(struct nm_etcd *c, const struct nm_etcd_range_opts *o,
		  struct nm_etcd_kvs *out, struct nm_etcd_err *err);
/* One key; -ENOENT (with a reason) when absent. */
int nm_etcd_get(struct nm_etcd *c, const char *key, struct nm_etcd_kv *kv,
		struct nm_etcd_err *err);

/* @lease 0: none. @revision (may be NULL) gets the put's revision. */
int nm_etcd_put(struct nm_etcd *c, const char *key, const void *value,
		size_t len, __u64 lease, __s64 *revision,
		struct nm_etcd_err *err);
/* Delete @key or every key under it; @deleted (may be NULL) gets the count. */
int nm_etcd_delete(struct nm_etcd *c, const char *key, bool prefix,
		   __s64 *deleted, __s64 *revision, struct nm_etcd_err *err);

/*
 * Transactions. Both return 0 whether or not the comparison held; @done
 * says which. When it did not, @current (may be NULL; free with
 * nm_etcd_kv_free()) gets the key as it is, zeroed if it does not exist.
 */
/* Put @key only if it does not exist (create_revision == 0). */
int nm_etcd_create(struct nm_etcd *c, const char *key, const void *value,
		   size_t len, __u64 lease, bool *done,
		   struct nm_etcd_kv *current, struct nm_etcd_err *err);
/* Put @key only if its mod_revision is still @mod_revision. */
int nm_etcd_cas(struct nm_etcd *c, const char *key, __s64 mod_revision,
		const void *value, size_t len, __u64 lease, bool *done,
		struct nm_etcd_kv *current, struct nm_etcd_err *err);

/* Leases. IDs are 64-bit and travel as strings. */
int nm_etcd_lease_grant(struct nm_etcd *c, __s64 ttl, __u64 *id,
			__s64 *granted_ttl, struct nm_etcd_err *err);
/* One renewal; @ttl gets the TTL etcd reports. -ENOENT: expired/unknown. */
int nm_etcd_lease_keepalive(struct nm_etcd *c, __u64 id, __s64 *ttl,
			    struct nm_etcd_err *err);
int nm_etcd_lease_revoke(struct nm_etcd *c, __u64 id, struct nm_etcd_err *err);

/* Compact history up to @revision (tests, maintenance). */
int nm_etcd_compact(struct nm_etcd *c, __s64 revision, struct nm_etcd_err *err);

/*
 * Raw call: POST @body (JSON) to @path ("/v3/auth/user/add"), with the
 * same failover, auth and cluster guard; @reply (may be NULL) gets the
 * reply body, malloc'd and NUL-terminated. @what names the operation in
 * error messages ("add user rd").
 */
int nm_etcd_request(struct nm_etcd *c, const char *what, const char *path,
		    const char *body, char **reply, struct nm_etcd_err *err);

/* Watch. */
enum nm_etcd_event_type {
	NM_ETCD_PUT = 0,
	NM_ETCD_DELETE = 1,
};

struct nm_etcd_event {
	enum nm_etcd_event_type type;
	struct nm_etcd_kv kv; /* a DELETE carries the key and mod_revision */
};

/* Return non-zero to end the watch; the value is returned by the watch. */
typedef int (*nm_etcd_event_cb)(const struct nm_etcd_event *ev, void *arg);

/*
 * Wakes a watch blocked in another thread at once, so that it need not
 * poll its stop flag: a watch without one looks at @stop every 100 ms, a
 * watch with one every 5 s (a safety net) and whenever it is woken. One
 * watch at a time per waker. Set the stop flag first, then wake: a wake
 * with no watch running is a no-op, and a watch that starts later sees
 * the flag.
 */
struct nm_etcd_waker;

int nm_etcd_waker_new(struct nm_etcd_waker **out);
/* No watch may be using @w any more. NULL is a no-op. */
void nm_etcd_waker_free(struct nm_etcd_waker *w);
/* From any thread; returns at once. NULL is a no-op. */
void nm_etcd_waker_wake(struct nm_etcd_waker *w);

struct nm_etcd_watch_opts {
	const char *key;
	bool prefix;
	__s64 start_revision; /* 0: from now */
	nm_etcd_event_cb cb;
	void *arg;
	atomic_int *stop; /* may be NULL; set non-zero to end the watch */
	/* May be NULL; wakes the watch when @stop is set from elsewhere. */
	struct nm_etcd_waker *waker;
	long timeout_ms; /* 0: none; end the watch after this long */
	long backoff_min_ms; /* 0: 100 */
	long backoff_max_ms; /* 0: 5000 */
	/*
	 * May be NULL. Called with @arg (the event callback's) and true when
	 * a stream is established (etcd's "created" message), false when
	 * one is lost or a (re)connect fails, before the backoff. Not called
	 * when the watch returns.
	 */
	void (*on_stream)(void *arg, bool up);
};

struct nm_etcd_watch_state {
	/* Last revision fully seen: resume point is last_revision + 1. */
	__s64 last_revision;
	/* With -ERANGE: the oldest revision still available. */
	__s64 compact_revision;
	unsigned int reconnects;
	unsigned long events;
};

/*
 * Watch @o->key (or the prefix) from @o->start_revision, blocking the
 * calling thread, delivering every event in revision order exactly once.
 * A cut stream, an etcd restart, 5xx or a refused connection reconnect
 * (rotating endpoints) from last_revision + 1 after a jittered exponential
 * backoff. Returns 0 when @o->stop is set or @o->timeout_ms passes;
 * -ERANGE when the start revision is compacted (re-list, then watch from
 * the list's revision + 1); -ESTALE when the cluster changed; -EACCES;
 * -EBADMSG; -EBUSY when @o->waker serves another watch; or what @o->cb
 * returned. A stop ends the stream, a connect and a backoff sleep; a
 * login in progress (a unary call) runs to its end first.
 */
int nm_etcd_watch(struct nm_etcd *c, const struct nm_etcd_watch_opts *o,
		  struct nm_etcd_watch_state *st, struct nm_etcd_err *err);

/*
 * Decoders, pure (no I/O), exported for the unit tests.
 */
struct nm_etcd_header {
	__u64 cluster_id;
	__u64 member_id;
	__s64 revision;
	__u64 raft_term;
};

struct nm_etcd_watch_msg {
	struct nm_etcd_header header;
	bool created;
	bool canceled;
	bool error; /* a stream error object instead of a result */
	__s64 compact_revision;
	char reason[256]; /* cancel_reason or the stream error's message */
	struct nm_etcd_event *events;
	size_t n_events;
};

void nm_etcd_watch_msg_free(struct nm_etcd_watch_msg *m);

/* Strict decimal: optional '-' (i64 only), digits, nothing else. */
int nm_etcd_parse_i64(const char *s, __s64 *out);
int nm_etcd_parse_u64(const char *s, __u64 *out);

/* The first key after every key that starts with @prefix; "\0" if none. */
size_t nm_etcd_prefix_end(const char *prefix, size_t len, char *end);

/* One range reply (or a txn's response_range) into @out, appending. */
int nm_etcd_decode_range(const char *json, size_t len,
			 struct nm_etcd_header *hdr, struct nm_etcd_kvs *out,
			 char *reason, size_t rlen);
/* One watch stream line. */
int nm_etcd_decode_watch(const char *json, size_t len,
			 struct nm_etcd_watch_msg *m, char *reason,
			 size_t rlen);

#endif /* NM_AGENT_ETCD_H */

// SPDX-License-Identifier: GPL-2.0
/*
 * etcd v3 client over the JSON gateway. See etcd.h for the contract and
 * DESIGN.md §4 for the gateway's behaviour this code relies on.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "agent/base64.h"
#include "agent/etcd.h"
#include "agent/log.h"

#define ETCD_CONNECT_TIMEOUT_MS 2000
#define ETCD_REQUEST_TIMEOUT_MS 10000
#define ETCD_BACKOFF_MIN_MS 100
#define ETCD_BACKOFF_MAX_MS 5000
/* A full range of 100k records is ~20 MB of JSON; refuse absurd replies. */
#define ETCD_REPLY_MAX (512u << 20)
#define ETCD_WATCH_LINE_MAX (64u << 20)
/* A watch without a waker looks at its stop flag this often... */
#define ETCD_WATCH_POLL_MS 100
/* ...one with a waker when woken, and this often as a safety net. */
#define ETCD_WATCH_IDLE_MS 5000
#define ETCD_KEY_SHOW 96
#define ETCD_WHAT_MAX 160

struct nm_etcd {
	char *ep[NM_ETCD_MAX_ENDPOINTS];
	size_t n_ep;
	char *ca_file, *cert_file, *key_file;
	char *username, *password;
	long connect_ms, request_ms;

	pthread_mutex_t lock; /* cur_ep, token, cluster_id */
	size_t cur_ep;
	char *token;
	__u64 cluster_id;

	pthread_mutex_t call_lock; /* the unary handle below */
	CURL *curl;
};

struct buf {
	char *p;
	size_t len, cap, max;
};

static int buf_append(struct buf *b, const void *d, size_t n)
{
	size_t cap;
	char *p;

	if (n > b->max || b->len + 1 > b->max - n)
		return -EFBIG;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

__attribute__((format(printf, 4, 5))) static void
set_err(struct nm_etcd_err *err, const char *what, const char *where,
	const char *fmt, ...)
{
	char reason[NM_ETCD_ERR_MAX];
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	/* Bounded pieces: the reason keeps most of the room. */
	snprintf(err->msg, sizeof(err->msg),
		 "failed to %.140s on %.100s: %.250s", what, where, reason);
}

/* A key for messages: printable, escaped, bounded. */
static const char *show_key(const char *key, size_t len, char *out,
			    size_t outlen)
{
	size_t i, o = 0;

	for (i = 0; i < len && o + 5 < outlen; i++) {
		unsigned char ch = key[i];

		if (i >= ETCD_KEY_SHOW) {
			snprintf(out + o, outlen - o, "...");
			return out;
		}
		if (isprint(ch) && ch != '\\')
			out[o++] = ch;
		else
			o += snprintf(out + o, outlen - o, "\\x%02x", ch);
	}
	out[o] = '\0';
	return out;
}

static void what_key(char *what, const char *verb, const char *key, size_t len)
{
	char shown[ETCD_KEY_SHOW * 4 + 8];

	snprintf(what, ETCD_WHAT_MAX, "%.30s %.120s", verb,
		 show_key(key, len, shown, sizeof(shown)));
}

/*
 * Numbers. The gateway sends 64-bit fields as strings; json-c integers
 * are accepted through their exact text, doubles never.
 */
static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

int nm_etcd_parse_i64(const char *s, __s64 *out)
{
	long long v;
	char *end;

	if (!s || !all_digits(s[0] == '-' ? s + 1 : s))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return -ERANGE;
	*out = v;
	return 0;
}

int nm_etcd_parse_u64(const char *s, __u64 *out)
{
	unsigned long long v;
	char *end;

	if (!s || !all_digits(s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -ERANGE;
	*out = v;
	return 0;
}

/* The textual form of a string or integer member; NULL if absent/null. */
static int j_numtext(json_object *o, const char *name, const char **text,
		     char *reason, size_t rlen)
{
	json_object *v;

	*text = NULL;
	if (!json_object_object_get_ex(o, name, &v) || !v)
		return 0;
	switch (json_object_get_type(v)) {
	case json_type_string:
		*text = json_object_get_string(v);
		return 0;
	case json_type_int:
		*text = json_object_to_json_string_ext(v,
						       JSON_C_TO_STRING_PLAIN);
		return 0;
	default:
		snprintf(reason, rlen, "field %s: %s is not an integer string",
			 name, json_object_to_json_string(v));
		return -EBADMSG;
	}
}

static int j_i64(json_object *o, const char *name, __s64 *out, char *reason,
		 size_t rlen)
{
	const char *t;
	int ret;

	*out = 0;
	ret = j_numtext(o, name, &t, reason, rlen);
	if (ret || !t)
		return ret;
	if (nm_etcd_parse_i64(t, out)) {
		snprintf(reason, rlen, "field %s: bad int64 \"%.40s\"", name,
			 t);
		return -EBADMSG;
	}
	return 0;
}

static int j_u64(json_object *o, const char *name, __u64 *out, char *reason,
		 size_t rlen)
{
	const char *t;
	int ret;

	*out = 0;
	ret = j_numtext(o, name, &t, reason, rlen);
	if (ret || !t)
		return ret;
	if (nm_etcd_parse_u64(t, out)) {
		snprintf(reason, rlen, "field %s: bad uint64 \"%.40s\"", name,
			 t);
		return -EBADMSG;
	}
	return 0;
}

static int j_bool(json_object *o, const char *name, bool *out, char *reason,
		  size_t rlen)
{
	json_object *v;

	*out = false;
	if (!json_object_object_get_ex(o, name, &v) || !v)
		return 0;
	if (!json_object_is_type(v, json_type_boolean)) {
		snprintf(reason, rlen, "field %s: not a boolean", name);
		return -EBADMSG;
	}
	*out = json_object_get_boolean(v);
	return 0;
}

/* An optional member of type @type; *out NULL when absent or null. */
static int j_typed(json_object *o, const char *name, json_type type,
		   json_object **out, char *reason, size_t rlen)
{
	json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(o, name, &v) || !v)
		return 0;
	if (!json_object_is_type(v, type)) {
		snprintf(reason, rlen, "field %s: expected %s, got %s", name,
			 json_type_to_name(type),
			 json_type_to_name(json_object_get_type(v)));
		return -EBADMSG;
	}
	*out = v;
	return 0;
}

/* Base64 member into a malloc'd NUL-terminated buffer ("" when absent). */
static int j_bytes(json_object *o, const char *name, bool required, char **out,
		   size_t *len, char *reason, size_t rlen)
{
	char why[128];
	json_object *v;
	const char *s;
	size_t n;
	char *p;
	int ret;

	*out = NULL;
	*len = 0;
	ret = j_typed(o, name, json_type_string, &v, reason, rlen);
	if (ret)
		return ret;
	if (!v && required) {
		snprintf(reason, rlen, "field %s: missing", name);
		return -EBADMSG;
	}
	s = v ? json_object_get_string(v) : "";
	n = v ? (size_t)json_object_get_string_len(v) : 0;
	p = malloc(nm_b64_decoded_max(n) + 1);
	if (!p) {
		snprintf(reason, rlen, "field %s: out of memory", name);
		return -ENOMEM;
	}
	ret = nm_b64_decode(s, n, p, len, why, sizeof(why));
	if (ret) {
		free(p);
		snprintf(reason, rlen, "field %s: %s", name, why);
		return -EBADMSG;
	}
	p[*len] = '\0';
	*out = p;
	return 0;
}

static int parse_json(const char *s, size_t len, json_object **out,
		      char *reason, size_t rlen)
{
	enum json_tokener_error jerr;
	json_tokener *tok;
	json_object *o;
	int ret = 0;

	*out = NULL;
	if (len > INT_MAX) {
		snprintf(reason, rlen, "reply of %zu bytes too large", len);
		return -EBADMSG;
	}
	tok = json_tokener_new();
	if (!tok) {
		snprintf(reason, rlen, "out of memory");
		return -ENOMEM;
	}
	o = json_tokener_parse_ex(tok, s, (int)len);
	jerr = json_tokener_get_error(tok);
	if (!o || jerr != json_tokener_success) {
		snprintf(reason, rlen, "malformed JSON: %s",
			 jerr == json_tokener_continue ?
				 "truncated" :
				 json_tokener_error_desc(jerr));
		ret = -EBADMSG;
		goto out_put;
	}
	/* Only whitespace may follow the object. */
	for (size_t i = json_tokener_get_parse_end(tok); i < len; i++) {
		if (!isspace((unsigned char)s[i])) {
			snprintf(reason, rlen,
				 "malformed JSON: trailing data at offset %zu",
				 i);
			ret = -EBADMSG;
			goto out_put;
		}
	}
	if (!json_object_is_type(o, json_type_object)) {
		snprintf(reason, rlen, "malformed JSON: not an object");
		ret = -EBADMSG;
		goto out_put;
	}
	*out = o;
	o = NULL;
out_put:
	json_object_put(o);
	json_tokener_free(tok);
	return ret;
}

static int decode_header(json_object *o, struct nm_etcd_header *h, char *reason,
			 size_t rlen)
{
	json_object *hdr;
	int ret;

	memset(h, 0, sizeof(*h));
	ret = j_typed(o, "header", json_type_object, &hdr, reason, rlen);
	if (ret || !hdr)
		return ret;
	ret = j_u64(hdr, "cluster_id", &h->cluster_id, reason, rlen);
	if (!ret)
		ret = j_u64(hdr, "member_id", &h->member_id, reason, rlen);
	if (!ret)
		ret = j_i64(hdr, "revision", &h->revision, reason, rlen);
	if (!ret)
		ret = j_u64(hdr, "raft_term", &h->raft_term, reason, rlen);
	return ret;
}

void nm_etcd_kv_free(struct nm_etcd_kv *kv)
{
	if (!kv)
		return;
	free(kv->key);
	free(kv->value);
	memset(kv, 0, sizeof(*kv));
}

void nm_etcd_kvs_free(struct nm_etcd_kvs *kvs)
{
	size_t i;

	for (i = 0; i < kvs->n; i++)
		nm_etcd_kv_free(&kvs->kv[i]);
	free(kvs->kv);
	memset(kvs, 0, sizeof(*kvs));
}

static int decode_kv(json_object *o, struct nm_etcd_kv *kv, char *reason,
		     size_t rlen)
{
	int ret;

	memset(kv, 0, sizeof(*kv));
	if (!json_object_is_type(o, json_type_object)) {
		snprintf(reason, rlen, "kv is not an object");
		return -EBADMSG;
	}
	ret = j_bytes(o, "key", true, &kv->key, &kv->key_len, reason, rlen);
	if (ret)
		goto err;
	ret = j_bytes(o, "value", false, &kv->value, &kv->value_len, reason,
		      rlen);
	if (ret)
		goto err;
	ret = j_i64(o, "create_revision", &kv->create_revision, reason, rlen);
	if (!ret)
		ret = j_i64(o, "mod_revision", &kv->mod_revision, reason, rlen);
	if (!ret)
		ret = j_i64(o, "version", &kv->version, reason, rlen);
	if (!ret)
		ret = j_u64(o, "lease", &kv->lease, reason, rlen);
	if (ret)
		goto err;
	return 0;
err:
	nm_etcd_kv_free(kv);
	return ret;
}

static int kvs_push(struct nm_etcd_kvs *kvs, struct nm_etcd_kv *kv)
{
	struct nm_etcd_kv *p;
	size_t cap;

	if (kvs->n == kvs->cap) {
		cap = kvs->cap ? kvs->cap * 2 : 16;
		p = realloc(kvs->kv, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		kvs->kv = p;
		kvs->cap = cap;
	}
	kvs->kv[kvs->n++] = *kv;
	memset(kv, 0, sizeof(*kv));
	return 0;
}

/* A RangeResponse object (top level or a txn's response_range). */
static int decode_range_obj(json_object *o, struct nm_etcd_kvs *out,
			    char *reason, size_t rlen)
{
	struct nm_etcd_kv kv;
	json_object *arr;
	size_t i, n;
	int ret;

	ret = j_typed(o, "kvs", json_type_array, &arr, reason, rlen);
	if (!ret)
		ret = j_i64(o, "count", &out->count, reason, rlen);
	if (!ret)
		ret = j_bool(o, "more", &out->more, reason, rlen);
	if (ret || !arr)
		return ret;
	n = json_object_array_length(arr);
	for (i = 0; i < n; i++) {
		ret = decode_kv(json_object_array_get_idx(arr, i), &kv, reason,
				rlen);
		if (ret)
			return ret;
		ret = kvs_push(out, &kv);
		if (ret) {
			nm_etcd_kv_free(&kv);
			snprintf(reason, rlen, "out of memory");
			return ret;
		}
	}
	return 0;
}

int nm_etcd_decode_range(const char *json, size_t len,
			 struct nm_etcd_header *hdr, struct nm_etcd_kvs *out,
			 char *reason, size_t rlen)
{
	json_object *o;
	int ret;

	ret = parse_json(json, len, &o, reason, rlen);
	if (ret)
		return ret;
	ret = decode_header(o, hdr, reason, rlen);
	if (!ret)
		ret = decode_range_obj(o, out, reason, rlen);
	if (!ret)
		out->revision = hdr->revision;
	json_object_put(o);
	return ret;
}

void nm_etcd_watch_msg_free(struct nm_etcd_watch_msg *m)
{
	size_t i;

	for (i = 0; i < m->n_events; i++)
		nm_etcd_kv_free(&m->events[i].kv);
	free(m->events);
	memset(m, 0, sizeof(*m));
}

static int decode_event(json_object *o, struct nm_etcd_event *ev, char *reason,
			size_t rlen)
{
	json_object *type, *kv;
	const char *t;
	int ret;

	memset(ev, 0, sizeof(*ev));
	if (!json_object_is_type(o, json_type_object)) {
		snprintf(reason, rlen, "event is not an object");
		return -EBADMSG;
	}
	ret = j_typed(o, "type", json_type_string, &type, reason, rlen);
	if (ret)
		return ret;
	/* PUT is the enum's zero value, so the gateway omits it. */
	t = type ? json_object_get_string(type) : "PUT";
	if (!strcmp(t, "PUT")) {
		ev->type = NM_ETCD_PUT;
	} else if (!strcmp(t, "DELETE")) {
		ev->type = NM_ETCD_DELETE;
	} else {
		snprintf(reason, rlen, "unknown event type \"%.32s\"", t);
		return -EBADMSG;
	}
	ret = j_typed(o, "kv", json_type_object, &kv, reason, rlen);
	if (ret)
		return ret;
	if (!kv) {
		snprintf(reason, rlen, "event without kv");
		return -EBADMSG;
	}
	return decode_kv(kv, &ev->kv, reason, rlen);
}

int nm_etcd_decode_watch(const char *json, size_t len,
			 struct nm_etcd_watch_msg *m, char *reason, size_t rlen)
{
	json_object *o, *res, *arr, *v;
	size_t i, n;
	int ret;

	memset(m, 0, sizeof(*m));
	ret = parse_json(json, len, &o, reason, rlen);
	if (ret)
		return ret;
	/* {"error":{"grpc_code":14,"message":"..."}}: the stream broke. */
	if (json_object_object_get_ex(o, "error", &v) && v) {
		json_object *msg = NULL;

		m->error = true;
		if (json_object_is_type(v, json_type_object))
			json_object_object_get_ex(v, "message", &msg);
		snprintf(m->reason, sizeof(m->reason), "%s",
			 json_object_get_string(msg ? msg : v));
		goto out_put;
	}
	ret = j_typed(o, "result", json_type_object, &res, reason, rlen);
	if (ret)
		goto out_put;
	if (!res) {
		snprintf(reason, rlen, "watch message without result");
		ret = -EBADMSG;
		goto out_put;
	}
	ret = decode_header(res, &m->header, reason, rlen);
	if (!ret)
		ret = j_bool(res, "created", &m->created, reason, rlen);
	if (!ret)
		ret = j_bool(res, "canceled", &m->canceled, reason, rlen);
	if (!ret)
		ret = j_i64(res, "compact_revision", &m->compact_revision,
			    reason, rlen);
	if (!ret)
		ret = j_typed(res, "cancel_reason", json_type_string, &v,
			      reason, rlen);
	if (ret)
		goto out_put;
	if (v)
		snprintf(m->reason, sizeof(m->reason), "%s",
			 json_object_get_string(v));
	ret = j_typed(res, "events", json_type_array, &arr, reason, rlen);
	if (ret || !arr)
		goto out_put;
	n = json_object_array_length(arr);
	m->events = calloc(n ? n : 1, sizeof(*m->events));
	if (!m->events) {
		snprintf(reason, rlen, "out of memory");
		ret = -ENOMEM;
		goto out_put;
	}
	for (i = 0; i < n; i++) {
		ret = decode_event(json_object_array_get_idx(arr, i),
				   &m->events[i], reason, rlen);
		if (ret)
			goto out_free;
		m->n_events++;
	}
	goto out_put;
out_free:
	nm_etcd_watch_msg_free(m);
out_put:
	json_object_put(o);
	return ret;
}

size_t nm_etcd_prefix_end(const char *prefix, size_t len, char *end)
{
	size_t i;

	memcpy(end, prefix, len);
	for (i = len; i > 0; i--) {
		if ((unsigned char)end[i - 1] != 0xff) {
			end[i - 1]++;
			return i;
		}
	}
	/* Empty or all 0xff: range_end "\0" means "to the end". */
	end[0] = '\0';
	return 1;
}

/* Transport. */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int curl_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
		return -EPROTO;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

/*
 * An mTLS server that wants a client certificate and gets none alerts and
 * closes; depending on timing curl reports the alert or only a dead
 * socket. Say what is most likely wrong.
 */
static const char *tls_hint(const struct nm_etcd *c, const char *ep,
			    CURLcode rc)
{
	if (strncmp(ep, "https://", 8) || c->cert_file)
		return "";
	switch (rc) {
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
		return " (no client certificate configured: does the server require one?)";
	default:
		return "";
	}
}

/* gRPC status code of a gateway error reply to an errno. */
static int grpc_errno(int code, const char *msg)
{
	switch (code) {
	case 3: /* InvalidArgument: also how 3.4 reports bad credentials */
		if (strstr(msg, "authentication failed") ||
		    strstr(msg, "user name is empty"))
			return -EPERM;
		return -EINVAL;
	case 4:
		return -ETIMEDOUT;
	case 5:
		return -ENOENT;
	case 6:
		return -EEXIST;
	case 7:
		return -EACCES;
	case 8:
		return -EBUSY;
	case 11:
		return -ERANGE;
	case 14:
		return -EAGAIN;
	case 16:
		return -EKEYEXPIRED; /* the token: log in again */
	default:
		return -EIO;
	}
}

static size_t write_buf(char *p, size_t sz, size_t nm, void *arg)
{
	struct buf *b = arg;

	if (buf_append(b, p, sz * nm))
		return 0;
	return sz * nm;
}

#define SETOPT(h, opt, val)                                     \
	do {                                                    \
		CURLcode ___rc = curl_easy_setopt(h, opt, val); \
		if (___rc != CURLE_OK && setopt_rc == CURLE_OK) \
			setopt_rc = ___rc;                      \
	} while (0)

/* Options shared by unary calls and watches; @hdrs built by the caller. */
static CURLcode setup_handle(struct nm_etcd *c, CURL *h, const char *url,
			     struct curl_slist *hdrs, char *errbuf)
{
	CURLcode setopt_rc = CURLE_OK;

	curl_easy_reset(h);
	SETOPT(h, CURLOPT_URL, url);
	SETOPT(h, CURLOPT_HTTPHEADER, hdrs);
	SETOPT(h, CURLOPT_NOSIGNAL, 1L);
	SETOPT(h, CURLOPT_ERRORBUFFER, errbuf);
	SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
	/* A silently dead peer (no FIN) still ends the stream. */
	SETOPT(h, CURLOPT_TCP_KEEPALIVE, 1L);
	SETOPT(h, CURLOPT_TCP_KEEPIDLE, 10L);
	SETOPT(h, CURLOPT_TCP_KEEPINTVL, 5L);
	SETOPT(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (c->ca_file)
		SETOPT(h, CURLOPT_CAINFO, c->ca_file);
	if (c->cert_file)
		SETOPT(h, CURLOPT_SSLCERT, c->cert_file);
	if (c->key_file)
		SETOPT(h, CURLOPT_SSLKEY, c->key_file);
	return setopt_rc;
}

static struct curl_slist *make_headers(const char *token)
{
	struct curl_slist *h = NULL, *n;
	char auth[512];

	n = curl_slist_append(h, "Content-Type: application/json");
	if (!n)
		goto err;
	h = n;
	/* No "Expect: 100-continue" round trip for large bodies. */
	n = curl_slist_append(h, "Expect:");
	if (!n)
		goto err;
	h = n;
	if (token) {
		/* The gateway wants the bare token, no "Bearer". */
		snprintf(auth, sizeof(auth), "Authorization: %s", token);
		n = curl_slist_append(h, auth);
		if (!n)
			goto err;
		h = n;
	}
	return h;
err:
	curl_slist_free_all(h);
	return NULL;
}

static char *token_dup(struct nm_etcd *c)
{
	char *t = NULL;

	pthread_mutex_lock(&c->lock);
	if (c->token)
		t = strdup(c->token);
	pthread_mutex_unlock(&c->lock);
	return t;
}

static void token_set(struct nm_etcd *c, char *token)
{
	pthread_mutex_lock(&c->lock);
	free(c->token);
	c->token = token;
	pthread_mutex_unlock(&c->lock);
}

static bool token_missing(struct nm_etcd *c)
{
	bool missing;

	pthread_mutex_lock(&c->lock);
	missing = c->username && !c->token;
	pthread_mutex_unlock(&c->lock);
	return missing;
}

static size_t cur_ep(struct nm_etcd *c)
{
	size_t i;

	pthread_mutex_lock(&c->lock);
	i = c->cur_ep;
	pthread_mutex_unlock(&c->lock);
	return i;
}

static void set_cur_ep(struct nm_etcd *c, size_t i)
{
	pthread_mutex_lock(&c->lock);
	c->cur_ep = i % c->n_ep;
	pthread_mutex_unlock(&c->lock);
}

/* The cluster guard: 0, or -ESTALE with a reason. */
static int check_cluster(struct nm_etcd *c, __u64 id, char *reason, size_t rlen)
{
	int ret = 0;

	if (!id)
		return 0;
	pthread_mutex_lock(&c->lock);
	if (!c->cluster_id) {
		c->cluster_id = id;
	} else if (c->cluster_id != id) {
		snprintf(
			reason, rlen,
			"cluster_id changed from %llu to %llu: a different etcd cluster answers, re-list",
			(unsigned long long)c->cluster_id,
			(unsigned long long)id);
		ret = -ESTALE;
	}
	pthread_mutex_unlock(&c->lock);
	return ret;
}

__u64 nm_etcd_cluster_id(struct nm_etcd *c)
{
	__u64 id;

	pthread_mutex_lock(&c->lock);
	id = c->cluster_id;
	pthread_mutex_unlock(&c->lock);
	return id;
}

void nm_etcd_forget_cluster_id(struct nm_etcd *c)
{
	pthread_mutex_lock(&c->lock);
	c->cluster_id = 0;
	pthread_mutex_unlock(&c->lock);
}

const char *nm_etcd_endpoint(struct nm_etcd *c)
{
	return c->ep[cur_ep(c)];
}

/* The gateway's error object: {"error": "...", "code": N, "message"}. */
static void decode_error(const char *body, size_t len, int *code, char *msg,
			 size_t mlen)
{
	json_object *o, *v;
	char why[64];

	*code = -1;
	snprintf(msg, mlen, "%.*s", (int)(len > 200 ? 200 : len), body);
	if (parse_json(body, len, &o, why, sizeof(why)))
		return;
	if (json_object_object_get_ex(o, "code", &v) &&
	    json_object_is_type(v, json_type_int))
		*code = json_object_get_int(v);
	if ((json_object_object_get_ex(o, "message", &v) ||
	     json_object_object_get_ex(o, "error", &v)) &&
	    json_object_is_type(v, json_type_string))
		snprintf(msg, mlen, "%s", json_object_get_string(v));
	json_object_put(o);
}

/*
 * One POST on endpoint @idx with the unary handle (call_lock held).
 * Returns 0 with the parsed reply in @out, or a negative errno with the
 * reason in @err; *failover says whether another member may do better.
 */
static int attempt(struct nm_etcd *c, size_t idx, const char *what,
		   const char *path, const char *body, const char *token,
		   json_object **out, char **raw, bool *failover,
		   struct nm_etcd_err *err)
{
	struct buf reply = { .max = ETCD_REPLY_MAX };
	char errbuf[CURL_ERROR_SIZE] = "", reason[256], url[512];
	const char *ep = c->ep[idx];
	struct curl_slist *hdrs;
	struct nm_etcd_header hdr;
	CURLcode setopt_rc, rc;
	json_object *res, *o;
	long status = 0;
	int ret, code;

	*failover = false;
	*out = NULL;
	snprintf(url, sizeof(url), "%s%s", ep, path);
	hdrs = make_headers(token);
	if (!hdrs) {
		set_err(err, what, ep, "out of memory");
		return -ENOMEM;
	}
	setopt_rc = setup_handle(c, c->curl, url, hdrs, errbuf);
	SETOPT(c->curl, CURLOPT_POSTFIELDS, body);
	SETOPT(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	SETOPT(c->curl, CURLOPT_TIMEOUT_MS, c->request_ms);
	SETOPT(c->curl, CURLOPT_WRITEFUNCTION, write_buf);
	SETOPT(c->curl, CURLOPT_WRITEDATA, &reply);
	if (setopt_rc != CURLE_OK) {
		set_err(err, what, ep, "curl: %s",
			curl_easy_strerror(setopt_rc));
		ret = -EINVAL;
		goto out_hdrs;
	}
	rc = curl_easy_perform(c->curl);
	if (rc != CURLE_OK) {
		set_err(err, what, ep, "%s%s",
			errbuf[0] ? errbuf : curl_easy_strerror(rc),
			tls_hint(c, ep, rc));
		ret = curl_errno(rc);
		*failover = true;
		goto out_reply;
	}
	rc = curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	if (rc != CURLE_OK) {
		set_err(err, what, ep, "curl: %s", curl_easy_strerror(rc));
		ret = -EIO;
		goto out_reply;
	}
	if (status != 200) {
		decode_error(reply.p ? reply.p : "", reply.len, &code, reason,
			     sizeof(reason));
		set_err(err, what, ep, "HTTP %ld: %s", status, reason);
		ret = code >= 0 ? grpc_errno(code, reason) : -EIO;
		/* 5xx: this member cannot serve (no leader, stopping). */
		*failover = status >= 500;
		goto out_reply;
	}
	ret = parse_json(reply.p ? reply.p : "", reply.len, &o, reason,
			 sizeof(reason));
	if (ret) {
		set_err(err, what, ep, "%s", reason);
		goto out_reply;
	}
	/* Streamed replies (lease keepalive) wrap the message in "result". */
	if (!json_object_object_get_ex(o, "result", &res) ||
	    !json_object_is_type(res, json_type_object))
		res = o;
	ret = decode_header(res, &hdr, reason, sizeof(reason));
	if (!ret)
		ret = check_cluster(c, hdr.cluster_id, reason, sizeof(reason));
	if (ret) {
		set_err(err, what, ep, "%s", reason);
		json_object_put(o);
		goto out_reply;
	}
	*out = o;
	if (raw) {
		*raw = reply.p;
		reply.p = NULL;
	}
out_reply:
	buf_free(&reply);
out_hdrs:
	curl_slist_free_all(hdrs);
	return ret;
}

/* POST /v3/auth/authenticate on @idx and keep the token (call_lock held). */
static int login_on(struct nm_etcd *c, size_t idx, bool *failover,
		    struct nm_etcd_err *err)
{
	char what[ETCD_WHAT_MAX], reason[128];
	json_object *req, *o, *tok;
	const char *body;
	char *t;
	int ret;

	snprintf(what, sizeof(what), "authenticate user %s", c->username);
	req = json_object_new_object();
	if (!req ||
	    json_object_object_add(req, "name",
				   json_object_new_string(c->username)) ||
	    json_object_object_add(
		    req, "password",
		    json_object_new_string(c->password ? c->password : ""))) {
		set_err(err, what, c->ep[idx], "out of memory");
		ret = -ENOMEM;
		goto out_req;
	}
	body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	ret = attempt(c, idx, what, "/v3/auth/authenticate", body, NULL, &o,
		      NULL, failover, err);
	if (ret)
		goto out_req;
	ret = j_typed(o, "token", json_type_string, &tok, reason,
		      sizeof(reason));
	if (!ret && !tok) {
		snprintf(reason, sizeof(reason), "reply without token");
		ret = -EBADMSG;
	}
	if (ret) {
		set_err(err, what, c->ep[idx], "%s", reason);
		goto out_o;
	}
	t = strdup(json_object_get_string(tok));
	if (!t) {
		set_err(err, what, c->ep[idx], "out of memory");
		ret = -ENOMEM;
		goto out_o;
	}
	token_set(c, t);
out_o:
	json_object_put(o);
out_req:
	json_object_put(req);
	return ret;
}

/*
 * A unary call with failover (call_lock held): try each member once,
 * starting with the one that last answered; log in when there is no
 * token and once more when the token is refused (expired, or lost by an
 * etcd restart).
 */
static int call_locked(struct nm_etcd *c, const char *what, const char *path,
		       const char *body, json_object **out, char **raw,
		       struct nm_etcd_err *err)
{
	size_t start = cur_ep(c), i, idx;
	bool failover, relogged = false;
	char *token = NULL;
	int ret = -EIO;

	for (i = 0; i < c->n_ep; i++) {
		idx = (start + i) % c->n_ep;
		if (token_missing(c)) {
			ret = login_on(c, idx, &failover, err);
			if (ret && failover)
				continue;
			if (ret)
				return ret;
		}
		free(token);
		token = token_dup(c);
		ret = attempt(c, idx, what, path, body, token, out, raw,
			      &failover, err);
		if (ret == -EKEYEXPIRED && c->username && !relogged) {
			relogged = true;
			token_set(c, NULL);
			i--; /* same member again, with a fresh token */
			continue;
		}
		if (!ret)
			set_cur_ep(c, idx);
		if (!ret || !failover)
			break;
		pr_debug("%s", err ? err->msg : what);
	}
	free(token);
	if (ret == -EKEYEXPIRED)
		ret = -EPERM;
	return ret;
}

static int call(struct nm_etcd *c, const char *what, const char *path,
		json_object *req, json_object **out, struct nm_etcd_err *err)
{
	const char *body;
	int ret;

	body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	if (!body) {
		set_err(err, what, c->ep[0], "out of memory");
		return -ENOMEM;
	}
	pthread_mutex_lock(&c->call_lock);
	ret = call_locked(c, what, path, body, out, NULL, err);
	pthread_mutex_unlock(&c->call_lock);
	return ret;
}

/*
 * call() with a request that may have failed to build: @req NULL, or
 * @build_ret the error of filling it in. The caller still puts @req.
 */
static int call_built(struct nm_etcd *c, const char *what, const char *path,
		      json_object *req, int build_ret, json_object **out,
		      struct nm_etcd_err *err)
{
	if (!req || build_ret) {
		set_err(err, what, c->ep[0], "out of memory");
		return -ENOMEM;
	}
	return call(c, what, path, req, out, err);
}

int nm_etcd_request(struct nm_etcd *c, const char *what, const char *path,
		    const char *body, char **reply, struct nm_etcd_err *err)
{
	json_object *o = NULL;
	char *raw = NULL;
	int ret;

	pthread_mutex_lock(&c->call_lock);
	ret = call_locked(c, what, path, body, &o, reply ? &raw : NULL, err);
	pthread_mutex_unlock(&c->call_lock);
	json_object_put(o);
	if (reply)
		*reply = raw;
	return ret;
}

/* Log in through any member (the watch uses this before connecting). */
static int login(struct nm_etcd *c, struct nm_etcd_err *err)
{
	size_t start = cur_ep(c), i;
	bool failover;
	int ret = -EIO;

	pthread_mutex_lock(&c->call_lock);
	for (i = 0; i < c->n_ep; i++) {
		ret = login_on(c, (start + i) % c->n_ep, &failover, err);
		if (!ret || !failover)
			break;
	}
	pthread_mutex_unlock(&c->call_lock);
	return ret;
}

/* Request building. Every add is checked; json-c owns what it is given. */
static int j_add(json_object *o, const char *name, json_object *v)
{
	if (!v)
		return -ENOMEM;
	if (json_object_object_add(o, name, v)) {
		json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

static int j_add_b64(json_object *o, const char *name, const void *d, size_t n)
{
	char *s;
	int ret;

	s = malloc(nm_b64_encoded_len(n) + 1);
	if (!s)
		return -ENOMEM;
	nm_b64_encode(d, n, s);
	ret = j_add(o, name, json_object_new_string(s));
	free(s);
	return ret;
}

/* 64-bit numbers go out as strings, as the gateway sends them. */
static int j_add_i64(json_object *o, const char *name, __s64 v)
{
	char s[24];

	snprintf(s, sizeof(s), "%lld", (long long)v);
	return j_add(o, name, json_object_new_string(s));
}

static int j_add_u64(json_object *o, const char *name, __u64 v)
{
	char s[24];

	snprintf(s, sizeof(s), "%llu", (unsigned long long)v);
	return j_add(o, name, json_object_new_string(s));
}

/* key + range_end for a key or a prefix. */
static int j_add_range(json_object *o, const char *key, size_t klen,
		       bool prefix)
{
	char *end;
	size_t elen;
	int ret;

	ret = j_add_b64(o, "key", klen ? key : "\0", klen ? klen : 1);
	if (ret || !prefix)
		return ret;
	end = malloc(klen + 1);
	if (!end)
		return -ENOMEM;
	elen = nm_etcd_prefix_end(key, klen, end);
	ret = j_add_b64(o, "range_end", end, elen);
	free(end);
	return ret;
}

/* Operations. */

static int range_page(struct nm_etcd *c, const char *what, const char *key,
		      size_t klen, const char *end, size_t elen, __s64 rev,
		      __s64 limit, struct nm_etcd_kvs *page,
		      struct nm_etcd_err *err)
{
	struct nm_etcd_header hdr;
	json_object *req, *o;
	char reason[256];
	int ret;

	req = json_object_new_object();
	if (!req) {
		set_err(err, what, c->ep[0], "out of memory");
		return -ENOMEM;
	}
	ret = j_add_b64(req, "key", key, klen);
	if (!ret && elen)
		ret = j_add_b64(req, "range_end", end, elen);
	if (!ret && rev)
		ret = j_add_i64(req, "revision", rev);
	if (!ret && limit)
		ret = j_add_i64(req, "limit", limit);
	if (ret) {
		set_err(err, what, c->ep[0], "out of memory");
		goto out_req;
	}
	ret = call(c, what, "/v3/kv/range", req, &o, err);
	if (ret)
		goto out_req;
	ret = decode_header(o, &hdr, reason, sizeof(reason));
	if (!ret)
		ret = decode_range_obj(o, page, reason, sizeof(reason));
	if (ret) {
		set_err(err, what, nm_etcd_endpoint(c), "%s", reason);
		goto out_o;
	}
	page->revision = hdr.revision;
out_o:
	json_object_put(o);
out_req:
	json_object_put(req);
	return ret;
}

int nm_etcd_range_each(struct nm_etcd *c, const struct nm_etcd_range_opts *o,
		       nm_etcd_kv_cb cb, void *arg, __s64 *revision,
		       struct nm_etcd_err *err)
{
	size_t klen = strlen(o->key), elen = 0, curlen;
	struct nm_etcd_kvs page = {};
	char what[ETCD_WHAT_MAX];
	char *cur, *end, *next;
	__s64 rev = o->revision;
	struct nm_etcd_kv *last;
	int ret = 0;
	size_t i;

	what_key(what, "range", o->key, klen);
	cur = malloc(klen + 2);
	end = malloc(klen + 2);
	if (!cur || !end) {
		set_err(err, what, c->ep[0], "out of memory");
		ret = -ENOMEM;
		goto out_free;
	}
	/* An empty prefix means every key: from "\0" to "\0". */
	memcpy(cur, klen ? o->key : "\0", klen ? klen : 1);
	curlen = klen ? klen : 1;
	if (o->prefix)
		elen = nm_etcd_prefix_end(o->key, klen, end);
	for (;;) {
		ret = range_page(c, what, cur, curlen, end, elen, rev,
				 o->page_size, &page, err);
		if (ret)
			goto out_free;
		/* Later pages read at the first page's revision. */
		if (!rev)
			rev = page.revision;
		for (i = 0; i < page.n; i++) {
			ret = cb(&page.kv[i], arg);
			if (ret) {
				set_err(err, what, nm_etcd_endpoint(c),
					"callback failed (%d)", ret);
				goto out_page;
			}
		}
		if (!page.more || !page.n || !o->page_size || !elen)
			break;
		/* Next page starts right after the last key: key + "\0". */
		last = &page.kv[page.n - 1];
		next = realloc(cur, last->key_len + 1);
		if (!next) {
			set_err(err, what, c->ep[0], "out of memory");
			ret = -ENOMEM;
			goto out_page;
		}
		cur = next;
		memcpy(cur, last->key, last->key_len);
		cur[last->key_len] = '\0';
		curlen = last->key_len + 1;
		nm_etcd_kvs_free(&page);
	}
	if (revision)
		*revision = rev;
out_page:
	nm_etcd_kvs_free(&page);
out_free:
	free(end);
	free(cur);
	return ret;
}

static int kv_copy(struct nm_etcd_kv *dst, const struct nm_etcd_kv *src)
{
	*dst = *src;
	dst->key = malloc(src->key_len + 1);
	dst->value = malloc(src->value_len + 1);
	if (!dst->key || !dst->value) {
		nm_etcd_kv_free(dst);
		return -ENOMEM;
	}
	memcpy(dst->key, src->key, src->key_len + 1);
	memcpy(dst->value, src->value, src->value_len + 1);
	return 0;
}

static int collect_cb(const struct nm_etcd_kv *kv, void *arg)
{
	struct nm_etcd_kv copy;
	int ret;

	ret = kv_copy(&copy, kv);
	if (ret)
		return ret;
	ret = kvs_push(arg, &copy);
	if (ret)
		nm_etcd_kv_free(&copy);
	return ret;
}

int nm_etcd_range(struct nm_etcd *c, const struct nm_etcd_range_opts *o,
		  struct nm_etcd_kvs *out, struct nm_etcd_err *err)
{
	int ret;

	memset(out, 0, sizeof(*out));
	ret = nm_etcd_range_each(c, o, collect_cb, out, &out->revision, err);
	if (ret)
		nm_etcd_kvs_free(out);
	else
		out->count = out->n;
	return ret;
}

int nm_etcd_get(struct nm_etcd *c, const char *key, struct nm_etcd_kv *kv,
		struct nm_etcd_err *err)
{
	struct nm_etcd_range_opts o = { .key = key };
	struct nm_etcd_kvs kvs;
	char what[ETCD_WHAT_MAX];
	int ret;

	memset(kv, 0, sizeof(*kv));
	ret = nm_etcd_range(c, &o, &kvs, err);
	if (ret)
		return ret;
	if (!kvs.n) {
		what_key(what, "get", key, strlen(key));
		set_err(err, what, nm_etcd_endpoint(c), "key not found");
		ret = -ENOENT;
	} else {
		*kv = kvs.kv[0];
		memset(&kvs.kv[0], 0, sizeof(kvs.kv[0]));
	}
	nm_etcd_kvs_free(&kvs);
	return ret;
}

static json_object *put_request(const char *key, const void *value, size_t len,
				__u64 lease)
{
	json_object *req = json_object_new_object();

	if (!req)
		return NULL;
	if (j_add_b64(req, "key", key, strlen(key)) ||
	    j_add_b64(req, "value", value, len) ||
	    (lease && j_add_u64(req, "lease", lease))) {
		json_object_put(req);
		return NULL;
	}
	return req;
}

static int header_revision(json_object *o, __s64 *revision)
{
	struct nm_etcd_header hdr;
	char reason[128];

	if (!revision)
		return 0;
	if (decode_header(o, &hdr, reason, sizeof(reason)))
		return -EBADMSG;
	*revision = hdr.revision;
	return 0;
}

int nm_etcd_put(struct nm_etcd *c, const char *key, const void *value,
		size_t len, __u64 lease, __s64 *revision,
		struct nm_etcd_err *err)
{
	char what[ETCD_WHAT_MAX];
	json_object *req, *o;
	int ret;

	what_key(what, "put", key, strlen(key));
	req = put_request(key, value, len, lease);
	ret = call_built(c, what, "/v3/kv/put", req, 0, &o, err);
	if (ret)
		goto out_req;
	ret = header_revision(o, revision);
	if (ret)
		set_err(err, what, nm_etcd_endpoint(c), "bad header");
	json_object_put(o);
out_req:
	json_object_put(req);
	return ret;
}

int nm_etcd_delete(struct nm_etcd *c, const char *key, bool prefix,
		   __s64 *deleted, __s64 *revision, struct nm_etcd_err *err)
{
	char what[ETCD_WHAT_MAX], reason[128];
	json_object *req, *o;
	__s64 n;
	int ret;

	what_key(what, prefix ? "delete prefix" : "delete", key, strlen(key));
	req = json_object_new_object();
	ret = call_built(c, what, "/v3/kv/deleterange", req,
			 req ? j_add_range(req, key, strlen(key), prefix) : 0,
			 &o, err);
	if (ret)
		goto out_req;
	ret = j_i64(o, "deleted", &n, reason, sizeof(reason));
	if (!ret && header_revision(o, revision)) {
		snprintf(reason, sizeof(reason), "bad header");
		ret = -EBADMSG;
	}
	if (ret)
		set_err(err, what, nm_etcd_endpoint(c), "%s", reason);
	else if (deleted)
		*deleted = n;
	json_object_put(o);
out_req:
	json_object_put(req);
	return ret;
}

/*
 * A txn: if @target ("CREATE" or "MOD") of @key equals @rev, put;
 * otherwise read the key back so the caller sees what won.
 */
static int txn_put_if(struct nm_etcd *c, const char *verb, const char *key,
		      const char *target, __s64 rev, const void *value,
		      size_t len, __u64 lease, bool *done,
		      struct nm_etcd_kv *current, struct nm_etcd_err *err)
{
	json_object *req, *cmp, *cmps, *succ, *fail, *op, *get, *o;
	json_object *resps, *r0, *rr;
	char what[ETCD_WHAT_MAX], reason[256];
	struct nm_etcd_kvs kvs = {};
	size_t klen = strlen(key);
	int ret = -ENOMEM;

	what_key(what, verb, key, klen);
	*done = false;
	if (current)
		memset(current, 0, sizeof(*current));
	req = json_object_new_object();
	if (!req)
		goto err_oom;
	cmps = json_object_new_array();
	if (j_add(req, "compare", cmps))
		goto err_req;
	cmp = json_object_new_object();
	if (!cmp || json_object_array_add(cmps, cmp)) {
		json_object_put(cmp);
		goto err_req;
	}
	if (j_add(cmp, "target", json_object_new_string(target)) ||
	    j_add(cmp, "result", json_object_new_string("EQUAL")) ||
	    j_add_b64(cmp, "key", key, klen) ||
	    j_add_i64(cmp,
		      !strcmp(target, "CREATE") ? "create_revision" :
						  "mod_revision",
		      rev))
		goto err_req;
	succ = json_object_new_array();
	if (j_add(req, "success", succ))
		goto err_req;
	op = json_object_new_object();
	if (!op || json_object_array_add(succ, op)) {
		json_object_put(op);
		goto err_req;
	}
	if (j_add(op, "request_put", put_request(key, value, len, lease)))
		goto err_req;
	fail = json_object_new_array();
	if (j_add(req, "failure", fail))
		goto err_req;
	op = json_object_new_object();
	if (!op || json_object_array_add(fail, op)) {
		json_object_put(op);
		goto err_req;
	}
	get = json_object_new_object();
	if (j_add(op, "request_range", get) || j_add_b64(get, "key", key, klen))
		goto err_req;

	ret = call(c, what, "/v3/kv/txn", req, &o, err);
	if (ret)
		goto out_req;
	ret = j_bool(o, "succeeded", done, reason, sizeof(reason));
	if (ret || *done)
		goto out_o;
	ret = j_typed(o, "responses", json_type_array, &resps, reason,
		      sizeof(reason));
	if (ret)
		goto out_o;
	r0 = resps ? json_object_array_get_idx(resps, 0) : NULL;
	if (!r0 || !json_object_is_type(r0, json_type_object) ||
	    !json_object_object_get_ex(r0, "response_range", &rr) ||
	    !json_object_is_type(rr, json_type_object)) {
		snprintf(reason, sizeof(reason),
			 "failed txn without response_range");
		ret = -EBADMSG;
		goto out_o;
	}
	ret = decode_range_obj(rr, &kvs, reason, sizeof(reason));
	if (ret)
		goto out_kvs;
	if (current && kvs.n) {
		*current = kvs.kv[0];
		memset(&kvs.kv[0], 0, sizeof(kvs.kv[0]));
	}
out_kvs:
	nm_etcd_kvs_free(&kvs);
out_o:
	if (ret)
		set_err(err, what, nm_etcd_endpoint(c), "%s", reason);
	json_object_put(o);
out_req:
	json_object_put(req);
	return ret;
err_req:
	json_object_put(req);
err_oom:
	set_err(err, what, c->ep[0], "out of memory");
	return -ENOMEM;
}

int nm_etcd_create(struct nm_etcd *c, const char *key, const void *value,
		   size_t len, __u64 lease, bool *done,
		   struct nm_etcd_kv *current, struct nm_etcd_err *err)
{
	return txn_put_if(c, "create", key, "CREATE", 0, value, len, lease,
			  done, current, err);
}

int nm_etcd_cas(struct nm_etcd *c, const char *key, __s64 mod_revision,
		const void *value, size_t len, __u64 lease, bool *done,
		struct nm_etcd_kv *current, struct nm_etcd_err *err)
{
	return txn_put_if(c, "compare-and-swap", key, "MOD", mod_revision,
			  value, len, lease, done, current, err);
}

int nm_etcd_lease_grant(struct nm_etcd *c, __s64 ttl, __u64 *id,
			__s64 *granted_ttl, struct nm_etcd_err *err)
{
	const char *what = "grant lease";
	json_object *req, *o, *e;
	char reason[256];
	__s64 t;
	int ret;

	req = json_object_new_object();
	ret = call_built(c, what, "/v3/lease/grant", req,
			 req ? j_add_i64(req, "TTL", ttl) : 0, &o, err);
	if (ret)
		goto out_req;
	ret = j_u64(o, "ID", id, reason, sizeof(reason));
	if (!ret)
		ret = j_i64(o, "TTL", &t, reason, sizeof(reason));
	if (!ret && json_object_object_get_ex(o, "error", &e) &&
	    json_object_is_type(e, json_type_string) &&
	    json_object_get_string_len(e)) {
		snprintf(reason, sizeof(reason), "%s",
			 json_object_get_string(e));
		ret = -EIO;
	}
	if (!ret && !*id) {
		snprintf(reason, sizeof(reason), "reply without lease ID");
		ret = -EBADMSG;
	}
	if (ret)
		set_err(err, what, nm_etcd_endpoint(c), "%s", reason);
	else if (granted_ttl)
		*granted_ttl = t;
	json_object_put(o);
out_req:
	json_object_put(req);
	return ret;
}

int nm_etcd_lease_keepalive(struct nm_etcd *c, __u64 id, __s64 *ttl,
			    struct nm_etcd_err *err)
{
	char what[ETCD_WHAT_MAX], reason[256];
	json_object *req, *o, *res;
	__s64 t = 0;
	int ret;

	snprintf(what, sizeof(what), "keep lease %llu alive",
		 (unsigned long long)id);
	req = json_object_new_object();
	/* One POST per renewal: the gateway is half-duplex over HTTP/1.1. */
	ret = call_built(c, what, "/v3/lease/keepalive", req,
			 req ? j_add_u64(req, "ID", id) : 0, &o, err);
	if (ret)
		goto out_req;
	ret = j_typed(o, "result", json_type_object, &res, reason,
		      sizeof(reason));
	if (!ret && !res) {
		snprintf(reason, sizeof(reason), "reply without result");
		ret = -EBADMSG;
	}
	if (!ret)
		ret = j_i64(res, "TTL", &t, reason, sizeof(reason));
	if (!ret && t <= 0) {
		snprintf(reason, sizeof(reason), "lease expired or unknown");
		ret = -ENOENT;
	}
	if (ret)
		set_err(err, what, nm_etcd_endpoint(c), "%s", reason);
	else if (ttl)
		*ttl = t;
	json_object_put(o);
out_req:
	json_object_put(req);
	return ret;
}

static int simple_call(struct nm_etcd *c, const char *what, const char *path,
		       json_object *req, int add_ret, struct nm_etcd_err *err)
{
	json_object *o;
	int ret;

	ret = call_built(c, what, path, req, add_ret, &o, err);
	if (!ret)
		json_object_put(o);
	json_object_put(req);
	return ret;
}

int nm_etcd_lease_revoke(struct nm_etcd *c, __u64 id, struct nm_etcd_err *err)
{
	json_object *req = json_object_new_object();
	char what[ETCD_WHAT_MAX];

	snprintf(what, sizeof(what), "revoke lease %llu",
		 (unsigned long long)id);
	return simple_call(c, what, "/v3/lease/revoke", req,
			   req ? j_add_u64(req, "ID", id) : 0, err);
}

int nm_etcd_compact(struct nm_etcd *c, __s64 revision, struct nm_etcd_err *err)
{
	json_object *req = json_object_new_object();
	char what[ETCD_WHAT_MAX];

	snprintf(what, sizeof(what), "compact to revision %lld",
		 (long long)revision);
	return simple_call(
		c, what, "/v3/kv/compaction", req,
		req ? (j_add_i64(req, "revision", revision) ||
		       j_add(req, "physical", json_object_new_boolean(1))) :
		      0,
		err);
}

/*
 * Watch. One blocking call per watch, on a curl handle of its own, driven
 * through a private multi handle so that the stop flag and the deadline
 * are looked at while the stream is idle: every ETCD_WATCH_POLL_MS, or,
 * with a waker, when another thread wakes the multi handle
 * (curl_multi_wakeup(), which writes to the handle's own socket pair:
 * a wake that comes while the watch is not in curl_multi_poll() makes the
 * next poll return at once) and every ETCD_WATCH_IDLE_MS. Backoff sleeps
 * wait in curl_multi_poll() too, with no transfer on the handle.
 */
struct nm_etcd_waker {
	pthread_mutex_t lock;
	CURLM *multi; /* the running watch's, under @lock; NULL: none */
};

int nm_etcd_waker_new(struct nm_etcd_waker **out)
{
	struct nm_etcd_waker *w;
	int ret;

	*out = NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	ret = pthread_mutex_init(&w->lock, NULL);
	if (ret)
		goto err_free;
	*out = w;
	return 0;

err_free:
	free(w);
	return -ret;
}

void nm_etcd_waker_free(struct nm_etcd_waker *w)
{
	if (!w)
		return;
	pthread_mutex_destroy(&w->lock);
	free(w);
}

void nm_etcd_waker_wake(struct nm_etcd_waker *w)
{
	CURLMcode mc;

	if (!w)
		return;
	/* Under @lock: the watch cannot clean its multi handle up meanwhile. */
	pthread_mutex_lock(&w->lock);
	if (w->multi) {
		mc = curl_multi_wakeup(w->multi);
		if (mc != CURLM_OK)
			pr_warn("failed to wake a watch: %s; it stops within %d ms",
				curl_multi_strerror(mc), ETCD_WATCH_IDLE_MS);
	}
	pthread_mutex_unlock(&w->lock);
}

/* Make @multi the one @w wakes; -EBUSY if another watch has it. */
static int waker_attach(struct nm_etcd_waker *w, CURLM *multi)
{
	int ret = 0;

	if (!w)
		return 0;
	pthread_mutex_lock(&w->lock);
	if (w->multi)
		ret = -EBUSY;
	else
		w->multi = multi;
	pthread_mutex_unlock(&w->lock);
	return ret;
}

static void waker_detach(struct nm_etcd_waker *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->multi = NULL;
	pthread_mutex_unlock(&w->lock);
}

enum watch_end {
	WATCH_RUNNING = 0,
	WATCH_RECONNECT, /* stream error object: connect again */
	WATCH_REAUTH, /* token refused: log in, connect again */
	WATCH_FATAL, /* ->ret holds the result */
};

struct watch_ctx {
	struct nm_etcd *c;
	const struct nm_etcd_watch_opts *o;
	struct nm_etcd_watch_state *st;
	struct nm_etcd_err *err;
	const char *what;
	const char *ep;
	CURL *h;
	struct buf line; /* unterminated tail of the stream */
	struct buf body; /* the body of a non-200 answer */
	long status;
	bool created;
	enum watch_end end;
	int ret;
	char reason[256];
};

static __s64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__s64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool watch_stopped(const struct nm_etcd_watch_opts *o, __s64 deadline)
{
	if (o->stop && atomic_load(o->stop))
		return true;
	return deadline && now_ms() >= deadline;
}

/* How long to wait before looking at the stop flag and deadline again. */
static int watch_poll_ms(const struct nm_etcd_watch_opts *o, __s64 deadline)
{
	__s64 ms = o->waker ? ETCD_WATCH_IDLE_MS : ETCD_WATCH_POLL_MS, left;

	if (deadline) {
		left = deadline - now_ms();
		if (left < ms)
			ms = left > 0 ? left : 0;
	}
	return (int)ms;
}

static void watch_fail(struct watch_ctx *x, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void watch_fail(struct watch_ctx *x, int ret, const char *fmt, ...)
{
	char reason[NM_ETCD_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	set_err(x->err, x->what, x->ep, "%s", reason);
	x->end = WATCH_FATAL;
	x->ret = ret;
}

/* One {"result":...} line. Returns false to abort the transfer. */
static bool watch_message(struct watch_ctx *x, const char *p, size_t len)
{
	struct nm_etcd_watch_state *st = x->st;
	struct nm_etcd_watch_msg m;
	char reason[256];
	bool ok = false;
	size_t i;
	int ret;

	ret = nm_etcd_decode_watch(p, len, &m, reason, sizeof(reason));
	if (ret) {
		watch_fail(x, ret, "malformed watch message: %s", reason);
		return false;
	}
	if (m.error) {
		snprintf(x->reason, sizeof(x->reason), "stream error: %.200s",
			 m.reason);
		x->end = WATCH_RECONNECT;
		goto out;
	}
	ret = check_cluster(x->c, m.header.cluster_id, reason, sizeof(reason));
	if (ret) {
		watch_fail(x, ret, "%s", reason);
		goto out;
	}
	if (m.canceled) {
		if (m.compact_revision) {
			st->compact_revision = m.compact_revision;
			watch_fail(
				x, -ERANGE,
				"revision %lld is compacted (oldest available %lld): re-list",
				(long long)st->last_revision + 1,
				(long long)m.compact_revision);
		} else if (x->c->username &&
			   (strstr(m.reason, "Unauthenticated") ||
			    strstr(m.reason, "invalid auth token"))) {
			snprintf(x->reason, sizeof(x->reason), "%s", m.reason);
			x->end = WATCH_REAUTH;
		} else if (strstr(m.reason, "PermissionDenied") ||
			   strstr(m.reason, "permission denied")) {
			watch_fail(x, -EACCES, "canceled: %s", m.reason);
		} else if (strstr(m.reason, "user name is empty") ||
			   strstr(m.reason, "authentication failed") ||
			   strstr(m.reason, "Unauthenticated")) {
			watch_fail(x, -EPERM, "canceled: %s", m.reason);
		} else {
			watch_fail(x, -EIO, "canceled: %s",
				   m.reason[0] ? m.reason : "no reason given");
		}
		goto out;
	}
	if (m.created) {
		if (!x->created && x->o->on_stream)
			x->o->on_stream(x->o->arg, true);
		x->created = true;
		/* From now: nothing before the creation revision is owed. */
		if (!st->last_revision)
			st->last_revision = m.header.revision;
	}
	for (i = 0; i < m.n_events; i++) {
		struct nm_etcd_event *ev = &m.events[i];

		/* Never hand out a revision twice, whatever the server does. */
		if (ev->kv.mod_revision < st->last_revision)
			continue;
		ret = x->o->cb(ev, x->o->arg);
		if (ret) {
			watch_fail(x, ret, "event callback failed (%d)", ret);
			goto out;
		}
		st->last_revision = ev->kv.mod_revision;
		st->events++;
	}
	/*
	 * A progress notify: etcd sends one only to a synced watcher, so
	 * every event up to its revision has been delivered.
	 */
	if (!m.created && !m.n_events && m.header.revision > st->last_revision)
		st->last_revision = m.header.revision;
	ok = true;
out:
	nm_etcd_watch_msg_free(&m);
	return ok && x->end == WATCH_RUNNING;
}

static size_t watch_write(char *p, size_t sz, size_t nm, void *arg)
{
	struct watch_ctx *x = arg;
	size_t n = sz * nm, start = 0, i;
	char *nl;

	if (!x->status && curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE,
					    &x->status) != CURLE_OK)
		return 0;
	if (x->status != 200) {
		/* An error answer: keep (a bounded part of) it for the reason. */
		if (x->body.len < 4096 && buf_append(&x->body, p, n))
			return 0;
		return n;
	}
	if (buf_append(&x->line, p, n)) {
		watch_fail(x, -EBADMSG, "watch message larger than %u bytes",
			   ETCD_WATCH_LINE_MAX);
		return 0;
	}
	/* Messages are split on newlines, never on chunk boundaries. */
	while ((nl = memchr(x->line.p + start, '\n', x->line.len - start))) {
		size_t len = nl - (x->line.p + start);

		for (i = 0; i < len; i++)
			if (!isspace((unsigned char)x->line.p[start + i]))
				break;
		if (i < len && !watch_message(x, x->line.p + start, len))
			return 0;
		start += len + 1;
	}
	memmove(x->line.p, x->line.p + start, x->line.len - start);
	x->line.len -= start;
	x->line.p[x->line.len] = '\0';
	return n;
}

static char *watch_body(const struct nm_etcd_watch_opts *o, __s64 from)
{
	json_object *req, *cr;
	char *body = NULL;

	req = json_object_new_object();
	if (!req)
		return NULL;
	cr = json_object_new_object();
	if (j_add(req, "create_request", cr) ||
	    j_add_range(cr, o->key, strlen(o->key), o->prefix) ||
	    (from && j_add_i64(cr, "start_revision", from)))
		goto out;
	body = strdup(
		json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN));
out:
	json_object_put(req);
	return body;
}

/*
 * One connection: send the whole create_request (half-duplex gateway),
 * then read until the stream ends, the handler aborts, or the caller
 * stops. Returns the curl result; *stopped when the caller ended it.
 */
static CURLcode watch_once(struct watch_ctx *x, CURLM *multi, __s64 deadline,
			   const char *token, bool *stopped, char *errbuf)
{
	struct nm_etcd_watch_state *st = x->st;
	CURLcode setopt_rc, rc = CURLE_OK;
	struct curl_slist *hdrs;
	char url[512], *body;
	CURLMsg *msg;
	CURLMcode mc;
	int running, left;

	*stopped = false;
	snprintf(url, sizeof(url), "%s/v3/watch", x->ep);
	body = watch_body(x->o, st->last_revision ? st->last_revision + 1 : 0);
	hdrs = body ? make_headers(token) : NULL;
	if (!hdrs) {
		rc = CURLE_OUT_OF_MEMORY;
		goto out_body;
	}
	setopt_rc = setup_handle(x->c, x->h, url, hdrs, errbuf);
	SETOPT(x->h, CURLOPT_COPYPOSTFIELDS, body);
	SETOPT(x->h, CURLOPT_WRITEFUNCTION, watch_write);
	SETOPT(x->h, CURLOPT_WRITEDATA, x);
	if (setopt_rc != CURLE_OK) {
		rc = setopt_rc;
		goto out_hdrs;
	}
	mc = curl_multi_add_handle(multi, x->h);
	if (mc != CURLM_OK) {
		snprintf(errbuf, CURL_ERROR_SIZE, "curl multi: %s",
			 curl_multi_strerror(mc));
		rc = CURLE_FAILED_INIT;
		goto out_hdrs;
	}
	for (;;) {
		mc = curl_multi_perform(multi, &running);
		if (mc != CURLM_OK || !running)
			break;
		if (watch_stopped(x->o, deadline)) {
			*stopped = true;
			break;
		}
		mc = curl_multi_poll(multi, NULL, 0,
				     watch_poll_ms(x->o, deadline), NULL);
		if (mc != CURLM_OK)
			break;
	}
	if (mc != CURLM_OK) {
		snprintf(errbuf, CURL_ERROR_SIZE, "curl multi: %s",
			 curl_multi_strerror(mc));
		rc = CURLE_RECV_ERROR;
	}
	while ((msg = curl_multi_info_read(multi, &left)))
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == x->h)
			rc = msg->data.result;
	/* Removing the handle ends an unfinished transfer. */
	curl_multi_remove_handle(multi, x->h);
out_hdrs:
	curl_slist_free_all(hdrs);
out_body:
	free(body);
	return rc;
}

/*
 * Sleep @ms in poll-sized slices on @multi (no transfer on it, so only a
 * wake or the time ends a slice); false if the caller stopped meanwhile.
 */
static bool watch_sleep(const struct nm_etcd_watch_opts *o, CURLM *multi,
			__s64 deadline, long ms)
{
	__s64 end = now_ms() + ms, left;
	struct timespec ts;
	CURLMcode mc;
	int step;

	while (!watch_stopped(o, deadline) && (left = end - now_ms()) > 0) {
		step = watch_poll_ms(o, deadline);
		if (left < step)
			step = (int)left;
		mc = curl_multi_poll(multi, NULL, 0, step, NULL);
		if (mc == CURLM_OK)
			continue;
		/* Never spin: sleep the slice out, unwakeable. */
		ts.tv_sec = step / 1000;
		ts.tv_nsec = (step % 1000) * 1000000L;
		nanosleep(&ts, NULL);
	}
	return !watch_stopped(o, deadline);
}

int nm_etcd_watch(struct nm_etcd *c, const struct nm_etcd_watch_opts *o,
		  struct nm_etcd_watch_state *st, struct nm_etcd_err *err)
{
	long bmin = o->backoff_min_ms ? o->backoff_min_ms : ETCD_BACKOFF_MIN_MS;
	long bmax = o->backoff_max_ms ? o->backoff_max_ms : ETCD_BACKOFF_MAX_MS;
	__s64 deadline = o->timeout_ms ? now_ms() + o->timeout_ms : 0;
	struct watch_ctx x = { .c = c, .o = o, .st = st, .err = err };
	char what[ETCD_WHAT_MAX], errbuf[CURL_ERROR_SIZE];
	unsigned int seed;
	bool stopped, relog = false;
	long backoff = bmin, sleep_ms;
	char *token = NULL;
	CURLM *multi;
	size_t idx;
	CURLcode rc;
	int ret, code;

	memset(st, 0, sizeof(*st));
	st->last_revision = o->start_revision > 0 ? o->start_revision - 1 : 0;
	what_key(what, o->prefix ? "watch prefix" : "watch", o->key,
		 strlen(o->key));
	if (!o->cb || o->start_revision < 0) {
		set_err(err, what, c->ep[0],
			"need an event callback and a revision >= 0");
		return -EINVAL;
	}
	x.what = what;
	x.ep = c->ep[0];
	x.line.max = ETCD_WATCH_LINE_MAX;
	x.body.max = 1 << 16;
	seed = (unsigned int)now_ms() ^ (unsigned int)getpid() ^
	       (unsigned int)(uintptr_t)st;

	x.h = curl_easy_init();
	if (!x.h) {
		set_err(err, what, x.ep, "out of memory");
		return -ENOMEM;
	}
	multi = curl_multi_init();
	if (!multi) {
		set_err(err, what, x.ep, "out of memory");
		ret = -ENOMEM;
		goto out_easy;
	}
	ret = waker_attach(o->waker, multi);
	if (ret) {
		set_err(err, what, x.ep, "the waker serves another watch");
		goto out_multi;
	}
	for (;;) {
		ret = 0;
		if (watch_stopped(o, deadline))
			break;
		idx = cur_ep(c);
		x.ep = c->ep[idx];
		if (relog || token_missing(c)) {
			relog = false;
			token_set(c, NULL);
			ret = login(c, err);
			/* Only an unreachable etcd is worth waiting for. */
			if (ret && ret != -ECONNREFUSED && ret != -ETIMEDOUT &&
			    ret != -EAGAIN && ret != -EIO)
				break;
			if (ret) {
				snprintf(x.reason, sizeof(x.reason), "%.250s",
					 err ? err->msg : "login failed");
				goto backoff;
			}
		}
		free(token);
		token = token_dup(c);
		x.status = 0;
		x.created = false;
		x.end = WATCH_RUNNING;
		x.line.len = 0;
		x.body.len = 0;
		errbuf[0] = '\0';
		rc = watch_once(&x, multi, deadline, token, &stopped, errbuf);
		if (x.end == WATCH_FATAL) {
			ret = x.ret;
			break;
		}
		if (stopped)
			break;
		if (x.end == WATCH_REAUTH) {
			relog = true;
		} else if (x.end == WATCH_RECONNECT) {
			/* x.reason set by the handler */
		} else if (rc == CURLE_OUT_OF_MEMORY) {
			set_err(err, what, x.ep, "out of memory");
			ret = -ENOMEM;
			break;
		} else if (rc != CURLE_OK) {
			snprintf(x.reason, sizeof(x.reason), "%.180s%s",
				 errbuf[0] ? errbuf : curl_easy_strerror(rc),
				 tls_hint(c, x.ep, rc));
			if (rc == CURLE_COULDNT_CONNECT ||
			    rc == CURLE_OPERATION_TIMEDOUT)
				set_cur_ep(c, idx + 1);
		} else if (x.status != 200) {
			decode_error(x.body.p ? x.body.p : "", x.body.len,
				     &code, x.reason, sizeof(x.reason));
			ret = code >= 0 ? grpc_errno(code, x.reason) : -EIO;
			if (ret == -EKEYEXPIRED && c->username) {
				relog = true;
			} else if (x.status < 500) {
				set_err(err, what, x.ep, "HTTP %ld: %s",
					x.status, x.reason);
				if (ret == -EKEYEXPIRED)
					ret = -EPERM;
				break;
			} else {
				set_cur_ep(c, idx + 1);
			}
			ret = 0;
		} else {
			snprintf(x.reason, sizeof(x.reason), "stream ended");
		}
		/* A stream that got going earns a fresh backoff. */
		if (x.created)
			backoff = bmin;
backoff:
		if (o->on_stream)
			o->on_stream(o->arg, false);
		st->reconnects++;
		/* Equal jitter: somewhere in [backoff/2, backoff]. */
		sleep_ms = backoff / 2 + rand_r(&seed) % (backoff / 2 + 1);
		pr_info("watch %s on %s: %s; resuming at revision %lld in %ld ms",
			o->key, x.ep, x.reason,
			(long long)st->last_revision + 1, sleep_ms);
		if (!watch_sleep(o, multi, deadline, sleep_ms))
			break;
		backoff = backoff * 2 > bmax ? bmax : backoff * 2;
	}
	free(token);
	buf_free(&x.body);
	buf_free(&x.line);
	waker_detach(o->waker);
out_multi:
	curl_multi_cleanup(multi);
out_easy:
	curl_easy_cleanup(x.h);
	return ret;
}

/* Client. */

static int dup_opt(const char *s, char **out)
{
	*out = NULL;
	if (!s)
		return 0;
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

void nm_etcd_close(struct nm_etcd *c)
{
	size_t i;

	if (!c)
		return;
	curl_easy_cleanup(c->curl);
	pthread_mutex_destroy(&c->call_lock);
	pthread_mutex_destroy(&c->lock);
	free(c->token);
	free(c->password);
	free(c->username);
	free(c->key_file);
	free(c->cert_file);
	free(c->ca_file);
	for (i = 0; i < c->n_ep; i++)
		free(c->ep[i]);
	free(c);
}

int nm_etcd_open(const struct nm_etcd_config *cfg, struct nm_etcd **out,
		 struct nm_etcd_err *err)
{
	const char *where = cfg->n_endpoints ? cfg->endpoints[0] : "(none)";
	const char *what = "open etcd client";
	struct nm_etcd *c;
	size_t i;
	int ret;

	*out = NULL;
	if (!cfg->n_endpoints || cfg->n_endpoints > NM_ETCD_MAX_ENDPOINTS) {
		set_err(err, what, where, "need 1 to %d endpoints, got %zu",
			NM_ETCD_MAX_ENDPOINTS, cfg->n_endpoints);
		return -EINVAL;
	}
	for (i = 0; i < cfg->n_endpoints; i++) {
		const char *ep = cfg->endpoints[i];

		if (!ep ||
		    (strncmp(ep, "http://", 7) && strncmp(ep, "https://", 8))) {
			set_err(err, what, ep ? ep : "(null)",
				"endpoint must start with http:// or https://");
			return -EINVAL;
		}
		if (strlen(ep) > 256) {
			set_err(err, what, where, "endpoint too long");
			return -EINVAL;
		}
	}
	if ((cfg->cert_file != NULL) != (cfg->key_file != NULL)) {
		set_err(err, what, where,
			"a client certificate needs its key and the key its certificate");
		return -EINVAL;
	}
	ret = pthread_once(&curl_once, curl_init);
	if (ret || curl_init_rc != CURLE_OK) {
		set_err(err, what, where, "curl_global_init: %s",
			curl_easy_strerror(curl_init_rc));
		return -EIO;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		set_err(err, what, where, "out of memory");
		return -ENOMEM;
	}
	ret = pthread_mutex_init(&c->lock, NULL);
	if (ret) {
		set_err(err, what, where, "mutex: %s", strerror(ret));
		goto err_free;
	}
	ret = pthread_mutex_init(&c->call_lock, NULL);
	if (ret) {
		set_err(err, what, where, "mutex: %s", strerror(ret));
		goto err_lock;
	}
	c->connect_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms :
						  ETCD_CONNECT_TIMEOUT_MS;
	c->request_ms = cfg->request_timeout_ms ? cfg->request_timeout_ms :
						  ETCD_REQUEST_TIMEOUT_MS;
	c->curl = curl_easy_init();
	if (!c->curl) {
		set_err(err, what, where, "curl_easy_init failed");
		ret = ENOMEM;
		goto err_call_lock;
	}
	for (i = 0; i < cfg->n_endpoints; i++) {
		size_t n = strlen(cfg->endpoints[i]);

		/* "http://h:p/" and "http://h:p" name the same thing. */
		while (n && cfg->endpoints[i][n - 1] == '/')
			n--;
		c->ep[i] = strndup(cfg->endpoints[i], n);
		if (!c->ep[i])
			goto err_oom;
		c->n_ep++;
	}
	if (dup_opt(cfg->ca_file, &c->ca_file) ||
	    dup_opt(cfg->cert_file, &c->cert_file) ||
	    dup_opt(cfg->key_file, &c->key_file) ||
	    dup_opt(cfg->username, &c->username) ||
	    dup_opt(cfg->password, &c->password))
		goto err_oom;
	*out = c;
	return 0;

err_oom:
	/* nm_etcd_close() frees whatever was filled in. */
	set_err(err, what, where, "out of memory");
	nm_etcd_close(c);
	return -ENOMEM;
err_call_lock:
	pthread_mutex_destroy(&c->call_lock);
err_lock:
	pthread_mutex_destroy(&c->lock);
err_free:
	free(c);
	return -ret;
}

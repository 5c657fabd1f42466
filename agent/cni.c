// SPDX-License-Identifier: GPL-2.0
/*
 * nodemesh-cni's parsing and documents (pure: no I/O). Everything the
 * runtime hands over is checked here before the plugin talks to the
 * agent, so a malformed invocation never reaches it.
 */
#define _GNU_SOURCE /* memmem */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "agent/cni.h"
#include "agent/parse.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
/* json-c's own default; prevResults are a few levels deep. */
#define NM_CNI_JSON_DEPTH 32
#define NM_JSON_OUT (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

static const char *const supported_versions[] = { "0.3.0", "0.3.1", "0.4.0",
						  "1.0.0" };

int nm_cni_err(struct nm_cni_error *e, int code, const char *fmt, ...)
{
	va_list ap;

	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	e->details[0] = '\0';
	return -EINVAL;
}

void nm_cni_err_details(struct nm_cni_error *e, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(e->details, sizeof(e->details), fmt, ap);
	va_end(ap);
}

static int nomem(struct nm_cni_error *e, const char *what)
{
	nm_cni_err(e, NM_CNI_E_IO, "failed to build %s: out of memory", what);
	return -ENOMEM;
}

int nm_cni_cmd_parse(const char *s, enum nm_cni_cmd *cmd,
		     struct nm_cni_error *e)
{
	static const char *const names[] = {
		[NM_CNI_ADD] = "ADD",
		[NM_CNI_DEL] = "DEL",
		[NM_CNI_CHECK] = "CHECK",
		[NM_CNI_VERSION] = "VERSION",
	};
	size_t i;

	if (!s || !*s)
		return nm_cni_err(e, NM_CNI_E_ENV,
				  "missing environment variable CNI_COMMAND");
	for (i = 0; i < ARRAY_LEN(names); i++) {
		if (!strcmp(s, names[i])) {
			*cmd = (enum nm_cni_cmd)i;
			return 0;
		}
	}
	nm_cni_err(e, NM_CNI_E_ENV, "unknown CNI_COMMAND '%s'", s);
	nm_cni_err_details(e, "expected ADD, DEL, CHECK or VERSION");
	return -EINVAL;
}

bool nm_cni_version_supported(const char *v)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(supported_versions); i++) {
		if (!strcmp(v, supported_versions[i]))
			return true;
	}
	return false;
}

/* The spec's rule for container ids and network names. */
static bool cni_ident(const char *s)
{
	if (!isalnum((unsigned char)*s))
		return false;
	for (s++; *s; s++) {
		if (!isalnum((unsigned char)*s) && !strchr("_.-", *s))
			return false;
	}
	return true;
}

/* Linux interface names, as the spec words them for CNI_IFNAME. */
static const char *ifname_why(const char *s)
{
	if (!*s)
		return "empty";
	if (strlen(s) >= IF_NAMESIZE)
		return "longer than 15 characters";
	if (!strcmp(s, ".") || !strcmp(s, ".."))
		return "'.' and '..' are not interface names";
	for (; *s; s++) {
		if (*s == '/' || *s == ':' || isspace((unsigned char)*s))
			return "contains '/', ':' or whitespace";
	}
	return NULL;
}

static int need_env(const char *name, const char *val, struct nm_cni_error *e)
{
	if (val && *val)
		return 0;
	return nm_cni_err(e, NM_CNI_E_ENV, "missing environment variable %s",
			  name);
}

int nm_cni_env_check(const struct nm_cni_env *env, enum nm_cni_cmd cmd,
		     struct nm_cni_error *e)
{
	const char *why;
	int ret;

	if (cmd == NM_CNI_VERSION)
		return 0;
	ret = need_env("CNI_CONTAINERID", env->container_id, e);
	if (ret)
		return ret;
	if (!cni_ident(env->container_id)) {
		nm_cni_err(e, NM_CNI_E_ENV, "bad CNI_CONTAINERID '%s'",
			   env->container_id);
		nm_cni_err_details(
			e,
			"a container id starts with a letter or digit, followed by letters, digits, '_', '.' or '-'");
		return -EINVAL;
	}
	/* DEL cleans up even when the namespace is already gone. */
	if (cmd != NM_CNI_DEL) {
		ret = need_env("CNI_NETNS", env->netns, e);
		if (ret)
			return ret;
		if (env->netns[0] != '/')
			return nm_cni_err(
				e, NM_CNI_E_ENV,
				"bad CNI_NETNS '%s': not an absolute path",
				env->netns);
	}
	ret = need_env("CNI_IFNAME", env->ifname, e);
	if (ret)
		return ret;
	why = ifname_why(env->ifname);
	if (why)
		return nm_cni_err(e, NM_CNI_E_ENV, "bad CNI_IFNAME '%s': %s",
				  env->ifname, why);
	return need_env("CNI_PATH", env->path, e);
}

void nm_cni_args_free(struct nm_cni_args *a)
{
	free(a->pod_namespace);
	free(a->pod_name);
	free(a->labels);
	memset(a, 0, sizeof(*a));
}

/* Store the value of a known key once; a second one is ambiguous. */
static int args_store(char **slot, const char *key, const char *val,
		      struct nm_cni_error *e)
{
	if (*slot)
		return nm_cni_err(e, NM_CNI_E_ENV, "CNI_ARGS gives %s twice",
				  key);
	if (!*val)
		return 0;
	*slot = strdup(val);
	if (!*slot)
		return nomem(e, "CNI_ARGS");
	return 0;
}

int nm_cni_args_parse(const char *s, struct nm_cni_args *out,
		      struct nm_cni_error *e)
{
	struct nm_cni_args a = {};
	char *copy = NULL, *pair, *save = NULL, *eq;
	int ret = 0;

	memset(out, 0, sizeof(*out));
	if (!s || !*s)
		return 0;
	copy = strdup(s);
	if (!copy)
		return nomem(e, "CNI_ARGS");
	/* Empty pairs ("A=1;;B=2", a trailing ';') carry nothing: skipped. */
	for (pair = strtok_r(copy, ";", &save); pair;
	     pair = strtok_r(NULL, ";", &save)) {
		eq = strchr(pair, '=');
		if (!eq || eq == pair) {
			ret = nm_cni_err(
				e, NM_CNI_E_ENV,
				"bad CNI_ARGS pair '%s': expected KEY=VALUE",
				pair);
			goto out;
		}
		*eq = '\0';
		if (!strcmp(pair, "K8S_POD_NAMESPACE"))
			ret = args_store(&a.pod_namespace, pair, eq + 1, e);
		else if (!strcmp(pair, "K8S_POD_NAME"))
			ret = args_store(&a.pod_name, pair, eq + 1, e);
		else if (!strcmp(pair, "NODEMESH_LABELS"))
			ret = args_store(&a.labels, pair, eq + 1, e);
		if (ret)
			goto out;
	}
	*out = a;
	memset(&a, 0, sizeof(a));
out:
	nm_cni_args_free(&a);
	free(copy);
	return ret;
}

static const char *jtype_name(json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "a boolean";
	case json_type_double:
	case json_type_int:
		return "a number";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	}
	return "unknown";
}

static const char *want_name(json_type t)
{
	switch (t) {
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_string:
		return "a string";
	case json_type_int:
		return "an integer";
	default:
		return "a value";
	}
}

/*
 * Field @key of object @o (named @where in messages) of type @t into
 * *@out: NULL when absent and not @required. An optional null counts as
 * absent: Go runtimes marshal empty maps that way.
 */
static int field(json_object *o, const char *where, const char *key,
		 json_type t, bool required, json_object **out,
		 struct nm_cni_error *e)
{
	json_object *v;

	*out = NULL;
	if (!json_object_object_get_ex(o, key, &v)) {
		if (!required)
			return 0;
		return nm_cni_err(
			e, NM_CNI_E_CONFIG,
			"invalid network configuration: missing field %s%s",
			where, key);
	}
	if (!v && !required)
		return 0;
	if (!json_object_is_type(v, t))
		return nm_cni_err(
			e, NM_CNI_E_CONFIG,
			"invalid network configuration: field %s%s must be %s, not %s",
			where, key, want_name(t), jtype_name(v));
	*out = v;
	return 0;
}

static json_object *parse_json(const char *buf, size_t len, char *why,
			       size_t why_len)
{
	enum json_tokener_error jerr;
	struct json_tokener *tok;
	json_object *o = NULL;

	/* json-c keeps strings as C strings: a NUL would cut them short. */
	if (memchr(buf, '\0', len) || memmem(buf, len, "\\u0000", 6)) {
		snprintf(why, why_len, "contains a NUL character");
		return NULL;
	}
	tok = json_tokener_new_ex(NM_CNI_JSON_DEPTH);
	if (!tok) {
		snprintf(why, why_len, "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
					    JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_continue) {
		snprintf(why, why_len, "%s",
			 len ? "truncated JSON" : "empty input");
		goto err;
	}
	if (jerr != json_tokener_success) {
		snprintf(why, why_len, "malformed JSON at byte %zu: %s",
			 json_tokener_get_parse_end(tok),
			 json_tokener_error_desc(jerr));
		goto err;
	}
	if (!json_object_is_type(o, json_type_object)) {
		snprintf(why, why_len, "expected a JSON object, got %s",
			 jtype_name(o));
		goto err;
	}
	json_tokener_free(tok);
	return o;
err:
	json_object_put(o);
	json_tokener_free(tok);
	return NULL;
}

static int check_label(const char *where, const char *key, const char *val,
		       int code, struct nm_cni_error *e)
{
	char why[256];

	if (nm_label_key_check(key, why, sizeof(why)) ||
	    nm_label_value_check(val, why, sizeof(why)))
		return nm_cni_err(e, code, "bad label '%s=%s' in %s: %s", key,
				  val, where, why);
	/* The agent sets these two: a pod cannot claim another namespace. */
	if (!strcmp(key, NM_LABEL_NAMESPACE) || !strcmp(key, NM_LABEL_CLUSTER))
		return nm_cni_err(
			e, code,
			"bad label '%s' in %s: %s and %s are set by nodemesh",
			key, where, NM_LABEL_NAMESPACE, NM_LABEL_CLUSTER);
	return 0;
}

/* The labels object @o (named @where) into @l, replacing what is there. */
static int labels_from_json(json_object *o, const char *where,
			    struct nm_labels *l, struct nm_cni_error *e)
{
	int ret;

	json_object_object_foreach(o, key, val)
	{
		if (!json_object_is_type(val, json_type_string))
			return nm_cni_err(
				e, NM_CNI_E_CONFIG,
				"invalid network configuration: label '%s' in %s must be a string, not %s",
				key, where, jtype_name(val));
		ret = check_label(where, key, json_object_get_string(val),
				  NM_CNI_E_CONFIG, e);
		if (ret)
			return ret;
		ret = nm_labels_set(l, key, json_object_get_string(val));
		if (ret)
			return nomem(e, "the label set");
	}
	return 0;
}

static int conf_version(json_object *root, enum nm_cni_cmd cmd,
			struct nm_cni_conf *conf, struct nm_cni_error *e)
{
	const char *v;
	json_object *o;
	int ret;

	ret = field(root, "", "cniVersion", json_type_string, true, &o, e);
	if (ret)
		return ret;
	v = json_object_get_string(o);
	if (!nm_cni_version_supported(v)) {
		nm_cni_err(e, NM_CNI_E_VERSION, "incompatible CNI version '%s'",
			   v);
		nm_cni_err_details(
			e,
			"nodemesh-cni supports 0.3.0, 0.3.1, 0.4.0 and 1.0.0");
		return -EINVAL;
	}
	snprintf(conf->cni_version, sizeof(conf->cni_version), "%s", v);
	/* CHECK came with 0.4.0: older runtimes do not know it. */
	if (cmd == NM_CNI_CHECK && !strncmp(v, "0.3.", 4))
		return nm_cni_err(
			e, NM_CNI_E_VERSION,
			"CNI version %s does not have CHECK (0.4.0 and later)",
			v);
	return 0;
}

static int conf_names(json_object *root, struct nm_cni_conf *conf,
		      struct nm_cni_error *e)
{
	json_object *o;
	int ret;

	ret = field(root, "", "name", json_type_string, true, &o, e);
	if (ret)
		return ret;
	conf->name = json_object_get_string(o);
	if (!cni_ident(conf->name))
		return nm_cni_err(
			e, NM_CNI_E_CONFIG,
			"invalid network configuration: bad network name '%s': it starts with a letter or digit, followed by letters, digits, '_', '.' or '-'",
			conf->name);
	ret = field(root, "", "type", json_type_string, true, &o, e);
	if (ret)
		return ret;
	if (!*json_object_get_string(o))
		return nm_cni_err(e, NM_CNI_E_CONFIG,
				  "invalid network configuration: empty type");
	ret = field(root, "", "agentSocket", json_type_string, false, &o, e);
	if (ret)
		return ret;
	conf->agent_socket = o ? json_object_get_string(o) :
				 NM_CNI_DEFAULT_SOCKET;
	if (conf->agent_socket[0] != '/' ||
	    strlen(conf->agent_socket) >=
		    sizeof(((struct sockaddr_un *)0)->sun_path))
		return nm_cni_err(
			e, NM_CNI_E_CONFIG,
			"invalid network configuration: bad agentSocket '%s': an absolute path of at most 107 bytes",
			conf->agent_socket);
	return 0;
}

static int conf_labels(json_object *root, struct nm_cni_conf *conf,
		       struct nm_cni_error *e)
{
	json_object *o, *rc;
	int ret;

	ret = field(root, "", "labels", json_type_object, false, &o, e);
	if (ret)
		return ret;
	if (o) {
		ret = labels_from_json(o, "labels", &conf->labels, e);
		if (ret)
			return ret;
	}
	ret = field(root, "", "runtimeConfig", json_type_object, false, &rc, e);
	if (ret || !rc)
		return ret;
	ret = field(rc, "runtimeConfig.", "labels", json_type_object, false, &o,
		    e);
	if (ret || !o)
		return ret;
	return labels_from_json(o, "runtimeConfig.labels", &conf->labels, e);
}

int nm_cni_conf_parse(const char *buf, size_t len, enum nm_cni_cmd cmd,
		      struct nm_cni_conf *conf, struct nm_cni_error *e)
{
	char why[256];
	int ret;

	memset(conf, 0, sizeof(*conf));
	if (len > NM_CNI_CONF_MAX)
		return nm_cni_err(
			e, NM_CNI_E_DECODE,
			"failed to decode the network configuration: %zu bytes exceed the limit of %d",
			len, NM_CNI_CONF_MAX);
	conf->root = parse_json(buf, len, why, sizeof(why));
	if (!conf->root)
		return nm_cni_err(
			e, NM_CNI_E_DECODE,
			"failed to decode the network configuration: %s", why);
	ret = conf_version(conf->root, cmd, conf, e);
	if (ret)
		goto err;
	ret = conf_names(conf->root, conf, e);
	if (ret)
		goto err;
	ret = conf_labels(conf->root, conf, e);
	if (ret)
		goto err;
	/* DEL cleans up with or without it: a bad one must not stop that. */
	if (cmd == NM_CNI_DEL)
		return 0;
	ret = field(conf->root, "", "prevResult", json_type_object, true,
		    &conf->prev, e);
	if (ret) {
		if (!json_object_object_get_ex(conf->root, "prevResult", NULL))
			nm_cni_err_details(
				e,
				"nodemesh-cni is a chained plugin: list it after a plugin that creates the pod's veth, such as ptp");
		goto err;
	}
	return 0;
err:
	nm_labels_free(&conf->labels);
	json_object_put(conf->root);
	conf->root = NULL;
	conf->prev = NULL;
	conf->name = NULL;
	conf->agent_socket = NULL;
	return ret;
}

void nm_cni_conf_free(struct nm_cni_conf *conf)
{
	nm_labels_free(&conf->labels);
	json_object_put(conf->root);
	memset(conf, 0, sizeof(*conf));
}

static int prev_err(struct nm_cni_error *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int prev_err(struct nm_cni_error *e, const char *fmt, ...)
{
	char why[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return nm_cni_err(e, NM_CNI_E_CONFIG, "invalid prevResult: %s", why);
}

static bool mac_ok(const char *s)
{
	int i;

	if (strlen(s) != 17)
		return false;
	for (i = 0; i < 17; i++) {
		if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return true;
}

/* Interface @i of prevResult: its name and, if set, sandbox and mac. */
static int prev_iface(json_object *ifs, size_t i, const char **name,
		      const char **sandbox, const char **mac,
		      struct nm_cni_error *e)
{
	json_object *o = json_object_array_get_idx(ifs, i), *v;
	char where[48];
	int ret;

	if (!json_object_is_type(o, json_type_object))
		return prev_err(e, "interfaces[%zu] must be an object, not %s",
				i, jtype_name(o));
	snprintf(where, sizeof(where), "prevResult.interfaces[%zu].", i);
	ret = field(o, where, "name", json_type_string, true, &v, e);
	if (ret)
		return ret;
	*name = json_object_get_string(v);
	ret = field(o, where, "sandbox", json_type_string, false, &v, e);
	if (ret)
		return ret;
	*sandbox = v ? json_object_get_string(v) : "";
	ret = field(o, where, "mac", json_type_string, false, &v, e);
	if (ret)
		return ret;
	*mac = v ? json_object_get_string(v) : "";
	return 0;
}

/*
 * Find the container interface and its host veth. Plugins list the host
 * end of a pair right before the container end (ptp: veth, eth0; bridge:
 * cni0, veth, eth0), so with several host-side interfaces the nearest one
 * before the container's is its peer.
 */
static int prev_ifaces(json_object *prev, const char *ifname,
		       struct nm_cni_prev *out, size_t *ct_idx,
		       struct nm_cni_error *e)
{
	const char *name = "", *sandbox = "", *mac = "", *ct_mac = "";
	size_t n, i, ct = SIZE_MAX, host = SIZE_MAX;
	json_object *ifs;
	int ret;

	ret = field(prev, "prevResult.", "interfaces", json_type_array, true,
		    &ifs, e);
	if (ret)
		return ret;
	n = json_object_array_length(ifs);
	for (i = 0; i < n; i++) {
		ret = prev_iface(ifs, i, &name, &sandbox, &mac, e);
		if (ret)
			return ret;
		if (*sandbox && ct == SIZE_MAX && !strcmp(name, ifname)) {
			ct = i;
			ct_mac = mac;
		} else if (!*sandbox && (ct == SIZE_MAX || host == SIZE_MAX)) {
			host = i;
			if (strlen(name) >= IF_NAMESIZE || !*name)
				return prev_err(
					e,
					"bad host interface name '%s' in interfaces[%zu]",
					name, i);
			strcpy(out->host_ifname, name);
		}
	}
	if (ct == SIZE_MAX)
		return prev_err(e,
				"no interface %s with a sandbox in interfaces",
				ifname);
	if (host == SIZE_MAX)
		return prev_err(
			e,
			"no host-side interface (one without sandbox) for the veth of %s",
			ifname);
	if (*ct_mac && !mac_ok(ct_mac))
		return prev_err(e, "bad mac '%s' of %s in interfaces[%zu]",
				ct_mac, ifname, ct);
	snprintf(out->ifname, sizeof(out->ifname), "%s", ifname);
	snprintf(out->mac, sizeof(out->mac), "%s", ct_mac);
	*ct_idx = ct;
	return 0;
}

/* "10.1.2.3/24" -> "10.1.2.3"; 1 when @s is not IPv4, -EINVAL if bad. */
static int prev_ipv4(const char *s, char *ip, size_t ip_len)
{
	const char *slash = strchr(s, '/'), *p;
	char buf[INET_ADDRSTRLEN];
	__be32 addr;
	size_t n;

	if (strchr(s, ':'))
		return 1;
	if (!slash || !slash[1] || strlen(slash + 1) > 2)
		return -EINVAL;
	for (p = slash + 1; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return -EINVAL;
	}
	if (atoi(slash + 1) > 32)
		return -EINVAL;
	n = (size_t)(slash - s);
	if (n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (nm_parse_ipv4(buf, &addr))
		return -EINVAL;
	snprintf(ip, ip_len, "%s", buf);
	return 0;
}

int nm_cni_prev_parse(json_object *prev, const char *ifname,
		      struct nm_cni_prev *out, struct nm_cni_error *e)
{
	json_object *ips, *o, *v;
	size_t ct = 0, n, i;
	char where[40];
	int ret;

	memset(out, 0, sizeof(*out));
	ret = prev_ifaces(prev, ifname, out, &ct, e);
	if (ret)
		return ret;
	ret = field(prev, "prevResult.", "ips", json_type_array, true, &ips, e);
	if (ret)
		return ret;
	n = json_object_array_length(ips);
	for (i = 0; i < n; i++) {
		o = json_object_array_get_idx(ips, i);
		if (!json_object_is_type(o, json_type_object))
			return prev_err(e, "ips[%zu] must be an object, not %s",
					i, jtype_name(o));
		snprintf(where, sizeof(where), "prevResult.ips[%zu].", i);
		ret = field(o, where, "interface", json_type_int, false, &v, e);
		if (ret)
			return ret;
		if (!v || json_object_get_int64(v) != (int64_t)ct)
			continue;
		ret = field(o, where, "address", json_type_string, true, &v, e);
		if (ret)
			return ret;
		ret = prev_ipv4(json_object_get_string(v), out->ip,
				sizeof(out->ip));
		if (ret < 0)
			return prev_err(
				e,
				"bad address '%s' in ips[%zu]: expected IPv4/PREFIX",
				json_object_get_string(v), i);
		if (ret == 0)
			return 0;
	}
	return prev_err(e, "no IPv4 address in ips for %s (interfaces[%zu])",
			ifname, ct);
}

int nm_cni_labels_merge(const struct nm_labels *conf,
			const struct nm_cni_args *args, struct nm_labels *out,
			struct nm_cni_error *e)
{
	struct nm_labels l = {}, extra = {};
	char why[256], *mapped = NULL, *c;
	size_t i;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = nm_labels_copy(&l, conf);
	if (ret)
		return nomem(e, "the label set");
	if (args->labels) {
		/*
		 * "k1:v1,k2:v2": every plugin of a chain gets the same
		 * CNI_ARGS, and the Go plugins refuse a value holding '='.
		 * ':' is in no label key or value, so it maps back cleanly.
		 */
		if (strchr(args->labels, '=')) {
			ret = nm_cni_err(
				e, NM_CNI_E_ENV,
				"bad NODEMESH_LABELS '%s' in CNI_ARGS: write k1:v1,k2:v2 ('=' breaks the other plugins of the chain)",
				args->labels);
			goto out;
		}
		mapped = strdup(args->labels);
		if (!mapped) {
			ret = nomem(e, "the label set");
			goto out;
		}
		for (c = mapped; *c; c++)
			if (*c == ':')
				*c = '=';
		ret = nm_labels_parse(mapped, &extra, why, sizeof(why));
		if (ret == -ENOMEM) {
			ret = nomem(e, "the label set");
			goto out;
		}
		if (ret) {
			ret = nm_cni_err(
				e, NM_CNI_E_ENV,
				"bad NODEMESH_LABELS '%s' in CNI_ARGS: %s",
				args->labels, why);
			goto out;
		}
	}
	for (i = 0; i < extra.n; i++) {
		ret = check_label("CNI_ARGS NODEMESH_LABELS", extra.v[i].key,
				  extra.v[i].value, NM_CNI_E_ENV, e);
		if (ret)
			goto out;
		ret = nm_labels_set(&l, extra.v[i].key, extra.v[i].value);
		if (ret) {
			ret = nomem(e, "the label set");
			goto out;
		}
	}
	*out = l;
	memset(&l, 0, sizeof(l));
out:
	free(mapped);
	nm_labels_free(&extra);
	nm_labels_free(&l);
	return ret;
}

/* A DNS label from the container id: lower case, '-' for the rest. */
static void name_from_id(const char *id, char *buf, size_t len)
{
	size_t n = 0,
	       max = len - 1 < NM_DNS_LABEL_MAX ? len - 1 : NM_DNS_LABEL_MAX;

	for (; *id && n < max; id++)
		buf[n++] = isalnum((unsigned char)*id) ?
				   (char)tolower((unsigned char)*id) :
				   '-';
	while (n && buf[n - 1] == '-')
		n--;
	buf[n] = '\0';
}

int nm_cni_pod_ident(const struct nm_cni_args *args, const char *container_id,
		     char *ns, size_t ns_len, char *name, size_t name_len,
		     struct nm_cni_error *e)
{
	const char *v = args->pod_namespace ? args->pod_namespace : "default";

	if (!nm_dns_label_ok(v))
		return nm_cni_err(
			e, NM_CNI_E_ENV,
			"bad K8S_POD_NAMESPACE '%s' in CNI_ARGS: not a DNS label (a-z, 0-9, '-', at most 63)",
			v);
	if ((size_t)snprintf(ns, ns_len, "%s", v) >= ns_len)
		return nm_cni_err(
			e, NM_CNI_E_ENV,
			"bad K8S_POD_NAMESPACE '%s' in CNI_ARGS: too long", v);
	if (!args->pod_name) {
		name_from_id(container_id, name, name_len);
		return 0;
	}
	v = args->pod_name;
	if (!nm_dns_subdomain_ok(v))
		return nm_cni_err(
			e, NM_CNI_E_ENV,
			"bad K8S_POD_NAME '%s' in CNI_ARGS: not a DNS subdomain (a-z, 0-9, '-', '.', at most 253)",
			v);
	if ((size_t)snprintf(name, name_len, "%s", v) >= name_len)
		return nm_cni_err(e, NM_CNI_E_ENV,
				  "bad K8S_POD_NAME '%s' in CNI_ARGS: too long",
				  v);
	return 0;
}

/*
 * Add @v as @key to @o, which then owns it; false when out of memory (@v
 * NULL: its allocation failed), and @v is dropped.
 */
static bool add_obj(json_object *o, const char *key, json_object *v)
{
	if (!v)
		return false;
	if (json_object_object_add(o, key, v)) {
		json_object_put(v);
		return false;
	}
	return true;
}

/* Add string @val as @key to @o; false when out of memory. */
static bool add_str(json_object *o, const char *key, const char *val)
{
	return add_obj(o, key, json_object_new_string(val));
}

static bool add_int(json_object *o, const char *key, int val)
{
	return add_obj(o, key, json_object_new_int(val));
}

/* Serialise @o into a malloc'd string and drop @o. */
static char *to_string(json_object *o)
{
	const char *s = o ? json_object_to_json_string_ext(o, NM_JSON_OUT) :
			    NULL;
	char *out = s ? strdup(s) : NULL;

	json_object_put(o);
	return out;
}

char *nm_cni_error_json(const char *version, const struct nm_cni_error *e)
{
	json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	if (!add_str(o, "cniVersion", version) ||
	    !add_int(o, "code", e->code) || !add_str(o, "msg", e->msg) ||
	    (e->details[0] && !add_str(o, "details", e->details))) {
		json_object_put(o);
		return NULL;
	}
	return to_string(o);
}

char *nm_cni_version_json(void)
{
	json_object *o = json_object_new_object(), *a, *s;
	size_t i;

	if (!o)
		return NULL;
	a = json_object_new_array();
	if (!a || !add_str(o, "cniVersion", NM_CNI_SPEC_VERSION) ||
	    json_object_object_add(o, "supportedVersions", a))
		goto err;
	for (i = 0; i < ARRAY_LEN(supported_versions); i++) {
		s = json_object_new_string(supported_versions[i]);
		if (!s || json_object_array_add(a, s)) {
			json_object_put(s);
			goto err_obj;
		}
	}
	return to_string(o);
err:
	json_object_put(a);
err_obj:
	json_object_put(o);
	return NULL;
}

char *nm_cni_result_json(struct nm_cni_conf *conf)
{
	if (!conf->prev ||
	    !add_str(conf->prev, "cniVersion", conf->cni_version))
		return NULL;
	/* to_string drops a reference: keep the one @root holds. */
	return to_string(json_object_get(conf->prev));
}

char *nm_cni_ep_request_json(const struct nm_cni_ep_req *r)
{
	json_object *o = json_object_new_object(), *l;
	size_t i;

	if (!o)
		return NULL;
	l = json_object_new_object();
	if (!add_obj(o, "labels", l))
		goto err;
	for (i = 0; i < r->labels->n; i++) {
		if (!add_str(l, r->labels->v[i].key, r->labels->v[i].value))
			goto err;
	}
	if (!add_str(o, "container_id", r->container_id) ||
	    !add_str(o, "ifname", r->ifname) ||
	    !add_str(o, "netns", r->netns ? r->netns : "") ||
	    !add_str(o, "namespace", r->pod_namespace) ||
	    (r->pod_name[0] && !add_str(o, "name", r->pod_name)) ||
	    !add_str(o, "ip", r->prev->ip) ||
	    (r->prev->mac[0] && !add_str(o, "mac", r->prev->mac)) ||
	    !add_str(o, "host_ifname", r->prev->host_ifname))
		goto err;
	return to_string(o);
err:
	json_object_put(o);
	return NULL;
}

int nm_cni_ep_parse(const char *body, size_t len, struct nm_cni_ep *ep,
		    char *why, size_t why_len)
{
	json_object *root, *v;
	__be32 addr;
	int64_t mtu;
	int ret = -EBADMSG;

	memset(ep, 0, sizeof(*ep));
	root = parse_json(body, len, why, why_len);
	if (!root)
		return -EBADMSG;
	if (!json_object_object_get_ex(root, "ip", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    nm_parse_ipv4(json_object_get_string(v), &addr)) {
		snprintf(why, why_len, "no IPv4 address in field 'ip'");
		goto out;
	}
	snprintf(ep->ip, sizeof(ep->ip), "%s", json_object_get_string(v));
	if (json_object_object_get_ex(root, "mtu", &v)) {
		mtu = json_object_is_type(v, json_type_int) ?
			      json_object_get_int64(v) :
			      0;
		/* IPv4 needs 68; 65535 is the largest an IP packet gets. */
		if (mtu < 68 || mtu > 65535) {
			snprintf(why, why_len,
				 "field 'mtu' must be an integer in 68..65535");
			goto out;
		}
		ep->mtu = (unsigned int)mtu;
	}
	ret = 0;
out:
	json_object_put(root);
	return ret;
}

void nm_cni_agent_reason(const char *body, size_t len, char *buf,
			 size_t buf_len)
{
	char why[128];
	json_object *root, *v;
	size_t n = len;

	root = len ? parse_json(body, len, why, sizeof(why)) : NULL;
	if (root && json_object_object_get_ex(root, "error", &v) &&
	    json_object_is_type(v, json_type_string)) {
		snprintf(buf, buf_len, "%s", json_object_get_string(v));
		json_object_put(root);
		return;
	}
	json_object_put(root);
	while (n && isspace((unsigned char)body[n - 1]))
		n--;
	if (!n) {
		snprintf(buf, buf_len, "no reason given");
		return;
	}
	snprintf(buf, buf_len, "%.*s", (int)(n < 512 ? n : 512), body);
}

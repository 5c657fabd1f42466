// SPDX-License-Identifier: GPL-2.0
/* Label sets: Kubernetes syntax checks and a sorted, unique key array. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/labels.h"

#define NM_LABEL_NAME_MAX 63
#define NM_LABEL_PREFIX_MAX 253

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9');
}

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/*
 * The name part of a key, and every non-empty value: alphanumeric at both
 * ends, '-', '_' and '.' allowed inside. Returns a reason or NULL.
 */
static const char *check_name(const char *s, size_t len)
{
	size_t i;

	if (len > NM_LABEL_NAME_MAX)
		return "longer than 63 characters";
	if (!is_alnum(s[0]) || !is_alnum(s[len - 1]))
		return "must begin and end with a letter or digit";
	for (i = 1; i + 1 < len; i++) {
		if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' &&
		    s[i] != '.')
			return "only letters, digits, '-', '_' and '.' are allowed";
	}
	return NULL;
}

/* A DNS-1123 subdomain: dot-separated lowercase labels, '-' inside. */
static const char *check_prefix(const char *s, size_t len)
{
	size_t i, start = 0;

	if (!len)
		return "empty prefix before '/'";
	if (len > NM_LABEL_PREFIX_MAX)
		return "prefix longer than 253 characters";
	for (i = 0; i <= len; i++) {
		if (i < len && s[i] != '.') {
			if (!is_lower_alnum(s[i]) && s[i] != '-')
				return "prefix must be a DNS subdomain (lowercase letters, digits, '-' and '.')";
			continue;
		}
		/* One DNS label: s[start..i). */
		if (i == start)
			return "prefix has an empty DNS label";
		if (i - start > 63)
			return "prefix has a DNS label longer than 63 characters";
		if (s[start] == '-' || s[i - 1] == '-')
			return "prefix DNS labels must begin and end with a letter or digit";
		start = i + 1;
	}
	return NULL;
}

int nm_label_key_check(const char *key, char *err, size_t errlen)
{
	const char *slash = strchr(key, '/');
	const char *name = key, *why;
	size_t len = strlen(key);

	if (!len) {
		why = "empty key";
		goto bad;
	}
	if (len > NM_LABEL_KEY_MAX) {
		why = "key longer than 317 characters";
		goto bad;
	}
	if (slash) {
		why = check_prefix(key, (size_t)(slash - key));
		if (why)
			goto bad;
		name = slash + 1;
	}
	if (!*name) {
		why = "empty name after the prefix";
		goto bad;
	}
	why = check_name(name, strlen(name));
	if (why)
		goto bad;
	return 0;
bad:
	snprintf(err, errlen, "invalid label key '%.*s': %s",
		 NM_LABEL_KEY_MAX + 1, key, why);
	return -EINVAL;
}

int nm_label_value_check(const char *value, char *err, size_t errlen)
{
	const char *why;

	if (!*value)
		return 0;
	why = check_name(value, strlen(value));
	if (!why)
		return 0;
	snprintf(err, errlen, "invalid label value '%.*s': %s",
		 NM_LABEL_VALUE_MAX + 1, value, why);
	return -EINVAL;
}

/* Index of @key, or of where it would go (with *found false). */
static size_t labels_find(const struct nm_labels *l, const char *key,
			  bool *found)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->v[mid].key, key);

		if (!c) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

int nm_labels_set(struct nm_labels *l, const char *key, const char *value)
{
	struct nm_label *v;
	char *k = NULL, *val;
	bool found;
	size_t i;

	val = strdup(value);
	if (!val)
		return -ENOMEM;
	i = labels_find(l, key, &found);
	if (found) {
		free(l->v[i].value);
		l->v[i].value = val;
		return 0;
	}
	k = strdup(key);
	if (!k)
		goto err_val;
	v = realloc(l->v, (l->n + 1) * sizeof(*v));
	if (!v)
		goto err_key;
	memmove(&v[i + 1], &v[i], (l->n - i) * sizeof(*v));
	v[i].key = k;
	v[i].value = val;
	l->v = v;
	l->n++;
	return 0;

err_key:
	free(k);
err_val:
	free(val);
	return -ENOMEM;
}

const char *nm_labels_get(const struct nm_labels *l, const char *key)
{
	bool found;
	size_t i = labels_find(l, key, &found);

	return found ? l->v[i].value : NULL;
}

int nm_labels_parse(const char *s, struct nm_labels *out, char *err,
		    size_t errlen)
{
	struct nm_labels l = { 0 };
	char *copy, *item, *save = NULL, *eq;
	int ret = 0;

	/* "" is the empty set; "a=1,,b=2" or a trailing ',' is a typo. */
	if (!*s) {
		*out = l;
		return 0;
	}
	copy = strdup(s);
	if (!copy)
		return -ENOMEM;
	if (copy[strlen(copy) - 1] == ',' || copy[0] == ',' ||
	    strstr(copy, ",,")) {
		snprintf(err, errlen, "empty label in '%s'", s);
		ret = -EINVAL;
		goto out;
	}
	for (item = strtok_r(copy, ",", &save); item;
	     item = strtok_r(NULL, ",", &save)) {
		eq = strchr(item, '=');
		if (!eq) {
			snprintf(err, errlen, "missing '=' in label '%s'",
				 item);
			ret = -EINVAL;
			goto out;
		}
		*eq = '\0';
		ret = nm_label_key_check(item, err, errlen);
		if (ret)
			goto out;
		ret = nm_label_value_check(eq + 1, err, errlen);
		if (ret)
			goto out;
		if (nm_labels_get(&l, item)) {
			snprintf(err, errlen, "duplicate label key '%s'", item);
			ret = -EINVAL;
			goto out;
		}
		ret = nm_labels_set(&l, item, eq + 1);
		if (ret) {
			snprintf(err, errlen, "failed to store label '%s': %s",
				 item, strerror(-ret));
			goto out;
		}
	}
	*out = l;
	l.v = NULL;
	l.n = 0;
out:
	nm_labels_free(&l);
	free(copy);
	return ret;
}

char *nm_labels_str(const struct nm_labels *l)
{
	size_t len = 1, i;
	char *s, *p;

	for (i = 0; i < l->n; i++)
		len += strlen(l->v[i].key) + strlen(l->v[i].value) + 2;
	s = malloc(len);
	if (!s)
		return NULL;
	p = s;
	*p = '\0';
	for (i = 0; i < l->n; i++)
		p += sprintf(p, "%s%s=%s", i ? "," : "", l->v[i].key,
			     l->v[i].value);
	return s;
}

bool nm_labels_equal(const struct nm_labels *a, const struct nm_labels *b)
{
	size_t i;

	if (a->n != b->n)
		return false;
	for (i = 0; i < a->n; i++) {
		if (strcmp(a->v[i].key, b->v[i].key) ||
		    strcmp(a->v[i].value, b->v[i].value))
			return false;
	}
	return true;
}

int nm_labels_copy(struct nm_labels *dst, const struct nm_labels *src)
{
	struct nm_labels l = { 0 };
	size_t i;

	if (!src->n) {
		*dst = l;
		return 0;
	}
	l.v = calloc(src->n, sizeof(*l.v));
	if (!l.v)
		return -ENOMEM;
	for (i = 0; i < src->n; i++) {
		l.v[i].key = strdup(src->v[i].key);
		l.v[i].value = strdup(src->v[i].value);
		l.n++;
		if (!l.v[i].key || !l.v[i].value)
			goto err;
	}
	*dst = l;
	return 0;
err:
	nm_labels_free(&l);
	return -ENOMEM;
}

void nm_labels_free(struct nm_labels *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].value);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static bool dns_label_n(const char *s, size_t len)
{
	size_t i;

	if (!len || len > NM_DNS_LABEL_MAX || s[0] == '-' || s[len - 1] == '-')
		return false;
	for (i = 0; i < len; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return false;
	}
	return true;
}

bool nm_dns_label_ok(const char *s)
{
	return dns_label_n(s, strlen(s));
}

bool nm_dns_subdomain_ok(const char *s)
{
	const char *dot;

	if (strlen(s) > NM_DNS_SUBDOMAIN_MAX)
		return false;
	while ((dot = strchr(s, '.'))) {
		if (!dns_label_n(s, (size_t)(dot - s)))
			return false;
		s = dot + 1;
	}
	return dns_label_n(s, strlen(s));
}

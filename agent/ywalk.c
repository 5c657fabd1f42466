// SPDX-License-Identifier: GPL-2.0
/* Strict YAML walking for config files: typed scalars, known fields only. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "agent/ywalk.h"

static const char *const type_names[] = {
	[NM_Y_NULL] = "null",	   [NM_Y_BOOL] = "a boolean",
	[NM_Y_INT] = "an integer", [NM_Y_FLOAT] = "a float",
	[NM_Y_STR] = "a string",   [NM_Y_MAP] = "a mapping",
	[NM_Y_SEQ] = "a sequence",
};

static const char *const bare_type_names[] = {
	[NM_Y_NULL] = "null",	 [NM_Y_BOOL] = "boolean",
	[NM_Y_INT] = "integer",	 [NM_Y_FLOAT] = "float",
	[NM_Y_STR] = "string",	 [NM_Y_MAP] = "mapping",
	[NM_Y_SEQ] = "sequence",
};

static const char *scalar(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static bool one_of(const char *s, const char *const *list)
{
	for (; *list; list++) {
		if (!strcmp(s, *list))
			return true;
	}
	return false;
}

static bool only(const char *s, const char *set)
{
	if (!*s)
		return false;
	return strspn(s, set) == strlen(s);
}

static bool looks_int(const char *s)
{
	if (*s == '-' || *s == '+')
		s++;
	if (!strncmp(s, "0x", 2))
		return only(s + 2, "0123456789abcdefABCDEF");
	if (!strncmp(s, "0o", 2))
		return only(s + 2, "01234567");
	return only(s, "0123456789");
}

/* [-+]? (d+ (. d*)? | . d+) ([eE] [-+]? d+)?, or .inf / .nan. */
static bool looks_float(const char *s)
{
	static const char *const special[] = { ".inf", ".Inf", ".INF", ".nan",
					       ".NaN", ".NAN", NULL };
	size_t digits = 0;

	if (*s == '-' || *s == '+')
		s++;
	if (one_of(s, special))
		return true;
	for (; *s >= '0' && *s <= '9'; s++)
		digits++;
	if (*s == '.') {
		for (s++; *s >= '0' && *s <= '9'; s++)
			digits++;
	}
	if (!digits)
		return false;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '-' || *s == '+')
			s++;
		return only(s, "0123456789");
	}
	return !*s;
}

enum nm_ytype nm_yw_type(const yaml_node_t *n)
{
	static const char *const nulls[] = { "",     "~",    "null",
					     "Null", "NULL", NULL };
	/* YAML 1.2: yes/no/on/off are strings. */
	static const char *const bools[] = { "true",  "True",  "TRUE", "false",
					     "False", "FALSE", NULL };
	const char *tag = (const char *)n->tag;
	const char *v;

	if (n->type == YAML_MAPPING_NODE)
		return NM_Y_MAP;
	if (n->type == YAML_SEQUENCE_NODE)
		return NM_Y_SEQ;
	if (tag && strcmp(tag, YAML_DEFAULT_SCALAR_TAG)) {
		if (!strcmp(tag, YAML_NULL_TAG))
			return NM_Y_NULL;
		if (!strcmp(tag, YAML_BOOL_TAG))
			return NM_Y_BOOL;
		if (!strcmp(tag, YAML_INT_TAG))
			return NM_Y_INT;
		if (!strcmp(tag, YAML_FLOAT_TAG))
			return NM_Y_FLOAT;
		return NM_Y_STR;
	}
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return NM_Y_STR;
	v = scalar(n);
	if (one_of(v, nulls))
		return NM_Y_NULL;
	if (one_of(v, bools))
		return NM_Y_BOOL;
	if (looks_int(v))
		return NM_Y_INT;
	if (looks_float(v))
		return NM_Y_FLOAT;
	return NM_Y_STR;
}

unsigned int nm_yw_line(const yaml_node_t *n)
{
	return n ? (unsigned int)n->start_mark.line + 1 : 0;
}

const char *nm_yw_type_name(const struct nm_yw *w, enum nm_ytype t)
{
	return w->bare_types ? bare_type_names[t] : type_names[t];
}

int nm_yw_fail(struct nm_yw *w, const yaml_node_t *n, const char *fmt, ...)
{
	va_list ap;

	w->err->line = nm_yw_line(n);
	va_start(ap, fmt);
	vsnprintf(w->err->reason, sizeof(w->err->reason), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int nm_yw_oom(struct nm_yw *w, const yaml_node_t *n)
{
	if (w->what)
		nm_yw_fail(w, n, "failed to allocate memory for %s: %s",
			   w->what, strerror(ENOMEM));
	else
		nm_yw_fail(w, n, "failed to allocate memory: %s",
			   strerror(ENOMEM));
	return -ENOMEM;
}

int nm_yw_expect(struct nm_yw *w, const yaml_node_t *n, enum nm_ytype want,
		 const char *path)
{
	enum nm_ytype got = nm_yw_type(n);

	if (got == want)
		return 0;
	if (w->bare_types)
		return nm_yw_fail(
			w, n, "%s must be a %s, got %s%s", path,
			bare_type_names[want], bare_type_names[got],
			want == NM_Y_STR && got <= NM_Y_FLOAT ? " (quote it)" :
								"");
	return nm_yw_fail(
		w, n, "%s must be %s, got %s%s", path, type_names[want],
		type_names[got],
		want == NM_Y_STR && got <= NM_Y_FLOAT ? " (quote it)" : "");
}

int nm_yw_str(struct nm_yw *w, const yaml_node_t *n, const char *path,
	      const char **out)
{
	int ret = nm_yw_expect(w, n, NM_Y_STR, path);

	if (ret)
		return ret;
	if (strlen(scalar(n)) != n->data.scalar.length)
		return nm_yw_fail(w, n, "%s must not contain a NUL byte", path);
	*out = scalar(n);
	return 0;
}

int nm_yw_dup_str(struct nm_yw *w, const yaml_node_t *n, const char *path,
		  char **out)
{
	const char *s;
	int ret = nm_yw_str(w, n, path, &s);

	if (ret)
		return ret;
	*out = strdup(s);
	return *out ? 0 : nm_yw_oom(w, n);
}

int nm_yw_uint(struct nm_yw *w, const yaml_node_t *n, const char *path,
	       __u64 min, __u64 max, __u64 *out)
{
	const char *s;
	__u64 v = 0;
	int ret;

	ret = nm_yw_expect(w, n, NM_Y_INT, path);
	if (ret)
		return ret;
	s = scalar(n);
	if (*s == '+')
		s++;
	/* Hex and octal are legal YAML but a likely typo for an id. */
	if (*s == '-' || !only(s, "0123456789"))
		return nm_yw_fail(
			w, n,
			"%s must be a decimal number %llu..%llu, got '%.32s'",
			path, (unsigned long long)min, (unsigned long long)max,
			scalar(n));
	for (; *s; s++) {
		__u64 d = (__u64)(*s - '0');

		if (v > (~0ULL - d) / 10)
			break; /* would overflow: out of range anyway */
		v = v * 10 + d;
	}
	if (*s || v < min || v > max)
		return nm_yw_fail(w, n, "%s must be %llu..%llu, got %.32s",
				  path, (unsigned long long)min,
				  (unsigned long long)max, scalar(n));
	*out = v;
	return 0;
}

size_t nm_yw_seq_len(const yaml_node_t *n)
{
	return (size_t)(n->data.sequence.items.top -
			n->data.sequence.items.start);
}

yaml_node_t *nm_yw_seq_item(struct nm_yw *w, const yaml_node_t *n, size_t i)
{
	return yaml_document_get_node(w->doc, n->data.sequence.items.start[i]);
}

int nm_yw_fields(struct nm_yw *w, const yaml_node_t *map, const char *path,
		 const char *const *names, size_t n_names, yaml_node_t **vals)
{
	return nm_yw_fields_keys(w, map, path, names, n_names, NULL, vals);
}

int nm_yw_fields_keys(struct nm_yw *w, const yaml_node_t *map,
		      const char *path, const char *const *names,
		      size_t n_names, yaml_node_t **keys, yaml_node_t **vals)
{
	const char *where = *path ? path : "the document";
	yaml_node_pair_t *p;
	size_t i;
	int ret;

	ret = nm_yw_expect(w, map, NM_Y_MAP, *path ? path : "the document");
	if (ret)
		return ret;
	for (i = 0; i < n_names; i++) {
		vals[i] = NULL;
		if (keys)
			keys[i] = NULL;
	}
	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(w->doc, p->key);
		const char *name;

		if (nm_yw_type(k) != NM_Y_STR)
			return nm_yw_fail(
				w, k,
				"field names in %s must be strings, got %s",
				where, nm_yw_type_name(w, nm_yw_type(k)));
		name = scalar(k);
		for (i = 0; i < n_names; i++) {
			if (!strcmp(names[i], name))
				break;
		}
		if (i == n_names)
			return nm_yw_fail(w, k, "unknown field '%.64s' in %s",
					  name, where);
		if (vals[i])
			return nm_yw_fail(w, k, "duplicate field '%s' in %s",
					  name, where);
		if (keys)
			keys[i] = k;
		vals[i] = yaml_document_get_node(w->doc, p->value);
	}
	return 0;
}

int nm_yw_need(struct nm_yw *w, const yaml_node_t *map, const yaml_node_t *v,
	       const char *name, const char *path)
{
	if (v)
		return 0;
	return nm_yw_fail(w, map, "missing required field '%s' in %s", name,
			  *path ? path : "the document");
}

int nm_yw_syntax_error(struct nm_yw *w, const yaml_parser_t *p,
		       const char *buf, size_t len)
{
	struct nm_error *err = w->err;
	size_t i, line = 1;

	if (p->error == YAML_MEMORY_ERROR)
		return nm_yw_oom(w, NULL);
	if (p->error == YAML_READER_ERROR) {
		/* Encoding errors carry a byte offset, not a mark. */
		for (i = 0; i < p->problem_offset && i < len; i++)
			line += buf[i] == '\n';
	} else {
		line = p->problem_mark.line + 1;
	}
	err->line = (unsigned int)line;
	if (w->syntax_context && p->context)
		snprintf(err->reason, sizeof(err->reason),
			 "YAML syntax error: %s (%s at line %zu)",
			 p->problem ? p->problem : "unknown problem",
			 p->context, p->context_mark.line + 1);
	else
		snprintf(err->reason, sizeof(err->reason),
			 "YAML syntax error: %s",
			 p->problem ? p->problem : "unknown problem");
	return -EINVAL;
}

int nm_yw_load(const char *buf, size_t len, const char *file,
	       yaml_document_t *doc, struct nm_error *err)
{
	struct nm_yw w = { .doc = doc, .err = err };
	yaml_parser_t parser;
	yaml_document_t next;
	yaml_node_t *root;
	int ret = 0;

	memset(err, 0, sizeof(*err));
	snprintf(err->file, sizeof(err->file), "%s", file ? file : "<input>");
	if (!yaml_parser_initialize(&parser)) {
		snprintf(err->reason, sizeof(err->reason),
			 "failed to allocate memory: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	/* On failure libyaml has already released the document. */
	if (!yaml_parser_load(&parser, doc)) {
		ret = nm_yw_syntax_error(&w, &parser, buf, len);
		goto out_parser;
	}
	root = yaml_document_get_root_node(doc);
	if (!root) {
		snprintf(err->reason, sizeof(err->reason),
			 "empty file: expected a mapping");
		ret = -EINVAL;
		goto out_doc;
	}
	if (root->type != YAML_MAPPING_NODE) {
		err->line = nm_yw_line(root);
		snprintf(err->reason, sizeof(err->reason),
			 "the document must be a mapping, got %s",
			 type_names[nm_yw_type(root)]);
		ret = -EINVAL;
		goto out_doc;
	}
	if (!yaml_parser_load(&parser, &next)) {
		ret = nm_yw_syntax_error(&w, &parser, buf, len);
		goto out_doc;
	}
	root = yaml_document_get_root_node(&next);
	if (root) {
		err->line = nm_yw_line(root);
		snprintf(err->reason, sizeof(err->reason),
			 "a second YAML document: one document per file");
		ret = -EINVAL;
	}
	yaml_document_delete(&next);
	if (ret)
		goto out_doc;
	yaml_parser_delete(&parser);
	return 0;
out_doc:
	yaml_document_delete(doc);
out_parser:
	yaml_parser_delete(&parser);
	return ret;
}

int nm_read_file(const char *path, size_t max, char **bufp, size_t *lenp,
		 struct nm_error *err)
{
	return nm_read_file_as(path, "file", max, bufp, lenp, err);
}

int nm_read_file_as(const char *path, const char *what, size_t max,
		    char **bufp, size_t *lenp, struct nm_error *err)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	ssize_t n;
	int fd, ret;

	memset(err, 0, sizeof(*err));
	snprintf(err->file, sizeof(err->file), "%s", path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err->reason, sizeof(err->reason),
			 "failed to open %s: %s", what, strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st)) {
		ret = -errno;
		snprintf(err->reason, sizeof(err->reason),
			 "failed to stat %s: %s", what, strerror(-ret));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
		ret = -EINVAL;
		snprintf(
			err->reason, sizeof(err->reason),
			"failed to read %s: not a regular file of at most %zu bytes",
			what, max);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		ret = -ENOMEM;
		snprintf(err->reason, sizeof(err->reason),
			 "failed to allocate a buffer for the %s: %s", what,
			 strerror(ENOMEM));
		goto out;
	}
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			snprintf(err->reason, sizeof(err->reason),
				 "failed to read %s: %s", what, strerror(-ret));
			goto out_buf;
		}
		if (!n)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	*bufp = buf;
	*lenp = got;
	close(fd);
	return 0;
out_buf:
	free(buf);
out:
	close(fd);
	return ret;
}

int nm_yw_load_each(struct nm_yw *w, const char *buf, size_t len,
		    int (*fn)(struct nm_yw *w, const yaml_node_t *root,
			      void *arg),
		    void *arg)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *root;
	int ret = 0;

	if (!yaml_parser_initialize(&parser))
		return nm_yw_oom(w, NULL);
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	for (;;) {
		/* On failure libyaml has already released the document. */
		if (!yaml_parser_load(&parser, &doc)) {
			ret = nm_yw_syntax_error(w, &parser, buf, len);
			break;
		}
		root = yaml_document_get_root_node(&doc);
		if (!root) {
			/* End of the stream. */
			yaml_document_delete(&doc);
			break;
		}
		w->doc = &doc;
		/* An explicit "---" with nothing after it is a null scalar. */
		if (root->type != YAML_SCALAR_NODE ||
		    nm_yw_type(root) != NM_Y_NULL)
			ret = fn(w, root, arg);
		yaml_document_delete(&doc);
		w->doc = NULL;
		if (ret)
			break;
	}
	yaml_parser_delete(&parser);
	return ret;
}

void nm_yw_pathf(char *buf, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, NM_YW_PATH_LEN, fmt, ap);
	va_end(ap);
}

void nm_yw_join(char *buf, const char *path, const char *field)
{
	if (*path)
		nm_yw_pathf(buf, "%s.%s", path, field);
	else
		nm_yw_pathf(buf, "%s", field);
}

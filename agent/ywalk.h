// SPDX-License-Identifier: GPL-2.0
/*
 * Strict walking of a libyaml document (pure but for nm_read_file): YAML
 * 1.2 core-schema typing of plain scalars, field matching that refuses
 * unknown and repeated keys, and every refusal as "file:line: reason" in a
 * struct nm_error. The house way of agent/policy.c, for config files.
 */
#ifndef NM_AGENT_YWALK_H
#define NM_AGENT_YWALK_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include <yaml.h>

#include "agent/policy.h" /* struct nm_error */

/* Field paths in messages ("etcd.endpoints[2]"); longer ones are cut. */
#define NM_YW_PATH_LEN 160

enum nm_ytype {
	NM_Y_NULL,
	NM_Y_BOOL,
	NM_Y_INT,
	NM_Y_FLOAT,
	NM_Y_STR,
	NM_Y_MAP,
	NM_Y_SEQ,
};

struct nm_yw {
	yaml_document_t *doc;
	struct nm_error *err; /* err->file already set */
	/*
	 * Wording; all zero is the config files' one. @what names the object
	 * in allocation failures ("failed to allocate memory for the policy"),
	 * @bare_types words types as "must be a string, got integer", and
	 * @syntax_context adds libyaml's context to syntax errors.
	 */
	const char *what;
	bool bare_types;
	bool syntax_context;
};

/* What a node is, as the core schema resolves it (quoted = string). */
enum nm_ytype nm_yw_type(const yaml_node_t *n);
unsigned int nm_yw_line(const yaml_node_t *n);
/* @t as messages name it ("an integer", or "integer" with bare_types). */
const char *nm_yw_type_name(const struct nm_yw *w, enum nm_ytype t);

/* Set err->line from @n and err->reason; returns -EINVAL. */
int nm_yw_fail(struct nm_yw *w, const yaml_node_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* An allocation failed at @n; returns -ENOMEM. */
int nm_yw_oom(struct nm_yw *w, const yaml_node_t *n);

int nm_yw_expect(struct nm_yw *w, const yaml_node_t *n, enum nm_ytype want,
		 const char *path);
/* A string scalar without NUL bytes; points into the document. */
int nm_yw_str(struct nm_yw *w, const yaml_node_t *n, const char *path,
	      const char **out);
int nm_yw_dup_str(struct nm_yw *w, const yaml_node_t *n, const char *path,
		  char **out);
/* A decimal integer scalar in @min..@max. */
int nm_yw_uint(struct nm_yw *w, const yaml_node_t *n, const char *path,
	       __u64 min, __u64 max, __u64 *out);

size_t nm_yw_seq_len(const yaml_node_t *n);
yaml_node_t *nm_yw_seq_item(struct nm_yw *w, const yaml_node_t *n, size_t i);

/*
 * Match the keys of mapping @map against @names: vals[i] is the value of
 * names[i], NULL when absent. Unknown and repeated keys are refused.
 */
int nm_yw_fields(struct nm_yw *w, const yaml_node_t *map, const char *path,
		 const char *const *names, size_t n_names, yaml_node_t **vals);
/* As nm_yw_fields, and keys[i] the key node of names[i] (NULL if absent). */
int nm_yw_fields_keys(struct nm_yw *w, const yaml_node_t *map,
		      const char *path, const char *const *names,
		      size_t n_names, yaml_node_t **keys, yaml_node_t **vals);
/* Refuse a missing required field @name of @map. */
int nm_yw_need(struct nm_yw *w, const yaml_node_t *map, const yaml_node_t *v,
	       const char *name, const char *path);

/*
 * Fill w->err from a failed yaml_parser_load() of @buf; returns -EINVAL, or
 * -ENOMEM when libyaml ran out of memory.
 */
int nm_yw_syntax_error(struct nm_yw *w, const yaml_parser_t *p,
		       const char *buf, size_t len);

/*
 * Load @buf as exactly one YAML document whose root is a mapping (more
 * documents, an empty input or another root are refused). On success the
 * caller owns @doc (yaml_document_delete). err->file is set to @file.
 */
int nm_yw_load(const char *buf, size_t len, const char *file,
	       yaml_document_t *doc, struct nm_error *err);

/*
 * Each document of the YAML stream @buf in turn: @fn gets its root (w->doc
 * set meanwhile); a document left empty by an explicit "---" is skipped.
 * Stops at a syntax error (w->err filled) or the first failing @fn.
 */
int nm_yw_load_each(struct nm_yw *w, const char *buf, size_t len,
		    int (*fn)(struct nm_yw *w, const yaml_node_t *root,
			      void *arg),
		    void *arg);

/* A field path for messages in NM_YW_PATH_LEN bytes; a long one is cut. */
void nm_yw_pathf(char *buf, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "@path.@field", or "@field" at the top (@path ""). */
void nm_yw_join(char *buf, const char *path, const char *field);

/* Read a regular file of at most @max bytes (NUL-terminated, malloc'd). */
int nm_read_file(const char *path, size_t max, char **buf, size_t *len,
		 struct nm_error *err);
/* As nm_read_file, naming the file @what in messages ("policy file"). */
int nm_read_file_as(const char *path, const char *what, size_t max,
		    char **buf, size_t *len, struct nm_error *err);

#endif /* NM_AGENT_YWALK_H */

// SPDX-License-Identifier: GPL-2.0
/* Label selectors with Kubernetes semantics: every expression must hold. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "agent/labels.h"
#include "agent/policy.h"

static bool value_in(const struct nm_sel_expr *e, const char *value)
{
	size_t i;

	for (i = 0; i < e->n_values; i++) {
		if (!strcmp(e->values[i], value))
			return true;
	}
	return false;
}

static bool expr_match(const struct nm_sel_expr *e,
		       const struct nm_labels *labels)
{
	const char *value = nm_labels_get(labels, e->key);

	switch (e->op) {
	case NM_SEL_IN:
		return value && value_in(e, value);
	case NM_SEL_NOT_IN:
		/* As Kubernetes: an absent key is "not in" any set. */
		return !value || !value_in(e, value);
	case NM_SEL_EXISTS:
		return value != NULL;
	case NM_SEL_DOES_NOT_EXIST:
		return value == NULL;
	}
	/* An operator the parser never produces selects nothing. */
	return false;
}

bool nm_selector_match(const struct nm_selector *s,
		       const struct nm_labels *labels)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		if (!expr_match(&s->exprs[i], labels))
			return false;
	}
	return true;
}

bool nm_selector_has_key(const struct nm_selector *s, const char *key)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		if (!strcmp(s->exprs[i].key, key))
			return true;
	}
	return false;
}

void nm_selector_free(struct nm_selector *s)
{
	size_t i, j;

	for (i = 0; i < s->n; i++) {
		for (j = 0; j < s->exprs[i].n_values; j++)
			free(s->exprs[i].values[j]);
		free(s->exprs[i].values);
		free(s->exprs[i].key);
	}
	free(s->exprs);
	s->exprs = NULL;
	s->n = 0;
}

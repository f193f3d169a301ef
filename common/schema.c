/*
 * schema: a JSON Schema validator for the subset OpenAI's strict structured
 * outputs accept, plus the numeric, string and array bounds around it. See
 * schema.h for the API.
 *
 * Supported: type (a name or an array of names; "integer" is any number
 * without a fractional part, 1.0 included), properties, required,
 * additionalProperties, enum, const, anyOf, allOf, $ref with $defs (local
 * references only), items, minItems, maxItems, minimum, maximum,
 * exclusiveMinimum, exclusiveMaximum, multipleOf, minLength, maxLength
 * (in code points), pattern, and the boolean schemas true and false.
 * Accepted and ignored: title, description, $comment, $schema, default,
 * examples, and $id at the root. Anything else is a compile error, so a
 * schema never silently means less than it says.
 *
 * DESIGN
 * ------
 *
 * Compile. schema_compile() turns the document into a graph of struct
 * schema_node, one per schema object or boolean, checking every keyword's
 * value as it goes. Numbers, counts and regular expressions are converted
 * once (PCRE2 in UTF mode, interpreted); the texts that messages
 * quote (bounds, enum lists, patterns, type lists) are rendered once. A
 * memo maps each document value to its node, so a value reached twice (its
 * own place and a $ref to it) becomes one node. Each $ref is queued while
 * the tree is walked, then resolved as a JSON pointer into the document
 * (percent-decoded, ~0 and ~1 unescaped) and stored as a direct pointer to
 * the target node, compiling the target first when nothing else has. So
 * recursive schemas are plain cycles in the graph, and validation never
 * looks anything up by name. A cycle that never moves into the instance
 * ({"$ref": "#"} at the root, or two $defs referring to each other through
 * allOf) would recurse forever and is refused at compile time.
 *
 * Validate. schema_validate() walks the graph and the instance together.
 * The instance location is a stack of path segments (keys or indexes)
 * turned into an RFC 6901 pointer only when an error is written. Errors go
 * one per line into the caller's buffer; a line that does not fit is
 * dropped whole and counted, and "... N more errors" closes the text (last
 * lines are given up to make room for it). A type mismatch ends the checks
 * of that schema for that value: the other keywords would only repeat it.
 * anyOf tries each branch in a quick mode that stops at the first error
 * and writes nothing; when none matches it reports one error, explained
 * with the errors of the branch that came closest (fewest errors).
 *
 * Memory and threads. The compiled schema owns a json_object reference to
 * the document and borrows from it (property names, enum and const values),
 * so the document must not be modified after compiling. Every node is also
 * listed in struct schema, which frees them all; the graph may be cyclic.
 * After compiling nothing is written: validation only reads the schema,
 * through json-c accessors that do not write either (never
 * json_object_to_json_string, which caches its output in the object), so
 * any number of threads may validate with one schema at once. Validation
 * allocates at most one PCRE2 match data per call, created at the first
 * pattern and freed on return. Every message is bounded: quoted values are
 * cut with "...", pointers too, and nesting depth is capped.
 */
#include "schema.h"
#include "jsonparse.h"
#include "schema_util.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <json-c/json.h>
#include <pcre2.h>

/* Schema objects nested inside each other, at compile time. */
#define SCHEMA_MAX_NESTING 256
/* Instance nesting followed by validation. */
#define SCHEMA_MAX_DEPTH 128
/* Validation steps nested inside each other ($ref, allOf... included). */
#define SCHEMA_MAX_CALLS 4096
/* A schema file larger than this is refused. */
#define SCHEMA_FILE_MAX (8u << 20)
/* JSON nesting accepted when reading a schema file. */
#define SCHEMA_JSON_DEPTH 256

/* Bytes of one error line, of its pointer, and of a message. */
#define LINE_MAX_BYTES 1024
#define POINTER_MAX 320
#define MESSAGE_MAX 640
/* Code points of one pointer token or one quoted schema string. */
#define TOKEN_MAX 64
/* Bytes of a rendered enum list, of an anyOf explanation. */
#define LIST_MAX 200
#define CLOSEST_MAX 400
/* anyOf explanations inside anyOf explanations. */
#define CLOSEST_NESTING 2
/* Added to the errors of an anyOf branch made for another type. */
#define CLOSEST_TYPE_PENALTY 100000u

enum schema_type {
	TYPE_NULL = 1u << 0,
	TYPE_BOOLEAN = 1u << 1,
	TYPE_OBJECT = 1u << 2,
	TYPE_ARRAY = 1u << 3,
	TYPE_NUMBER = 1u << 4,
	TYPE_STRING = 1u << 5,
	TYPE_INTEGER = 1u << 6,
};

static const struct {
	const char *name;
	unsigned bit;
} type_table[] = {
	{ "null", TYPE_NULL },	   { "boolean", TYPE_BOOLEAN },
	{ "object", TYPE_OBJECT }, { "array", TYPE_ARRAY },
	{ "number", TYPE_NUMBER }, { "string", TYPE_STRING },
	{ "integer", TYPE_INTEGER },
};

#define N_TYPES (sizeof(type_table) / sizeof(type_table[0]))

/** A numeric bound with the text messages quote. */
struct num_bound {
	bool set;		/**< the keyword is present */
	struct schema_num v;	/**< its value */
	char text[40];		/**< its value as JSON text */
};

/** One entry of properties, sorted by name for bsearch. */
struct schema_prop {
	const char *name;		/**< borrowed from the document */
	struct schema_node *node;	/**< the property's schema */
};

/** One compiled schema object or boolean schema. */
struct schema_node {
	char *where;			/**< its schema pointer, for errors */
	int bool_schema;		/**< 0 false, 1 true, -1 an object */
	unsigned types;			/**< TYPE_* bits; 0: any type */
	char types_text[80];		/**< "string or null" */
	struct schema_node *ref;	/**< $ref target, or NULL */
	struct schema_prop *props;	/**< properties, sorted */
	size_t n_props;
	const char **required;		/**< names, borrowed */
	size_t n_required;
	struct schema_node *additional;	/**< additionalProperties, or NULL */
	struct json_object *enum_list;	/**< the enum array (borrowed) */
	char *enum_text;		/**< its values, for messages */
	bool has_const;
	struct json_object *const_value; /**< borrowed; NULL is JSON null */
	char *const_text;
	struct schema_node **all_of;
	size_t n_all_of;
	struct schema_node **any_of;
	size_t n_any_of;
	struct schema_node *items;	/**< items, or NULL */
	size_t min_items, max_items;	/**< 0 and SIZE_MAX when absent */
	size_t min_length, max_length;	/**< in code points, likewise */
	bool has_numeric;		/**< any of the five below is set */
	struct num_bound minimum, maximum, exclusive_minimum,
		exclusive_maximum, multiple_of;
	pcre2_code *pattern;		/**< compiled pattern, or NULL */
	char *pattern_text;		/**< the pattern, quoted */
	unsigned char mark;		/**< cycle check: 0, 1 open, 2 done */
};

struct schema {
	struct json_object *doc;	/**< owned reference */
	struct schema_node *root;
	struct schema_node **nodes;	/**< every node, owned */
	size_t n_nodes, cap_nodes;
};

/* ---- small helpers ---------------------------------------------------- */

static void set_err(char *err, size_t err_size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	if (!err || !err_size)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
}

static const char *plural(size_t n)
{
	return n == 1 ? "" : "s";
}

/* Render s quoted and bounded into buf. @returns buf. */
static const char *quote(char *buf, size_t size, const char *s, size_t n)
{
	struct textbuf o;

	textbuf_init(&o, buf, size, TEXTBUF_WHOLE);
	schema_out_quoted(&o, s, n, TOKEN_MAX);
	return buf;
}

/* Render any JSON value bounded into buf. @returns buf. */
static const char *value_text(char *buf, size_t size,
			      const struct json_object *v)
{
	struct textbuf o;

	textbuf_init(&o, buf, size, TEXTBUF_WHOLE);
	schema_out_value(&o, v);
	return buf;
}

static const char *num_text(char *buf, size_t size,
			    const struct schema_num *n)
{
	struct textbuf o;

	textbuf_init(&o, buf, size, TEXTBUF_WHOLE);
	schema_out_num(&o, n);
	return buf;
}

/*
 * Patterns: UTF mode like ECMA-262's "u" flag; $ only at the very end, as
 * in ECMA-262 (PCRE2 would also match before a final newline); invalid
 * UTF-8 in a subject simply does not match instead of being an error.
 */
#define PATTERN_OPTIONS \
	(PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_MATCH_INVALID_UTF)

/* ---- compiling -------------------------------------------------------- */

struct memo_entry {
	const struct json_object *json;
	struct schema_node *node;
};

struct pending_ref {
	struct schema_node *node;	/**< the schema holding the $ref */
	const char *ref;		/**< its value, borrowed */
	char *where;			/**< ".../$ref", owned */
};

struct compiler {
	struct schema *s;
	struct json_object *doc;
	const char *root_id;		/**< the root's $id, or NULL */
	char *err;
	size_t err_size;
	bool failed;
	char *path;			/**< schema pointer being compiled */
	size_t path_len, path_cap;
	unsigned nesting;
	struct memo_entry *memo;	/**< open addressing on the pointer */
	size_t memo_cap, memo_used;
	struct pending_ref *refs;
	size_t n_refs, cap_refs;
};

static void cerr(struct compiler *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Record the first compile error; later ones are consequences. */
static void cerr(struct compiler *c, const char *fmt, ...)
{
	va_list ap;

	if (c->failed)
		return;
	c->failed = true;
	if (!c->err || !c->err_size)
		return;
	va_start(ap, fmt);
	vsnprintf(c->err, c->err_size, fmt, ap);
	va_end(ap);
}

static const char *cpath(const struct compiler *c)
{
	return c->path_len ? c->path : "/";
}

static int path_reserve(struct compiler *c, size_t extra)
{
	size_t cap;
	char *p;

	if (c->path_len + extra + 1 <= c->path_cap)
		return 0;
	cap = c->path_cap ? c->path_cap : 256;
	while (cap < c->path_len + extra + 1)
		cap *= 2;
	p = realloc(c->path, cap);
	if (!p) {
		cerr(c, "out of memory");
		return -1;
	}
	c->path = p;
	c->path_cap = cap;
	return 0;
}

/**
 * @brief Append "/token" (RFC 6901 escaped) to the current schema pointer.
 * @param ret_mark where to cut it back with path_pop()
 * @returns 0, or -1 out of memory
 */
static int path_push(struct compiler *c, const char *tok, size_t *ret_mark)
{
	size_t n = strlen(tok), i;

	/* worst case: every character escaped */
	if (path_reserve(c, 2 * n + 1) < 0)
		return -1;
	*ret_mark = c->path_len;
	c->path[c->path_len++] = '/';
	for (i = 0; i < n; i++) {
		if (tok[i] == '~' || tok[i] == '/') {
			c->path[c->path_len++] = '~';
			c->path[c->path_len++] = tok[i] == '~' ? '0' : '1';
		} else {
			c->path[c->path_len++] = tok[i];
		}
	}
	c->path[c->path_len] = '\0';
	return 0;
}

static int path_push_index(struct compiler *c, size_t i, size_t *ret_mark)
{
	char tmp[24];

	snprintf(tmp, sizeof(tmp), "%zu", i);
	return path_push(c, tmp, ret_mark);
}

static void path_pop(struct compiler *c, size_t mark)
{
	c->path_len = mark;
	c->path[mark] = '\0';
}

/* Make ptr (already a pointer text) the current schema pointer. */
static int path_set(struct compiler *c, const char *ptr)
{
	size_t n = strlen(ptr);

	c->path_len = 0;
	if (path_reserve(c, n) < 0)
		return -1;
	memcpy(c->path, ptr, n + 1);
	c->path_len = n;
	return 0;
}

static size_t memo_slot(const struct compiler *c, const void *p)
{
	uint64_t h = (uint64_t)(uintptr_t)p;

	h = (h >> 4) * 0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 32) & (c->memo_cap - 1);
}

static struct schema_node *memo_get(const struct compiler *c,
				    const struct json_object *json)
{
	size_t i;

	if (!c->memo_cap)
		return NULL;
	for (i = memo_slot(c, json); c->memo[i].json;
	     i = (i + 1) & (c->memo_cap - 1))
		if (c->memo[i].json == json)
			return c->memo[i].node;
	return NULL;
}

static int memo_put(struct compiler *c, const struct json_object *json,
		    struct schema_node *node)
{
	struct memo_entry *old = c->memo;
	size_t old_cap = c->memo_cap, i, j;

	if ((c->memo_used + 1) * 2 > c->memo_cap) {
		c->memo_cap = old_cap ? old_cap * 2 : 64;
		c->memo = calloc(c->memo_cap, sizeof(*c->memo));
		if (!c->memo) {
			c->memo = old;
			c->memo_cap = old_cap;
			cerr(c, "out of memory");
			return -1;
		}
		for (j = 0; j < old_cap; j++) {
			if (!old[j].json)
				continue;
			for (i = memo_slot(c, old[j].json); c->memo[i].json;
			     i = (i + 1) & (c->memo_cap - 1))
				;
			c->memo[i] = old[j];
		}
		free(old);
	}
	for (i = memo_slot(c, json); c->memo[i].json;
	     i = (i + 1) & (c->memo_cap - 1))
		;
	c->memo[i].json = json;
	c->memo[i].node = node;
	c->memo_used++;
	return 0;
}

static void node_free(struct schema_node *n)
{
	if (!n)
		return;
	free(n->where);
	free(n->props);
	free(n->required);
	free(n->enum_text);
	free(n->const_text);
	free(n->all_of);
	free(n->any_of);
	pcre2_code_free(n->pattern);
	free(n->pattern_text);
	free(n);
}

/* A new empty node for json, listed in the schema and the memo. */
static struct schema_node *node_new(struct compiler *c,
				    const struct json_object *json)
{
	struct schema *s = c->s;
	struct schema_node **nodes, *n;
	size_t cap;

	if (s->n_nodes == s->cap_nodes) {
		cap = s->cap_nodes ? s->cap_nodes * 2 : 16;
		nodes = realloc(s->nodes, cap * sizeof(*nodes));
		if (!nodes)
			goto oom;
		s->nodes = nodes;
		s->cap_nodes = cap;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		goto oom;
	s->nodes[s->n_nodes++] = n;
	n->bool_schema = -1;
	n->max_items = SIZE_MAX;
	n->max_length = SIZE_MAX;
	n->where = strdup(cpath(c));
	if (!n->where)
		goto oom;
	if (memo_put(c, json, n) < 0)
		return NULL;
	return n;
oom:
	cerr(c, "out of memory");
	return NULL;
}

static struct schema_node *compile_node(struct compiler *c,
					struct json_object *json);

/* Keywords, in the order the switch in compile_keyword() handles them. */
enum keyword_id {
	KW_TYPE,
	KW_PROPERTIES,
	KW_REQUIRED,
	KW_ADDITIONAL,
	KW_ENUM,
	KW_CONST,
	KW_ANY_OF,
	KW_ALL_OF,
	KW_REF,
	KW_DEFS,
	KW_ITEMS,
	KW_MIN_ITEMS,
	KW_MAX_ITEMS,
	KW_MIN_LENGTH,
	KW_MAX_LENGTH,
	KW_MINIMUM,
	KW_MAXIMUM,
	KW_EXCLUSIVE_MINIMUM,
	KW_EXCLUSIVE_MAXIMUM,
	KW_MULTIPLE_OF,
	KW_PATTERN,
	KW_STRING_ANNOTATION,	/* title, description, $comment, $schema */
	KW_ANY_ANNOTATION,	/* default */
	KW_EXAMPLES,
	KW_ID,
};

static const struct {
	const char *name;
	enum keyword_id id;
} keyword_table[] = {
	{ "type", KW_TYPE },
	{ "properties", KW_PROPERTIES },
	{ "required", KW_REQUIRED },
	{ "additionalProperties", KW_ADDITIONAL },
	{ "enum", KW_ENUM },
	{ "const", KW_CONST },
	{ "anyOf", KW_ANY_OF },
	{ "allOf", KW_ALL_OF },
	{ "$ref", KW_REF },
	{ "$defs", KW_DEFS },
	{ "items", KW_ITEMS },
	{ "minItems", KW_MIN_ITEMS },
	{ "maxItems", KW_MAX_ITEMS },
	{ "minLength", KW_MIN_LENGTH },
	{ "maxLength", KW_MAX_LENGTH },
	{ "minimum", KW_MINIMUM },
	{ "maximum", KW_MAXIMUM },
	{ "exclusiveMinimum", KW_EXCLUSIVE_MINIMUM },
	{ "exclusiveMaximum", KW_EXCLUSIVE_MAXIMUM },
	{ "multipleOf", KW_MULTIPLE_OF },
	{ "pattern", KW_PATTERN },
	{ "title", KW_STRING_ANNOTATION },
	{ "description", KW_STRING_ANNOTATION },
	{ "$comment", KW_STRING_ANNOTATION },
	{ "$schema", KW_STRING_ANNOTATION },
	{ "default", KW_ANY_ANNOTATION },
	{ "examples", KW_EXAMPLES },
	{ "$id", KW_ID },
};

static int keyword_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(keyword_table) / sizeof(keyword_table[0]); i++)
		if (strcmp(keyword_table[i].name, name) == 0)
			return (int)keyword_table[i].id;
	return -1;
}

static int compile_type(struct compiler *c, struct schema_node *n,
			struct json_object *v)
{
	const char *names[8];
	struct json_object *item;
	struct textbuf o;
	size_t count, i, k, mark;
	unsigned bit;
	char q[TOKEN_MAX * 6 + 8];
	int rc = 0;

	if (json_object_is_type(v, json_type_string)) {
		count = 1;
	} else if (json_object_is_type(v, json_type_array)) {
		count = json_object_array_length(v);
		if (!count) {
			cerr(c, "%s: must not be an empty array", cpath(c));
			return -1;
		}
	} else {
		cerr(c, "%s: must be a type name or an array of type names",
		     cpath(c));
		return -1;
	}
	for (i = 0; i < count && !rc; i++) {
		item = json_object_is_type(v, json_type_array) ?
			       json_object_array_get_idx(v, i) :
			       v;
		mark = c->path_len;
		if (item != v && path_push_index(c, i, &mark) < 0)
			return -1;
		bit = 0;
		if (json_object_is_type(item, json_type_string)) {
			for (k = 0; k < N_TYPES; k++)
				if (!strcmp(type_table[k].name,
					    json_object_get_string(item)))
					bit = type_table[k].bit;
		}
		if (!json_object_is_type(item, json_type_string)) {
			cerr(c, "%s: must be a type name", cpath(c));
			rc = -1;
		} else if (!bit) {
			cerr(c,
			     "%s: unknown type %s (expected null, boolean, "
			     "object, array, number, string or integer)",
			     cpath(c),
			     quote(q, sizeof(q), json_object_get_string(item),
				   (size_t)json_object_get_string_len(item)));
			rc = -1;
		} else if (n->types & bit) {
			cerr(c, "%s: type \"%s\" is listed twice", cpath(c),
			     json_object_get_string(item));
			rc = -1;
		} else {
			n->types |= bit;
			names[i] = json_object_get_string(item);
		}
		path_pop(c, mark);
	}
	if (rc < 0)
		return -1;
	/* "string", "string or null", "array, object or null" */
	textbuf_init(&o, n->types_text, sizeof(n->types_text), TEXTBUF_WHOLE);
	for (i = 0; i < count; i++) {
		if (i)
			textbuf_adds(&o, i == count - 1 ? " or " : ", ");
		textbuf_adds(&o, names[i]);
	}
	return 0;
}

static int compile_properties(struct compiler *c, struct schema_node *n,
			      struct json_object *v)
{
	struct lh_entry *e;
	struct schema_node *sub;
	size_t count, mark;

	if (!json_object_is_type(v, json_type_object)) {
		cerr(c, "%s: must be an object mapping names to schemas",
		     cpath(c));
		return -1;
	}
	count = (size_t)json_object_object_length(v);
	n->props = calloc(count ? count : 1, sizeof(*n->props));
	if (!n->props) {
		cerr(c, "out of memory");
		return -1;
	}
	for (e = lh_table_head(json_object_get_object(v)); e;
	     e = lh_entry_next(e)) {
		if (path_push(c, lh_entry_k(e), &mark) < 0)
			return -1;
		sub = compile_node(c, lh_entry_v(e));
		path_pop(c, mark);
		if (!sub)
			return -1;
		n->props[n->n_props].name = lh_entry_k(e);
		n->props[n->n_props].node = sub;
		n->n_props++;
	}
	return 0;
}

static int prop_sort_cmp(const void *a, const void *b)
{
	return strcmp(((const struct schema_prop *)a)->name,
		      ((const struct schema_prop *)b)->name);
}

static int compile_required(struct compiler *c, struct schema_node *n,
			    struct json_object *v)
{
	struct json_object *item;
	size_t count, i, k;

	if (!json_object_is_type(v, json_type_array)) {
		cerr(c, "%s: must be an array of property names", cpath(c));
		return -1;
	}
	count = json_object_array_length(v);
	n->required = calloc(count ? count : 1, sizeof(*n->required));
	if (!n->required) {
		cerr(c, "out of memory");
		return -1;
	}
	for (i = 0; i < count; i++) {
		item = json_object_array_get_idx(v, i);
		if (!json_object_is_type(item, json_type_string)) {
			cerr(c, "%s/%zu: must be a string", cpath(c), i);
			return -1;
		}
		for (k = 0; k < i; k++) {
			if (!strcmp(n->required[k],
				    json_object_get_string(item))) {
				cerr(c, "%s/%zu: repeats \"%s\"", cpath(c), i,
				     n->required[k]);
				return -1;
			}
		}
		n->required[n->n_required++] = json_object_get_string(item);
	}
	return 0;
}

/* Render the values of an enum into a bounded, allocated list. */
static char *list_text(struct json_object *list)
{
	char tmp[SCHEMA_VALUE_MAX + 8];
	struct json_object *item;
	struct textbuf o;
	size_t i, count = json_object_array_length(list);
	char *buf = malloc(LIST_MAX + 8);

	if (!buf)
		return NULL;
	textbuf_init(&o, buf, LIST_MAX, TEXTBUF_WHOLE);
	for (i = 0; i < count && !textbuf_full(&o); i++) {
		if (i)
			textbuf_add(&o, ", ", 2);
		item = json_object_array_get_idx(list, i);
		textbuf_adds(&o, value_text(tmp, sizeof(tmp), item));
	}
	if (textbuf_full(&o)) {
		/* room was kept for the ellipsis */
		textbuf_resume(&o, LIST_MAX + 8);
		if (o.len >= 2 && !memcmp(o.buf + o.len - 2, ", ", 2))
			textbuf_add(&o, "...", 3);
		else
			textbuf_add(&o, ", ...", 5);
	}
	return buf;
}

static int compile_subschemas(struct compiler *c, struct json_object *v,
			      struct schema_node ***ret, size_t *ret_count)
{
	struct schema_node *sub;
	size_t count, i, mark;

	if (!json_object_is_type(v, json_type_array) ||
	    !json_object_array_length(v)) {
		cerr(c, "%s: must be a non-empty array of schemas", cpath(c));
		return -1;
	}
	count = json_object_array_length(v);
	*ret = calloc(count, sizeof(**ret));
	if (!*ret) {
		cerr(c, "out of memory");
		return -1;
	}
	for (i = 0; i < count; i++) {
		if (path_push_index(c, i, &mark) < 0)
			return -1;
		sub = compile_node(c, json_object_array_get_idx(v, i));
		path_pop(c, mark);
		if (!sub)
			return -1;
		(*ret)[i] = sub;
		*ret_count = i + 1;
	}
	return 0;
}

static int compile_ref(struct compiler *c, struct schema_node *n,
		       struct json_object *v)
{
	struct pending_ref *refs;
	size_t cap;

	if (!json_object_is_type(v, json_type_string)) {
		cerr(c, "%s: must be a string", cpath(c));
		return -1;
	}
	if (c->n_refs == c->cap_refs) {
		cap = c->cap_refs ? c->cap_refs * 2 : 16;
		refs = realloc(c->refs, cap * sizeof(*refs));
		if (!refs)
			goto oom;
		c->refs = refs;
		c->cap_refs = cap;
	}
	c->refs[c->n_refs].node = n;
	c->refs[c->n_refs].ref = json_object_get_string(v);
	c->refs[c->n_refs].where = strdup(cpath(c));
	if (!c->refs[c->n_refs].where)
		goto oom;
	c->n_refs++;
	return 0;
oom:
	cerr(c, "out of memory");
	return -1;
}

static int compile_defs(struct compiler *c, struct json_object *v)
{
	struct lh_entry *e;
	size_t mark;

	if (!json_object_is_type(v, json_type_object)) {
		cerr(c, "%s: must be an object mapping names to schemas",
		     cpath(c));
		return -1;
	}
	/* compiled even when unused, so every mistake shows at once */
	for (e = lh_table_head(json_object_get_object(v)); e;
	     e = lh_entry_next(e)) {
		if (path_push(c, lh_entry_k(e), &mark) < 0)
			return -1;
		if (!compile_node(c, lh_entry_v(e)))
			return -1;
		path_pop(c, mark);
	}
	return 0;
}

/* minItems and friends: a non-negative integer (2.0 is fine). */
static int compile_count(struct compiler *c, struct json_object *v,
			 size_t *ret)
{
	struct schema_num num;

	if (!schema_num_get(v, &num) || !schema_num_is_integer(&num) ||
	    (num.is_int ? num.i < 0 : num.d < 0)) {
		cerr(c, "%s: must be a non-negative integer", cpath(c));
		return -1;
	}
	if (num.is_int)
		*ret = (uint64_t)num.i > SIZE_MAX ? SIZE_MAX : (size_t)num.i;
	else
		*ret = num.d >= (double)SIZE_MAX ? SIZE_MAX : (size_t)num.d;
	return 0;
}

static int compile_bound(struct compiler *c, struct schema_node *n,
			 struct json_object *v, struct num_bound *b)
{
	if (!schema_num_get(v, &b->v)) {
		cerr(c, "%s: must be a number", cpath(c));
		return -1;
	}
	b->set = true;
	num_text(b->text, sizeof(b->text), &b->v);
	n->has_numeric = true;
	return 0;
}

static int compile_pattern(struct compiler *c, struct schema_node *n,
			   struct json_object *v)
{
	PCRE2_UCHAR msg[256];
	PCRE2_SIZE offset, offset2;
	struct textbuf o;
	size_t len, ecma_len;
	char *ecma;
	int code, code2;

	if (!json_object_is_type(v, json_type_string)) {
		cerr(c, "%s: must be a string", cpath(c));
		return -1;
	}
	len = (size_t)json_object_get_string_len(v);
	n->pattern = pcre2_compile((PCRE2_SPTR)json_object_get_string(v), len,
				   PATTERN_OPTIONS, &code, &offset, NULL);
	if (!n->pattern) {
		/* ECMA-262 names PCRE2 lacks: \p{Letter} is its \p{L} */
		ecma = schema_ecma_properties(json_object_get_string(v), len,
					      &ecma_len);
		if (ecma)
			n->pattern = pcre2_compile((PCRE2_SPTR)ecma, ecma_len,
						   PATTERN_OPTIONS, &code2,
						   &offset2, NULL);
		free(ecma);
	}
	if (!n->pattern) {
		/* the original's error: its offset is in the user's text */
		pcre2_get_error_message(code, msg, sizeof(msg));
		cerr(c, "%s: invalid regular expression at offset %zu: %s",
		     cpath(c), (size_t)offset, (const char *)msg);
		return -1;
	}
	/*
	 * No JIT, on purpose: schema patterns and the strings they check are
	 * short, the interpreter is quick enough, and JIT code needs
	 * executable memory and scans past the end of the subject (harmless,
	 * but it makes valgrind runs of the daemon useless).
	 */
	n->pattern_text = malloc(TOKEN_MAX * 6 + 8);
	if (!n->pattern_text) {
		cerr(c, "out of memory");
		return -1;
	}
	textbuf_init(&o, n->pattern_text, TOKEN_MAX * 6 + 8, TEXTBUF_WHOLE);
	schema_out_quoted(&o, json_object_get_string(v), len, TOKEN_MAX);
	return 0;
}

/**
 * @brief Compile one keyword of n; the current path names the keyword.
 * @returns 0, or -1 with the error recorded
 */
static int compile_keyword(struct compiler *c, struct schema_node *n,
			   enum keyword_id id, struct json_object *v)
{
	char tmp[SCHEMA_VALUE_MAX + 8];
	struct schema_num num;

	switch (id) {
	case KW_TYPE:
		return compile_type(c, n, v);
	case KW_PROPERTIES:
		if (compile_properties(c, n, v) < 0)
			return -1;
		qsort(n->props, n->n_props, sizeof(*n->props), prop_sort_cmp);
		return 0;
	case KW_REQUIRED:
		return compile_required(c, n, v);
	case KW_ADDITIONAL:
		n->additional = compile_node(c, v);
		return n->additional ? 0 : -1;
	case KW_ENUM:
		if (!json_object_is_type(v, json_type_array)) {
			cerr(c, "%s: must be an array", cpath(c));
			return -1;
		}
		n->enum_list = v;
		n->enum_text = list_text(v);
		if (!n->enum_text) {
			cerr(c, "out of memory");
			return -1;
		}
		return 0;
	case KW_CONST:
		n->has_const = true;
		n->const_value = v;
		n->const_text = strdup(value_text(tmp, sizeof(tmp), v));
		if (!n->const_text) {
			cerr(c, "out of memory");
			return -1;
		}
		return 0;
	case KW_ANY_OF:
		return compile_subschemas(c, v, &n->any_of, &n->n_any_of);
	case KW_ALL_OF:
		return compile_subschemas(c, v, &n->all_of, &n->n_all_of);
	case KW_REF:
		return compile_ref(c, n, v);
	case KW_DEFS:
		return compile_defs(c, v);
	case KW_ITEMS:
		if (json_object_is_type(v, json_type_array)) {
			cerr(c,
			     "%s: must be a schema (the array form, for "
			     "tuples, is not supported)",
			     cpath(c));
			return -1;
		}
		n->items = compile_node(c, v);
		return n->items ? 0 : -1;
	case KW_MIN_ITEMS:
		return compile_count(c, v, &n->min_items);
	case KW_MAX_ITEMS:
		return compile_count(c, v, &n->max_items);
	case KW_MIN_LENGTH:
		return compile_count(c, v, &n->min_length);
	case KW_MAX_LENGTH:
		return compile_count(c, v, &n->max_length);
	case KW_MINIMUM:
		return compile_bound(c, n, v, &n->minimum);
	case KW_MAXIMUM:
		return compile_bound(c, n, v, &n->maximum);
	case KW_EXCLUSIVE_MINIMUM:
		return compile_bound(c, n, v, &n->exclusive_minimum);
	case KW_EXCLUSIVE_MAXIMUM:
		return compile_bound(c, n, v, &n->exclusive_maximum);
	case KW_MULTIPLE_OF:
		if (!schema_num_get(v, &num) ||
		    (num.is_int ? num.i <= 0 : !(num.d > 0))) {
			cerr(c, "%s: must be a number greater than 0",
			     cpath(c));
			return -1;
		}
		return compile_bound(c, n, v, &n->multiple_of);
	case KW_PATTERN:
		return compile_pattern(c, n, v);
	case KW_STRING_ANNOTATION:
		if (!json_object_is_type(v, json_type_string)) {
			cerr(c, "%s: must be a string", cpath(c));
			return -1;
		}
		return 0;
	case KW_ANY_ANNOTATION:
		return 0;
	case KW_EXAMPLES:
		if (!json_object_is_type(v, json_type_array)) {
			cerr(c, "%s: must be an array", cpath(c));
			return -1;
		}
		return 0;
	case KW_ID:
		/* the root is the first node made */
		if (n != c->s->nodes[0]) {
			cerr(c,
			     "%s: $id is only supported at the root (embedded "
			     "schema resources are not)",
			     cpath(c));
			return -1;
		}
		if (!json_object_is_type(v, json_type_string)) {
			cerr(c, "%s: must be a string", cpath(c));
			return -1;
		}
		return 0;
	}
	return 0;
}

/**
 * @brief Compile the schema value json found at the current path, or
 * return the node already made for it.
 * @returns the node, or NULL with the error recorded
 */
static struct schema_node *compile_node(struct compiler *c,
					struct json_object *json)
{
	enum json_type type = json_object_get_type(json);
	struct schema_node *n;
	struct lh_entry *e;
	const char *key;
	size_t mark, cut;
	int id;

	if (type != json_type_object && type != json_type_boolean) {
		cerr(c, "%s: must be a schema (an object or a boolean), got %s",
		     cpath(c), json_type_to_name(type));
		return NULL;
	}
	n = memo_get(c, json);
	if (n)
		return n;
	if (c->nesting >= SCHEMA_MAX_NESTING) {
		cerr(c, "%s: schemas nested more than %d deep", cpath(c),
		     SCHEMA_MAX_NESTING);
		return NULL;
	}
	n = node_new(c, json);
	if (!n)
		return NULL;
	if (type == json_type_boolean) {
		n->bool_schema = json_object_get_boolean(json) ? 1 : 0;
		return n;
	}
	c->nesting++;
	for (e = lh_table_head(json_object_get_object(json)); e;
	     e = lh_entry_next(e)) {
		key = lh_entry_k(e);
		id = keyword_find(key);
		if (id < 0) {
			/* cut a silly long name on a character boundary */
			for (cut = 0; key[cut] && cut < 64; cut++)
				;
			if (key[cut])
				cut = utf8_cut(key, cut);
			cerr(c, "unsupported keyword '%.*s%s' at %s", (int)cut,
			     key, key[cut] ? "..." : "", cpath(c));
			goto fail;
		}
		if (path_push(c, key, &mark) < 0)
			goto fail;
		if (compile_keyword(c, n, (enum keyword_id)id,
				    lh_entry_v(e)) < 0)
			goto fail;
		path_pop(c, mark);
	}
	c->nesting--;
	return n;
fail:
	c->nesting--;
	return NULL;
}

static int hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * Percent-decode a URI fragment into a new string.
 * @returns it, or NULL (malformed, a NUL byte, or out of memory)
 */
static char *percent_decode(const char *s)
{
	size_t n = strlen(s), i, j = 0;
	char *out = malloc(n + 1);
	int hi, lo;

	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		if (s[i] != '%') {
			out[j++] = s[i];
			continue;
		}
		hi = i + 1 < n ? hex_value(s[i + 1]) : -1;
		lo = i + 2 < n ? hex_value(s[i + 2]) : -1;
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(out);
			return NULL;
		}
		out[j++] = (char)(hi << 4 | lo);
		i += 2;
	}
	out[j] = '\0';
	return out;
}

/*
 * Unescape the RFC 6901 token [s, end) into tok (big enough).
 * @returns 0, or -1 for a '~' not followed by 0 or 1
 */
static int token_unescape(const char *s, const char *end, char *tok)
{
	while (s < end) {
		if (*s != '~') {
			*tok++ = *s++;
			continue;
		}
		if (s + 1 >= end || (s[1] != '0' && s[1] != '1'))
			return -1;
		*tok++ = s[1] == '0' ? '~' : '/';
		s += 2;
	}
	*tok = '\0';
	return 0;
}

/* An array index token: digits, no leading zero. */
static bool token_index(const char *tok, size_t *ret)
{
	size_t v = 0;

	if (!*tok || (tok[0] == '0' && tok[1]))
		return false;
	for (; *tok; tok++) {
		if (*tok < '0' || *tok > '9' || v > (SIZE_MAX - 9) / 10)
			return false;
		v = v * 10 + (size_t)(*tok - '0');
	}
	*ret = v;
	return true;
}

/**
 * @brief Resolve the i-th queued $ref and point its node at the target,
 * compiling the target if no other path reached it yet.
 * @returns 0, or -1 with the error recorded
 */
static int resolve_ref(struct compiler *c, size_t i)
{
	struct schema_node *node = c->refs[i].node, *target;
	const char *ref = c->refs[i].ref, *where = c->refs[i].where;
	const char *frag = ref, *p, *end;
	struct json_object *cur = c->doc, *next;
	char q[TOKEN_MAX * 6 + 8];
	char *ptr = NULL, *tok = NULL;
	size_t idlen, idx;
	int rc = -1;

	quote(q, sizeof(q), ref, strlen(ref));
	/* a reference to the root's own $id is local */
	idlen = c->root_id ? strlen(c->root_id) : 0;
	if (idlen && !strncmp(ref, c->root_id, idlen) &&
	    (ref[idlen] == '\0' || ref[idlen] == '#'))
		frag = ref[idlen] ? ref + idlen : "#";
	if (frag[0] != '#') {
		cerr(c,
		     "%s: cannot resolve %s: only local references (\"#\", "
		     "\"#/$defs/name\") are supported",
		     where, q);
		goto out;
	}
	ptr = percent_decode(frag + 1);
	tok = malloc(strlen(frag) + 1);
	if (!ptr || !tok) {
		cerr(c, "%s: cannot resolve %s: bad percent-encoding", where,
		     q);
		goto out;
	}
	if (ptr[0] && ptr[0] != '/') {
		cerr(c,
		     "%s: cannot resolve %s: anchors are not supported, only "
		     "JSON pointers like \"#/$defs/name\"",
		     where, q);
		goto out;
	}
	for (p = ptr; *p == '/'; p = end) {
		end = strchr(p + 1, '/');
		if (!end)
			end = p + strlen(p);
		if (token_unescape(p + 1, end, tok) < 0) {
			cerr(c, "%s: cannot resolve %s: bad '~' escape", where,
			     q);
			goto out;
		}
		if (json_object_is_type(cur, json_type_object) &&
		    json_object_object_get_ex(cur, tok, &next)) {
			cur = next;
		} else if (json_object_is_type(cur, json_type_array) &&
			   token_index(tok, &idx) &&
			   idx < json_object_array_length(cur)) {
			cur = json_object_array_get_idx(cur, idx);
		} else {
			cerr(c, "%s: cannot resolve %s: no such location",
			     where, q);
			goto out;
		}
	}
	if (path_set(c, ptr) < 0)
		goto out;
	target = compile_node(c, cur);
	if (!target)
		goto out;
	node->ref = target;
	rc = 0;
out:
	free(ptr);
	free(tok);
	return rc;
}

/*
 * Depth-first search over the edges that stay on the same instance value
 * ($ref, allOf, anyOf).
 * @returns a node on a cycle, or on a chain longer than SCHEMA_MAX_CALLS
 *          (validation would give up there, *ret_too_long says so); NULL
 *          when there is none
 */
static struct schema_node *find_cycle(struct schema_node *n, unsigned depth,
				      bool *ret_too_long)
{
	struct schema_node *hit = NULL;
	size_t i;

	if (n->mark == 2)
		return NULL;
	if (n->mark == 1)
		return n;
	if (depth >= SCHEMA_MAX_CALLS) {
		*ret_too_long = true;
		return n;
	}
	n->mark = 1;
	if (n->ref)
		hit = find_cycle(n->ref, depth + 1, ret_too_long);
	for (i = 0; !hit && i < n->n_all_of; i++)
		hit = find_cycle(n->all_of[i], depth + 1, ret_too_long);
	for (i = 0; !hit && i < n->n_any_of; i++)
		hit = find_cycle(n->any_of[i], depth + 1, ret_too_long);
	n->mark = 2;
	return hit;
}

static void compiler_done(struct compiler *c)
{
	size_t i;

	for (i = 0; i < c->n_refs; i++)
		free(c->refs[i].where);
	free(c->refs);
	free(c->memo);
	free(c->path);
}

struct schema *schema_compile(struct json_object *doc, char *err,
			      size_t err_size)
{
	struct compiler c = { .err = err, .err_size = err_size, .doc = doc };
	struct schema_node *cycle;
	struct json_object *id;
	bool too_long = false;
	size_t i;

	if (err && err_size)
		err[0] = '\0';
	c.s = calloc(1, sizeof(*c.s));
	if (!c.s) {
		cerr(&c, "out of memory");
		return NULL;
	}
	c.s->doc = json_object_get(doc);
	if (path_reserve(&c, 0) < 0)
		goto fail;
	c.path[0] = '\0';
	if (json_object_object_get_ex(doc, "$id", &id) &&
	    json_object_is_type(id, json_type_string))
		c.root_id = json_object_get_string(id);
	c.s->root = compile_node(&c, doc);
	if (!c.s->root)
		goto fail;
	/* resolving may compile targets, which may queue more refs */
	for (i = 0; i < c.n_refs; i++)
		if (resolve_ref(&c, i) < 0)
			goto fail;
	for (i = 0; i < c.s->n_nodes; i++) {
		cycle = find_cycle(c.s->nodes[i], 0, &too_long);
		if (cycle && !too_long) {
			cerr(&c,
			     "%s: circular $ref: the cycle never moves into "
			     "the instance, so validation would not end",
			     cycle->where);
			goto fail;
		}
		if (cycle) {
			cerr(&c,
			     "%s: more than %d $ref, allOf or anyOf steps in a "
			     "row",
			     cycle->where, SCHEMA_MAX_CALLS);
			goto fail;
		}
	}
	compiler_done(&c);
	return c.s;
fail:
	compiler_done(&c);
	schema_free(c.s);
	return NULL;
}

void schema_free(struct schema *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->n_nodes; i++)
		node_free(s->nodes[i]);
	free(s->nodes);
	json_object_put(s->doc);
	free(s);
}

struct json_object *schema_document(const struct schema *s)
{
	return s->doc;
}

/* ---- loading a file --------------------------------------------------- */

/* Read a whole file, at most SCHEMA_FILE_MAX bytes, NUL-terminated. */
static int read_file(const char *path, char **ret, size_t *ret_len,
		     char *why, size_t why_size)
{
	char *buf = NULL, *p, ebuf[128];
	size_t len = 0, cap = 0, got;
	FILE *f;
	int rc = -1;

	f = fopen(path, "re");
	if (!f) {
		if (strerror_r(errno, ebuf, sizeof(ebuf)))
			snprintf(ebuf, sizeof(ebuf), "error %d", errno);
		set_err(why, why_size, "cannot open: %s", ebuf);
		return -1;
	}
	for (;;) {
		if (len + 1 >= cap) {
			if (cap > SCHEMA_FILE_MAX) {
				set_err(why, why_size,
					"larger than %u bytes, refused",
					SCHEMA_FILE_MAX);
				goto out;
			}
			cap = cap ? cap * 2 : 16384;
			p = realloc(buf, cap);
			if (!p) {
				set_err(why, why_size, "out of memory");
				goto out;
			}
			buf = p;
		}
		got = fread(buf + len, 1, cap - len - 1, f);
		len += got;
		if (!got)
			break;
	}
	if (ferror(f)) {
		set_err(why, why_size, "read error");
		goto out;
	}
	buf[len] = '\0';
	*ret = buf;
	*ret_len = len;
	buf = NULL;
	rc = 0;
out:
	free(buf);
	fclose(f);
	return rc;
}

static void line_col(const char *text, size_t off, size_t *line, size_t *col)
{
	size_t i;

	*line = 1;
	*col = 1;
	for (i = 0; i < off; i++) {
		if (text[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

/* Parse text strictly as one JSON document. */
static int parse_json(const char *text, size_t len, struct json_object **ret,
		      char *why, size_t why_size)
{
	struct jsonparse_error e;
	size_t line, col;

	*ret = jsonparse_once(text, len, SCHEMA_JSON_DEPTH,
			      JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8,
			      &e);
	if (*ret)
		return 0;
	line_col(text, e.at, &line, &col);
	switch (e.fail) {
	case JSONPARSE_UNCLOSED:
		set_err(why, why_size, "invalid JSON: unexpected end of file");
		break;
	case JSONPARSE_SYNTAX:
		set_err(why, why_size,
			"invalid JSON at line %zu, column %zu: %s", line, col,
			e.desc);
		break;
	case JSONPARSE_TRAILING:
		set_err(why, why_size,
			"invalid JSON at line %zu, column %zu: data after the "
			"document",
			line, col);
		break;
	case JSONPARSE_TOO_LONG:
		set_err(why, why_size, "invalid JSON: too long");
		break;
	default:
		set_err(why, why_size, "out of memory");
		break;
	}
	return -1;
}

struct schema *schema_load_file(const char *path, char *err, size_t err_size)
{
	struct json_object *doc = NULL;
	struct schema *s = NULL;
	char why[LINE_MAX_BYTES];
	char *text = NULL;
	size_t len;

	if (read_file(path, &text, &len, why, sizeof(why)) < 0 ||
	    parse_json(text, len, &doc, why, sizeof(why)) < 0) {
		set_err(err, err_size, "%s: %s", path, why);
		goto out;
	}
	s = schema_compile(doc, why, sizeof(why));
	if (!s)
		set_err(err, err_size, "%s: %s", path, why);
	else if (err && err_size)
		err[0] = '\0';
out:
	json_object_put(doc);
	free(text);
	return s;
}

/* ---- validating ------------------------------------------------------- */

enum vmode {
	VMODE_TEXT,	/* count and write every error */
	VMODE_COUNT,	/* count every error, write nothing */
	VMODE_QUICK,	/* stop at the first error, write nothing */
};

/** The caller's buffer, filled with whole lines. */
struct vout {
	char *buf;
	size_t cap;
	size_t used;		/**< bytes of text, NUL excluded */
	unsigned dropped;	/**< lines that did not fit */
	bool full;		/**< a line was dropped: drop the rest too */
};

/** One step of the instance location. */
struct vseg {
	const char *key;	/**< property name, or NULL for an index */
	size_t index;
};

struct vctx {
	struct vout out;
	enum vmode mode;
	unsigned count;		/**< errors found (in this mode) */
	unsigned depth;		/**< segs in use */
	unsigned calls;		/**< nested check() calls */
	unsigned closest;	/**< nested anyOf explanations */
	pcre2_match_data *md;	/**< made at the first pattern */
	struct vseg segs[SCHEMA_MAX_DEPTH];
};

static void check(struct vctx *v, const struct schema_node *n,
		  struct json_object *x);

static void out_line(struct vout *o, const char *line, size_t len)
{
	size_t sep = o->used ? 1 : 0;

	if (o->full || !o->cap || len + sep > o->cap - 1 - o->used) {
		o->full = true;
		o->dropped++;
		return;
	}
	if (sep)
		o->buf[o->used++] = '\n';
	memcpy(o->buf + o->used, line, len);
	o->used += len;
	o->buf[o->used] = '\0';
}

/* Close the text with "... N more errors", giving up lines for room. */
static void out_finish(struct vout *o)
{
	char tail[48];
	size_t len, sep;

	if (!o->dropped || !o->cap)
		return;
	for (;;) {
		len = (size_t)snprintf(tail, sizeof(tail),
				       "... %u more error%s", o->dropped,
				       plural(o->dropped));
		sep = o->used ? 1 : 0;
		if (len + sep <= o->cap - 1 - o->used)
			break;
		if (!o->used) {
			/* not even the tail fits: say nothing, cleanly */
			o->buf[0] = '\0';
			return;
		}
		/* give up the last line, whole, and its separator */
		while (o->used && o->buf[o->used - 1] != '\n')
			o->used--;
		if (o->used)
			o->used--;
		o->buf[o->used] = '\0';
		o->dropped++;
	}
	if (o->used)
		o->buf[o->used++] = '\n';
	memcpy(o->buf + o->used, tail, len + 1);
	o->used += len;
}

/* The instance pointer of the current location, bounded. */
static void out_pointer(struct textbuf *o, const struct vctx *v)
{
	char tmp[POINTER_MAX + 1];
	struct textbuf t;
	unsigned i;

	if (!v->depth) {
		textbuf_add(o, "/", 1);
		return;
	}
	textbuf_init(&t, tmp, sizeof(tmp), TEXTBUF_WHOLE);
	for (i = 0; i < v->depth && !textbuf_full(&t); i++) {
		textbuf_add(&t, "/", 1);
		if (v->segs[i].key)
			schema_out_token(&t, v->segs[i].key,
					 strlen(v->segs[i].key), TOKEN_MAX);
		else
			textbuf_addf(&t, "%zu", v->segs[i].index);
	}
	textbuf_add(o, tmp, t.len);
	if (textbuf_full(&t))
		textbuf_add(o, "...", 3);
}

static void report(struct vctx *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Count one error and, in text mode, write "POINTER: message". */
static void report(struct vctx *v, const char *fmt, ...)
{
	char line[LINE_MAX_BYTES], msg[MESSAGE_MAX];
	struct textbuf o;
	va_list ap;
	size_t n;
	int len;

	v->count++;
	if (v->mode != VMODE_TEXT)
		return;
	va_start(ap, fmt);
	len = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (len < 0)
		return;
	if ((size_t)len >= sizeof(msg)) {
		/* pieces are bounded, so this is a safety net: cut cleanly */
		n = utf8_cut(msg, sizeof(msg) - 4);
		memcpy(msg + n, "...", 4);
	}
	textbuf_init(&o, line, sizeof(line), TEXTBUF_WHOLE);
	out_pointer(&o, v);
	textbuf_add(&o, ": ", 2);
	textbuf_adds(&o, msg);
	out_line(&v->out, line, o.len);
}

/*
 * In the counting modes an error is only counted, and the caller skips
 * rendering its message. @returns true when that happened.
 */
static bool count_only(struct vctx *v)
{
	if (v->mode == VMODE_TEXT)
		return false;
	v->count++;
	return true;
}

static bool quick_done(const struct vctx *v)
{
	return v->mode == VMODE_QUICK && v->count;
}

static bool push_seg(struct vctx *v, const char *key, size_t index)
{
	if (v->depth >= SCHEMA_MAX_DEPTH) {
		report(v, "nested deeper than %d levels", SCHEMA_MAX_DEPTH);
		return false;
	}
	v->segs[v->depth].key = key;
	v->segs[v->depth].index = index;
	v->depth++;
	return true;
}

static const char *kind_name(const struct json_object *x)
{
	switch (json_object_get_type(x)) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "boolean";
	case json_type_int:
		return "integer";
	case json_type_double:
		return "number";
	case json_type_string:
		return "string";
	case json_type_array:
		return "array";
	case json_type_object:
		return "object";
	}
	return "?";
}

static bool type_matches(unsigned types, const struct json_object *x)
{
	struct schema_num num;

	switch (json_object_get_type(x)) {
	case json_type_null:
		return types & TYPE_NULL;
	case json_type_boolean:
		return types & TYPE_BOOLEAN;
	case json_type_string:
		return types & TYPE_STRING;
	case json_type_array:
		return types & TYPE_ARRAY;
	case json_type_object:
		return types & TYPE_OBJECT;
	case json_type_int:
	case json_type_double:
		if (types & TYPE_NUMBER)
			return true;
		return (types & TYPE_INTEGER) && schema_num_get(x, &num) &&
		       schema_num_is_integer(&num);
	}
	return false;
}

static void check_number(struct vctx *v, const struct schema_node *n,
			 const struct json_object *x)
{
	struct schema_num num;
	char a[48];

	schema_num_get(x, &num);
	if (n->minimum.set && schema_num_cmp(&num, &n->minimum.v) < 0 &&
	    !count_only(v))
		report(v, "%s is less than the minimum of %s",
		       num_text(a, sizeof(a), &num), n->minimum.text);
	if (n->exclusive_minimum.set &&
	    schema_num_cmp(&num, &n->exclusive_minimum.v) <= 0 &&
	    !count_only(v))
		report(v, "%s is not greater than %s",
		       num_text(a, sizeof(a), &num), n->exclusive_minimum.text);
	if (n->maximum.set && schema_num_cmp(&num, &n->maximum.v) > 0 &&
	    !count_only(v))
		report(v, "%s is greater than the maximum of %s",
		       num_text(a, sizeof(a), &num), n->maximum.text);
	if (n->exclusive_maximum.set &&
	    schema_num_cmp(&num, &n->exclusive_maximum.v) >= 0 &&
	    !count_only(v))
		report(v, "%s is not less than %s",
		       num_text(a, sizeof(a), &num), n->exclusive_maximum.text);
	if (n->multiple_of.set &&
	    !schema_num_is_multiple(&num, &n->multiple_of.v) && !count_only(v))
		report(v, "%s is not a multiple of %s",
		       num_text(a, sizeof(a), &num), n->multiple_of.text);
}

static void check_string(struct vctx *v, const struct schema_node *n,
			 struct json_object *x)
{
	const char *s = json_object_get_string(x);
	size_t len = (size_t)json_object_get_string_len(x), cps;
	char val[SCHEMA_VALUE_MAX + 8], why[160];
	int rc;

	if (n->min_length || n->max_length != SIZE_MAX) {
		cps = utf8_count(s, len);
		if (cps < n->min_length && !count_only(v))
			report(v, "expected at least %zu character%s, got %zu",
			       n->min_length, plural(n->min_length), cps);
		if (cps > n->max_length && !count_only(v))
			report(v, "expected at most %zu character%s, got %zu",
			       n->max_length, plural(n->max_length), cps);
	}
	if (!n->pattern)
		return;
	if (!v->md) {
		v->md = pcre2_match_data_create(1, NULL);
		if (!v->md) {
			report(v, "out of memory matching pattern %s",
			       n->pattern_text);
			return;
		}
	}
	rc = pcre2_match(n->pattern, (PCRE2_SPTR)s, len, 0, 0, v->md, NULL);
	if (rc >= 0 || count_only(v))
		return;
	value_text(val, sizeof(val), x);
	if (rc == PCRE2_ERROR_NOMATCH) {
		report(v, "%s does not match pattern %s", val, n->pattern_text);
	} else {
		/* e.g. the match limit, against a hostile subject */
		pcre2_get_error_message(rc, (PCRE2_UCHAR *)why, sizeof(why));
		report(v, "%s could not be matched against pattern %s: %s", val,
		       n->pattern_text, why);
	}
}

static void check_array(struct vctx *v, const struct schema_node *n,
			struct json_object *x)
{
	size_t len = json_object_array_length(x), i;

	if (len < n->min_items && !count_only(v))
		report(v, "expected at least %zu item%s, got %zu",
		       n->min_items, plural(n->min_items), len);
	if (len > n->max_items && !count_only(v))
		report(v, "expected at most %zu item%s, got %zu", n->max_items,
		       plural(n->max_items), len);
	if (!n->items)
		return;
	for (i = 0; i < len && !quick_done(v); i++) {
		if (!push_seg(v, NULL, i))
			return;
		check(v, n->items, json_object_array_get_idx(x, i));
		v->depth--;
	}
}

static int prop_find_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct schema_prop *)elem)->name);
}

static void check_object(struct vctx *v, const struct schema_node *n,
			 struct json_object *x)
{
	char q[TOKEN_MAX * 6 + 8];
	const struct schema_prop *prop;
	const struct schema_node *sub;
	struct lh_entry *e;
	const char *key;
	size_t i;

	for (i = 0; i < n->n_required && !quick_done(v); i++)
		if (!json_object_object_get_ex(x, n->required[i], NULL) &&
		    !count_only(v))
			report(v, "missing required property %s",
			       quote(q, sizeof(q), n->required[i],
				     strlen(n->required[i])));
	if (!n->n_props && !n->additional)
		return;
	for (e = lh_table_head(json_object_get_object(x)); e && !quick_done(v);
	     e = lh_entry_next(e)) {
		key = lh_entry_k(e);
		prop = n->n_props ? bsearch(key, n->props, n->n_props,
					    sizeof(*n->props), prop_find_cmp) :
				    NULL;
		sub = prop ? prop->node : n->additional;
		if (!sub)
			continue;
		if (!prop && sub->bool_schema == 0) {
			if (!count_only(v))
				report(v, "property %s is not allowed",
				       quote(q, sizeof(q), key, strlen(key)));
			continue;
		}
		if (!push_seg(v, key, 0))
			return;
		check(v, sub, lh_entry_v(e));
		v->depth--;
	}
}

/*
 * Write, into why, the errors of the anyOf branch that came closest, as
 * "; "-separated messages (our own pointer left out). Kept out of line so
 * its buffers are not on the stack of the quick passes.
 */
static __attribute__((noinline)) void
explain_branch(struct vctx *v, const struct schema_node *branch,
	       struct json_object *x, char *why, size_t size)
{
	char sub[CLOSEST_MAX], here[POINTER_MAX + 8];
	struct vout saved = v->out;
	unsigned count = v->count, dropped;
	struct textbuf o, h;
	const char *line, *end;
	size_t used;

	v->out = (struct vout){ .buf = sub, .cap = sizeof(sub) };
	sub[0] = '\0';
	v->closest++;
	check(v, branch, x);
	v->closest--;
	used = v->out.used;
	dropped = v->out.dropped;
	v->out = saved;
	v->count = count;

	textbuf_init(&h, here, sizeof(here), TEXTBUF_WHOLE);
	out_pointer(&h, v);
	textbuf_add(&h, ": ", 2);
	/* keep room for "; ..." */
	textbuf_init(&o, why, size - 8, TEXTBUF_WHOLE);
	for (line = sub; line < sub + used; line = end + 1) {
		end = memchr(line, '\n', (size_t)(sub + used - line));
		if (!end)
			end = sub + used;
		if (line != sub)
			textbuf_add(&o, "; ", 2);
		if ((size_t)(end - line) >= h.len && !memcmp(line, here, h.len))
			line += h.len;
		textbuf_add(&o, line, (size_t)(end - line));
	}
	if (dropped || textbuf_full(&o)) {
		textbuf_resume(&o, size);
		textbuf_adds(&o, o.len ? "; ..." : "...");
	}
}

static __attribute__((noinline)) void
report_any_of(struct vctx *v, const struct schema_node *n,
	      struct json_object *x)
{
	char why[CLOSEST_MAX];
	unsigned count = v->count, best_score = UINT_MAX, score;
	size_t i, best = 0;

	why[0] = '\0';
	if (v->closest < CLOSEST_NESTING) {
		for (i = 0; i < n->n_any_of; i++) {
			v->mode = VMODE_COUNT;
			v->count = 0;
			check(v, n->any_of[i], x);
			/* a branch for another type is never the closest */
			score = v->count;
			if (n->any_of[i]->types &&
			    !type_matches(n->any_of[i]->types, x))
				score += CLOSEST_TYPE_PENALTY;
			if (score < best_score) {
				best_score = score;
				best = i;
			}
		}
		v->mode = VMODE_TEXT;
		v->count = count;
		explain_branch(v, n->any_of[best], x, why, sizeof(why));
	}
	if (why[0])
		report(v, "does not match any alternative of anyOf "
			  "(closest is #%zu: %s)",
		       best + 1, why);
	else
		report(v, "does not match any alternative of anyOf");
}

static void check_any_of(struct vctx *v, const struct schema_node *n,
			 struct json_object *x)
{
	enum vmode mode = v->mode;
	unsigned count = v->count;
	size_t i;

	for (i = 0; i < n->n_any_of; i++) {
		v->mode = VMODE_QUICK;
		v->count = 0;
		check(v, n->any_of[i], x);
		if (!v->count)
			break;
	}
	v->mode = mode;
	v->count = count;
	if (i < n->n_any_of || count_only(v))
		return;
	report_any_of(v, n, x);
}

static bool enum_has(const struct schema_node *n, const struct json_object *x)
{
	size_t i, len = json_object_array_length(n->enum_list);

	for (i = 0; i < len; i++)
		if (schema_json_equal(x, json_object_array_get_idx(n->enum_list,
								   i)))
			return true;
	return false;
}

/**
 * @brief Check the value x against the node n, at the current location.
 * Errors are counted in v->count and, in text mode, written.
 */
static void check(struct vctx *v, const struct schema_node *n,
		  struct json_object *x)
{
	char val[SCHEMA_VALUE_MAX + 8];
	size_t i;

	if (quick_done(v))
		return;
	if (n->bool_schema >= 0) {
		if (!n->bool_schema)
			report(v, "no value is allowed here");
		return;
	}
	if (v->calls >= SCHEMA_MAX_CALLS) {
		report(v, "validation nested more than %d steps deep",
		       SCHEMA_MAX_CALLS);
		return;
	}
	v->calls++;
	if (n->types && !type_matches(n->types, x)) {
		if (!count_only(v))
			report(v, "expected %s, got %s", n->types_text,
			       kind_name(x));
		goto out;
	}
	if (n->ref)
		check(v, n->ref, x);
	if (n->has_const && !schema_json_equal(x, n->const_value) &&
	    !count_only(v))
		report(v, "%s is not equal to the constant %s",
		       value_text(val, sizeof(val), x), n->const_text);
	if (n->enum_list && !enum_has(n, x) && !count_only(v)) {
		if (json_object_array_length(n->enum_list))
			report(v, "%s is not one of %s",
			       value_text(val, sizeof(val), x), n->enum_text);
		else
			report(v, "%s is not allowed (the enum is empty)",
			       value_text(val, sizeof(val), x));
	}
	switch (json_object_get_type(x)) {
	case json_type_double:
		/* json-c's lenient parser reads NaN and Infinity, and 1e400
		 * overflows: none of them can be written back as JSON */
		if (!isfinite(json_object_get_double(x))) {
			if (!count_only(v))
				report(v, "%s is not a valid JSON number",
				       value_text(val, sizeof(val), x));
			break;
		}
		/* fall through */
	case json_type_int:
		if (n->has_numeric)
			check_number(v, n, x);
		break;
	case json_type_string:
		check_string(v, n, x);
		break;
	case json_type_array:
		check_array(v, n, x);
		break;
	case json_type_object:
		check_object(v, n, x);
		break;
	default:
		break;
	}
	for (i = 0; i < n->n_all_of && !quick_done(v); i++)
		check(v, n->all_of[i], x);
	if (n->n_any_of && !quick_done(v))
		check_any_of(v, n, x);
out:
	v->calls--;
}

unsigned schema_validate(const struct schema *s,
			 struct json_object *instance, char *buf,
			 size_t buf_size)
{
	struct vctx v;

	memset(&v, 0, offsetof(struct vctx, segs));
	v.out.buf = buf;
	v.out.cap = buf ? buf_size : 0;
	if (v.out.cap)
		buf[0] = '\0';
	v.mode = VMODE_TEXT;
	check(&v, s->root, instance);
	out_finish(&v.out);
	pcre2_match_data_free(v.md);
	return v.count;
}

/*
 * schema_util: numbers, equality and bounded text for schema.c; see
 * schema_util.h. Everything here is reentrant and reads json-c values
 * through accessors that do not write to them.
 */
#include "schema_util.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

/* 2^63 and 2^53 as doubles. */
#define TWO_63 9223372036854775808.0
#define TWO_53 9007199254740992.0

/* Deeper values are never equal: a guard against runaway recursion. */
#define EQUAL_MAX_DEPTH 256

/* ---- numbers ---------------------------------------------------------- */

bool schema_num_get(const struct json_object *o, struct schema_num *ret)
{
	int64_t i;
	uint64_t u;

	switch (json_object_get_type(o)) {
	case json_type_int:
		i = json_object_get_int64(o);
		if (i == INT64_MAX) {
			/* json-c stores 2^63.. as uint64 and saturates int64 */
			u = json_object_get_uint64(o);
			if (u > (uint64_t)INT64_MAX) {
				ret->is_int = false;
				ret->i = 0;
				ret->d = (double)u;
				return true;
			}
		}
		ret->is_int = true;
		ret->i = i;
		ret->d = 0.0;
		return true;
	case json_type_double:
		ret->is_int = false;
		ret->i = 0;
		ret->d = json_object_get_double(o);
		return true;
	default:
		return false;
	}
}

/* Compare an int64 with a double exactly (a cast either way may round). */
static int cmp_int_double(int64_t i, double d)
{
	double t;
	int64_t ti;

	if (isnan(d))
		return 0;
	if (d >= TWO_63)
		return -1;
	if (d < -TWO_63)
		return 1;
	t = trunc(d);
	ti = (int64_t)t;
	if (i != ti)
		return i < ti ? -1 : 1;
	if (d > t)
		return -1;
	if (d < t)
		return 1;
	return 0;
}

int schema_num_cmp(const struct schema_num *a, const struct schema_num *b)
{
	if (a->is_int && b->is_int)
		return (a->i > b->i) - (a->i < b->i);
	if (a->is_int)
		return cmp_int_double(a->i, b->d);
	if (b->is_int)
		return -cmp_int_double(b->i, a->d);
	return (a->d > b->d) - (a->d < b->d);
}

bool schema_num_is_integer(const struct schema_num *n)
{
	return n->is_int || (isfinite(n->d) && n->d == trunc(n->d));
}

/* An integral double that fits int64 becomes an int, for exact modulo. */
static struct schema_num num_normalize(const struct schema_num *n)
{
	struct schema_num r = *n;

	if (!r.is_int && isfinite(r.d) && r.d == trunc(r.d) && r.d >= -TWO_63 &&
	    r.d < TWO_63) {
		r.is_int = true;
		r.i = (int64_t)r.d;
	}
	return r;
}

bool schema_num_is_multiple(const struct schema_num *x,
			    const struct schema_num *m)
{
	struct schema_num xn = num_normalize(x), mn = num_normalize(m);
	double xd, md, q;

	if (xn.is_int && mn.is_int) {
		if (mn.i == 0)
			return false;
		if (mn.i == -1)
			return true;
		return xn.i % mn.i == 0;
	}
	xd = xn.is_int ? (double)xn.i : xn.d;
	md = mn.is_int ? (double)mn.i : mn.d;
	if (md == 0.0 || !isfinite(xd))
		return false;
	/* Both integral (x beyond int64): fmod is exact on doubles. */
	if (mn.is_int && xd == trunc(xd))
		return fmod(xd, md) == 0.0;
	q = xd / md;
	if (!isfinite(q))
		return false;
	/*
	 * x and m are decimal texts rounded to binary, and the division
	 * rounds again: q is within about 1.5 ulp of the true quotient. So
	 * 0.0075 / 0.0001 = 74.99999999999999 counts as 75. Beyond 2^53 a
	 * double cannot hold a fraction any more and the rounding error
	 * exceeds 1: no exact answer exists there, and we accept.
	 */
	if (fabs(q) >= TWO_53)
		return true;
	return fabs(q - nearbyint(q)) <= fabs(q) * 4.0 * DBL_EPSILON;
}

/*
 * json_object_get_string() takes a non-const object but only reads a
 * string one (other types would be serialized into a cache: never call it
 * on those).
 */
static struct json_object *unconst(const struct json_object *o)
{
	return (struct json_object *)(uintptr_t)o;
}

/* ---- equality --------------------------------------------------------- */

static bool is_number_type(enum json_type t)
{
	return t == json_type_int || t == json_type_double;
}

static bool json_equal(const struct json_object *a, const struct json_object *b,
		       unsigned depth)
{
	enum json_type ta = json_object_get_type(a);
	enum json_type tb = json_object_get_type(b);
	struct schema_num na, nb;
	struct lh_entry *e;
	struct json_object *bv;
	size_t i, n;

	if (depth > EQUAL_MAX_DEPTH)
		return false;
	if (is_number_type(ta) && is_number_type(tb)) {
		schema_num_get(a, &na);
		schema_num_get(b, &nb);
		return schema_num_cmp(&na, &nb) == 0;
	}
	if (ta != tb)
		return false;
	switch (ta) {
	case json_type_null:
		return true;
	case json_type_boolean:
		return !json_object_get_boolean(a) ==
		       !json_object_get_boolean(b);
	case json_type_string:
		n = (size_t)json_object_get_string_len(a);
		if (n != (size_t)json_object_get_string_len(b))
			return false;
		return memcmp(json_object_get_string(unconst(a)),
			      json_object_get_string(unconst(b)), n) == 0;
	case json_type_array:
		n = json_object_array_length(a);
		if (n != json_object_array_length(b))
			return false;
		for (i = 0; i < n; i++)
			if (!json_equal(json_object_array_get_idx(a, i),
					json_object_array_get_idx(b, i),
					depth + 1))
				return false;
		return true;
	case json_type_object:
		if (json_object_object_length(a) !=
		    json_object_object_length(b))
			return false;
		for (e = lh_table_head(json_object_get_object(a)); e;
		     e = lh_entry_next(e)) {
			if (!json_object_object_get_ex(b, lh_entry_k(e), &bv))
				return false;
			if (!json_equal(lh_entry_v(e), bv, depth + 1))
				return false;
		}
		return true;
	default:
		return false;
	}
}

bool schema_json_equal(const struct json_object *a,
		       const struct json_object *b)
{
	return json_equal(a, b, 0);
}

/* ---- patterns --------------------------------------------------------- */

/* Unicode general categories, long name to short (PropertyValueAliases). */
static const char *const gc_names[][2] = {
	{ "Other", "C" },
	{ "Control", "Cc" },
	{ "Format", "Cf" },
	{ "Unassigned", "Cn" },
	{ "Private_Use", "Co" },
	{ "Surrogate", "Cs" },
	{ "Letter", "L" },
	{ "Cased_Letter", "L&" },
	{ "Lowercase_Letter", "Ll" },
	{ "Modifier_Letter", "Lm" },
	{ "Other_Letter", "Lo" },
	{ "Titlecase_Letter", "Lt" },
	{ "Uppercase_Letter", "Lu" },
	{ "Mark", "M" },
	{ "Combining_Mark", "M" },
	{ "Spacing_Mark", "Mc" },
	{ "Enclosing_Mark", "Me" },
	{ "Nonspacing_Mark", "Mn" },
	{ "Number", "N" },
	{ "Decimal_Number", "Nd" },
	{ "digit", "Nd" },
	{ "Letter_Number", "Nl" },
	{ "Other_Number", "No" },
	{ "Punctuation", "P" },
	{ "punct", "P" },
	{ "Connector_Punctuation", "Pc" },
	{ "Dash_Punctuation", "Pd" },
	{ "Close_Punctuation", "Pe" },
	{ "Final_Punctuation", "Pf" },
	{ "Initial_Punctuation", "Pi" },
	{ "Other_Punctuation", "Po" },
	{ "Open_Punctuation", "Ps" },
	{ "Symbol", "S" },
	{ "Currency_Symbol", "Sc" },
	{ "Modifier_Symbol", "Sk" },
	{ "Math_Symbol", "Sm" },
	{ "Other_Symbol", "So" },
	{ "Separator", "Z" },
	{ "Line_Separator", "Zl" },
	{ "Paragraph_Separator", "Zp" },
	{ "Space_Separator", "Zs" },
	{ "LC", "L&" },
};

/* The short name for the property text [s, s + n), or NULL. */
static const char *gc_short(const char *s, size_t n)
{
	bool prefixed = false;
	size_t i;

	/* "gc=X" and "General_Category=X" name the same as "X" */
	if (n > 3 && !memcmp(s, "gc=", 3)) {
		s += 3;
		n -= 3;
		prefixed = true;
	} else if (n > 17 && !memcmp(s, "General_Category=", 17)) {
		s += 17;
		n -= 17;
		prefixed = true;
	}
	for (i = 0; i < sizeof(gc_names) / sizeof(gc_names[0]); i++) {
		if (strlen(gc_names[i][0]) == n &&
		    !memcmp(gc_names[i][0], s, n))
			return gc_names[i][1];
		/* a short name behind a prefix: \p{gc=Lu} */
		if (prefixed && strlen(gc_names[i][1]) == n &&
		    !memcmp(gc_names[i][1], s, n))
			return gc_names[i][1];
	}
	return NULL;
}

char *schema_ecma_properties(const char *pat, size_t len, size_t *ret_len)
{
	const char *close, *name;
	bool changed = false;
	size_t i = 0, j = 0, n;
	char *out = malloc(len + 1);

	if (!out)
		return NULL;
	while (i < len) {
		if (pat[i] != '\\' || i + 1 >= len) {
			out[j++] = pat[i++];
			continue;
		}
		/* an escape: \p{...} or \P{...} may need a new name */
		close = NULL;
		if ((pat[i + 1] == 'p' || pat[i + 1] == 'P') && i + 2 < len &&
		    pat[i + 2] == '{')
			close = memchr(pat + i + 3, '}', len - i - 3);
		name = close ? gc_short(pat + i + 3,
					(size_t)(close - (pat + i + 3))) :
			       NULL;
		if (!name) {
			out[j++] = pat[i++];
			out[j++] = pat[i++];
			continue;
		}
		n = strlen(name);
		out[j++] = '\\';
		out[j++] = pat[i + 1];
		out[j++] = '{';
		memcpy(out + j, name, n);
		j += n;
		out[j++] = '}';
		i = (size_t)(close - pat) + 1;
		changed = true;
	}
	out[j] = '\0';
	if (!changed) {
		free(out);
		return NULL;
	}
	*ret_len = j;
	return out;
}

/* ---- text ------------------------------------------------------------ */

void schema_out_num(struct textbuf *o, const struct schema_num *n)
{
	char tmp[48];
	int prec;

	if (n->is_int) {
		snprintf(tmp, sizeof(tmp), "%" PRId64, n->i);
		textbuf_adds(o, tmp);
		return;
	}
	/* the shortest text that reads back as the same double */
	for (prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, n->d);
		if (strtod(tmp, NULL) == n->d)
			break;
	}
	if (isfinite(n->d) && !strpbrk(tmp, ".e"))
		memcpy(tmp + strlen(tmp), ".0", 3); /* %.17g needs < 30 bytes */
	textbuf_adds(o, tmp);
}

/*
 * Append one code point of a quoted string or a pointer token, escaped so
 * the message stays one line of valid UTF-8. raw is its UTF-8 form.
 */
static void out_char(struct textbuf *o, uint32_t cp, const char *raw,
		     size_t raw_len, bool json)
{
	char tmp[8];

	if (json && (cp == '"' || cp == '\\')) {
		tmp[0] = '\\';
		tmp[1] = (char)cp;
		textbuf_add(o, tmp, 2);
		return;
	}
	if (cp < 0x20 || cp == 0x7f) {
		switch (cp) {
		case '\n':
			textbuf_add(o, "\\n", 2);
			return;
		case '\r':
			textbuf_add(o, "\\r", 2);
			return;
		case '\t':
			textbuf_add(o, "\\t", 2);
			return;
		default:
			snprintf(tmp, sizeof(tmp), "\\u%04x", (unsigned)cp);
			textbuf_add(o, tmp, 6);
			return;
		}
	}
	textbuf_add(o, raw, raw_len);
}

/* The escaped characters of a string or token, max_cp of them at most. */
static void out_chars(struct textbuf *o, const char *s, size_t n,
		      size_t max_cp, bool json)
{
	size_t i = 0, count = 0, len;
	uint32_t cp;

	while (i < n && !textbuf_full(o)) {
		if (count == max_cp) {
			textbuf_add(o, "...", 3);
			return;
		}
		len = utf8_seq(s + i, n - i, &cp);
		if (!len) {
			textbuf_add(o, "\\ufffd", 6);
			i++;
		} else if (!json && cp == '~') {
			textbuf_add(o, "~0", 2);
			i += len;
		} else if (!json && cp == '/') {
			textbuf_add(o, "~1", 2);
			i += len;
		} else {
			out_char(o, cp, s + i, len, json);
			i += len;
		}
		count++;
	}
}

void schema_out_quoted(struct textbuf *o, const char *s, size_t n,
		       size_t max_cp)
{
	textbuf_add(o, "\"", 1);
	out_chars(o, s, n, max_cp, true);
	textbuf_add(o, "\"", 1);
}

void schema_out_token(struct textbuf *o, const char *s, size_t n,
		      size_t max_cp)
{
	out_chars(o, s, n, max_cp, false);
}

/* Compact JSON of v, written until o is full. */
static void out_json(struct textbuf *o, const struct json_object *v,
		     unsigned depth)
{
	struct schema_num num;
	struct lh_entry *e, *first;
	const char *key;
	size_t i, n;

	if (depth > 8) {
		textbuf_add(o, "...", 3);
		return;
	}
	switch (json_object_get_type(v)) {
	case json_type_null:
		textbuf_adds(o, "null");
		break;
	case json_type_boolean:
		textbuf_adds(o,
			       json_object_get_boolean(v) ? "true" : "false");
		break;
	case json_type_int:
	case json_type_double:
		schema_num_get(v, &num);
		schema_out_num(o, &num);
		break;
	case json_type_string:
		/* get_string only reads a string object; json-c lacks const */
		schema_out_quoted(o, json_object_get_string(unconst(v)),
				  (size_t)json_object_get_string_len(v),
				  SCHEMA_STRING_MAX);
		break;
	case json_type_array:
		textbuf_add(o, "[", 1);
		n = json_object_array_length(v);
		for (i = 0; i < n && !textbuf_full(o); i++) {
			if (i)
				textbuf_add(o, ",", 1);
			out_json(o, json_object_array_get_idx(v, i), depth + 1);
		}
		textbuf_add(o, "]", 1);
		break;
	case json_type_object:
		textbuf_add(o, "{", 1);
		first = lh_table_head(json_object_get_object(v));
		for (e = first; e && !textbuf_full(o); e = lh_entry_next(e)) {
			if (e != first)
				textbuf_add(o, ",", 1);
			key = lh_entry_k(e);
			schema_out_quoted(o, key, strlen(key),
					  SCHEMA_STRING_MAX);
			textbuf_add(o, ":", 1);
			out_json(o, lh_entry_v(e), depth + 1);
		}
		textbuf_add(o, "}", 1);
		break;
	}
}

void schema_out_value(struct textbuf *o, const struct json_object *v)
{
	char tmp[SCHEMA_VALUE_MAX + 1];
	struct textbuf t;

	textbuf_init(&t, tmp, sizeof(tmp), TEXTBUF_WHOLE);
	out_json(&t, v, 0);
	textbuf_add(o, tmp, t.len);
	if (textbuf_full(&t))
		textbuf_add(o, "...", 3);
}

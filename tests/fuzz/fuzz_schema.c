/*
 * fuzz_schema: the JSON Schema validator, with the schema and the instance
 * both taken from the input.
 *
 * Input: "SCHEMA\0INSTANCE" (split at the first NUL); an input without a
 * NUL starts with a 2-byte big-endian length of the schema instead:
 * "LL SCHEMA INSTANCE". Both are parsed with json-c's tokener (deeper than
 * the validator follows, so its own depth cap is reached); the schema is
 * compiled, and the instance is validated three times: into a small
 * buffer, a large one, and no buffer at all.
 *
 * Checked, beyond the sanitizers (schema.h's contract):
 * - compile gives a schema, or NULL with a non-empty reason;
 * - the three calls return the same count;
 * - every buffer is NUL-terminated and is empty iff the count is 0;
 * - every line but a last "... N more errors" is "/POINTER: message", and
 *   the lines written plus N equal the count (no error lost or invented);
 * - compiling and validating modify neither document (printed the same
 *   before and after).
 */
#include "schema.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                    \
	do {                                                                \
		if (!(cond))                                                \
			__builtin_trap();                                   \
	} while (0)

/* Nesting json-c accepts here: past the validator's own cap (128). */
#define FUZZ_JSON_DEPTH 256
/* Fits the longest tail ("... 4294967295 more errors") and little else. */
#define FUZZ_SMALL_BUF 40
#define FUZZ_LARGE_BUF (64u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct json_object *parse(const uint8_t *s, size_t len)
{
	struct json_tokener *tok;
	struct json_object *obj;

	if (len > INT32_MAX)
		return NULL;
	tok = json_tokener_new_ex(FUZZ_JSON_DEPTH);
	if (!tok)
		return NULL;
	obj = json_tokener_parse_ex(tok, (const char *)s, (int)len);
	json_tokener_free(tok);
	return obj;
}

/* A malloc'ed copy of obj printed, to see later that nothing changed. */
static char *print(struct json_object *obj)
{
	const char *s = json_object_to_json_string_ext(obj,
						       JSON_C_TO_STRING_PLAIN);

	FUZZ_CHECK(s);
	s = strdup(s);
	FUZZ_CHECK(s);
	return (char *)s;
}

static bool parse_tail(const char *line, unsigned *ret_n)
{
	char word[8];
	unsigned n;
	int end = 0;

	if (sscanf(line, "... %u more %7[a-z]%n", &n, word, &end) != 2 ||
	    line[end] != '\0')
		return false;
	if (strcmp(word, n == 1 ? "error" : "errors") != 0)
		return false;
	*ret_n = n;
	return true;
}

/* The text of one schema_validate() call, checked against its count. */
static void check_text(char *buf, size_t size, unsigned count)
{
	unsigned lines = 0, more = 0;
	char *line, *next;

	FUZZ_CHECK(memchr(buf, '\0', size));
	FUZZ_CHECK((count == 0) == (buf[0] == '\0'));
	if (!count)
		return;
	for (line = buf; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (!next && parse_tail(line, &more)) {
			FUZZ_CHECK(more > 0);
			break;
		}
		FUZZ_CHECK(line[0] == '/');
		FUZZ_CHECK(strstr(line, ": "));
		lines++;
	}
	FUZZ_CHECK(lines + more == count);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char large[FUZZ_LARGE_BUF];
	const uint8_t *nul, *sch, *ins;
	size_t sch_len, ins_len;
	struct json_object *doc, *inst = NULL;
	struct schema *s;
	char small[FUZZ_SMALL_BUF], err[512];
	char *doc_text, *inst_text = NULL, *after;
	unsigned n_small, n_large, n_none;

	nul = memchr(data, '\0', size);
	if (nul) {
		sch = data;
		sch_len = (size_t)(nul - data);
		ins = nul + 1;
		ins_len = size - sch_len - 1;
	} else {
		if (size < 2)
			return 0;
		sch_len = (size_t)data[0] << 8 | data[1];
		if (sch_len > size - 2)
			sch_len = size - 2;
		sch = data + 2;
		ins = sch + sch_len;
		ins_len = size - 2 - sch_len;
	}

	doc = parse(sch, sch_len);
	if (!doc)
		return 0;
	doc_text = print(doc);

	err[0] = '\0';
	s = schema_compile(doc, err, sizeof(err));
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)));
	if (!s) {
		FUZZ_CHECK(err[0] != '\0');
		goto out;
	}
	FUZZ_CHECK(schema_document(s) == doc);

	inst = parse(ins, ins_len);
	if (!inst)
		goto out;
	inst_text = print(inst);

	memset(small, 'x', sizeof(small));
	n_small = schema_validate(s, inst, small, sizeof(small));
	n_large = schema_validate(s, inst, large, sizeof(large));
	n_none = schema_validate(s, inst, NULL, 0);
	FUZZ_CHECK(n_small == n_large && n_large == n_none);
	check_text(small, sizeof(small), n_small);
	check_text(large, sizeof(large), n_large);

	after = print(inst);
	FUZZ_CHECK(strcmp(after, inst_text) == 0);
	free(after);
out:
	/* The schema holds its own reference: drop ours first. */
	after = print(doc);
	FUZZ_CHECK(strcmp(after, doc_text) == 0);
	free(after);
	json_object_put(doc);
	schema_free(s);
	json_object_put(inst);
	free(doc_text);
	free(inst_text);
	return 0;
}

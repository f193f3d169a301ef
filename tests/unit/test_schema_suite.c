/*
 * The official JSON-Schema-Test-Suite, draft 2020-12, run against
 * common/schema: every file of tests/draft2020-12 (the optional/ folder is
 * left out: format assertions, bignums, ECMA-262 regex corners and other
 * behaviour the specification itself leaves optional).
 *
 *     test_schema_suite DIR
 *
 * DIR is the suite's draft2020-12 folder; ctest runs this through
 * scripts/schema-suite.sh, which fetches the suite from the PyPI source
 * distribution of jsonschema (pinned by version and sha256) into a cache
 * outside the repository.
 *
 * Every *.json file in DIR is an array of cases {description, schema,
 * tests: [{description, data, valid}]}. Each case's schema is compiled and
 * every test's verdict must equal "valid". A case is skipped only for a
 * reason listed below, and both lists are checked both ways:
 *
 * - refusals: schema_compile() refused the schema and its error names
 *   something outside our subset (a keyword, a remote reference, an
 *   embedded resource). Only a refused schema is skipped, so a skip never
 *   hides a keyword we would silently ignore; an entry that matches no
 *   case is an error, so the list cannot go stale.
 * - divergences: the schema compiles but we knowingly judge differently;
 *   at least one of the case's tests must really disagree, or the entry
 *   is an error.
 *
 * Output: each skip reason with its counts, then one line
 * "schema suite: F files, T tests, P passed, S skipped" (T counts every
 * test, skipped ones too). Exit status: 0 when everything passed, 1
 * otherwise, 2 on a usage error.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "schema.h"

struct refusal {
	const char *needle;	/* a part of schema_compile()'s error text */
	const char *reason;
};

/*
 * Our subset is OpenAI's strict structured outputs plus the numeric,
 * string and array bounds around it (common/schema.c lists it); anything
 * else is a compile error there.
 */
#define KW(name) "unsupported keyword '" name "'"
static const struct refusal refusals[] = {
	{ KW("prefixItems"), "tuple validation: strict mode has items only" },
	{ KW("contains"), "contains is not in the strict subset" },
	{ KW("minContains"), "minContains is not in the strict subset" },
	{ KW("maxContains"), "maxContains is not in the strict subset" },
	{ KW("uniqueItems"), "uniqueItems is not in the strict subset" },
	{ KW("unevaluatedItems"),
	  "unevaluatedItems is not in the strict subset" },
	{ KW("unevaluatedProperties"),
	  "unevaluatedProperties is not in the strict subset" },
	{ KW("patternProperties"),
	  "patternProperties is not in the strict subset" },
	{ KW("propertyNames"), "propertyNames is not in the strict subset" },
	{ KW("minProperties"), "minProperties is not in the strict subset" },
	{ KW("maxProperties"), "maxProperties is not in the strict subset" },
	{ KW("dependentRequired"),
	  "dependentRequired is not in the strict subset" },
	{ KW("dependentSchemas"),
	  "dependentSchemas is not in the strict subset" },
	{ KW("oneOf"), "oneOf: strict mode has anyOf only" },
	{ KW("not"), "not is not in the strict subset" },
	{ KW("if"), "if/then/else is not in the strict subset" },
	{ KW("then"), "if/then/else is not in the strict subset" },
	{ KW("else"), "if/then/else is not in the strict subset" },
	{ KW("format"),
	  "format is refused rather than ignored (an annotation in 2020-12, "
	  "an assertion to some models)" },
	{ KW("contentEncoding"), "content* annotations are not supported" },
	{ KW("contentMediaType"), "content* annotations are not supported" },
	{ KW("$anchor"), "$anchor: only JSON-pointer refs (#/$defs/...)" },
	{ KW("$dynamicAnchor"), "$dynamicAnchor/$dynamicRef are not supported" },
	{ KW("$dynamicRef"), "$dynamicAnchor/$dynamicRef are not supported" },
	{ "only local references",
	  "remote $ref (other documents, the metaschema): only local refs" },
	{ "$id is only supported at the root",
	  "$id below the root (embedded schema resources)" },
};
#undef KW

#define N_REFUSALS (sizeof(refusals) / sizeof(refusals[0]))

/* What each refusal skipped: checked at the end. */
static struct {
	unsigned cases, tests;
} refused[N_REFUSALS];

struct divergence {
	const char *file;	/* file name in DIR */
	const char *group;	/* the case's description */
	const char *reason;
};

static const struct divergence divergences[] = {
	{ "vocabulary.json",
	  "schema that uses custom metaschema with with no validation "
	  "vocabulary",
	  "$schema is read as an annotation: a custom metaschema's "
	  "$vocabulary does not switch validation off" },
};

#define N_DIVERGENCES (sizeof(divergences) / sizeof(divergences[0]))

/* The tests of each divergence that really disagree: checked at the end. */
static unsigned differing[N_DIVERGENCES];

struct totals {
	unsigned files, tests, passed, failed, skipped;
};

/* The refusal err matches, or N_REFUSALS. */
static size_t find_refusal(const char *err)
{
	size_t i;

	for (i = 0; i < N_REFUSALS; i++)
		if (strstr(err, refusals[i].needle))
			break;
	return i;
}

/* The divergence listed for this case, or N_DIVERGENCES. */
static size_t find_divergence(const char *file, const char *group)
{
	size_t i;

	for (i = 0; i < N_DIVERGENCES; i++)
		if (!strcmp(divergences[i].file, file) &&
		    !strcmp(divergences[i].group, group))
			break;
	return i;
}
static const char *str_field(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return "?";
	return json_object_get_string(v);
}

/* Every line of an error text reads "POINTER: message" or "... N more". */
static bool well_formed(const char *text)
{
	const char *line = text, *end;

	if (!*text)
		return false;
	for (; *line; line = *end ? end + 1 : end) {
		end = strchr(line, '\n');
		if (!end)
			end = line + strlen(line);
		if (!strncmp(line, "... ", 4))
			continue;
		if (line[0] != '/' || !memchr(line, ':', (size_t)(end - line)))
			return false;
	}
	return true;
}

/* Run one test; true when its verdict is the expected one. */
static bool run_test(const char *file, const char *desc,
		     const struct schema *s, struct json_object *test,
		     bool quiet, struct totals *t)
{
	struct json_object *data, *valid;
	char buf[4096];
	unsigned errors;
	bool expect;

	if (!json_object_object_get_ex(test, "data", &data) ||
	    !json_object_object_get_ex(test, "valid", &valid)) {
		printf("FAIL %s: \"%s\" has a malformed test\n", file, desc);
		t->failed++;
		return false;
	}
	expect = json_object_get_boolean(valid);
	errors = schema_validate(s, data, buf, sizeof(buf));
	if ((errors == 0) != expect) {
		if (!quiet)
			printf("FAIL %s: \"%s\" / \"%s\": expected %s, got "
			       "%s%s\n",
			       file, desc, str_field(test, "description"),
			       expect ? "valid" : "invalid",
			       errors ? "invalid:\n" : "valid",
			       errors ? buf : "");
		return false;
	}
	if (errors && !well_formed(buf)) {
		printf("FAIL %s: \"%s\" / \"%s\": malformed error text:\n%s\n",
		       file, desc, str_field(test, "description"), buf);
		t->failed++;
		return false;
	}
	return true;
}

static void run_case(const char *file, struct json_object *group,
		     struct totals *t)
{
	const char *desc = str_field(group, "description");
	struct json_object *schema_doc, *tests;
	char err[1024];
	struct schema *s;
	size_t refusal, diverge;
	unsigned n, i;

	if (!json_object_object_get_ex(group, "schema", &schema_doc) ||
	    !json_object_object_get_ex(group, "tests", &tests) ||
	    !json_object_is_type(tests, json_type_array)) {
		printf("FAIL %s: case \"%s\" is malformed\n", file, desc);
		t->failed++;
		return;
	}
	n = (unsigned)json_object_array_length(tests);
	t->tests += n;
	s = schema_compile(schema_doc, err, sizeof(err));
	if (!s) {
		refusal = find_refusal(err);
		if (refusal < N_REFUSALS) {
			refused[refusal].cases++;
			refused[refusal].tests += n;
			t->skipped += n;
		} else {
			printf("FAIL %s: \"%s\": schema does not compile: %s\n",
			       file, desc, err);
			t->failed += n;
		}
		return;
	}
	diverge = find_divergence(file, desc);
	for (i = 0; i < n; i++) {
		if (run_test(file, desc, s,
			     json_object_array_get_idx(tests, i),
			     diverge < N_DIVERGENCES, t)) {
			if (diverge == N_DIVERGENCES)
				t->passed++;
		} else if (diverge < N_DIVERGENCES) {
			differing[diverge]++;
		} else {
			t->failed++;
		}
	}
	if (diverge < N_DIVERGENCES)
		t->skipped += n;
	schema_free(s);
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.json names in dir, sorted; NULL when dir cannot be read. */
static char **list_files(const char *dir, size_t *ret_count)
{
	char **names = NULL, **grown;
	size_t count = 0, len;
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return NULL;
	while ((de = readdir(d))) {
		len = strlen(de->d_name);
		if (len < 6 || strcmp(de->d_name + len - 5, ".json"))
			continue;
		grown = realloc(names, (count + 1) * sizeof(*names));
		if (!grown)
			break;
		names = grown;
		names[count] = strdup(de->d_name);
		if (names[count])
			count++;
	}
	closedir(d);
	if (!names)
		names = calloc(1, sizeof(*names));
	qsort(names, count, sizeof(*names), name_cmp);
	*ret_count = count;
	return names;
}

int main(int argc, char **argv)
{
	struct totals t = { 0 };
	struct json_object *doc;
	char **files, path[4096];
	size_t n_files = 0, i, k;
	unsigned stale = 0;
	const char *dir;

	if (argc != 2) {
		fprintf(stderr, "usage: test_schema_suite DIR (the suite's "
				"draft2020-12 folder)\n");
		return 2;
	}
	dir = argv[1];
	files = list_files(dir, &n_files);
	if (!files || !n_files) {
		printf("FAIL: no JSON-Schema-Test-Suite files in %s\n", dir);
		free(files);
		return 1;
	}
	for (i = 0; i < n_files; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		doc = json_object_from_file(path);
		if (!json_object_is_type(doc, json_type_array)) {
			printf("FAIL %s: not a JSON array of cases: %s\n",
			       files[i], json_util_get_last_err() ?
						 json_util_get_last_err() : "");
			t.failed++;
			json_object_put(doc);
			continue;
		}
		t.files++;
		for (k = 0; k < json_object_array_length(doc); k++)
			run_case(files[i], json_object_array_get_idx(doc, k), &t);
		json_object_put(doc);
	}
	for (i = 0; i < N_REFUSALS; i++) {
		if (!refused[i].cases) {
			printf("FAIL refusals: \"%s\" matched no case: remove "
			       "it\n", refusals[i].needle);
			stale++;
			continue;
		}
		printf("skipped %3u tests (%2u cases), %s: %s\n",
		       refused[i].tests, refused[i].cases, refusals[i].needle,
		       refusals[i].reason);
	}
	for (i = 0; i < N_DIVERGENCES; i++) {
		if (!differing[i]) {
			printf("FAIL divergences: %s \"%s\" matched no case, or "
			       "every test in it passes: remove it\n",
			       divergences[i].file, divergences[i].group);
			stale++;
			continue;
		}
		printf("skipped %s \"%s\" (%u tests differ): %s\n",
		       divergences[i].file, divergences[i].group,
		       differing[i], divergences[i].reason);
	}
	if (t.failed)
		printf("%u tests FAILED\n", t.failed);
	printf("schema suite: %u files, %u tests, %u passed, %u skipped\n",
	       t.files, t.tests, t.passed, t.skipped);
	for (i = 0; i < n_files; i++)
		free(files[i]);
	free(files);
	return t.failed || stale ? 1 : 0;
}

/*
 * The official JSON-Schema-Test-Suite (draft 2020-12, the subset kept in
 * shared/json-schema-test-suite) run against common/schema.
 *
 * Every file in the suite directory is read at run time: an array of cases
 * {description, schema, tests: [{description, data, valid}]}. Each case's
 * schema is compiled and every test's verdict must equal "valid". A case
 * that needs something outside our subset is skipped only through the
 * table below, each entry with its reason, and the table is checked both
 * ways: a skipped schema must really be refused by schema_compile() (so a
 * skip never hides a keyword we would silently ignore), and an entry that
 * matches no case is an error (so the table cannot go stale).
 *
 * Exit status: 0 when everything passed, 1 otherwise.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "schema.h"

#define SUITE_DIR EXTRACTD_SHARED_DIR "/json-schema-test-suite/draft2020-12"

struct skip {
	const char *file;	/* file name in SUITE_DIR */
	const char *group;	/* the case's description */
	const char *reason;
};

/*
 * The skip list. Our subset is OpenAI's strict structured outputs: no
 * patternProperties, propertyNames, dependentSchemas, prefixItems, oneOf,
 * not, if/then/else, unevaluated*, $anchor, nor embedded resources ($id
 * below the root) or remote references. Each of these is a compile error
 * in schema.c, which this test verifies for every entry.
 */
static const struct skip skips[] = {
	{ "additionalProperties.json",
	  "additionalProperties being false does not allow other properties",
	  "patternProperties is not supported" },
	{ "additionalProperties.json",
	  "non-ASCII pattern with additionalProperties",
	  "patternProperties is not supported" },
	{ "additionalProperties.json", "additionalProperties with propertyNames",
	  "propertyNames is not supported" },
	{ "additionalProperties.json",
	  "dependentSchemas with additionalProperties",
	  "dependentSchemas is not supported" },
	{ "allOf.json", "allOf combined with anyOf, oneOf",
	  "oneOf is not supported (strict mode has anyOf only)" },
	{ "defs.json", "validate definition against metaschema",
	  "remote $ref to the 2020-12 metaschema: only local refs" },
	{ "items.json", "items and subitems", "prefixItems is not supported" },
	{ "items.json", "prefixItems with no additional items allowed",
	  "prefixItems is not supported" },
	{ "items.json", "items does not look in applicators, valid case",
	  "prefixItems is not supported" },
	{ "items.json", "prefixItems validation adjusts the starting index for items",
	  "prefixItems is not supported" },
	{ "items.json", "items with heterogeneous array",
	  "prefixItems is not supported" },
	{ "properties.json",
	  "properties, patternProperties, additionalProperties interaction",
	  "patternProperties is not supported" },
	{ "ref.json", "relative pointer ref to array",
	  "prefixItems is not supported" },
	{ "ref.json", "remote ref, containing refs itself",
	  "remote ref: only local refs are supported" },
	{ "ref.json", "Recursive references between schemas",
	  "$id below the root (embedded resources) and refs by relative URI" },
	{ "ref.json", "ref creates new scope when adjacent to keywords",
	  "unevaluatedProperties is not supported" },
	{ "ref.json", "refs with relative uris and defs",
	  "$id below the root and refs by relative URI" },
	{ "ref.json", "relative refs with absolute uris and defs",
	  "$id below the root and refs by relative URI" },
	{ "ref.json",
	  "$id must be resolved against nearest parent, not just immediate parent",
	  "$id below the root, not, and a ref by absolute URI" },
	{ "ref.json", "order of evaluation: $id and $ref",
	  "$id below the root and refs by relative URI" },
	{ "ref.json", "order of evaluation: $id and $anchor and $ref",
	  "$anchor is not supported" },
	{ "ref.json", "order of evaluation: $id and $ref on nested schema",
	  "$id below the root and refs by relative URI" },
	{ "ref.json", "URN base URI with URN and anchor ref",
	  "$anchor is not supported" },
	{ "ref.json", "URN ref with nested pointer ref",
	  "$id below the root (a URN-named embedded resource)" },
	{ "ref.json", "ref to if", "if/then/else and $id below the root" },
	{ "ref.json", "ref to then", "if/then/else and $id below the root" },
	{ "ref.json", "ref to else", "if/then/else and $id below the root" },
	{ "ref.json", "ref with absolute-path-reference",
	  "$id below the root and refs by absolute path" },
};

#define N_SKIPS (sizeof(skips) / sizeof(skips[0]))

/* Cases each entry matched: checked at the end. */
static unsigned skip_used[N_SKIPS];

struct totals {
	unsigned files, cases, cases_skipped, tests, passed, failed, skipped;
};

static const struct skip *find_skip(const char *file, const char *group)
{
	size_t i;

	for (i = 0; i < N_SKIPS; i++) {
		if (!strcmp(skips[i].file, file) &&
		    !strcmp(skips[i].group, group)) {
			skip_used[i]++;
			return &skips[i];
		}
	}
	return NULL;
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

static void run_case(const char *file, struct json_object *group,
		     struct totals *t)
{
	const char *desc = str_field(group, "description");
	struct json_object *schema_doc, *tests, *test, *data, *valid;
	const struct skip *skip = find_skip(file, desc);
	char err[1024], buf[4096];
	struct schema *s;
	size_t i, n;
	unsigned errors;
	bool expect;

	t->cases++;
	if (!json_object_object_get_ex(group, "schema", &schema_doc) ||
	    !json_object_object_get_ex(group, "tests", &tests) ||
	    !json_object_is_type(tests, json_type_array)) {
		printf("FAIL %s: case \"%s\" is malformed\n", file, desc);
		t->failed++;
		return;
	}
	n = json_object_array_length(tests);
	s = schema_compile(schema_doc, err, sizeof(err));
	if (skip) {
		t->cases_skipped++;
		t->skipped += (unsigned)n;
		if (s) {
			printf("FAIL %s: \"%s\" is skipped (%s) but its schema "
			       "compiles: run it instead\n",
			       file, desc, skip->reason);
			t->failed++;
			schema_free(s);
		}
		return;
	}
	if (!s) {
		printf("FAIL %s: \"%s\": schema does not compile: %s\n", file,
		       desc, err);
		t->failed += (unsigned)n;
		t->tests += (unsigned)n;
		return;
	}
	for (i = 0; i < n; i++) {
		test = json_object_array_get_idx(tests, i);
		if (!json_object_object_get_ex(test, "data", &data) ||
		    !json_object_object_get_ex(test, "valid", &valid)) {
			printf("FAIL %s: \"%s\" test %zu is malformed\n", file,
			       desc, i);
			t->failed++;
			continue;
		}
		expect = json_object_get_boolean(valid);
		t->tests++;
		errors = schema_validate(s, data, buf, sizeof(buf));
		if ((errors == 0) != expect) {
			printf("FAIL %s: \"%s\" / \"%s\": expected %s, got "
			       "%s%s\n",
			       file, desc, str_field(test, "description"),
			       expect ? "valid" : "invalid",
			       errors ? "invalid:\n" : "valid", errors ? buf : "");
			t->failed++;
		} else if (errors && !well_formed(buf)) {
			printf("FAIL %s: \"%s\" / \"%s\": malformed error text:\n%s\n",
			       file, desc, str_field(test, "description"), buf);
			t->failed++;
		} else {
			t->passed++;
		}
	}
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

int main(void)
{
	struct totals t = { 0 };
	struct json_object *doc;
	char **files, path[4096];
	size_t n_files = 0, i, k;
	unsigned stale = 0;

	files = list_files(SUITE_DIR, &n_files);
	if (!files || !n_files) {
		printf("FAIL: no JSON-Schema-Test-Suite files in %s\n"
		       "It lives in shared/json-schema-test-suite beside the "
		       "repository (configure with -DEXTRACTD_SHARED_DIR=...).\n",
		       SUITE_DIR);
		free(files);
		return 1;
	}
	for (i = 0; i < n_files; i++) {
		snprintf(path, sizeof(path), "%s/%s", SUITE_DIR, files[i]);
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
	for (i = 0; i < N_SKIPS; i++) {
		if (skip_used[i] != 1) {
			printf("FAIL skip list: %s \"%s\" matched %u cases "
			       "(expected 1)\n",
			       skips[i].file, skips[i].group, skip_used[i]);
			stale++;
		}
	}
	printf("json-schema-test-suite draft2020-12: %u files, %u cases "
	       "(%u skipped), %u tests run: %u passed, %u failed; %u tests "
	       "skipped\n",
	       t.files, t.cases, t.cases_skipped, t.tests, t.passed, t.failed,
	       t.skipped);
	for (i = 0; i < n_files; i++)
		free(files[i]);
	free(files);
	return t.failed || stale ? 1 : 0;
}

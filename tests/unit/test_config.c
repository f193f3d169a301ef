/*
 * Unit tests for common/config: defaults, a full file, every kind of error
 * with its exact message, "-s" overrides, origins, relative paths,
 * kafka.properties, and deploy/extractd.cfg against the built-in table.
 * Config files are real files in a mkdtemp() directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define DEPLOY_CFG EXTRACTD_SOURCE_DIR "/deploy/extractd.cfg"

/* The temporary directory and what the tests made in it (removed at the
 * end, newest first). */
static char tmpdir[64];
static char *made[128];
static bool made_dir[128];
static size_t n_made;

static int group_setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	while (n_made > 0) {
		n_made--;
		if (made_dir[n_made])
			rmdir(made[n_made]);
		else
			unlink(made[n_made]);
		free(made[n_made]);
	}
	return rmdir(tmpdir);
}

/** @returns tmpdir/rel, owned by the test group. */
static const char *tmp_path(const char *rel, bool dir)
{
	char *p;

	assert_true(n_made < ARRAY_SIZE(made));
	p = malloc(strlen(tmpdir) + strlen(rel) + 2);
	assert_non_null(p);
	snprintf(p, strlen(tmpdir) + strlen(rel) + 2, "%s/%s", tmpdir, rel);
	made[n_made] = p;
	made_dir[n_made] = dir;
	n_made++;
	return p;
}

/** Create the subdirectory tmpdir/rel. */
static const char *make_dir(const char *rel)
{
	const char *p = tmp_path(rel, true);

	assert_int_equal(mkdir(p, 0700), 0);
	return p;
}

/** Write text to tmpdir/rel (replacing it); returns its path. */
static const char *write_file(const char *rel, const char *text)
{
	const char *p = NULL;
	char want[PATH_MAX];
	size_t i;
	FILE *f;

	snprintf(want, sizeof(want), "%s/%s", tmpdir, rel);
	for (i = 0; i < n_made; i++)
		if (strcmp(made[i], want) == 0)
			p = made[i];
	if (!p)
		p = tmp_path(rel, false);
	f = fopen(p, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	return p;
}

/** Replace every '@' in pattern by path. */
static void expand(char *out, size_t size, const char *pattern,
		   const char *path)
{
	size_t len = 0;

	/* "@:" stands for "PATH:" ("@include" is text). */
	for (; *pattern && len + 1 < size; pattern++) {
		if (pattern[0] == '@' && pattern[1] == ':') {
			len += (size_t)snprintf(out + len, size - len, "%s",
						path);
			if (len >= size)
				len = size - 1;
		} else {
			out[len++] = *pattern;
		}
	}
	out[len] = '\0';
}

/** Load path with overrides; on failure, assert the message. */
static struct extractd_config *load_ok(const char *path,
				       const char *const *ov, size_t n)
{
	struct extractd_config *cfg = NULL;
	char err[512] = "untouched";

	if (cfg_load(path, ov, n, &cfg, err, sizeof(err)) != 0)
		fail_msg("cfg_load failed: %s", err);
	assert_non_null(cfg);
	return cfg;
}

/** Loading must fail with exactly this message ('@' = path). */
static void load_fails(const char *path, const char *const *ov, size_t n,
		       const char *pattern)
{
	struct extractd_config *cfg = (struct extractd_config *)&cfg;
	char err[512], want[512];

	expand(want, sizeof(want), pattern, path ? path : "");
	assert_int_equal(cfg_load(path, ov, n, &cfg, err, sizeof(err)), -1);
	/* ret_cfg is left alone on failure */
	assert_ptr_equal(cfg, (struct extractd_config *)&cfg);
	assert_string_equal(err, want);
}

static const char *value_text(const struct extractd_config *cfg,
			      const char *path)
{
	static char buf[4][1024];
	static unsigned turn;
	char *b = buf[turn++ % 4];

	assert_int_equal(cfg_value_text(cfg, path, b, sizeof(buf[0])), 0);
	return b;
}

/** The checks for "every field holds its default". */
static void assert_defaults(const struct extractd_config *cfg)
{
	assert_string_equal(cfg->kafka.brokers, "localhost:9092");
	assert_string_equal(cfg->kafka.group, "extractd");
	assert_string_equal(cfg->kafka.input_topic, "texts");
	assert_string_equal(cfg->kafka.output_topic, "persons");
	assert_string_equal(cfg->kafka.dlq_topic, "texts.dlq");
	assert_int_equal(cfg->kafka.consumer_threads, 1);
	assert_int_equal(cfg->kafka.n_properties, 0);
	assert_string_equal(cfg->llm.base_url, "https://api.openai.com/v1");
	assert_string_equal(cfg->llm.api_key_env, "OPENAI_API_KEY");
	assert_string_equal(cfg->llm.api_key_file, "");
	assert_string_equal(cfg->llm.model, "gpt-4o-mini");
	assert_int_equal(cfg->llm.mode, CFG_MODE_AUTO);
	assert_string_equal(cfg->llm.api_key_header, "");
	assert_int_equal(cfg->llm.max_tokens, 0);
	assert_int_equal(cfg->llm.max_tokens_limit, 4096);
	assert_int_equal(cfg->llm.timeout_ms, 30000);
	assert_int_equal(cfg->llm.connect_timeout_ms, 10000);
	assert_int_equal(cfg->llm.max_reasks, 2);
	assert_true(cfg->llm.temperature == 0.0);
	assert_int_equal(cfg->llm.max_response_bytes, 1048576);
	assert_string_equal(cfg->schema.name, "Person");
	assert_string_equal(cfg->schema.instructions,
			    "Extract the person described in the user's text.");
	assert_int_equal(cfg->pool.workers, 16);
	assert_int_equal(cfg->pool.max_in_flight, 16);
	assert_int_equal(cfg->rate.requests_per_minute, 0);
	assert_int_equal(cfg->rate.tokens_per_minute, 0);
	assert_true(cfg->rate.usd_per_hour == 0.0);
	assert_true(cfg->rate.usd_per_day == 0.0);
	assert_true(cfg->llm.price.input == 0.0);
	assert_true(cfg->llm.price.cached_input == 0.0);
	assert_true(cfg->llm.price.output == 0.0);
	assert_true(cfg->llm.price.batch_factor == 0.5);
	assert_false(cfg_priced(cfg));
	assert_int_equal(cfg->retry.max_attempts, 6);
	assert_int_equal(cfg->retry.base_delay_ms, 500);
	assert_int_equal(cfg->retry.max_delay_ms, 30000);
	assert_int_equal(cfg->input.max_bytes, 65536);
	assert_int_equal(cfg->input.format, CFG_INPUT_TEXT);
	assert_string_equal(cfg->input.text_pointer, "/text");
	assert_int_equal(cfg->output.carry.n, 0);
	assert_string_equal(cfg->llm.prompt_cache_key, "auto");
	assert_int_equal(cfg->cache.entries, 0);
	assert_int_equal(cfg->cache.max_bytes, 67108864);
	assert_int_equal(cfg->output.ordering, CFG_ORDER_COMPLETION);
	assert_int_equal(cfg->output.partitioning, CFG_PART_AUTO);
	assert_int_equal(cfg->output.delivery, CFG_DELIVERY_AT_LEAST_ONCE);
	assert_int_equal(cfg->output.transaction_ms, 100);
	assert_int_equal(cfg->batch.mode, CFG_BATCH_OFF);
	assert_true(cfg->batch.min_backlog == 1000);
	assert_int_equal(cfg->batch.max_requests, 50000);
	assert_true(cfg->batch.max_wait_s == 60.0);
	assert_int_equal(cfg->batch.poll_ms, 10000);
	assert_int_equal(cfg->batch.max_pending, 100000);
	assert_string_equal(cfg->batch.state_topic, "extractd.batches");
	assert_string_equal(cfg->http.listen, "127.0.0.1:9464");
	assert_int_equal(cfg->log.level, CFG_LOG_INFO);
	assert_int_equal(cfg->log.format, CFG_LOG_JSON);
}

static void defaults_without_file(void **state)
{
	struct extractd_config *cfg;
	size_t i;

	(void)state;
	cfg = load_ok(NULL, NULL, 0);
	assert_defaults(cfg);
	/* No file: relative to the working directory, i.e. as written. */
	assert_string_equal(cfg->schema.file, "schemas/person.schema.json");
	for (i = 0; cfg_setting_path(i); i++)
		assert_string_equal(cfg_origin(cfg, cfg_setting_path(i)),
				    "(default)");
	assert_true(i >= 35);
	assert_string_equal(cfg_setting_path(0), "kafka.brokers");
	assert_string_equal(cfg_setting_path(i - 1), "log.format");
	assert_string_equal(cfg_origin(cfg, "no.such"), "(default)");
	assert_string_equal(cfg_mode_name(cfg->llm.mode), "auto");
	assert_string_equal(cfg_ordering_name(cfg->output.ordering),
			    "completion");
	cfg_free(cfg);

	/* An empty file is all defaults too, and err is cleared. */
	{
		const char *p = write_file("empty.cfg", "# nothing\n");
		char err[64] = "junk";

		assert_int_equal(cfg_load(p, NULL, 0, &cfg, err, sizeof(err)),
				 0);
		assert_string_equal(err, "");
		assert_defaults(cfg);
		cfg_free(cfg);
	}
}

static const char full_cfg[] =
	"# every setting, none at its default\n"                    /* 1 */
	"kafka: {\n"                                                 /* 2 */
	"  brokers = \"k1:9092,k2:9092\";\n"                         /* 3 */
	"  group = \"g1\";\n"                                         /* 4 */
	"  input_topic = \"in.t\";\n"                                 /* 5 */
	"  output_topic = \"out_t\";\n"                               /* 6 */
	"  dlq_topic = \"dlq-t\";\n"                                  /* 7 */
	"  consumer_threads = 4;\n"                                  /* 8 */
	"  properties = (\n"                                         /* 9 */
	"    (\"security.protocol\", \"SASL_SSL\"),\n"                /* 10 */
	"    (\"sasl.password\", \"s3cret\"),\n"                      /* 11 */
	"    (\"linger.ms\", 5),\n"                                   /* 12 */
	"    (\"enable.idempotence\", true),\n"                       /* 13 */
	"    (\"x.float\", 0.25),\n"                                  /* 14 */
	"    (\"x.big\", 5000000000L)\n"                              /* 15 */
	"  );\n"                                                     /* 16 */
	"};\n"                                                       /* 17 */
	"llm: {\n"                                                   /* 18 */
	"  base_url = \"http://localhost:8080/v1//\";\n"             /* 19 */
	"  api_key_env = \"\";\n"                                     /* 20 */
	"  api_key_file = \"/run/credentials/key\";\n"                /* 21 */
	"  model = \"m-1\";\n"                                        /* 22 */
	"  mode = \"md_json\";\n"                                     /* 23 */
	"  timeout_ms = 1000;\n"                                     /* 24 */
	"  connect_timeout_ms = 500;\n"                              /* 25 */
	"  max_reasks = 0;\n"                                        /* 26 */
	"  temperature = 1;\n"                                       /* 27 */
	"  max_response_bytes = 2048;\n"                             /* 28 */
	"};\n"                                                       /* 29 */
	"schema: { file = \"s/x.json\"; name = \"Thing_1-a\";\n"      /* 30 */
	"          instructions = \"Do it.\"; };\n"                   /* 31 */
	"pool: { workers = 4; max_in_flight = 65536; };\n"           /* 32 */
	"rate: { requests_per_minute = 60; tokens_per_minute = 90000; };\n"
	"retry: { max_attempts = 100; base_delay_ms = 0; max_delay_ms = 0; };\n"
	"input: { max_bytes = 1; };\n"                               /* 35 */
	"output: { ordering = \"offset\"; partitioning = \"source\";\n"
	"          delivery = \"exactly-once\"; transaction_ms = 60000; };\n"
	"http: { listen = \"\"; };\n"                                 /* 38 */
	"log: { level = \"debug\"; format = \"text\"; };\n";           /* 39 */

static void full_file(void **state)
{
	struct extractd_config *cfg;
	const char *p;
	char want[PATH_MAX];

	(void)state;
	p = write_file("full.cfg", full_cfg);
	cfg = load_ok(p, NULL, 0);

	assert_string_equal(cfg->kafka.brokers, "k1:9092,k2:9092");
	assert_string_equal(cfg->kafka.group, "g1");
	assert_string_equal(cfg->kafka.input_topic, "in.t");
	assert_string_equal(cfg->kafka.output_topic, "out_t");
	assert_string_equal(cfg->kafka.dlq_topic, "dlq-t");
	assert_int_equal(cfg->kafka.consumer_threads, 4);
	assert_int_equal(cfg->kafka.n_properties, 6);
	assert_string_equal(cfg->llm.base_url, "http://localhost:8080/v1");
	assert_string_equal(cfg->llm.api_key_env, "");
	assert_string_equal(cfg->llm.api_key_file, "/run/credentials/key");
	assert_string_equal(cfg->llm.model, "m-1");
	assert_int_equal(cfg->llm.mode, CFG_MODE_MD_JSON);
	assert_int_equal(cfg->llm.timeout_ms, 1000);
	assert_int_equal(cfg->llm.connect_timeout_ms, 500);
	assert_int_equal(cfg->llm.max_reasks, 0);
	assert_true(cfg->llm.temperature == 1.0); /* an int for a float */
	assert_int_equal(cfg->llm.max_response_bytes, 2048);
	snprintf(want, sizeof(want), "%s/s/x.json", tmpdir);
	assert_string_equal(cfg->schema.file, want);
	assert_string_equal(cfg->schema.name, "Thing_1-a");
	assert_string_equal(cfg->schema.instructions, "Do it.");
	assert_int_equal(cfg->pool.workers, 4);
	assert_int_equal(cfg->pool.max_in_flight, 65536);
	assert_int_equal(cfg->rate.requests_per_minute, 60);
	assert_int_equal(cfg->rate.tokens_per_minute, 90000);
	assert_int_equal(cfg->retry.max_attempts, 100);
	assert_int_equal(cfg->retry.base_delay_ms, 0);
	assert_int_equal(cfg->retry.max_delay_ms, 0);
	assert_int_equal(cfg->input.max_bytes, 1);
	assert_int_equal(cfg->output.ordering, CFG_ORDER_OFFSET);
	assert_int_equal(cfg->output.partitioning, CFG_PART_SOURCE);
	assert_int_equal(cfg->output.delivery, CFG_DELIVERY_EXACTLY_ONCE);
	assert_int_equal(cfg->output.transaction_ms, 60000);
	assert_string_equal(cfg->http.listen, "");
	assert_int_equal(cfg->log.level, CFG_LOG_DEBUG);
	assert_int_equal(cfg->log.format, CFG_LOG_TEXT);
	assert_string_equal(cfg_mode_name(cfg->llm.mode), "md_json");
	assert_string_equal(cfg_ordering_name(cfg->output.ordering), "offset");

	/* Origins: FILE:LINE of each setting. */
	expand(want, sizeof(want), "@:3", p);
	assert_string_equal(cfg_origin(cfg, "kafka.brokers"), want);
	expand(want, sizeof(want), "@:9", p);
	assert_string_equal(cfg_origin(cfg, "kafka.properties"), want);
	expand(want, sizeof(want), "@:27", p);
	assert_string_equal(cfg_origin(cfg, "llm.temperature"), want);
	expand(want, sizeof(want), "@:30", p);
	assert_string_equal(cfg_origin(cfg, "schema.file"), want);
	expand(want, sizeof(want), "@:31", p);
	assert_string_equal(cfg_origin(cfg, "schema.instructions"), want);
	expand(want, sizeof(want), "@:39", p);
	assert_string_equal(cfg_origin(cfg, "log.format"), want);

	/* Values as text. */
	assert_string_equal(value_text(cfg, "llm.temperature"), "1.0");
	assert_string_equal(value_text(cfg, "pool.workers"), "4");
	assert_string_equal(value_text(cfg, "llm.mode"), "\"md_json\"");
	assert_string_equal(value_text(cfg, "kafka.brokers"),
			    "\"k1:9092,k2:9092\"");
	assert_int_equal(cfg_value_text(cfg, "llm.api_key", want, 8), -1);
	assert_int_equal(cfg_value_text(cfg, "nope", want, 8), -1);
	assert_int_equal(cfg_value_text(cfg, "kafka.brokers", want, 8), -1);
	cfg_free(cfg);
}

struct error_case {
	const char *text;     /**< file content */
	const char *message;  /**< expected error, '@' = the file's path */
};

static const struct error_case error_cases[] = {
	/* llm.price: a group inside llm; prices together; caps need them */
	{ "llm: {\n price: { input = -0.5; };\n};\n",
	  "@:2: llm.price.input: must be a number from 0 to 1e+06, "
	  "got -0.5" },
	{ "llm: { price: { output = \"2\"; }; };\n",
	  "@:1: llm.price.output: must be a number from 0 to 1e+06, "
	  "got '2'" },
	{ "llm: { price: { input = 0.15; batch = 0.5; }; };\n",
	  "@:1: llm.price.batch: unknown setting" },
	{ "llm: { price = 0.15; };\n",
	  "@:1: llm.price: must be a group: price = { ... };" },
	{ "llm: { price: { input = 0.15; }; };\n",
	  "@:1: llm.price.input: needs llm.price.output too (dollars per "
	  "million tokens, > 0): a cost needs both prices" },
	{ "llm: { price: { output = 0.6; }; };\n",
	  "@:1: llm.price.output: needs llm.price.input too (dollars per "
	  "million tokens, > 0): a cost needs both prices" },
	{ "llm: { price: { cached_input = 0.075; }; };\n",
	  "@:1: llm.price.cached_input: needs llm.price.input and "
	  "llm.price.output" },
	{ "rate: {\n usd_per_hour = 5.0; };\n",
	  "@:2: rate.usd_per_hour: a spending cap needs llm.price (input and "
	  "output, dollars per million tokens)" },
	{ "rate: { usd_per_day = -1; };\n",
	  "@:1: rate.usd_per_day: must be a number from 0 to 1e+09, got -1" },
	{ "llm: { price: { input = 1; output = 2; }; };\n"
	  "rate: { usd_per_day = 20; };\n"
	  "kafka: { price: { input = 1; }; };\n",
	  "@:3: kafka.price: unknown setting" },
	/* ranges and types */
	{ "pool: { workers = 0; };\n",
	  "@:1: pool.workers: must be an integer from 1 to 4096, got 0" },
	{ "\n\npool: {\n  max_in_flight = 65537;\n};\n",
	  "@:4: pool.max_in_flight: must be an integer from 1 to 65536, "
	  "got 65537" },
	{ "pool: { workers = \"8\"; };\n",
	  "@:1: pool.workers: must be an integer from 1 to 4096, got '8'" },
	{ "pool: { workers = 8.0; };\n",
	  "@:1: pool.workers: must be an integer from 1 to 4096, got 8.0" },
	{ "pool: { workers = true; };\n",
	  "@:1: pool.workers: must be an integer from 1 to 4096, got true" },
	{ "pool: { workers = { }; };\n",
	  "@:1: pool.workers: must be an integer from 1 to 4096, "
	  "got a group" },
	{ "pool: { workers = [1, 2]; };\n",
	  "@:1: pool.workers: must be an integer from 1 to 4096, "
	  "got an array" },
	{ "retry: { base_delay_ms = -1; };\n",
	  "@:1: retry.base_delay_ms: must be an integer from 0 to 3600000, "
	  "got -1" },
	{ "llm: { max_response_bytes = 100; };\n",
	  "@:1: llm.max_response_bytes: must be an integer from 1024 to "
	  "67108864, got 100" },
	{ "llm: { max_reasks = 11; };\n",
	  "@:1: llm.max_reasks: must be an integer from 0 to 10, got 11" },
	{ "kafka: { consumer_threads = 65; };\n",
	  "@:1: kafka.consumer_threads: must be an integer from 1 to 64, "
	  "got 65" },
	{ "input: { max_bytes = 16777217; };\n",
	  "@:1: input.max_bytes: must be an integer from 1 to 16777216, "
	  "got 16777217" },
	{ "retry: { max_attempts = 0; };\n",
	  "@:1: retry.max_attempts: must be an integer from 1 to 100, got 0" },
	{ "output: { transaction_ms = 0; };\n",
	  "@:1: output.transaction_ms: must be an integer from 1 to 60000, "
	  "got 0" },
	{ "llm: { temperature = 2.5; };\n",
	  "@:1: llm.temperature: must be a number from 0 to 2, got 2.5" },
	{ "llm: { temperature = -1; };\n",
	  "@:1: llm.temperature: must be a number from 0 to 2, got -1" },
	{ "llm: { temperature = \"hot\"; };\n",
	  "@:1: llm.temperature: must be a number from 0 to 2, got 'hot'" },
	{ "kafka: { brokers = 5; };\n",
	  "@:1: kafka.brokers: must be a string, got 5" },
	{ "kafka: { brokers = \"\"; };\n",
	  "@:1: kafka.brokers: must not be empty" },
	/* enums */
	{ "# x\nllm: {\n  mode = \"xml\";\n};\n",
	  "@:3: llm.mode: must be one of json_schema, json_object_schema, "
	  "tools, json_object, md_json, auto, got 'xml'" },
	{ "log: { level = 1; };\n",
	  "@:1: log.level: must be one of debug, info, warn, error, got 1" },
	{ "log: { format = \"JSON\"; };\n",
	  "@:1: log.format: must be one of json, text, got 'JSON'" },
	{ "output: { ordering = \"fifo\"; };\n",
	  "@:1: output.ordering: must be one of completion, offset, key, "
	  "got 'fifo'" },
	{ "output: { partitioning = \"random\"; };\n",
	  "@:1: output.partitioning: must be one of auto, key, source, "
	  "got 'random'" },
	{ "output: { delivery = \"at-most-once\"; };\n",
	  "@:1: output.delivery: must be one of at-least-once, exactly-once, "
	  "got 'at-most-once'" },
	/* unknown names and shapes */
	{ "llm: {\n  timeout_ms = 5;\n\n\n\n\n  tiemout_ms = 5;\n};\n",
	  "@:7: llm.tiemout_ms: unknown setting" },
	{ "\nfoo: { bar = 1; };\n", "@:2: foo: unknown setting" },
	{ "workers = 4;\n", "@:1: workers: unknown setting" },
	{ "pool = 5;\n", "@:1: pool: must be a group: pool = { ... };" },
	/* syntax and files */
	{ "log: {\n  level = \"info\";\n};\n\npool = { workers = ; };\n",
	  "@:5: syntax error" },
	{ "pool: { workers = 1; workers = 2; };\n",
	  "@:1: duplicate setting name" },
	{ "\n@include \"missing.cfg\"\n",
	  "@:2: @include 'missing.cfg' is not a readable file" },
	/* libconfig 1.5 would exit(2) on a directory: caught first */
	{ "@include \".\"\n", "@:1: @include '.' is not a readable file" },
	{ "@include \"\"\n", "@:1: @include '' is not a readable file" },
	/* control bytes never break the one-line message */
	{ "llm: { mode = \"json\\nschema\"; };\n",
	  "@:1: llm.mode: must be one of json_schema, json_object_schema, "
	  "tools, json_object, md_json, auto, got 'json?schema'" },
	/* string rules */
	{ "schema: { name = \"Per son\"; };\n",
	  "@:1: schema.name: must match ^[A-Za-z0-9_-]{1,64}$, got 'Per son'" },
	{ "schema: { name = \"\"; };\n",
	  "@:1: schema.name: must match ^[A-Za-z0-9_-]{1,64}$, got ''" },
	{ "schema: { name = \"A234567890234567890234567890234567890234567890234567890234567890X\"; };\n",
	  "@:1: schema.name: must match ^[A-Za-z0-9_-]{1,64}$, got "
	  "'A23456789023456789023456789023456789023456789023456789023456...'" },
	{ "schema: { instructions = \" \\n \"; };\n",
	  "@:1: schema.instructions: must not be empty" },
	{ "schema: { file = \"\"; };\n", "@:1: schema.file: must not be empty" },
	{ "llm: { model = \"\"; };\n", "@:1: llm.model: must not be empty" },
	{ "llm: { base_url = \"ftp://x\"; };\n",
	  "@:1: llm.base_url: must be an http:// or https:// URL, "
	  "got 'ftp://x'" },
	{ "llm: { base_url = \"https:///v1\"; };\n",
	  "@:1: llm.base_url: must be an http:// or https:// URL, "
	  "got 'https:///v1'" },
	{ "llm: { base_url = \"https://a b\"; };\n",
	  "@:1: llm.base_url: must be an http:// or https:// URL, "
	  "got 'https://a b'" },
	{ "llm: { api_key_env = \"1KEY\"; };\n",
	  "@:1: llm.api_key_env: must be the name of an environment "
	  "variable (A-Z a-z 0-9 _, not starting with a digit) or \"\", not "
	  "the key itself (the value is not shown)" },
	{ "http: { listen = \"localhost:70000\"; };\n",
	  "@:1: http.listen: must be \"host:port\" with a port from 0 to "
	  "65535, or \"\" to disable, got 'localhost:70000'" },
	{ "http: { listen = \"9464\"; };\n",
	  "@:1: http.listen: must be \"host:port\" with a port from 0 to "
	  "65535, or \"\" to disable, got '9464'" },
	{ "http: { listen = \"::1:9464\"; };\n",
	  "@:1: http.listen: must be \"host:port\" with a port from 0 to "
	  "65535, or \"\" to disable, got '::1:9464'" },
	{ "kafka: { dlq_topic = \"a b\"; };\n",
	  "@:1: kafka.dlq_topic: must be a Kafka topic name (1 to 249 of "
	  "a-z A-Z 0-9 . _ -), got 'a b'" },
	{ "kafka: { input_topic = \"..\"; };\n",
	  "@:1: kafka.input_topic: must be a Kafka topic name (1 to 249 of "
	  "a-z A-Z 0-9 . _ -), got '..'" },
	/* caches */
	{ "llm: {\n  prompt_cache_key = \"tab\\there\";\n};\n",
	  "@:2: llm.prompt_cache_key: must be \"auto\" (derived from the "
	  "schema and instructions), \"\" (not sent), or at most 64 "
	  "printable ASCII characters, got 'tab?here'" },
	{ "llm: {\n  prompt_cache_key = 7;\n};\n",
	  "@:2: llm.prompt_cache_key: must be a string, got 7" },
	{ "cache: {\n  entries = -1;\n};\n",
	  "@:2: cache.entries: must be an integer from 0 to 1000000, "
	  "got -1" },
	{ "cache: {\n  entries = 10;\n  max_bytes = 1024;\n};\n",
	  "@:3: cache.max_bytes: must be an integer from 65536 to "
	  "2147483647, got 1024" },
	/* rules across settings */
	{ "retry: {\n  max_delay_ms = 100;\n};\n",
	  "@:2: retry.max_delay_ms: must be at least retry.base_delay_ms "
	  "(500), got 100" },
	{ "retry: {\n  base_delay_ms = 40000;\n};\n",
	  "@:2: retry.base_delay_ms: must be at most retry.max_delay_ms "
	  "(30000), got 40000" },
	/* batches */
	{ "llm: { price: { batch_factor = 0; }; };\n",
	  "@:1: llm.price.batch_factor: must be more than 0, got 0" },
	{ "llm: { price: { batch_factor = 1.01; }; };\n",
	  "@:1: llm.price.batch_factor: must be a number from 0 to 1, "
	  "got 1.01" },
	{ "batch: { mode = \"later\"; };\n",
	  "@:1: batch.mode: must be one of off, backlog, always, got 'later'" },
	{ "batch: { min_backlog = 0; };\n",
	  "@:1: batch.min_backlog: must be an integer from 1 to 1000000000, "
	  "got 0" },
	{ "batch: { min_backlog = 1000000001; };\n",
	  "@:1: batch.min_backlog: must be an integer from 1 to 1000000000, "
	  "got 1000000001" },
	{ "batch: { max_requests = 50001; };\n",
	  "@:1: batch.max_requests: must be an integer from 1 to 50000, "
	  "got 50001" },
	{ "batch: { max_wait_s = 0.05; };\n",
	  "@:1: batch.max_wait_s: must be a number from 0.1 to 86400, "
	  "got 0.05" },
	{ "batch: { poll_ms = 9; };\n",
	  "@:1: batch.poll_ms: must be an integer from 10 to 3600000, got 9" },
	{ "batch: { max_pending = 0; };\n",
	  "@:1: batch.max_pending: must be an integer from 1 to 10000000, "
	  "got 0" },
	{ "batch: { state_topic = \"a/b\"; };\n",
	  "@:1: batch.state_topic: must be a Kafka topic name (1 to 249 of "
	  "a-z A-Z 0-9 . _ -), got 'a/b'" },
	{ "batch: {\n  state_topic = \"persons\";\n};\n",
	  "@:2: batch.state_topic: must differ from kafka.output_topic (both "
	  "are 'persons'): the batch state would be mixed into the outputs" },
	{ "batch: {\n  state_topic = \"texts.dlq\";\n};\n",
	  "@:2: batch.state_topic: must differ from kafka.dlq_topic (both "
	  "are 'texts.dlq'): the batch state would be mixed into the dead "
	  "letters" },
	{ "kafka: {\n  input_topic = \"extractd.batches\";\n};\n",
	  "@:2: kafka.input_topic: must differ from batch.state_topic (both "
	  "are 'extractd.batches'): the batch state would be read as input" },
	/* a key's records would wait one by one; of two in the file, the
	 * one later in the table is blamed */
	{ "output: {\n  ordering = \"key\";\n};\n"
	  "batch: {\n  mode = \"backlog\";\n};\n",
	  "@:5: batch.mode: batch.mode = backlog with output.ordering = "
	  "key: not supported (a key's records would wait one by one for "
	  "their batches: use output.ordering = completion or offset)" },
	{ "batch: {\n  mode = \"always\";\n};\n"
	  "output: {\n  ordering = \"key\";\n};\n",
	  "@:2: batch.mode: batch.mode = always with output.ordering = "
	  "key: not supported (a key's records would wait one by one for "
	  "their batches: use output.ordering = completion or offset)" },
	{ "output: {\n  delivery = \"exactly-once\";\n};\n"
	  "batch: {\n  mode = \"always\";\n};\n",
	  "@:5: batch.mode: batch.mode = always with exactly-once: not "
	  "supported (exactly-once releases in offset order, so every later "
	  "record would wait for a batch's answers: use output.delivery = "
	  "at-least-once)" },
	/* key order needs at-least-once */
	{ "output: {\n  ordering = \"key\";\n"
	  "  delivery = \"exactly-once\";\n};\n",
	  "@:3: output.delivery: key order with exactly-once: not supported "
	  "(exactly-once releases in offset order: use output.ordering = "
	  "offset)" },
	/* the three topics differ; the setting given later is blamed */
	{ "kafka: {\n  input_topic = \"a\";\n  dlq_topic = \"a\";\n};\n",
	  "@:3: kafka.dlq_topic: must differ from kafka.input_topic (both "
	  "are 'a'): every dead letter would be read again as input, and "
	  "fail again" },
	{ "kafka: {\n  output_topic = \"texts\";\n};\n",
	  "@:2: kafka.output_topic: must differ from kafka.input_topic (both "
	  "are 'texts'): every output would be read again as input" },
	{ "kafka: {\n  dlq_topic = \"persons\";\n};\n",
	  "@:2: kafka.dlq_topic: must differ from kafka.output_topic (both "
	  "are 'persons'): dead letters would be mixed into the outputs" },
	{ "kafka: {\n  input_topic = \"texts.dlq\";\n};\n",
	  "@:2: kafka.input_topic: must differ from kafka.dlq_topic (both "
	  "are 'texts.dlq'): every dead letter would be read again as input, "
	  "and fail again" },
	{ "kafka: {\n  input_topic = \"x\";\n  output_topic = \"x\";\n"
	  "  dlq_topic = \"x\";\n};\n",
	  "@:3: kafka.output_topic: must differ from kafka.input_topic (both "
	  "are 'x'): every output would be read again as input" },
	/* secrets */
	{ "llm: {\n  api_key_env = \"sk-proj-Hunter2\";\n};\n",
	  "@:2: llm.api_key_env: must be the name of an environment "
	  "variable (A-Z a-z 0-9 _, not starting with a digit) or \"\", not "
	  "the key itself (the value is not shown)" },
	{ "llm: { base_url = \"ftp://user:Hunter2@host/v1\"; };\n",
	  "@:1: llm.base_url: must be an http:// or https:// URL, "
	  "got 'ftp://(redacted)@host/v1'" },
	{ "llm: { base_url = \"https://u:Hunter2@h:1@x y/v1\"; };\n",
	  "@:1: llm.base_url: must be an http:// or https:// URL, "
	  "got 'https://(redacted)@x y/v1'" },
	{ "kafka: { properties = \"sasl.password=Hunter2\"; };\n",
	  "@:1: kafka.properties: must be a list of (\"name\", value) pairs, "
	  "e.g. ((\"linger.ms\", 5)), got a string" },
	{ "kafka: { properties = ( \"sasl.password=Hunter2\" ); };\n",
	  "@:1: kafka.properties: each entry must be a (\"name\", value) "
	  "pair, got a string" },
	{ "kafka: {\n  properties = (\n    (\"sasl.password\", "
	  "\"${env:EXTRACTD_TEST_UNSET}\")\n  );\n};\n",
	  "@:3: kafka.properties.sasl.password: ${env:EXTRACTD_TEST_UNSET}: "
	  "the environment variable is not set" },
	{ "kafka: { properties = ( (\"sasl.password\", \"${env:1X}\") ); };\n",
	  "@:1: kafka.properties.sasl.password: \"${env:NAME}\" needs a "
	  "variable name (A-Z a-z 0-9 _, not starting with a digit)" },
	{ "kafka: { properties = ( (\"sasl.password\", \"${env:}\") ); };\n",
	  "@:1: kafka.properties.sasl.password: \"${env:NAME}\" needs a "
	  "variable name (A-Z a-z 0-9 _, not starting with a digit)" },
	{ "kafka: { properties = ( (\"sasl.password\", \"${file:}\") ); };\n",
	  "@:1: kafka.properties.sasl.password: \"${file:PATH}\" needs a "
	  "path" },
	{ "kafka: { properties = ( (\"sasl.password\", \"${vault:a/b}\") ); "
	  "};\n",
	  "@:1: kafka.properties.sasl.password: a value in ${...} must be "
	  "\"${env:NAME}\" or \"${file:PATH}\"" },
	{ "llm: {\n  api_key = \"sk-123\";\n};\n",
	  "@:2: llm.api_key: API keys are not read from config text; use "
	  "llm.api_key_env or llm.api_key_file" },
	/* kafka.properties */
	{ "kafka: { properties = { linger_ms = 5; }; };\n",
	  "@:1: kafka.properties: must be a list of (\"name\", value) pairs, "
	  "e.g. ((\"linger.ms\", 5)), got a group" },
	{ "kafka: { properties = \"linger.ms=5\"; };\n",
	  "@:1: kafka.properties: must be a list of (\"name\", value) pairs, "
	  "e.g. ((\"linger.ms\", 5)), got a string" },
	{ "kafka: {\n  properties = (\n    (\"a.b\", 1),\n    (\"c\")\n  );\n"
	  "};\n",
	  "@:4: kafka.properties: each entry must be a (\"name\", value) "
	  "pair, got a list" },
	{ "kafka: { properties = ( \"a.b\" ); };\n",
	  "@:1: kafka.properties: each entry must be a (\"name\", value) "
	  "pair, got a string" },
	{ "kafka: { properties = ( (5, 5) ); };\n",
	  "@:1: kafka.properties: each entry must be a (\"name\", value) "
	  "pair, got a list" },
	{ "kafka: { properties = ( (\"a b\", 1) ); };\n",
	  "@:1: kafka.properties: 'a b' is not a property name" },
	{ "kafka: { properties = ( (\"a\", (\"b\")) ); };\n",
	  "@:1: kafka.properties.a: must be a string, number or boolean, "
	  "got a list" },
	{ "kafka: {\n  properties = (\n    (\"linger.ms\", 1),\n"
	  "    (\"linger.ms\", 2)\n  );\n};\n",
	  "@:4: kafka.properties.linger.ms: set twice (first at @:3)" },
};

static void file_errors(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(error_cases); i++) {
		const char *p = write_file("err.cfg", error_cases[i].text);

		print_message("case %zu\n", i);
		load_fails(p, NULL, 0, error_cases[i].message);
	}
}

static void file_cannot_read(void **state)
{
	const char *missing, *dir;

	(void)state;
	missing = tmp_path("does-not-exist.cfg", false);
	load_fails(missing, NULL, 0,
		   "@: cannot read: No such file or directory");
	dir = make_dir("a-directory.cfg");
	load_fails(dir, NULL, 0, "@: cannot read: Is a directory");
	/* A file in a missing directory, relative: same message shape. */
	load_fails("no/such/dir/x.cfg", NULL, 0,
		   "@: cannot read: No such file or directory");
}

/* The batch group: every setting read, written back, and its names. */
static void batch_settings(void **state)
{
	static const char *const ov[] = { "batch.min_backlog=1000000000",
					  "llm.price.batch_factor=1" };
	struct extractd_config *cfg;
	char want[PATH_MAX];
	const char *p;

	(void)state;
	p = write_file("batch.cfg", "batch: {\n"
				    "  mode = \"backlog\";\n"
				    "  min_backlog = 5000;\n"
				    "  max_requests = 1;\n"
				    "  max_wait_s = 0.25;\n"
				    "  poll_ms = 10;\n"
				    "  max_pending = 10000000;\n"
				    "  state_topic = \"bt\";\n"
				    "};\n"
				    "llm: { price: { batch_factor = 0.4; }; "
				    "};\n");
	cfg = load_ok(p, NULL, 0);
	assert_int_equal(cfg->batch.mode, CFG_BATCH_BACKLOG);
	assert_true(cfg->batch.min_backlog == 5000);
	assert_int_equal(cfg->batch.max_requests, 1);
	assert_true(cfg->batch.max_wait_s == 0.25);
	assert_int_equal(cfg->batch.poll_ms, 10);
	assert_int_equal(cfg->batch.max_pending, 10000000);
	assert_string_equal(cfg->batch.state_topic, "bt");
	assert_true(cfg->llm.price.batch_factor == 0.4);
	assert_string_equal(cfg_batch_mode_name(cfg->batch.mode), "backlog");
	assert_string_equal(value_text(cfg, "batch.mode"), "\"backlog\"");
	assert_string_equal(value_text(cfg, "batch.min_backlog"), "5000");
	assert_string_equal(value_text(cfg, "batch.max_wait_s"), "0.25");
	assert_string_equal(value_text(cfg, "llm.price.batch_factor"), "0.4");
	snprintf(want, sizeof(want), "%s:8", p);
	assert_string_equal(cfg_origin(cfg, "batch.state_topic"), want);
	cfg_free(cfg);

	/* The bounds themselves are taken; an integer is a number. */
	cfg = load_ok(p, ov, ARRAY_SIZE(ov));
	assert_true(cfg->batch.min_backlog == 1000000000);
	assert_true(cfg->llm.price.batch_factor == 1.0);
	assert_string_equal(value_text(cfg, "batch.min_backlog"),
			    "1000000000");
	cfg_free(cfg);

	assert_string_equal(cfg_batch_mode_name(CFG_BATCH_OFF), "off");
	assert_string_equal(cfg_batch_mode_name(CFG_BATCH_ALWAYS), "always");
	assert_string_equal(cfg_batch_mode_name((enum cfg_batch_mode)3),
			    "(invalid)");
}

/* llm.price in the file, overridden with -s; a cap beside it. */
static void prices_and_caps(void **state)
{
	static const char *const ov[] = { "llm.price.output=0.6",
					  "rate.usd_per_hour=2.5" };
	static const char *const bad[] = { "llm.price.input=0" };
	struct extractd_config *cfg;
	char want[PATH_MAX];
	const char *p;

	(void)state;
	p = write_file("price.cfg", "llm: {\n  price: {\n    input = 0.15;\n"
				    "    cached_input = 0.075;\n"
				    "    output = 1;\n  };\n};\n");
	cfg = load_ok(p, ov, ARRAY_SIZE(ov));
	assert_true(cfg->llm.price.input == 0.15);
	assert_true(cfg->llm.price.cached_input == 0.075);
	assert_true(cfg->llm.price.output == 0.6);
	assert_true(cfg->rate.usd_per_hour == 2.5);
	assert_true(cfg->rate.usd_per_day == 0.0);
	assert_true(cfg_priced(cfg));
	snprintf(want, sizeof(want), "%s:4", p);
	assert_string_equal(cfg_origin(cfg, "llm.price.cached_input"), want);
	assert_string_equal(cfg_origin(cfg, "llm.price.output"), "-s:1");
	assert_string_equal(value_text(cfg, "llm.price.input"), "0.15");
	cfg_free(cfg);
	load_fails(p, bad, ARRAY_SIZE(bad),
		   "@:5: llm.price.output: needs llm.price.input too (dollars "
		   "per million tokens, > 0): a cost needs both prices");
}

static void overrides(void **state)
{
	static const char *const ov[] = {
		"pool.workers=8",
		"llm.temperature=0.5",
		"llm.model=gpt-4o",
		"llm.mode=tools",
		"  log.level = \"warn\"",
		"schema.instructions=Say who it is, please.",
		"kafka.group=2024",
		"llm.base_url=\"http://x:1/\"",
		"http.listen=",
		"llm.max_response_bytes=0x10000",
		"rate.tokens_per_minute=5000000L",
		"output.delivery=exactly-once",
		"llm.model=a\nb",
		"kafka.brokers=b1:9092, b2:9092",
		"retry.max_delay_ms=1000",
		"retry.base_delay_ms=1000",
		"output.partitioning=key",
	};
	struct extractd_config *cfg;

	(void)state;
	cfg = load_ok(NULL, ov, ARRAY_SIZE(ov));
	assert_int_equal(cfg->pool.workers, 8);
	assert_true(cfg->llm.temperature == 0.5);
	assert_string_equal(cfg->llm.model, "a\nb");
	assert_int_equal(cfg->llm.mode, CFG_MODE_TOOLS);
	assert_int_equal(cfg->log.level, CFG_LOG_WARN);
	assert_string_equal(cfg->schema.instructions,
			    "Say who it is, please.");
	assert_string_equal(cfg->kafka.group, "2024");
	assert_string_equal(cfg->llm.base_url, "http://x:1");
	assert_string_equal(cfg->http.listen, "");
	assert_int_equal(cfg->llm.max_response_bytes, 65536);
	assert_int_equal(cfg->rate.tokens_per_minute, 5000000);
	assert_int_equal(cfg->output.delivery, CFG_DELIVERY_EXACTLY_ONCE);
	assert_string_equal(cfg->kafka.brokers, "b1:9092, b2:9092");
	assert_int_equal(cfg->retry.base_delay_ms, 1000);
	assert_int_equal(cfg->output.partitioning, CFG_PART_KEY);
	assert_string_equal(cfg_origin(cfg, "pool.workers"), "-s:1");
	assert_string_equal(cfg_origin(cfg, "llm.model"), "-s:13");
	assert_string_equal(cfg_origin(cfg, "retry.base_delay_ms"), "-s:16");
	assert_string_equal(cfg_origin(cfg, "pool.max_in_flight"),
			    "(default)");
	cfg_free(cfg);

	/* An int for a float; a plain word for a string. */
	{
		static const char *const ov2[] = { "llm.temperature=2",
						   "llm.model=gpt-4o" };

		cfg = load_ok(NULL, ov2, 2);
		assert_true(cfg->llm.temperature == 2.0);
		assert_string_equal(cfg->llm.model, "gpt-4o");
		cfg_free(cfg);
	}
}

#define SECRET_REFUSED                                                        \
	"holds a secret, and a command line can be read by every user of "   \
	"the host (ps, /proc/PID/cmdline): put it in the config file (mode " \
	"600), or give \"${env:NAME}\" or \"${file:PATH}\" to read it from " \
	"the environment or a file"

static void override_errors(void **state)
{
	static const struct {
		const char *ov[3];
		size_t n;
		const char *message;
	} cases[] = {
		{ { "pool.wrokers=1" }, 1, "-s:1: pool.wrokers: unknown setting" },
		{ { "pool=1" }, 1, "-s:1: pool: unknown setting" },
		{ { "pool.workers=0" }, 1,
		  "-s:1: pool.workers: must be an integer from 1 to 4096, got 0" },
		{ { "pool.workers=eight" }, 1,
		  "-s:1: pool.workers: must be an integer from 1 to 4096, "
		  "got 'eight'" },
		/* libconfig 1.5 would wrap this to 1215752191 */
		{ { "pool.workers=99999999999" }, 1,
		  "-s:1: pool.workers: must be an integer from 1 to 4096, "
		  "got 99999999999" },
		{ { "pool.workers=4294967297" }, 1,
		  "-s:1: pool.workers: must be an integer from 1 to 4096, "
		  "got 4294967297" },
		{ { "pool.workers=" }, 1,
		  "-s:1: pool.workers: must be an integer from 1 to 4096, "
		  "got ''" },
		{ { "pool.workers=1; pool.max_in_flight=2" }, 1,
		  "-s:1: pool.workers: must be an integer from 1 to 4096, "
		  "got '1; pool.max_in_flight=2'" },
		{ { "llm.mode=xml" }, 1,
		  "-s:1: llm.mode: must be one of json_schema, "
		  "json_object_schema, tools, json_object, md_json, auto, "
		  "got 'xml'" },
		{ { "llm.temperature=warm" }, 1,
		  "-s:1: llm.temperature: must be a number from 0 to 2, "
		  "got 'warm'" },
		{ { "llm.model=(1, 2)" }, 1,
		  "-s:1: llm.model: must be a string, got a list" },
		{ { "pool.workers" }, 1, "-s:1: expected path=value" },
		{ { "=5" }, 1, "-s:1: expected path=value" },
		{ { "pool.workers=2", " = 5" }, 2, "-s:2: expected path=value" },
		{ { "pool.workers=2", "llm.mode=tools", "log.level=loud" }, 3,
		  "-s:3: log.level: must be one of debug, info, warn, error, "
		  "got 'loud'" },
		{ { "llm.api_key=sk-123" }, 1,
		  "-s:1: llm.api_key: API keys are not read from config text; "
		  "use llm.api_key_env or llm.api_key_file" },
		{ { "retry.max_delay_ms=10" }, 1,
		  "-s:1: retry.max_delay_ms: must be at least "
		  "retry.base_delay_ms (500), got 10" },
		{ { "llm.max_tokens=5000" }, 1,
		  "-s:1: llm.max_tokens: must be at most "
		  "llm.max_tokens_limit (4096), got 5000" },
		{ { "llm.max_tokens=300", "llm.max_tokens_limit=200" }, 2,
		  "-s:2: llm.max_tokens_limit: must be at least "
		  "llm.max_tokens (300), got 200" },
		{ { "llm.api_key_header=sk-abc def" }, 1,
		  "-s:1: llm.api_key_header: must be the name of the HTTP "
		  "header that carries the key (e.g. \"api-key\"), at most 64 "
		  "token characters, or \"\" for Authorization: Bearer; not "
		  "the key itself (the value is not shown)" },
		/* the later of the two is blamed */
		{ { "retry.max_delay_ms=10", "retry.base_delay_ms=20" }, 2,
		  "-s:2: retry.base_delay_ms: must be at most "
		  "retry.max_delay_ms (10), got 20" },
		{ { "kafka.properties=x" }, 1,
		  "-s:1: kafka.properties: must be a list of (\"name\", value) "
		  "pairs, e.g. ((\"linger.ms\", 5)), got a string" },
		{ { "kafka.properties.=5" }, 1,
		  "-s:1: kafka.properties.: not a property name" },
		{ { "kafka.properties.a b=5" }, 1,
		  "-s:1: kafka.properties.a b: not a property name" },
		{ { "kafka.properties.linger.ms={ x = 1; }" }, 1,
		  "-s:1: kafka.properties.linger.ms: must be a string, number "
		  "or boolean, got a group" },
		{ { "batch.mode=backlog", "output.delivery=exactly-once" }, 2,
		  "-s:2: output.delivery: batch.mode = backlog with "
		  "exactly-once: not supported (exactly-once releases in offset "
		  "order, so every later record would wait for a batch's "
		  "answers: use output.delivery = at-least-once)" },
		{ { "output.ordering=key", "batch.mode=backlog" }, 2,
		  "-s:2: batch.mode: batch.mode = backlog with output.ordering "
		  "= key: not supported (a key's records would wait one by "
		  "one for their batches: use output.ordering = completion or "
		  "offset)" },
		{ { "batch.state_topic=texts" }, 1,
		  "-s:1: batch.state_topic: must differ from kafka.input_topic "
		  "(both are 'texts'): the batch state would be read as "
		  "input" },
		{ { "output.delivery=exactly-once", "output.ordering=key" }, 2,
		  "-s:2: output.ordering: key order with exactly-once: not "
		  "supported (exactly-once releases in offset order: use "
		  "output.ordering = offset)" },
		/* topics */
		{ { "kafka.dlq_topic=texts" }, 1,
		  "-s:1: kafka.dlq_topic: must differ from kafka.input_topic "
		  "(both are 'texts'): every dead letter would be read again "
		  "as input, and fail again" },
		{ { "kafka.output_topic=x", "kafka.input_topic=x" }, 2,
		  "-s:2: kafka.input_topic: must differ from "
		  "kafka.output_topic (both are 'x'): every output would be "
		  "read again as input" },
		/* a secret on the command line */
		{ { "kafka.properties.sasl.password=Hunter2" }, 1,
		  "-s:1: kafka.properties.sasl.password: " SECRET_REFUSED },
		{ { "kafka.properties.ssl.key.password=\"Hunter2\"" }, 1,
		  "-s:1: kafka.properties.ssl.key.password: " SECRET_REFUSED },
		{ { "kafka.properties.sasl.oauthbearer.client.secret=1234" },
		  1,
		  "-s:1: kafka.properties.sasl.oauthbearer.client.secret: "
		  SECRET_REFUSED },
		{ { "kafka.properties=((\"linger.ms\", 5), "
		    "(\"sasl.jaas.config\", \"Hunter2\"))" }, 1,
		  "-s:1: kafka.properties.sasl.jaas.config: " SECRET_REFUSED },
		{ { "kafka.properties.sasl.password="
		    "${env:EXTRACTD_TEST_UNSET}" },
		  1,
		  "-s:1: kafka.properties.sasl.password: "
		  "${env:EXTRACTD_TEST_UNSET}: the environment variable is "
		  "not set" },
		{ { "kafka.properties.sasl.password=${Hunter2}" }, 1,
		  "-s:1: kafka.properties.sasl.password: a value in ${...} "
		  "must be \"${env:NAME}\" or \"${file:PATH}\"" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		print_message("case %zu: %s\n", i, cases[i].ov[0]);
		load_fails(NULL, cases[i].ov, cases[i].n, cases[i].message);
	}
}

static void override_beats_file(void **state)
{
	static const char *const ov[] = { "pool.workers=8",
					  "retry.base_delay_ms=2000" };
	struct extractd_config *cfg;
	const char *p;
	char want[PATH_MAX];

	(void)state;
	p = write_file("ob.cfg", "pool: {\n"
				 "  workers = 4;\n"
				 "  max_in_flight = 32;\n"
				 "};\n"
				 "retry: { max_delay_ms = 5000; };\n");
	cfg = load_ok(p, ov, 1);
	assert_int_equal(cfg->pool.workers, 8);
	assert_int_equal(cfg->pool.max_in_flight, 32);
	assert_string_equal(cfg_origin(cfg, "pool.workers"), "-s:1");
	expand(want, sizeof(want), "@:3", p);
	assert_string_equal(cfg_origin(cfg, "pool.max_in_flight"), want);
	assert_string_equal(cfg_origin(cfg, "llm.model"), "(default)");
	cfg_free(cfg);

	/* A rule broken by an override against the file names the override;
	 * one broken by the file names the file's line. */
	{
		static const char *const ov2[] = { "retry.base_delay_ms=9000" };

		load_fails(p, ov2, 1,
			   "-s:1: retry.base_delay_ms: must be at most "
			   "retry.max_delay_ms (5000), got 9000");
		cfg = load_ok(p, ov, 2);
		assert_int_equal(cfg->retry.base_delay_ms, 2000);
		cfg_free(cfg);
	}
	{
		static const char *const ov3[] = { "retry.base_delay_ms=100" };
		const char *q = write_file("ob2.cfg",
					   "retry: {\n  base_delay_ms = 10;\n"
					   "  max_delay_ms = 5;\n};\n");

		load_fails(q, NULL, 0,
			   "@:3: retry.max_delay_ms: must be at least "
			   "retry.base_delay_ms (10), got 5");
		load_fails(q, ov3, 1,
			   "-s:1: retry.base_delay_ms: must be at most "
			   "retry.max_delay_ms (5), got 100");
	}
	/* File errors come before override errors. */
	{
		static const char *const bad[] = { "pool.workers=0" };
		const char *q = write_file("ob3.cfg", "log: { level = 7; };\n");

		load_fails(q, bad, 1,
			   "@:1: log.level: must be one of debug, info, warn, "
			   "error, got 7");
	}
}

static void relative_paths(void **state)
{
	struct extractd_config *cfg;
	const char *p, *q;
	char want[PATH_MAX], cwd[PATH_MAX];

	(void)state;
	make_dir("etc");
	p = write_file("etc/rel.cfg",
		       "schema: { file = \"my/schema.json\"; };\n"
		       "llm: { api_key_file = \"secrets/key\"; };\n");
	cfg = load_ok(p, NULL, 0);
	snprintf(want, sizeof(want), "%s/etc/my/schema.json", tmpdir);
	assert_string_equal(cfg->schema.file, want);
	snprintf(want, sizeof(want), "%s/etc/secrets/key", tmpdir);
	assert_string_equal(cfg->llm.api_key_file, want);
	cfg_free(cfg);

	/* Absolute paths stay; the default resolves against the file's dir. */
	p = write_file("etc/abs.cfg",
		       "schema: { file = \"/srv/x.json\"; };\n");
	cfg = load_ok(p, NULL, 0);
	assert_string_equal(cfg->schema.file, "/srv/x.json");
	assert_string_equal(cfg->llm.api_key_file, "");
	cfg_free(cfg);
	p = write_file("etc/none.cfg", "pool: { workers = 2; };\n");
	cfg = load_ok(p, NULL, 0);
	snprintf(want, sizeof(want), "%s/etc/schemas/person.schema.json",
		 tmpdir);
	assert_string_equal(cfg->schema.file, want);
	cfg_free(cfg);

	/* A path given with -s is relative to the working directory. */
	{
		static const char *const ov[] = { "schema.file=cli.json",
						  "llm.api_key_file=k" };

		cfg = load_ok(p, ov, 2);
		assert_string_equal(cfg->schema.file, "cli.json");
		assert_string_equal(cfg->llm.api_key_file, "k");
		cfg_free(cfg);
	}

	/* A config named without a directory: relative to the cwd, which is
	 * the config's directory. @include resolves there too. */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(want, sizeof(want), "%s/etc", tmpdir);
	assert_int_equal(chdir(want), 0);
	write_file("etc/inc.cfg", "pool: { workers = 3; };\n"
				  "schema: { file = \"inc.json\"; };\n");
	write_file("etc/main.cfg", "# main\n@include \"inc.cfg\"\n"
				   "log: { level = \"error\"; };\n");
	cfg = load_ok("rel.cfg", NULL, 0);
	assert_string_equal(cfg->schema.file, "my/schema.json");
	assert_string_equal(cfg->llm.api_key_file, "secrets/key");
	assert_string_equal(cfg_origin(cfg, "schema.file"), "rel.cfg:1");
	cfg_free(cfg);
	cfg = load_ok("main.cfg", NULL, 0);
	assert_int_equal(cfg->pool.workers, 3);
	assert_string_equal(cfg_origin(cfg, "pool.workers"), "inc.cfg:1");
	assert_string_equal(cfg_origin(cfg, "log.level"), "main.cfg:3");
	cfg_free(cfg);
	assert_int_equal(chdir(cwd), 0);

	/* The same include through a path with a directory. */
	q = tmp_path("etc/main.cfg", false);
	cfg = load_ok(q, NULL, 0);
	snprintf(want, sizeof(want), "%s/etc/inc.json", tmpdir);
	assert_string_equal(cfg->schema.file, want);
	snprintf(want, sizeof(want), "%s/etc/inc.cfg:1", tmpdir);
	assert_string_equal(cfg_origin(cfg, "pool.workers"), want);
	cfg_free(cfg);
	/* An error inside an included file names that file. */
	write_file("etc/inc.cfg", "pool: {\n  workers = 0;\n};\n");
	{
		struct extractd_config *c2 = NULL;
		char err[512], exp[PATH_MAX];

		assert_int_equal(cfg_load(q, NULL, 0, &c2, err, sizeof(err)),
				 -1);
		snprintf(exp, sizeof(exp),
			 "%s/etc/inc.cfg:2: pool.workers: must be an integer "
			 "from 1 to 4096, got 0",
			 tmpdir);
		assert_string_equal(err, exp);
		write_file("etc/inc.cfg", "pool: {\n  workers = ;\n};\n");
		assert_int_equal(cfg_load(q, NULL, 0, &c2, err, sizeof(err)),
				 -1);
		snprintf(exp, sizeof(exp), "%s/etc/inc.cfg:2: syntax error",
			 tmpdir);
		assert_string_equal(err, exp);
	}
}

static void kafka_properties(void **state)
{
	static const char *const ov[] = {
		"kafka.properties.linger.ms=10",
		"kafka.properties.client.id=abc",
		"kafka.properties.acks=all",
		"kafka.properties.x.quoted=\"two words\"",
		"kafka.properties.x.big=99999999999",
		"kafka.properties.x.float=1.5",
		"kafka.properties.x.bool=false",
	};
	const struct extractd_config *c;
	struct extractd_config *cfg;
	const char *p;
	char want[PATH_MAX];

	(void)state;
	p = write_file("props.cfg", full_cfg);
	cfg = load_ok(p, ov, ARRAY_SIZE(ov));
	c = cfg;
	assert_int_equal(c->kafka.n_properties, 10);
	/* file order, converted to text */
	assert_string_equal(c->kafka.properties[0].name, "security.protocol");
	assert_string_equal(c->kafka.properties[0].value, "SASL_SSL");
	assert_string_equal(c->kafka.properties[1].name, "sasl.password");
	assert_string_equal(c->kafka.properties[1].value, "s3cret");
	assert_string_equal(c->kafka.properties[2].name, "linger.ms");
	assert_string_equal(c->kafka.properties[2].value, "10"); /* -s:1 */
	assert_string_equal(c->kafka.properties[3].name, "enable.idempotence");
	assert_string_equal(c->kafka.properties[3].value, "true");
	assert_string_equal(c->kafka.properties[4].name, "x.float");
	assert_string_equal(c->kafka.properties[4].value, "1.5"); /* -s:6 */
	assert_string_equal(c->kafka.properties[5].name, "x.big");
	assert_string_equal(c->kafka.properties[5].value, "99999999999");
	/* appended by overrides */
	assert_string_equal(c->kafka.properties[6].name, "client.id");
	assert_string_equal(c->kafka.properties[6].value, "abc");
	assert_string_equal(c->kafka.properties[7].name, "acks");
	assert_string_equal(c->kafka.properties[7].value, "all");
	assert_string_equal(c->kafka.properties[8].name, "x.quoted");
	assert_string_equal(c->kafka.properties[8].value, "two words");
	assert_string_equal(c->kafka.properties[9].name, "x.bool");
	assert_string_equal(c->kafka.properties[9].value, "false");

	assert_string_equal(cfg_origin(cfg, "kafka.properties.linger.ms"),
			    "-s:1");
	assert_string_equal(cfg_origin(cfg, "kafka.properties.x.bool"),
			    "-s:7");
	expand(want, sizeof(want), "@:11", p);
	assert_string_equal(cfg_origin(cfg, "kafka.properties.sasl.password"),
			    want);
	expand(want, sizeof(want), "@:13", p);
	assert_string_equal(
		cfg_origin(cfg, "kafka.properties.enable.idempotence"), want);
	assert_string_equal(cfg_origin(cfg, "kafka.properties.nope"),
			    "(default)");

	/* As text, with the secret hidden. */
	assert_string_equal(
		value_text(cfg, "kafka.properties"),
		"((\"security.protocol\", \"SASL_SSL\"), "
		"(\"sasl.password\", \"(redacted)\"), (\"linger.ms\", \"10\"), "
		"(\"enable.idempotence\", \"true\"), (\"x.float\", \"1.5\"), "
		"(\"x.big\", \"99999999999\"), (\"client.id\", \"abc\"), "
		"(\"acks\", \"all\"), (\"x.quoted\", \"two words\"), "
		"(\"x.bool\", \"false\"))");
	cfg_free(cfg);

	/* Without overrides the file's values stand. */
	cfg = load_ok(p, NULL, 0);
	assert_string_equal(cfg->kafka.properties[2].value, "5");
	assert_string_equal(cfg->kafka.properties[4].value, "0.25");
	assert_string_equal(cfg->kafka.properties[5].value, "5000000000");
	cfg_free(cfg);

	/* The empty group form DESIGN.md shows, an empty list, and a whole
	 * list from the command line (replacing the file's). */
	p = write_file("props-empty.cfg", "kafka: { properties = { }; };\n");
	cfg = load_ok(p, NULL, 0);
	assert_int_equal(cfg->kafka.n_properties, 0);
	cfg_free(cfg);
	{
		static const char *const ov2[] = {
			"kafka.properties=((\"a.b\", 1), (\"c.d\", \"x\"))",
			"kafka.properties.c.d=y",
		};

		p = write_file("props-list.cfg",
			       "kafka: { properties = ((\"z\", 1)); };\n");
		cfg = load_ok(p, ov2, 2);
		assert_int_equal(cfg->kafka.n_properties, 2);
		assert_string_equal(cfg->kafka.properties[0].name, "a.b");
		assert_string_equal(cfg->kafka.properties[0].value, "1");
		assert_string_equal(cfg->kafka.properties[1].value, "y");
		assert_string_equal(cfg_origin(cfg, "kafka.properties.a.b"),
				    "-s:1");
		assert_string_equal(cfg_origin(cfg, "kafka.properties.c.d"),
				    "-s:2");
		assert_string_equal(cfg_origin(cfg, "kafka.properties"),
				    "-s:1");
		cfg_free(cfg);
	}
	/* Many properties (growth). */
	{
		char *ovs[40];
		size_t i;

		for (i = 0; i < ARRAY_SIZE(ovs); i++) {
			ovs[i] = malloc(64);
			assert_non_null(ovs[i]);
			snprintf(ovs[i], 64, "kafka.properties.p%zu=%zu", i, i);
		}
		cfg = load_ok(NULL, (const char *const *)ovs, ARRAY_SIZE(ovs));
		assert_int_equal(cfg->kafka.n_properties, ARRAY_SIZE(ovs));
		assert_string_equal(cfg->kafka.properties[39].name, "p39");
		assert_string_equal(cfg->kafka.properties[39].value, "39");
		assert_string_equal(cfg_origin(cfg, "kafka.properties.p39"),
				    "-s:40");
		cfg_free(cfg);
		for (i = 0; i < ARRAY_SIZE(ovs); i++)
			free(ovs[i]);
	}
}

/* Topics: a file's topic repeated by an override names the override; the
 * error names the file's line when the file repeats one. */
static void topics_differ(void **state)
{
	static const char *const ov[] = { "kafka.input_topic=q" };
	static const char *const ov2[] = { "kafka.dlq_topic=q2" };
	struct extractd_config *cfg;
	const char *p;

	(void)state;
	p = write_file("topics.cfg", "kafka: {\n  dlq_topic = \"q\";\n};\n");
	load_fails(p, ov, 1,
		   "-s:1: kafka.input_topic: must differ from kafka.dlq_topic "
		   "(both are 'q'): every dead letter would be read again as "
		   "input, and fail again");
	/* Fixed by a second override, in either order. */
	cfg = load_ok(p, ov2, 1);
	assert_string_equal(cfg->kafka.dlq_topic, "q2");
	cfg_free(cfg);
	{
		static const char *const ov3[] = { "kafka.input_topic=q",
						   "kafka.dlq_topic=q2" };

		cfg = load_ok(p, ov3, 2);
		assert_string_equal(cfg->kafka.input_topic, "q");
		cfg_free(cfg);
	}
	/* Topic names are compared exactly (Kafka's are case-sensitive). */
	{
		static const char *const ov4[] = { "kafka.dlq_topic=Texts" };

		cfg = load_ok(NULL, ov4, 1);
		cfg_free(cfg);
	}
}

/* The one definition of a secret property, by its name. */
static void secret_properties(void **state)
{
	static const char *const secret[] = {
		"sasl.password", "ssl.key.password", "ssl.key.pem",
		"ssl.keystore.password", "sasl.oauthbearer.client.secret",
		"sasl.oauthbearer.config", "sasl.oauthbearer.extensions",
		"sasl.oauthbearer.token.endpoint.url", "sasl.jaas.config",
		"x.api.key", "my.token", "x.passphrase",
	};
	static const char *const not_secret[] = {
		"ssl.key.location", "ssl.keystore.location",
		"sasl.kerberos.keytab", "enable.sasl.oauthbearer.unsecure.jwt",
		"sasl.oauthbearer.method", "sasl.oauthbearer.client.id",
		"sasl.oauthbearer.scope", "sasl.username", "linger.ms",
		"security.protocol", "ssl.certificate.pem", "ssl.ca.location",
	};
	static const char *const ov[] = {
		"kafka.properties.ssl.key.location=/etc/extractd/key.pem",
		"kafka.properties.sasl.oauthbearer.method=oidc",
		"kafka.properties.sasl.username=extractd",
	};
	struct extractd_config *cfg;
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(secret); i++) {
		print_message("%s\n", secret[i]);
		assert_true(cfg_secret_property(secret[i]));
	}
	for (i = 0; i < ARRAY_SIZE(not_secret); i++) {
		print_message("%s\n", not_secret[i]);
		assert_false(cfg_secret_property(not_secret[i]));
	}
	/* Those that are not secrets may be given with -s, and show. */
	cfg = load_ok(NULL, ov, ARRAY_SIZE(ov));
	assert_string_equal(value_text(cfg, "kafka.properties"),
			    "((\"ssl.key.location\", "
			    "\"/etc/extractd/key.pem\"), "
			    "(\"sasl.oauthbearer.method\", \"oidc\"), "
			    "(\"sasl.username\", \"extractd\"))");
	cfg_free(cfg);
}

/* "${env:NAME}" and "${file:PATH}": a secret read from the environment
 * or a file, in a config file or on the command line. No message shows
 * a value. */
static void property_references(void **state)
{
	static const char *const ov[] = {
		"kafka.properties.sasl.password=${env:EXTRACTD_TEST_PW}",
		"kafka.properties.client.id=\"${env:EXTRACTD_TEST_ID}\"",
	};
	struct extractd_config *cfg;
	const char *p, *secret, *fifo, *big;
	char text[256], want[PATH_MAX + 256], err[512], *blob;
	size_t i;

	(void)state;
	assert_int_equal(setenv("EXTRACTD_TEST_PW", "Hunter2-env", 1), 0);
	assert_int_equal(setenv("EXTRACTD_TEST_ID", "id-7", 1), 0);
	assert_int_equal(setenv("EXTRACTD_TEST_EMPTY", "", 1), 0);
	make_dir("refs");
	secret = write_file("refs/kafka-password", "Hunter2-file\r\n\n");
	p = write_file("refs/r.cfg",
		       "kafka: {\n"
		       "  properties = (\n"
		       "    (\"sasl.password\", \"${file:kafka-password}\"),\n"
		       "    (\"ssl.key.password\", "
		       "\"${env:EXTRACTD_TEST_PW}\"),\n"
		       "    (\"client.id\", \"a${b}c\")\n"
		       "  );\n"
		       "};\n");
	cfg = load_ok(p, NULL, 0);
	/* Relative to the config file's directory; line breaks dropped. */
	assert_string_equal(cfg->kafka.properties[0].value, "Hunter2-file");
	assert_string_equal(cfg->kafka.properties[1].value, "Hunter2-env");
	/* Not all in ${...}: not a reference, the text itself. */
	assert_string_equal(cfg->kafka.properties[2].value, "a${b}c");
	expand(want, sizeof(want), "@:4", p);
	assert_string_equal(
		cfg_origin(cfg, "kafka.properties.ssl.key.password"), want);
	assert_string_equal(value_text(cfg, "kafka.properties"),
			    "((\"sasl.password\", \"(redacted)\"), "
			    "(\"ssl.key.password\", \"(redacted)\"), "
			    "(\"client.id\", \"a${b}c\"))");
	cfg_free(cfg);

	/* On the command line: a reference is no secret. */
	cfg = load_ok(NULL, ov, ARRAY_SIZE(ov));
	assert_string_equal(cfg->kafka.properties[0].value, "Hunter2-env");
	assert_string_equal(cfg->kafka.properties[1].value, "id-7");
	cfg_free(cfg);
	snprintf(text, sizeof(text),
		 "kafka.properties.sasl.password=${file:%s}", secret);
	{
		const char *ov2[] = { text };

		cfg = load_ok(NULL, ov2, 1);
		assert_string_equal(cfg->kafka.properties[0].value,
				    "Hunter2-file");
		cfg_free(cfg);
	}

	/* What cannot be read fails with the path, never the contents. */
	write_file("refs/empty", "\n");
	fifo = tmp_path("refs/fifo", false);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	big = write_file("refs/big", "");
	blob = malloc(1048577);
	assert_non_null(blob);
	memset(blob, 'H', 1048577);
	{
		FILE *f = fopen(big, "w");

		assert_non_null(f);
		assert_int_equal(fwrite(blob, 1, 1048577, f), 1048577);
		assert_int_equal(fclose(f), 0);
	}
	free(blob);
	write_file("refs/nul", "Hunter2");
	{
		FILE *f = fopen(tmp_path("refs/nul2", false), "w");

		assert_non_null(f);
		assert_int_equal(fwrite("Hun\0ter2", 1, 8, f), 8);
		assert_int_equal(fclose(f), 0);
	}
	{
		static const struct {
			const char *file, *why;
		} cases[] = {
			{ "no-such", "cannot read: No such file or directory" },
			{ "empty", "is empty" },
			{ "fifo", "not a regular file" },
			{ ".", "not a regular file" },
			{ "big", "larger than 1048576 bytes" },
			{ "nul2", "holds a NUL byte" },
		};

		for (i = 0; i < ARRAY_SIZE(cases); i++) {
			char file[512];

			print_message("%s\n", cases[i].file);
			snprintf(file, sizeof(file),
				 "kafka: {\n  properties = ( "
				 "(\"sasl.password\", \"${file:%s}\") );\n"
				 "};\n", cases[i].file);
			p = write_file("refs/bad.cfg", file);
			snprintf(want, sizeof(want),
				 "%s:2: kafka.properties.sasl.password: "
				 "${file:%s/refs/%s}: %s", p, tmpdir,
				 cases[i].file, cases[i].why);
			assert_int_equal(cfg_load(p, NULL, 0, &cfg, err,
						  sizeof(err)), -1);
			assert_string_equal(err, want);
			assert_null(strstr(err, "Hunter2"));
			assert_null(strstr(err, "HHHH"));
		}
	}
	{
		static const char *const ov3[] = {
			"kafka.properties.sasl.password="
			"${env:EXTRACTD_TEST_EMPTY}",
		};

		load_fails(NULL, ov3, 1,
			   "-s:1: kafka.properties.sasl.password: "
			   "${env:EXTRACTD_TEST_EMPTY}: the environment "
			   "variable is empty");
	}
	unsetenv("EXTRACTD_TEST_PW");
	unsetenv("EXTRACTD_TEST_ID");
	unsetenv("EXTRACTD_TEST_EMPTY");
}

/* input.format, input.text_pointer and output.carry: JSON inputs and the
 * fields carried from them. */
static void json_inputs_and_carry(void **state)
{
	static const char *const ov[] = {
		"output.carry=[\"/meta/customer\"]",
	};
	struct extractd_config *cfg;
	struct json_object *schema;
	char err[512];
	const char *p;

	(void)state;
	p = write_file("carry.cfg",
		       "input = { format = \"json\";\n"
		       "  text_pointer = \"/body\"; };\n"
		       "output = {\n"
		       "  carry = [ \"/id\",\n"
		       "            \"/a~1b\" ];\n"
		       "};\n");
	cfg = load_ok(p, NULL, 0);
	assert_int_equal(cfg->input.format, CFG_INPUT_JSON);
	assert_string_equal(cfg->input.text_pointer, "/body");
	assert_int_equal(cfg->output.carry.n, 2);
	assert_string_equal(cfg->output.carry.items[1], "/a~1b");
	assert_string_equal(value_text(cfg, "output.carry"),
			    "[ \"/id\", \"/a~1b\" ]");
	/* A carried name the schema's properties define clashes. */
	schema = json_tokener_parse("{\"type\": \"object\", \"properties\": "
				    "{\"name\": {}, \"a/b\": {}}}");
	assert_int_equal(cfg_check_carry_schema(cfg, schema, err,
						sizeof(err)), -1);
	expand(err + 256, 256, "@:4: output.carry: \"/a~1b\" would be "
	       "carried as \"a/b\", which the schema's properties also "
	       "define: the model's a/b would be overwritten", p);
	assert_string_equal(err, err + 256);
	json_object_put(schema);
	schema = json_tokener_parse("{\"properties\": {\"name\": {}}}");
	assert_int_equal(cfg_check_carry_schema(cfg, schema, err,
						sizeof(err)), 0);
	json_object_put(schema);
	schema = json_tokener_parse("{\"type\": \"array\"}");
	assert_int_equal(cfg_check_carry_schema(cfg, schema, err,
						sizeof(err)), -1);
	json_object_put(schema);
	cfg_free(cfg);

	/* From the command line, replacing the file's list. */
	cfg = load_ok(p, ov, 1);
	assert_int_equal(cfg->output.carry.n, 1);
	assert_string_equal(cfg->output.carry.items[0], "/meta/customer");
	cfg_free(cfg);

	/* Carry without JSON inputs. */
	p = write_file("carry.cfg", "output = { carry = [ \"/id\" ]; };\n");
	load_fails(p, NULL, 0, "@:1: output.carry: needs input.format = "
		   "\"json\": fields are carried from JSON inputs");
	/* Bad pointers: the entry's own line. */
	p = write_file("carry.cfg",
		       "input = { format = \"json\"; };\n"
		       "output = { carry = [ \"/id\",\n"
		       "  \"id\" ]; };\n");
	load_fails(p, NULL, 0, "@:3: output.carry: 'id' is not a JSON "
		   "Pointer: a JSON Pointer is \"\" or starts with \"/\"");
	p = write_file("carry.cfg",
		       "input = { format = \"json\"; };\n"
		       "output = { carry = [ \"/a~2\" ]; };\n");
	load_fails(p, NULL, 0, "@:2: output.carry: '/a~2' is not a JSON "
		   "Pointer: \"~\" at byte 2: in a JSON Pointer it is only "
		   "\"~0\" (~) or \"~1\" (/)");
	p = write_file("carry.cfg",
		       "input = { format = \"json\"; };\n"
		       "output = { carry = [ \"\" ]; };\n");
	load_fails(p, NULL, 0, "@:2: output.carry: '' names no field to "
		   "carry (its last token, at most 255 bytes, is the field's "
		   "name in the output)");
	p = write_file("carry.cfg",
		       "input = { format = \"json\"; };\n"
		       "output = { carry = [ \"/id\", \"/meta/id\" ]; };\n");
	load_fails(p, NULL, 0, "@:2: output.carry: '/id' and '/meta/id' "
		   "would both be carried as 'id'");
	p = write_file("carry.cfg", "output = { carry = \"/id\"; };\n");
	load_fails(p, NULL, 0, "@:1: output.carry: must be a list of JSON "
		   "Pointers, e.g. [ \"/id\", \"/customer\" ], got '/id'");
	p = write_file("carry.cfg", "input = { text_pointer = \"body\"; };\n");
	load_fails(p, NULL, 0, "@:1: input.text_pointer: 'body' is not a "
		   "JSON Pointer: a JSON Pointer is \"\" or starts with \"/\"");
	p = write_file("carry.cfg", "input = { format = \"xml\"; };\n");
	load_fails(p, NULL, 0, "@:1: input.format: must be one of text, "
		   "json, got 'xml'");
}

/* The example file is the table written out: it loads, every setting is
 * in it, and every value equals the built-in default. */
static void deploy_example_matches_defaults(void **state)
{
	struct extractd_config *defaults, *example;
	char want[PATH_MAX], prefix[PATH_MAX];
	size_t i, n = 0;

	(void)state;
	defaults = load_ok(NULL, NULL, 0);
	example = load_ok(DEPLOY_CFG, NULL, 0);
	snprintf(prefix, sizeof(prefix), "%s:", DEPLOY_CFG);
	for (i = 0; cfg_setting_path(i); i++) {
		const char *path = cfg_setting_path(i);
		const char *got = value_text(example, path);

		if (strncmp(cfg_origin(example, path), prefix,
			    strlen(prefix)) != 0)
			fail_msg("%s is missing from %s", path, DEPLOY_CFG);
		if (strcmp(path, "schema.file") == 0)
			snprintf(want, sizeof(want), "\"%s/deploy/%s\"",
				 EXTRACTD_SOURCE_DIR, defaults->schema.file);
		else
			snprintf(want, sizeof(want), "%s",
				 value_text(defaults, path));
		if (strcmp(got, want) != 0)
			fail_msg("%s: %s = %s, but the default is %s",
				 cfg_origin(example, path), path, got, want);
		n++;
	}
	assert_true(n >= 35);
	assert_defaults(example);
	cfg_free(defaults);
	cfg_free(example);
}

static void free_and_hand_built(void **state)
{
	struct extractd_config hand = { .pool = { .workers = 1 } };
	char err[4];

	(void)state;
	cfg_free(NULL);
	assert_string_equal(cfg_origin(&hand, "pool.workers"), "(default)");
	assert_string_equal(cfg_origin(NULL, "pool.workers"), "(default)");
	assert_null(cfg_setting_path(1000));
	assert_string_equal(cfg_mode_name((enum cfg_llm_mode)99), "(invalid)");
	assert_string_equal(cfg_ordering_name(CFG_ORDER_OFFSET), "offset");
	assert_string_equal(cfg_ordering_name(CFG_ORDER_KEY), "key");
	/* A short error buffer is cut, not overrun. */
	{
		static const char *const ov[] = { "nope=1" };
		struct extractd_config *cfg = NULL;

		assert_int_equal(cfg_load(NULL, ov, 1, &cfg, err, sizeof(err)),
				 -1);
		assert_string_equal(err, "-s:");
		assert_null(cfg);
		assert_int_equal(cfg_load(NULL, ov, 1, &cfg, NULL, 0), -1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults_without_file),
		cmocka_unit_test(full_file),
		cmocka_unit_test(file_errors),
		cmocka_unit_test(file_cannot_read),
		cmocka_unit_test(prices_and_caps),
		cmocka_unit_test(batch_settings),
		cmocka_unit_test(overrides),
		cmocka_unit_test(override_errors),
		cmocka_unit_test(override_beats_file),
		cmocka_unit_test(relative_paths),
		cmocka_unit_test(kafka_properties),
		cmocka_unit_test(topics_differ),
		cmocka_unit_test(secret_properties),
		cmocka_unit_test(property_references),
		cmocka_unit_test(json_inputs_and_carry),
		cmocka_unit_test(deploy_example_matches_defaults),
		cmocka_unit_test(free_and_hand_built),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

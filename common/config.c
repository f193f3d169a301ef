/*
 * config: load the daemon's settings from a libconfig file plus "-s"
 * overrides into struct extractd_config (config.h holds the DESIGN).
 *
 * Everything is driven by cfg_table[]: one row per setting with its type,
 * default, bounds, enum names, extra check and place in the struct. The
 * same rows set the defaults, check values from the file and from
 * overrides, resolve relative paths, free the strings and print values
 * back (cfg_value_text). Adding a setting is one row here, one field in
 * config.h and one line in deploy/extractd.cfg (tests/unit/test_config.c
 * fails when the example file and the table disagree).
 *
 * kafka.properties is a list of ("name", value) pairs, not a group:
 * libconfig setting names are [A-Za-z*][-A-Za-z0-9_*]*, so "linger.ms"
 * cannot be a name, and nearly every librdkafka property has a dot. On the
 * command line, "-s kafka.properties.NAME=VALUE" sets one property; a
 * secret one only as a reference (cfg_prop_value()). Messages about
 * kafka.properties say what kind of value was wrong, never the value.
 *
 * Overrides: "-s path=value" parses value as libconfig parses a value
 * ("v = <value>;"); when that fails, or yields more than one setting, the
 * value is plain text. A string setting also takes a number or boolean as
 * typed ("-s kafka.group=2024"). Blanks around a plain value are dropped.
 * Relative paths given with -s stay relative to the working directory:
 * only paths written in a file resolve against that file's directory.
 *
 * Known limit: libconfig 1.5 wraps an integer literal past 32 bits unless
 * it ends in L. Every integer setting here fits in 31 bits, so a wrapped
 * value is normally caught by the range check; overrides are re-read from
 * their text and never wrap.
 *
 * Not thread-safe (neither is libconfig): load once, at start-up.
 */
#include "config.h"
#include "input.h"
#include "str.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CFG_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define CFG_PROPS_PREFIX "kafka.properties."
#define CFG_DEFAULT_ORIGIN "(default)"
#define CFG_REF_MAX_BYTES (1024 * 1024) /**< largest "${file:PATH}" value */

/* Enums are stored through an int-sized copy (cfg_store_enum). */
_Static_assert(sizeof(enum cfg_llm_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_ordering) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_concurrency) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_partitioning) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_delivery) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_input_format) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_batch_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_log_level) == sizeof(int), "enum size");
_Static_assert(sizeof(enum cfg_log_format) == sizeof(int), "enum size");

enum cfg_type {
	CFG_T_STRING,    /**< char *, strdup'ed */
	CFG_T_UINT,      /**< unsigned */
	CFG_T_SIZE,      /**< size_t */
	CFG_T_U64,       /**< uint64_t */
	CFG_T_DOUBLE,    /**< double; an integer is accepted */
	CFG_T_ENUM,      /**< one of names[], stored as its index */
	CFG_T_PROPS,     /**< kafka.properties: list of ("name", value) */
	CFG_T_LIST,      /**< struct cfg_list of strings, each checked */
	CFG_T_FORBIDDEN, /**< never accepted; why says what to do instead */
};

/** Relative values resolve against the directory of the file they are in. */
#define CFG_F_PATH 0x1u
/** A CFG_T_DOUBLE's min is itself refused: the value must be above it. */
#define CFG_F_ABOVE_MIN 0x2u

/**
 * Extra rule for a string setting. May rewrite value in place (shorten
 * only). Returns 0, or -1 with the reason in why.
 */
typedef int cfg_check_fn(char *value, char *why, size_t why_size);

/** One row of the settings table. */
struct cfg_entry {
	const char *path;          /**< dotted path, "group.name" */
	enum cfg_type type;
	size_t offset;             /**< of the field in extractd_config */
	const char *def_str;       /**< CFG_T_STRING default */
	double def_num;            /**< UINT, SIZE, U64, DOUBLE, ENUM
				     *  default */
	double min, max;           /**< UINT, SIZE, U64, DOUBLE bounds */
	const char *const *names;  /**< CFG_T_ENUM, NULL-terminated */
	cfg_check_fn *check;       /**< CFG_T_STRING extra rule, or NULL */
	unsigned flags;            /**< CFG_F_* */
	const char *why;           /**< CFG_T_FORBIDDEN message */
};

static cfg_check_fn cfg_check_nonempty, cfg_check_topic, cfg_check_url,
	cfg_check_env_name, cfg_check_schema_name, cfg_check_listen,
	cfg_check_header_name, cfg_check_cache_key, cfg_check_pointer,
	cfg_check_carried;

static const char *const cfg_mode_names[] = {
	[CFG_MODE_JSON_SCHEMA] = "json_schema",
	[CFG_MODE_JSON_OBJECT_SCHEMA] = "json_object_schema",
	[CFG_MODE_TOOLS] = "tools",
	[CFG_MODE_JSON_OBJECT] = "json_object",
	[CFG_MODE_MD_JSON] = "md_json",
	[CFG_MODE_AUTO] = "auto",
	[CFG_MODE_AUTO + 1] = NULL,
};
static const char *const cfg_concurrency_names[] = {
	[CFG_CONC_FIXED] = "fixed",
	[CFG_CONC_ADAPTIVE] = "adaptive",
	[CFG_CONC_ADAPTIVE + 1] = NULL,
};
static const char *const cfg_ordering_names[] = {
	[CFG_ORDER_COMPLETION] = "completion",
	[CFG_ORDER_OFFSET] = "offset",
	[CFG_ORDER_KEY] = "key",
	[CFG_ORDER_KEY + 1] = NULL,
};
static const char *const cfg_partitioning_names[] = {
	[CFG_PART_AUTO] = "auto",
	[CFG_PART_KEY] = "key",
	[CFG_PART_SOURCE] = "source",
	[CFG_PART_SOURCE + 1] = NULL,
};
static const char *const cfg_delivery_names[] = {
	[CFG_DELIVERY_AT_LEAST_ONCE] = "at-least-once",
	[CFG_DELIVERY_EXACTLY_ONCE] = "exactly-once",
	[CFG_DELIVERY_EXACTLY_ONCE + 1] = NULL,
};
static const char *const cfg_input_format_names[] = {
	[CFG_INPUT_TEXT] = "text",
	[CFG_INPUT_JSON] = "json",
	[CFG_INPUT_JSON + 1] = NULL,
};
static const char *const cfg_batch_mode_names[] = {
	[CFG_BATCH_OFF] = "off",
	[CFG_BATCH_BACKLOG] = "backlog",
	[CFG_BATCH_ALWAYS] = "always",
	[CFG_BATCH_ALWAYS + 1] = NULL,
};
static const char *const cfg_log_level_names[] = {
	[CFG_LOG_DEBUG] = "debug",
	[CFG_LOG_INFO] = "info",
	[CFG_LOG_WARN] = "warn",
	[CFG_LOG_ERROR] = "error",
	[CFG_LOG_ERROR + 1] = NULL,
};
static const char *const cfg_log_format_names[] = {
	[CFG_LOG_JSON] = "json",
	[CFG_LOG_TEXT] = "text",
	[CFG_LOG_TEXT + 1] = NULL,
};

#define CFG_OFF(grp, name) offsetof(struct extractd_config, grp.name)
#define CFG_STR(grp, name, def, chk, fl)                                     \
	{ .path = #grp "." #name, .type = CFG_T_STRING,                      \
	  .offset = CFG_OFF(grp, name), .def_str = (def), .check = (chk),    \
	  .flags = (fl) }
#define CFG_NUM(grp, name, t, def, lo, hi)                                   \
	{ .path = #grp "." #name, .type = (t), .offset = CFG_OFF(grp, name), \
	  .def_num = (def), .min = (lo), .max = (hi) }
#define CFG_UINT(grp, name, def, lo, hi)                                     \
	CFG_NUM(grp, name, CFG_T_UINT, def, lo, hi)
#define CFG_SIZE(grp, name, def, lo, hi)                                     \
	CFG_NUM(grp, name, CFG_T_SIZE, def, lo, hi)
#define CFG_U64(grp, name, def, lo, hi)                                      \
	CFG_NUM(grp, name, CFG_T_U64, def, lo, hi)
#define CFG_DOUBLE(grp, name, def, lo, hi)                                   \
	CFG_NUM(grp, name, CFG_T_DOUBLE, def, lo, hi)
#define CFG_ENUM(grp, name, def, nm)                                         \
	{ .path = #grp "." #name, .type = CFG_T_ENUM,                        \
	  .offset = CFG_OFF(grp, name), .def_num = (def), .names = (nm) }

/*
 * The settings, in the order of deploy/extractd.cfg. Integer bounds stay
 * below 2^31 (see the libconfig note at the top).
 */
static const struct cfg_entry cfg_table[] = {
	CFG_STR(kafka, brokers, "localhost:9092", cfg_check_nonempty, 0),
	CFG_STR(kafka, group, "extractd", cfg_check_nonempty, 0),
	CFG_STR(kafka, input_topic, "texts", cfg_check_topic, 0),
	CFG_STR(kafka, output_topic, "persons", cfg_check_topic, 0),
	CFG_STR(kafka, dlq_topic, "texts.dlq", cfg_check_topic, 0),
	CFG_UINT(kafka, consumer_threads, 1, 1, 64),
	{ .path = "kafka.properties", .type = CFG_T_PROPS },

	CFG_STR(llm, base_url, "https://api.openai.com/v1", cfg_check_url, 0),
	CFG_STR(llm, api_key_env, "OPENAI_API_KEY", cfg_check_env_name, 0),
	CFG_STR(llm, api_key_file, "", NULL, CFG_F_PATH),
	{ .path = "llm.api_key", .type = CFG_T_FORBIDDEN,
	  .why = "API keys are not read from config text; "
		 "use llm.api_key_env or llm.api_key_file" },
	CFG_STR(llm, api_key_header, "", cfg_check_header_name, 0),
	CFG_STR(llm, model, "gpt-4o-mini", cfg_check_nonempty, 0),
	CFG_ENUM(llm, mode, CFG_MODE_AUTO, cfg_mode_names),
	CFG_UINT(llm, timeout_ms, 30000, 1, 3600000),
	CFG_UINT(llm, connect_timeout_ms, 10000, 1, 600000),
	CFG_UINT(llm, max_reasks, 2, 0, 10),
	CFG_DOUBLE(llm, temperature, 0.0, 0.0, 2.0),
	CFG_SIZE(llm, max_response_bytes, 1048576, 1024, 67108864),
	CFG_UINT(llm, max_tokens, 0, 0, 1000000),
	CFG_UINT(llm, max_tokens_limit, 4096, 1, 1000000),
	CFG_STR(llm, ca_file, "", NULL, CFG_F_PATH),
	CFG_DOUBLE(llm, price.input, 0.0, 0.0, 1e6),
	CFG_DOUBLE(llm, price.cached_input, 0.0, 0.0, 1e6),
	CFG_DOUBLE(llm, price.output, 0.0, 0.0, 1e6),
	{ .path = "llm.price.batch_factor", .type = CFG_T_DOUBLE,
	  .offset = CFG_OFF(llm, price.batch_factor), .def_num = 0.5,
	  .min = 0.0, .max = 1.0, .flags = CFG_F_ABOVE_MIN },
	CFG_STR(llm, prompt_cache_key, "auto", cfg_check_cache_key, 0),

	CFG_STR(schema, file, "schemas/person.schema.json", cfg_check_nonempty,
		CFG_F_PATH),
	CFG_STR(schema, name, "Person", cfg_check_schema_name, 0),
	CFG_STR(schema, instructions,
		"Extract the person described in the user's text.",
		cfg_check_nonempty, 0),

	CFG_UINT(pool, workers, 16, 1, 4096),
	CFG_UINT(pool, max_in_flight, 16, 1, 65536),
	CFG_ENUM(pool, concurrency, CFG_CONC_FIXED, cfg_concurrency_names),

	CFG_UINT(rate, requests_per_minute, 0, 0, INT_MAX),
	CFG_UINT(rate, tokens_per_minute, 0, 0, INT_MAX),
	CFG_DOUBLE(rate, usd_per_hour, 0.0, 0.0, 1e9),
	CFG_DOUBLE(rate, usd_per_day, 0.0, 0.0, 1e9),

	CFG_UINT(retry, max_attempts, 6, 1, 100),
	CFG_UINT(retry, base_delay_ms, 500, 0, 3600000),
	CFG_UINT(retry, max_delay_ms, 30000, 0, 3600000),
	CFG_UINT(retry, max_elapsed_ms, 300000, 1, 86400000),

	CFG_SIZE(input, max_bytes, 65536, 1, 16777216),
	CFG_ENUM(input, format, CFG_INPUT_TEXT, cfg_input_format_names),
	CFG_STR(input, text_pointer, "/text", cfg_check_pointer, 0),

	CFG_UINT(cache, entries, 0, 0, 1000000),
	CFG_SIZE(cache, max_bytes, 67108864, 65536, 2147483647),

	CFG_ENUM(output, ordering, CFG_ORDER_COMPLETION, cfg_ordering_names),
	CFG_ENUM(output, partitioning, CFG_PART_AUTO, cfg_partitioning_names),
	CFG_ENUM(output, delivery, CFG_DELIVERY_AT_LEAST_ONCE,
		 cfg_delivery_names),
	CFG_UINT(output, transaction_ms, 100, 1, 60000),
	{ .path = "output.carry", .type = CFG_T_LIST,
	  .offset = CFG_OFF(output, carry), .check = cfg_check_carried },

	CFG_ENUM(batch, mode, CFG_BATCH_OFF, cfg_batch_mode_names),
	CFG_U64(batch, min_backlog, 1000, 1, 1e9),
	CFG_UINT(batch, max_requests, 50000, 1, 50000),
	CFG_DOUBLE(batch, max_wait_s, 60.0, 0.1, 86400.0),
	CFG_UINT(batch, poll_ms, 10000, 10, 3600000),
	CFG_UINT(batch, max_pending, 100000, 1, 10000000),
	CFG_STR(batch, state_topic, "extractd.batches", cfg_check_topic, 0),

	CFG_UINT(shutdown, timeout_ms, 15000, 1000, 3600000),

	CFG_STR(http, listen, "127.0.0.1:9464", cfg_check_listen, 0),

	CFG_ENUM(log, level, CFG_LOG_INFO, cfg_log_level_names),
	CFG_ENUM(log, format, CFG_LOG_JSON, cfg_log_format_names),
};

#define CFG_N CFG_ARRAY_SIZE(cfg_table)

/** Pairs of unsigned settings where lo must not exceed hi. */
static const struct {
	const char *lo, *hi;
} cfg_order_rules[] = {
	{ "retry.base_delay_ms", "retry.max_delay_ms" },
	{ "llm.max_tokens", "llm.max_tokens_limit" },
};

/** Pairs of string settings that must differ, and why. */
static const struct {
	const char *a, *b, *why;
} cfg_differ_rules[] = {
	{ "kafka.input_topic", "kafka.output_topic",
	  "every output would be read again as input" },
	{ "kafka.input_topic", "kafka.dlq_topic",
	  "every dead letter would be read again as input, and fail again" },
	{ "kafka.output_topic", "kafka.dlq_topic",
	  "dead letters would be mixed into the outputs" },
	{ "kafka.input_topic", "batch.state_topic",
	  "the batch state would be read as input" },
	{ "kafka.output_topic", "batch.state_topic",
	  "the batch state would be mixed into the outputs" },
	{ "kafka.dlq_topic", "batch.state_topic",
	  "the batch state would be mixed into the dead letters" },
};

/** Where values came from; hangs off extractd_config.meta. */
struct cfg_meta {
	char *origin[CFG_N];  /**< "FILE:LINE" or "-s:N"; NULL: default */
	unsigned seq[CFG_N];  /**< 0 default, 1 file, 1 + N for "-s" N */
	char **prop_origin;   /**< parallel to kafka.properties */
	size_t props_cap;     /**< allocated entries of both arrays */
};

/** One value being applied: from the file, or from an override. */
struct cfg_value {
	const config_setting_t *s; /**< parsed value; NULL: plain text raw */
	const char *raw;      /**< the override's text; NULL in a file */
	const char *file;     /**< file it was read from; NULL for "-s" */
	const char *origin;   /**< "FILE:LINE" or "-s:N" */
	unsigned seq;         /**< see cfg_meta.seq */
};

struct cfg_loader {
	struct extractd_config *cfg;
	char *err;
	size_t err_size;
	const char *path;     /**< config file, or NULL */
	const char *dir;      /**< its directory, NULL: none (or no file) */
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

/**
 * @brief Write "ORIGIN: SETTING: message" into the caller's error buffer
 * (either prefix left out when NULL).
 * @returns -1, so callers can "return cfg_fail(...)".
 */
__attribute__((format(printf, 4, 5))) static int
cfg_fail(struct cfg_loader *ld, const char *origin, const char *setting,
	 const char *fmt, ...)
{
	va_list ap;
	size_t len = 0;
	int n;

	if (!ld->err || ld->err_size == 0)
		return -1;
	n = snprintf(ld->err, ld->err_size, "%s%s%s%s",
		     origin ? origin : "", origin ? ": " : "",
		     setting ? setting : "", setting ? ": " : "");
	if (n > 0)
		len = (size_t)n < ld->err_size ? (size_t)n : ld->err_size - 1;
	va_start(ap, fmt);
	vsnprintf(ld->err + len, ld->err_size - len, fmt, ap);
	va_end(ap);
	/* One line whatever the user typed: control bytes in a path or a
	 * quoted value become '?'. */
	for (len = 0; ld->err[len]; len++) {
		if ((unsigned char)ld->err[len] < 0x20 || ld->err[len] == 0x7f)
			ld->err[len] = '?';
	}
	return -1;
}

static int cfg_oom(struct cfg_loader *ld)
{
	return cfg_fail(ld, NULL, NULL, "out of memory");
}

static bool cfg_is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	       c == '\v';
}

/** Skip blanks at both ends of s: returns the start, sets *ret_len. */
static const char *cfg_trim(const char *s, size_t *ret_len)
{
	size_t len;

	while (cfg_is_blank(*s))
		s++;
	len = strlen(s);
	while (len > 0 && cfg_is_blank(s[len - 1]))
		len--;
	*ret_len = len;
	return s;
}

/**
 * @brief Quote a user's value for a message: 'value', cut at 60 bytes
 * with "..." so that a pasted novel does not flood the log.
 * @returns buf.
 */
static const char *cfg_quote(const char *s, size_t len, char *buf,
			     size_t size)
{
	size_t limit = 60;

	if (len > limit) {
		/* Cut on a character boundary, not inside a UTF-8 sequence. */
		limit = utf8_cut(s, limit);
		snprintf(buf, size, "'%.*s...'", (int)limit, s);
	} else {
		snprintf(buf, size, "'%.*s'", (int)len, s);
	}
	return buf;
}

/** Like cfg_quote() for a NUL-terminated string. */
static const char *cfg_quote_str(const char *s, char *buf, size_t size)
{
	return cfg_quote(s, strlen(s), buf, size);
}

/**
 * @brief Read an integer literal as libconfig writes one (decimal or
 * 0x hex, optional L/LL), without libconfig 1.5's 32-bit wrap-around.
 * Values past 64 bits saturate, so any range check rejects them.
 * @returns true when raw is such a literal.
 */
static bool cfg_raw_int(const char *raw, long long *ret)
{
	const char *s, *digits, *end;
	char *stop;
	size_t len;
	long long v;
	int base = 10;

	s = cfg_trim(raw, &len);
	end = s + len;
	digits = s;
	if (digits < end && (*digits == '+' || *digits == '-'))
		digits++;
	if (end - digits > 2 && digits[0] == '0' &&
	    (digits[1] == 'x' || digits[1] == 'X'))
		base = 16;
	if (digits >= end || !((*digits >= '0' && *digits <= '9')))
		return false;
	errno = 0;
	v = strtoll(s, &stop, base);
	if (stop < end && (*stop == 'L' || *stop == 'l'))
		stop++;
	if (stop < end && (*stop == 'L' || *stop == 'l'))
		stop++;
	if (stop != end)
		return false;
	*ret = v; /* on ERANGE strtoll saturated: out of any range */
	return true;
}

/** The directory part of path, or NULL (and 0) when it has none. */
static int cfg_dirname(const char *path, char **ret)
{
	const char *slash = strrchr(path, '/');

	*ret = NULL;
	if (!slash)
		return 0;
	*ret = slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
	return *ret ? 0 : -1;
}

/** @returns rel resolved against dir (NULL: as is), malloc'ed. */
static char *cfg_resolve(const char *dir, const char *rel)
{
	if (!dir || rel[0] == '\0' || rel[0] == '/')
		return strdup(rel);
	if (strcmp(dir, "/") == 0)
		return str_printf("/%s", rel);
	return str_printf("%s/%s", dir, rel);
}

/**
 * @brief The file a setting was read from, malloc'ed. libconfig 1.5
 * records an @include'd file by the name written in the directive, but
 * opens it relative to the include directory (the config's directory).
 */
static char *cfg_source_file(const struct cfg_loader *ld,
			     const config_setting_t *s)
{
	const char *file = config_setting_source_file(s);

	if (!file || strcmp(file, ld->path) == 0)
		return strdup(ld->path);
	return cfg_resolve(ld->dir, file);
}

/** @returns "FILE:LINE" for a setting read from a file, malloc'ed. */
static char *cfg_file_origin(const struct cfg_loader *ld,
			     const config_setting_t *s)
{
	char *file = cfg_source_file(ld, s), *origin;

	if (!file)
		return NULL;
	origin = str_printf("%s:%u", file,
			    (unsigned)config_setting_source_line(s));
	free(file);
	return origin;
}

/** @returns the index of path in cfg_table, or -1. */
static int cfg_find(const char *path)
{
	size_t i;

	for (i = 0; i < CFG_N; i++)
		if (strcmp(cfg_table[i].path, path) == 0)
			return (int)i;
	return -1;
}

/** True when some setting lives in group name. */
static bool cfg_group_known(const char *name)
{
	size_t i, len = strlen(name);

	for (i = 0; i < CFG_N; i++)
		if (strncmp(cfg_table[i].path, name, len) == 0 &&
		    cfg_table[i].path[len] == '.')
			return true;
	return false;
}

static void *cfg_field(const struct extractd_config *cfg,
		       const struct cfg_entry *e)
{
	return (char *)cfg + e->offset;
}

static void cfg_store_enum(void *field, int value)
{
	memcpy(field, &value, sizeof(value));
}

static int cfg_load_enum(const void *field)
{
	int value;

	memcpy(&value, field, sizeof(value));
	return value;
}

/** "a, b, c" for an enum's names, into buf. */
static const char *cfg_join_names(const char *const *names, char *buf,
				  size_t size)
{
	size_t len = 0;
	int n;

	buf[0] = '\0';
	for (; *names; names++) {
		n = snprintf(buf + len, size - len, "%s%s", len ? ", " : "",
			     *names);
		if (n < 0 || (size_t)n >= size - len)
			break;
		len += (size_t)n;
	}
	return buf;
}

/**
 * @brief Shortest text that reads back as d ("0.5", not
 * "0.50000000000000000").
 */
static void cfg_format_double(double d, char *buf, size_t size)
{
	int prec;

	for (prec = 1; prec <= 17; prec++) {
		snprintf(buf, size, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
}

/* ------------------------------------------------------------------ */
/* Reading values                                                      */
/* ------------------------------------------------------------------ */

/** True for libconfig's integer types. */
static bool cfg_is_int(const config_setting_t *s)
{
	return config_setting_type(s) == CONFIG_TYPE_INT ||
	       config_setting_type(s) == CONFIG_TYPE_INT64;
}

/** The integer in v, re-read from an override's text when it has one. */
static bool cfg_int_of(const struct cfg_value *v, long long *ret)
{
	if (!v->s || !cfg_is_int(v->s))
		return false;
	*ret = config_setting_get_int64(v->s);
	if (v->raw)
		cfg_raw_int(v->raw, ret);
	return true;
}

/** The number in v: a float, or an integer (accepted for floats). */
static bool cfg_number_of(const struct cfg_value *v, double *ret)
{
	long long i;

	if (cfg_int_of(v, &i)) {
		*ret = (double)i;
		return true;
	}
	if (!v->s || config_setting_type(v->s) != CONFIG_TYPE_FLOAT)
		return false;
	*ret = config_setting_get_float(v->s);
	return true;
}

/**
 * @brief The text a string setting gets from v: a string value, or for an
 * override the value as typed when it is plain text, a number or a
 * boolean (blanks around it dropped).
 * @returns false when v holds something else (a number in a file, a group).
 */
static bool cfg_text_of(const struct cfg_value *v, const char **ret,
			size_t *ret_len)
{
	if (v->s && config_setting_type(v->s) == CONFIG_TYPE_STRING) {
		*ret = config_setting_get_string(v->s);
		*ret_len = strlen(*ret);
		return true;
	}
	if (v->raw && (!v->s || config_setting_is_scalar(v->s))) {
		*ret = cfg_trim(v->raw, ret_len);
		return true;
	}
	return false;
}

/** What v holds, for "got ..." in messages: '8', 8, 0.5, true, a group. */
static const char *cfg_describe(const struct cfg_value *v, char *buf,
				size_t size)
{
	const config_setting_t *s = v->s;
	const char *t;
	size_t len;

	if (!s) {
		t = cfg_trim(v->raw, &len);
		return cfg_quote(t, len, buf, size);
	}
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_STRING:
		return cfg_quote_str(config_setting_get_string(s), buf, size);
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		if (v->raw) {
			t = cfg_trim(v->raw, &len);
			snprintf(buf, size, "%.*s", (int)len, t);
		} else {
			snprintf(buf, size, "%lld",
				 config_setting_get_int64(s));
		}
		return buf;
	case CONFIG_TYPE_FLOAT:
		cfg_format_double(config_setting_get_float(s), buf, size);
		len = strlen(buf);
		if (!strpbrk(buf, ".eEn") && len + 3 <= size)
			memcpy(buf + len, ".0", 3);
		return buf;
	case CONFIG_TYPE_BOOL:
		return config_setting_get_bool(s) ? "true" : "false";
	case CONFIG_TYPE_GROUP:
		return "a group";
	case CONFIG_TYPE_ARRAY:
		return "an array";
	case CONFIG_TYPE_LIST:
		return "a list";
	default:
		return "nothing";
	}
}

/**
 * @brief What kind of value v holds, without its contents ("a string"),
 * for kafka.properties, where a value may be a secret.
 */
static const char *cfg_describe_kind(const struct cfg_value *v)
{
	if (!v->s)
		return "a string";
	switch (config_setting_type(v->s)) {
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return "an integer";
	case CONFIG_TYPE_FLOAT:
		return "a float";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_GROUP:
		return "a group";
	case CONFIG_TYPE_ARRAY:
		return "an array";
	case CONFIG_TYPE_LIST:
		return "a list";
	default:
		return "nothing";
	}
}

/**
 * @brief A property value as text for librdkafka: strings as they are,
 * numbers in decimal, booleans as "true"/"false".
 * @param s parsed value, or NULL for plain text raw
 * @param raw the override's text, or NULL
 * @returns 0 with *ret malloc'ed, 1 when s is not a scalar, -1 when out
 *          of memory.
 */
static int cfg_scalar_text(const config_setting_t *s, const char *raw,
			   char **ret)
{
	struct cfg_value v = { .s = s, .raw = raw };
	char num[64];
	const char *t;
	size_t len;
	long long i;

	if (!s) {
		t = cfg_trim(raw, &len);
		*ret = strndup(t, len);
		return *ret ? 0 : -1;
	}
	switch (config_setting_type(s)) {
	case CONFIG_TYPE_STRING:
		*ret = strdup(config_setting_get_string(s));
		break;
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		cfg_int_of(&v, &i);
		*ret = str_printf("%lld", i);
		break;
	case CONFIG_TYPE_FLOAT:
		cfg_format_double(config_setting_get_float(s), num, sizeof(num));
		*ret = strdup(num);
		break;
	case CONFIG_TYPE_BOOL:
		*ret = strdup(config_setting_get_bool(s) ? "true" : "false");
		break;
	default:
		return 1;
	}
	return *ret ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Checks for string settings                                          */
/* ------------------------------------------------------------------ */

static int cfg_check_nonempty(char *value, char *why, size_t why_size)
{
	const char *p;

	for (p = value; *p; p++)
		if (!cfg_is_blank(*p))
			return 0;
	snprintf(why, why_size, "must not be empty");
	return -1;
}

/** Kafka's rule for topic names. */
static int cfg_check_topic(char *value, char *why, size_t why_size)
{
	size_t len = strlen(value), i;
	char q[80];

	for (i = 0; i < len; i++) {
		char c = value[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			break;
	}
	if (len >= 1 && len <= 249 && i == len && strcmp(value, ".") != 0 &&
	    strcmp(value, "..") != 0)
		return 0;
	snprintf(why, why_size,
		 "must be a Kafka topic name (1 to 249 of a-z A-Z 0-9 . _ -), "
		 "got %s",
		 cfg_quote_str(value, q, sizeof(q)));
	return -1;
}

/** Like cfg_quote_str() for a URL, its "user:password@" redacted. */
static const char *cfg_quote_url(const char *url, char *buf, size_t size)
{
	const char *host = strstr(url, "://"), *end, *at = NULL, *p;
	char text[128];

	host = host ? host + 3 : url;
	end = host + strcspn(host, "/?#");
	for (p = host; p < end; p++)
		if (*p == '@')
			at = p;
	if (!at)
		return cfg_quote_str(url, buf, size);
	snprintf(text, sizeof(text), "%.*s(redacted)%s", (int)(host - url),
		 url, at);
	return cfg_quote_str(text, buf, size);
}

/** http:// or https:// with a host; trailing slashes are dropped. */
static int cfg_check_url(char *value, char *why, size_t why_size)
{
	size_t len = strlen(value), skip = 0, i;
	char q[80];

	if (strncmp(value, "http://", 7) == 0)
		skip = 7;
	else if (strncmp(value, "https://", 8) == 0)
		skip = 8;
	for (i = 0; skip && i < len; i++)
		if ((unsigned char)value[i] <= ' ' || value[i] == 0x7f)
			skip = 0;
	while (skip && len > skip && value[len - 1] == '/')
		value[--len] = '\0';
	if (skip && len > skip && value[skip] != '/')
		return 0;
	snprintf(why, why_size, "must be an http:// or https:// URL, got %s",
		 cfg_quote_url(value, q, sizeof(q)));
	return -1;
}

/** "" or a POSIX-style variable name. */
static int cfg_check_env_name(char *value, char *why, size_t why_size)
{
	const char *p;

	for (p = value; *p; p++) {
		char c = *p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      c == '_' || (p > value && c >= '0' && c <= '9')))
			break;
	}
	if (*p == '\0')
		return 0;
	/* Not quoted: a key pasted here by mistake must not be shown. */
	snprintf(why, why_size,
		 "must be the name of an environment variable (A-Z a-z 0-9 _, "
		 "not starting with a digit) or \"\", not the key itself (the "
		 "value is not shown)");
	return -1;
}

/*
 * An HTTP header name (RFC 9110's token), or "" for the default
 * "Authorization: Bearer". Not the key itself: that is refused unshown.
 */
static int cfg_check_header_name(char *value, char *why, size_t why_size)
{
	const char *p;

	for (p = value; *p; p++) {
		char c = *p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c)))
			break;
	}
	if (*p == '\0' && p - value <= 64)
		return 0;
	snprintf(why, why_size,
		 "must be the name of the HTTP header that carries the key "
		 "(e.g. \"api-key\"), at most 64 token characters, or \"\" "
		 "for Authorization: Bearer; not the key itself (the value is "
		 "not shown)");
	return -1;
}

/** OpenAI's rule for schema and tool names: ^[A-Za-z0-9_-]{1,64}$. */
static int cfg_check_schema_name(char *value, char *why, size_t why_size)
{
	size_t len = strlen(value), i;
	char q[80];

	for (i = 0; i < len; i++) {
		char c = value[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			break;
	}
	if (len >= 1 && len <= 64 && i == len)
		return 0;
	snprintf(why, why_size, "must match ^[A-Za-z0-9_-]{1,64}$, got %s",
		 cfg_quote_str(value, q, sizeof(q)));
	return -1;
}

/** "auto", "" or a key: 1 to 64 printable ASCII characters. */
static int cfg_check_cache_key(char *value, char *why, size_t why_size)
{
	const char *p;
	char q[80];

	for (p = value; *p; p++)
		if (*p < 0x20 || *p > 0x7e)
			break;
	if (*p == '\0' && p - value <= 64)
		return 0;
	snprintf(why, why_size,
		 "must be \"auto\" (derived from the schema and "
		 "instructions), \"\" (not sent), or at most 64 printable "
		 "ASCII characters, got %s", cfg_quote_str(value, q, sizeof(q)));
	return -1;
}

/** "" or "host:port", host a name, an IPv4 or a [bracketed] IPv6. */
static int cfg_check_listen(char *value, char *why, size_t why_size)
{
	const char *colon, *p;
	size_t hostlen;
	unsigned long port = 0;
	char q[80];

	if (value[0] == '\0')
		return 0;
	colon = strrchr(value, ':');
	if (!colon || colon[1] == '\0' || strlen(colon + 1) > 5)
		goto bad;
	for (p = colon + 1; *p; p++) {
		if (*p < '0' || *p > '9')
			goto bad;
		port = port * 10 + (unsigned long)(*p - '0');
	}
	if (port > 65535)
		goto bad;
	hostlen = (size_t)(colon - value);
	if (hostlen == 0)
		goto bad;
	if (value[0] == '[') {
		if (hostlen < 3 || value[hostlen - 1] != ']')
			goto bad;
	} else if (memchr(value, ':', hostlen)) {
		goto bad;
	}
	for (p = value; p < colon; p++)
		if ((unsigned char)*p <= ' ' || *p == '/')
			goto bad;
	return 0;
bad:
	snprintf(why, why_size,
		 "must be \"host:port\" with a port from 0 to 65535, or \"\" "
		 "to disable, got %s",
		 cfg_quote_str(value, q, sizeof(q)));
	return -1;
}

static int cfg_check_pointer(char *value, char *why, size_t why_size)
{
	char q[80], reason[160];

	if (input_pointer_check(value, reason, sizeof(reason)) == 0)
		return 0;
	snprintf(why, why_size, "%s is not a JSON Pointer: %s",
		 cfg_quote_str(value, q, sizeof(q)), reason);
	return -1;
}

/* A pointer output.carry copies by: a field, so not "" (the whole input)
 * and with a last token that names it. */
static int cfg_check_carried(char *value, char *why, size_t why_size)
{
	char name[256], q[80];

	if (cfg_check_pointer(value, why, why_size) < 0)
		return -1;
	if (input_pointer_last(value, name, sizeof(name)) < 0 || !*name) {
		snprintf(why, why_size, "%s names no field to carry (its "
			 "last token, at most 255 bytes, is the field's name "
			 "in the output)", cfg_quote_str(value, q, sizeof(q)));
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Storing values                                                      */
/* ------------------------------------------------------------------ */

/** Record where the value of cfg_table[idx] came from. */
static int cfg_set_origin(struct cfg_loader *ld, size_t idx,
			  const struct cfg_value *v)
{
	struct cfg_meta *meta = ld->cfg->meta;
	char *origin = strdup(v->origin);

	if (!origin)
		return cfg_oom(ld);
	free(meta->origin[idx]);
	meta->origin[idx] = origin;
	meta->seq[idx] = v->seq;
	return 0;
}

/** Free every kafka.properties entry (and its origin). */
static void cfg_props_clear(struct extractd_config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->kafka.n_properties; i++) {
		free(cfg->kafka.properties[i].name);
		free(cfg->kafka.properties[i].value);
		if (cfg->meta)
			free(cfg->meta->prop_origin[i]);
	}
	cfg->kafka.n_properties = 0;
}

/** True for a librdkafka-style property name: [A-Za-z0-9._-]+. */
static bool cfg_prop_name_ok(const char *name)
{
	const char *p;

	for (p = name; *p; p++) {
		char c = *p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return p != name;
}

/**
 * @brief Read a "${file:PATH}" value: a regular file of at most
 * CFG_REF_MAX_BYTES, without NUL bytes, not empty once its trailing line
 * breaks are dropped. Its contents never go into a message.
 * @returns 0 with *ret malloc'ed, or -1 with the reason in why.
 */
static int cfg_read_ref_file(const char *path, char **ret, char *why,
			     size_t why_size)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd;

	/* O_NONBLOCK: a FIFO or a device must not hang the start-up. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		snprintf(why, why_size, "cannot read: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, why_size, "not a regular file");
		goto fail;
	}
	buf = malloc(CFG_REF_MAX_BYTES + 1);
	if (!buf) {
		snprintf(why, why_size, "out of memory");
		goto fail;
	}
	while (len <= CFG_REF_MAX_BYTES &&
	       (n = read(fd, buf + len, CFG_REF_MAX_BYTES + 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, why_size, "cannot read: %s",
				 strerror(errno));
			goto fail;
		}
		len += (size_t)n;
	}
	if (len > CFG_REF_MAX_BYTES) {
		snprintf(why, why_size, "larger than %d bytes",
			 CFG_REF_MAX_BYTES);
		goto fail;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	buf[len] = '\0';
	if (len == 0 || memchr(buf, '\0', len)) {
		snprintf(why, why_size, len ? "holds a NUL byte" : "is empty");
		goto fail;
	}
	close(fd);
	*ret = buf;
	return 0;
fail:
	if (buf)
		memset(buf, 0, len);
	free(buf);
	close(fd);
	return -1;
}

/**
 * @brief What a kafka.properties value stands for, and whether it may be
 * given where it was. "${env:NAME}" is the environment variable NAME;
 * "${file:PATH}" the contents of the file PATH (a relative PATH written
 * in a file resolves against that file's directory). Any other value in
 * "${...}" is an error; a value without them is itself. A secret
 * (cfg_secret_property()) written literally on the command line is
 * refused: every user of the host can read it there. No message shows
 * the value.
 * @param file the file the value was written in; NULL: from "-s"
 * @param value malloc'ed; replaced by what it stands for
 * @returns 0, or -1 with the error written.
 */
static int cfg_prop_value(struct cfg_loader *ld, const char *name,
			  const char *origin, const char *file, char **value)
{
	const char *v = *value, *env;
	size_t len = strlen(v);
	char why[256], *arg, *dir = NULL, *path = NULL, *got = NULL;
	bool is_env;

	if (len < 3 || strncmp(v, "${", 2) != 0 || v[len - 1] != '}') {
		if (file || !cfg_secret_property(name))
			return 0;
		return cfg_fail(ld, origin, NULL, CFG_PROPS_PREFIX "%s: "
				"holds a secret, and a command line can be "
				"read by every user of the host (ps, "
				"/proc/PID/cmdline): put it in the config file "
				"(mode 600), or give \"${env:NAME}\" or "
				"\"${file:PATH}\" to read it from the "
				"environment or a file", name);
	}
	is_env = strncmp(v, "${env:", 6) == 0;
	if (!is_env && strncmp(v, "${file:", 7) != 0)
		return cfg_fail(ld, origin, NULL, CFG_PROPS_PREFIX "%s: a "
				"value in ${...} must be \"${env:NAME}\" or "
				"\"${file:PATH}\"", name);
	arg = is_env ? strndup(v + 6, len - 7) : strndup(v + 7, len - 8);
	if (!arg)
		return cfg_oom(ld);
	if (is_env) {
		if (!*arg || cfg_check_env_name(arg, why, sizeof(why)) < 0)
			cfg_fail(ld, origin, NULL, CFG_PROPS_PREFIX "%s: "
				 "\"${env:NAME}\" needs a variable name (A-Z "
				 "a-z 0-9 _, not starting with a digit)", name);
		else if (!(env = getenv(arg)) || !*env)
			cfg_fail(ld, origin, NULL, CFG_PROPS_PREFIX "%s: "
				 "${env:%s}: the environment variable is %s",
				 name, arg, env ? "empty" : "not set");
		else if (!(got = strdup(env)))
			cfg_oom(ld);
	} else {
		if (!*arg)
			cfg_fail(ld, origin, NULL, CFG_PROPS_PREFIX "%s: "
				 "\"${file:PATH}\" needs a path", name);
		else if ((file && cfg_dirname(file, &dir) < 0) ||
			 !(path = cfg_resolve(dir, arg)))
			cfg_oom(ld);
		else if (cfg_read_ref_file(path, &got, why, sizeof(why)) < 0)
			cfg_fail(ld, origin, NULL, CFG_PROPS_PREFIX "%s: "
				 "${file:%s}: %s", name, path, why);
	}
	free(arg);
	free(dir);
	free(path);
	if (!got)
		return -1;
	free(*value);
	*value = got;
	return 0;
}

/**
 * @brief Set one kafka.properties entry.
 * @param value malloc'ed; owned by the config afterwards, freed on failure
 * @param file the file it was written in; NULL: from "-s"
 * @param replace true for overrides: an existing entry takes the new
 *        value; false for a file: a second entry with the name is an error
 * @returns 0, or -1 with the error written.
 */
static int cfg_prop_set(struct cfg_loader *ld, const char *name, char *value,
			const char *origin, const char *file, bool replace)
{
	struct extractd_config *cfg = ld->cfg;
	struct cfg_meta *meta = cfg->meta;
	struct cfg_property *prop;
	char *origin_copy = NULL, *name_copy = NULL;
	size_t i, cap;
	int ret = -1;

	for (i = 0; i < cfg->kafka.n_properties; i++)
		if (strcmp(cfg->kafka.properties[i].name, name) == 0)
			break;
	if (i < cfg->kafka.n_properties && !replace) {
		ret = cfg_fail(ld, origin, NULL,
			       CFG_PROPS_PREFIX "%s: set twice (first at %s)",
			       name, meta->prop_origin[i]);
		goto out;
	}
	if (cfg_prop_value(ld, name, origin, file, &value) < 0)
		goto out;
	origin_copy = strdup(origin);
	if (!origin_copy)
		goto oom;
	if (i == cfg->kafka.n_properties) {
		if (i == meta->props_cap) {
			struct cfg_property *props;
			char **origins;

			cap = meta->props_cap ? 2 * meta->props_cap : 8;
			props = realloc(cfg->kafka.properties,
					cap * sizeof(*props));
			if (!props)
				goto oom;
			cfg->kafka.properties = props;
			origins = realloc(meta->prop_origin,
					  cap * sizeof(*origins));
			if (!origins)
				goto oom;
			meta->prop_origin = origins;
			meta->props_cap = cap;
		}
		name_copy = strdup(name);
		if (!name_copy)
			goto oom;
		prop = &cfg->kafka.properties[i];
		prop->name = name_copy;
		prop->value = NULL;
		meta->prop_origin[i] = NULL;
		name_copy = NULL;
		cfg->kafka.n_properties++;
	}
	prop = &cfg->kafka.properties[i];
	free(prop->value);
	prop->value = value;
	value = NULL;
	free(meta->prop_origin[i]);
	meta->prop_origin[i] = origin_copy;
	origin_copy = NULL;
	ret = 0;
	goto out;
oom:
	ret = cfg_oom(ld);
out:
	free(value);
	free(origin_copy);
	free(name_copy);
	return ret;
}

/**
 * @brief Apply a whole kafka.properties list (from the file, or from
 * "-s kafka.properties=(...)"), replacing what was there. An empty group
 * "{ }" is accepted as an empty list.
 */
static int cfg_props_list(struct cfg_loader *ld, const struct cfg_value *v)
{
	const config_setting_t *s = v->s;
	char got[96], *origin = NULL, *value = NULL;
	unsigned i, n;
	int ret = -1, r;

	if (!s || !config_setting_is_aggregate(s) ||
	    (config_setting_type(s) != CONFIG_TYPE_LIST &&
	     config_setting_length(s) > 0))
		return cfg_fail(ld, v->origin, "kafka.properties",
				"must be a list of (\"name\", value) pairs, "
				"e.g. ((\"linger.ms\", 5)), got %s",
				cfg_describe_kind(v));
	cfg_props_clear(ld->cfg);
	n = (unsigned)config_setting_length(s);
	for (i = 0; i < n; i++) {
		const config_setting_t *pair = config_setting_get_elem(s, i);
		const config_setting_t *name, *val;
		struct cfg_value pv = { .s = pair };

		free(origin);
		origin = v->file ? cfg_file_origin(ld, pair) : strdup(v->origin);
		if (!origin) {
			ret = cfg_oom(ld);
			goto out;
		}
		name = config_setting_type(pair) == CONFIG_TYPE_LIST &&
				       config_setting_length(pair) == 2
			       ? config_setting_get_elem(pair, 0)
			       : NULL;
		if (!name || config_setting_type(name) != CONFIG_TYPE_STRING) {
			ret = cfg_fail(ld, origin, "kafka.properties",
				       "each entry must be a (\"name\", value) "
				       "pair, got %s",
				       cfg_describe_kind(&pv));
			goto out;
		}
		if (!cfg_prop_name_ok(config_setting_get_string(name))) {
			ret = cfg_fail(ld, origin, "kafka.properties",
				       "%s is not a property name",
				       cfg_quote_str(config_setting_get_string(name),
						     got, sizeof(got)));
			goto out;
		}
		val = config_setting_get_elem(pair, 1);
		r = cfg_scalar_text(val, NULL, &value);
		if (r != 0) {
			pv.s = val;
			ret = r < 0 ? cfg_oom(ld)
				    : cfg_fail(ld, origin, NULL,
					       CFG_PROPS_PREFIX "%s: must be a "
					       "string, number or boolean, got %s",
					       config_setting_get_string(name),
					       cfg_describe_kind(&pv));
			goto out;
		}
		r = cfg_prop_set(ld, config_setting_get_string(name), value,
				 origin, v->file, false);
		value = NULL;
		if (r < 0)
			goto out;
	}
	ret = 0;
out:
	free(origin);
	free(value);
	return ret;
}

/** Check and store a string setting (resolving a relative path). */
static int cfg_apply_string(struct cfg_loader *ld, const struct cfg_entry *e,
			    const struct cfg_value *v)
{
	char **field = cfg_field(ld->cfg, e);
	char got[96], why[256], *value = NULL, *dir = NULL, *resolved;
	const char *text;
	size_t len;
	int ret = -1;

	if (!cfg_text_of(v, &text, &len))
		return cfg_fail(ld, v->origin, e->path,
				"must be a string, got %s",
				cfg_describe(v, got, sizeof(got)));
	value = strndup(text, len);
	if (!value)
		goto oom;
	if (e->check && e->check(value, why, sizeof(why)) < 0) {
		ret = cfg_fail(ld, v->origin, e->path, "%s", why);
		goto out;
	}
	if ((e->flags & CFG_F_PATH) && v->file) {
		if (cfg_dirname(v->file, &dir) < 0)
			goto oom;
		resolved = cfg_resolve(dir, value);
		if (!resolved)
			goto oom;
		free(value);
		value = resolved;
	}
	free(*field);
	*field = value;
	value = NULL;
	ret = 0;
	goto out;
oom:
	ret = cfg_oom(ld);
out:
	free(value);
	free(dir);
	return ret;
}

static void cfg_list_clear(struct cfg_list *list)
{
	size_t i;

	for (i = 0; i < list->n; i++)
		free(list->items[i]);
	free(list->items);
	list->items = NULL;
	list->n = 0;
}

/**
 * @brief Check and store a list of strings (output.carry): a libconfig
 * array or list, each element checked by e->check, no two with the same
 * last token. An element's error names its own line.
 */
static int cfg_apply_list(struct cfg_loader *ld, const struct cfg_entry *e,
			  const struct cfg_value *v)
{
	struct cfg_list *field = cfg_field(ld->cfg, e);
	struct cfg_list list = { NULL, 0 };
	char got[96], why[256], a[256], b[256], q[80], q2[80];
	char *origin = NULL;
	unsigned i, j, n;
	int ret = -1;

	if (!v->s || (config_setting_type(v->s) != CONFIG_TYPE_ARRAY &&
		      config_setting_type(v->s) != CONFIG_TYPE_LIST))
		return cfg_fail(ld, v->origin, e->path,
				"must be a list of JSON Pointers, e.g. "
				"[ \"/id\", \"/customer\" ], got %s",
				cfg_describe(v, got, sizeof(got)));
	n = (unsigned)config_setting_length(v->s);
	list.items = calloc(n ? n : 1, sizeof(*list.items));
	if (!list.items)
		return cfg_oom(ld);
	for (i = 0; i < n; i++) {
		const config_setting_t *el = config_setting_get_elem(v->s, i);
		struct cfg_value ev = { .s = el };

		free(origin);
		origin = v->file ? cfg_file_origin(ld, el) : strdup(v->origin);
		if (!origin)
			goto oom;
		if (config_setting_type(el) != CONFIG_TYPE_STRING) {
			cfg_fail(ld, origin, e->path, "each entry must be a "
				 "string, got %s",
				 cfg_describe(&ev, got, sizeof(got)));
			goto out;
		}
		list.items[i] = strdup(config_setting_get_string(el));
		if (!list.items[i])
			goto oom;
		list.n++;
		if (e->check && e->check(list.items[i], why, sizeof(why)) < 0) {
			cfg_fail(ld, origin, e->path, "%s", why);
			goto out;
		}
		input_pointer_last(list.items[i], b, sizeof(b));
		for (j = 0; j < i; j++) {
			input_pointer_last(list.items[j], a, sizeof(a));
			if (strcmp(a, b) != 0)
				continue;
			cfg_fail(ld, origin, e->path, "%s and %s would both "
				 "be carried as %s",
				 cfg_quote_str(list.items[j], q, sizeof(q)),
				 cfg_quote_str(list.items[i], q2, sizeof(q2)),
				 cfg_quote_str(b, got, sizeof(got)));
			goto out;
		}
	}
	cfg_list_clear(field);
	*field = list;
	list.items = NULL;
	list.n = 0;
	ret = 0;
	goto out;
oom:
	cfg_oom(ld);
out:
	cfg_list_clear(&list);
	free(origin);
	return ret;
}

/**
 * @brief Check v against cfg_table[idx] and store it in the config.
 * @returns 0, or -1 with "ORIGIN: setting: what is wrong" written.
 */
static int cfg_apply(struct cfg_loader *ld, size_t idx,
		     const struct cfg_value *v)
{
	const struct cfg_entry *e = &cfg_table[idx];
	void *field = cfg_field(ld->cfg, e);
	char got[96], names[160];
	const char *text;
	size_t len;
	long long i;
	double d;
	int k;

	switch (e->type) {
	case CFG_T_STRING:
		if (cfg_apply_string(ld, e, v) < 0)
			return -1;
		break;
	case CFG_T_ENUM:
		k = -1;
		if (cfg_text_of(v, &text, &len))
			for (k = 0; e->names[k]; k++)
				if (strlen(e->names[k]) == len &&
				    memcmp(e->names[k], text, len) == 0)
					break;
		if (k < 0 || !e->names[k])
			return cfg_fail(ld, v->origin, e->path,
					"must be one of %s, got %s",
					cfg_join_names(e->names, names,
						       sizeof(names)),
					cfg_describe(v, got, sizeof(got)));
		cfg_store_enum(field, k);
		break;
	case CFG_T_UINT:
	case CFG_T_SIZE:
	case CFG_T_U64:
		if (!cfg_int_of(v, &i) || i < (long long)e->min ||
		    i > (long long)e->max)
			return cfg_fail(ld, v->origin, e->path,
					"must be an integer from %lld to %lld, "
					"got %s",
					(long long)e->min, (long long)e->max,
					cfg_describe(v, got, sizeof(got)));
		if (e->type == CFG_T_UINT)
			*(unsigned *)field = (unsigned)i;
		else if (e->type == CFG_T_SIZE)
			*(size_t *)field = (size_t)i;
		else
			*(uint64_t *)field = (uint64_t)i;
		break;
	case CFG_T_DOUBLE:
		if (!cfg_number_of(v, &d) || !(d >= e->min && d <= e->max))
			return cfg_fail(ld, v->origin, e->path,
					"must be a number from %g to %g, got %s",
					e->min, e->max,
					cfg_describe(v, got, sizeof(got)));
		if ((e->flags & CFG_F_ABOVE_MIN) && d == e->min)
			return cfg_fail(ld, v->origin, e->path,
					"must be more than %g, got %s", e->min,
					cfg_describe(v, got, sizeof(got)));
		*(double *)field = d;
		break;
	case CFG_T_PROPS:
		if (cfg_props_list(ld, v) < 0)
			return -1;
		break;
	case CFG_T_LIST:
		if (cfg_apply_list(ld, e, v) < 0)
			return -1;
		break;
	case CFG_T_FORBIDDEN:
		return cfg_fail(ld, v->origin, e->path, "%s", e->why);
	}
	return cfg_set_origin(ld, idx, v);
}

/** Every setting at its default; relative default paths resolve in dir. */
static int cfg_set_defaults(struct cfg_loader *ld, const char *dir)
{
	const struct cfg_entry *e;
	void *field;
	char *s;

	for (e = cfg_table; e < cfg_table + CFG_N; e++) {
		field = cfg_field(ld->cfg, e);
		switch (e->type) {
		case CFG_T_STRING:
			s = (e->flags & CFG_F_PATH) ? cfg_resolve(dir, e->def_str)
						    : strdup(e->def_str);
			if (!s)
				return cfg_oom(ld);
			*(char **)field = s;
			break;
		case CFG_T_UINT:
			*(unsigned *)field = (unsigned)e->def_num;
			break;
		case CFG_T_SIZE:
			*(size_t *)field = (size_t)e->def_num;
			break;
		case CFG_T_U64:
			*(uint64_t *)field = (uint64_t)e->def_num;
			break;
		case CFG_T_DOUBLE:
			*(double *)field = e->def_num;
			break;
		case CFG_T_ENUM:
			cfg_store_enum(field, (int)e->def_num);
			break;
		case CFG_T_PROPS:
		case CFG_T_LIST:
		case CFG_T_FORBIDDEN:
			break;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Sources: the file, the overrides, then rules across settings        */
/* ------------------------------------------------------------------ */

/**
 * @brief Read path and apply every setting in it, in file order, so the
 * first error reported is the first one in the file.
 * @param dir the file's directory (NULL: none), for @include
 */
#define CFG_INCLUDE_DEPTH 10 /**< libconfig's own nesting limit */

/*
 * libconfig 1.5 exits the process (its scanner's fatal error) when an
 * @include names something that is not a regular file, such as a
 * directory. So every @include is looked at first, recursively: each must
 * name a readable regular file, or loading fails with FILE:LINE.
 */
static int cfg_check_includes(struct cfg_loader *ld, const char *path,
			      unsigned depth)
{
	char line[4096];
	unsigned lineno = 0;
	int ret = 0;
	FILE *f;

	if (depth > CFG_INCLUDE_DEPTH)
		return cfg_fail(ld, path, NULL, "@include nested too deeply");
	f = fopen(path, "re");
	if (!f)
		return 0; /* reported by the reader with its own words */
	while (!ret && fgets(line, sizeof(line), f)) {
		const char *p = line, *q;
		struct stat st;
		char *name, *file;

		lineno++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncmp(p, "@include", 8))
			continue;
		p += 8;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '"' || !(q = strchr(p + 1, '"')))
			continue; /* the parser says what is wrong */
		name = strndup(p + 1, (size_t)(q - p - 1));
		file = name ? cfg_resolve(ld->dir, name) : NULL;
		if (!file) {
			ret = cfg_oom(ld);
		} else if (stat(file, &st) < 0 || !S_ISREG(st.st_mode)) {
			char where[PATH_MAX + 32];

			snprintf(where, sizeof(where), "%s:%u", path, lineno);
			ret = cfg_fail(ld, where, NULL,
				       "@include '%s' is not a readable file",
				       name);
		} else {
			ret = cfg_check_includes(ld, file, depth + 1);
		}
		free(file);
		free(name);
	}
	fclose(f);
	return ret;
}

/**
 * @brief Apply every setting of group g (the root when prefix is NULL):
 * a known setting is applied, a known group (llm, llm.price) is read in
 * turn, anything else is an unknown setting.
 * @returns 0, or -1 with the error written.
 */
static int cfg_read_group(struct cfg_loader *ld, const config_setting_t *g,
			  const char *prefix)
{
	char *origin = NULL, *name = NULL, *file = NULL;
	unsigned j, m = (unsigned)config_setting_length(g);
	int ret = -1;

	for (j = 0; j < m; j++) {
		const config_setting_t *s = config_setting_get_elem(g, j);
		struct cfg_value v = { .s = s, .seq = 1 };
		int idx;

		free(origin);
		free(name);
		free(file);
		origin = cfg_file_origin(ld, s);
		name = prefix ? str_printf("%s.%s", prefix,
					   config_setting_name(s))
			      : strdup(config_setting_name(s));
		file = cfg_source_file(ld, s);
		if (!origin || !name || !file) {
			cfg_oom(ld);
			goto out;
		}
		idx = cfg_find(name);
		if (idx < 0 && cfg_group_known(name)) {
			if (!config_setting_is_group(s)) {
				cfg_fail(ld, origin, name,
					 "must be a group: %s = { ... };",
					 config_setting_name(s));
				goto out;
			}
			if (cfg_read_group(ld, s, name) < 0)
				goto out;
			continue;
		}
		if (idx < 0 || !prefix) {
			cfg_fail(ld, origin, name, "unknown setting");
			goto out;
		}
		v.origin = origin;
		v.file = file;
		if (cfg_apply(ld, (size_t)idx, &v) < 0)
			goto out;
	}
	ret = 0;
out:
	free(origin);
	free(name);
	free(file);
	return ret;
}

static int cfg_read_file(struct cfg_loader *ld)
{
	const char *path = ld->path;
	config_t lc;
	config_setting_t *root;
	struct stat st;
	char *file = NULL;
	int fd, ret = -1;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cfg_fail(ld, path, NULL, "cannot read: %s",
				strerror(errno));
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		close(fd);
		return cfg_fail(ld, path, NULL, "cannot read: %s",
				strerror(EISDIR));
	}
	close(fd);

	if (cfg_check_includes(ld, path, 0) < 0)
		return -1;
	config_init(&lc);
	if (ld->dir)
		config_set_include_dir(&lc, ld->dir);
	if (!config_read_file(&lc, path)) {
		if (config_error_type(&lc) == CONFIG_ERR_FILE_IO)
			cfg_fail(ld, path, NULL, "cannot read: %s",
				 config_error_text(&lc));
		else if (!config_error_file(&lc) ||
			 strcmp(config_error_file(&lc), path) == 0)
			cfg_fail(ld, NULL, NULL, "%s:%d: %s", path,
				 config_error_line(&lc), config_error_text(&lc));
		else if ((file = cfg_resolve(ld->dir, config_error_file(&lc))))
			cfg_fail(ld, NULL, NULL, "%s:%d: %s", file,
				 config_error_line(&lc), config_error_text(&lc));
		else
			cfg_oom(ld);
		goto out;
	}

	root = config_root_setting(&lc);
	if (cfg_read_group(ld, root, NULL) < 0)
		goto out;
	ret = 0;
out:
	free(file);
	config_destroy(&lc);
	return ret;
}

/**
 * @brief Apply "-s path=value" number n (counted from 1).
 *
 * The value is parsed as "v = <value>;"; plain text when that fails or
 * gives more than one setting. A value with a line break is always plain
 * text (no @include through the command line).
 */
static int cfg_apply_override(struct cfg_loader *ld, size_t n, const char *arg)
{
	config_t lc;
	char origin[32], *path = NULL, *text = NULL, *value = NULL;
	const char *eq = strchr(arg, '='), *p = arg;
	struct cfg_value v = { .raw = NULL };
	size_t len;
	int idx, r, ret = -1;

	snprintf(origin, sizeof(origin), "-s:%zu", n);
	config_init(&lc);
	if (eq)
		p = cfg_trim(arg, &len);
	if (!eq || p >= eq) {
		cfg_fail(ld, origin, NULL, "expected path=value");
		goto out;
	}
	len = (size_t)(eq - p);
	while (len > 0 && cfg_is_blank(p[len - 1]))
		len--;
	path = strndup(p, len);
	if (!path)
		goto oom;

	v.raw = eq + 1;
	v.origin = origin;
	v.seq = 1 + (unsigned)n;
	if (!strpbrk(v.raw, "\n\r")) {
		text = str_printf("v = %s;", v.raw);
		if (!text)
			goto oom;
		if (config_read_string(&lc, text) &&
		    config_setting_length(config_root_setting(&lc)) == 1)
			v.s = config_lookup(&lc, "v");
	}

	if (strncmp(path, CFG_PROPS_PREFIX, strlen(CFG_PROPS_PREFIX)) == 0) {
		const char *name = path + strlen(CFG_PROPS_PREFIX);

		if (!cfg_prop_name_ok(name)) {
			cfg_fail(ld, origin, path, "not a property name");
			goto out;
		}
		r = cfg_scalar_text(v.s, v.raw, &value);
		if (r != 0) {
			if (r < 0)
				goto oom;
			cfg_fail(ld, origin, path,
				 "must be a string, number or boolean, got %s",
				 cfg_describe_kind(&v));
			goto out;
		}
		ret = cfg_prop_set(ld, name, value, origin, NULL, true);
		value = NULL;
		goto out;
	}
	idx = cfg_find(path);
	if (idx < 0) {
		cfg_fail(ld, origin, path, "unknown setting");
		goto out;
	}
	ret = cfg_apply(ld, (size_t)idx, &v);
	goto out;
oom:
	cfg_oom(ld);
out:
	config_destroy(&lc);
	free(value);
	free(text);
	free(path);
	return ret;
}

/**
 * @brief Rules across settings (cfg_order_rules, cfg_differ_rules). The
 * message names the setting given last (an override beats the file beats
 * a default; between two in the file, the one later in the table).
 */
/** The origin of a setting's value (NULL: its default). */
static const char *cfg_origin_of(struct cfg_loader *ld, const char *path)
{
	return ld->cfg->meta->origin[cfg_find(path)];
}

/*
 * llm.price: input and output together or not at all (a record's cost
 * needs both), cached_input only with them; a spending cap needs a price.
 */
static int cfg_check_price(struct cfg_loader *ld)
{
	static const char *const caps[] = { "rate.usd_per_hour",
					    "rate.usd_per_day" };
	const struct extractd_config *cfg = ld->cfg;
	const struct cfg_price *p = &cfg->llm.price;
	size_t i;

	if ((p->input > 0) != (p->output > 0)) {
		const char *set = p->input > 0 ? "llm.price.input"
					       : "llm.price.output";
		const char *unset = p->input > 0 ? "llm.price.output"
						 : "llm.price.input";

		return cfg_fail(ld, cfg_origin_of(ld, set), set,
				"needs %s too (dollars per million tokens, "
				"> 0): a cost needs both prices", unset);
	}
	if (p->cached_input > 0 && !(p->input > 0))
		return cfg_fail(ld, cfg_origin_of(ld, "llm.price.cached_input"),
				"llm.price.cached_input",
				"needs llm.price.input and llm.price.output");
	for (i = 0; i < CFG_ARRAY_SIZE(caps); i++) {
		const struct cfg_entry *e = &cfg_table[cfg_find(caps[i])];
		double cap = *(double *)cfg_field(cfg, e);

		if (cap > 0 && !cfg_priced(cfg))
			return cfg_fail(ld, cfg_origin_of(ld, caps[i]), caps[i],
					"a spending cap needs llm.price "
					"(input and output, dollars per "
					"million tokens)");
	}
	return 0;
}

/**
 * @brief Of two settings that cannot go together, the one given last
 * (an override beats the file beats a default; between two in the file,
 * the one later in the table), to blame.
 * @returns its index in cfg_table.
 */
static int cfg_given_last(struct cfg_loader *ld, const char *a,
			  const char *b)
{
	const struct cfg_meta *meta = ld->cfg->meta;
	int ia = cfg_find(a), ib = cfg_find(b);

	return meta->seq[ia] > meta->seq[ib] ||
			       (meta->seq[ia] == meta->seq[ib] && ia > ib)
		       ? ia
		       : ib;
}

/*
 * Key order with exactly-once: a transaction commits offsets, which only
 * a contiguous prefix released in offset order can justify; key order
 * releases keys out of offset order. Not supported: the setting given
 * last is blamed.
 */
static int cfg_check_ordering(struct cfg_loader *ld)
{
	const struct extractd_config *cfg = ld->cfg;
	int blamed;

	if (cfg->output.ordering != CFG_ORDER_KEY ||
	    cfg->output.delivery != CFG_DELIVERY_EXACTLY_ONCE)
		return 0;
	blamed = cfg_given_last(ld, "output.ordering", "output.delivery");
	return cfg_fail(ld, cfg->meta->origin[blamed], cfg_table[blamed].path,
			"key order with exactly-once: not supported "
			"(exactly-once releases in offset order: use "
			"output.ordering = offset)");
}

/*
 * A batch answers minutes to hours after the live calls admitted beside
 * it. Offset and key order would hold every later record of its
 * partition (or key) back behind the whole batch, and so would
 * exactly-once, which releases in offset order: batches go with
 * completion order and at-least-once only.
 */
static int cfg_check_batch(struct cfg_loader *ld)
{
	const struct extractd_config *cfg = ld->cfg;
	int blamed;

	if (cfg->batch.mode == CFG_BATCH_OFF)
		return 0;
	if (cfg->output.delivery == CFG_DELIVERY_EXACTLY_ONCE) {
		blamed = cfg_given_last(ld, "batch.mode", "output.delivery");
		return cfg_fail(ld, cfg->meta->origin[blamed],
				cfg_table[blamed].path,
				"batch.mode = %s with exactly-once: not "
				"supported (exactly-once releases in offset "
				"order, so every later record would wait for "
				"a batch's answers: use output.delivery = "
				"at-least-once)",
				cfg_batch_mode_name(cfg->batch.mode));
	}
	if (cfg->output.ordering == CFG_ORDER_KEY) {
		blamed = cfg_given_last(ld, "batch.mode", "output.ordering");
		return cfg_fail(ld, cfg->meta->origin[blamed],
				cfg_table[blamed].path,
				"batch.mode = %s with output.ordering = key: "
				"not supported (a key's records would wait "
				"one by one for their batches: use "
				"output.ordering = completion or offset)",
				cfg_batch_mode_name(cfg->batch.mode));
	}
	return 0;
}

static int cfg_check_relations(struct cfg_loader *ld)
{
	const struct cfg_meta *meta = ld->cfg->meta;
	size_t r;

	for (r = 0; r < CFG_ARRAY_SIZE(cfg_differ_rules); r++) {
		int a = cfg_find(cfg_differ_rules[r].a);
		int b = cfg_find(cfg_differ_rules[r].b);
		const char *av = *(char **)cfg_field(ld->cfg, &cfg_table[a]);
		const char *bv = *(char **)cfg_field(ld->cfg, &cfg_table[b]);
		char q[80];
		int t;

		if (strcmp(av, bv) != 0)
			continue;
		if (meta->seq[a] > meta->seq[b]) {
			t = a;
			a = b;
			b = t;
		}
		/* b was given (defaults differ), so it has an origin. */
		return cfg_fail(ld, meta->origin[b], cfg_table[b].path,
				"must differ from %s (both are %s): %s",
				cfg_table[a].path,
				cfg_quote_str(av, q, sizeof(q)),
				cfg_differ_rules[r].why);
	}

	if (cfg_check_price(ld) < 0 || cfg_check_ordering(ld) < 0 ||
	    cfg_check_batch(ld) < 0)
		return -1;
	if (ld->cfg->output.carry.n &&
	    ld->cfg->input.format != CFG_INPUT_JSON)
		return cfg_fail(ld, cfg_origin_of(ld, "output.carry"),
				"output.carry", "needs input.format = \"json\": "
				"fields are carried from JSON inputs");
	for (r = 0; r < CFG_ARRAY_SIZE(cfg_order_rules); r++) {
		int lo = cfg_find(cfg_order_rules[r].lo);
		int hi = cfg_find(cfg_order_rules[r].hi);
		unsigned lov = *(unsigned *)cfg_field(ld->cfg, &cfg_table[lo]);
		unsigned hiv = *(unsigned *)cfg_field(ld->cfg, &cfg_table[hi]);

		if (lov <= hiv)
			continue;
		if (meta->seq[lo] > meta->seq[hi])
			return cfg_fail(ld, meta->origin[lo], cfg_table[lo].path,
					"must be at most %s (%u), got %u",
					cfg_table[hi].path, hiv, lov);
		return cfg_fail(ld, meta->origin[hi], cfg_table[hi].path,
				"must be at least %s (%u), got %u",
				cfg_table[lo].path, lov, hiv);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* API                                                                 */
/* ------------------------------------------------------------------ */

int cfg_load(const char *path, const char *const *overrides,
	     size_t n_overrides, struct extractd_config **ret_cfg,
	     char *err, size_t err_size)
{
	struct cfg_loader ld = { .err = err, .err_size = err_size };
	char *dir = NULL;
	size_t i;
	int ret = -1;

	if (err && err_size)
		err[0] = '\0';
	ld.cfg = calloc(1, sizeof(*ld.cfg));
	if (!ld.cfg) {
		cfg_oom(&ld);
		goto out;
	}
	ld.cfg->meta = calloc(1, sizeof(*ld.cfg->meta));
	if (!ld.cfg->meta || (path && cfg_dirname(path, &dir) < 0)) {
		cfg_oom(&ld);
		goto out;
	}
	ld.path = path;
	ld.dir = dir;
	if (cfg_set_defaults(&ld, dir) < 0)
		goto out;
	if (path && cfg_read_file(&ld) < 0)
		goto out;
	for (i = 0; i < n_overrides; i++)
		if (cfg_apply_override(&ld, i + 1, overrides[i]) < 0)
			goto out;
	if (cfg_check_relations(&ld) < 0)
		goto out;
	*ret_cfg = ld.cfg;
	ld.cfg = NULL; /* now the caller's */
	ret = 0;
out:
	cfg_free(ld.cfg);
	free(dir);
	return ret;
}

void cfg_free(struct extractd_config *cfg)
{
	const struct cfg_entry *e;
	size_t i;

	if (!cfg)
		return;
	for (e = cfg_table; e < cfg_table + CFG_N; e++) {
		if (e->type == CFG_T_STRING)
			free(*(char **)cfg_field(cfg, e));
		else if (e->type == CFG_T_LIST)
			cfg_list_clear(cfg_field(cfg, e));
	}
	cfg_props_clear(cfg);
	free(cfg->kafka.properties);
	if (cfg->meta) {
		for (i = 0; i < CFG_N; i++)
			free(cfg->meta->origin[i]);
		free(cfg->meta->prop_origin);
		free(cfg->meta);
	}
	free(cfg);
}

const char *cfg_origin(const struct extractd_config *cfg, const char *setting)
{
	const char *name;
	size_t i;
	int idx;

	if (!cfg || !cfg->meta || !setting)
		return CFG_DEFAULT_ORIGIN;
	if (strncmp(setting, CFG_PROPS_PREFIX, strlen(CFG_PROPS_PREFIX)) == 0) {
		name = setting + strlen(CFG_PROPS_PREFIX);
		for (i = 0; i < cfg->kafka.n_properties; i++)
			if (strcmp(cfg->kafka.properties[i].name, name) == 0)
				return cfg->meta->prop_origin[i];
		return CFG_DEFAULT_ORIGIN;
	}
	idx = cfg_find(setting);
	if (idx < 0 || !cfg->meta->origin[idx])
		return CFG_DEFAULT_ORIGIN;
	return cfg->meta->origin[idx];
}

int cfg_check_carry_schema(const struct extractd_config *cfg,
			   struct json_object *schema, char *err,
			   size_t err_size)
{
	const struct cfg_list *carry = &cfg->output.carry;
	const char *origin = cfg_origin(cfg, "output.carry");
	struct json_object *props = NULL, *type = NULL;
	char name[256];
	size_t i;

	if (!carry->n)
		return 0;
	if (json_object_object_get_ex(schema, "type", &type) &&
	    !(json_object_is_type(type, json_type_string) &&
	      !strcmp(json_object_get_string(type), "object"))) {
		snprintf(err, err_size, "%s: output.carry: the schema does "
			 "not describe an object, so no field can be carried "
			 "into its outputs", origin);
		return -1;
	}
	json_object_object_get_ex(schema, "properties", &props);
	for (i = 0; i < carry->n; i++) {
		input_pointer_last(carry->items[i], name, sizeof(name));
		if (!json_object_is_type(props, json_type_object) ||
		    !json_object_object_get_ex(props, name, NULL))
			continue;
		snprintf(err, err_size, "%s: output.carry: \"%s\" would be "
			 "carried as \"%s\", which the schema's properties "
			 "also define: the model's %s would be overwritten",
			 origin, carry->items[i], name, name);
		return -1;
	}
	return 0;
}

bool cfg_priced(const struct extractd_config *cfg)
{
	return cfg->llm.price.input > 0 && cfg->llm.price.output > 0;
}

const char *cfg_setting_path(size_t i)
{
	const struct cfg_entry *e;

	for (e = cfg_table; e < cfg_table + CFG_N; e++) {
		if (e->type == CFG_T_FORBIDDEN)
			continue;
		if (i-- == 0)
			return e->path;
	}
	return NULL;
}

/** Output buffer for cfg_value_text(): remembers running out of room. */
struct cfg_out {
	char *buf;
	size_t size, len;
	bool full;
};

__attribute__((format(printf, 2, 3))) static void
cfg_out_add(struct cfg_out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, o->size - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->size - o->len)
		o->full = true;
	else
		o->len += (size_t)n;
}

/** s as a libconfig string literal (NULL, in a hand-built config: ""). */
static void cfg_out_quoted(struct cfg_out *o, const char *s)
{
	if (!s)
		s = "";
	cfg_out_add(o, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			cfg_out_add(o, "\\%c", c);
		else if (c == '\n')
			cfg_out_add(o, "\\n");
		else if (c == '\t')
			cfg_out_add(o, "\\t");
		else if (c == '\r')
			cfg_out_add(o, "\\r");
		else if (c < 0x20)
			cfg_out_add(o, "\\x%02x", c);
		else
			cfg_out_add(o, "%c", c);
	}
	cfg_out_add(o, "\"");
}

/*
 * Secrets by name: librdkafka's properties whose name holds one of these
 * words, and any unknown one that does, hold secrets (sasl.password,
 * ssl.key.password, ssl.key.pem, sasl.oauthbearer.client.secret,
 * sasl.oauthbearer.config, sasl.jaas.config...). The exceptions match a
 * word but hold a path, a switch or a public name: hiding them would only
 * hurt (a value "true" or "oidc" registered as a log secret would blank
 * that word out of every log line).
 */
static const char *const cfg_secret_words[] = {
	"password", "passphrase", "secret", "key", "token", "jaas",
	"oauthbearer",
};
static const char *const cfg_not_secret[] = {
	"ssl.key.location", "ssl.keystore.location", "sasl.kerberos.keytab",
	"enable.sasl.oauthbearer.unsecure.jwt", "sasl.oauthbearer.method",
	"sasl.oauthbearer.client.id", "sasl.oauthbearer.scope",
};

bool cfg_secret_property(const char *name)
{
	size_t i;

	for (i = 0; i < CFG_ARRAY_SIZE(cfg_not_secret); i++)
		if (strcmp(name, cfg_not_secret[i]) == 0)
			return false;
	for (i = 0; i < CFG_ARRAY_SIZE(cfg_secret_words); i++)
		if (strstr(name, cfg_secret_words[i]))
			return true;
	return false;
}

int cfg_value_text(const struct extractd_config *cfg, const char *path,
		   char *buf, size_t size)
{
	struct cfg_out o = { .buf = buf, .size = size };
	const struct cfg_entry *e;
	const void *field;
	char num[64];
	size_t i;
	int idx;

	if (!cfg || !path || !buf || size == 0)
		return -1;
	idx = cfg_find(path);
	if (idx < 0)
		return -1;
	e = &cfg_table[idx];
	field = cfg_field(cfg, e);
	buf[0] = '\0';
	switch (e->type) {
	case CFG_T_STRING:
		cfg_out_quoted(&o, *(char *const *)field);
		break;
	case CFG_T_UINT:
		cfg_out_add(&o, "%u", *(const unsigned *)field);
		break;
	case CFG_T_SIZE:
		cfg_out_add(&o, "%zu", *(const size_t *)field);
		break;
	case CFG_T_U64:
		cfg_out_add(&o, "%" PRIu64, *(const uint64_t *)field);
		break;
	case CFG_T_DOUBLE:
		cfg_format_double(*(const double *)field, num, sizeof(num));
		cfg_out_add(&o, "%s%s", num,
			    strpbrk(num, ".eEn") ? "" : ".0");
		break;
	case CFG_T_ENUM:
		for (idx = 0; e->names[idx]; idx++)
			if (idx == cfg_load_enum(field))
				break;
		if (!e->names[idx])
			return -1;
		cfg_out_quoted(&o, e->names[idx]);
		break;
	case CFG_T_PROPS:
		cfg_out_add(&o, "(");
		for (i = 0; i < cfg->kafka.n_properties; i++) {
			const struct cfg_property *p = &cfg->kafka.properties[i];

			cfg_out_add(&o, "%s(", i ? ", " : "");
			cfg_out_quoted(&o, p->name);
			cfg_out_add(&o, ", ");
			cfg_out_quoted(&o, cfg_secret_property(p->name)
						   ? "(redacted)"
						   : p->value);
			cfg_out_add(&o, ")");
		}
		cfg_out_add(&o, ")");
		break;
	case CFG_T_LIST:
		cfg_out_add(&o, "[");
		for (i = 0; i < ((const struct cfg_list *)field)->n; i++) {
			cfg_out_add(&o, "%s", i ? ", " : " ");
			cfg_out_quoted(&o,
				       ((const struct cfg_list *)field)->items[i]);
		}
		cfg_out_add(&o, " ]");
		break;
	case CFG_T_FORBIDDEN:
		return -1;
	}
	if (o.full) {
		buf[0] = '\0';
		return -1;
	}
	return 0;
}

const char *cfg_mode_name(enum cfg_llm_mode mode)
{
	if ((unsigned)mode >= CFG_ARRAY_SIZE(cfg_mode_names) - 1)
		return "(invalid)";
	return cfg_mode_names[mode];
}

const char *cfg_ordering_name(enum cfg_ordering ordering)
{
	if ((unsigned)ordering >= CFG_ARRAY_SIZE(cfg_ordering_names) - 1)
		return "(invalid)";
	return cfg_ordering_names[ordering];
}

const char *cfg_batch_mode_name(enum cfg_batch_mode mode)
{
	if ((unsigned)mode >= CFG_ARRAY_SIZE(cfg_batch_mode_names) - 1)
		return "(invalid)";
	return cfg_batch_mode_names[mode];
}

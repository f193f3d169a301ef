/*
 * config: the daemon's settings, loaded once from a libconfig file plus
 * command-line overrides, checked, then read-only for the process lifetime.
 *
 * DESIGN
 * ------
 * One table lists every setting with its type, default and bounds. Loading
 * reads the file (if any), applies each "-s path=value" override in order,
 * then walks the table: every known setting is checked and copied into
 * struct extractd_config (strings are strdup'ed: libconfig owns its own),
 * every unknown setting is an error (typos must not pass silently), except
 * under kafka.properties, which is handed verbatim to librdkafka.
 * Errors read "FILE:LINE: setting: what is wrong"; an override that is wrong
 * reads "-s:N: setting: what is wrong" (N counts the -s options from 1).
 * Relative paths (schema.file, llm.api_key_file) resolve against the
 * directory of the config file, or the working directory without one.
 * Rules across settings are checked last: the three topics and
 * batch.state_topic differ; batches need completion or offset order and
 * at-least-once delivery.
 *
 * Secrets: a kafka.properties value "${env:NAME}" or "${file:PATH}" is
 * read from the environment or a file while loading, so none need be in
 * the config text; a secret (cfg_secret_property()) written literally
 * with "-s" is refused, and no error message shows a value that may be a
 * secret.
 */
#ifndef EXTRACTD_CONFIG_H
#define EXTRACTD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;

/*
 * How the schema travels in a request (llm.c). The first five are request
 * formats, in the order llm.mode = "auto" tries them (the first the
 * server takes is used); CFG_MODE_AUTO comes last.
 */
enum cfg_llm_mode {
	CFG_MODE_JSON_SCHEMA,        /**< response_format json_schema */
	CFG_MODE_JSON_OBJECT_SCHEMA, /**< json_object with a "schema" member
				       *  (llama.cpp, vLLM) */
	CFG_MODE_TOOLS,              /**< one forced tool */
	CFG_MODE_JSON_OBJECT,        /**< response_format json_object */
	CFG_MODE_MD_JSON,            /**< a fenced block in plain text */
	CFG_MODE_AUTO,
};

/* output.ordering: completion (as answers finish), offset (per input
 * partition, in offset order), key (per input partition and key, in
 * offset order; different keys do not wait for each other). */
enum cfg_ordering { CFG_ORDER_COMPLETION, CFG_ORDER_OFFSET, CFG_ORDER_KEY };
/* pool.concurrency: how many LLM calls may be open at once. fixed:
 * pool.max_in_flight; adaptive: a live limit between 1 and it, found
 * from the API's latency, timeouts and 429s (daemon/limiter.c). */
enum cfg_concurrency { CFG_CONC_FIXED, CFG_CONC_ADAPTIVE };
/*
 * output.partitioning: auto (the default) is key, except in offset order
 * (output.ordering = offset, or exactly-once, which releases in offset
 * order), where a record without a key goes by source, so that readers
 * see its input partition's order (daemon/producer.c).
 */
enum cfg_partitioning { CFG_PART_AUTO, CFG_PART_KEY, CFG_PART_SOURCE };
enum cfg_delivery { CFG_DELIVERY_AT_LEAST_ONCE, CFG_DELIVERY_EXACTLY_ONCE };
/* input.format: a record is the text itself, or a JSON document whose
 * input.text_pointer names the text (common/input.h). */
enum cfg_input_format { CFG_INPUT_TEXT, CFG_INPUT_JSON };
/*
 * batch.mode: which records go through the Batch API instead of a live
 * call. off: none; backlog: those admitted while their partition's lag
 * is above batch.min_backlog; always: all of them.
 */
enum cfg_batch_mode { CFG_BATCH_OFF, CFG_BATCH_BACKLOG, CFG_BATCH_ALWAYS };
enum cfg_log_level { CFG_LOG_DEBUG, CFG_LOG_INFO, CFG_LOG_WARN, CFG_LOG_ERROR };
enum cfg_log_format { CFG_LOG_JSON, CFG_LOG_TEXT };

/** One kafka.properties entry, passed verbatim to rd_kafka_conf_set(). */
struct cfg_property {
	char *name;  /**< e.g. "sasl.mechanism" */
	char *value; /**< value as text (numbers and booleans converted) */
};

struct cfg_meta;

struct extractd_config {
	struct {
		char *brokers;       /**< bootstrap.servers */
		char *group;         /**< group.id */
		char *input_topic;
		char *output_topic;
		char *dlq_topic;
		unsigned consumer_threads; /**< 1..64 */
		struct cfg_property *properties; /**< kafka.properties */
		size_t n_properties;
	} kafka;
	struct {
		char *base_url;      /**< without trailing slash */
		char *api_key_env;   /**< name of the env variable, may be "" */
		char *api_key_file;  /**< resolved path, "" when unset */
		char *api_key_header; /**< "" = Authorization: Bearer */
		char *model;
		enum cfg_llm_mode mode;
		unsigned timeout_ms;         /**< whole call, 1..3600000 */
		unsigned connect_timeout_ms; /**< 1..600000, default 10000 */
		unsigned max_reasks;         /**< 0..10 */
		double temperature;          /**< 0..2 */
		size_t max_response_bytes;   /**< 1 KiB..64 MiB, default 1 MiB */
		unsigned max_tokens;         /**< sent when > 0; 0..1000000 */
		unsigned max_tokens_limit;   /**< a cut answer's retry asks for
					       *  at most this, >= max_tokens */
		char *ca_file;               /**< resolved path, "" = system */
		/** Dollars per million tokens, 0 = unknown; input and
		 *  output are set together (> 0) or not at all. */
		struct cfg_price {
			double input;
			double cached_input; /**< 0: cached bill as input */
			double output;
			double batch_factor; /**< share of the prices paid
					       *  for a Batch API answer's
					       *  tokens, 0 < f <= 1 */
		} price;
		char *prompt_cache_key;      /**< "auto" = derived from the
					       *  schema and instructions, "" =
					       *  not sent, else sent as is */
	} llm;
	struct {
		char *file;          /**< resolved path */
		char *name;          /**< ^[A-Za-z0-9_-]{1,64}$ (OpenAI's rule) */
		char *instructions;  /**< the system message */
	} schema;
	struct {
		unsigned workers;        /**< 1..4096 */
		unsigned max_in_flight;  /**< 1..65536 */
		enum cfg_concurrency concurrency;
	} pool;
	struct {
		unsigned requests_per_minute; /**< 0 = unlimited */
		unsigned tokens_per_minute;   /**< 0 = unlimited */
		double usd_per_hour;          /**< spending caps, 0 = none; */
		double usd_per_day;           /**< need llm.price */
	} rate;
	struct {
		unsigned max_attempts;   /**< 1..100 */
		unsigned base_delay_ms;
		unsigned max_delay_ms;   /**< >= base_delay_ms */
		unsigned max_elapsed_ms; /**< a record's retries stop here */
	} retry;
	struct {
		size_t max_bytes;        /**< 1..16 MiB, default 65536: the
					   *  whole record */
		enum cfg_input_format format;
		char *text_pointer;      /**< JSON Pointer, default "/text" */
	} input;
	struct {
		unsigned entries;        /**< answer cache, 0 = off */
		size_t max_bytes;        /**< its memory, at most */
	} cache;
	struct {
		enum cfg_ordering ordering;
		enum cfg_partitioning partitioning;
		enum cfg_delivery delivery;
		unsigned transaction_ms; /**< exactly-once commit period */
		/** JSON Pointers of the input fields copied into each output
		 *  under their last token (input.format = json only); their
		 *  last tokens differ. */
		struct cfg_list {
			char **items;
			size_t n;
		} carry;
	} output;
	struct {
		enum cfg_batch_mode mode;
		uint64_t min_backlog;    /**< backlog: a partition's lag, in
					   *  records, above which new records
					   *  are batched; 1..10^9 */
		unsigned max_requests;   /**< requests in one batch file,
					   *  1..50000 (OpenAI's limit) */
		double max_wait_s;       /**< a batch file is closed this long
					   *  after its first record, full or
					   *  not; 0.1..86400 */
		unsigned poll_ms;        /**< a submitted batch's status is
					   *  asked this often */
		unsigned max_pending;    /**< records in open and submitted
					   *  batches, all partitions; the
					   *  input waits above it */
		char *state_topic;       /**< compacted topic of the batches
					   *  in flight; not one of the three
					   *  kafka topics */
	} batch;
	struct {
		unsigned timeout_ms;     /**< SIGTERM to exit, at most */
	} shutdown;
	struct {
		char *listen;            /**< "host:port", "" disables */
	} http;
	struct {
		enum cfg_log_level level;
		enum cfg_log_format format;
	} log;
	/** Private to config.c: where each value came from, for cfg_origin().
	 *  NULL in a config built by hand (every origin is then "(default)"). */
	struct cfg_meta *meta;
};

/**
 * @brief Load and check the configuration.
 * @param path config file, or NULL for the built-in defaults
 * @param overrides "-s" arguments, each "dotted.path=value"
 * @param ret_cfg set on success; free with cfg_free()
 * @param err receives "FILE:LINE: setting: what is wrong" on failure
 * @returns 0 on success, -1 on a bad file or value.
 */
int cfg_load(const char *path, const char *const *overrides,
	     size_t n_overrides, struct extractd_config **ret_cfg,
	     char *err, size_t err_size);

/** Free a configuration; NULL is fine. */
void cfg_free(struct extractd_config *cfg);

/**
 * @brief Where a setting's value came from, for error messages about it
 * that are found after loading (a schema file that does not compile).
 * @param setting dotted path, e.g. "schema.file"
 * @returns "FILE:LINE", "-s:N", or "(default)"; never NULL, valid as long
 *          as cfg.
 */
const char *cfg_origin(const struct extractd_config *cfg, const char *setting);

/**
 * @brief The start-up check that needs the schema: no output.carry name
 * (a pointer's last token) is one of the schema's top-level properties,
 * and with output.carry the schema describes an object.
 * @param schema the schema document (json-c)
 * @returns 0, or -1 with "ORIGIN: output.carry: what is wrong" in err.
 */
int cfg_check_carry_schema(const struct extractd_config *cfg,
			   struct json_object *schema, char *err,
			   size_t err_size);

/** Whether llm.price is set (input and output > 0): records have a cost. */
bool cfg_priced(const struct extractd_config *cfg);

/**
 * @brief The dotted path of the i-th known setting, in the order of the
 * settings table (e.g. "kafka.brokers", ..., "log.format"), for --help,
 * --check-config and tests.
 * @returns the path, or NULL when i is past the last setting.
 */
const char *cfg_setting_path(size_t i);

/**
 * @brief A setting's value written as in a config file ("16", "0.5",
 * "\"json\"", kafka.properties as a list of pairs), into buf. Values of
 * kafka.properties that hold secrets (cfg_secret_property()) are written
 * as "(redacted)".
 * @returns 0, or -1 for an unknown path or a buffer too small.
 */
int cfg_value_text(const struct extractd_config *cfg, const char *path,
		   char *buf, size_t size);

/**
 * @brief Whether a kafka.properties entry holds a secret, by its name
 * (password, passphrase, secret, key, token, jaas or oauthbearer in it,
 * except the few librdkafka names among those that hold a path, a switch
 * or a public name, such as ssl.key.location). The one definition: such
 * values are never shown or logged, and "-s" refuses them.
 */
bool cfg_secret_property(const char *name);

/** Names for the enums, as they are written in the config file. */
const char *cfg_mode_name(enum cfg_llm_mode mode);
const char *cfg_ordering_name(enum cfg_ordering ordering);
const char *cfg_batch_mode_name(enum cfg_batch_mode mode);

#endif

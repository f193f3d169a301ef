/*
 * metrics: see metrics.h for the design (who writes what, and the one
 * lock: lag_lock guards the lag table, nothing else).
 */
#include "metrics.h"

#include "llm.h"
#include "llmgate.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* HTTP statuses counted one by one; anything outside is "other". */
#define STATUS_MIN 100
#define STATUS_MAX 599

/* Labels of extractd_dead_letters_total{error}, as in extractd.error. */
static const char *const error_names[] = {
	"input", "validation", "llm_http", "llm_timeout", "llm_refusal",
	"output_too_large", "other",
};

/* extractd_llm_requests_total{status} when no HTTP status came back. */
enum call_special { CALL_TIMEOUT, CALL_TRANSPORT, CALL_TOO_LARGE, CALL_OTHER,
		    CALL_N };
static const char *const special_names[] = {
	"timeout", "transport", "too_large", "other",
};

/* extractd_llm_retries_total{reason}. */
enum retry_reason { RETRY_RATE_LIMITED, RETRY_SERVER_ERROR, RETRY_TIMEOUT,
		    RETRY_TRANSPORT, RETRY_MALFORMED, RETRY_PAUSED,
		    RETRY_OTHER, RETRY_N };
static const char *const reason_names[] = {
	"rate_limited", "server_error", "timeout", "transport", "malformed",
	"paused", "other",
};

/* Upper bounds (seconds) of the duration buckets: LLM calls are slow,
 * and the default timeout is 30 s; 120 s covers long generations. */
static const double bucket_le[] = {
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120,
};
#define N_BUCKETS (ARRAY_SIZE(bucket_le) + 1) /* + Inf */
#define HISTOGRAM "extractd_llm_request_duration_seconds"

/* Updating a counter must never take a lock. */
_Static_assert(ATOMIC_LONG_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
	       "metrics need lock-free 64-bit atomics");

struct lag_entry {
	unsigned owner;   /**< the consumer that reported it */
	char *topic;
	int32_t partition;
	int64_t lag;
};

struct metrics {
	atomic_uint_fast64_t records_ok;
	atomic_uint_fast64_t dead[ARRAY_SIZE(error_names)];
	atomic_uint_fast64_t status[STATUS_MAX - STATUS_MIN + 1];
	atomic_uint_fast64_t special[CALL_N];
	atomic_uint_fast64_t bucket[N_BUCKETS]; /**< not cumulative */
	atomic_uint_fast64_t duration_us;       /**< the histogram's sum */
	atomic_uint_fast64_t retries[RETRY_N];
	atomic_uint_fast64_t reasks;
	atomic_uint_fast64_t cache_hits, cache_misses;
	atomic_uint_fast64_t cache_entries;
	atomic_uint_fast64_t batch_records;  /**< waiting on a batch */
	atomic_uint_fast64_t batches;        /**< in flight at the API */
	atomic_uint_fast64_t batch_oldest_ms; /**< the oldest's age */
	atomic_uint_fast64_t batches_created;
	atomic_uint_fast64_t tokens_prompt, tokens_completion;
	atomic_uint_fast64_t tokens_cached, tokens_reasoning;
	_Atomic double cost_usd;
	atomic_int_fast64_t inflight;
	atomic_uint concurrency_limit;
	atomic_uint limit_reason;             /**< metrics_limit_reasons
						*  index + 1; 0: none yet */
	atomic_int_fast64_t llm_latency_ns;   /**< the limiter's */
	atomic_int_fast64_t llm_pace_ns;
	atomic_uint paused;                   /**< enum llm_fault now */
	atomic_uint mode;                     /**< enum cfg_llm_mode in use
						*  + 1; 0: none yet */
	atomic_uint_fast64_t pauses[LLM_FAULT_N];

	pthread_mutex_t lag_lock; /**< guards lag, n_lag, cap_lag */
	struct lag_entry *lag;
	size_t n_lag, cap_lag;
};

static inline void bump(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t load(atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

struct metrics *metrics_new(void)
{
	/* calloc's zero bytes are valid zero atomics: they are plain
	 * lock-free integers (checked at the top of this file). */
	struct metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	pthread_mutex_init(&m->lag_lock, NULL);
	return m;
}

static void lag_entries_free(struct lag_entry *e, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(e[i].topic);
	free(e);
}

void metrics_free(struct metrics *m)
{
	if (!m)
		return;
	lag_entries_free(m->lag, m->n_lag);
	pthread_mutex_destroy(&m->lag_lock);
	free(m);
}

static size_t error_index(const char *error)
{
	size_t i;

	for (i = 0; i + 1 < ARRAY_SIZE(error_names); i++)
		if (error && !strcmp(error, error_names[i]))
			return i;
	return ARRAY_SIZE(error_names) - 1;
}

void metrics_record(struct metrics *m, const char *error, unsigned reasks,
		    const struct metrics_usage *usage)
{
	double cost;

	if (error)
		bump(&m->dead[error_index(error)], 1);
	else
		bump(&m->records_ok, 1);
	if (reasks)
		bump(&m->reasks, reasks);
	if (usage->prompt)
		bump(&m->tokens_prompt, usage->prompt);
	if (usage->completion)
		bump(&m->tokens_completion, usage->completion);
	if (usage->cached)
		bump(&m->tokens_cached, usage->cached);
	if (usage->reasoning)
		bump(&m->tokens_reasoning, usage->reasoning);
	if (usage->cost_usd <= 0)
		return;
	/* No fetch_add for a double: compare and swap. */
	cost = atomic_load_explicit(&m->cost_usd, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(
		&m->cost_usd, &cost, cost + usage->cost_usd,
		memory_order_relaxed, memory_order_relaxed))
		;
}

static enum retry_reason retry_reason(const struct llm_call *call)
{
	const char *o = call->outcome ? call->outcome : "";

	if (!strcmp(o, "timeout"))
		return RETRY_TIMEOUT;
	if (!strcmp(o, "transport"))
		return RETRY_TRANSPORT;
	if (!strcmp(o, "malformed"))
		return RETRY_MALFORMED;
	if (!strcmp(o, "paused"))
		return RETRY_PAUSED;
	if (call->status == 429)
		return RETRY_RATE_LIMITED;
	if (call->status >= 500 && call->status <= 599)
		return RETRY_SERVER_ERROR;
	return RETRY_OTHER;
}

void metrics_llm_observe(void *arg, const struct llm_call *call)
{
	struct metrics *m = arg;
	double s = call->seconds > 0 ? call->seconds : 0;
	size_t b;

	if (call->status >= STATUS_MIN && call->status <= STATUS_MAX) {
		bump(&m->status[call->status - STATUS_MIN], 1);
	} else {
		const char *o = call->outcome ? call->outcome : "";
		enum call_special sp = !strcmp(o, "timeout") ? CALL_TIMEOUT
				     : !strcmp(o, "transport") ? CALL_TRANSPORT
				     : !strcmp(o, "too_large") ? CALL_TOO_LARGE
							       : CALL_OTHER;

		bump(&m->special[sp], 1);
	}
	for (b = 0; b < ARRAY_SIZE(bucket_le) && s > bucket_le[b]; b++)
		;
	bump(&m->bucket[b], 1);
	bump(&m->duration_us, (uint64_t)(s * 1e6 + 0.5));
	if (call->will_retry)
		bump(&m->retries[retry_reason(call)], 1);
}

void metrics_llm_mode(struct metrics *m, enum cfg_llm_mode mode)
{
	if (mode < CFG_MODE_AUTO)
		atomic_store_explicit(&m->mode, (unsigned)mode + 1,
				      memory_order_relaxed);
}

void metrics_llm_pause(struct metrics *m, enum llm_fault fault)
{
	if ((unsigned)fault >= LLM_FAULT_N)
		return;
	atomic_store_explicit(&m->paused, fault, memory_order_relaxed);
	if (fault != LLM_FAULT_NONE)
		bump(&m->pauses[fault], 1);
}

void metrics_concurrency_limit(struct metrics *m, unsigned limit)
{
	atomic_store_explicit(&m->concurrency_limit, limit,
			      memory_order_relaxed);
}

const char *const metrics_limit_reasons[] = {
	"start", "probe", "growth", "rtt gradient", "429", "timeout", "5xx",
	"rate headers", NULL,
};

void metrics_limiter(struct metrics *m, const char *reason,
		     int64_t latency_ns, int64_t pace_ns)
{
	unsigned i;

	for (i = 0; metrics_limit_reasons[i]; i++)
		if (reason && !strcmp(reason, metrics_limit_reasons[i]))
			atomic_store_explicit(&m->limit_reason, i + 1,
					      memory_order_relaxed);
	atomic_store_explicit(&m->llm_latency_ns, latency_ns,
			      memory_order_relaxed);
	atomic_store_explicit(&m->llm_pace_ns, pace_ns,
			      memory_order_relaxed);
}

void metrics_answer_cache(struct metrics *m, bool hit, size_t entries)
{
	atomic_fetch_add_explicit(hit ? &m->cache_hits : &m->cache_misses, 1,
				  memory_order_relaxed);
	metrics_answer_cache_entries(m, entries);
}

void metrics_answer_cache_entries(struct metrics *m, size_t entries)
{
	atomic_store_explicit(&m->cache_entries, entries,
			      memory_order_relaxed);
}

void metrics_batch(struct metrics *m, uint64_t records, uint64_t batches,
		   uint64_t oldest_ms)
{
	atomic_store_explicit(&m->batch_records, records,
			      memory_order_relaxed);
	atomic_store_explicit(&m->batches, batches, memory_order_relaxed);
	atomic_store_explicit(&m->batch_oldest_ms, oldest_ms,
			      memory_order_relaxed);
}

void metrics_batch_created(struct metrics *m)
{
	atomic_fetch_add_explicit(&m->batches_created, 1,
				  memory_order_relaxed);
}

void metrics_inflight_add(struct metrics *m, int delta)
{
	atomic_fetch_add_explicit(&m->inflight, delta, memory_order_relaxed);
}

/* Remove owner's entries from the table; lag_lock held. */
static void lag_remove(struct metrics *m, unsigned owner)
{
	size_t i, kept = 0;

	for (i = 0; i < m->n_lag; i++) {
		if (m->lag[i].owner == owner)
			free(m->lag[i].topic);
		else
			m->lag[kept++] = m->lag[i];
	}
	m->n_lag = kept;
}

int metrics_lag_set(struct metrics *m, unsigned owner,
		    const struct metrics_lag *v, size_t n)
{
	struct lag_entry *fresh = NULL;
	size_t i;

	if (n) {
		fresh = calloc(n, sizeof(*fresh));
		if (!fresh)
			return -1;
	}
	for (i = 0; i < n; i++) {
		fresh[i].topic = strdup(v[i].topic);
		if (!fresh[i].topic) {
			lag_entries_free(fresh, i);
			return -1;
		}
		fresh[i].owner = owner;
		fresh[i].partition = v[i].partition;
		fresh[i].lag = v[i].lag;
	}

	pthread_mutex_lock(&m->lag_lock);
	lag_remove(m, owner);
	if (m->n_lag + n > m->cap_lag) {
		size_t cap = m->n_lag + n + 16;
		struct lag_entry *nv = realloc(m->lag, cap * sizeof(*nv));

		if (!nv) {
			pthread_mutex_unlock(&m->lag_lock);
			lag_entries_free(fresh, n);
			return -1;
		}
		m->lag = nv;
		m->cap_lag = cap;
	}
	if (n)
		memcpy(m->lag + m->n_lag, fresh, n * sizeof(*fresh));
	m->n_lag += n;
	pthread_mutex_unlock(&m->lag_lock);
	free(fresh); /* the topics now belong to the table */
	return 0;
}

void metrics_lag_forget(struct metrics *m, unsigned owner)
{
	pthread_mutex_lock(&m->lag_lock);
	lag_remove(m, owner);
	pthread_mutex_unlock(&m->lag_lock);
}

void metrics_summary(struct metrics *m, struct metrics_summary *ret)
{
	size_t i;

	memset(ret, 0, sizeof(*ret));
	ret->records_ok = load(&m->records_ok);
	ret->tokens_prompt = load(&m->tokens_prompt);
	ret->tokens_completion = load(&m->tokens_completion);
	ret->tokens_cached = load(&m->tokens_cached);
	ret->tokens_reasoning = load(&m->tokens_reasoning);
	ret->cost_usd = atomic_load_explicit(&m->cost_usd,
					     memory_order_relaxed);
	for (i = 0; i < ARRAY_SIZE(error_names); i++)
		ret->dead_letters += load(&m->dead[i]);
	ret->inflight = atomic_load_explicit(&m->inflight,
					     memory_order_relaxed);
	pthread_mutex_lock(&m->lag_lock);
	for (i = 0; i < m->n_lag; i++)
		ret->lag += m->lag[i].lag;
	ret->lag_parts = (unsigned)m->n_lag;
	pthread_mutex_unlock(&m->lag_lock);
}

/* A label value with Prometheus' escapes (\\, \", \n). */
static void put_label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(f, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void family(FILE *f, const char *name, const char *type,
		   const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_counters(FILE *f, struct metrics *m)
{
	uint64_t dead = 0;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(error_names); i++)
		dead += load(&m->dead[i]);
	family(f, "extractd_records_total", "counter",
	       "Input records finished (delivered to the output or the "
	       "dead-letter topic), by result.");
	fprintf(f, "extractd_records_total{result=\"ok\"} %llu\n",
		(unsigned long long)load(&m->records_ok));
	fprintf(f, "extractd_records_total{result=\"dead_letter\"} %llu\n",
		(unsigned long long)dead);

	family(f, "extractd_dead_letters_total", "counter",
	       "Dead-letter records delivered, by extractd.error kind.");
	for (i = 0; i < ARRAY_SIZE(error_names); i++)
		fprintf(f, "extractd_dead_letters_total{error=\"%s\"} %llu\n",
			error_names[i],
			(unsigned long long)load(&m->dead[i]));

	family(f, "extractd_llm_requests_total", "counter",
	       "LLM API calls made, by HTTP status, or timeout, transport, "
	       "too_large when no usable status came back.");
	for (i = 0; i <= STATUS_MAX - STATUS_MIN; i++) {
		uint64_t n = load(&m->status[i]);

		if (n)
			fprintf(f, "extractd_llm_requests_total{status=\"%zu\"}"
				" %llu\n", i + STATUS_MIN,
				(unsigned long long)n);
	}
	for (i = 0; i < CALL_N; i++) {
		uint64_t n = load(&m->special[i]);

		if (n || i == CALL_TIMEOUT || i == CALL_TRANSPORT)
			fprintf(f, "extractd_llm_requests_total{status=\"%s\"}"
				" %llu\n", special_names[i],
				(unsigned long long)n);
	}
}

static void render_histogram(FILE *f, struct metrics *m)
{
	uint64_t cum = 0;
	size_t b;

	family(f, HISTOGRAM, "histogram",
	       "Wall time of each LLM API call, retries counted one by one.");
	for (b = 0; b < N_BUCKETS; b++) {
		cum += load(&m->bucket[b]);
		if (b < ARRAY_SIZE(bucket_le))
			fprintf(f, HISTOGRAM "_bucket{le=\"%g\"} %llu\n",
				bucket_le[b], (unsigned long long)cum);
		else
			fprintf(f, HISTOGRAM "_bucket{le=\"+Inf\"} %llu\n",
				(unsigned long long)cum);
	}
	fprintf(f, HISTOGRAM "_sum %.6f\n",
		(double)load(&m->duration_us) / 1e6);
	fprintf(f, HISTOGRAM "_count %llu\n", (unsigned long long)cum);
}

static void render_rest(FILE *f, struct metrics *m, const char *version)
{
	unsigned reason;
	size_t i;

	family(f, "extractd_llm_retries_total", "counter",
	       "LLM API calls that failed and are tried again, by reason.");
	for (i = 0; i < RETRY_N; i++)
		fprintf(f, "extractd_llm_retries_total{reason=\"%s\"} %llu\n",
			reason_names[i],
			(unsigned long long)load(&m->retries[i]));

	family(f, "extractd_llm_paused", "gauge",
	       "1 while the LLM API is paused for a fault of the deployment, "
	       "by the fault; consumption waits.");
	for (i = 1; i < LLM_FAULT_N; i++)
		fprintf(f, "extractd_llm_paused{reason=\"%s\"} %d\n",
			llm_fault_name((enum llm_fault)i),
			atomic_load_explicit(&m->paused,
					     memory_order_relaxed) == i);
	family(f, "extractd_llm_mode", "gauge",
	       "1 for the request format the LLM API takes (llm.mode, found "
	       "by the health checks when \"auto\"), 0 for the others.");
	for (i = 0; i < CFG_MODE_AUTO; i++)
		fprintf(f, "extractd_llm_mode{mode=\"%s\"} %d\n",
			cfg_mode_name((enum cfg_llm_mode)i),
			atomic_load_explicit(&m->mode, memory_order_relaxed) ==
				i + 1);
	family(f, "extractd_llm_pauses_total", "counter",
	       "Times the LLM API was paused, by the fault.");
	for (i = 1; i < LLM_FAULT_N; i++)
		fprintf(f, "extractd_llm_pauses_total{reason=\"%s\"} %llu\n",
			llm_fault_name((enum llm_fault)i),
			(unsigned long long)load(&m->pauses[i]));

	family(f, "extractd_reasks_total", "counter",
	       "LLM calls that re-asked after an answer failed validation.");
	fprintf(f, "extractd_reasks_total %llu\n",
		(unsigned long long)load(&m->reasks));

	family(f, "extractd_answer_cache_hits_total", "counter",
	       "Records answered from the answer cache (cache.entries): no "
	       "LLM call.");
	fprintf(f, "extractd_answer_cache_hits_total %llu\n",
		(unsigned long long)load(&m->cache_hits));
	family(f, "extractd_answer_cache_misses_total", "counter",
	       "Records looked up in the answer cache and not found there.");
	fprintf(f, "extractd_answer_cache_misses_total %llu\n",
		(unsigned long long)load(&m->cache_misses));
	family(f, "extractd_answer_cache_entries", "gauge",
	       "Validated answers the answer cache holds.");
	fprintf(f, "extractd_answer_cache_entries %llu\n",
		(unsigned long long)load(&m->cache_entries));

	family(f, "extractd_batch_records", "gauge",
	       "Records waiting on a batch (batch.mode): in one being "
	       "gathered or in flight at the Batch API.");
	fprintf(f, "extractd_batch_records %llu\n",
		(unsigned long long)load(&m->batch_records));
	family(f, "extractd_batches", "gauge",
	       "Batches this instance follows at the Batch API, not yet "
	       "over.");
	fprintf(f, "extractd_batches %llu\n",
		(unsigned long long)load(&m->batches));
	family(f, "extractd_batch_oldest_seconds", "gauge",
	       "How long the oldest of them has been in flight; 0 when "
	       "none is.");
	fprintf(f, "extractd_batch_oldest_seconds %.3f\n",
		(double)load(&m->batch_oldest_ms) / 1000);
	family(f, "extractd_batches_created_total", "counter",
	       "Batches this instance created at the Batch API.");
	fprintf(f, "extractd_batches_created_total %llu\n",
		(unsigned long long)load(&m->batches_created));

	family(f, "extractd_inflight", "gauge",
	       "Records admitted and not yet delivered (at most "
	       "pool.max_in_flight).");
	fprintf(f, "extractd_inflight %lld\n",
		(long long)atomic_load_explicit(&m->inflight,
						memory_order_relaxed));

	family(f, "extractd_concurrency_limit", "gauge",
	       "LLM calls that may be open at once now: pool.max_in_flight, "
	       "or the live limit with pool.concurrency = adaptive.");
	fprintf(f, "extractd_concurrency_limit %u\n",
		atomic_load_explicit(&m->concurrency_limit,
				     memory_order_relaxed));

	reason = atomic_load_explicit(&m->limit_reason, memory_order_relaxed);
	family(f, "extractd_concurrency_limit_reason", "gauge",
	       "Why the live limit last changed (pool.concurrency = "
	       "adaptive): 1 for the reason, 0 for the others.");
	for (i = 0; metrics_limit_reasons[i]; i++)
		fprintf(f, "extractd_concurrency_limit_reason{reason=\"%s\"} "
			"%d\n", metrics_limit_reasons[i], reason == i + 1);
	family(f, "extractd_llm_latency_seconds", "gauge",
	       "The LLM calls' latency the adaptive limiter measures (an "
	       "average of answered calls); 0 before any, or when fixed.");
	fprintf(f, "extractd_llm_latency_seconds %.6f\n",
		(double)atomic_load_explicit(&m->llm_latency_ns,
					     memory_order_relaxed) / 1e9);
	family(f, "extractd_llm_pace_seconds", "gauge",
	       "The time between two LLM call starts that the provider's "
	       "rate headers ask for now (adaptive); 0: none.");
	fprintf(f, "extractd_llm_pace_seconds %.6f\n",
		(double)atomic_load_explicit(&m->llm_pace_ns,
					     memory_order_relaxed) / 1e9);

	family(f, "extractd_llm_tokens_total", "counter",
	       "Tokens the LLM API reported as used by delivered records, "
	       "by kind (cached is part of prompt, reasoning of "
	       "completion).");
	fprintf(f, "extractd_llm_tokens_total{kind=\"prompt\"} %llu\n",
		(unsigned long long)load(&m->tokens_prompt));
	fprintf(f, "extractd_llm_tokens_total{kind=\"completion\"} %llu\n",
		(unsigned long long)load(&m->tokens_completion));
	fprintf(f, "extractd_llm_tokens_total{kind=\"cached\"} %llu\n",
		(unsigned long long)load(&m->tokens_cached));
	fprintf(f, "extractd_llm_tokens_total{kind=\"reasoning\"} %llu\n",
		(unsigned long long)load(&m->tokens_reasoning));

	family(f, "extractd_cost_usd_total", "counter",
	       "Dollars the delivered records' LLM calls cost at llm.price "
	       "(0 without a price).");
	fprintf(f, "extractd_cost_usd_total %.9g\n",
		atomic_load_explicit(&m->cost_usd, memory_order_relaxed));

	family(f, "extractd_consumer_lag", "gauge",
	       "Records behind the committed offset, per assigned input "
	       "partition (librdkafka statistics).");
	pthread_mutex_lock(&m->lag_lock);
	for (i = 0; i < m->n_lag; i++) {
		fputs("extractd_consumer_lag{topic=\"", f);
		put_label(f, m->lag[i].topic);
		fprintf(f, "\",partition=\"%d\"} %lld\n",
			(int)m->lag[i].partition, (long long)m->lag[i].lag);
	}
	pthread_mutex_unlock(&m->lag_lock);

	family(f, "extractd_build_info", "gauge",
	       "Always 1; the version label says which extractd runs.");
	fputs("extractd_build_info{version=\"", f);
	put_label(f, version);
	fputs("\"} 1\n", f);
}

char *metrics_render(struct metrics *m, const char *version,
		     size_t *ret_len)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return NULL;
	render_counters(f, m);
	render_histogram(f, m);
	render_rest(f, m, version);
	if (ferror(f)) {
		fclose(f);
		free(text);
		return NULL;
	}
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	*ret_len = len;
	return text;
}

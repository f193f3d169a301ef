/*
 * llmsim.c - an OpenAI-compatible chat-completions simulator: the LLM that
 * extractd's tests and benchmarks talk to.
 *
 * llmsim [--listen HOST:PORT] [--port-file F] [--latency-ms N]
 *        [--jitter-ms N] [--fault KIND=RATE,...] [--rpm N] [--tpm N]
 *        [--seed N] [--answers FILE] [--threads N]
 *        [--api-key-file F] [--api-key-header NAME]
 *        [--refuse-mode MODE=STATUS,...] [--cut-finish-reason R]
 *        [--served-model NAME] [--capacity N] [--no-rate-headers]
 *        [--cache-min-tokens N] [--reasoning-tokens N]
 *        [--batch-delay-ms N] [--batch-expire N]
 *
 * Files and batches (sim_batch.c): POST /v1/files, GET and DELETE
 * /v1/files/ID, GET /v1/files/ID/content, POST /v1/batches, GET
 * /v1/batches/ID, POST /v1/batches/ID/cancel, as OpenAI's. A batch's lines
 * are answered as chat requests are (sim_batch_line()) once
 * --batch-delay-ms have passed; --batch-expire N makes the first N
 * batches expire instead. /stats adds batches_created, batch_requests,
 * batch_tokens, files and file_bytes.
 *
 * Prompt caching, as OpenAI's: a request whose prefix (the model, the
 * tool and schema definitions, and every message before the last user
 * message) is one of the last SIM_CACHE_SLOTS prefixes answered reports
 * that prefix's tokens (its messages' bytes / 4, as prompt_tokens counts)
 * as usage.prompt_tokens_details.cached_tokens, when they are at least
 * --cache-min-tokens (default 1024, OpenAI's minimum). --reasoning-tokens
 * N: every answer reports N reasoning tokens, counted in
 * completion_tokens as OpenAI does.
 *
 * --capacity N: at most N requests are in their latency ("computing") at
 * once; the others wait in a FIFO queue and start their latency when a
 * place frees up, so the latency a client sees grows with the load, as on
 * a server with N slots (0, the default: no limit). Requests refused
 * before any work (401, 400, 413, --refuse-mode, the --rpm/--tpm 429s)
 * and the timeout fault take no place. --no-rate-headers:
 * no x-ratelimit-* header on any answer, as self-hosted servers send none
 * (--rpm/--tpm still answer 429, with Retry-After).
 *
 * --refuse-mode: every request in MODE is answered with STATUS (a server
 * that does not take that request format). An answer longer than the
 * request's max_tokens (four bytes a token) is cut there, with the
 * finish_reason --cut-finish-reason (default "length"). --api-key-header:
 * the key of --api-key-file is expected, bare, in that header instead of
 * Authorization: Bearer. --served-model: every answer names that model
 * instead of echoing the request's (as a server with aliases does).
 *
 * --answers FILE: JSONL of {"match": "substring", "content": ...,
 * "delay_ms": N}; a text containing match gets content verbatim, after
 * delay_ms (optional) instead of --latency-ms/--jitter-ms (sim_extract.c).
 * An entry {"match": ..., "status": 400, "echo_headers": true} answers
 * with that HTTP error instead, in OpenAI's error shape, its message
 * quoting the request's headers verbatim (Authorization included), as
 * some gateways do; "retry_after": N or "retry_after_date": N add a
 * Retry-After header (N seconds, or an HTTP date N s ahead), and
 * "times": N makes any entry answer only the first N requests it matches.
 *
 * It answers POST /v1/chat/completions deterministically (sim_extract.c),
 * in the shape the request's mode asks for (sim_chat.c), within per-minute
 * budgets (sim_limit.c), after a simulated latency (sim_timer.c), with
 * seeded random faults, at most --capacity at once (sim_timer.c); GET
 * /stats and POST /reset expose exact counters that tests use as an
 * oracle (among them "tokens", the usage.total_tokens of the answers
 * served, and "first_arrival_ms"/"last_arrival_ms", CLOCK_MONOTONIC, null
 * before any request since the last reset; "traceparent", the requests
 * that carried a W3C traceparent header, and "traceparent_last", the
 * last one, or null).
 *
 * DESIGN
 * ------
 *
 * Threads:
 *  - main: parses options, binds the socket, starts everything, then
 *    waits in sigwait() for SIGINT/SIGTERM (blocked in every thread, so
 *    no handler and no global flag is needed) and shuts down.
 *  - MHD's pool: one epoll thread per core (--threads), each owning the
 *    connections it accepted; all request handling runs here.
 *  - the timer thread (sim_timer.c): resumes suspended connections when
 *    their latency is over, starts queued ones (--capacity) as places
 *    free up, and drops held and queued ones whose client left.
 *
 * A request's life: the handler's first call allocates a struct sim_req
 * (owned by MHD's per-request pointer until the completed callback frees
 * it) and counts the arrival; body chunks are appended up to
 * SIM_BODY_MAX; once the body is complete the answer is built, ready to
 * queue, and either queued at once or the connection is suspended and
 * parked in the timer (queued first when --capacity is full). When
 * resumed, the handler runs again, queues the
 * prepared answer (or closes the connection for a dropped timeout). No
 * thread ever sleeps for a request.
 *
 * Shared state, each with its own guard:
 *  - struct sim_server fields set before MHD starts (options, compiled
 *    regex, answers) are read-only afterwards.
 *  - stats: stats.lock. "current" is incremented when a request arrives
 *    and decremented just *before* its answer is queued (so a client can
 *    never see an answer while it is still counted), as soon as the client
 *    of a held or queued request hangs up, or when the request ends
 *    unanswered; "peak" is updated under the same lock, which makes it
 *    exact. An arrival that would set a new peak first asks the timer to
 *    check the held and queued sockets (sim_timer_reap), so a client
 *    that gave up and retried at once is never counted twice.
 *    r->answered says the request has left "current"; it is written by
 *    the connection's MHD thread, or, while the connection is suspended,
 *    by whoever reports its client gone under the timer's lock (the
 *    resume orders the two).
 *  - the rate limiter: its own mutex (sim_limit.c).
 *  - the fault PRNG and the id counter: C11 atomics (a splitmix64 stream,
 *    one fetch_add per draw), so draws never block.
 *  - parked requests, and the capacity's counters in /stats: the timer's
 *    lock (sim_timer.c). /stats and /reset take it and stats.lock one
 *    after the other, never nested.
 *  - files and batches, and their counters: the store's lock
 *    (sim_batch.c), held while a batch's lines are answered
 *    (sim_batch_line(), which takes stats.lock for the prompt cache and
 *    the fault counts). /stats and /reset take it after the others, not
 *    nested.
 * Lock order: the timer's lock may be held while taking stats.lock (the
 * gone callback), and so may the store's (a batch's lines); nothing else
 * nests, and no lock is held across a call into MHD.
 *
 * Shutdown: quiesce MHD (no new connections), stop the timer (it answers
 * every delayed request and drops every held one, then waits for their
 * handlers to run), then MHD_stop_daemon(), which must not find a
 * suspended connection.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <microhttpd.h>

#include "sim_batch.h"
#include "sim_chat.h"
#include "sim_extract.h"
#include "sim_limit.h"
#include "sim_timer.h"

#define SIM_BODY_MAX		(8u << 20)	/**< request body cap (413) */
#define SIM_BATCH_BODY_MAX	(SIM_BATCH_FILE_MAX + (1u << 20)) /**< an
					 *   upload: the file, the form */
#define SIM_CONN_LIMIT		10000u		/**< open connections */
#define SIM_MAX_THREADS		64u
#define SIM_CAPACITY_MAX	1000000ul	/**< --capacity */
#define SIM_CACHE_SLOTS		1024u		/**< prefixes remembered */
#define SIM_STOP_WAIT_MS	3000u		/**< drain at shutdown */
#define SIM_STATUS_MAX		600u		/**< statuses are < this */
#define SIM_LISTEN_BACKLOG	4096
#define SIM_ERR_LEN		512
#define SIM_NS_PER_MS		1000000ull
#define SIM_JSON_FLAGS	(JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

/** Injectable faults, in the order a draw walks them. */
enum sim_fault {
	SIM_FAULT_NONE,
	SIM_FAULT_429,		/**< rate-limit 429, Retry-After: 1 */
	SIM_FAULT_QUOTA,	/**< 429 insufficient_quota */
	SIM_FAULT_500,
	SIM_FAULT_503,
	SIM_FAULT_TIMEOUT,	/**< never answered */
	SIM_FAULT_MALFORMED,	/**< 200 with a truncated JSON body */
	SIM_FAULT_INVALID,	/**< 200, a Person breaking the schema */
	SIM_FAULT_REFUSAL,	/**< 200, message.refusal */
	SIM_FAULT_400,		/**< 400: the request format is refused */
	SIM_FAULT_CONTENT_FILTER, /**< 200, content withheld: content_filter */
	SIM_FAULT_LENGTH,	/**< 200, the answer cut in half: length */
	SIM_FAULT_403,		/**< 403: the key may not use the API */
	SIM_FAULT_COUNT,
};

static const char *const sim_fault_names[SIM_FAULT_COUNT] = {
	[SIM_FAULT_NONE] = "none",
	[SIM_FAULT_429] = "429",
	[SIM_FAULT_QUOTA] = "quota",
	[SIM_FAULT_500] = "500",
	[SIM_FAULT_503] = "503",
	[SIM_FAULT_TIMEOUT] = "timeout",
	[SIM_FAULT_MALFORMED] = "malformed",
	[SIM_FAULT_INVALID] = "invalid",
	[SIM_FAULT_REFUSAL] = "refusal",
	[SIM_FAULT_400] = "400",
	[SIM_FAULT_CONTENT_FILTER] = "content_filter",
	[SIM_FAULT_LENGTH] = "length",
	[SIM_FAULT_403] = "403",
};

/** Command-line settings; read-only once the server runs. */
struct sim_options {
	const char *listen;		/**< HOST:PORT, [V6]:PORT or PORT */
	const char *port_file;
	const char *answers;
	const char *api_key_file;	/**< the key a request must carry */
	unsigned long latency_ms;
	unsigned long jitter_ms;
	unsigned long rpm;
	unsigned long tpm;
	unsigned long threads;
	unsigned long capacity;		/**< --capacity: at once, 0 = any */
	bool rate_headers;		/**< x-ratelimit-*; --no-rate-headers */
	uint64_t seed;
	double fault_rate[SIM_FAULT_COUNT];
	bool any_fault;
	unsigned refuse[SIM_MODE_COUNT];	/**< --refuse-mode: status, 0 */
	const char *cut_finish;		/**< --cut-finish-reason */
	const char *api_key_header;	/**< --api-key-header */
	const char *served_model;	/**< --served-model, or NULL: echo */
	unsigned long cache_min;	/**< --cache-min-tokens */
	unsigned long reasoning;	/**< --reasoning-tokens */
	unsigned long batch_delay_ms;	/**< --batch-delay-ms */
	unsigned long batch_expire;	/**< --batch-expire */
	const char *batch_hold;		/**< --batch-hold FILE */
};

/** Counters behind GET /stats; every field guarded by lock. */
struct sim_stats {
	pthread_mutex_t lock;
	uint64_t requests;		/**< chat requests arrived */
	uint64_t by_status[SIM_STATUS_MAX];
	uint64_t by_mode[SIM_MODE_COUNT];
	uint64_t by_fault[SIM_FAULT_COUNT];
	uint64_t rate_limited;		/**< refused by --rpm/--tpm */
	uint64_t dropped;		/**< ended without an answer */
	uint64_t current;		/**< arrived, not answered */
	uint64_t peak;			/**< max of current since reset */
	uint64_t tokens;		/**< usage.total_tokens of the
					 *   chat.completion answers */
	uint64_t first_ns, last_ns;	/**< first and latest arrival
					 *   (CLOCK_MONOTONIC), 0: none */
	uint64_t traceparent;		/**< requests with a traceparent */
	char traceparent_last[64];	/**< the last one seen, cut; "" */
	/* Not stats (/reset leaves them): the prompt cache's recent
	 * prefixes, a ring, under the same lock. */
	uint64_t prefix[SIM_CACHE_SLOTS];
	unsigned prefix_next, prefix_n;
};

struct sim_server {
	const struct sim_options *opt;
	struct sim_extract *extract;	/**< read-only after start */
	struct sim_limit limit;
	struct sim_timer *timer;
	struct sim_batch *batch;	/**< /v1/files, /v1/batches */
	struct sim_stats stats;
	_Atomic uint64_t fault_rng;	/**< splitmix64 state: faults only */
	_Atomic uint64_t delay_rng;	/**< splitmix64 state: jitter only */
	_Atomic uint64_t seq;		/**< response and request ids */
	bool limit_ok, stats_ok;	/**< initialised, for cleanup */
};

enum sim_route {
	SIM_ROUTE_CHAT,
	SIM_ROUTE_STATS,
	SIM_ROUTE_RESET,
	SIM_ROUTE_HEALTH,
	SIM_ROUTE_BATCH,		/**< sim_batch.c's */
	SIM_ROUTE_BAD_METHOD,
	SIM_ROUTE_NOT_FOUND,
};

/** Per-request context, owned by MHD's request pointer. */
struct sim_req {
	enum sim_route route;
	bool counted;			/**< in stats.requests/current */
	bool answered;			/**< left stats.current */
	bool too_big;			/**< body over its cap */
	char *body;			/**< chat or batch body so far */
	size_t len, cap;
	struct MHD_Response *resp;	/**< prepared answer, not queued */
	unsigned status;
	struct sim_park park;
};

/* ---- small helpers ---------------------------------------------------- */

static void sim_errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void sim_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/**
 * splitmix64 over an atomic counter: thread-safe, lock-free, seeded. Faults
 * and jitter draw from separate streams, so a given --seed yields the same
 * fault sequence whatever the latency settings.
 */
static uint64_t sim_rand(_Atomic uint64_t *state)
{
	const uint64_t golden = 0x9e3779b97f4a7c15ull;
	uint64_t z;

	z = atomic_fetch_add_explicit(state, golden, memory_order_relaxed) +
	    golden;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/** Uniform in [0, 1). */
static double sim_rand_unit(_Atomic uint64_t *state)
{
	return (double)(sim_rand(state) >> 11) * (1.0 / 9007199254740992.0);
}

/** Parse a decimal unsigned number no greater than @p max. */
static int sim_parse_ulong(const char *str, unsigned long max,
			   unsigned long *ret)
{
	unsigned long v;
	char *end;

	if (!str || *str < '0' || *str > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(str, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* ---- statistics ------------------------------------------------------- */

/** Raise the peak to the current count (after a reap; see below). */
static void sim_stats_raise_peak(void *cls)
{
	struct sim_server *s = cls;

	pthread_mutex_lock(&s->stats.lock);
	if (s->stats.current > s->stats.peak)
		s->stats.peak = s->stats.current;
	pthread_mutex_unlock(&s->stats.lock);
}

/**
 * @brief A chat request arrived. When it takes the count past the peak,
 * the peak is raised only after held requests whose client already left
 * have been retired (sim_timer_reap, which runs the raise under the timer's
 * lock), so a client retrying at once after giving up is never counted
 * twice, even with other arrivals racing.
 */
static void sim_stats_arrive(struct sim_server *s, const char *traceparent)
{
	uint64_t now = sim_now_ns();
	bool over;

	pthread_mutex_lock(&s->stats.lock);
	s->stats.requests++;
	if (traceparent) {
		s->stats.traceparent++;
		snprintf(s->stats.traceparent_last,
			 sizeof(s->stats.traceparent_last), "%s", traceparent);
	}
	s->stats.current++;
	if (!s->stats.first_ns)
		s->stats.first_ns = now;
	s->stats.last_ns = now;
	over = s->stats.current > s->stats.peak;
	pthread_mutex_unlock(&s->stats.lock);
	if (over)
		sim_timer_reap(s->timer, sim_stats_raise_peak, s);
}

/** The request leaves "current": answered with @p status, or dropped (0). */
static void sim_stats_leave(struct sim_server *s, unsigned status)
{
	pthread_mutex_lock(&s->stats.lock);
	s->stats.current--;
	if (!status)
		s->stats.dropped++;
	else if (status < SIM_STATUS_MAX)
		s->stats.by_status[status]++;
	pthread_mutex_unlock(&s->stats.lock);
}

static void sim_stats_classify(struct sim_server *s, enum sim_mode mode,
			       enum sim_fault fault, bool limited)
{
	pthread_mutex_lock(&s->stats.lock);
	s->stats.by_mode[mode]++;
	if (fault != SIM_FAULT_NONE)
		s->stats.by_fault[fault]++;
	if (limited)
		s->stats.rate_limited++;
	pthread_mutex_unlock(&s->stats.lock);
}

/** An answer's usage.total_tokens, counted when it is prepared. */
static void sim_stats_tokens(struct sim_server *s, uint64_t tokens)
{
	pthread_mutex_lock(&s->stats.lock);
	s->stats.tokens += tokens;
	pthread_mutex_unlock(&s->stats.lock);
}

/** An arrival time as ms, or JSON null for none. */
static bool sim_add_arrival(struct json_object *o, const char *key,
			    uint64_t ns)
{
	struct json_object *n = NULL;

	if (ns) {
		n = json_object_new_int64((int64_t)(ns / SIM_NS_PER_MS));
		if (!n)
			return false;
	}
	if (json_object_object_add(o, key, n)) {
		json_object_put(n);
		return false;
	}
	return true;
}

/**
 * POST /reset: zero every counter; the peaks restart from what is open,
 * computing and queued now.
 */
static void sim_stats_reset(struct sim_server *s)
{
	pthread_mutex_lock(&s->stats.lock);
	s->stats.requests = 0;
	memset(s->stats.by_status, 0, sizeof(s->stats.by_status));
	memset(s->stats.by_mode, 0, sizeof(s->stats.by_mode));
	memset(s->stats.by_fault, 0, sizeof(s->stats.by_fault));
	s->stats.rate_limited = 0;
	s->stats.dropped = 0;
	s->stats.tokens = 0;
	s->stats.first_ns = s->stats.last_ns = 0;
	s->stats.traceparent = 0;
	s->stats.traceparent_last[0] = '\0';
	s->stats.peak = s->stats.current;
	pthread_mutex_unlock(&s->stats.lock);
	sim_timer_load_reset(s->timer);
	sim_batch_stats_reset(s->batch);
}

/** Adds an integer member; false on out of memory. */
static bool sim_add_u64(struct json_object *o, const char *key, uint64_t v)
{
	struct json_object *n = json_object_new_int64((int64_t)v);

	if (!n)
		return false;
	if (json_object_object_add(o, key, n)) {
		json_object_put(n);
		return false;
	}
	return true;
}

/** Adds a string member, JSON null for ""; false on out of memory. */
static bool sim_add_text(struct json_object *o, const char *key,
			 const char *v)
{
	struct json_object *n = NULL;

	if (*v && !(n = json_object_new_string(v)))
		return false;
	if (json_object_object_add(o, key, n)) {
		json_object_put(n);
		return false;
	}
	return true;
}

/** A new object attached to @p parent; NULL on out of memory. */
static struct json_object *sim_add_obj(struct json_object *parent,
				       const char *key)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	if (json_object_object_add(parent, key, o)) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/**
 * @brief The GET /stats body, from snapshots taken under stats.lock and
 * then the timer's lock (the capacity: "capacity", "computing" and
 * "queued" now, their peaks, and the total and longest queue wait of the
 * requests started since the last reset).
 * @returns a malloc'd string, or NULL on out of memory.
 */
static char *sim_stats_json(struct sim_server *s)
{
	struct sim_batch_stats bst;
	struct sim_timer_load load;
	struct sim_stats st;
	struct json_object *o, *sub;
	char key[16], *out = NULL;
	const char *text;
	unsigned i;
	bool ok;

	pthread_mutex_lock(&s->stats.lock);
	st = s->stats;
	pthread_mutex_unlock(&s->stats.lock);
	sim_timer_load(s->timer, &load);
	sim_batch_stats(s->batch, &bst);

	o = json_object_new_object();
	if (!o)
		return NULL;
	ok = sim_add_u64(o, "requests", st.requests);
	sub = ok ? sim_add_obj(o, "by_status") : NULL;
	ok = sub != NULL;
	for (i = 0; ok && i < SIM_STATUS_MAX; i++) {
		if (!st.by_status[i])
			continue;
		snprintf(key, sizeof(key), "%u", i);
		ok = sim_add_u64(sub, key, st.by_status[i]);
	}
	ok = ok && sim_add_u64(o, "current_concurrent", st.current) &&
	     sim_add_u64(o, "peak_concurrent", st.peak);
	sub = ok ? sim_add_obj(o, "by_mode") : NULL;
	ok = sub != NULL;
	for (i = 0; ok && i < SIM_MODE_COUNT; i++)
		ok = sim_add_u64(sub, sim_mode_name(i), st.by_mode[i]);
	sub = ok ? sim_add_obj(o, "faults") : NULL;
	ok = sub != NULL;
	for (i = SIM_FAULT_NONE + 1; ok && i < SIM_FAULT_COUNT; i++)
		ok = sim_add_u64(sub, sim_fault_names[i], st.by_fault[i]);
	ok = ok && sim_add_u64(o, "rate_limited", st.rate_limited) &&
	     sim_add_u64(o, "dropped", st.dropped) &&
	     sim_add_u64(o, "tokens", st.tokens) &&
	     sim_add_u64(o, "traceparent", st.traceparent) &&
	     sim_add_text(o, "traceparent_last", st.traceparent_last) &&
	     sim_add_arrival(o, "first_arrival_ms", st.first_ns) &&
	     sim_add_arrival(o, "last_arrival_ms", st.last_ns) &&
	     sim_add_u64(o, "capacity", load.capacity) &&
	     sim_add_u64(o, "computing", load.computing) &&
	     sim_add_u64(o, "computing_peak", load.computing_peak) &&
	     sim_add_u64(o, "queued", load.queued) &&
	     sim_add_u64(o, "queue_peak", load.queue_peak) &&
	     sim_add_u64(o, "queue_wait_ms", load.wait_ns / SIM_NS_PER_MS) &&
	     sim_add_u64(o, "queue_wait_max_ms",
			 load.wait_max_ns / SIM_NS_PER_MS) &&
	     sim_add_u64(o, "batches_created", bst.batches_created) &&
	     sim_add_u64(o, "batch_requests", bst.batch_requests) &&
	     sim_add_u64(o, "batch_tokens", bst.batch_tokens) &&
	     sim_add_u64(o, "files", bst.files) &&
	     sim_add_u64(o, "file_bytes", bst.file_bytes);
	if (ok) {
		text = json_object_to_json_string_ext(o, SIM_JSON_FLAGS);
		if (text)
			out = strdup(text);
	}
	json_object_put(o);
	return out;
}

/* ---- responses -------------------------------------------------------- */

/**
 * @brief Make @p body (malloc'd; always taken) the prepared answer of @p r.
 * @returns 0, or -ENOMEM.
 */
static int sim_req_prepare_type(struct sim_req *r, unsigned status,
				char *body, size_t len, const char *type)
{
	r->resp = MHD_create_response_from_buffer(len, body,
						  MHD_RESPMEM_MUST_FREE);
	if (!r->resp) {
		free(body);
		return -ENOMEM;
	}
	r->status = status;
	if (MHD_add_response_header(r->resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				    type) != MHD_YES)
		return -ENOMEM;
	return 0;
}

/** sim_req_prepare_type() for a JSON body. */
static int sim_req_prepare(struct sim_req *r, unsigned status, char *body,
			   size_t len)
{
	return sim_req_prepare_type(r, status, body, len, "application/json");
}

/** Prepare an OpenAI-shaped error answer. @returns 0, or -ENOMEM. */
static int sim_req_prepare_error(struct sim_req *r, unsigned status,
				 const char *message, const char *type,
				 const char *code)
{
	char *body = sim_chat_error(message, type, NULL, code);

	if (!body)
		return -ENOMEM;
	return sim_req_prepare(r, status, body, strlen(body));
}

static bool sim_header(struct MHD_Response *resp, const char *name,
		       const char *value)
{
	return MHD_add_response_header(resp, name, value) == MHD_YES;
}

static bool sim_header_ulong(struct MHD_Response *resp, const char *name,
			     unsigned long long v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%llu", v);
	return sim_header(resp, name, buf);
}

static bool sim_header_duration(struct MHD_Response *resp, const char *name,
				uint64_t ms)
{
	char buf[SIM_DURATION_LEN];

	sim_limit_fmt_duration(ms, buf);
	return sim_header(resp, name, buf);
}

/** The six x-ratelimit-* headers. @returns false on out of memory. */
static bool sim_limit_headers(struct MHD_Response *resp,
			      const struct sim_limit_state *l)
{
	return sim_header_ulong(resp, "x-ratelimit-limit-requests",
				l->limit_requests) &&
	       sim_header_ulong(resp, "x-ratelimit-remaining-requests",
				l->remaining_requests) &&
	       sim_header_duration(resp, "x-ratelimit-reset-requests",
				   l->reset_requests_ms) &&
	       sim_header_ulong(resp, "x-ratelimit-limit-tokens",
				l->limit_tokens) &&
	       sim_header_ulong(resp, "x-ratelimit-remaining-tokens",
				l->remaining_tokens) &&
	       sim_header_duration(resp, "x-ratelimit-reset-tokens",
				   l->reset_tokens_ms);
}

/** Retry-After (whole seconds, at least 1) and retry-after-ms. */
static bool sim_retry_headers(struct MHD_Response *resp, uint64_t ms)
{
	uint64_t sec = (ms + 999) / 1000;

	return sim_header_ulong(resp, MHD_HTTP_HEADER_RETRY_AFTER,
				sec ? sec : 1) &&
	       sim_header_ulong(resp, "retry-after-ms", ms ? ms : 1000);
}

/**
 * @brief Queue r's prepared answer. The request leaves "current" first,
 * so no client can hold an answer to a request still counted as open.
 */
static enum MHD_Result sim_req_send(struct sim_server *s,
				    struct MHD_Connection *conn,
				    struct sim_req *r)
{
	enum MHD_Result ret;

	if (r->counted && !r->answered) {
		r->answered = true;
		sim_stats_leave(s, r->status);
	}
	ret = MHD_queue_response(conn, r->status, r->resp);
	MHD_destroy_response(r->resp);
	r->resp = NULL;
	return ret;
}

/** Prepare-and-send for the simple paths; closes on out of memory. */
static enum MHD_Result sim_send_error(struct sim_server *s,
				      struct MHD_Connection *conn,
				      struct sim_req *r, unsigned status,
				      const char *message, const char *type,
				      const char *code)
{
	if (sim_req_prepare_error(r, status, message, type, code))
		return MHD_NO;
	return sim_req_send(s, conn, r);
}

/* ---- the chat endpoint ------------------------------------------------ */

/** Draw a fault; the invalid fault never hits a re-ask. */
static enum sim_fault sim_draw_fault(struct sim_server *s, bool reask)
{
	double u, acc = 0.0;
	unsigned i;

	if (!s->opt->any_fault)
		return SIM_FAULT_NONE;
	u = sim_rand_unit(&s->fault_rng);
	for (i = SIM_FAULT_NONE + 1; i < SIM_FAULT_COUNT; i++) {
		if (s->opt->fault_rate[i] <= 0.0)
			continue;
		acc += s->opt->fault_rate[i];
		if (u < acc)
			break;
	}
	if (i == SIM_FAULT_COUNT || (i == SIM_FAULT_INVALID && reask))
		return SIM_FAULT_NONE;
	return i;
}

/** Latency for one answer: latency +- uniform jitter, never below 0. */
static uint64_t sim_draw_delay_ms(struct sim_server *s)
{
	const struct sim_options *o = s->opt;
	long long d = (long long)o->latency_ms;

	if (o->jitter_ms)
		d += (long long)(sim_rand(&s->delay_rng) %
				 (2 * o->jitter_ms + 1)) -
		     (long long)o->jitter_ms;
	return d > 0 ? (uint64_t)d : 0;
}

/** MHD_KeyValueIterator: one "Name: value" line per request header. */
static enum MHD_Result sim_echo_header(void *cls, enum MHD_ValueKind kind,
				       const char *key, const char *value)
{
	(void)kind;
	fprintf(cls, "\n%s: %s", key, value ? value : "");
	return MHD_YES;
}

/** An answer, before it becomes an HTTP response or a batch line. */
struct sim_answer {
	unsigned status;
	char *body;		/**< malloc'd */
	size_t len;
	uint64_t tokens;	/**< usage.total_tokens of a completion, or 0 */
	struct sim_script script; /**< the answers-file entry's extras */
};

/** An OpenAI error body as the answer. @returns 0, or -ENOMEM. */
static int sim_answer_error(struct sim_answer *a, unsigned status,
			    const char *message, const char *type,
			    const char *code)
{
	a->body = sim_chat_error(message, type, NULL, code);
	if (!a->body)
		return -ENOMEM;
	a->status = status;
	a->len = strlen(a->body);
	return 0;
}

/**
 * @brief An answers-file entry's scripted error: its status, an OpenAI
 * error body whose message is @p message, followed with echo_headers by
 * the request's headers, verbatim (none for a batch line: @p conn NULL).
 * @returns 0, or -ENOMEM.
 */
static int sim_scripted_error(struct sim_answer *a,
			      struct MHD_Connection *conn,
			      const struct sim_script *script,
			      const char *message)
{
	char *text = NULL;
	size_t size = 0;
	FILE *f;
	int rc;

	if (!script->echo_headers)
		return sim_answer_error(a, script->status, message,
					script->type, script->code);
	f = open_memstream(&text, &size);
	if (!f)
		return -ENOMEM;
	fprintf(f, "%s\nRequest headers:", message);
	if (conn)
		MHD_get_connection_values(conn, MHD_HEADER_KIND,
					  sim_echo_header, f);
	if (fclose(f)) {
		free(text);
		return -ENOMEM;
	}
	rc = sim_answer_error(a, script->status, text, script->type,
			      script->code);
	free(text);
	return rc;
}

/**
 * The Retry-After of an answers-file entry's scripted error, if it has
 * one: N seconds, or the time N s from now as an HTTP date (IMF-fixdate).
 * @returns false on out of memory.
 */
static bool sim_scripted_retry_after(struct MHD_Response *resp,
				     const struct sim_script *script)
{
	char date[64];
	time_t when;
	struct tm tm;

	if (script->retry_after_s < 0)
		return true;
	if (!script->retry_after_date)
		return sim_header_ulong(resp, MHD_HTTP_HEADER_RETRY_AFTER,
					(unsigned long long)
						script->retry_after_s);
	when = time(NULL) + script->retry_after_s;
	if (!gmtime_r(&when, &tm) ||
	    !strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm))
		return false;
	return sim_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, date);
}

/**
 * The prompt cache: whether the prefix @p hash is among the recent ones
 * (then it is a hit), remembering it either way.
 */
static bool sim_cache_hit(struct sim_server *s, uint64_t hash)
{
	struct sim_stats *st = &s->stats;
	bool hit = false;
	unsigned i;

	pthread_mutex_lock(&st->lock);
	for (i = 0; i < st->prefix_n && !hit; i++)
		hit = st->prefix[i] == hash;
	if (!hit) {
		st->prefix[st->prefix_next] = hash;
		st->prefix_next = (st->prefix_next + 1) % SIM_CACHE_SLOTS;
		if (st->prefix_n < SIM_CACHE_SLOTS)
			st->prefix_n++;
	}
	pthread_mutex_unlock(&st->lock);
	return hit;
}

/** The cached tokens of @p req's answer (--cache-min-tokens). */
static int64_t sim_cached_tokens(struct sim_server *s,
				 const struct sim_chat_req *req)
{
	int64_t prefix = sim_prefix_tokens(req->prefix_bytes);

	if (!sim_cache_hit(s, req->prefix_hash) || prefix <= 0 ||
	    (uint64_t)prefix < s->opt->cache_min)
		return 0;
	return prefix;
}

/**
 * @brief The answer to a parsed request under @p fault. Error faults
 * become error bodies, and so do the answers-file entries that script
 * one; the others a chat.completion (truncated for malformed). a->script
 * is the answers-file entry that answered (delay_ms -1, status 0 when
 * none did). @p conn is the live request's connection (for
 * echo_headers), NULL for a batch line.
 * @returns 0 with *a filled, or -ENOMEM.
 */
static int sim_chat_answer(struct sim_server *s, struct MHD_Connection *conn,
			   const struct sim_chat_req *req,
			   enum sim_fault fault, uint64_t seq,
			   struct sim_answer *a)
{
	char *content = NULL;
	int rc;

	memset(a, 0, sizeof(*a));
	a->script.delay_ms = -1;
	a->script.retry_after_s = -1;
	switch (fault) {
	case SIM_FAULT_429:
		return sim_answer_error(a, 429,
			"Rate limit reached for requests (simulated by llmsim). Please try again in 1s.",
			"requests", "rate_limit_exceeded");
	case SIM_FAULT_QUOTA:
		return sim_answer_error(a, 429,
			"You exceeded your current quota, please check your plan and billing details (simulated by llmsim).",
			"insufficient_quota", "insufficient_quota");
	case SIM_FAULT_500:
		return sim_answer_error(a, 500,
			"The server had an error while processing your request. Sorry about that! (simulated by llmsim)",
			"server_error", NULL);
	case SIM_FAULT_503:
		return sim_answer_error(a, 503,
			"The engine is currently overloaded, please try again later. (simulated by llmsim)",
			"server_error", NULL);
	case SIM_FAULT_400:
		return sim_answer_error(a, 400,
			"Invalid parameter: 'response_format' of type 'json_schema' is not supported by this server (simulated by llmsim).",
			"invalid_request_error", "invalid_parameter");
	case SIM_FAULT_403:
		return sim_answer_error(a, 403,
			"Country, region, or territory not supported (simulated by llmsim).",
			"request_forbidden", "unsupported_country_region_territory");
	case SIM_FAULT_REFUSAL:
		break;	/* content stays NULL */
	default:
		rc = sim_extract_answer(s->extract, req->text, req->text_len,
					fault == SIM_FAULT_INVALID, &content,
					&a->script);
		if (rc)
			return rc;
		if (a->script.status) {
			rc = sim_scripted_error(a, conn, &a->script, content);
			free(content);
			return rc;
		}
		break;
	}
	rc = sim_chat_completion(req, content,
				 fault == SIM_FAULT_LENGTH ? SIM_FINISH_LENGTH :
				 fault == SIM_FAULT_CONTENT_FILTER ?
					 SIM_FINISH_FILTERED :
					 SIM_FINISH_DONE,
				 seq, time(NULL), s->opt->cut_finish,
				 sim_cached_tokens(s, req),
				 (int64_t)s->opt->reasoning, &a->body, &a->len,
				 &a->tokens);
	free(content);
	if (rc)
		return rc;
	a->status = 200;
	if (fault == SIM_FAULT_MALFORMED)
		a->len /= 2;	/* the top-level object never closes */
	return 0;
}

/**
 * @brief Prepare the live answer for a parsed request under @p fault
 * (sim_chat_answer()). *ret_delay_ms is set to the answers-file entry's
 * "delay_ms" when one with a delay answered, else left alone.
 * @returns 0, or -ENOMEM.
 */
static int sim_chat_prepare(struct sim_server *s, struct sim_req *r,
			    struct MHD_Connection *conn,
			    const struct sim_chat_req *req,
			    enum sim_fault fault, uint64_t seq,
			    long *ret_delay_ms)
{
	struct sim_answer a;
	int rc;

	rc = sim_chat_answer(s, conn, req, fault, seq, &a);
	if (rc)
		return rc;
	if (a.script.delay_ms >= 0)
		*ret_delay_ms = a.script.delay_ms;
	sim_stats_tokens(s, a.tokens);
	rc = sim_req_prepare(r, a.status, a.body, a.len);
	if (!rc && a.script.status &&
	    !sim_scripted_retry_after(r->resp, &a.script))
		rc = -ENOMEM;
	return rc;
}

/**
 * The headers every answer past the rate limiter carries: x-ratelimit-*
 * unless --no-rate-headers.
 */
static bool sim_chat_headers(struct sim_server *s, struct sim_req *r,
			     const struct sim_limit_state *lim,
			     enum sim_fault fault, uint64_t delay_ms,
			     uint64_t seq)
{
	struct sim_limit_state l = *lim;
	char id[40];

	snprintf(id, sizeof(id), "req_llmsim%016llx", (unsigned long long)seq);
	if (fault == SIM_FAULT_429) {
		l.remaining_requests = 0;
		l.reset_requests_ms = 1000;
		if (!sim_header(r->resp, MHD_HTTP_HEADER_RETRY_AFTER, "1"))
			return false;
	}
	return sim_header(r->resp, "x-request-id", id) &&
	       sim_header_ulong(r->resp, "openai-processing-ms", delay_ms) &&
	       (!s->opt->rate_headers || sim_limit_headers(r->resp, &l));
}

/**
 * The request is over a --rpm/--tpm budget: prepare the 429, with
 * Retry-After and, unless --no-rate-headers, x-ratelimit-*.
 */
static int sim_chat_limited(struct sim_server *s, struct sim_req *r,
			    const struct sim_limit_state *lim,
			    unsigned long tokens)
{
	char msg[256], wait[SIM_DURATION_LEN];
	bool by_req = strcmp(lim->exceeded, "requests") == 0;
	int rc;

	unsigned long limit = by_req ? lim->limit_requests : lim->limit_tokens;
	unsigned long left = by_req ? lim->remaining_requests :
				      lim->remaining_tokens;

	sim_limit_fmt_duration(lim->retry_after_ms, wait);
	snprintf(msg, sizeof(msg),
		 "Rate limit reached on %s: Limit %lu, Used %lu, Requested %lu. Please try again in %s. (llmsim)",
		 by_req ? "requests per min (RPM)" : "tokens per min (TPM)",
		 limit, limit - (left < limit ? left : limit),
		 by_req ? 1ul : tokens, wait);
	rc = sim_req_prepare_error(r, 429, msg, lim->exceeded,
				   "rate_limit_exceeded");
	if (rc)
		return rc;
	if (!sim_retry_headers(r->resp, lim->retry_after_ms) ||
	    (s->opt->rate_headers && !sim_limit_headers(r->resp, lim)))
		return -ENOMEM;
	return 0;
}

/**
 * @brief Whether the request carries the key of --api-key-file. The file
 * is read for every request, so a test can change the key while llmsim
 * runs (a key that starts working again). Without the option, any key.
 */
static bool sim_authorized(struct sim_server *s, struct MHD_Connection *conn)
{
	char key[256];
	const char *auth;
	size_t n;
	FILE *f;

	if (!s->opt->api_key_file)
		return true;
	f = fopen(s->opt->api_key_file, "re");
	if (!f)
		return false;
	n = fread(key, 1, sizeof(key) - 1, f);
	fclose(f);
	while (n && (key[n - 1] == '\n' || key[n - 1] == ' '))
		n--;
	key[n] = '\0';
	if (s->opt->api_key_header) {
		auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						   s->opt->api_key_header);
		return n && auth && !strcmp(auth, key);
	}
	auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					   MHD_HTTP_HEADER_AUTHORIZATION);
	return n && auth && !strncmp(auth, "Bearer ", 7) &&
	       !strcmp(auth + 7, key);
}

/** --served-model: the model every answer names. @returns 0 or -ENOMEM. */
static int sim_serve_model(struct sim_server *s, struct sim_chat_req *req)
{
	char *m;

	if (!s->opt->served_model)
		return 0;
	m = strdup(s->opt->served_model);
	if (!m)
		return -ENOMEM;
	free(req->model);
	req->model = m;
	return 0;
}

/**
 * @brief --refuse-mode's answer to a request in a refused format: a
 * server that does not take this request format, as llama-cpp-python
 * answers json_schema (a 500) or others an unknown field (a 400).
 * @returns 0 with *a filled, or -ENOMEM.
 */
static int sim_refuse_answer(struct sim_server *s,
			     const struct sim_chat_req *req,
			     struct sim_answer *a)
{
	unsigned status = s->opt->refuse[req->mode];
	char msg[256];

	snprintf(msg, sizeof(msg),
		 "The request format '%s' is not supported by this "
		 "server (llmsim --refuse-mode).",
		 sim_mode_name(req->mode));
	memset(a, 0, sizeof(*a));
	return sim_answer_error(a, status, msg,
				status >= 500 ? "internal_server_error"
					      : "invalid_request_error",
				NULL);
}

/**
 * @brief The refusals every API request gets before its route: a wrong or
 * missing key (401), a body over the route's cap (413, too_big_msg).
 * @returns true when it answered, with the answer's result in *ret
 */
static bool sim_refused(struct sim_server *s, struct MHD_Connection *conn,
			struct sim_req *r, const char *too_big_msg,
			enum MHD_Result *ret)
{
	if (!sim_authorized(s, conn))
		*ret = sim_send_error(s, conn, r, 401,
				      "Incorrect API key provided.",
				      "invalid_request_error",
				      "invalid_api_key");
	else if (r->too_big)
		*ret = sim_send_error(s, conn, r, 413, too_big_msg,
				      "invalid_request_error",
				      "request_too_large");
	else
		return false;
	return true;
}

/**
 * @brief POST /v1/chat/completions with its whole body: answer now, or
 * park the connection until its latency is over (queued first while
 * --capacity is full; or forever, for the timeout fault).
 */
static enum MHD_Result sim_chat(struct sim_server *s,
				struct MHD_Connection *conn, struct sim_req *r)
{
	struct sim_chat_req req;
	struct sim_limit_state lim;
	enum sim_fault fault = SIM_FAULT_NONE;
	enum MHD_Result ret = MHD_NO;
	unsigned long tokens;
	uint64_t now, delay_ms, seq;
	long answer_delay_ms = -1;
	char err[SIM_ERR_LEN];
	int rc;

	if (sim_refused(s, conn, r, "Request body too large for llmsim (8 MiB).",
			&ret))
		return ret;
	rc = sim_chat_parse(r->body ? r->body : "", r->len, &req, err,
			    sizeof(err));
	free(r->body);
	r->body = NULL;
	if (rc == -EINVAL)
		return sim_send_error(s, conn, r, 400, err,
				      "invalid_request_error", NULL);
	if (rc)
		return MHD_NO;
	if (sim_serve_model(s, &req)) {
		sim_chat_req_done(&req);
		return MHD_NO;
	}

	if (s->opt->refuse[req.mode]) {
		struct sim_answer a;

		sim_stats_classify(s, req.mode, SIM_FAULT_NONE, false);
		if (sim_refuse_answer(s, &req, &a) == 0 &&
		    sim_req_prepare(r, a.status, a.body, a.len) == 0)
			ret = sim_req_send(s, conn, r);
		goto out;
	}
	now = sim_now_ns();
	tokens = req.prompt_bytes / 4 ? req.prompt_bytes / 4 : 1;
	if (!sim_limit_take(&s->limit, tokens, now, &lim)) {
		sim_stats_classify(s, req.mode, SIM_FAULT_NONE, true);
		if (sim_chat_limited(s, r, &lim, tokens) == 0)
			ret = sim_req_send(s, conn, r);
		goto out;
	}
	fault = sim_draw_fault(s, req.reask);
	sim_stats_classify(s, req.mode, fault, false);
	if (fault == SIM_FAULT_TIMEOUT) {
		sim_timer_hold(s->timer, &r->park, conn);
		ret = MHD_YES;
		goto out;
	}
	/* Drawn even when an answers-file delay replaces it, so the jitter
	 * stream is the same with and without such entries. */
	delay_ms = sim_draw_delay_ms(s);
	seq = atomic_fetch_add_explicit(&s->seq, 1, memory_order_relaxed);
	if (sim_chat_prepare(s, r, conn, &req, fault, seq, &answer_delay_ms))
		goto out;
	if (answer_delay_ms >= 0)
		delay_ms = (uint64_t)answer_delay_ms;
	if (!sim_chat_headers(s, r, &lim, fault, delay_ms, seq))
		goto out;
	if (delay_ms || s->opt->capacity) {
		sim_timer_serve(s->timer, &r->park, conn, now,
				delay_ms * SIM_NS_PER_MS);
		ret = MHD_YES;
	} else {
		ret = sim_req_send(s, conn, r);
	}
out:
	sim_chat_req_done(&req);
	return ret;
}

/** Append a chat body chunk, or mark the body too big and drop it. */
static void sim_req_append(struct sim_req *r, const char *data, size_t n)
{
	size_t need, ncap;
	char *grown;

	if (r->too_big ||
	    (r->route != SIM_ROUTE_CHAT && r->route != SIM_ROUTE_BATCH))
		return;
	need = r->len + n;
	if (need > (r->route == SIM_ROUTE_CHAT ? SIM_BODY_MAX
					       : SIM_BATCH_BODY_MAX)) {
		r->too_big = true;
		goto drop;
	}
	if (need > r->cap) {
		ncap = r->cap ? r->cap : 4096;
		while (ncap < need)
			ncap *= 2;
		grown = realloc(r->body, ncap);
		if (!grown) {	/* answered like an oversized body */
			r->too_big = true;
			goto drop;
		}
		r->body = grown;
		r->cap = ncap;
	}
	memcpy(r->body + r->len, data, n);
	r->len = need;
	return;
drop:
	free(r->body);
	r->body = NULL;
	r->len = r->cap = 0;
}

/* ---- the files and batches endpoints ---------------------------------- */

/** Count a fault drawn for a batch line in /stats "faults". */
static void sim_stats_fault(struct sim_server *s, enum sim_fault fault)
{
	if (fault == SIM_FAULT_NONE)
		return;
	pthread_mutex_lock(&s->stats.lock);
	s->stats.by_fault[fault]++;
	pthread_mutex_unlock(&s->stats.lock);
}

/**
 * @brief sim_batch_answer_fn: a batch line answered as a live request is
 * (--served-model, --refuse-mode, the extraction, a fault drawn), but
 * with no rate limit, latency or capacity: the batch's delay stands for
 * them. Its fault counts in /stats "faults"; the live request counters
 * are left alone.
 */
static int sim_batch_line(void *cls, const char *body, size_t len,
			  struct sim_batch_answer *ret)
{
	struct sim_server *s = cls;
	struct sim_chat_req req;
	struct sim_answer a;
	enum sim_fault fault;
	char err[SIM_ERR_LEN];
	int rc;

	memset(ret, 0, sizeof(*ret));
	ret->seq = atomic_fetch_add_explicit(&s->seq, 1, memory_order_relaxed);
	rc = sim_chat_parse(body, len, &req, err, sizeof(err));
	if (rc == -EINVAL) {
		memset(&a, 0, sizeof(a));
		rc = sim_answer_error(&a, 400, err, "invalid_request_error",
				      NULL);
		goto done;
	}
	if (rc)
		return rc;
	rc = sim_serve_model(s, &req);
	if (rc)
		goto out;
	if (s->opt->refuse[req.mode]) {
		rc = sim_refuse_answer(s, &req, &a);
		goto out_done;
	}
	fault = sim_draw_fault(s, req.reask);
	sim_stats_fault(s, fault);
	if (fault == SIM_FAULT_TIMEOUT)
		goto out;	/* status 0: no answer */
	rc = sim_chat_answer(s, NULL, &req, fault, ret->seq, &a);
out_done:
	sim_chat_req_done(&req);
done:
	if (!rc) {
		ret->status = a.status;
		ret->body = a.body;
		ret->len = a.len;
	}
	return rc;
out:
	sim_chat_req_done(&req);
	return rc;
}

/**
 * @brief A request to /v1/files or /v1/batches with its whole body (the
 * same key as chat requests, when --api-key-file asks for one).
 */
static enum MHD_Result sim_batch_api(struct sim_server *s,
				     struct MHD_Connection *conn,
				     struct sim_req *r, const char *url,
				     const char *method)
{
	struct sim_batch_reply rep;
	enum MHD_Result ret;

	if (sim_refused(s, conn, r,
			"Request body too large for llmsim (200 MB files).",
			&ret))
		return ret;
	if (sim_batch_handle(s->batch, method, url,
			     MHD_lookup_connection_value(
				     conn, MHD_HEADER_KIND,
				     MHD_HTTP_HEADER_CONTENT_TYPE),
			     r->body ? r->body : "", r->len, &rep))
		return MHD_NO;
	free(r->body);
	r->body = NULL;
	if (sim_req_prepare_type(r, rep.status, rep.body, rep.len,
				 rep.content_type))
		return MHD_NO;
	return sim_req_send(s, conn, r);
}

/* ---- MHD callbacks ---------------------------------------------------- */

static enum sim_route sim_route_of(const char *url, const char *method)
{
	bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
	bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;

	if (strcmp(url, "/v1/chat/completions") == 0 ||
	    strcmp(url, "/chat/completions") == 0)
		return post ? SIM_ROUTE_CHAT : SIM_ROUTE_BAD_METHOD;
	if (strcmp(url, "/stats") == 0)
		return get ? SIM_ROUTE_STATS : SIM_ROUTE_BAD_METHOD;
	if (strcmp(url, "/reset") == 0)
		return post ? SIM_ROUTE_RESET : SIM_ROUTE_BAD_METHOD;
	if (strcmp(url, "/healthz") == 0)
		return get ? SIM_ROUTE_HEALTH : SIM_ROUTE_BAD_METHOD;
	if (sim_batch_route(url))
		return SIM_ROUTE_BATCH;
	return SIM_ROUTE_NOT_FOUND;
}

/**
 * @brief First call for a request: headers are in, body not yet.
 * Counts a chat request as arrived; refuses an announced oversized body
 * before reading it.
 */
static enum MHD_Result sim_req_begin(struct sim_server *s,
				     struct MHD_Connection *conn,
				     const char *url, const char *method,
				     void **req_cls)
{
	struct sim_req *r;
	unsigned long cl;
	const char *v;

	r = calloc(1, sizeof(*r));
	if (!r)
		return MHD_NO;
	r->route = sim_route_of(url, method);
	*req_cls = r;
	if (r->route == SIM_ROUTE_BATCH) {
		v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (v && sim_parse_ulong(v, ~0ul, &cl) == 0 &&
		    cl > SIM_BATCH_BODY_MAX) {
			r->too_big = true;
			return sim_send_error(s, conn, r, 413,
					      "Request body too large for llmsim (200 MB files).",
					      "invalid_request_error",
					      "request_too_large");
		}
		return MHD_YES;
	}
	if (r->route != SIM_ROUTE_CHAT)
		return MHD_YES;
	r->counted = true;
	sim_stats_arrive(s, MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							"traceparent"));
	v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (v && sim_parse_ulong(v, ~0ul, &cl) == 0 && cl > SIM_BODY_MAX) {
		r->too_big = true;
		return sim_send_error(s, conn, r, 413,
				      "Request body too large for llmsim (8 MiB).",
				      "invalid_request_error",
				      "request_too_large");
	}
	return MHD_YES;
}

/** Answers for the small endpoints. */
static enum MHD_Result sim_admin(struct sim_server *s,
				 struct MHD_Connection *conn,
				 struct sim_req *r, const char *url,
				 const char *method)
{
	char msg[SIM_ERR_LEN], *body;

	switch (r->route) {
	case SIM_ROUTE_STATS:
		body = sim_stats_json(s);
		break;
	case SIM_ROUTE_RESET:
		sim_stats_reset(s);
		body = strdup("{\"reset\":true}");
		break;
	case SIM_ROUTE_HEALTH:
		body = strdup("{\"status\":\"ok\"}");
		break;
	case SIM_ROUTE_BAD_METHOD:
		snprintf(msg, sizeof(msg), "Method %.32s not allowed on %.256s.",
			 method, url);
		return sim_send_error(s, conn, r, 405, msg,
				      "invalid_request_error", NULL);
	default:
		snprintf(msg, sizeof(msg), "Invalid URL (%.32s %.256s)",
			 method, url);
		return sim_send_error(s, conn, r, 404, msg,
				      "invalid_request_error", "unknown_url");
	}
	if (!body || sim_req_prepare(r, 200, body, strlen(body)))
		return MHD_NO;
	return sim_req_send(s, conn, r);
}

/** MHD_AccessHandlerCallback: every request goes through here. */
static enum MHD_Result sim_handle(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **req_cls)
{
	struct sim_server *s = cls;
	struct sim_req *r = *req_cls;

	if (!r)
		return sim_req_begin(s, conn, url, method, req_cls);
	if (r->park.parked) {	/* resumed by the timer */
		sim_timer_unparked(s->timer, &r->park);
		if (atomic_load_explicit(&r->park.wake, memory_order_acquire) ==
		    SIM_WAKE_DROP || !r->resp)
			return MHD_NO;	/* close; completed callback counts */
		return sim_req_send(s, conn, r);
	}
	if (*upload_data_size) {
		sim_req_append(r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->route == SIM_ROUTE_CHAT)
		return sim_chat(s, conn, r);
	if (r->route == SIM_ROUTE_BATCH)
		return sim_batch_api(s, conn, r, url, method);
	return sim_admin(s, conn, r, url, method);
}

/**
 * @brief sim_timer_gone_fn: the client of a held request hung up. It stops
 * counting as open now, not when MHD gets round to closing it, so a client
 * that retries at once is not seen as one request too many. Runs (under
 * the timer's lock) in the timer thread or in a handler calling
 * sim_timer_reap(), while the connection is still suspended, so its own
 * MHD thread does not touch the request meanwhile.
 */
static void sim_on_gone(void *cls, struct sim_park *p)
{
	struct sim_req *r = (struct sim_req *)(void *)
			    ((char *)p - offsetof(struct sim_req, park));

	if (r->counted && !r->answered) {
		r->answered = true;
		sim_stats_leave(cls, 0);
	}
}

/** MHD_RequestCompletedCallback: frees the request context. */
static void sim_completed(void *cls, struct MHD_Connection *conn,
			  void **req_cls, enum MHD_RequestTerminationCode toe)
{
	struct sim_server *s = cls;
	struct sim_req *r = *req_cls;

	if (!r)
		return;
	if (r->park.parked)
		sim_timer_unparked(s->timer, &r->park);
	if (r->counted && !r->answered)
		sim_stats_leave(s, 0);
	if (r->resp)
		MHD_destroy_response(r->resp);
	free(r->body);
	free(r);
	*req_cls = NULL;
}

/* ---- startup ---------------------------------------------------------- */

static void sim_mhd_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/**
 * @brief MHD's error log, prefixed. Closing a held request whose client
 * left is done by returning MHD_NO, which MHD reports as an application
 * error: that one is expected and not printed.
 */
static void sim_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[SIM_ERR_LEN];

	vsnprintf(line, sizeof(line), fmt, ap);
	if (strstr(line, "Application reported internal error"))
		return;
	fprintf(stderr, "llmsim: mhd: %s%s", line,
		line[0] && line[strlen(line) - 1] == '\n' ? "" : "\n");
}

static void sim_usage(FILE *f)
{
	fputs("usage: llmsim [--listen HOST:PORT] [--port-file F] [--latency-ms N]\n"
	      "              [--jitter-ms N] [--fault KIND=RATE,...] [--rpm N] [--tpm N]\n"
	      "              [--seed N] [--answers FILE] [--threads N]\n"
	      "              [--api-key-file F] [--api-key-header NAME]\n"
	      "              [--refuse-mode MODE=STATUS,...] [--cut-finish-reason R]\n"
	      "              [--served-model NAME] [--capacity N]\n"
	      "              [--no-rate-headers] [--cache-min-tokens N]\n"
	      "              [--reasoning-tokens N] [--batch-delay-ms N]\n"
	      "              [--batch-expire N] [--batch-hold FILE]\n"
	      "              [-h | --help]\n"
	      "cache-min-tokens: a repeated prefix (all but the last user\n"
	      "         message) of at least N tokens is reported as\n"
	      "         cached_tokens (default 1024)\n"
	      "reasoning-tokens: N reasoning tokens in every answer's usage\n"
	      "Files and batches (OpenAI's subset, in memory):\n"
	      "  POST /v1/files (multipart/form-data: purpose=batch, file)\n"
	      "  GET /v1/files/ID, GET /v1/files/ID/content, DELETE /v1/files/ID\n"
	      "  POST /v1/batches {input_file_id, endpoint \"/v1/chat/completions\",\n"
	      "         completion_window \"24h\", metadata?}\n"
	      "  GET /v1/batches/ID, POST /v1/batches/ID/cancel\n"
	      "  Input lines: {custom_id, method \"POST\", url\n"
	      "  \"/v1/chat/completions\", body}; a file with a bad line, a\n"
	      "  duplicate custom_id or no line makes a failed batch (errors.data).\n"
	      "  A batch is validating when created, in_progress for\n"
	      "  --batch-delay-ms, then completed: every line answered as a chat\n"
	      "  request is (extraction, --answers, --refuse-mode, a fault drawn;\n"
	      "  no --rpm/--tpm, latency or capacity). Output file: 2xx answers\n"
	      "  {id, custom_id, response {status_code, request_id, body}, error\n"
	      "  null}; error file: other statuses (response set, error null),\n"
	      "  the timeout fault (response null, error request_timeout). The\n"
	      "  malformed fault's cut body is a JSON string. request_counts:\n"
	      "  completed, the output file's lines; failed, the error file's;\n"
	      "  usage sums the answers'. A batch cancelled while in progress\n"
	      "  answers no line: all go to the error file as batch_cancelled.\n"
	      "batch-delay-ms: how long a batch stays in_progress (default 0)\n"
	      "batch-hold: while FILE exists, no batch leaves in_progress (a\n"
	      "         test's gate: it removes FILE to let them finish)\n"
	      "batch-expire: the first N batches created expire instead: their\n"
	      "         first half of lines answered, the rest in the error file\n"
	      "         with code batch_expired\n"
	      "  /stats adds batches_created, batch_requests (lines answered),\n"
	      "  batch_tokens (their usage), files and file_bytes (stored now);\n"
	      "  a batch line's fault counts in faults, nothing else live.\n"
	      "capacity: at most N requests in their latency at once, the rest\n"
	      "         queued in arrival order (default 0: no limit)\n"
	      "no-rate-headers: no x-ratelimit-* headers (429s keep\n"
	      "         Retry-After)\n"
	      "served-model: the model every answer names (default: the one asked for)\n"
	      "refuse-mode: answer every request in MODE (json_schema, tools,\n"
	      "         json_object, md_json, json_object_schema) with that status\n"
	      "cut-finish-reason: the finish_reason of an answer cut at the\n"
	      "         request's max_tokens (4 bytes a token; default length)\n"
	      "faults: 429 quota 500 503 timeout malformed invalid refusal 400\n"
	      "        content_filter length 403 (rates 0..1)\n"
	      "answers: JSONL, one {\"match\": \"substring\", \"content\": ...,\n"
	      "         \"delay_ms\": N} a line (delay_ms optional: that answer\n"
	      "         comes after N ms instead of --latency-ms +- --jitter-ms);\n"
	      "         or {\"match\": ..., \"status\": 400..599, \"echo_headers\":\n"
	      "         true, \"content\": \"message\", \"type\": .., \"code\": ..}:\n"
	      "         that HTTP error, OpenAI-shaped, its message quoting the\n"
	      "         request's headers verbatim with echo_headers\n",
	      f);
}

/** Parse one --fault argument: KIND=RATE[,KIND=RATE...]. */
static int sim_parse_faults(const char *arg, struct sim_options *o,
			    char *err, size_t errlen)
{
	const char *p = arg, *eq, *end;
	char kind[16], *num_end;
	double rate;
	size_t klen;
	unsigned i;

	while (*p) {
		end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		eq = memchr(p, '=', (size_t)(end - p));
		klen = eq ? (size_t)(eq - p) : 0;
		if (!eq || klen == 0 || klen >= sizeof(kind)) {
			sim_errf(err, errlen, "--fault: want KIND=RATE in '%s'",
				 arg);
			return -EINVAL;
		}
		memcpy(kind, p, klen);
		kind[klen] = '\0';
		for (i = SIM_FAULT_NONE + 1; i < SIM_FAULT_COUNT; i++)
			if (strcmp(kind, sim_fault_names[i]) == 0)
				break;
		if (i == SIM_FAULT_COUNT) {
			sim_errf(err, errlen, "--fault: unknown kind '%s'", kind);
			return -EINVAL;
		}
		errno = 0;
		rate = strtod(eq + 1, &num_end);
		if (errno || num_end != end || eq + 1 == end || !(rate >= 0.0) ||
		    rate > 1.0) {
			sim_errf(err, errlen,
				 "--fault: rate for '%s' must be 0..1", kind);
			return -EINVAL;
		}
		o->fault_rate[i] = rate;
		p = *end ? end + 1 : end;
	}
	return 0;
}

/** Parse one --refuse-mode argument: MODE=STATUS[,MODE=STATUS...]. */
static int sim_parse_refusals(const char *arg, struct sim_options *o,
			      char *err, size_t errlen)
{
	const char *p = arg, *eq, *end;
	unsigned long status;
	char mode[32], num[8];
	size_t klen, nlen;
	unsigned i;

	while (*p) {
		end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		eq = memchr(p, '=', (size_t)(end - p));
		klen = eq ? (size_t)(eq - p) : 0;
		nlen = eq ? (size_t)(end - eq - 1) : 0;
		if (!eq || !klen || klen >= sizeof(mode) || !nlen ||
		    nlen >= sizeof(num)) {
			sim_errf(err, errlen,
				 "--refuse-mode: want MODE=STATUS in '%s'", arg);
			return -EINVAL;
		}
		memcpy(mode, p, klen);
		mode[klen] = '\0';
		memcpy(num, eq + 1, nlen);
		num[nlen] = '\0';
		for (i = 0; i < SIM_MODE_COUNT; i++)
			if (strcmp(mode, sim_mode_name(i)) == 0)
				break;
		if (i == SIM_MODE_COUNT || sim_parse_ulong(num, 599, &status) ||
		    status < 400) {
			sim_errf(err, errlen,
				 "--refuse-mode: unknown mode or status (400..599) "
				 "in '%s'", arg);
			return -EINVAL;
		}
		o->refuse[i] = (unsigned)status;
		p = *end ? end + 1 : end;
	}
	return 0;
}

/**
 * @brief Parse the command line into @p o.
 * @returns 0, 1 for --help, or -EINVAL with the reason in @p err.
 */
static int sim_parse_args(int argc, char **argv, struct sim_options *o,
			  char *err, size_t errlen)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "port-file", required_argument, NULL, 'p' },
		{ "latency-ms", required_argument, NULL, 'L' },
		{ "jitter-ms", required_argument, NULL, 'J' },
		{ "fault", required_argument, NULL, 'f' },
		{ "rpm", required_argument, NULL, 'r' },
		{ "tpm", required_argument, NULL, 't' },
		{ "seed", required_argument, NULL, 's' },
		{ "answers", required_argument, NULL, 'a' },
		{ "api-key-file", required_argument, NULL, 'k' },
		{ "threads", required_argument, NULL, 'T' },
		{ "refuse-mode", required_argument, NULL, 'R' },
		{ "cut-finish-reason", required_argument, NULL, 'C' },
		{ "api-key-header", required_argument, NULL, 'H' },
		{ "served-model", required_argument, NULL, 'M' },
		{ "capacity", required_argument, NULL, 'c' },
		{ "no-rate-headers", no_argument, NULL, 'n' },
		{ "cache-min-tokens", required_argument, NULL, 'm' },
		{ "reasoning-tokens", required_argument, NULL, 'e' },
		{ "batch-delay-ms", required_argument, NULL, 'B' },
		{ "batch-expire", required_argument, NULL, 'X' },
		{ "batch-hold", required_argument, NULL, 'O' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const unsigned long max_ms = 24ul * 3600 * 1000;
	unsigned long seed, *target = NULL, max = 0;
	double sum = 0.0;
	unsigned i;
	int c;

	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'l': o->listen = optarg; continue;
		case 'p': o->port_file = optarg; continue;
		case 'a': o->answers = optarg; continue;
		case 'k': o->api_key_file = optarg; continue;
		case 'C': o->cut_finish = optarg; continue;
		case 'H': o->api_key_header = optarg; continue;
		case 'M': o->served_model = optarg; continue;
		case 'n': o->rate_headers = false; continue;
		case 'O': o->batch_hold = optarg; continue;
		case 'h': return 1;
		case 'R':
			if (sim_parse_refusals(optarg, o, err, errlen))
				return -EINVAL;
			continue;
		case 'f':
			if (sim_parse_faults(optarg, o, err, errlen))
				return -EINVAL;
			continue;
		case 's':
			if (sim_parse_ulong(optarg, ~0ul, &seed)) {
				sim_errf(err, errlen, "--seed: bad number '%s'",
					 optarg);
				return -EINVAL;
			}
			o->seed = seed;
			continue;
		case 'L': target = &o->latency_ms; max = max_ms; break;
		case 'J': target = &o->jitter_ms; max = max_ms; break;
		case 'r': target = &o->rpm; max = 1000000000ul; break;
		case 't': target = &o->tpm; max = 1000000000000ul; break;
		case 'T': target = &o->threads; max = SIM_MAX_THREADS; break;
		case 'c': target = &o->capacity; max = SIM_CAPACITY_MAX; break;
		case 'm': target = &o->cache_min; max = 1000000000ul; break;
		case 'e': target = &o->reasoning; max = 1000000ul; break;
		case 'B': target = &o->batch_delay_ms; max = max_ms; break;
		case 'X': target = &o->batch_expire; max = 1000000000ul; break;
		default:
			sim_errf(err, errlen, "bad option (see --help)");
			return -EINVAL;
		}
		if (sim_parse_ulong(optarg, max, target)) {
			sim_errf(err, errlen, "%s: want a number 0..%lu, got '%s'",
				 argv[optind - 1], max, optarg);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		sim_errf(err, errlen, "unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	for (i = SIM_FAULT_NONE + 1; i < SIM_FAULT_COUNT; i++)
		sum += o->fault_rate[i];
	o->any_fault = sum > 0.0;
	if (sum > 1.0 + 1e-9)
		fprintf(stderr,
			"llmsim: fault rates sum to %.3f > 1: later kinds get only what is left\n",
			sum);
	return 0;
}

/** Raise the soft open-file limit to the hard one (many connections). */
static void sim_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			fprintf(stderr, "llmsim: setrlimit(NOFILE): %s, ignoring\n",
				strerror(errno));
	}
}

/**
 * @brief Bind and listen on @p spec: "HOST:PORT", "[V6]:PORT" or "PORT".
 * @returns the listening socket (non-blocking, close-on-exec) with its
 * port in *ret_port, or -1 with the reason in @p err.
 */
static int sim_listen(const char *spec, unsigned *ret_port, char *err,
		      size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *res = NULL, *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[256], port[16];
	const char *colon, *h = spec, *hend;
	int fd = -1, one = 1, rc;

	colon = strrchr(spec, ':');
	if (!colon) {
		h = NULL;
		hend = NULL;
		snprintf(port, sizeof(port), "%s", spec);
	} else {
		hend = colon;
		if (*h == '[' && hend > h && hend[-1] == ']') {
			h++;
			hend--;
		}
		if (strlen(colon + 1) >= sizeof(port) ||
		    (size_t)(hend - h) >= sizeof(host)) {
			sim_errf(err, errlen, "--listen: bad address '%s'", spec);
			return -1;
		}
		memcpy(host, h, (size_t)(hend - h));
		host[hend - h] = '\0';
		snprintf(port, sizeof(port), "%s", colon + 1);
		h = host[0] ? host : NULL;
	}
	rc = getaddrinfo(h, port, &hints, &res);
	if (rc) {
		sim_errf(err, errlen, "--listen '%s': %s", spec,
			 gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0)
			continue;
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
				 sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, SIM_LISTEN_BACKLOG) == 0)
			break;
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		sim_errf(err, errlen, "--listen '%s': %s", spec,
			 strerror(errno));
		goto out;
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &sl)) {
		sim_errf(err, errlen, "getsockname: %s", strerror(errno));
		close(fd);
		fd = -1;
		goto out;
	}
	*ret_port = ntohs(ss.ss_family == AF_INET6 ?
			  ((struct sockaddr_in6 *)&ss)->sin6_port :
			  ((struct sockaddr_in *)&ss)->sin_port);
out:
	freeaddrinfo(res);
	return fd;
}

/**
 * @brief Write "PORT\n" to @p path atomically: a temp file, then rename,
 * so a reader never sees a partial file.
 * @returns 0, or -1 with the reason in @p err.
 */
static int sim_write_port_file(const char *path, unsigned port, char *err,
			       size_t errlen)
{
	size_t n = strlen(path) + 32;
	char *tmp;
	FILE *f;
	int r = -1;

	tmp = malloc(n);
	if (!tmp) {
		sim_errf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
	f = fopen(tmp, "we");
	if (!f) {
		sim_errf(err, errlen, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	fprintf(f, "%u\n", port);
	if (fclose(f) || rename(tmp, path)) {
		sim_errf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp);
		goto out;
	}
	r = 0;
out:
	free(tmp);
	return r;
}

static int sim_server_init(struct sim_server *s, const struct sim_options *o,
			   char *err, size_t errlen)
{
	int r;

	s->opt = o;
	atomic_init(&s->fault_rng, o->seed);
	atomic_init(&s->delay_rng, o->seed ^ 0x5851f42d4c957f2dull);
	atomic_init(&s->seq, 1);
	if (sim_extract_new(o->answers, &s->extract, err, errlen))
		return -1;
	r = sim_limit_init(&s->limit, o->rpm, o->tpm);
	if (r) {
		sim_errf(err, errlen, "limiter: %s", strerror(-r));
		return -1;
	}
	s->limit_ok = true;
	r = pthread_mutex_init(&s->stats.lock, NULL);
	if (r) {
		sim_errf(err, errlen, "mutex: %s", strerror(r));
		return -1;
	}
	s->stats_ok = true;
	r = sim_timer_new(o->capacity, sim_on_gone, s, &s->timer);
	if (r) {
		sim_errf(err, errlen, "timer: %s", strerror(-r));
		return -1;
	}
	r = sim_batch_new(&(struct sim_batch_opts){
				  .delay_ms = o->batch_delay_ms,
				  .expire = o->batch_expire,
				  .hold_file = o->batch_hold,
				  .answer = sim_batch_line,
				  .answer_cls = s },
			  &s->batch);
	if (r) {
		sim_errf(err, errlen, "batches: %s", strerror(-r));
		return -1;
	}
	return 0;
}

static void sim_server_done(struct sim_server *s)
{
	sim_batch_free(s->batch);
	sim_timer_free(s->timer);
	if (s->stats_ok)
		pthread_mutex_destroy(&s->stats.lock);
	if (s->limit_ok)
		sim_limit_done(&s->limit);
	sim_extract_free(s->extract);
}

int main(int argc, char **argv)
{
	struct sim_options opt = { .listen = "127.0.0.1:0", .seed = 1,
				   .cut_finish = "length",
				   .rate_headers = true,
				   .cache_min = 1024 };
	struct sim_server srv = { 0 };
	struct MHD_Daemon *d = NULL;
	char err[SIM_ERR_LEN] = "";
	MHD_socket qfd;
	sigset_t sigs;
	unsigned port = 0;
	long ncpu;
	int fd = -1, sig, r, ret = 1;
	size_t left;

	r = sim_parse_args(argc, argv, &opt, err, sizeof(err));
	if (r > 0) {
		sim_usage(stdout);
		return 0;
	}
	if (r < 0) {
		fprintf(stderr, "llmsim: %s\n", err);
		sim_usage(stderr);
		return 2;
	}
	if (!opt.threads) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		opt.threads = ncpu < 1 ? 1 :
			      ncpu > (long)SIM_MAX_THREADS ? SIM_MAX_THREADS :
			      (unsigned long)ncpu;
	}

	/* every thread inherits this mask; main takes the signals */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	sim_raise_nofile();

	if (sim_server_init(&srv, &opt, err, sizeof(err)))
		goto out;
	fd = sim_listen(opt.listen, &port, err, sizeof(err));
	if (fd < 0)
		goto out;
	r = sim_timer_start(srv.timer);
	if (r) {
		sim_errf(err, sizeof(err), "timer thread: %s", strerror(-r));
		goto out;
	}
	d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD |
			     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
			     0, NULL, NULL, sim_handle, &srv,
			     MHD_OPTION_EXTERNAL_LOGGER, sim_mhd_log, NULL,
			     MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
			     MHD_OPTION_THREAD_POOL_SIZE,
			     (unsigned int)opt.threads,
			     MHD_OPTION_CONNECTION_LIMIT,
			     (unsigned int)SIM_CONN_LIMIT,
			     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)0,
			     MHD_OPTION_NOTIFY_COMPLETED, sim_completed, &srv,
			     MHD_OPTION_END);
	if (!d) {
		sim_errf(err, sizeof(err), "cannot start the HTTP server");
		goto out;
	}
	fd = -1;	/* now owned by MHD */
	if (opt.port_file &&
	    sim_write_port_file(opt.port_file, port, err, sizeof(err)))
		goto out;
	fprintf(stderr, "llmsim: listening on %s, port %u, %lu threads\n",
		opt.listen, port, opt.threads);

	do {
		r = sigwait(&sigs, &sig);
	} while (r == EINTR);

	ret = 0;
out:
	if (ret && err[0])
		fprintf(stderr, "llmsim: %s\n", err);
	qfd = d ? MHD_quiesce_daemon(d) : MHD_INVALID_SOCKET;
	if (srv.timer) {
		left = sim_timer_stop(srv.timer, SIM_STOP_WAIT_MS);
		if (left)
			fprintf(stderr, "llmsim: %zu requests still parked at exit\n",
				left);
	}
	if (d)
		MHD_stop_daemon(d);
	if (qfd != MHD_INVALID_SOCKET)
		close(qfd);
	if (fd >= 0)
		close(fd);
	sim_server_done(&srv);
	return ret;
}

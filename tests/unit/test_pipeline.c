/*
 * Unit tests for daemon/pipeline: a record's way from admission to its
 * delivery report, without Kafka.
 *
 * The LLM is real HTTP: the llm module talks to a small chat-completions
 * server in this test (libmicrohttpd), which answers a Person after the
 * delay a text asks for ("delay=300"; every test text asks for one) and
 * answers "no" to texts with "bad" in them (not JSON: after the re-asks,
 * a validation dead letter). The producer
 * is a fake linked in its place: this file defines the producer_*
 * functions pipeline.c calls, so the linker takes them instead of
 * daemon/producer.c's (which needs a broker); it records what is sent,
 * and the test plays the delivery reports. Input messages are made here
 * and freed by the pipeline through the msg_free it is given.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <microhttpd.h>

#include "admission.h"
#include "clock.h"
#include "config.h"
#include "http.h"
#include "keyset.h"
#include "ledger.h"
#include "llm.h"
#include "metrics.h"
#include "pipeline.h"
#include "producer.h"
#include "schema.h"
#include "stop.h"

/* ---- the chat-completions server ---- */

static struct MHD_Daemon *server;
static unsigned short server_port;
static atomic_int calls, open_calls, peak_calls;

struct upload {
	char *body;
	size_t len;
};

static const char person[] =
	"{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":"
	"\"{\\\"name\\\":\\\"Ada Lovelace\\\",\\\"age\\\":36,"
	"\\\"occupation\\\":\\\"mathematician\\\"}\"},"
	"\"finish_reason\":\"stop\"}],"
	"\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5}}";
static const char refusal[] =
	"{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":"
	"\"no\"},\"finish_reason\":\"stop\"}],"
	"\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":1}}";

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn,
			      const char *url, const char *method,
			      const char *version, const char *data,
			      size_t *data_size, void **con_cls)
{
	struct upload *up = *con_cls;
	struct MHD_Response *res;
	const char *delay, *body;
	enum MHD_Result r;
	int n, peak;

	(void)cls;
	(void)url;
	(void)method;
	(void)version;
	if (!up) {
		*con_cls = calloc(1, sizeof(*up));
		return *con_cls ? MHD_YES : MHD_NO;
	}
	if (*data_size) {
		up->body = realloc(up->body, up->len + *data_size + 1);
		memcpy(up->body + up->len, data, *data_size);
		up->len += *data_size;
		up->body[up->len] = '\0';
		*data_size = 0;
		return MHD_YES;
	}
	/* Records' calls are counted; the llm's health check (a text of
	 * its own) is not. */
	delay = up->body ? strstr(up->body, "delay=") : NULL;
	if (delay) {
		atomic_fetch_add(&calls, 1);
		n = atomic_fetch_add(&open_calls, 1) + 1;
		peak = atomic_load(&peak_calls);
		while (n > peak &&
		       !atomic_compare_exchange_weak(&peak_calls, &peak, n))
			;
		usleep((useconds_t)atoi(delay + 6) * 1000);
		atomic_fetch_sub(&open_calls, 1);
	}
	body = up->body && strstr(up->body, "bad") ? refusal : person;
	res = MHD_create_response_from_buffer(strlen(body), (void *)body,
					      MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(res, "Content-Type", "application/json");
	r = MHD_queue_response(conn, MHD_HTTP_OK, res);
	MHD_destroy_response(res);
	return r;
}

static void upload_done(void *cls, struct MHD_Connection *conn,
			void **con_cls, enum MHD_RequestTerminationCode code)
{
	struct upload *up = *con_cls;

	(void)cls;
	(void)conn;
	(void)code;
	if (up) {
		free(up->body);
		free(up);
	}
	*con_cls = NULL;
}

/* ---- the fake producer ---- */

#define MAX_SENT 64

struct sent {
	enum producer_dest dest;
	int64_t offset;
	void *opaque;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct sent sent[MAX_SENT];
	int n_sent;
	producer_delivered_fn *delivered;
} fake = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.changed = PTHREAD_COND_INITIALIZER,
};

static int fake_producer; /* its address is the struct producer */

struct producer *producer_new(const struct extractd_config *cfg,
			      struct stop *stop,
			      producer_delivered_fn *delivered,
			      producer_source_fn *source, char *err,
			      size_t err_size)
{
	(void)cfg;
	(void)stop;
	(void)source;
	(void)err;
	(void)err_size;
	fake.delivered = delivered;
	return (struct producer *)&fake_producer;
}

int producer_free(struct producer *p)
{
	(void)p;
	return 0;
}

/* The source offset, from the record's extractd.source header
 * ("topic/partition/offset"). */
static int64_t source_offset(rd_kafka_headers_t *headers)
{
	const void *value;
	size_t size;
	char text[128];

	if (rd_kafka_header_get_last(headers, "extractd.source", &value,
				     &size) || size >= sizeof(text))
		return -1;
	memcpy(text, value, size);
	text[size] = '\0';
	return strtoll(strrchr(text, '/') + 1, NULL, 10);
}

int producer_send(struct producer *p, enum producer_dest dest,
		  const void *value, size_t len, const void *key,
		  size_t key_len, rd_kafka_headers_t *headers, void *opaque,
		  rd_kafka_resp_err_t *ret_err)
{
	(void)p;
	(void)value;
	(void)len;
	(void)key;
	(void)key_len;
	(void)ret_err;
	pthread_mutex_lock(&fake.lock);
	if (fake.n_sent == MAX_SENT)
		abort(); /* a worker's thread: no cmocka assert here */
	fake.sent[fake.n_sent++] = (struct sent){
		.dest = dest,
		.offset = source_offset(headers),
		.opaque = opaque,
	};
	pthread_cond_broadcast(&fake.changed);
	pthread_mutex_unlock(&fake.lock);
	rd_kafka_headers_destroy(headers);
	return 0;
}

void producer_wait_space(struct producer *p, int ms)
{
	(void)p;
	usleep((useconds_t)ms * 1000);
}

const char *producer_topic(const struct producer *p, enum producer_dest dest)
{
	(void)p;
	return dest == PRODUCER_OUTPUT ? "persons" : "texts.dlq";
}

void producer_refused(struct producer *p, enum producer_dest dest,
		      size_t bytes)
{
	(void)p;
	(void)dest;
	(void)bytes;
}

bool producer_too_large(struct producer *p, enum producer_dest dest,
			size_t bytes)
{
	(void)p;
	(void)dest;
	(void)bytes;
	return false;
}

/* The test's messages are made by hand, without librdkafka's private
 * part, so they have no headers. */
const rd_kafka_headers_t *producer_input_headers(rd_kafka_message_t *msg)
{
	(void)msg;
	return NULL;
}

bool producer_transactional(const struct producer *p)
{
	(void)p;
	return false;
}

void producer_txn_lock(struct producer *p)
{
	(void)p;
}

void producer_txn_unlock(struct producer *p)
{
	(void)p;
}

/* Wait until n records were sent (at most 10 s). */
static int wait_sent(int n)
{
	struct timespec until;
	int got;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&fake.lock);
	while (fake.n_sent < n &&
	       pthread_cond_timedwait(&fake.changed, &fake.lock, &until) !=
		       ETIMEDOUT)
		;
	got = fake.n_sent;
	pthread_mutex_unlock(&fake.lock);
	return got;
}

static int n_sent(void)
{
	int n;

	pthread_mutex_lock(&fake.lock);
	n = fake.n_sent;
	pthread_mutex_unlock(&fake.lock);
	return n;
}

/* Play the delivery reports of the records sent, last sent first. */
static void deliver_all(void)
{
	int i;

	for (i = n_sent() - 1; i >= 0; i--)
		fake.delivered(fake.sent[i].opaque, RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* ---- the pipeline under test ---- */

static atomic_int msgs_freed;

static void msg_free(rd_kafka_message_t *msg)
{
	free(msg->payload);
	free(msg);
	atomic_fetch_add(&msgs_freed, 1);
}

static rd_kafka_message_t *message(int64_t offset, const char *text)
{
	rd_kafka_message_t *msg = calloc(1, sizeof(*msg));

	msg->offset = offset;
	msg->payload = strdup(text);
	msg->len = strlen(text);
	return msg;
}

struct stored {
	int calls;
	int64_t last;
};

static void store(void *arg, const char *topic, int32_t partition,
		  int64_t position)
{
	struct stored *st = arg;

	(void)topic;
	(void)partition;
	st->calls++;
	st->last = position;
}

struct rig {
	struct extractd_config *cfg;
	struct schema *schema;
	struct llm *llm;
	struct http_share *share;
	struct metrics *metrics;
	struct stop *stop;
	struct pipeline *pl;
	struct admission *adm;
	struct ledger *ledger;
	struct stored stored;
	int admitted;
};

static void rig_up_workers(struct rig *r, const char *ordering,
			   const char *slots, const char *workers)
{
	char url[128], err[1024];
	char ord[64], mif[64], wrk[64];
	const char *ov[] = { url, "llm.mode=json_schema", ord, mif, wrk,
			     "llm.api_key_env=",
			     "retry.base_delay_ms=10" };

	memset(r, 0, sizeof(*r));
	memset(&fake.sent, 0, sizeof(fake.sent));
	fake.n_sent = 0;
	atomic_store(&calls, 0);
	atomic_store(&peak_calls, 0);
	atomic_store(&msgs_freed, 0);
	snprintf(url, sizeof(url), "llm.base_url=http://127.0.0.1:%u/v1",
		 server_port);
	snprintf(ord, sizeof(ord), "output.ordering=%s", ordering);
	snprintf(mif, sizeof(mif), "pool.max_in_flight=%s", slots);
	snprintf(wrk, sizeof(wrk), "pool.workers=%s", workers);
	if (cfg_load(NULL, ov, sizeof(ov) / sizeof(ov[0]), &r->cfg, err,
		     sizeof(err)) < 0)
		fail_msg("config: %s", err);
	r->schema = schema_load_file(EXTRACTD_SOURCE_DIR
				     "/schemas/person.schema.json",
				     err, sizeof(err));
	assert_non_null(r->schema);
	r->llm = llm_new(r->cfg, r->schema, err, sizeof(err));
	assert_non_null(r->llm);
	r->share = http_share_new();
	r->metrics = metrics_new();
	r->stop = stop_new();
	r->pl = pipeline_new(r->cfg, r->llm, NULL, r->share, r->metrics,
			     r->stop, msg_free, err, sizeof(err));
	assert_non_null(r->pl);
	if (pipeline_start(r->pl, err, sizeof(err)) < 0)
		fail_msg("pipeline_start: %s", err);
	r->adm = pipeline_admission(r->pl);
	r->ledger = ledger_new(store, &r->stored, "texts", 0,
			       pipeline_order(r->pl));
	assert_non_null(r->ledger);
}

static void rig_up(struct rig *r, const char *ordering, const char *slots)
{
	rig_up_workers(r, ordering, slots, "8");
}

/* Admit a text as the consumer does: it waits in admission's queue for
 * a slot. */
static void admit(struct rig *r, const char *text)
{
	assert_true(admission_room(r->adm));
	assert_int_equal(pipeline_admit(r->pl, r->ledger,
					message(r->admitted, text)),
			 0);
	r->admitted++;
}

static void rig_down(struct rig *r)
{
	assert_int_equal(pipeline_wait_drained(r->pl,
					       mono_ns() + 10000000000LL),
			 0);
	ledger_unref(r->ledger);
	assert_int_equal(pipeline_shutdown(r->pl), 0);
	pipeline_free(r->pl);
	/* Every job ended and gave its slot back; no message is left. */
	assert_int_equal(atomic_load(&msgs_freed), r->admitted);
	llm_free(r->llm);
	stop_free(r->stop);
	metrics_free(r->metrics);
	http_share_free(r->share);
	schema_free(r->schema);
	cfg_free(r->cfg);
}

/* Offset order: answers that come back in reverse are produced in offset
 * order, a dead letter in its place; delivered, the whole prefix is
 * stored. */
static void offset_order(void **state)
{
	static const char *texts[] = {
		"delay=400", "delay=320", "delay=240 bad", "delay=160",
		"delay=80", "delay=0",
	};
	struct rig r;
	int i;

	(void)state;
	rig_up(&r, "offset", "8");
	for (i = 0; i < 6; i++)
		admit(&r, texts[i]);
	assert_int_equal(wait_sent(6), 6);
	for (i = 0; i < 6; i++) {
		assert_int_equal(fake.sent[i].offset, i);
		assert_int_equal(fake.sent[i].dest,
				 i == 2 ? PRODUCER_DLQ : PRODUCER_OUTPUT);
	}
	assert_int_equal(r.stored.calls, 0); /* nothing delivered yet */
	deliver_all();
	assert_int_equal(r.stored.last, 6);
	assert_int_equal(admission_free_slots(r.adm), 8);
	rig_down(&r);
}

/* Completion order: each record leaves when its answer is in. */
static void completion_order(void **state)
{
	struct rig r;
	int i;

	(void)state;
	rig_up(&r, "completion", "8");
	admit(&r, "delay=600");
	for (i = 1; i < 4; i++)
		admit(&r, "delay=0");
	assert_int_equal(wait_sent(4), 4);
	assert_int_equal(fake.sent[3].offset, 0);
	deliver_all();
	assert_int_equal(r.stored.last, 4);
	rig_down(&r);
}

/*
 * The early window: with max_in_flight 2 and the oldest record's call
 * open, answered records give their slot back (to the next queued
 * record) while at most 2 of them wait without one; the third keeps its
 * slot. So exactly 4 records are called, the other 4 wait in the queue,
 * and at most 2 calls are ever open.
 */
static void early_window_bounds_the_jobs(void **state)
{
	struct rig r;
	int i;

	(void)state;
	rig_up(&r, "offset", "2");
	admit(&r, "delay=2500");
	for (i = 0; i < 7; i++)
		admit(&r, "delay=0");
	for (i = 0; i < 200 && atomic_load(&calls) < 4; i++)
		usleep(10000);
	usleep(200000); /* and no more come */
	assert_int_equal(atomic_load(&calls), 4);
	assert_int_equal(admission_queued(r.adm), 4);
	assert_int_equal(n_sent(), 0); /* all wait for offset 0 */
	assert_int_equal(wait_sent(4), 4);
	deliver_all();
	assert_int_equal(wait_sent(8), 8);
	for (i = 7; i >= 4; i--)
		fake.delivered(fake.sent[i].opaque,
			       RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_true(atomic_load(&peak_calls) <= 2);
	assert_int_equal(r.stored.last, 8);
	rig_down(&r);
}

/*
 * Fewer workers than slots: the jobs started wait in the pool's queue for
 * a worker, and a worker whose call ends does not take a newer record
 * from admission's queue ahead of them. With one worker the calls go in
 * offset order.
 */
static void fewer_workers_than_slots(void **state)
{
	struct rig r;
	int i;

	(void)state;
	rig_up_workers(&r, "completion", "4", "1");
	for (i = 0; i < 10; i++)
		admit(&r, "delay=20");
	for (i = 0; i < 10; i++) {
		assert_int_equal(wait_sent(i + 1), i + 1);
		assert_int_equal(fake.sent[i].offset, i);
		fake.delivered(fake.sent[i].opaque,
			       RD_KAFKA_RESP_ERR_NO_ERROR);
	}
	assert_true(atomic_load(&peak_calls) <= 1);
	assert_int_equal(r.stored.last, 10);
	rig_down(&r);
}

/* A revoked partition's jobs still end (their ledger lives on through
 * their references), and store nothing. */
static void revoke_with_jobs_in_flight(void **state)
{
	struct rig r;
	int i;

	(void)state;
	rig_up(&r, "completion", "8");
	for (i = 0; i < 3; i++)
		admit(&r, "delay=200");
	/* The consumer lets the partition go: its reference is dropped. */
	ledger_revoke(r.ledger);
	ledger_unref(r.ledger);
	r.ledger = NULL;
	assert_int_equal(wait_sent(3), 3);
	deliver_all();
	assert_int_equal(r.stored.calls, 0);
	rig_down(&r);
}

/*
 * Stopping cuts the oldest record's call: it is abandoned, and in offset
 * order every record after it too. Nothing is produced or stored, and no
 * one waits for them.
 */
static void abandoned_jobs(void **state)
{
	struct rig r;
	int i;

	(void)state;
	rig_up(&r, "offset", "8");
	admit(&r, "delay=5000");
	for (i = 1; i < 3; i++)
		admit(&r, "delay=0");
	/* The two fast answers are in: they wait for offset 0 without a
	 * slot. */
	while (admission_early(r.adm) < 2)
		usleep(10000);
	stop_begin(r.stop, 5000);
	llm_cut(r.llm);
	assert_int_equal(pipeline_wait_drained(r.pl,
					       mono_ns() + 4000000000LL),
			 0);
	assert_int_equal(n_sent(), 0);
	assert_int_equal(r.stored.calls, 0);
	assert_int_equal(ledger_wait_idle(r.ledger, mono_ns()), 0);
	rig_down(&r);
}

/* Key order, as the consumer admits: offset tracked on arrival, key
 * taken, then admitted. */
static void admit_keyed(struct rig *r, const char *key, const char *text)
{
	rd_kafka_message_t *msg = message(r->admitted, text);

	msg->key = (void *)key;
	msg->key_len = strlen(key);
	assert_int_equal(ledger_track(r->ledger, msg->offset), 0);
	assert_int_equal(
		ledger_key_take(r->ledger, keyset_hash(key, strlen(key))), 1);
	assert_int_equal(pipeline_admit(r->pl, r->ledger, msg), 0);
	r->admitted++;
}

/*
 * Key order: records of different keys leave as their answers come (b's
 * fast answer before a's slow one); a key stays taken until its record
 * is delivered, then is free for the next; the delivered prefix is
 * stored whatever order the deliveries come in.
 */
static void key_order(void **state)
{
	uint64_t a = keyset_hash("a", 1), b = keyset_hash("b", 1);
	struct rig r;

	(void)state;
	rig_up(&r, "key", "8");
	assert_true(ledger_keyed(r.ledger));
	admit_keyed(&r, "a", "delay=400");
	admit_keyed(&r, "b", "delay=0");
	assert_int_equal(wait_sent(1), 1);
	assert_int_equal(fake.sent[0].offset, 1); /* b did not wait for a */
	assert_int_equal(ledger_key_take(r.ledger, b), 0); /* b in flight */
	fake.delivered(fake.sent[0].opaque, RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(ledger_key_take(r.ledger, b), 1); /* free again */
	ledger_key_give(r.ledger, b);
	assert_int_equal(r.stored.calls, 0); /* offset 0 not delivered */
	assert_int_equal(wait_sent(2), 2);
	assert_int_equal(ledger_key_take(r.ledger, a), 0);
	fake.delivered(fake.sent[1].opaque, RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(r.stored.last, 2);
	assert_int_equal(ledger_key_take(r.ledger, a), 1);
	ledger_key_give(r.ledger, a);

	/* A key's next record, after its first was delivered. */
	admit_keyed(&r, "a", "delay=0");
	assert_int_equal(wait_sent(3), 3);
	fake.delivered(fake.sent[2].opaque, RD_KAFKA_RESP_ERR_NO_ERROR);
	assert_int_equal(r.stored.last, 3);
	rig_down(&r);
}

static int server_up(void **state)
{
	const union MHD_DaemonInfo *info;

	(void)state;
	assert_int_equal(http_global_init(), 0);
	server = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION |
					  MHD_USE_INTERNAL_POLLING_THREAD,
				  0, NULL, NULL, answer, NULL,
				  MHD_OPTION_NOTIFY_COMPLETED, upload_done,
				  NULL, MHD_OPTION_END);
	if (!server)
		return -1;
	info = MHD_get_daemon_info(server, MHD_DAEMON_INFO_BIND_PORT);
	server_port = info->port;
	return 0;
}

static int server_down(void **state)
{
	(void)state;
	MHD_stop_daemon(server);
	http_global_cleanup();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(offset_order),
		cmocka_unit_test(completion_order),
		cmocka_unit_test(early_window_bounds_the_jobs),
		cmocka_unit_test(fewer_workers_than_slots),
		cmocka_unit_test(revoke_with_jobs_in_flight),
		cmocka_unit_test(abandoned_jobs),
		cmocka_unit_test(key_order),
	};

	return cmocka_run_group_tests(tests, server_up, server_down);
}

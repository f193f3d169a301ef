/*
 * floor: the design's own cost floor, for the benchmark (issue 24).
 *
 * T pthreads, each with one keep-alive libcurl easy handle, call an
 * OpenAI-compatible chat-completions endpoint as fast as their answers come
 * back: each call builds its request with json-c (the same json_schema body
 * extractd sends: model, temperature, response_format with the schema, a
 * system and a user message), and parses the answer twice (the HTTP body,
 * then the message content). No Kafka, no validation, no queues: what is
 * left when everything extractd adds around the call is taken away.
 *
 *   floor --base-url URL --schema FILE --texts FILE --concurrency T
 *         --requests N [--model M]
 *
 * Texts: one per line, used in turn. At the end it prints one JSON line:
 *   {"msg":"stopped","records":N,"errors":E,"busy_seconds":S,
 *    "cpu_s":C,"cpu_sys_s":S,"p50_ms":..,"p99_ms":..,"rss_kb":..}
 * where cpu_s is the process's user+system time over the calls only (from
 * the threads' start to their end) and cpu_sys_s its system part, records
 * counts answers that parsed twice, and rss_kb is the peak resident set.
 * Exit 0 when every call succeeded, 1 when one did not, 2 on a usage
 * error.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

struct texts {
	char **line;
	size_t n;
};

/* Read-only after main() sets it up; the threads share it without a lock. */
struct run {
	const char *url;
	const char *model;
	const char *schema_path; /* each worker loads its own copy */
	struct texts texts;
	long requests;
	atomic_long next;   /* the next call to make, 0..requests */
	atomic_long errors; /* calls that failed or did not parse */
	double *lat_ms;     /* lat_ms[i]: call i's latency; each i one writer */
};

struct buf {
	char *p;
	size_t len, cap;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The process's user + system CPU time, seconds; *sys_s its system part. */
static double cpu_s(double *sys_s, long *maxrss_kb)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	*maxrss_kb = ru.ru_maxrss;
	*sys_s = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	return (double)ru.ru_utime.tv_sec +
	       (double)ru.ru_utime.tv_usec / 1e6 + *sys_s;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	size_t add = size * n;

	if (b->len + add + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < b->len + add + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p)
			return 0;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, add);
	b->len += add;
	b->p[b->len] = '\0';
	return add;
}

static char *request_body(const struct run *r, struct json_object *schema,
			  const char *text)
{
	struct json_object *req = json_object_new_object();
	struct json_object *fmt = json_object_new_object();
	struct json_object *inner = json_object_new_object();
	struct json_object *msgs = json_object_new_array();
	struct json_object *sys = json_object_new_object();
	struct json_object *user = json_object_new_object();
	char *out;

	json_object_object_add(req, "model", json_object_new_string(r->model));
	json_object_object_add(req, "temperature", json_object_new_double(0));
	json_object_object_add(inner, "name", json_object_new_string("Person"));
	json_object_object_add(inner, "schema", json_object_get(schema));
	json_object_object_add(inner, "strict", json_object_new_boolean(1));
	json_object_object_add(fmt, "type",
			       json_object_new_string("json_schema"));
	json_object_object_add(fmt, "json_schema", inner);
	json_object_object_add(req, "response_format", fmt);
	json_object_object_add(sys, "role", json_object_new_string("system"));
	json_object_object_add(sys, "content", json_object_new_string(
		"Extract the person described in the user's text."));
	json_object_object_add(user, "role", json_object_new_string("user"));
	json_object_object_add(user, "content", json_object_new_string(text));
	json_object_array_add(msgs, sys);
	json_object_array_add(msgs, user);
	json_object_object_add(req, "messages", msgs);
	out = strdup(json_object_to_json_string_ext(req,
						    JSON_C_TO_STRING_PLAIN));
	json_object_put(req);
	return out;
}

/* 0 when the body is a chat completion whose content is a JSON object. */
static int parse_answer(const char *body)
{
	struct json_object *doc = json_tokener_parse(body), *choices, *msg,
			   *content, *obj;
	int rc = -1;

	if (!doc)
		return -1;
	if (json_object_object_get_ex(doc, "choices", &choices) &&
	    json_object_is_type(choices, json_type_array) &&
	    json_object_array_length(choices) > 0 &&
	    json_object_object_get_ex(json_object_array_get_idx(choices, 0),
				      "message", &msg) &&
	    json_object_object_get_ex(msg, "content", &content) &&
	    json_object_is_type(content, json_type_string)) {
		obj = json_tokener_parse(json_object_get_string(content));
		if (obj && json_object_is_type(obj, json_type_object))
			rc = 0;
		json_object_put(obj);
	}
	json_object_put(doc);
	return rc;
}

static void *worker(void *arg)
{
	struct run *r = arg;
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = NULL;
	struct buf b = { 0 };
	struct json_object *schema = NULL;
	long i, status;

	/*
	 * json-c objects are not for sharing between threads (reference
	 * counts and the serialising buffer each object keeps): each thread
	 * puts its own copy of the schema in its requests.
	 */
	schema = json_object_from_file(r->schema_path);
	if (!h || !schema) {
		atomic_fetch_add(&r->errors, r->requests);
		curl_easy_cleanup(h);
		json_object_put(schema);
		return NULL;
	}
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	hdr = curl_slist_append(hdr, "Authorization: Bearer sk-floor");
	curl_easy_setopt(h, CURLOPT_URL, r->url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 30000L);
	while ((i = atomic_fetch_add(&r->next, 1)) < r->requests) {
		char *body = request_body(r, schema,
					  r->texts.line[(size_t)i % r->texts.n]);
		double t0 = now_s();
		CURLcode cc;

		b.len = 0;
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		cc = curl_easy_perform(h);
		status = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		if (cc != CURLE_OK || status != 200 || !b.p ||
		    parse_answer(b.p) != 0)
			atomic_fetch_add(&r->errors, 1);
		r->lat_ms[i] = (now_s() - t0) * 1e3;
		free(body);
	}
	json_object_put(schema);
	free(b.p);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	return NULL;
}

static int read_texts(const char *path, struct texts *t)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	if (!f)
		return -1;
	while ((len = getline(&line, &cap, f)) >= 0) {
		char **grown;

		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0)
			continue;
		grown = realloc(t->line, (t->n + 1) * sizeof(*grown));
		if (!grown)
			break;
		t->line = grown;
		t->line[t->n++] = strdup(line);
	}
	free(line);
	fclose(f);
	return t->n ? 0 : -1;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void usage(FILE *to)
{
	fprintf(to, "usage: floor --base-url URL --schema FILE --texts FILE "
		    "--concurrency T --requests N [--model M]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "base-url", required_argument, NULL, 'u' },
		{ "schema", required_argument, NULL, 's' },
		{ "texts", required_argument, NULL, 't' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "requests", required_argument, NULL, 'n' },
		{ "model", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct run r = { .model = "gpt-4o-mini" };
	const char *base = NULL, *schema = NULL, *texts = NULL;
	long threads = 0, i;
	pthread_t *tid;
	double t0, c0, secs, cpu, sys0, sys;
	long rss_kb;
	struct json_object *json;
	char *url;
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'u': base = optarg; break;
		case 's': schema = optarg; break;
		case 't': texts = optarg; break;
		case 'c': threads = strtol(optarg, NULL, 10); break;
		case 'n': r.requests = strtol(optarg, NULL, 10); break;
		case 'm': r.model = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!base || !schema || !texts || threads < 1 || threads > 65536 ||
	    r.requests < 1) {
		usage(stderr);
		return 2;
	}
	r.schema_path = schema;
	json = json_object_from_file(schema);
	if (!json) {
		fprintf(stderr, "floor: %s: not a JSON document\n", schema);
		return 2;
	}
	json_object_put(json);
	if (read_texts(texts, &r.texts) != 0) {
		fprintf(stderr, "floor: %s: no texts\n", texts);
		return 2;
	}
	url = malloc(strlen(base) + sizeof("/chat/completions"));
	if (!url)
		return 1;
	strcpy(url, base);
	strcat(url, "/chat/completions");
	r.url = url;
	r.lat_ms = calloc((size_t)r.requests, sizeof(*r.lat_ms));
	tid = calloc((size_t)threads, sizeof(*tid));
	if (!r.lat_ms || !tid || curl_global_init(CURL_GLOBAL_DEFAULT))
		return 1;

	t0 = now_s();
	c0 = cpu_s(&sys0, &rss_kb);
	for (i = 0; i < threads; i++)
		if (pthread_create(&tid[i], NULL, worker, &r) != 0) {
			fprintf(stderr, "floor: thread %ld: %s\n", i,
				strerror(errno));
			return 1;
		}
	for (i = 0; i < threads; i++)
		pthread_join(tid[i], NULL);
	secs = now_s() - t0;
	cpu = cpu_s(&sys, &rss_kb) - c0;
	sys -= sys0;

	qsort(r.lat_ms, (size_t)r.requests, sizeof(*r.lat_ms), by_value);
	printf("{\"msg\":\"stopped\",\"records\":%ld,\"errors\":%ld,"
	       "\"busy_seconds\":%.3f,\"cpu_s\":%.4f,\"cpu_sys_s\":%.4f,"
	       "\"p50_ms\":%.0f,\"p99_ms\":%.0f,\"rss_kb\":%ld}\n",
	       r.requests - atomic_load(&r.errors), atomic_load(&r.errors),
	       secs, cpu, sys, r.lat_ms[r.requests / 2],
	       r.lat_ms[r.requests * 99 / 100], rss_kb);
	for (i = 0; i < (long)r.texts.n; i++)
		free(r.texts.line[i]);
	free(r.texts.line);
	free(r.lat_ms);
	free(tid);
	free(url);
	curl_global_cleanup();
	return atomic_load(&r.errors) ? 1 : 0;
}

/*
 * kafka_stats: see kafka_stats.h.
 */
#include "kafka_stats.h"

#include "jsonparse.h"
#include "metrics.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* json-c helpers: borrowed members, or a default when absent/mistyped. */
static int64_t get_int(struct json_object *o, const char *key, int64_t def)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		return def;
	return json_object_get_int64(v);
}

static bool get_bool(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) &&
	       json_object_is_type(v, json_type_boolean) &&
	       json_object_get_boolean(v);
}

static bool any_broker_up(struct json_object *root)
{
	struct json_object *brokers, *state;

	if (!json_object_object_get_ex(root, "brokers", &brokers) ||
	    !json_object_is_type(brokers, json_type_object))
		return false;
	json_object_object_foreach(brokers, name, b) {
		(void)name;
		if (json_object_is_type(b, json_type_object) &&
		    json_object_object_get_ex(b, "state", &state) &&
		    json_object_is_type(state, json_type_string) &&
		    !strcmp(json_object_get_string(state), "UP"))
			return true;
	}
	return false;
}

/* The lag of every partition this consumer wants (its assignment) and
 * whose committed lag is known; the topics are root's. -1 when out of
 * memory. */
static int collect_lag(struct json_object *root, struct metrics_lag **ret,
		       size_t *ret_n)
{
	struct json_object *topics, *parts;
	struct metrics_lag *v = NULL;
	size_t n = 0, cap = 0;

	if (!json_object_object_get_ex(root, "topics", &topics) ||
	    !json_object_is_type(topics, json_type_object))
		goto done;
	json_object_object_foreach(topics, topic, t) {
		if (!json_object_is_type(t, json_type_object) ||
		    !json_object_object_get_ex(t, "partitions", &parts) ||
		    !json_object_is_type(parts, json_type_object))
			continue;
		json_object_object_foreach(parts, key, p) {
			int64_t id, lag;

			(void)key;
			if (!json_object_is_type(p, json_type_object))
				continue;
			id = get_int(p, "partition", -1);
			lag = get_int(p, "consumer_lag", -1);
			if (id < 0 || id > INT32_MAX || lag < 0 ||
			    !get_bool(p, "desired"))
				continue;
			if (n == cap) {
				size_t c = cap ? cap * 2 : 16;
				struct metrics_lag *nv =
					realloc(v, c * sizeof(*nv));

				if (!nv) {
					free(v);
					return -1;
				}
				v = nv;
				cap = c;
			}
			v[n].topic = topic;
			v[n].partition = (int32_t)id;
			v[n].lag = lag;
			n++;
		}
	}
done:
	*ret = v;
	*ret_n = n;
	return 0;
}

int kafka_stats_take(struct metrics *m, unsigned owner, const char *json,
		     size_t len, bool *ret_broker_up)
{
	struct jsonparse_error e;
	struct json_object *root;
	struct metrics_lag *lag = NULL;
	size_t n = 0;
	int r = -1;

	root = jsonparse_once(json, len, JSON_TOKENER_DEFAULT_DEPTH, 0, &e);
	if (!root || !json_object_is_type(root, json_type_object))
		goto out;
	*ret_broker_up = any_broker_up(root);
	if (collect_lag(root, &lag, &n) < 0)
		goto out;
	r = metrics_lag_set(m, owner, lag, n);
	free(lag);
out:
	json_object_put(root);
	return r;
}

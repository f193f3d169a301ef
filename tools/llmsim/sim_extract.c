/*
 * sim_extract.c - the simulated model's "understanding": the Person regex
 * and the scripted answers file.
 *
 * The answers file (--answers) is JSONL, one rule a line:
 *   {"match": "substring", "content": "..." | {...}, "delay_ms": N}
 * The first rule whose match occurs in the input text answers with its
 * content verbatim (an object or array: its JSON text). "delay_ms" is
 * optional: that answer then comes after N ms instead of --latency-ms
 * (+- --jitter-ms), e.g. to hold one record slow while the rest flow.
 *
 * A rule may script an HTTP error instead:
 *   {"match": "substring", "status": 400, "echo_headers": true,
 *    "content": "message", "type": "...", "code": "..."}
 * answers with that status (400..599) and an OpenAI error body; its
 * message is "content" (default "llmsim: scripted error"), followed,
 * with "echo_headers", by the request's headers verbatim, one
 * "Name: value" line each, as some gateways echo them (Authorization
 * included): what extractd must never let through to a dead letter.
 * "type" defaults to invalid_request_error (4xx) or server_error (5xx),
 * "code" to null. "retry_after": N adds "Retry-After: N" (seconds) to the
 * error, "retry_after_date": N a Retry-After giving the time N s ahead as
 * an HTTP date (both 0..86400), as servers that send no retry-after-ms and
 * no x-ratelimit-* headers do (run llmsim with --no-rate-headers).
 *
 * Any rule may say "times": N (at least 1): it answers only the first N
 * requests it matches, and later ones go on to the next rules and the
 * regex (a 429 once, then the answer).
 *
 * Everything here is built once at startup and read-only afterwards but
 * the "times" counts (atomics), so
 * any number of MHD threads may call sim_extract_answer() at once: PCRE2
 * allows concurrent matching against one compiled pattern as long as each
 * call has its own match data, which this file allocates per call.
 */
#include "sim_extract.h"
#include "sim_util.h"

#define PCRE2_CODE_UNIT_WIDTH 8

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <json-c/json.h>
#include <pcre2.h>

/** The Person pattern from DESIGN.md, matched against the whole text. */
#define SIM_PERSON_RE \
	"^\\s*(.+?) is an? ([0-9]{1,3})-year-old (.+?)\\.?\\s*$"
#define SIM_ANSWERS_MAX_LINE	(16u << 20)	/**< bytes per JSONL line (scripted
						 * answers of several MiB) */
#define SIM_ANSWERS_MAX		100000u		/**< lines in the file */
#define SIM_DELAY_MAX_MS	(24L * 3600 * 1000)	/**< as --latency-ms */
#define SIM_RETRY_AFTER_MAX	86400L	/**< a scripted Retry-After, s */
#define SIM_JSON_FLAGS	(JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)

struct sim_rule {
	char *match;		/**< substring to look for */
	size_t match_len;
	char *content;		/**< the answer verbatim, or the error's
				 *   message */
	long delay_ms;		/**< "delay_ms", or -1: the usual latency */
	unsigned status;	/**< "status": a scripted error, or 0 */
	bool echo_headers;	/**< "echo_headers" */
	char *type;		/**< the error's type (with status) */
	char *code;		/**< the error's code, or NULL */
	long retry_after_s;	/**< Retry-After N s ahead, or -1 */
	bool retry_after_date;	/**< as an HTTP date */
	int64_t times;		/**< "times", or 0: every match */
	_Atomic int64_t used;	/**< matches so far, while times > 0 */
};

#define SIM_SCRIPTED_MESSAGE	"llmsim: scripted error"


struct sim_extract {
	pcre2_code *re;
	struct sim_rule *rules;
	size_t n_rules;
};

/** A Person as the regex found it: spans into the input text. */
struct sim_person {
	const char *name;
	size_t name_len;
	const char *occupation;
	size_t occupation_len;
	int age;
};

/** memmem() without _GNU_SOURCE: does @p needle occur in @p hay? */
static bool sim_contains(const char *hay, size_t hay_len, const char *needle,
			 size_t needle_len)
{
	const char *p = hay, *end = hay + hay_len;

	if (needle_len == 0)
		return true;
	while ((size_t)(end - p) >= needle_len) {
		p = memchr(p, needle[0], (size_t)(end - p) - needle_len + 1);
		if (!p)
			return false;
		if (memcmp(p, needle, needle_len) == 0)
			return true;
		p++;
	}
	return false;
}

static void sim_rule_free(struct sim_rule *rule)
{
	free(rule->match);
	free(rule->content);
	free(rule->type);
	free(rule->code);
}

/** An optional string member: 0 (*ret NULL when absent), or -1. */
static int sim_rule_string(struct json_object *root, const char *key,
			   const char **ret)
{
	struct json_object *v;

	*ret = NULL;
	if (!json_object_object_get_ex(root, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return -1;
	*ret = json_object_get_string(v);
	return 0;
}

/**
 * @brief An optional integer member in min..max: 0 (*ret untouched when
 * absent), or -1.
 */
static int sim_rule_int(struct json_object *root, const char *key,
			int64_t min, int64_t max, int64_t *ret)
{
	struct json_object *v;
	int64_t n = 0;

	if (!json_object_object_get_ex(root, key, &v))
		return 0;
	if (json_object_is_type(v, json_type_int)) {
		errno = 0;
		n = json_object_get_int64(v);
	}
	if (!json_object_is_type(v, json_type_int) || errno || n < min ||
	    n > max)
		return -1;
	*ret = n;
	return 0;
}

/**
 * @brief The Retry-After members of a scripted error ("retry_after",
 * "retry_after_date": at most one); rule->retry_after_s stays -1 without.
 * @returns 0, or -1 with the reason in @p err.
 */
static int sim_rule_retry_after(struct json_object *root,
				struct sim_rule *rule, char *err,
				size_t errlen)
{
	int64_t secs = -1, date = -1;

	rule->retry_after_s = -1;
	if (sim_rule_int(root, "retry_after", 0, SIM_RETRY_AFTER_MAX, &secs) ||
	    sim_rule_int(root, "retry_after_date", 0, SIM_RETRY_AFTER_MAX,
			 &date)) {
		sim_errf(err, errlen, "\"retry_after\" and "
			 "\"retry_after_date\" must be integers in 0..%ld",
			 SIM_RETRY_AFTER_MAX);
		return -1;
	}
	if (secs >= 0 && date >= 0) {
		sim_errf(err, errlen, "\"retry_after\" or "
			 "\"retry_after_date\", not both");
		return -1;
	}
	if ((secs >= 0 || date >= 0) && !rule->status) {
		sim_errf(err, errlen, "\"retry_after\" and "
			 "\"retry_after_date\" need a \"status\"");
		return -1;
	}
	rule->retry_after_date = date >= 0;
	rule->retry_after_s = (long)(date >= 0 ? date : secs);
	return 0;
}

/**
 * @brief The scripted-error members of a rule ("status", "echo_headers",
 * "type", "code"); rule->status stays 0 without "status".
 * @returns 0, or -1 with the reason in @p err.
 */
static int sim_rule_error(struct json_object *root, struct sim_rule *rule,
			  char *err, size_t errlen)
{
	struct json_object *v;
	const char *type, *code;
	int64_t status = 0;

	if (json_object_object_get_ex(root, "status", &v)) {
		if (json_object_is_type(v, json_type_int)) {
			errno = 0;
			status = json_object_get_int64(v);
		}
		if (!json_object_is_type(v, json_type_int) || errno ||
		    status < 400 || status > 599) {
			sim_errf(err, errlen, "\"status\" must be an integer "
				 "in 400..599 (an HTTP error)");
			return -1;
		}
	}
	if (json_object_object_get_ex(root, "echo_headers", &v)) {
		if (!json_object_is_type(v, json_type_boolean)) {
			sim_errf(err, errlen,
				 "\"echo_headers\" must be true or false");
			return -1;
		}
		rule->echo_headers = json_object_get_boolean(v);
	}
	if (sim_rule_string(root, "type", &type) ||
	    sim_rule_string(root, "code", &code)) {
		sim_errf(err, errlen, "\"type\" and \"code\" must be strings");
		return -1;
	}
	if (!status && (rule->echo_headers || type || code)) {
		sim_errf(err, errlen, "\"echo_headers\", \"type\" and \"code\" "
			 "need a \"status\"");
		return -1;
	}
	if (!status)
		return 0;
	rule->status = (unsigned)status;
	if (!type)
		type = status < 500 ? "invalid_request_error" : "server_error";
	rule->type = strdup(type);
	rule->code = code ? strdup(code) : NULL;
	if (!rule->type || (code && !rule->code)) {
		sim_errf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/**
 * @brief Parse one JSONL line into @p rule.
 * @returns 0, or -1 with the reason in @p err.
 */
static int sim_rule_parse(const char *line, size_t len, struct sim_rule *rule,
			  char *err, size_t errlen)
{
	struct json_tokener *tok = NULL;
	struct json_object *root = NULL, *m, *c = NULL, *d;
	const char *text;
	int64_t delay = -1;
	int r = -1;

	memset(rule, 0, sizeof(*rule));
	tok = json_tokener_new();
	if (!tok) {
		sim_errf(err, errlen, "out of memory");
		goto out;
	}
	root = json_tokener_parse_ex(tok, line, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		sim_errf(err, errlen, "bad JSON: %s",
			 json_tokener_error_desc(json_tokener_get_error(tok)));
		goto out;
	}
	if (!json_object_is_type(root, json_type_object) ||
	    !json_object_object_get_ex(root, "match", &m) ||
	    !json_object_is_type(m, json_type_string)) {
		sim_errf(err, errlen,
			 "want {\"match\": \"substring\", \"content\": ...}");
		goto out;
	}
	if (sim_rule_error(root, rule, err, errlen) ||
	    sim_rule_retry_after(root, rule, err, errlen))
		goto out;
	if (sim_rule_int(root, "times", 1, INT64_MAX, &rule->times)) {
		sim_errf(err, errlen, "\"times\" must be a positive integer");
		goto out;
	}
	atomic_init(&rule->used, 0);
	if (!json_object_object_get_ex(root, "content", &c) &&
	    !rule->status) {
		sim_errf(err, errlen,
			 "want {\"match\": \"substring\", \"content\": ...}");
		goto out;
	}
	if (c && rule->status && !json_object_is_type(c, json_type_string)) {
		sim_errf(err, errlen, "with \"status\", \"content\" is the "
			 "error's message: a string");
		goto out;
	}
	if (json_object_object_get_ex(root, "delay_ms", &d)) {
		/* an integer in 0..24 h, as --latency-ms takes */
		if (json_object_is_type(d, json_type_int)) {
			errno = 0;
			delay = json_object_get_int64(d);
		}
		if (!json_object_is_type(d, json_type_int) || errno ||
		    delay < 0 || delay > SIM_DELAY_MAX_MS) {
			sim_errf(err, errlen,
				 "\"delay_ms\" must be an integer in 0..%ld",
				 SIM_DELAY_MAX_MS);
			goto out;
		}
	}
	rule->delay_ms = (long)delay;
	rule->match_len = (size_t)json_object_get_string_len(m);
	rule->match = malloc(rule->match_len + 1);
	if (!c)
		text = SIM_SCRIPTED_MESSAGE;
	else if (json_object_is_type(c, json_type_string))
		text = json_object_get_string(c);
	else	/* an object or array: its JSON text */
		text = json_object_to_json_string_ext(c, SIM_JSON_FLAGS);
	rule->content = text ? strdup(text) : NULL;
	if (!rule->match || !rule->content) {
		sim_errf(err, errlen, "out of memory");
		goto out;
	}
	memcpy(rule->match, json_object_get_string(m), rule->match_len + 1);
	r = 0;
out:
	if (r) {
		sim_rule_free(rule);
		memset(rule, 0, sizeof(*rule));
	}
	json_object_put(root);
	if (tok)
		json_tokener_free(tok);
	return r;
}

/**
 * @brief Load the answers file into x->rules.
 * @returns 0, or -1 with "path:line: reason" in @p err.
 */
static int sim_rules_load(struct sim_extract *x, const char *path, char *err,
			  size_t errlen)
{
	FILE *f = NULL;
	char *line = NULL, msg[256];
	size_t cap = 0, lineno = 0, start;
	ssize_t n;
	void *grown;
	int r = -1;

	f = fopen(path, "re");
	if (!f) {
		sim_errf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if ((size_t)n > SIM_ANSWERS_MAX_LINE) {
			sim_errf(err, errlen, "%s:%zu: line too long", path,
				 lineno);
			goto out;
		}
		for (start = 0; start < (size_t)n &&
		     strchr(" \t\r\n", line[start]); start++)
			;
		if (start == (size_t)n)
			continue;	/* blank line */
		if (x->n_rules >= SIM_ANSWERS_MAX) {
			sim_errf(err, errlen, "%s:%zu: more than %u answers",
				 path, lineno, SIM_ANSWERS_MAX);
			goto out;
		}
		grown = realloc(x->rules, (x->n_rules + 1) * sizeof(*x->rules));
		if (!grown) {
			sim_errf(err, errlen, "%s:%zu: out of memory", path,
				 lineno);
			goto out;
		}
		x->rules = grown;
		if (sim_rule_parse(line, (size_t)n, &x->rules[x->n_rules], msg,
				   sizeof(msg))) {
			sim_errf(err, errlen, "%s:%zu: %s", path, lineno, msg);
			goto out;
		}
		x->n_rules++;
	}
	if (ferror(f)) {
		sim_errf(err, errlen, "%s: read error", path);
		goto out;
	}
	r = 0;
out:
	free(line);
	if (f)
		fclose(f);
	return r;
}

int sim_extract_new(const char *answers_path, struct sim_extract **ret,
		    char *err, size_t errlen)
{
	struct sim_extract *x;
	PCRE2_UCHAR msg[128];
	PCRE2_SIZE off;
	int code;

	x = calloc(1, sizeof(*x));
	if (!x) {
		sim_errf(err, errlen, "out of memory");
		return -1;
	}
	x->re = pcre2_compile((PCRE2_SPTR)SIM_PERSON_RE, PCRE2_ZERO_TERMINATED,
			      PCRE2_UTF, &code, &off, NULL);
	if (!x->re) {
		pcre2_get_error_message(code, msg, sizeof(msg));
		sim_errf(err, errlen, "pattern: %s at %zu", (char *)msg,
			 (size_t)off);
		goto fail;
	}
	/* JIT is an optimisation only: the interpreter is used without it */
	(void)pcre2_jit_compile(x->re, PCRE2_JIT_COMPLETE);
	if (answers_path && sim_rules_load(x, answers_path, err, errlen))
		goto fail;
	*ret = x;
	return 0;
fail:
	sim_extract_free(x);
	return -1;
}

void sim_extract_free(struct sim_extract *x)
{
	size_t i;

	if (!x)
		return;
	for (i = 0; i < x->n_rules; i++)
		sim_rule_free(&x->rules[i]);
	free(x->rules);
	pcre2_code_free(x->re);
	free(x);
}

/**
 * @brief Match the whole text against the Person pattern.
 * @returns 1 on a match (*ret filled), 0 on none, -ENOMEM.
 */
static int sim_person_match(const struct sim_extract *x, const char *text,
			    size_t len, struct sim_person *ret)
{
	pcre2_match_data *md;
	PCRE2_SIZE *ov;
	const char *age;
	size_t i;
	int rc;

	md = pcre2_match_data_create_from_pattern(x->re, NULL);
	if (!md)
		return -ENOMEM;
	/* invalid UTF-8 comes back as a negative code: no match */
	rc = pcre2_match(x->re, (PCRE2_SPTR)text, len, 0, 0, md, NULL);
	if (rc < 4) {
		pcre2_match_data_free(md);
		return 0;
	}
	ov = pcre2_get_ovector_pointer(md);
	ret->name = text + ov[2];
	ret->name_len = ov[3] - ov[2];
	ret->occupation = text + ov[6];
	ret->occupation_len = ov[7] - ov[6];
	ret->age = 0;
	age = text + ov[4];
	for (i = 0; i < ov[5] - ov[4]; i++)	/* [0-9]{1,3}: no overflow */
		ret->age = ret->age * 10 + (age[i] - '0');
	pcre2_match_data_free(md);
	return 1;
}

/**
 * @brief {"name": .., "age": .., "occupation": ..} as compact JSON text,
 * keys in that order; age as a word when @p invalid.
 * @returns a malloc'd string, or NULL on out of memory.
 */
static char *sim_person_json(const struct sim_person *p, bool invalid)
{
	struct json_object *o;
	const char *s;
	char *out = NULL;

	o = json_object_new_object();
	if (!o)
		return NULL;
	if (json_object_object_add(o, "name",
		    json_object_new_string_len(p->name, (int)p->name_len)) ||
	    json_object_object_add(o, "age", invalid ?
		    json_object_new_string("thirty") :
		    json_object_new_int(p->age)) ||
	    json_object_object_add(o, "occupation",
		    json_object_new_string_len(p->occupation,
					       (int)p->occupation_len)))
		goto out;
	s = json_object_to_json_string_ext(o, SIM_JSON_FLAGS);
	if (s)
		out = strdup(s);
out:
	json_object_put(o);
	return out;
}

int sim_extract_answer(const struct sim_extract *x, const char *text,
		       size_t len, bool invalid, char **ret_content,
		       struct sim_script *ret_script)
{
	static const struct sim_person unknown = {
		.name = "Unknown", .name_len = 7,
		.occupation = "unknown", .occupation_len = 7,
	};
	struct sim_person p;
	char *content;
	size_t i;
	int r;

	if (ret_script)
		*ret_script = (struct sim_script){ .delay_ms = -1,
						   .retry_after_s = -1 };
	if (len > INT32_MAX)
		len = INT32_MAX;	/* json-c lengths are int */
	if (!invalid) {
		for (i = 0; i < x->n_rules; i++) {
			if (!sim_contains(text, len, x->rules[i].match,
					  x->rules[i].match_len))
				continue;
			if (x->rules[i].times &&
			    atomic_fetch_add(&x->rules[i].used, 1) >=
				    x->rules[i].times)
				continue;	/* spent */
			content = strdup(x->rules[i].content);
			if (!content)
				return -ENOMEM;
			*ret_content = content;
			if (ret_script)
				*ret_script = (struct sim_script){
					.delay_ms = x->rules[i].delay_ms,
					.status = x->rules[i].status,
					.echo_headers = x->rules[i].echo_headers,
					.type = x->rules[i].type,
					.code = x->rules[i].code,
					.retry_after_s =
						x->rules[i].retry_after_s,
					.retry_after_date =
						x->rules[i].retry_after_date,
				};
			return 0;
		}
	}
	r = sim_person_match(x, text, len, &p);
	if (r < 0)
		return r;
	if (r == 0 && !invalid) {
		*ret_content = NULL;	/* refusal */
		return 0;
	}
	content = sim_person_json(r ? &p : &unknown, invalid);
	if (!content)
		return -ENOMEM;
	*ret_content = content;
	return 0;
}

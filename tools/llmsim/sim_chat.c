/*
 * sim_chat.c - the chat-completions wire format: reading a request,
 * writing OpenAI-shaped answers and errors.
 *
 * Pure functions over json-c objects; no shared state, so any thread may
 * call them.
 */
#include "sim_chat.h"
#include "sim_util.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#define SIM_JSON_DEPTH	64		/**< nesting accepted in a request */
#define SIM_JSON_FLAGS	(JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define SIM_MD_HEAD	"Here is the extracted information:\n\n```json\n"
#define SIM_MD_TAIL	"\n```"

static const char *const sim_mode_names[SIM_MODE_COUNT] = {
	[SIM_MODE_JSON_SCHEMA] = "json_schema",
	[SIM_MODE_TOOLS] = "tools",
	[SIM_MODE_JSON_OBJECT] = "json_object",
	[SIM_MODE_MD_JSON] = "md_json",
	[SIM_MODE_JSON_OBJECT_SCHEMA] = "json_object_schema",
};

const char *sim_mode_name(enum sim_mode m)
{
	return m < SIM_MODE_COUNT ? sim_mode_names[m] : "unknown";
}

/** A string member of @p o, or NULL. Borrowed from @p o. */
static const char *sim_get_string(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

/**
 * @brief The text of a message content: a string, or an array of parts
 * whose "text" parts are joined with nothing between them. Other parts
 * (images...) and a null content count as no text.
 *
 * With @p out NULL only the length is computed.
 * @returns 0 with *ret_len set, or -EINVAL for a malformed content.
 */
static int sim_content_text(struct json_object *content, char *out,
			    size_t *ret_len)
{
	struct json_object *part, *text;
	size_t n = 0, len, i, count;

	if (!content || json_object_is_type(content, json_type_null)) {
		*ret_len = 0;
		return 0;
	}
	if (json_object_is_type(content, json_type_string)) {
		len = (size_t)json_object_get_string_len(content);
		if (out)
			memcpy(out, json_object_get_string(content), len);
		*ret_len = len;
		return 0;
	}
	if (!json_object_is_type(content, json_type_array))
		return -EINVAL;
	count = json_object_array_length(content);
	for (i = 0; i < count; i++) {
		part = json_object_array_get_idx(content, i);
		if (!json_object_is_type(part, json_type_object))
			return -EINVAL;
		if (!json_object_object_get_ex(part, "text", &text))
			continue;
		if (!json_object_is_type(text, json_type_string))
			return -EINVAL;
		len = (size_t)json_object_get_string_len(text);
		if (out)
			memcpy(out + n, json_object_get_string(text), len);
		n += len;
	}
	*ret_len = n;
	return 0;
}

/** Bytes of the tool-call arguments an assistant message carries. */
static size_t sim_tool_call_bytes(struct json_object *msg)
{
	struct json_object *calls, *call, *fn, *args;
	size_t n = 0, i, count;

	if (!json_object_object_get_ex(msg, "tool_calls", &calls) ||
	    !json_object_is_type(calls, json_type_array))
		return 0;
	count = json_object_array_length(calls);
	for (i = 0; i < count; i++) {
		call = json_object_array_get_idx(calls, i);
		if (json_object_object_get_ex(call, "function", &fn) &&
		    json_object_object_get_ex(fn, "arguments", &args) &&
		    json_object_is_type(args, json_type_string))
			n += (size_t)json_object_get_string_len(args);
	}
	return n;
}

/**
 * @brief The function name a tools-mode request forces: tool_choice's
 * function.name, else the first tool's, else "extract".
 */
static const char *sim_tool_name(struct json_object *root,
				 struct json_object *tools)
{
	struct json_object *choice, *fn, *tool;
	const char *name;

	if (json_object_object_get_ex(root, "tool_choice", &choice) &&
	    json_object_object_get_ex(choice, "function", &fn) &&
	    (name = sim_get_string(fn, "name")))
		return name;
	tool = json_object_array_get_idx(tools, 0);
	if (json_object_object_get_ex(tool, "function", &fn) &&
	    (name = sim_get_string(fn, "name")))
		return name;
	return "extract";
}

/**
 * @brief Walk the messages: sum content bytes, find the first user
 * message (*ret_user), note assistant messages (a re-ask).
 * @returns 0, or -EINVAL with the reason in @p err.
 */
static int sim_scan_messages(struct json_object *messages,
			     struct sim_chat_req *req,
			     struct json_object **ret_user, char *err,
			     size_t errlen)
{
	struct json_object *msg, *content;
	const char *role;
	size_t i, count, len, before_user = 0;

	count = json_object_array_length(messages);
	for (i = 0; i < count; i++) {
		msg = json_object_array_get_idx(messages, i);
		if (!json_object_is_type(msg, json_type_object) ||
		    !(role = sim_get_string(msg, "role"))) {
			sim_errf(err, errlen,
				 "Invalid value for 'messages[%zu]': expected an object with a 'role'.",
				 i);
			return -EINVAL;
		}
		content = NULL;
		json_object_object_get_ex(msg, "content", &content);
		if (sim_content_text(content, NULL, &len)) {
			sim_errf(err, errlen,
				 "Invalid value for 'messages[%zu].content': expected a string or an array of content parts.",
				 i);
			return -EINVAL;
		}
		if (strcmp(role, "user") == 0) {
			/* The prefix so far is what precedes this one. */
			req->prefix_bytes = before_user;
			req->last_user = i;
		}
		req->prompt_bytes += len + sim_tool_call_bytes(msg);
		before_user = req->prompt_bytes;
		if (!*ret_user && strcmp(role, "user") == 0)
			*ret_user = msg;
		if (strcmp(role, "assistant") == 0)
			req->reask = true;
	}
	if (!*ret_user) {
		sim_errf(err, errlen,
			 "'messages' must contain at least one message with role 'user'.");
		return -EINVAL;
	}
	return 0;
}

/** FNV-1a over @p len bytes, continuing from @p h. */
static uint64_t sim_fnv(uint64_t h, const void *p, size_t len)
{
	const unsigned char *c = p;

	while (len--) {
		h ^= *c++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/** Adds @p o's JSON text (or a marker for absent) to hash @p h. */
static uint64_t sim_fnv_json(uint64_t h, struct json_object *o)
{
	const char *s = o ? json_object_to_json_string_ext(
				    o, JSON_C_TO_STRING_PLAIN)
			  : "\x01";

	return sim_fnv(h, s, strlen(s) + 1); /* the NUL separates */
}

/**
 * The hash of what a provider's prompt cache keys on, the last user
 * message aside: the model, the tool and schema definitions, and the
 * messages before the last user message.
 */
static uint64_t sim_prefix_hash(struct json_object *root,
				struct json_object *messages,
				size_t last_user)
{
	static const char *const keys[] = { "model", "tools", "tool_choice",
					    "response_format" };
	uint64_t h = 0xcbf29ce484222325ULL;
	struct json_object *v;
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		h = sim_fnv_json(h, json_object_object_get_ex(root, keys[i],
							      &v) ? v : NULL);
	for (i = 0; i < last_user; i++)
		h = sim_fnv_json(h, json_object_array_get_idx(messages, i));
	return h;
}

int64_t sim_prefix_tokens(size_t bytes)
{
	return (int64_t)(bytes / 4);
}

int sim_chat_parse(const char *body, size_t len, struct sim_chat_req *ret,
		   char *err, size_t errlen)
{
	struct json_tokener *tok = NULL;
	struct json_object *root = NULL, *messages, *user = NULL, *content;
	struct json_object *rf, *tools = NULL, *stream;
	const char *type = NULL, *model;
	size_t end;
	int r = -EINVAL;

	memset(ret, 0, sizeof(*ret));
	if (len > INT32_MAX) {
		sim_errf(err, errlen, "Request body too large.");
		goto out;
	}
	tok = json_tokener_new_ex(SIM_JSON_DEPTH);
	if (!tok) {
		r = -ENOMEM;
		goto out;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, body, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success) {
		sim_errf(err, errlen,
			 "We could not parse the JSON body of your request. (%s)",
			 json_tokener_error_desc(json_tokener_get_error(tok)));
		goto out;
	}
	for (end = json_tokener_get_parse_end(tok); end < len; end++) {
		if (!strchr(" \t\r\n", body[end]) || body[end] == '\0') {
			sim_errf(err, errlen,
				 "We could not parse the JSON body of your request. (trailing data)");
			goto out;
		}
	}
	if (!json_object_is_type(root, json_type_object)) {
		sim_errf(err, errlen, "The request body must be a JSON object.");
		goto out;
	}
	if (json_object_object_get_ex(root, "stream", &stream) &&
	    json_object_get_boolean(stream)) {
		sim_errf(err, errlen, "llmsim does not stream: set 'stream' to false.");
		goto out;
	}
	if (!json_object_object_get_ex(root, "messages", &messages) ||
	    !json_object_is_type(messages, json_type_array)) {
		sim_errf(err, errlen, "'messages' is a required property");
		goto out;
	}
	if (json_object_array_length(messages) == 0) {
		sim_errf(err, errlen, "[] is too short - 'messages'");
		goto out;
	}
	r = sim_scan_messages(messages, ret, &user, err, errlen);
	if (r)
		goto out;
	ret->prefix_hash = sim_prefix_hash(root, messages, ret->last_user);

	if (json_object_object_get_ex(root, "response_format", &rf))
		type = sim_get_string(rf, "type");
	if (json_object_object_get_ex(root, "tools", &tools) &&
	    (!json_object_is_type(tools, json_type_array) ||
	     json_object_array_length(tools) == 0))
		tools = NULL;
	if (type && strcmp(type, "json_schema") == 0)
		ret->mode = SIM_MODE_JSON_SCHEMA;
	else if (tools)
		ret->mode = SIM_MODE_TOOLS;
	else if (type && strcmp(type, "json_object") == 0)
		ret->mode = json_object_object_get_ex(rf, "schema", NULL)
				    ? SIM_MODE_JSON_OBJECT_SCHEMA
				    : SIM_MODE_JSON_OBJECT;
	else
		ret->mode = SIM_MODE_MD_JSON;
	{
		struct json_object *mt;

		if (json_object_object_get_ex(root, "max_tokens", &mt) &&
		    json_object_is_type(mt, json_type_int) &&
		    json_object_get_int64(mt) > 0)
			ret->max_tokens = (long)json_object_get_int64(mt);
	}

	r = -ENOMEM;
	model = sim_get_string(root, "model");
	ret->model = strdup(model ? model : "llmsim");
	if (!ret->model)
		goto out;
	if (ret->mode == SIM_MODE_TOOLS) {
		struct json_object *choice;

		ret->tool_name = strdup(sim_tool_name(root, tools));
		ret->tool_forced =
			json_object_object_get_ex(root, "tool_choice", &choice) &&
			json_object_is_type(choice, json_type_object);
		if (!ret->tool_name)
			goto out;
	}
	content = NULL;
	json_object_object_get_ex(user, "content", &content);
	sim_content_text(content, NULL, &ret->text_len);	/* checked */
	ret->text = malloc(ret->text_len + 1);
	if (!ret->text)
		goto out;
	sim_content_text(content, ret->text, &ret->text_len);
	ret->text[ret->text_len] = '\0';
	r = 0;
out:
	if (r)
		sim_chat_req_done(ret);
	json_object_put(root);
	if (tok)
		json_tokener_free(tok);
	return r;
}

void sim_chat_req_done(struct sim_chat_req *req)
{
	free(req->model);
	free(req->text);
	free(req->tool_name);
	req->model = req->text = req->tool_name = NULL;
}


/** Tokens for @p bytes of text: about four bytes a token, at least one. */
static int64_t sim_tokens(size_t bytes)
{
	return bytes / 4 ? (int64_t)(bytes / 4) : 1;
}

/** A new object attached to @p parent under @p key; NULL on OOM. */
static struct json_object *sim_add_object(struct json_object *parent,
					  const char *key)
{
	struct json_object *o = json_object_new_object();

	return sim_add(parent, key, o) ? o : NULL;
}

/**
 * @brief Cut an answer of *len bytes to the request's max_tokens (four
 * bytes a token, on a UTF-8 character boundary). @returns whether it was
 * cut.
 */
static bool sim_cut(const struct sim_chat_req *req, const char *s,
		    size_t *len)
{
	size_t max;

	if (req->max_tokens <= 0 ||
	    (size_t)req->max_tokens > SIZE_MAX / 4 ||
	    *len <= (size_t)req->max_tokens * 4)
		return false;
	max = (size_t)req->max_tokens * 4;
	while (max && ((unsigned char)s[max] & 0xC0) == 0x80)
		max--;
	*len = max;
	return true;
}

/**
 * @brief Fill choices[0].message @p msg with the answer; report the finish
 * reason and the answer's size. Every object is attached to its parent as
 * soon as it exists, so on failure the caller frees the whole tree.
 * @returns false on out of memory.
 */
static bool sim_message(struct json_object *msg,
			const struct sim_chat_req *req, const char *content,
			uint64_t seq, const char *cut_finish,
			const char **ret_finish, size_t *ret_bytes)
{
	struct json_object *calls, *call, *fn;
	char id[32], *md;
	size_t len;
	bool ok, cut;

	*ret_finish = "stop";
	if (!sim_add(msg, "role", json_object_new_string("assistant")))
		return false;
	if (!content) {
		*ret_bytes = strlen(SIM_REFUSAL);
		return sim_add_null(msg, "content") &&
		       sim_add(msg, "refusal",
			       json_object_new_string(SIM_REFUSAL));
	}
	len = strlen(content);
	cut = sim_cut(req, content, &len);
	*ret_bytes = len;
	switch (req->mode) {
	case SIM_MODE_TOOLS:
		/* OpenAI ends a call forced by tool_choice with "stop". */
		*ret_finish = cut ? cut_finish
				  : req->tool_forced ? "stop" : "tool_calls";
		snprintf(id, sizeof(id), "call_%016llx",
			 (unsigned long long)seq);
		if (!sim_add_null(msg, "content"))
			return false;
		calls = json_object_new_array();
		if (!sim_add(msg, "tool_calls", calls))
			return false;
		call = json_object_new_object();
		if (!call || json_object_array_add(calls, call)) {
			json_object_put(call);
			return false;
		}
		if (!sim_add(call, "id", json_object_new_string(id)) ||
		    !sim_add(call, "type", json_object_new_string("function")))
			return false;
		fn = sim_add_object(call, "function");
		return fn &&
		       sim_add(fn, "name",
			       json_object_new_string(req->tool_name)) &&
		       sim_add(fn, "arguments",
			       json_object_new_string_len(content, (int)len)) &&
		       sim_add_null(msg, "refusal");
	case SIM_MODE_MD_JSON:
		md = malloc(sizeof(SIM_MD_HEAD) + len + sizeof(SIM_MD_TAIL));
		if (!md)
			return false;
		memcpy(md, SIM_MD_HEAD, sizeof(SIM_MD_HEAD) - 1);
		memcpy(md + sizeof(SIM_MD_HEAD) - 1, content, len);
		memcpy(md + sizeof(SIM_MD_HEAD) - 1 + len, SIM_MD_TAIL,
		       sizeof(SIM_MD_TAIL));
		len = strlen(md);
		cut = sim_cut(req, md, &len) || cut;
		if (cut)
			*ret_finish = cut_finish;
		*ret_bytes = len;
		ok = sim_add(msg, "content",
			     json_object_new_string_len(md, (int)len));
		free(md);
		return ok && sim_add_null(msg, "refusal");
	default:
		if (cut)
			*ret_finish = cut_finish;
		return sim_add(msg, "content",
			       json_object_new_string_len(content, (int)len)) &&
		       sim_add_null(msg, "refusal");
	}
}

/* content filtered: no content, no refusal, no tool call */
static bool sim_filtered_message(struct json_object *msg)
{
	return sim_add(msg, "role", json_object_new_string("assistant")) &&
	       sim_add_null(msg, "content") && sim_add_null(msg, "refusal");
}

/* The first half of s, not cutting a UTF-8 sequence; malloc'd. */
static char *sim_first_half(const char *s)
{
	size_t n = strlen(s) / 2;
	char *half;

	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	half = malloc(n + 1);
	if (half) {
		memcpy(half, s, n);
		half[n] = '\0';
	}
	return half;
}

int sim_chat_completion(const struct sim_chat_req *req, const char *content,
			enum sim_finish how, uint64_t seq, time_t created,
			const char *cut_finish, int64_t cached,
			int64_t reasoning, char **ret_body, size_t *ret_len,
			uint64_t *ret_tokens)
{
	struct json_object *o, *choices, *choice, *msg, *usage, *details;
	const char *finish = "stop", *s;
	size_t answer_bytes = 0, len;
	int64_t prompt, completion;
	char id[48], *body, *half = NULL;
	int r = -ENOMEM;

	if (how == SIM_FINISH_LENGTH && content) {
		half = sim_first_half(content);
		if (!half)
			return -ENOMEM;
		content = half;
	}

	o = json_object_new_object();
	if (!o) {
		free(half);
		return -ENOMEM;
	}
	snprintf(id, sizeof(id), "chatcmpl-llmsim%016llx",
		 (unsigned long long)seq);
	if (!sim_add(o, "id", json_object_new_string(id)) ||
	    !sim_add(o, "object", json_object_new_string("chat.completion")) ||
	    !sim_add(o, "created", json_object_new_int64((int64_t)created)) ||
	    !sim_add(o, "model", json_object_new_string(req->model)))
		goto out;

	choices = json_object_new_array();
	if (!sim_add(o, "choices", choices))
		goto out;
	choice = json_object_new_object();
	if (!choice || json_object_array_add(choices, choice)) {
		json_object_put(choice);
		goto out;
	}
	if (!sim_add(choice, "index", json_object_new_int(0)))
		goto out;
	msg = sim_add_object(choice, "message");
	if (!msg)
		goto out;
	if (how == SIM_FINISH_FILTERED) {
		if (!sim_filtered_message(msg))
			goto out;
		finish = "content_filter";
	} else if (!sim_message(msg, req, content, seq, cut_finish, &finish,
				&answer_bytes)) {
		goto out;
	}
	if (how == SIM_FINISH_LENGTH && content)
		finish = "length";
	if (!sim_add_null(choice, "logprobs") ||
	    !sim_add(choice, "finish_reason", json_object_new_string(finish)))
		goto out;

	prompt = sim_tokens(req->prompt_bytes);
	completion = sim_tokens(answer_bytes) + reasoning;
	usage = sim_add_object(o, "usage");
	if (!usage ||
	    !sim_add(usage, "prompt_tokens", json_object_new_int64(prompt)) ||
	    !sim_add(usage, "completion_tokens",
		     json_object_new_int64(completion)) ||
	    !sim_add(usage, "total_tokens",
		     json_object_new_int64(prompt + completion)))
		goto out;
	details = sim_add_object(usage, "prompt_tokens_details");
	if (!details ||
	    !sim_add(details, "cached_tokens", json_object_new_int64(cached)))
		goto out;
	details = sim_add_object(usage, "completion_tokens_details");
	if (!details ||
	    !sim_add(details, "reasoning_tokens",
		     json_object_new_int64(reasoning)) ||
	    !sim_add(o, "system_fingerprint",
		     json_object_new_string("fp_llmsim")))
		goto out;

	s = json_object_to_json_string_length(o, SIM_JSON_FLAGS, &len);
	if (!s)
		goto out;
	body = malloc(len + 1);
	if (!body)
		goto out;
	memcpy(body, s, len + 1);
	*ret_body = body;
	*ret_len = len;
	*ret_tokens = (uint64_t)(prompt + completion);
	r = 0;
out:
	json_object_put(o);
	free(half);
	return r;
}

char *sim_chat_error(const char *message, const char *type, const char *param,
		     const char *code)
{
	struct json_object *o, *e;
	const char *s;
	char *out = NULL;

	o = json_object_new_object();
	e = json_object_new_object();
	if (!o || !e) {
		json_object_put(o);
		json_object_put(e);
		return NULL;
	}
	if (!sim_add(o, "error", e))
		goto out;
	if (!sim_add(e, "message", json_object_new_string(message)) ||
	    !sim_add(e, "type", json_object_new_string(type)) ||
	    !(param ? sim_add(e, "param", json_object_new_string(param)) :
		      sim_add_null(e, "param")) ||
	    !(code ? sim_add(e, "code", json_object_new_string(code)) :
		     sim_add_null(e, "code")))
		goto out;
	s = json_object_to_json_string_ext(o, SIM_JSON_FLAGS);
	if (s)
		out = strdup(s);
out:
	json_object_put(o);
	return out;
}

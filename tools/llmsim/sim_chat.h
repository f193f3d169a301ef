/*
 * sim_chat.h - the chat-completions wire format: reading a request,
 * writing OpenAI-shaped answers and errors.
 */
#ifndef LLMSIM_SIM_CHAT_H
#define LLMSIM_SIM_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/** What the model says when it will not answer. */
#define SIM_REFUSAL	"I'm sorry, I can't help with that."

/** How the request asks for structured output. */
enum sim_mode {
	SIM_MODE_JSON_SCHEMA,	/**< response_format.type "json_schema" */
	SIM_MODE_TOOLS,		/**< tools, one forced function */
	SIM_MODE_JSON_OBJECT,	/**< response_format.type "json_object" */
	SIM_MODE_MD_JSON,	/**< none: a fenced ```json block */
	SIM_MODE_JSON_OBJECT_SCHEMA, /**< json_object with a "schema" member
				       *  (llama.cpp's, vLLM's grammar) */
	SIM_MODE_COUNT,
};

/** The parts of a request llmsim looks at. Free with sim_chat_req_done(). */
struct sim_chat_req {
	enum sim_mode mode;
	char *model;		/**< echoed back */
	char *text;		/**< first user message, text parts joined */
	size_t text_len;	/**< may contain NUL bytes */
	char *tool_name;	/**< forced (or first) tool, tools mode only */
	bool tool_forced;	/**< tool_choice names a function */
	size_t prompt_bytes;	/**< bytes of every message content */
	size_t prefix_bytes;	/**< of prompt_bytes, before the last user
				 *  message (the cacheable prefix) */
	size_t last_user;	/**< index of the last user message */
	uint64_t prefix_hash;	/**< FNV-1a of that prefix: model, tools,
				 *  tool_choice, response_format and the
				 *  messages before the last user message */
	bool reask;		/**< an assistant message is present */
	long max_tokens;	/**< the request's max_tokens, 0 when none */
};

/** "json_schema", "tools", "json_object", "md_json" or
 * "json_object_schema". */
const char *sim_mode_name(enum sim_mode m);

/**
 * @brief Read a chat-completions request body.
 * @returns 0 with *ret filled; -EINVAL with a client-facing reason in
 * @p err (answer 400); -ENOMEM.
 */
int sim_chat_parse(const char *body, size_t len, struct sim_chat_req *ret,
		   char *err, size_t errlen);

/** Free what sim_chat_parse() allocated. Accepts a zeroed struct. */
void sim_chat_req_done(struct sim_chat_req *req);

/** A prefix of @p bytes in prompt tokens, as prompt_tokens counts them
 * (four bytes a token), but 0 for an empty prefix. */
int64_t sim_prefix_tokens(size_t bytes);

/** How an answer ends (finish_reason), past the mode's usual one. */
enum sim_finish {
	SIM_FINISH_DONE,	/**< "stop" (or "tool_calls"): the whole answer */
	SIM_FINISH_LENGTH,	/**< "length": cut at the token limit */
	SIM_FINISH_FILTERED,	/**< "content_filter": content withheld (null) */
};

/**
 * @brief The chat.completion body answering @p req with @p content (JSON
 * text put where the mode wants it), or a refusal when @p content is NULL.
 * @p finish SIM_FINISH_LENGTH sends the first half of @p content (cut on a
 * UTF-8 boundary) with finish_reason "length"; SIM_FINISH_FILTERED sends
 * no content at all, no refusal and finish_reason "content_filter", as
 * OpenAI and Azure do when their filter withholds an answer. Else an
 * answer longer than the request's max_tokens (four bytes a token) is
 * cut there, and its finish_reason is @p cut_finish ("length", as OpenAI
 * says; some servers say "tool_calls" or "stop"). @p seq makes the
 * response and tool-call ids unique. The usage reports @p cached of the
 * prompt tokens in prompt_tokens_details.cached_tokens, and @p reasoning
 * tokens more in completion_tokens, as completion_tokens_details.
 * reasoning_tokens (OpenAI's shape: both details always present).
 * @returns 0 with *ret_body malloc'd (*ret_len bytes, NUL-terminated) and
 * *ret_tokens its usage.total_tokens, or -ENOMEM.
 */
int sim_chat_completion(const struct sim_chat_req *req, const char *content,
			enum sim_finish finish, uint64_t seq, time_t created,
			const char *cut_finish, int64_t cached,
			int64_t reasoning, char **ret_body, size_t *ret_len,
			uint64_t *ret_tokens);

/**
 * @brief An OpenAI error body:
 * {"error":{"message":..,"type":..,"param":..,"code":..}}.
 * @p param and @p code may be NULL (sent as null).
 * @returns a malloc'd string, or NULL on out of memory.
 */
char *sim_chat_error(const char *message, const char *type, const char *param,
		     const char *code);

#endif /* LLMSIM_SIM_CHAT_H */

/*
 * fuzz_llm_reply: llm_parse_reply() on arbitrary answer bodies.
 *
 * Input: the first byte picks the mode (json_schema, json_object_schema,
 * tools, json_object, md_json: byte % 5), the rest is the HTTP body as
 * the API sent it.
 *
 * Checked, beyond the sanitizers: the return is 0 or -1; on 0 exactly one
 * of answer and refusal is set (or neither, when finish_reason is
 * content_filter: the answer was withheld), neither longer than the body (JSON
 * unescaping never grows text); on -1 both are NULL and err holds a
 * non-empty reason; what was said comes with the answer, and the answer
 * is a piece of it; the fixed-size fields are NUL-terminated; clearing
 * twice is harmless.
 */
#include "llm.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                    \
	do {                                                                \
		if (!(cond))                                                \
			__builtin_trap();                                   \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum cfg_llm_mode modes[] = {
		CFG_MODE_JSON_SCHEMA, CFG_MODE_JSON_OBJECT_SCHEMA,
		CFG_MODE_TOOLS, CFG_MODE_JSON_OBJECT, CFG_MODE_MD_JSON,
	};
	struct llm_reply reply;
	enum cfg_llm_mode mode;
	const char *body;
	size_t len;
	char err[256];
	int r;

	if (size < 1)
		return 0;
	mode = modes[data[0] % 5];
	/* The body is the rest of libFuzzer's buffer, not NUL-terminated,
	 * exactly as large as the input: a read past it is an ASan report. */
	body = (const char *)data + 1;
	len = size - 1;

	memset(&reply, 0xA5, sizeof(reply));
	err[0] = '\0';
	r = llm_parse_reply(mode, body, len, &reply, err, sizeof(err));
	FUZZ_CHECK(r == 0 || r == -1);
	FUZZ_CHECK(memchr(reply.finish_reason, '\0',
			  sizeof(reply.finish_reason)));
	FUZZ_CHECK(memchr(reply.model, '\0', sizeof(reply.model)));
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)));
	if (r == 0) {
		FUZZ_CHECK(!reply.answer != !reply.refusal ||
			   (!reply.answer && !reply.refusal &&
			    !strcmp(reply.finish_reason, "content_filter")));
		if (reply.answer) {
			FUZZ_CHECK(reply.said);
			FUZZ_CHECK(strlen(reply.answer) <= strlen(reply.said));
			FUZZ_CHECK(strlen(reply.said) <= len);
		}
		if (reply.refusal)
			FUZZ_CHECK(strlen(reply.refusal) <= len);
	} else {
		FUZZ_CHECK(!reply.answer && !reply.refusal && !reply.said);
		FUZZ_CHECK(err[0] != '\0');
	}
	llm_reply_clear(&reply);
	FUZZ_CHECK(!reply.answer && !reply.refusal);
	llm_reply_clear(&reply);
	return 0;
}

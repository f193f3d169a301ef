/*
 * fuzz_batch_output: batch_output_parse() on arbitrary lines of a batch's
 * output or error file (what the Batch API, or whatever answers at its
 * address, sends back).
 *
 * Input: the whole buffer is one line, as the caller cuts it (without its
 * newline; not NUL-terminated, so a read past it is an ASan report).
 *
 * Checked, beyond the sanitizers: the return is 0 or -1; on 0 the
 * custom_id is set, the status is 0 or an HTTP status (100..599), a body
 * comes only with a status and is body_len bytes long, and a line with no
 * status names an error code; on -1 nothing is left allocated and err
 * holds a reason; the fixed-size fields are NUL-terminated; clearing
 * twice is harmless.
 */
#include "batch.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FUZZ_CHECK(cond)                                                    \
	do {                                                                \
		if (!(cond))                                                \
			__builtin_trap();                                   \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct batch_output o;
	char err[256];
	int r;

	err[0] = '\0';
	r = batch_output_parse((const char *)data, size, &o, err, sizeof(err));
	FUZZ_CHECK(r == 0 || r == -1);
	FUZZ_CHECK(memchr(err, '\0', sizeof(err)));
	FUZZ_CHECK(memchr(o.error_code, '\0', sizeof(o.error_code)));
	FUZZ_CHECK(memchr(o.error_message, '\0', sizeof(o.error_message)));
	if (r == 0) {
		FUZZ_CHECK(o.custom_id);
		FUZZ_CHECK(o.status == 0 ||
			   (o.status >= 100 && o.status <= 599));
		FUZZ_CHECK(!o.body || o.status);
		FUZZ_CHECK(!o.body || strlen(o.body) == o.body_len);
		FUZZ_CHECK(o.status || o.error_code[0]);
	} else {
		FUZZ_CHECK(!o.custom_id && !o.body && err[0]);
	}
	batch_output_clear(&o);
	batch_output_clear(&o);
	return 0;
}

/* Unit tests for common/siphash: the reference vectors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "siphash.h"

/* The paper's key 00..0f over the messages 00..(n-1). */
static void reference_vectors(void **state)
{
	uint8_t key[SIPHASH_KEY_BYTES], msg[16];
	int i;

	(void)state;
	for (i = 0; i < 16; i++)
		key[i] = msg[i] = (uint8_t)i;
	assert_true(siphash24(key, msg, 0) == 0x726fdb47dd0e0e31ULL);
	assert_true(siphash24(key, msg, 1) == 0x74f839c593dc67fdULL);
	assert_true(siphash24(key, msg, 8) == 0x93f5f5799a932462ULL);
	assert_true(siphash24(key, msg, 15) == 0xa129ca6149be45e5ULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reference_vectors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * input: the checks an input text passes before any LLM call. A text that
 * fails one becomes a dead letter with extractd.error=input.
 */
#ifndef EXTRACTD_INPUT_H
#define EXTRACTD_INPUT_H

#include <stddef.h>

/**
 * @brief Check a text: not empty or blank, at most max_bytes, valid UTF-8
 * (no overlong forms, no surrogates, nothing above U+10FFFF), no NUL.
 * (utf8_check() in str.h checks UTF-8 alone, by the same rules.)
 * @param detail receives the reason when the text is refused
 * @returns 0 when the text may go to the model, -1 when refused.
 */
int input_check(const char *text, size_t len, size_t max_bytes,
		char *detail, size_t detail_size);

#endif

/*
 * sim_extract.h - the simulated model's "understanding": the Person regex
 * and the scripted answers file.
 */
#ifndef LLMSIM_SIM_EXTRACT_H
#define LLMSIM_SIM_EXTRACT_H

#include <stdbool.h>
#include <stddef.h>

struct sim_extract;

/**
 * @brief Compile the Person pattern and load @p answers_path (JSONL of
 * {"match": "substring", "content": ..., "delay_ms": N}, where "delay_ms"
 * is optional: when present, a non-negative integer that replaces
 * --latency-ms and --jitter-ms for that answer; NULL for no file).
 * @returns 0, or -1 with a message ("path:line: ...") in @p err.
 */
int sim_extract_new(const char *answers_path, struct sim_extract **ret,
		    char *err, size_t errlen);

/** Accepts NULL. */
void sim_extract_free(struct sim_extract *x);

/**
 * @brief The answer to the input text @p text (@p len bytes, any bytes).
 *
 * The first answers-file entry whose match occurs in the text wins and its
 * content comes back verbatim, with its "delay_ms" in *ret_delay_ms (-1
 * when the entry has none); otherwise the Person regex gives
 * {"name":..,"age":..,"occupation":..}; otherwise there is no answer (a
 * refusal). With @p invalid the answer is a Person that breaks the schema
 * ("age":"thirty"), built from the regex groups when they match.
 *
 * Safe to call from many threads at once (the compiled pattern and the
 * answers are read-only after sim_extract_new()).
 *
 * @param ret_delay_ms set to the matching entry's delay in ms, or to -1
 *        when no entry with a "delay_ms" answered (the caller's latency
 *        applies); may be NULL
 * @returns 0 with *ret_content a malloc'd NUL-terminated string (NULL for
 * a refusal), or -ENOMEM.
 */
int sim_extract_answer(const struct sim_extract *x, const char *text,
		       size_t len, bool invalid, char **ret_content,
		       long *ret_delay_ms);

#endif /* LLMSIM_SIM_EXTRACT_H */

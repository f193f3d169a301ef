/*
 * sim_extract.h - the simulated model's "understanding": the Person regex
 * and the scripted answers file.
 */
#ifndef LLMSIM_SIM_EXTRACT_H
#define LLMSIM_SIM_EXTRACT_H

#include <stdbool.h>
#include <stddef.h>

struct sim_extract;

/** What the answers-file entry that answered says besides its content. */
struct sim_script {
	long delay_ms;		/**< "delay_ms", or -1: the usual latency */
	unsigned status;	/**< "status": an HTTP error to answer, or 0 */
	bool echo_headers;	/**< "echo_headers": the error's message
				 *   quotes the request's headers */
	const char *type;	/**< the error's type (set with status) */
	const char *code;	/**< the error's code, or NULL (JSON null) */
	long retry_after_s;	/**< "retry_after" or "retry_after_date": a
				 *   Retry-After header N s ahead, or -1 */
	bool retry_after_date;	/**< sent as an HTTP date, not seconds */
};

/**
 * @brief Compile the Person pattern and load @p answers_path (JSONL of
 * {"match": "substring", "content": ..., "delay_ms": N}, where "delay_ms"
 * is optional: when present, a non-negative integer that replaces
 * --latency-ms and --jitter-ms for that answer; NULL for no file). An
 * entry may instead script an HTTP error: {"match": ..., "status": 400,
 * "echo_headers": true, "content": "message", "type": ..., "code": ...,
 * "retry_after": N | "retry_after_date": N}, everything but "match" and
 * "status" (400..599) optional. Any entry may have "times": N, to answer
 * only the first N requests it matches (later ones go on to the next
 * entries and the regex).
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
 * content comes back verbatim, with what else it says in *ret_script
 * (for an error entry, the content is the error's message); otherwise the
 * Person regex gives {"name":..,"age":..,"occupation":..}; otherwise there
 * is no answer (a refusal). With @p invalid the answer is a Person that
 * breaks the schema ("age":"thirty"), built from the regex groups when
 * they match.
 *
 * Safe to call from many threads at once (the compiled pattern and the
 * answers are read-only after sim_extract_new(); the "times" counts are
 * atomics).
 *
 * @param ret_script set from the matching entry: its delay (-1 when it
 *        has none, or when no entry answered: the caller's latency
 *        applies) and its scripted error (status 0 for none); the strings
 *        live as long as @p x; may be NULL
 * @returns 0 with *ret_content a malloc'd NUL-terminated string (NULL for
 * a refusal), or -ENOMEM.
 */
int sim_extract_answer(const struct sim_extract *x, const char *text,
		       size_t len, bool invalid, char **ret_content,
		       struct sim_script *ret_script);

#endif /* LLMSIM_SIM_EXTRACT_H */

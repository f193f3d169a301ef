/*
 * schema: a JSON Schema validator for the subset OpenAI's strict structured
 * outputs accept (plus the numeric, string and array bounds around it).
 *
 * A schema is compiled once at start-up into an immutable tree; validation
 * walks that tree and the instance together, reads only, and may run in
 * many threads at once on the same compiled schema.
 */
#ifndef EXTRACTD_SCHEMA_H
#define EXTRACTD_SCHEMA_H

#include <stddef.h>

struct json_object;
struct schema;

/**
 * @brief Compile a schema document.
 * The document is not consumed: the schema takes its own reference.
 * @returns the compiled schema, or NULL with a readable reason in err
 *          (an unsupported keyword, a bad value, an unresolved $ref).
 */
struct schema *schema_compile(struct json_object *doc, char *err,
			      size_t err_size);

/**
 * @brief Read a file and compile the schema it holds.
 * @returns the compiled schema, or NULL with "PATH: reason" in err.
 */
struct schema *schema_load_file(const char *path, char *err, size_t err_size);

/** Free a compiled schema; NULL is fine. */
void schema_free(struct schema *s);

/** The schema document (borrowed), e.g. to send it to the model. */
struct json_object *schema_document(const struct schema *s);

/**
 * @brief Validate an instance.
 * Every error found is written to buf, one per line, as
 * "POINTER: message" with an RFC 6901 JSON pointer ("/lines/1/qty: 0 is
 * not greater than 0"; the root is written "/"). Lines that do not fit
 * are dropped whole and a last line "... N more errors" says so; buf is
 * always NUL-terminated (when buf_size > 0).
 * @returns 0 when the instance is valid, else the number of errors.
 */
unsigned schema_validate(const struct schema *s,
			 struct json_object *instance, char *buf,
			 size_t buf_size);

#endif

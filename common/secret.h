/*
 * secret: keep secrets out of everything extractd writes. Every exit
 * (log lines, dead-letter headers, error details, /readyz text, metrics
 * labels) passes its text through this one family of functions.
 *
 * Two kinds of thing are redacted, each replaced by "(redacted)":
 *
 *  - the registered secrets: what the daemon knows to be secret (the API
 *    key, the userinfo of llm.base_url, the secret kafka.properties
 *    values), as they are and as they read inside a JSON string (escaped
 *    once or twice, with and without "\/"), matched exactly;
 *  - by pattern, what nobody registered: the value of an Authorization,
 *    Proxy-Authorization, api-key or x-api-key header, written as a
 *    header line ("Authorization: Bearer sk-...") or inside JSON or
 *    quoted text ("authorization": "Bearer sk-...", 'api-key': '...'),
 *    the names in any case (an Authorization value keeps its scheme word:
 *    "Authorization: Bearer (redacted)"); a bare "Bearer <token>" whose
 *    token looks like one (8 or more token characters, a digit or
 *    punctuation among them); and the userinfo of a URL
 *    ("https://user:pass@host" reads "https://(redacted)@host").
 *
 * Redacting twice is harmless: a "(redacted)" marker is never redacted
 * again, so text redacted once (by common/ code, say) can be redacted
 * again where it leaves.
 *
 * Threads: secret_add() and secret_add_url() fill a static table before
 * any thread starts, secret_clear() empties it after they stopped; in
 * between the table is only read, so redaction is thread-safe and takes
 * no lock.
 */
#ifndef EXTRACTD_SECRET_H
#define EXTRACTD_SECRET_H

#include <stdbool.h>
#include <stddef.h>

#define SECRET_REDACTED "(redacted)"

/**
 * @brief Register a secret (a copy is kept). Call before threads start.
 * Secrets shorter than 4 bytes are not registered: they would blot out
 * ordinary words.
 * @returns 0, or -1 when out of memory or the table is full.
 */
int secret_add(const char *secret);

/**
 * @brief Register the userinfo of a URL ("scheme://user:pass@host/..."):
 * the "user:pass" pair and the password, as written and percent-decoded,
 * and the Basic credentials curl makes of them. No userinfo: nothing.
 * @returns 0, or -1 as secret_add().
 */
int secret_add_url(const char *url);

/** Forget every secret, wiping the copies; after the threads stopped. */
void secret_clear(void);

/**
 * @brief Write s[0..len) redacted to out, NUL-terminated, cut at the end
 * on a UTF-8 character boundary when it does not fit in size bytes.
 * out may be NULL when size is 0 (to measure).
 * @returns the length of the whole redacted text (as snprintf does: a
 *          value >= size means out was cut).
 */
size_t secret_redact(const char *s, size_t len, char *out, size_t size);

/**
 * @brief Redact the NUL-terminated string in buf (size bytes) in place,
 * cutting at the end on a UTF-8 character boundary if the replacements
 * make it longer than the buffer.
 */
void secret_redact_buf(char *buf, size_t size);

/** A malloc'ed redacted copy of s, or NULL when out of memory. */
char *secret_redacted(const char *s);

/** Whether s[0..len) holds anything secret_redact() would replace. */
bool secret_found(const char *s, size_t len);

#endif

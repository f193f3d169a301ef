/*
 * sim_batch.h - OpenAI's Files and Batch APIs, the subset a batch client
 * needs: upload a JSONL file, create a batch of chat completions from it,
 * follow it until it ends, download its output and error files, cancel
 * it, delete files.
 *
 * The store knows nothing of chat completions: each input line's body is
 * answered by a callback (llmsim.c's, which applies the usual extraction
 * and faults), when the batch's time is up.
 */
#ifndef LLMSIM_SIM_BATCH_H
#define LLMSIM_SIM_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** The largest file an upload may hold (OpenAI's batch input limit). */
#define SIM_BATCH_FILE_MAX	(200u << 20)

/** How one input line was answered. */
struct sim_batch_answer {
	unsigned status;	/**< the HTTP status; 0: no answer came (the
				 *   timeout fault: error request_timeout) */
	char *body;		/**< malloc'd answer body (status != 0) */
	size_t len;
	uint64_t seq;		/**< makes the line's request_id */
};

/**
 * @brief Answer the chat-completions request @p body (@p len bytes, a
 * JSON object's text). Called with the store's lock held, from the thread
 * that looked at the batch when its time was up.
 * @returns 0 with *ret filled, or -ENOMEM.
 */
typedef int (*sim_batch_answer_fn)(void *cls, const char *body, size_t len,
				   struct sim_batch_answer *ret);

struct sim_batch_opts {
	uint64_t delay_ms;	/**< --batch-delay-ms: in progress this long */
	unsigned long expire;	/**< --batch-expire: the first N batches
				 *   created expire instead of completing */
	const char *hold_file;	/**< --batch-hold: while it exists, batches
				 *   stay in progress; NULL: none */
	sim_batch_answer_fn answer;
	void *answer_cls;
};

/** The counters /stats shows. */
struct sim_batch_stats {
	uint64_t batches_created;	/**< POST /v1/batches accepted */
	uint64_t batch_requests;	/**< input lines answered */
	uint64_t batch_tokens;		/**< their usage.total_tokens */
	uint64_t files;			/**< files stored now */
	uint64_t file_bytes;		/**< their bytes */
};

/** An HTTP answer: status, malloc'd body, its content type. */
struct sim_batch_reply {
	unsigned status;
	char *body;
	size_t len;
	const char *content_type;	/**< static */
};

struct sim_batch;

/** @returns 0, or a negative errno. */
int sim_batch_new(const struct sim_batch_opts *opts, struct sim_batch **ret);

/** Accepts NULL. */
void sim_batch_free(struct sim_batch *b);

/** Whether @p url is one of the store's (/v1/files..., /v1/batches...). */
bool sim_batch_route(const char *url);

/**
 * @brief Answer one request to a URL sim_batch_route() took, with its
 * whole body. @p content_type is the request's Content-Type (for the
 * multipart upload), or NULL.
 * @returns 0 with *ret filled, or -ENOMEM.
 */
int sim_batch_handle(struct sim_batch *b, const char *method, const char *url,
		     const char *content_type, const char *body, size_t len,
		     struct sim_batch_reply *ret);

void sim_batch_stats(struct sim_batch *b, struct sim_batch_stats *ret);

/** Zero batches_created, batch_requests and batch_tokens. */
void sim_batch_stats_reset(struct sim_batch *b);

#endif /* LLMSIM_SIM_BATCH_H */

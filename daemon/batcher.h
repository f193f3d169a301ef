/*
 * batcher: records that can wait go to the LLM through OpenAI's Batch API
 * (batch.mode), at batch prices, and come back to the pipeline with their
 * answers.
 *
 * A consumer hands a record over (batcher_add) when batcher_route() says
 * so: always, or in backlog mode while its partition's lag is above
 * batch.min_backlog, and whenever the record is in a batch already in
 * flight (batchstate.h: a restart or a new owner finds it there). Its
 * offset is tracked in the partition's ledger as it arrives, so no commit
 * passes it until it is delivered.
 *
 * The batcher thread gathers each partition's records into a batch file
 * (at most batch.max_requests lines; closed after batch.max_wait_s), each
 * line the request the live path would send (llm_request_body, custom_id
 * "TOPIC/PARTITION/OFFSET"); uploads it, creates the batch, writes it to
 * the state topic; asks for its status every batch.poll_ms; when it is
 * over downloads the output file and admits each record to the pipeline
 * with its answer (pipeline_admit_answered: validated, re-asked live when
 * invalid, produced, delivered as any record). A record the batch did not
 * answer (an error line, an expired or failed batch, a refused upload)
 * goes to the live API instead: nothing is lost. Once the group's commit
 * has passed a batch's last offset its files are deleted and its state
 * forgotten.
 *
 * A revoked partition's records are given up (the next owner reads them
 * again and finds their batch in the state topic); so are all at the
 * stop. In offset order the pipeline's sequencer puts the answers back
 * in order, and a record that goes live after a batch of its partition
 * waits in the batcher until that batch's records have gone on (so it
 * holds no slot meanwhile, and other partitions never wait for it). Key
 * order and exactly-once are refused (config.c).
 *
 * DESIGN
 * ------
 * The batcher thread owns every batch, its records (their messages and a
 * ledger reference each) and the Batch API client; it calls out (HTTP,
 * the state topic, admission waits) holding no lock. Consumers reach it
 * through its inbox, under its one mutex: records added (each counted
 * for its partition under the same mutex, so a consumer can tell whether
 * a partition has records in the batcher), partitions revoked (the
 * consumer waits, bounded, until the thread has given their records up),
 * commit positions. The records it holds are counted in an atomic, which
 * batcher_full() reads.
 */
#ifndef EXTRACTD_BATCHER_H
#define EXTRACTD_BATCHER_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct batcher;
struct extractd_config;
struct http_share;
struct ledger;
struct llm;
struct pipeline;

/**
 * @brief A batcher for cfg (batch.mode not off), calling the API at
 * llm.base_url with api_key (kept, never logged), admitting answered
 * records to pl. Nothing runs until batcher_start().
 * @returns it, or NULL with err set.
 */
struct batcher *batcher_new(const struct extractd_config *cfg,
			    struct pipeline *pl, struct llm *llm,
			    const char *api_key, struct http_share *share,
			    char *err, size_t err_size);

/** Start its threads (the batcher's, the state's tail); -1 with err. */
int batcher_start(struct batcher *b, char *err, size_t err_size);

/** At the stop: cut the Batch API call in progress, wake the thread (it
 * leaves once the pipeline is stopping). Any thread; NULL is fine. */
void batcher_stop(struct batcher *b);

/**
 * @brief Join and free (its thread leaves once the pipeline is stopping,
 * giving every record it holds up); NULL is fine.
 */
void batcher_free(struct batcher *b);

/** Where a record goes. */
enum batcher_way {
	BATCHER_LIVE,  /**< the live API, as without batches */
	BATCHER_BATCH, /**< a batch */
	BATCHER_AFTER, /**< offset order: the live API, once the records of
			 *  its partition's batches before it have gone on
			 *  (until then it waits in the batcher, holding no
			 *  slot: a batch is one more reason to wait) */
};

/**
 * @brief Where a record goes: to a batch when it is in a batch in
 * flight, or batch.mode is always, or backlog with lag (records after it
 * in its partition) above batch.min_backlog; else live, or in offset
 * order after its partition's batches. A consumer thread.
 */
enum batcher_way batcher_route(struct batcher *b,
			       const rd_kafka_message_t *msg, int64_t lag);

/**
 * @brief Hand a record over (its offset tracked in part already), to a
 * batch or (after) to wait for its partition's batches: the batcher owns
 * msg now and holds a reference to part.
 */
void batcher_add(struct batcher *b, struct ledger *part,
		 rd_kafka_message_t *msg, bool after);

/**
 * @brief Offset order: a record of partition joined (delta 1) or left
 * (-1: admitted or dropped) a consumer's held queue. The batcher hands a
 * partition's records on only while none waits there (batcher.c,
 * may_go). A consumer thread.
 */
void batcher_live(struct batcher *b, int32_t partition, int delta);

/** Whether it holds batch.max_pending records or more: the input waits. */
bool batcher_full(struct batcher *b);

/**
 * @brief Before reading a partition just assigned: wait until the state
 * topic is read to its end, at most timeout_ms.
 * @returns 0, or -1 with the reason in err.
 */
int batcher_sync(struct batcher *b, unsigned timeout_ms, char *err,
		 size_t err_size);

/**
 * @brief Partitions are revoked: wait (at most timeout_ms in all) until
 * the batcher has given up their records (their offsets abandoned); a
 * partition it holds no record of is not waited for.
 */
void batcher_revoke(struct batcher *b,
		    const rd_kafka_topic_partition_list_t *parts,
		    unsigned timeout_ms);

/** Whether it holds records of partition (any thread). */
bool batcher_holds(struct batcher *b, int32_t partition);

/** The group committed position (the next offset to read) for a
 * partition: batches wholly before it are over. Any thread. */
void batcher_committed(struct batcher *b, int32_t partition,
		       int64_t position);

/** Records held now (in its inbox and its batches). Any thread. */
size_t batcher_pending(struct batcher *b);

#endif

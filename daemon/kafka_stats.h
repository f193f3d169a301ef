/*
 * kafka_stats: what extractd reads in librdkafka's statistics (the JSON
 * document given to the stats callback every statistics.interval.ms, see
 * librdkafka's STATISTICS.md): the consumer lag of the partitions a
 * consumer is assigned, and whether any broker is up.
 *
 * DESIGN
 * ------
 * Kafka's side of the lag metric: the document is parsed here, in
 * daemon/, and the lag handed to common/metrics through metrics_lag_set()
 * so that common/ knows nothing of Kafka. No state, no lock: each call
 * parses its own document (on the consumer's librdkafka thread).
 */
#ifndef EXTRACTD_KAFKA_STATS_H
#define EXTRACTD_KAFKA_STATS_H

#include <stdbool.h>
#include <stddef.h>

struct metrics;

/**
 * @brief Take one statistics document from consumer owner: the
 * consumer_lag of its assigned partitions (where known) replaces whatever
 * that consumer reported before.
 * @param ret_broker_up set to true when some broker is in state UP
 * @returns 0, or -1 when the document does not parse or memory runs out
 *          (the lag does not change)
 */
int kafka_stats_take(struct metrics *m, unsigned owner, const char *json,
		     size_t len, bool *ret_broker_up);

#endif

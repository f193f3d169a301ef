/*
 * sim_limit.c - OpenAI-style per-minute request and token budgets.
 *
 * Each budget is a token bucket of capacity B (the per-minute limit),
 * starting full and refilled at B/60000 per millisecond. A request needs
 * one unit of the request bucket and its estimated tokens from the token
 * bucket. "remaining" is the whole units left, "reset" the time until the
 * bucket is full again, and a refused request is told to retry once the
 * scarcer bucket would let it pass (at least one second, as Retry-After
 * counts whole seconds).
 */
#include "sim_limit.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>

#define SIM_MS_PER_MIN	60000.0

int sim_limit_init(struct sim_limit *l, unsigned long rpm, unsigned long tpm)
{
	int r;

	r = pthread_mutex_init(&l->lock, NULL);
	if (r)
		return -r;
	l->rpm = rpm;
	l->tpm = tpm;
	l->req_level = (double)rpm;
	l->tok_level = (double)tpm;
	l->last_ns = 0;
	return 0;
}

void sim_limit_done(struct sim_limit *l)
{
	pthread_mutex_destroy(&l->lock);
}

/** Milliseconds until a bucket of capacity @p cap goes from @p level to
 * @p want, rounded up. */
static uint64_t sim_bucket_wait(unsigned long cap, double level, double want)
{
	double ms;

	if (level >= want)
		return 0;
	ms = (want - level) * SIM_MS_PER_MIN / (double)cap;
	return (uint64_t)ceil(ms);
}

static double sim_bucket_refill(unsigned long cap, double level,
				double elapsed_ms)
{
	level += elapsed_ms * (double)cap / SIM_MS_PER_MIN;
	return level > (double)cap ? (double)cap : level;
}

bool sim_limit_take(struct sim_limit *l, unsigned long tokens,
		    uint64_t now_ns, struct sim_limit_state *ret)
{
	uint64_t wait_req = 0, wait_tok = 0;
	double elapsed_ms, cost;
	bool ok = true;

	ret->exceeded = NULL;
	ret->retry_after_ms = 0;
	if (!l->rpm && !l->tpm) {
		ret->limit_requests = SIM_LIMIT_UNLIMITED;
		ret->remaining_requests = SIM_LIMIT_UNLIMITED - 1;
		ret->reset_requests_ms = 0;
		ret->limit_tokens = SIM_LIMIT_UNLIMITED;
		ret->remaining_tokens = SIM_LIMIT_UNLIMITED;
		ret->reset_tokens_ms = 0;
		return true;
	}
	cost = (double)tokens;
	if (l->tpm && cost > (double)l->tpm)
		cost = (double)l->tpm;

	pthread_mutex_lock(&l->lock);
	if (l->last_ns && now_ns > l->last_ns) {
		elapsed_ms = (double)(now_ns - l->last_ns) / 1e6;
		if (l->rpm)
			l->req_level = sim_bucket_refill(l->rpm, l->req_level,
							 elapsed_ms);
		if (l->tpm)
			l->tok_level = sim_bucket_refill(l->tpm, l->tok_level,
							 elapsed_ms);
	}
	if (now_ns > l->last_ns)
		l->last_ns = now_ns;

	if (l->rpm)
		wait_req = sim_bucket_wait(l->rpm, l->req_level, 1.0);
	if (l->tpm)
		wait_tok = sim_bucket_wait(l->tpm, l->tok_level, cost);
	if (wait_req || wait_tok) {
		ok = false;
		ret->exceeded = wait_req >= wait_tok ? "requests" : "tokens";
		ret->retry_after_ms = wait_req > wait_tok ? wait_req : wait_tok;
	} else {
		if (l->rpm)
			l->req_level -= 1.0;
		if (l->tpm)
			l->tok_level -= cost;
	}

	if (l->rpm) {
		ret->limit_requests = l->rpm;
		ret->remaining_requests = (unsigned long)floor(l->req_level);
		ret->reset_requests_ms = sim_bucket_wait(l->rpm, l->req_level,
							 (double)l->rpm);
	} else {
		ret->limit_requests = SIM_LIMIT_UNLIMITED;
		ret->remaining_requests = SIM_LIMIT_UNLIMITED - 1;
		ret->reset_requests_ms = 0;
	}
	if (l->tpm) {
		ret->limit_tokens = l->tpm;
		ret->remaining_tokens = (unsigned long)floor(l->tok_level);
		ret->reset_tokens_ms = sim_bucket_wait(l->tpm, l->tok_level,
						       (double)l->tpm);
	} else {
		ret->limit_tokens = SIM_LIMIT_UNLIMITED;
		ret->remaining_tokens = SIM_LIMIT_UNLIMITED;
		ret->reset_tokens_ms = 0;
	}
	pthread_mutex_unlock(&l->lock);
	return ok;
}

void sim_limit_fmt_duration(uint64_t ms, char buf[SIM_DURATION_LEN])
{
	uint64_t h = ms / 3600000u, m = ms / 60000u % 60u;
	uint64_t s = ms / 1000u % 60u, frac = ms % 1000u;
	char sec[16];
	int n;

	if (ms == 0) {
		snprintf(buf, SIM_DURATION_LEN, "0s");
		return;
	}
	if (ms < 1000u) {
		snprintf(buf, SIM_DURATION_LEN, "%ums", (unsigned)ms);
		return;
	}
	if (frac) {
		/* "1.5s", "2.05s": three decimals, trailing zeros trimmed */
		n = snprintf(sec, sizeof(sec), "%u.%03u", (unsigned)s,
			     (unsigned)frac);
		while (n > 0 && sec[n - 1] == '0')
			sec[--n] = '\0';
	} else {
		snprintf(sec, sizeof(sec), "%u", (unsigned)s);
	}
	if (h)
		snprintf(buf, SIM_DURATION_LEN, "%lluh%um%ss",
			 (unsigned long long)h, (unsigned)m, sec);
	else if (m)
		snprintf(buf, SIM_DURATION_LEN, "%um%ss", (unsigned)m, sec);
	else
		snprintf(buf, SIM_DURATION_LEN, "%ss", sec);
}

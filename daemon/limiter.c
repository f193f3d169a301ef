/*
 * limiter: see limiter.h.
 *
 * DESIGN
 * ------
 * Two ceilings, and the live limit is the lower (never below min, never
 * above max): the controller's own limit (ctrl), moved by latency and
 * overload signals, and a cap paced from the provider's rate headers.
 *
 * Latency (servers without rate headers: llama.cpp, vLLM, Ollama). On a
 * server that runs C calls at once, calls beyond C only queue: latency
 * stays at the no-load latency (base) up to C in flight, then grows in
 * proportion, while throughput stays flat. So the limit we want is where
 * the latency starts to rise above base, and limit x base / latency is C
 * whenever there is a queue. The controller works in windows of about one
 * latency, counting only calls sent under the current limit (a call's
 * send time is now - latency). At the end of a window with mean latency
 * `short`:
 *   - short > TOLERANCE x base: a queue; the limit goes to
 *     limit x TOLERANCE x base / short, but at most halves per window;
 *   - otherwise the limit grows by sqrt(limit) (at least 1), unless the
 *     callers did not fill half of it (nothing learnt about more) or a
 *     429 asked to hold. TOLERANCE leaves a small standing queue, which
 *     keeps the server busy between a call's end and the next send.
 *
 * Where base comes from. Netflix's Gradient2 compares short with a slow
 * average of itself; that finds a queue that grows, but one that was
 * there from the start (a limit of 64 on an 8-slot server) is, to a slow
 * average, just the server's latency, and the limit never comes down. As
 * Envoy's adaptive concurrency and BBR do, base is measured instead: a
 * probe drops the limit to min until PROBE_SAMPLES calls sent at min have
 * come back, takes their mean latency as base, and restores the limit.
 * There is a probe at the start, and one when latency rose though we
 * did not add load (the window had no more in flight than the one
 * before). That rise has two causes a gradient cannot tell apart: our
 * own queue (the server lost capacity) or a slower server (longer
 * prompts, a bigger model); only a measurement at min can, and without
 * it a slower server would be cut again each window down to min. A sharp
 * rise (SHARP_RISE in one window) probes at once, unless a probe ended
 * less than PROBE_GAP_SHARP x base ago; a window whose latency did not
 * fall after a cut (the cuts are not helping: base may be stale) probes
 * at most every PROBE_GAP x base, as window noise also looks like that.
 * A window SHARP_RISE faster than base probes too (the server got
 * faster). Only probes set base: lowering it to any faster window would
 * ratchet it down to the luckiest window of a noisy server, and the
 * limit with it (in simulation, a 4-slot server with +-50% service time
 * jitter lost a tenth of its throughput that way). A probe costs about
 * PROBE_SAMPLES x base at min; on that noisy server about 1% of the time.
 *
 * Overload signals. A timeout or an overload answer (5xx) halves the
 * limit; a 429 multiplies it by CUT_429. Each cuts at most once per
 * latency, and only for a call sent after the previous cut: a burst of
 * 429s from one overload is one signal. A 429 also remembers the limit
 * it came at (the 429 ceiling): growth then goes +1 per window and stops
 * one below it; after QUIET_NS without another 429 (a rate budget is per
 * minute) the ceiling moves up by one, so the limit probes upwards one
 * step a minute rather than overshooting the provider's rate each cycle,
 * which is what keeps 429s rare without rate headers. After a 429,
 * growth also waits until the reset the provider gave with it, when its
 * headers said the budget was exhausted (remaining 0).
 *
 * Rate headers (cloud providers). remaining R calls until the budget is
 * full again in T. The budget is spent at HEADER_GAIN (g) x R / T calls
 * a second: as a pace between call starts, T / (g x R) (T / g when
 * nothing is left), which the caller's gate keeps (llmgate_set_pace), and
 * as a cap of calls in flight, g x R x lat / T (at most R; R when T is
 * within one latency), for servers slower than the pace. Tokens count as
 * calls of the mean tokens per call seen in `usage`. Each answer's
 * headers replace both, which lapse at the reset. Against a token bucket
 * (OpenAI, llmsim: T is the time to full, refilled at r = (C - R) / T)
 * a sender at g x R / T settles where that equals r: the bucket
 * 1 / (g + 1) full. N instances on one account read the same R and T,
 * so each paces to the same share and they settle, the bucket 1 /
 * (g x N + 1) full, the group at the provider's rate, without talking.
 * g > 1 makes that level low (a ninth of the bucket for one instance):
 * the budget a sender keeps back is what it never spends, and from an
 * empty bucket it reaches the provider's rate once the bucket has refilled
 * to that level, not to half. Against a fixed window it spends R in the
 * first 1/g of what is left and then waits for the reset: no 429s,
 * in bursts. While the cap binds, ctrl does not grow, and a 429 does not
 * cut it: the answer's own headers (remaining 0) already cut the cap.
 *
 * Every limit change names its reason; limiter_latency_ns() is an average
 * of answered calls' latency (weight LAT_ALPHA). One mutex guards it all;
 * the work under it is a few arithmetic operations.
 */
#include "limiter.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define TOLERANCE	1.3	/**< short / base above: a queue */
#define GRADIENT_FLOOR	0.5	/**< a window cuts at most to this */
#define CUT_429		0.6	/**< a 429 multiplies the limit by */
#define CUT_OVERLOAD	0.5	/**< a timeout or a 5xx, by this */
#define PROBE_SAMPLES	5	/**< calls a probe of base averages */
#define SHARP_RISE	1.5	/**< a window this much slower */
#define PROBE_GAP_SHARP	10	/**< probes after one: base x this */
#define PROBE_GAP	600	/**< base x this when cuts do not help */
#define WINDOW_SAMPLES	4	/**< the fewest a window judges */
#define LAT_ALPHA	0.2	/**< a sample's weight in latency */
#define TOKENS_ALPHA	0.1	/**< and in tokens per call */
#define QUIET_NS	60000000000LL	/**< a 429's ceiling holds */
#define HEADER_GAIN	8.0	/**< rate headers: send at this x R / T */
#define LONG_AGO	(INT64_MIN / 4)	/**< "never", safe to add to */

struct limiter {
	pthread_mutex_t lock;
	double min, max;	/**< the bounds */
	double ctrl;		/**< the controller's limit */
	double cap;		/**< from rate headers; HUGE_VAL: none */
	int64_t cap_until;	/**< when the cap lapses (its reset) */
	unsigned limit;		/**< the published limit */
	const char *reason;	/**< why it last changed */

	double lat_ns;		/**< average latency of answered calls */
	double base_ns;		/**< no-load latency; 0 until measured */

	bool probing;		/**< limit held at min to measure base */
	double restore;		/**< ctrl to go back to after a probe */
	int64_t probe_start;	/**< calls sent since then count */
	unsigned probe_n;	/**< samples so far */
	double probe_sum;	/**< their latencies */
	int64_t last_probe;	/**< when the last probe ended */

	int64_t win_start;	/**< calls sent since then count */
	int64_t win_span;	/**< a call sent this long after ends it */
	unsigned win_n;		/**< samples */
	double win_sum;		/**< their latencies */
	unsigned win_inflight;	/**< their largest in-flight */
	double prev_short;	/**< the last window's latency; 0: none */
	unsigned prev_inflight;	/**< and in-flight */

	int64_t last_cut;	/**< when the last overload cut was */
	int64_t hold_until;	/**< no growth before */
	double ceiling;		/**< where the last 429 came; 0: none */
	int64_t ceiling_ns;	/**< when it was set or last raised */
	int64_t retry_ns;	/**< reset of a budget said exhausted */
	int64_t retry_at;	/**< when it was said */
	double tokens_per_call;	/**< average; 0 until known */
	double pace_ns;		/**< from rate headers: calls start at
				 *   least this far apart; 0: no pace */
};

struct limiter *limiter_new(unsigned min, unsigned max, unsigned initial)
{
	struct limiter *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	if (pthread_mutex_init(&l->lock, NULL) != 0) {
		free(l);
		return NULL;
	}
	l->min = min < 1 ? 1 : min;
	l->max = max < l->min ? l->min : max;
	l->restore = initial < l->min ? l->min :
		     initial > l->max ? l->max : initial;
	l->ctrl = l->restore;
	l->cap = HUGE_VAL;
	/* Start with a probe: nothing is known of the server yet. */
	l->probing = true;
	l->probe_start = LONG_AGO;
	l->last_probe = LONG_AGO;
	l->last_cut = LONG_AGO;
	l->hold_until = LONG_AGO;
	l->retry_at = LONG_AGO;
	l->limit = (unsigned)l->min;
	l->reason = "start";
	return l;
}

void limiter_free(struct limiter *l)
{
	if (!l)
		return;
	pthread_mutex_destroy(&l->lock);
	free(l);
}

/* The limit before the floor and rounding; the lock is held. */
static double effective(const struct limiter *l)
{
	return l->cap < l->ctrl ? l->cap : l->ctrl;
}

/* Bound ctrl, work out the published limit, and name the reason if it
 * moved; the lock is held. */
static void publish(struct limiter *l, const char *why)
{
	double eff;
	unsigned n;

	if (l->ctrl < l->min)
		l->ctrl = l->min;
	if (l->ctrl > l->max)
		l->ctrl = l->max;
	eff = l->probing ? l->min : effective(l);
	if (eff < l->min)
		eff = l->min;
	n = (unsigned)floor(eff + 1e-9);
	if (n != l->limit) {
		l->limit = n;
		l->reason = why;
	}
}

static void window_start(struct limiter *l, int64_t now_ns)
{
	l->win_start = now_ns;
	l->win_span = (int64_t)l->lat_ns;
	l->win_n = 0;
	l->win_sum = 0;
	l->win_inflight = 0;
}

static void probe_start(struct limiter *l, int64_t now_ns)
{
	l->probing = true;
	l->restore = l->ctrl;
	l->probe_start = now_ns;
	l->probe_n = 0;
	l->probe_sum = 0;
}

static void probe_end(struct limiter *l, int64_t now_ns)
{
	l->base_ns = l->probe_sum / l->probe_n;
	l->probing = false;
	l->last_probe = now_ns;
	l->ctrl = l->restore;
	l->prev_short = 0;
	window_start(l, now_ns);
}

/* Whether the window calls for a probe of base rather than a cut or
 * growth: it was much faster than base, or above tolerance though we
 * did not add load. */
static bool probe_due(const struct limiter *l, int64_t now_ns,
		      double short_ns)
{
	double since = (double)(now_ns - l->last_probe);

	if (short_ns * SHARP_RISE < l->base_ns)
		return since >= PROBE_GAP_SHARP * l->base_ns;
	if (short_ns <= TOLERANCE * l->base_ns || l->prev_short <= 0 ||
	    l->win_inflight > l->prev_inflight)
		return false;
	if (short_ns >= SHARP_RISE * l->prev_short)
		return since >= PROBE_GAP_SHARP * l->base_ns;
	return short_ns >= l->prev_short && since >= PROBE_GAP * l->base_ns;
}

/* Additive growth, held by a 429 and kept under its ceiling. */
static void grow(struct limiter *l, int64_t now_ns)
{
	double step = sqrt(l->ctrl), top = l->max;

	if (step < 1)
		step = 1;
	if (l->ceiling > 0) {
		if (now_ns - l->ceiling_ns >= QUIET_NS) {
			l->ceiling += 1;
			l->ceiling_ns = now_ns;
		}
		step = 1;
		top = l->ceiling - 1;
		if (top < l->ctrl)
			top = l->ctrl;
	}
	l->ctrl = l->ctrl + step < top ? l->ctrl + step : top;
}

static void window_end(struct limiter *l, int64_t now_ns)
{
	double short_ns = l->win_sum / l->win_n, eff = effective(l);
	const char *why = "growth";

	if (probe_due(l, now_ns, short_ns)) {
		probe_start(l, now_ns);
		publish(l, "probe");
		return;
	}
	if (short_ns > TOLERANCE * l->base_ns) {
		l->ctrl = eff * TOLERANCE * l->base_ns / short_ns;
		if (l->ctrl < eff * GRADIENT_FLOOR)
			l->ctrl = eff * GRADIENT_FLOOR;
		why = "rtt gradient";
	} else if (now_ns >= l->hold_until && l->ctrl <= l->cap &&
		   2.0 * l->win_inflight >= eff) {
		grow(l, now_ns);
	}
	l->prev_short = short_ns;
	l->prev_inflight = l->win_inflight;
	window_start(l, now_ns);
	publish(l, why);
}

static void answered(struct limiter *l, int64_t now_ns, int64_t sent_ns,
		     int64_t latency_ns, unsigned inflight)
{
	l->lat_ns = l->lat_ns > 0 ?
		    l->lat_ns + LAT_ALPHA * (latency_ns - l->lat_ns) :
		    latency_ns;
	if (l->probing) {
		if (inflight <= l->min && sent_ns >= l->probe_start) {
			l->probe_n++;
			l->probe_sum += latency_ns;
		}
		if (l->probe_n >= PROBE_SAMPLES) {
			probe_end(l, now_ns);
			publish(l, "probe");
		}
		return;
	}
	if (sent_ns < l->win_start)
		return;
	l->win_n++;
	l->win_sum += latency_ns;
	if (inflight > l->win_inflight)
		l->win_inflight = inflight;
	if (sent_ns >= l->win_start + l->win_span &&
	    l->win_n >= WINDOW_SAMPLES)
		window_end(l, now_ns);
}

/* A 429, a timeout or a 5xx: cut, once per overload. */
static void overloaded(struct limiter *l, int64_t now_ns, int64_t sent_ns,
		       enum limiter_outcome outcome)
{
	double eff = effective(l);
	bool rate = outcome == LIMITER_RATE_LIMITED;

	if (l->probing || sent_ns < l->last_cut ||
	    now_ns < l->last_cut + (int64_t)l->lat_ns)
		return;
	if (rate && l->cap < l->ctrl)
		return;	/* the headers pace; theirs is the cut */
	l->last_cut = now_ns;
	l->ctrl = eff * (rate ? CUT_429 : CUT_OVERLOAD);
	if (rate) {
		l->ceiling = eff;
		l->ceiling_ns = now_ns;
		l->hold_until = now_ns;
		if (now_ns - l->retry_at <= (int64_t)l->lat_ns)
			l->hold_until += l->retry_ns;
	}
	l->prev_short = 0;
	window_start(l, now_ns);
	publish(l, rate ? "429" :
		   outcome == LIMITER_TIMEOUT ? "timeout" : "5xx");
}

/* A cap whose reset has passed lapses; the lock is held. */
static void cap_lapse(struct limiter *l, int64_t now_ns)
{
	if (l->cap != HUGE_VAL && now_ns >= l->cap_until) {
		l->cap = HUGE_VAL;
		publish(l, "rate headers");
	}
}

void limiter_observe(struct limiter *l, int64_t now_ns,
		     enum limiter_outcome outcome, int64_t latency_ns,
		     unsigned inflight, int64_t tokens)
{
	int64_t sent_ns = now_ns - latency_ns;

	pthread_mutex_lock(&l->lock);
	cap_lapse(l, now_ns);
	switch (outcome) {
	case LIMITER_OK:
		if (tokens > 0)
			l->tokens_per_call = l->tokens_per_call > 0 ?
				l->tokens_per_call + TOKENS_ALPHA *
				(tokens - l->tokens_per_call) : tokens;
		answered(l, now_ns, sent_ns, latency_ns, inflight);
		break;
	case LIMITER_RATE_LIMITED:
	case LIMITER_TIMEOUT:
	case LIMITER_SERVER_ERROR:
		overloaded(l, now_ns, sent_ns, outcome);
		break;
	case LIMITER_OTHER:
		break;
	}
	pthread_mutex_unlock(&l->lock);
}

/* The calls a budget of `left` allows in flight until its reset: at the
 * rate HEADER_GAIN x left / reset, all of it when the reset is within a
 * latency. */
static double paced(const struct limiter *l, double left, int64_t reset_ns)
{
	double c;

	if (l->lat_ns <= 0 || reset_ns <= l->lat_ns)
		return left;
	c = HEADER_GAIN * left * l->lat_ns / reset_ns;
	return c < left ? c : left;
}

/* One budget's header pair; the lock is held. */
static void budget(struct limiter *l, int64_t now_ns, double left,
		   int64_t reset_ns)
{
	double c = paced(l, left, reset_ns);
	int64_t until = now_ns + (reset_ns > l->lat_ns ? reset_ns :
				  (int64_t)l->lat_ns);
	double pace = reset_ns / (HEADER_GAIN * (left >= 1 ? left : 1));

	if (c < l->cap)
		l->cap = c;
	if (until > l->cap_until)
		l->cap_until = until;
	if (reset_ns > 0 && pace > l->pace_ns)
		l->pace_ns = pace;
	if (left <= 0 && reset_ns > 0) {
		l->retry_ns = reset_ns;
		l->retry_at = now_ns;
	}
}

void limiter_headers(struct limiter *l, int64_t now_ns,
		     int64_t remaining_requests, int64_t reset_requests_ns,
		     int64_t remaining_tokens, int64_t reset_tokens_ns)
{
	pthread_mutex_lock(&l->lock);
	if (remaining_requests >= 0 ||
	    (remaining_tokens >= 0 && l->tokens_per_call > 0)) {
		l->cap = HUGE_VAL;
		l->cap_until = now_ns;
		l->pace_ns = 0;
	}
	if (remaining_requests >= 0)
		budget(l, now_ns, (double)remaining_requests,
		       reset_requests_ns);
	if (remaining_tokens >= 0 && l->tokens_per_call > 0)
		budget(l, now_ns, remaining_tokens / l->tokens_per_call,
		       reset_tokens_ns);
	publish(l, "rate headers");
	pthread_mutex_unlock(&l->lock);
}

unsigned limiter_limit(struct limiter *l)
{
	unsigned n;

	pthread_mutex_lock(&l->lock);
	n = l->limit;
	pthread_mutex_unlock(&l->lock);
	return n;
}

int64_t limiter_pace_ns(struct limiter *l, int64_t now_ns,
			int64_t *ret_until_ns)
{
	int64_t pace = 0;

	pthread_mutex_lock(&l->lock);
	if (now_ns < l->cap_until)
		pace = (int64_t)l->pace_ns;
	*ret_until_ns = l->cap_until;
	pthread_mutex_unlock(&l->lock);
	return pace;
}

const char *limiter_reason(struct limiter *l)
{
	const char *r;

	pthread_mutex_lock(&l->lock);
	r = l->reason;
	pthread_mutex_unlock(&l->lock);
	return r;
}

int64_t limiter_latency_ns(struct limiter *l)
{
	int64_t ns;

	pthread_mutex_lock(&l->lock);
	ns = (int64_t)l->lat_ns;
	pthread_mutex_unlock(&l->lock);
	return ns;
}

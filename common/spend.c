/*
 * spend: see spend.h.
 *
 * A cap's window is a ring of SPEND_STEPS steps: step k covers
 * [k * width, (k + 1) * width) and sits at k % SPEND_STEPS. Moving to
 * a later step zeroes the steps passed over, so the ring always holds
 * the steps k - SPEND_STEPS + 1 .. k of the latest k.
 */
#include "spend.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct window {
	const char *setting;  /**< not owned (a string literal) */
	int64_t width;        /**< ns a step */
	double cap;           /**< dollars */
	double step[SPEND_STEPS];
	int64_t last;         /**< the latest step moved to */
};

struct spend {
	pthread_mutex_t lock; /**< guards everything below */
	struct window w[SPEND_CAPS];
	unsigned n;
	bool over;            /**< at the last spend_check() */
};

double spend_cost(const struct cfg_price *price, uint64_t prompt,
		  uint64_t cached, uint64_t completion)
{
	double cached_price = price->cached_input > 0 ? price->cached_input
						      : price->input;

	if (cached > prompt)
		cached = prompt;
	return ((double)(prompt - cached) * price->input +
		(double)cached * cached_price +
		(double)completion * price->output) / 1e6;
}

static uint64_t at_most(uint64_t n, uint64_t max)
{
	return n < max ? n : max;
}

double spend_cost_batched(const struct cfg_price *price, uint64_t prompt,
			  uint64_t cached, uint64_t completion,
			  uint64_t batch_prompt, uint64_t batch_cached,
			  uint64_t batch_completion)
{
	batch_prompt = at_most(batch_prompt, prompt);
	batch_cached = at_most(batch_cached, cached);
	batch_completion = at_most(batch_completion, completion);
	return spend_cost(price, prompt - batch_prompt, cached - batch_cached,
			  completion - batch_completion) +
	       price->batch_factor * spend_cost(price, batch_prompt,
						batch_cached,
						batch_completion);
}

void spend_format(double usd, char *buf, size_t size)
{
	size_t len;

	snprintf(buf, size, "%.12f", usd);
	len = strlen(buf);
	while (len > 2 && buf[len - 1] == '0' && buf[len - 2] != '.')
		buf[--len] = '\0';
}

struct spend *spend_new(void)
{
	struct spend *s = calloc(1, sizeof(*s));

	if (s)
		pthread_mutex_init(&s->lock, NULL);
	return s;
}

int spend_cap(struct spend *s, const char *setting, int64_t window_ns,
	      double usd)
{
	struct window *w;

	if (s->n == SPEND_CAPS || window_ns < SPEND_STEPS || !(usd > 0))
		return -1;
	w = &s->w[s->n++];
	w->setting = setting;
	w->width = window_ns / SPEND_STEPS;
	w->cap = usd;
	return 0;
}

/* Move w to the step of now, zeroing the steps that left the window. */
static void move_to(struct window *w, int64_t now)
{
	int64_t k = now / w->width, i;

	if (k <= w->last)
		return;
	if (k - w->last >= SPEND_STEPS)
		memset(w->step, 0, sizeof(w->step));
	else
		for (i = w->last + 1; i <= k; i++)
			w->step[i % SPEND_STEPS] = 0;
	w->last = k;
}

static double spent(const struct window *w)
{
	double sum = 0;
	unsigned i;

	for (i = 0; i < SPEND_STEPS; i++)
		sum += w->step[i];
	return sum;
}

void spend_add(struct spend *s, int64_t now, double usd)
{
	unsigned i;

	if (!(usd > 0))
		return;
	pthread_mutex_lock(&s->lock);
	for (i = 0; i < s->n; i++) {
		move_to(&s->w[i], now);
		s->w[i].step[s->w[i].last % SPEND_STEPS] += usd;
	}
	pthread_mutex_unlock(&s->lock);
}

/* When the spend in w drops below its cap again (ns from now): the
 * oldest steps leave first, each when the window has passed since its
 * end. */
static int64_t wait_ns(const struct window *w, int64_t now, double sum)
{
	int64_t j;

	for (j = w->last - SPEND_STEPS + 1; j <= w->last; j++) {
		sum -= w->step[((j % SPEND_STEPS) + SPEND_STEPS) %
			       SPEND_STEPS];
		if (sum < w->cap)
			break;
	}
	return (j + SPEND_STEPS) * w->width - now;
}

/* Under the lock. */
static bool over_locked(struct spend *s, int64_t now, char *why,
			size_t size)
{
	unsigned i;

	for (i = 0; i < s->n; i++) {
		struct window *w = &s->w[i];
		double sum;

		move_to(w, now);
		sum = spent(w);
		if (sum < w->cap)
			continue;
		if (size)
			snprintf(why, size,
				 "%s: $%.4g spent in the window, cap $%.4g; "
				 "about %lld s until it allows more",
				 w->setting, sum, w->cap,
				 (long long)(wait_ns(w, now, sum) / 1000000000
					     + 1));
		return true;
	}
	if (size)
		why[0] = '\0';
	return false;
}

bool spend_over(struct spend *s, int64_t now, char *why, size_t size)
{
	bool over;

	pthread_mutex_lock(&s->lock);
	over = over_locked(s, now, why, size);
	pthread_mutex_unlock(&s->lock);
	return over;
}

enum spend_turn spend_check(struct spend *s, int64_t now, bool *ret_over,
			    char *why, size_t size)
{
	enum spend_turn turn = SPEND_SAME;
	bool over;

	pthread_mutex_lock(&s->lock);
	over = over_locked(s, now, why, size);
	if (over != s->over)
		turn = over ? SPEND_STOPPED : SPEND_RESUMED;
	s->over = over;
	pthread_mutex_unlock(&s->lock);
	*ret_over = over;
	return turn;
}

void spend_free(struct spend *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

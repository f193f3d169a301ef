/*
 * backoff: see backoff.h.
 */
#include "backoff.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t backoff_rand(uint64_t *rng)
{
	uint64_t x = *rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

unsigned backoff_delay_ms(unsigned attempt, unsigned base_ms,
			  unsigned max_ms, uint64_t *rng)
{
	uint64_t ceiling = base_ms;

	while (attempt-- && ceiling < max_ms)
		ceiling *= 2;
	if (ceiling > max_ms)
		ceiling = max_ms;
	return (unsigned)(backoff_rand(rng) % (ceiling + 1));
}

static const char *const months[] = { "Jan", "Feb", "Mar", "Apr",
				       "May", "Jun", "Jul", "Aug",
				       "Sep", "Oct", "Nov", "Dec" };

/* An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") as seconds since the
 * epoch, without the locale or the time zone of the process. */
static int parse_http_date(const char *v, time_t *ret)
{
	char wday[4], mon[4], zone[4];
	int day, year, h, m, s, i;
	int64_t days;

	if (sscanf(v, "%3s, %2d %3s %4d %2d:%2d:%2d %3s", wday, &day, mon,
		   &year, &h, &m, &s, zone) != 8 ||
	    strcmp(zone, "GMT"))
		return -1;
	for (i = 0; i < 12 && strcmp(mon, months[i]); i++)
		;
	if (i == 12 || day < 1 || day > 31 || h > 23 || m > 59 || s > 60)
		return -1;
	/* Days since the epoch, by the civil-from-days inverse. */
	{
		int y = year - (i < 2);
		int era = (y >= 0 ? y : y - 399) / 400;
		int yoe = y - era * 400;
		int mp = (i + 10) % 12; /* March is 0 */
		int doy = (153 * mp + 2) / 5 + day - 1;
		int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

		days = (int64_t)era * 146097 + doe - 719468;
	}
	*ret = (time_t)(days * 86400 + h * 3600 + m * 60 + s);
	return 0;
}

int backoff_parse_retry_after(const char *value, time_t now,
			      unsigned *ret_ms)
{
	const char *p = value;
	time_t when;

	while (*p == ' ')
		p++;
	if (isdigit((unsigned char)*p)) {
		char *end;
		unsigned long secs;

		errno = 0;
		secs = strtoul(p, &end, 10);
		while (*end == ' ')
			end++;
		if (errno || *end || secs > 86400)
			return -1;
		*ret_ms = (unsigned)secs * 1000;
		return 0;
	}
	if (parse_http_date(p, &when) < 0)
		return -1;
	*ret_ms = when > now ? (unsigned)(when - now) * 1000 : 0;
	return 0;
}

int backoff_parse_duration(const char *value, unsigned *ret_ms)
{
	const char *p = value;
	double total = 0;
	int parts = 0;

	while (*p) {
		char *end;
		double n;

		if (!isdigit((unsigned char)*p) && *p != '.')
			return -1;
		n = strtod(p, &end);
		if (end == p)
			return -1;
		p = end;
		if (!strncmp(p, "ms", 2)) {
			total += n;
			p += 2;
		} else if (*p == 'h') {
			total += n * 3600000.0;
			p++;
		} else if (*p == 'm') {
			total += n * 60000.0;
			p++;
		} else if (*p == 's') {
			total += n * 1000.0;
			p++;
		} else {
			return -1;
		}
		parts++;
	}
	if (!parts || total > 86400000.0)
		return -1;
	*ret_ms = (unsigned)total + ((double)(unsigned)total < total);
	return 0;
}

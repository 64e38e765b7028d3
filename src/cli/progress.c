/* Progress display. */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_start(cli_progress *p, const char *label, size_t total, int enabled) {
    memset(p, 0, sizeof *p);
    snprintf(p->label, sizeof p->label, "%s", label);
    p->total = total;
    p->enabled = enabled;
    p->tty = isatty(STDERR_FILENO);
    p->start = cli_now();
    p->next_plain = total / 10;
}

static void format_eta(double s, char *buf, size_t len) {
    if (s < 0 || s > 1e7) {
        snprintf(buf, len, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else
        snprintf(buf, len, "%ld:%02ld", t / 60, t % 60);
}

void cli_progress_update(cli_progress *p, size_t done, const char *extra) {
    p->done = done;
    if (!p->enabled) return;
    const double now = cli_now(), elapsed = now - p->start;
    const double rate = elapsed > 0 ? (double)done / elapsed : 0.0;
    char eta[32];
    format_eta(rate > 0 ? (double)(p->total - done) / rate : -1.0, eta, sizeof eta);
    if (p->tty) {
        if (done < p->total && now - p->last_draw < 0.1) return;
        p->last_draw = now;
        char bar[25];
        size_t fill = p->total ? done * 24 / p->total : 24;
        for (size_t i = 0; i < 24; i++) bar[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
        bar[24] = '\0';
        fprintf(stderr, "\r\033[K%s [%s] %zu/%zu  %.0f img/s  %s  ETA %s", p->label, bar, done, p->total, rate,
                extra ? extra : "", eta);
        fflush(stderr);
        p->drawn = 1;
        return;
    }
    if (done < p->next_plain && done < p->total) return;
    while (p->next_plain <= done && p->total / 10 > 0) p->next_plain += p->total / 10;
    fprintf(stderr, "%s %zu/%zu (%3.0f%%)  %.0f img/s  %s  ETA %s\n", p->label, done, p->total,
            p->total ? 100.0 * (double)done / (double)p->total : 100.0, rate, extra ? extra : "", eta);
}

void cli_progress_end(cli_progress *p) {
    if (p->enabled && p->tty && p->drawn) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
}

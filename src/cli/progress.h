/* Progress of long work on stderr: a live bar redrawn in place on a terminal, plain
 * lines (about every 10%) otherwise, so logs stay readable. */
#ifndef SNNCL_CLI_PROGRESS_H
#define SNNCL_CLI_PROGRESS_H

#include <stddef.h>

typedef struct cli_progress {
    char label[48];
    size_t total, done;     /* items (images) */
    double start, last_draw;
    size_t next_plain;      /* plain mode: item count of the next line */
    int tty, enabled, drawn;
} cli_progress;

double cli_now(void); /* monotonic seconds */
/* enabled: 0 prints nothing. */
void cli_progress_start(cli_progress *p, const char *label, size_t total, int enabled);
/* done items so far; extra: "loss 0.512  acc 0.831" or NULL. */
void cli_progress_update(cli_progress *p, size_t done, const char *extra);
/* Clears the bar (terminal) so the next line starts clean. */
void cli_progress_end(cli_progress *p);

#endif

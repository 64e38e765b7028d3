/* The `snncl` subcommands. Each returns the process exit status:
 * 0 success, 1 failure while running, 2 bad command line. */
#ifndef SNNCL_CLI_COMMANDS_H
#define SNNCL_CLI_COMMANDS_H

int cmd_devices(int argc, char **argv);
int cmd_infer(int argc, char **argv);

/* Prints "snncl: <what>: <status text>: <detail>" to stderr; returns 1. */
int cli_report(const char *what, int status);

#endif

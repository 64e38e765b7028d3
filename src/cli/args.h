/* A small table-driven parser for `--name value`, `--name=value` and `--flag`. */
#ifndef SNNCL_CLI_ARGS_H
#define SNNCL_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum cli_kind { CLI_FLAG, CLI_STRING, CLI_INT, CLI_FLOAT, CLI_U64 } cli_kind;

typedef struct cli_option {
    const char *name;    /* without the leading "--" */
    cli_kind kind;
    void *dest;          /* int* (flag, int), const char** , float*, uint64_t* */
    const char *metavar; /* shown in help: "PATH" */
    const char *help;
    int required;
    int seen;            /* set by the parser */
} cli_option;

enum { CLI_OK = 0, CLI_HELP = 1, CLI_ERROR = 2 };

/* Parses argv[first..argc). On CLI_ERROR, err holds a message naming the option. */
int cli_parse(int argc, char **argv, int first, cli_option *opts, size_t nopts, char *err, size_t errlen);
void cli_usage(FILE *out, const char *usage, const char *summary, const cli_option *opts, size_t nopts);
/* cli_parse for a command `snncl cmd`, with its help and errors printed as every
 * command prints them: returns -1 to go on, else the exit status (0 after --help,
 * 2 after a bad command line). */
int cli_parse_command(const char *cmd, int argc, char **argv, cli_option *opts, size_t nopts, const char *usage,
                      const char *summary);
/* Sets an option from text as the command line would (flags take "0" or "1"); the
 * option is not marked seen. A string value must outlive the option table. */
int cli_set(cli_option *o, const char *value, char *err, size_t errlen);
/* The option's current value as text that cli_set reads back exactly. */
void cli_format(const cli_option *o, char *buf, size_t len);

#endif

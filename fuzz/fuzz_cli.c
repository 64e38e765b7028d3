/* libFuzzer target for the command-line parser (src/cli/args.c). The input, split at
 * NUL bytes, is the argument list after the command; the option table has every kind
 * of option. Whatever the parser accepts must survive cli_format -> cli_set exactly,
 * as checkpoints store settings that way; each argument is also given to cli_set of
 * every option directly. */
#include <stdint.h>

#include "args.h"
#include "fuzz_util.h"

#define MAX_ARGS 64

enum { OPT_FLAG, OPT_STRING, OPT_INT, OPT_FLOAT, OPT_U64, OPT_NEEDED, OPT_COUNT };

typedef struct values {
    int flag, number;
    const char *text, *needed;
    float real;
    uint64_t big;
} values;

static void make_options(cli_option *opts, values *v, int needed_required) {
    memset(v, 0, sizeof *v);
    memset(opts, 0, OPT_COUNT * sizeof *opts);
    opts[OPT_FLAG] = (cli_option){"flag", CLI_FLAG, &v->flag, NULL, "a flag", 0, 0};
    opts[OPT_STRING] = (cli_option){"text", CLI_STRING, &v->text, "TEXT", "a string", 0, 0};
    opts[OPT_INT] = (cli_option){"number", CLI_INT, &v->number, "N", "an int", 0, 0};
    opts[OPT_FLOAT] = (cli_option){"real", CLI_FLOAT, &v->real, "X", "a float", 0, 0};
    opts[OPT_U64] = (cli_option){"big", CLI_U64, &v->big, "N", "a uint64", 0, 0};
    opts[OPT_NEEDED] = (cli_option){"needed", CLI_STRING, &v->needed, "PATH", "maybe required",
                                    needed_required, 0};
}

/* Bitwise equality of the two options' values (so -0 differs from 0). */
static int same_value(const cli_option *a, const cli_option *b) {
    switch (a->kind) {
    case CLI_FLAG:
    case CLI_INT:
        return memcmp(a->dest, b->dest, sizeof(int)) == 0;
    case CLI_FLOAT:
        return memcmp(a->dest, b->dest, sizeof(float)) == 0;
    case CLI_U64:
        return memcmp(a->dest, b->dest, sizeof(uint64_t)) == 0;
    case CLI_STRING: {
        const char *x = *(const char *const *)a->dest, *y = *(const char *const *)b->dest;
        return strcmp(x ? x : "", y ? y : "") == 0;
    }
    }
    return 0;
}

/* cli_format, then cli_set into a fresh option of the same kind, must give the value. */
static void check_round_trip(const cli_option *o, char *text, size_t text_len) {
    values scratch;
    cli_option copy = *o;
    char err[256] = "";
    memset(&scratch, 0, sizeof scratch);
    switch (o->kind) {
    case CLI_FLAG: copy.dest = &scratch.flag; break;
    case CLI_INT: copy.dest = &scratch.number; break;
    case CLI_FLOAT: copy.dest = &scratch.real; break;
    case CLI_U64: copy.dest = &scratch.big; break;
    case CLI_STRING: copy.dest = &scratch.text; break;
    }
    cli_format(o, text, text_len);
    if (cli_set(&copy, text, err, sizeof err) != CLI_OK) {
        fprintf(stderr, "--%s: cli_set rejects its own cli_format output '%s': %s\n", o->name, text, err);
        abort();
    }
    if (!same_value(o, &copy)) {
        fprintf(stderr, "--%s: '%s' does not read back as the value it came from\n", o->name, text);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cli_option opts[OPT_COUNT];
    values v;
    char *args, *argv[MAX_ARGS + 1], err[256], *text;
    size_t text_len = size + 64; /* holds any string value, and every number */
    int argc = 0, result;
    if (size < 1) return 0;

    /* The first byte says whether --needed is required; the rest is the arguments. */
    make_options(opts, &v, data[0] & 1);
    args = malloc(size);
    text = malloc(text_len);
    FUZZ_CHECK(args != NULL && text != NULL);
    memcpy(args, data + 1, size - 1);
    args[size - 1] = '\0';
    argv[argc++] = "fuzz";
    for (char *p = args; p < args + size - 1 && argc < MAX_ARGS; p += strlen(p) + 1) argv[argc++] = p;
    argv[argc] = NULL;

    err[0] = '\0';
    result = cli_parse(argc, argv, 1, opts, OPT_COUNT, err, sizeof err);
    FUZZ_CHECK(result == CLI_OK || result == CLI_HELP || result == CLI_ERROR);
    if (result == CLI_ERROR) FUZZ_CHECK(err[0] != '\0');
    if (result == CLI_OK && (data[0] & 1)) FUZZ_CHECK(opts[OPT_NEEDED].seen && v.needed != NULL);
    for (int k = 0; k < OPT_COUNT; k++) check_round_trip(&opts[k], text, text_len);

    /* Every argument as the value of every option, as a checkpoint's settings are read. */
    for (int i = 1; i < argc; i++)
        for (int k = 0; k < OPT_COUNT; k++) {
            err[0] = '\0';
            if (cli_set(&opts[k], argv[i], err, sizeof err) == CLI_OK)
                check_round_trip(&opts[k], text, text_len);
            else
                FUZZ_CHECK(err[0] != '\0');
        }
    free(text);
    free(args);
    return 0;
}

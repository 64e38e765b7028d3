#include "args.h"

#include <ctype.h>
#include <inttypes.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static int set_value(cli_option *o, const char *v, char *err, size_t errlen) {
    char *end;
    errno = 0;
    switch (o->kind) {
    case CLI_STRING:
        *(const char **)o->dest = v;
        return CLI_OK;
    case CLI_INT: {
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end || x < -2147483647L || x > 2147483647L) break;
        *(int *)o->dest = (int)x;
        return CLI_OK;
    }
    case CLI_FLOAT: {
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite((float)x)) break;
        *(float *)o->dest = (float)x;
        return CLI_OK;
    }
    case CLI_U64: {
        if (!isdigit((unsigned char)v[0])) break; /* strtoull would accept " -1" */
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || end == v || *end) break;
        *(uint64_t *)o->dest = (uint64_t)x;
        return CLI_OK;
    }
    case CLI_FLAG:
        break;
    }
    snprintf(err, errlen, "invalid value '%s' for --%s", v, o->name);
    return CLI_ERROR;
}

int cli_parse(int argc, char **argv, int first, cli_option *opts, size_t nopts, char *err, size_t errlen) {
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) return CLI_HELP;
        if (strncmp(arg, "--", 2) != 0 || !arg[2]) {
            snprintf(err, errlen, "unexpected argument '%s'", arg);
            return CLI_ERROR;
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        cli_option *o = NULL;
        for (size_t k = 0; k < nopts; k++)
            if (strlen(opts[k].name) == len && strncmp(opts[k].name, name, len) == 0) o = &opts[k];
        if (!o) {
            snprintf(err, errlen, "unknown option '--%.*s'", (int)(len > 200 ? 200 : len), name);
            return CLI_ERROR;
        }
        if (o->seen) {
            snprintf(err, errlen, "--%s given twice", o->name);
            return CLI_ERROR;
        }
        o->seen = 1;
        if (o->kind == CLI_FLAG) {
            if (eq) {
                snprintf(err, errlen, "--%s takes no value", o->name);
                return CLI_ERROR;
            }
            *(int *)o->dest = 1;
            continue;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "--%s needs a value (%s)", o->name, o->metavar ? o->metavar : "VALUE");
                return CLI_ERROR;
            }
            value = argv[++i];
        }
        if (set_value(o, value, err, errlen) != CLI_OK) return CLI_ERROR;
    }
    for (size_t k = 0; k < nopts; k++) {
        if (opts[k].required && !opts[k].seen) {
            snprintf(err, errlen, "--%s is required", opts[k].name);
            return CLI_ERROR;
        }
    }
    return CLI_OK;
}

/* " (default V)" from the option's value before parsing, so that help and behaviour
 * cannot disagree; nothing for flags, unset strings and help that states its default
 * itself (what an unset or zero value means: "default all", "default 0: off"). */
static void default_text(const cli_option *o, char *buf, size_t len) {
    if (o->kind == CLI_FLAG || strstr(o->help, "(default")) return;
    char v[64] = "";
    switch (o->kind) {
    case CLI_INT: snprintf(v, sizeof v, "%d", *(const int *)o->dest); break;
    case CLI_FLOAT: snprintf(v, sizeof v, "%g", (double)*(const float *)o->dest); break;
    case CLI_U64: snprintf(v, sizeof v, "%" PRIu64, *(const uint64_t *)o->dest); break;
    case CLI_STRING: {
        const char *sv = *(const char *const *)o->dest;
        if (sv && *sv) snprintf(v, sizeof v, "%s", sv);
        break;
    }
    case CLI_FLAG: break;
    }
    if (v[0]) snprintf(buf, len, " (default %s)", v);
}

void cli_usage(FILE *out, const char *usage, const char *summary, const cli_option *opts, size_t nopts) {
    fprintf(out, "usage: %s\n\n%s\n", usage, summary);
    if (nopts) fprintf(out, "\noptions:\n");
    for (size_t k = 0; k < nopts; k++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", opts[k].name, opts[k].metavar ? " " : "",
                 opts[k].metavar ? opts[k].metavar : "");
        char def[96] = "";
        default_text(&opts[k], def, sizeof def);
        fprintf(out, "  %-26s %s%s%s\n", left, opts[k].help, def, opts[k].required ? " (required)" : "");
    }
    fprintf(out, "  %-26s %s\n", "--help", "show this help");
}

int cli_set(cli_option *o, const char *value, char *err, size_t errlen) {
    if (o->kind == CLI_FLAG) {
        if (strcmp(value, "0") != 0 && strcmp(value, "1") != 0) {
            snprintf(err, errlen, "invalid value '%s' for --%s (expected 0 or 1)", value, o->name);
            return CLI_ERROR;
        }
        *(int *)o->dest = value[0] == '1';
        return CLI_OK;
    }
    return set_value(o, value, err, errlen);
}

void cli_format(const cli_option *o, char *buf, size_t len) {
    switch (o->kind) {
    case CLI_FLAG:
    case CLI_INT:
        snprintf(buf, len, "%d", *(const int *)o->dest);
        break;
    case CLI_FLOAT:
        snprintf(buf, len, "%.9g", (double)*(const float *)o->dest);
        break;
    case CLI_U64:
        snprintf(buf, len, "%" PRIu64, *(const uint64_t *)o->dest);
        break;
    case CLI_STRING: {
        const char *v = *(const char *const *)o->dest;
        snprintf(buf, len, "%s", v ? v : "");
        break;
    }
    }
}

int cli_parse_command(const char *cmd, int argc, char **argv, cli_option *opts, size_t nopts, const char *usage,
                      const char *summary) {
    char err[512];
    int rc = cli_parse(argc, argv, 2, opts, nopts, err, sizeof err);
    if (rc == CLI_HELP) {
        cli_usage(stdout, usage, summary, opts, nopts);
        return 0;
    }
    if (rc == CLI_ERROR) {
        fprintf(stderr, "snncl %s: %s (see snncl %s --help)\n", cmd, err, cmd);
        return 2;
    }
    return -1;
}

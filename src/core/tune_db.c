/* The per-device GEMM tuning files (see tune_db.h). */
#include "tune_db.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const snn_xgemm_param_names[SNN_XGEMM_PARAMS] = {
    "GEMMK", "KREG", "KWG", "KWI", "MDIMA", "MDIMC", "MWG", "NDIMB",
    "NDIMC", "NWG",  "SA",  "SB",  "STRM",  "STRN",  "VWM", "VWN"};

static uint64_t fnv1a(uint64_t h, const char *s) {
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return (h ^ '\n') * 0x100000001b3ull;
}

static snn_status cache_dir(const snn_context *ctx, char *buf, size_t len) {
    const char *dir = ctx->tuning_dir, *xdg = NULL, *home = NULL;
    if (!*dir && !ctx->use_env)
        return snn_fail(SNN_ERR_IO, "no tuning directory: the context ignores the environment and "
                                    "snn_context_params.tuning_dir is empty");
    if (!*dir) {
        dir = getenv("SNNCL_CACHE_DIR");
        xdg = getenv("XDG_CACHE_HOME");
        home = getenv("HOME");
    }
    int n;
    if (dir && *dir)
        n = snprintf(buf, len, "%s", dir);
    else if (xdg && *xdg)
        n = snprintf(buf, len, "%s/snncl", xdg);
    else if (home && *home)
        n = snprintf(buf, len, "%s/.cache/snncl", home);
    else
        return snn_fail(SNN_ERR_IO, "no cache directory: set SNNCL_CACHE_DIR, XDG_CACHE_HOME or HOME");
    if (n < 0 || (size_t)n >= len) return snn_fail(SNN_ERR_IO, "cache directory path too long");
    return SNN_OK;
}

snn_status snn_tune_path(const snn_context *ctx, char *buf, size_t len) {
    const snn_device_info *info = &ctx->info;
    char dir[1024];
    SNN_TRY(cache_dir(ctx, dir, sizeof dir));
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv1a(h, info->platform);
    h = fnv1a(h, info->name);
    h = fnv1a(h, info->driver_version);
    h = fnv1a(h, snn_version());
    int n = snprintf(buf, len, "%s/tune-%016llx.json", dir, (unsigned long long)h);
    if (n < 0 || (size_t)n >= len) return snn_fail(SNN_ERR_IO, "tuning file path too long");
    return SNN_OK;
}

static int same_string(const cJSON *root, const char *key, const char *want) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsString(v) && strcmp(v->valuestring, want) == 0;
}

static double number_or(const cJSON *root, const char *key, double fallback) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    return cJSON_IsNumber(v) ? v->valuedouble : fallback;
}

/* Parses the text of a tuning file for the device. */
static snn_status parse_tuning(const char *path, const char *text, const snn_device_info *info,
                               snn_tuning *t) {
    cJSON *root = cJSON_Parse(text);
    snn_status st = SNN_OK;
    if (!cJSON_IsObject(root)) {
        st = snn_fail(SNN_ERR_FORMAT, "%s: not a JSON object", path);
        goto done;
    }
    if (!same_string(root, "platform", info->platform) || !same_string(root, "device", info->name) ||
        !same_string(root, "driver", info->driver_version) ||
        !same_string(root, "snncl_version", snn_version())) {
        st = snn_fail(SNN_ERR_FORMAT, "%s: a tuning of another device, driver or snncl version", path);
        goto done;
    }
    memset(t, 0, sizeof *t);
    const cJSON *gemm = cJSON_GetObjectItemCaseSensitive(root, "gemm");
    if (cJSON_IsString(gemm) && strcmp(gemm->valuestring, "native") == 0)
        t->impl = SNN_GEMM_NATIVE;
    else if (cJSON_IsString(gemm) && strcmp(gemm->valuestring, "clblast") == 0)
        t->impl = SNN_GEMM_CLBLAST;
    else {
        st = snn_fail(SNN_ERR_FORMAT, "%s: \"gemm\" must be \"native\" or \"clblast\"", path);
        goto done;
    }
    const cJSON *xgemm = cJSON_GetObjectItemCaseSensitive(root, "xgemm");
    if (xgemm && !cJSON_IsNull(xgemm)) {
        for (int i = 0; i < SNN_XGEMM_PARAMS; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(xgemm, snn_xgemm_param_names[i]);
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 4096 ||
                v->valuedouble != (double)(size_t)v->valuedouble) {
                st = snn_fail(SNN_ERR_FORMAT, "%s: xgemm.%s must be an integer in [0, 4096]", path,
                              snn_xgemm_param_names[i]);
                goto done;
            }
            t->xgemm[i] = (size_t)v->valuedouble;
        }
        t->has_xgemm = 1;
    }
    t->native_s = number_or(root, "native_ms", 0) * 1e-3;
    t->clblast_default_s = number_or(root, "clblast_default_ms", 0) * 1e-3;
    t->clblast_tuned_s = number_or(root, "clblast_tuned_ms", 0) * 1e-3;
    t->candidates_tried = (int)number_or(root, "candidates_tried", 0);
    t->candidates_failed = (int)number_or(root, "candidates_failed", 0);
done:
    cJSON_Delete(root);
    return st;
}

snn_status snn_tune_load(const snn_context *ctx, snn_tuning *t, int *found) {
    const snn_device_info *info = &ctx->info;
    *found = 0;
    char path[1200];
    SNN_TRY(snn_tune_path(ctx, path, sizeof path));
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return SNN_OK;
        return snn_fail(SNN_ERR_IO, "%s: %s", path, strerror(errno));
    }
    char text[8192];
    size_t n = fread(text, 1, sizeof text - 1, f);
    const int too_long = n == sizeof text - 1 && fgetc(f) != EOF;
    fclose(f);
    if (too_long) return snn_fail(SNN_ERR_FORMAT, "%s: larger than a tuning file can be", path);
    text[n] = '\0';
    SNN_TRY(parse_tuning(path, text, info, t));
    *found = 1;
    return SNN_OK;
}

static snn_status make_dirs(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        int r = mkdir(path, 0755);
        *p = '/';
        if (r != 0 && errno != EEXIST) return snn_fail(SNN_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    }
    return SNN_OK;
}

snn_status snn_tune_save(const snn_context *ctx, const snn_tuning *t, char *path, size_t len) {
    const snn_device_info *info = &ctx->info;
    SNN_TRY(snn_tune_path(ctx, path, len));
    SNN_TRY(make_dirs(path));
    cJSON *root = cJSON_CreateObject();
    if (!root) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "tuning JSON");
    cJSON_AddStringToObject(root, "snncl_version", snn_version());
    cJSON_AddStringToObject(root, "platform", info->platform);
    cJSON_AddStringToObject(root, "device", info->name);
    cJSON_AddStringToObject(root, "driver", info->driver_version);
    cJSON_AddStringToObject(root, "gemm", t->impl == SNN_GEMM_NATIVE ? "native" : "clblast"); /* as parsed above */
    if (t->has_xgemm) {
        cJSON *x = cJSON_AddObjectToObject(root, "xgemm");
        for (int i = 0; x && i < SNN_XGEMM_PARAMS; i++)
            cJSON_AddNumberToObject(x, snn_xgemm_param_names[i], (double)t->xgemm[i]);
    } else {
        cJSON_AddNullToObject(root, "xgemm");
    }
    cJSON_AddNumberToObject(root, "native_ms", t->native_s * 1e3);
    cJSON_AddNumberToObject(root, "clblast_default_ms", t->clblast_default_s * 1e3);
    cJSON_AddNumberToObject(root, "clblast_tuned_ms", t->clblast_tuned_s * 1e3);
    cJSON_AddNumberToObject(root, "candidates_tried", t->candidates_tried);
    cJSON_AddNumberToObject(root, "candidates_failed", t->candidates_failed);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return snn_fail(SNN_ERR_OUT_OF_MEMORY, "tuning JSON");

    snn_file *f = NULL;
    snn_status st = snn_file_begin(&f, path);
    if (st == SNN_OK) {
        const size_t n = strlen(text);
        if (fwrite(text, 1, n, snn_file_stream(f)) == n && fputc('\n', snn_file_stream(f)) != EOF) {
            st = snn_file_commit(f);
        } else {
            st = snn_fail(SNN_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
            snn_file_abort(f);
        }
    }
    cJSON_free(text);
    return st;
}

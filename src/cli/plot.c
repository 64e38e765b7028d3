/* Training curves and spike rasters with cairo (see plot.h). Built without cairo
 * (meson option `plots`), the two writers refuse with a message instead. */
#include "plot.h"

#if SNNCL_HAVE_CAIRO
#include <cairo-svg.h>
#include <cairo.h>
#endif
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "snncl.h"

/* ---------------------------------------------------------------- output file -- */

int plot_format_of(const char *path, plot_format *out) {
    const char *dot = path ? strrchr(path, '.') : NULL, *slash = path ? strrchr(path, '/') : NULL;
    if (!dot || (slash && dot < slash)) return -1;
    if (strcasecmp(dot, ".png") == 0) *out = PLOT_PNG;
    else if (strcasecmp(dot, ".svg") == 0) *out = PLOT_SVG;
    else return -1;
    return 0;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

#if !SNNCL_HAVE_CAIRO
int plot_training_write(const char *path, const plot_training *d, char *err, size_t errlen) {
    (void)d;
    set_err(err, errlen, "%s: this snncl was built without cairo, so it draws no pictures", path ? path : "(null)");
    return -1;
}

int plot_raster_write(const char *path, const plot_raster *d, char *err, size_t errlen) {
    (void)d;
    set_err(err, errlen, "%s: this snncl was built without cairo, so it draws no pictures", path ? path : "(null)");
    return -1;
}
#else
typedef struct sink {
    FILE *f;
    int failed;
} sink;

static cairo_status_t sink_write(void *closure, const unsigned char *data, unsigned int length) {
    sink *s = closure;
    if (fwrite(data, 1, length, s->f) != length) {
        s->failed = errno ? errno : EIO;
        return CAIRO_STATUS_WRITE_ERROR;
    }
    return CAIRO_STATUS_SUCCESS;
}

typedef void (*draw_fn)(cairo_t *cr, const void *data, double w, double h);

/* Draws a w x h figure into path (format by extension) through path.tmp.<pid>. */
static int write_figure(const char *path, double w, double h, draw_fn draw, const void *data, char *err,
                        size_t errlen) {
    plot_format fmt;
    if (plot_format_of(path, &fmt) != 0) {
        set_err(err, errlen, "%s: a picture's name must end in .png or .svg", path ? path : "(null)");
        return -1;
    }
    snn_file *file = NULL;
    if (snn_file_begin(&file, path) != SNN_OK) {
        set_err(err, errlen, "%s", snn_last_error());
        return -1;
    }
    sink s = {snn_file_stream(file), 0};
    cairo_surface_t *surf;
    if (fmt == PLOT_SVG) {
        surf = cairo_svg_surface_create_for_stream(sink_write, &s, w, h);
        cairo_svg_surface_set_document_unit(surf, CAIRO_SVG_UNIT_PX);
    } else {
        surf = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)ceil(w), (int)ceil(h));
    }
    cairo_status_t cst = cairo_surface_status(surf);
    if (cst == CAIRO_STATUS_SUCCESS) {
        cairo_t *cr = cairo_create(surf);
        draw(cr, data, w, h);
        cst = cairo_status(cr);
        cairo_destroy(cr);
    }
    if (cst == CAIRO_STATUS_SUCCESS && fmt == PLOT_PNG) cst = cairo_surface_write_to_png_stream(surf, sink_write, &s);
    cairo_surface_finish(surf); /* SVG: writes the document */
    if (cst == CAIRO_STATUS_SUCCESS) cst = cairo_surface_status(surf);
    cairo_surface_destroy(surf);
    /* No cairo object is alive now: drop cairo's font caches, whose fontconfig patterns
     * are otherwise lost at exit (LeakSanitizer and valgrind report them). */
    cairo_debug_reset_static_data();
    if (cst != CAIRO_STATUS_SUCCESS || s.failed) {
        set_err(err, errlen, "%s: drawing failed: %s", path,
                s.failed ? strerror(s.failed) : cairo_status_to_string(cst));
        snn_file_abort(file);
        return -1;
    }
    if (snn_file_commit(file) != SNN_OK) {
        set_err(err, errlen, "%s", snn_last_error());
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ drawing helpers -- */

#define FONT "DejaVu Sans"
#define PI 3.14159265358979323846

typedef struct rgb {
    double r, g, b;
} rgb;

static const rgb INK = {0.13, 0.13, 0.13}, GREY = {0.45, 0.45, 0.45}, GRID = {0.90, 0.90, 0.90},
                 BLUE = {0.12, 0.47, 0.71}, ORANGE = {0.90, 0.42, 0.05}, GREEN = {0.17, 0.60, 0.24},
                 NOTE = {0.75, 0.22, 0.0}, SPIKE = {0.08, 0.12, 0.36};

static void color(cairo_t *cr, rgb c) { cairo_set_source_rgb(cr, c.r, c.g, c.b); }

/* Text with its anchor (x, y): ax 0 left, 0.5 centre, 1 right; ay 0 top, 0.5 middle,
 * 1 bottom of the font's line. Returns the advance width. */
static double text(cairo_t *cr, double x, double y, double size, int bold, double ax, double ay, const char *s) {
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t e;
    cairo_font_extents_t fe;
    cairo_text_extents(cr, s, &e);
    cairo_font_extents(cr, &fe);
    cairo_move_to(cr, x - ax * e.x_advance, y + fe.ascent - ay * (fe.ascent + fe.descent));
    cairo_show_text(cr, s);
    return e.x_advance;
}

static double text_width(cairo_t *cr, double size, int bold, const char *s) {
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

/* Vertical text reading upwards, centred on (x, y). */
static void text_up(cairo_t *cr, double x, double y, double size, const char *s) {
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, -PI / 2);
    text(cr, 0, 0, size, 0, 0.5, 0.5, s);
    cairo_restore(cr);
}

/* The nearest of 1, 2 or 5 times a power of ten to x > 0. */
static double nice_num(double x) {
    double p = pow(10.0, floor(log10(x))), f = x / p;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}

/* An axis range with round ends and a round tick step for data in [lo, hi]. */
typedef struct scale {
    double lo, hi, step;
    int decimals;
} scale;

static scale make_scale(double lo, double hi, int ticks) {
    if (!(hi > lo)) {
        double pad = fabs(lo) > 1e-12 ? fabs(lo) * 0.1 : 0.5;
        lo -= pad;
        hi += pad;
    }
    double step = nice_num((hi - lo) / (ticks - 1));
    scale s = {floor(lo / step + 1e-9) * step, ceil(hi / step - 1e-9) * step, step, 0};
    int d = (int)-floor(log10(step) + 1e-9);
    s.decimals = d > 0 ? d : 0;
    return s;
}

static void fmt_tick(char *buf, size_t len, double v, int decimals) {
    if (fabs(v) < 1e-12) v = 0; /* no "-0.0" */
    snprintf(buf, len, "%.*f", decimals, v);
}

typedef struct axes {
    double x, y, w, h; /* plot area in device units */
    scale sx, sy;
} axes;

static double px(const axes *a, double v) { return a->x + (v - a->sx.lo) / (a->sx.hi - a->sx.lo) * a->w; }
static double py(const axes *a, double v) { return a->y + a->h - (v - a->sy.lo) / (a->sy.hi - a->sy.lo) * a->h; }

/* Grid, frame, ticks from xt.lo to xt.hi and yt.lo to yt.hi (xt.step, yt.step apart)
 * with their labels, and the axis labels. */
static void draw_axes(cairo_t *cr, const axes *a, const scale *xt, const scale *yt, const char *xlabel,
                      const char *ylabel) {
    char buf[32];
    cairo_set_line_width(cr, 1.0);
    for (int k = 0;; k++) {
        double v = xt->lo + k * xt->step;
        if (v > xt->hi + 1e-9 * xt->step) break;
        double x = round(px(a, v)) + 0.5;
        color(cr, GRID);
        cairo_move_to(cr, x, a->y);
        cairo_line_to(cr, x, a->y + a->h);
        cairo_stroke(cr);
        color(cr, INK);
        cairo_move_to(cr, x, a->y + a->h);
        cairo_line_to(cr, x, a->y + a->h + 4);
        cairo_stroke(cr);
        fmt_tick(buf, sizeof buf, v, xt->decimals);
        text(cr, x, a->y + a->h + 6, 11, 0, 0.5, 0, buf);
    }
    for (int k = 0;; k++) {
        double v = yt->lo + k * yt->step;
        if (v > yt->hi + 1e-9 * yt->step) break;
        double y = round(py(a, v)) + 0.5;
        color(cr, GRID);
        cairo_move_to(cr, a->x, y);
        cairo_line_to(cr, a->x + a->w, y);
        cairo_stroke(cr);
        color(cr, INK);
        cairo_move_to(cr, a->x - 4, y);
        cairo_line_to(cr, a->x, y);
        cairo_stroke(cr);
        fmt_tick(buf, sizeof buf, v, yt->decimals);
        text(cr, a->x - 7, y, 11, 0, 1, 0.5, buf);
    }
    color(cr, GREY);
    cairo_rectangle(cr, round(a->x) + 0.5, round(a->y) + 0.5, round(a->w), round(a->h));
    cairo_stroke(cr);
    color(cr, INK);
    if (xlabel) text(cr, a->x + a->w / 2, a->y + a->h + 22, 12, 0, 0.5, 0, xlabel);
    if (ylabel) text_up(cr, a->x - 50, a->y + a->h / 2, 12, ylabel);
}

/* ------------------------------------------------------------ training curves -- */

typedef struct series {
    const char *label;
    rgb c;
    int dashed;
    size_t offset; /* of the double in plot_epoch */
} series;

static double series_value(const plot_training *d, const series *s, int e) {
    if (!d->hist[e].known) return NAN;
    double v;
    memcpy(&v, (const char *)&d->hist[e] + s->offset, sizeof v);
    return v;
}

/* A line through consecutive known epochs (broken where one is missing), a dot on each. */
static void draw_series(cairo_t *cr, const axes *a, const plot_training *d, const series *s) {
    color(cr, s->c);
    cairo_set_line_width(cr, 2.0);
    if (s->dashed) {
        const double dash[2] = {6, 4};
        cairo_set_dash(cr, dash, 2, 0);
    }
    int open = 0;
    for (int e = 0; e < d->epochs; e++) {
        double v = series_value(d, s, e);
        if (!isfinite(v)) {
            open = 0;
            continue;
        }
        if (open) cairo_line_to(cr, px(a, e + 1), py(a, v));
        else cairo_move_to(cr, px(a, e + 1), py(a, v));
        open = 1;
    }
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    for (int e = 0; e < d->epochs; e++) {
        double v = series_value(d, s, e);
        if (!isfinite(v)) continue;
        cairo_arc(cr, px(a, e + 1), py(a, v), s->dashed ? 2.5 : 3.5, 0, 2 * PI);
        cairo_fill(cr);
    }
}

/* Legend entries right-aligned on one line ending at x_right, centred on y. */
static void draw_legend(cairo_t *cr, double x_right, double y, const series *s, int n) {
    double x = x_right;
    for (int i = n - 1; i >= 0; i--) {
        double tw = text_width(cr, 11, 0, s[i].label);
        x -= tw;
        color(cr, INK);
        text(cr, x, y, 11, 0, 0, 0.5, s[i].label);
        x -= 26;
        color(cr, s[i].c);
        cairo_set_line_width(cr, 2.0);
        if (s[i].dashed) {
            const double dash[2] = {4, 3};
            cairo_set_dash(cr, dash, 2, 0);
        }
        cairo_move_to(cr, x, y);
        cairo_line_to(cr, x + 20, y);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        x -= 14;
    }
}

enum { PANEL_W = 400, PANEL_TOP = 96, PLOT_H = 250, FIG_BOTTOM = 52 };

/* One panel at x0: the first n_data series as lines, the first n_legend in the legend;
 * the y axis fits the data (and *extra_line, a dotted horizontal line) within
 * [clamp_lo, clamp_hi]. */
static void draw_panel(cairo_t *cr, const plot_training *d, double x0, const char *title, const char *ylabel,
                       const series *s, int n_data, int n_legend, double clamp_lo, double clamp_hi,
                       const double *extra_line) {
    double lo = INFINITY, hi = -INFINITY;
    int any = 0;
    for (int i = 0; i < n_data; i++)
        for (int e = 0; e < d->epochs; e++) {
            double v = series_value(d, &s[i], e);
            if (!isfinite(v)) continue;
            lo = fmin(lo, v);
            hi = fmax(hi, v);
            any = 1;
        }
    if (extra_line && any) {
        lo = fmin(lo, *extra_line);
        hi = fmax(hi, *extra_line);
    }
    if (!any) {
        lo = clamp_lo > -INFINITY ? clamp_lo : 0;
        hi = clamp_hi < INFINITY ? clamp_hi : 1;
    } else {
        double pad = (hi - lo) * 0.06;
        lo -= pad;
        hi += pad;
    }
    axes a = {x0 + 66, PANEL_TOP + 28, PANEL_W - 66 - 20, PLOT_H, {0, 1, 1, 0}, {0, 1, 1, 0}};
    a.sy = make_scale(lo, hi, 6);
    if (a.sy.lo < clamp_lo) a.sy.lo = clamp_lo;
    if (a.sy.hi > clamp_hi) a.sy.hi = clamp_hi;
    /* x: epochs 1 .. epochs with integer ticks, and room for the dots at both ends. */
    const int ne = d->epochs > 0 ? d->epochs : 1;
    const double step = ne <= 10 ? 1 : ceil(nice_num(ne / 8.0));
    const scale xt = {1, ne, step, 0};
    const double room = ne > 1 ? 0.04 * (ne - 1) : 0.5;
    a.sx = (scale){1 - room, ne + room, step, 0};
    color(cr, INK);
    text(cr, a.x, PANEL_TOP, 13, 1, 0, 0, title);
    draw_legend(cr, a.x + a.w, PANEL_TOP + 8, s, n_legend);
    draw_axes(cr, &a, &xt, &a.sy, "epoch", ylabel);
    cairo_save(cr);
    cairo_rectangle(cr, a.x - 5, a.y - 5, a.w + 10, a.h + 10); /* whole dots at the edges */
    cairo_clip(cr);
    if (extra_line && *extra_line >= a.sy.lo && *extra_line <= a.sy.hi) {
        const double dash[2] = {6, 4};
        color(cr, GREY);
        cairo_set_line_width(cr, 1.5);
        cairo_set_dash(cr, dash, 2, 0);
        cairo_move_to(cr, a.x, py(&a, *extra_line));
        cairo_line_to(cr, a.x + a.w, py(&a, *extra_line));
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
    }
    for (int i = 0; i < n_data; i++) draw_series(cr, &a, d, &s[i]);
    cairo_restore(cr);
    if (!any) {
        color(cr, GREY);
        text(cr, a.x + a.w / 2, a.y + a.h / 2, 12, 0, 0.5, 0.5, "no finished epochs yet");
    }
}

static void draw_training(cairo_t *cr, const void *data, double w, double h) {
    const plot_training *d = data;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_rectangle(cr, 0, 0, w, h);
    cairo_fill(cr);
    color(cr, INK);
    text(cr, 20, 14, 16, 1, 0, 0, d->title ? d->title : "training");
    if (d->subtitle) {
        color(cr, GREY);
        text(cr, 20, 38, 12, 0, 0, 0, d->subtitle);
    }
    if (d->note) {
        color(cr, NOTE);
        text(cr, 20, 58, 12, 0, 0, 0, d->note);
    }
    const series loss[2] = {{"loss", BLUE, 0, offsetof(plot_epoch, loss)},
                            {"cross-entropy", ORANGE, 1, offsetof(plot_epoch, cross_entropy)}};
    const series acc[2] = {{"train", BLUE, 0, offsetof(plot_epoch, train_accuracy)},
                           {"test", ORANGE, 0, offsetof(plot_epoch, test_accuracy)}};
    const series lyap[2] = {{"estimate", GREEN, 0, offsetof(plot_epoch, lyapunov)},
                            {"target", GREY, 1, 0}};
    draw_panel(cr, d, 0, "Loss", "mean over the epoch", loss, 2, 2, 0, INFINITY, NULL);
    draw_panel(cr, d, PANEL_W, "Accuracy", "fraction correct", acc, 2, 2, 0, 1, NULL);
    /* The target is a line of the panel, not a series: in the legend only. */
    if (d->lyapunov)
        draw_panel(cr, d, 2 * PANEL_W, "Lyapunov estimate", "largest exponent (epoch mean)", lyap, 1, 2,
                   -INFINITY, INFINITY, &d->lyap_target);
}

int plot_training_write(const char *path, const plot_training *d, char *err, size_t errlen) {
    double w = (d->lyapunov ? 3 : 2) * PANEL_W + 10, h = PANEL_TOP + 28 + PLOT_H + FIG_BOTTOM;
    return write_figure(path, w, h, draw_training, d, err, errlen);
}

/* -------------------------------------------------------------- spike rasters -- */

enum { RASTER_W = 1000, RASTER_LEFT = 84, RASTER_RIGHT = 24, LABEL_H = 22, RATE_H = 40, RATE_GAP = 6,
       TICKS_H = 34, PANEL_GAP = 14, HEADER_MIN = 72 };

static size_t raster_rows(const plot_raster *d, const plot_layer *l) {
    return l->neurons < d->max_rows ? l->neurons : d->max_rows;
}

/* Pixels per displayed neuron: whole pixels, larger for small layers. */
static int raster_ppr(size_t rows) {
    int p = rows ? (int)(200 / rows) : 1;
    return p < 1 ? 1 : p > 8 ? 8 : p;
}

static double header_h(const plot_raster *d, int *scale_out) {
    int s = 0;
    if (d->image && d->image_h > 0 && d->image_w > 0) {
        int big = d->image_h > d->image_w ? d->image_h : d->image_w;
        s = 120 / big;
        if (s < 1) s = 1;
    }
    if (scale_out) *scale_out = s;
    double h = s ? 16 + s * d->image_h + 22 : 0;
    return h > HEADER_MIN ? h : HEADER_MIN;
}

static double panel_h(const plot_raster *d, const plot_layer *l) {
    size_t rows = raster_rows(d, l);
    return LABEL_H + (double)rows * raster_ppr(rows) + RATE_GAP + RATE_H + TICKS_H;
}

static void draw_image(cairo_t *cr, const plot_raster *d, double x0, double y0, int s) {
    const int C = d->image_c, H = d->image_h, W = d->image_w, rgbimg = C == 3;
    const size_t n = (size_t)(rgbimg ? 3 : 1) * (size_t)H * (size_t)W;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++)
        if (isfinite(d->image[i])) {
            lo = fmin(lo, d->image[i]);
            hi = fmax(hi, d->image[i]);
        }
    if (!(hi > lo)) {
        lo = isfinite(lo) ? lo - 1 : 0;
        hi = lo + 1;
    }
    cairo_save(cr);
    cairo_set_antialias(cr, CAIRO_ANTIALIAS_NONE);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            double v[3];
            for (int c = 0; c < 3; c++) {
                float raw = d->image[(size_t)(rgbimg ? c : 0) * (size_t)H * (size_t)W + (size_t)y * (size_t)W + (size_t)x];
                v[c] = isfinite(raw) ? (raw - lo) / (hi - lo) : 0;
            }
            cairo_set_source_rgb(cr, v[0], v[1], v[2]);
            cairo_rectangle(cr, x0 + x * s, y0 + y * s, s, s);
            cairo_fill(cr);
        }
    cairo_restore(cr);
    color(cr, GREY);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, x0 - 0.5, y0 - 0.5, W * s + 1, H * s + 1);
    cairo_stroke(cr);
}

static void draw_layer(cairo_t *cr, const plot_raster *d, const plot_layer *l, double top, int last) {
    const size_t rows = raster_rows(d, l), N = l->neurons, T = (size_t)d->T;
    const int ppr = raster_ppr(rows);
    const double x = RASTER_LEFT, w = RASTER_W - RASTER_LEFT - RASTER_RIGHT, h = (double)rows * ppr;
    const double y = top + LABEL_H, colw = w / (double)T;
    char buf[160];

    color(cr, INK);
    double lw = text(cr, x, top + 2, 12, 1, 0, 0, l->label);
    size_t total = 0;
    for (size_t i = 0; i < T * N; i++) total += l->spikes[i];
    if (rows < N) {
        if (N % rows == 0) snprintf(buf, sizeof buf, "%zu of %zu neurons shown (every %zu%s)", rows, N, N / rows,
                                    N / rows == 2 ? "nd" : N / rows == 3 ? "rd" : "th");
        else snprintf(buf, sizeof buf, "%zu of %zu neurons shown, evenly spaced", rows, N);
    } else {
        snprintf(buf, sizeof buf, "all %zu neurons", N);
    }
    char line[320];
    snprintf(line, sizeof line, "   %s; %.1f%% of neuron-steps spiked", buf, 100.0 * (double)total / (double)(T * N));
    color(cr, GREY);
    text(cr, x + lw, top + 3, 11, 0, 0, 0, line);

    /* Alternate channel bands and the spikes. */
    cairo_save(cr);
    cairo_set_antialias(cr, CAIRO_ANTIALIAS_NONE);
    if (l->channels > 1 && rows >= 8 * l->channels) { /* bands of 8 rows or more */
        cairo_set_source_rgb(cr, 0.955, 0.962, 0.975);
        for (size_t c = 1; c < l->channels; c += 2) {
            size_t r0 = (c * N / l->channels * rows + N - 1) / N, r1 = ((c + 1) * N / l->channels * rows + N - 1) / N;
            cairo_rectangle(cr, x, y + (double)r0 * ppr, w, (double)(r1 - r0) * ppr);
        }
        cairo_fill(cr);
    }
    color(cr, SPIKE);
    const double bar = colw > 3 ? floor(colw * 0.8) : colw;
    for (size_t r = 0; r < rows; r++) {
        size_t n = rows < N ? r * N / rows : r;
        for (size_t t = 0; t < T; t++)
            if (l->spikes[t * N + n])
                cairo_rectangle(cr, round(x + (t + 0.5) * colw - bar / 2), y + (double)r * ppr, fmax(bar, 1),
                                ppr > 2 ? ppr - 1 : ppr);
    }
    cairo_fill(cr);
    cairo_restore(cr);

    /* Neuron axis: channel numbers at the channels' first rows for a convolutional
     * layer (its neurons are channel-major), neuron indices otherwise. */
    const int by_channel = l->channels > 1 && N % l->channels == 0;
    const double units = by_channel ? (double)l->channels : (double)N;
    double ystep = make_scale(0, units, 6).step;
    if (ystep < 1) ystep = 1;
    cairo_set_line_width(cr, 1.0);
    for (double v = 0; v < units; v += ystep) {
        double yy = round(y + v / units * h) + 0.5;
        color(cr, INK);
        cairo_move_to(cr, x - 4, yy);
        cairo_line_to(cr, x, yy);
        cairo_stroke(cr);
        fmt_tick(buf, sizeof buf, v, 0);
        text(cr, x - 7, yy, 10, 0, 1, 0.5, buf);
    }
    color(cr, GREY);
    cairo_rectangle(cr, x + 0.5, y + 0.5, round(w), round(h));
    cairo_stroke(cr);
    color(cr, INK);
    text_up(cr, 22, y + h / 2, 11, by_channel ? "neurons by channel" : "neuron");

    /* Population rate per step: the fraction of all the layer's neurons spiking. */
    const double ry = y + h + RATE_GAP;
    double maxf = 0;
    for (size_t t = 0; t < T; t++) {
        size_t k = 0;
        for (size_t n = 0; n < N; n++) k += l->spikes[t * N + n];
        maxf = fmax(maxf, (double)k / (double)N);
    }
    scale rs = make_scale(0, maxf > 0 ? maxf : 0.01, 3);
    rs.lo = 0;
    cairo_set_source_rgb(cr, 0.45, 0.55, 0.75);
    for (size_t t = 0; t < T; t++) {
        size_t k = 0;
        for (size_t n = 0; n < N; n++) k += l->spikes[t * N + n];
        double f = (double)k / (double)N, bh = f / rs.hi * RATE_H;
        cairo_rectangle(cr, x + (t + 0.5) * colw - bar / 2, ry + RATE_H - bh, fmax(bar, 1), bh);
    }
    cairo_fill(cr);
    color(cr, GREY);
    cairo_rectangle(cr, x + 0.5, round(ry) + 0.5, round(w), RATE_H);
    cairo_stroke(cr);
    color(cr, INK);
    snprintf(buf, sizeof buf, "%.*f%%", rs.decimals > 2 ? rs.decimals - 2 : 0, 100 * rs.hi);
    text(cr, x - 7, ry, 10, 0, 1, 0, buf);
    text(cr, x - 7, ry + RATE_H, 10, 0, 1, 1, "0");
    text_up(cr, 22, ry + RATE_H / 2, 10, "rate");

    /* Time axis under the rate strip. */
    size_t tstep = T <= 30 ? 1 : (size_t)nice_num((double)T / 15.0);
    if (tstep < 1) tstep = 1;
    const double ty = ry + RATE_H;
    for (size_t t = 0; t < T; t += tstep) {
        double xx = round(x + (t + 0.5) * colw) + 0.5;
        cairo_move_to(cr, xx, ty);
        cairo_line_to(cr, xx, ty + 4);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%zu", t);
        text(cr, xx, ty + 5, 10, 0, 0.5, 0, buf);
    }
    if (last) text(cr, x + w / 2, ty + 18, 12, 0, 0.5, 0, "time step");
}

static void draw_raster(cairo_t *cr, const void *data, double w, double h) {
    const plot_raster *d = data;
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_rectangle(cr, 0, 0, w, h);
    cairo_fill(cr);
    int s;
    double hh = header_h(d, &s), tx = 20;
    if (s) {
        draw_image(cr, d, 20, 16, s);
        color(cr, GREY);
        text(cr, 20 + d->image_w * s / 2.0, 16 + d->image_h * s + 4, 10, 0, 0.5, 0,
             d->image_label ? d->image_label : "input");
        tx = 20 + d->image_w * s + 24;
    }
    color(cr, INK);
    text(cr, tx, 18, 16, 1, 0, 0, d->title ? d->title : "spike raster");
    if (d->subtitle) {
        /* Lines separated by '\n'. */
        const char *p = d->subtitle;
        double y = 44;
        char line[512];
        while (*p) {
            const char *nl = strchr(p, '\n');
            size_t len = nl ? (size_t)(nl - p) : strlen(p);
            if (len >= sizeof line) len = sizeof line - 1;
            memcpy(line, p, len);
            line[len] = 0;
            color(cr, GREY);
            text(cr, tx, y, 12, 0, 0, 0, line);
            y += 18;
            p += len + (nl ? 1 : 0);
        }
    }
    double top = hh + 10;
    for (int i = 0; i < d->num_layers; i++) {
        draw_layer(cr, d, &d->layers[i], top, i == d->num_layers - 1);
        top += panel_h(d, &d->layers[i]) + PANEL_GAP;
    }
}

int plot_raster_write(const char *path, const plot_raster *d, char *err, size_t errlen) {
    if (d->T < 1 || d->num_layers < 1 || d->max_rows < 1) {
        set_err(err, errlen, "%s: nothing to draw", path);
        return -1;
    }
    double h = header_h(d, NULL) + 10;
    for (int i = 0; i < d->num_layers; i++) h += panel_h(d, &d->layers[i]) + PANEL_GAP;
    return write_figure(path, RASTER_W, h + 6, draw_raster, d, err, errlen);
}
#endif

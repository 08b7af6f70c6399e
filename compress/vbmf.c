/* vbmf.c — ranks by empirical variational Bayesian matrix factorisation (EVBMF, Nakajima,
 * Sugiyama, Babacan and Tomioka, JMLR 2013): the noise variance, then the singular values above it. */
#include "compress/tucker.h"

#include <math.h>
#include <stdlib.h>

/* Points of the coarse search over log(sigma^2) before the golden-section refinement: the
 * objective can have more than one local minimum, so a local method alone may stop early. */
#define EVB_GRID 256
#define EVB_GOLDEN_ITERS 100
/* The smallest noise variance tried, relative to the mean energy per entry: a matrix of exact
 * low rank would otherwise drive the optimum to sigma^2 = 0. */
#define EVB_SIGMA2_FLOOR 1e-14

/* Psi(tau) = log(tau + 1) + alpha log(tau / alpha + 1) - tau. The EVB solution keeps a component
 * only where this is negative (the paper's psi_1 at x = x(tau)). */
static double evb_psi(double tau, double alpha)
{
    return log1p(tau) + alpha * log1p(tau / alpha) - tau;
}

/* tau_(alpha), the positive zero of Psi (about 2.5129 sqrt(alpha)). Psi is concave with
 * Psi(0) = 0 and Psi'(0) = 1, so it is positive before its zero and negative after; it is still
 * positive at sqrt(alpha) for alpha in (0, 1], which brackets the zero for bisection. */
static double evb_tau_bar(double alpha)
{
    double lo = sqrt(alpha), hi = 2 * lo + 4;
    while (evb_psi(hi, alpha) > 0)
        hi *= 2;
    for (int i = 0; i < 200 && hi - lo > 1e-15 * hi; i++) {
        double mid = 0.5 * (lo + hi);
        if (evb_psi(mid, alpha) > 0)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

/* tau(x; alpha): the larger root of tau + alpha / tau = x - 1 - alpha, defined for
 * x >= (1 + sqrt(alpha))^2, which x_ = (1 + tau_)(1 + alpha / tau_) exceeds. */
static double evb_tau(double x, double alpha)
{
    double b = x - 1 - alpha, d = b * b - 4 * alpha;
    return 0.5 * (b + sqrt(d > 0 ? d : 0));
}

struct evb {
    const double *g2; /* squared singular values, descending */
    int l;            /* their count, the short side L */
    double m, alpha;  /* the long side M and alpha = L / M */
    double xbar;      /* x_ = (1 + tau_)(1 + alpha / tau_) */
};

/* The EVB free energy as a function of sigma^2, up to terms that do not depend on it:
 * sum_h psi(x_h) with x_h = g_h^2 / (M sigma^2), psi(x) = x - log x + [x > x_] psi_1(x) and
 * psi_1(x) = Psi(tau(x)). -log x_h = log sigma^2 + const, so zero singular values are harmless. */
static double evb_objective(const struct evb *e, double sigma2)
{
    double f = e->l * log(sigma2);
    for (int h = 0; h < e->l; h++) {
        double x = e->g2[h] / (e->m * sigma2);
        f += x;
        if (x > e->xbar)
            f += evb_psi(evb_tau(x, e->alpha), e->alpha);
    }
    return f;
}

/* The paper's interval for the estimate: at most the mean energy per entry, at least the larger
 * of g_{H+1}^2 / (M x_) and the mean of the squared tail from H+1, H = ceil(L / (1 + alpha)) - 1. */
static void evb_bounds(const struct evb *e, double *lo, double *hi)
{
    double total = 0;
    for (int h = 0; h < e->l; h++)
        total += e->g2[h];
    *hi = total / (e->l * e->m);
    int hb = (int)ceil(e->l / (1 + e->alpha)) - 1;
    if (hb < 0)
        hb = 0;
    if (hb > e->l - 1)
        hb = e->l - 1;
    double tail = 0;
    for (int h = hb; h < e->l; h++)
        tail += e->g2[h];
    double a = e->g2[hb] / (e->m * e->xbar), b = tail / (e->m * (e->l - hb));
    *lo = a > b ? a : b;
    if (*lo < *hi * EVB_SIGMA2_FLOOR)
        *lo = *hi * EVB_SIGMA2_FLOOR;
    if (*lo > *hi)
        *lo = *hi;
}

/* argmin of the objective over sigma^2 in [lo, hi]: a grid in log sigma^2, then golden section
 * inside the two cells around the best grid point. */
static double evb_sigma2(const struct evb *e, double lo, double hi)
{
    double ulo = log(lo), uhi = log(hi), step = (uhi - ulo) / (EVB_GRID - 1);
    if (!(step > 0))
        return hi;
    int best = 0;
    double fbest = evb_objective(e, lo);
    for (int j = 1; j < EVB_GRID; j++) {
        double f = evb_objective(e, exp(ulo + j * step));
        if (f < fbest) {
            fbest = f;
            best = j;
        }
    }
    double a = ulo + (best > 0 ? best - 1 : 0) * step;
    double b = ulo + (best < EVB_GRID - 1 ? best + 1 : EVB_GRID - 1) * step;
    const double phi = 0.5 * (sqrt(5.0) - 1);
    double c = b - phi * (b - a), d = a + phi * (b - a);
    double fc = evb_objective(e, exp(c)), fd = evb_objective(e, exp(d));
    for (int i = 0; i < EVB_GOLDEN_ITERS; i++) {
        if (fc < fd) {
            b = d, d = c, fd = fc;
            c = b - phi * (b - a);
            fc = evb_objective(e, exp(c));
        } else {
            a = c, c = d, fc = fd;
            d = a + phi * (b - a);
            fd = evb_objective(e, exp(d));
        }
    }
    double u = 0.5 * (a + b);
    /* The grid point wins if the refinement landed on a worse value (a kink at x = x_). */
    return evb_objective(e, exp(u)) <= fbest ? exp(u) : exp(ulo + best * step);
}

/* The EVB rank of singular values g (descending) of an L x M matrix, L <= M: those above
 * gamma_ = sqrt(M sigma^2 x_), at least 1. */
static int evb_rank(const double *g, double *g2, int l, int m)
{
    for (int h = 0; h < l; h++)
        g2[h] = g[h] * g[h];
    struct evb e = {.g2 = g2, .l = l, .m = m, .alpha = (double)l / m};
    double tau = evb_tau_bar(e.alpha);
    e.xbar = (1 + tau) * (1 + e.alpha / tau);
    double lo, hi;
    evb_bounds(&e, &lo, &hi);
    if (!(hi > 0))
        return 1; /* an all-zero matrix: nothing to keep, but a layer needs rank 1 */
    double thr = e.m * evb_sigma2(&e, lo, hi) * e.xbar;
    int r = 0;
    while (r < l && g2[r] > thr)
        r++;
    return r > 0 ? r : 1;
}

int vbmf_rank(const float *m, int rows, int cols, int *rank, struct err_msg *em)
{
    if (!m || !rank)
        return err_set(em, ERR_INVAL, "vbmf_rank: NULL matrix or output");
    if (rows < 1 || cols < 1)
        return err_set(em, ERR_RANGE, "vbmf_rank: matrix %dx%d has an empty side", rows, cols);
    int l = rows < cols ? rows : cols, mx = rows < cols ? cols : rows;
    if (l > TUCKER_MAX_DIM)
        return err_set(em, ERR_RANGE, "vbmf_rank: matrix %dx%d: short side over %d", rows, cols,
                       TUCKER_MAX_DIM);
    double *g = malloc(2 * (size_t)l * sizeof *g);
    if (!g)
        return err_set(em, ERR_NOMEM, "vbmf_rank: %d singular values", l);
    int rc = svd_values(m, rows, cols, g, em);
    if (!rc)
        *rank = evb_rank(g, g + l, l, mx);
    free(g);
    return rc;
}

int vbmf_conv_ranks(const float *w, int cout, int cin, int kh, int kw, int *rin, int *rout,
                    struct err_msg *em)
{
    if (!w || !rin || !rout)
        return err_set(em, ERR_INVAL, "vbmf_conv_ranks: NULL weight or output");
    const int dims[4] = {cout, cin, kh, kw};
    size_t n = 1;
    for (int d = 0; d < 4; d++) {
        if (dims[d] < 1 || dims[d] > TUCKER_MAX_DIM)
            return err_set(em, ERR_RANGE, "vbmf_conv_ranks: dimension %d = %d outside [1, %d]",
                           d, dims[d], TUCKER_MAX_DIM);
        if (n > TUCKER_MAX_WORK / (size_t)dims[d])
            return err_set(em, ERR_RANGE, "vbmf_conv_ranks: weight %dx%dx%dx%d too large", cout,
                           cin, kh, kw);
        n *= (size_t)dims[d];
    }
    int k = kh * kw, r0 = 0, r1 = 0;
    int rc = vbmf_rank(w, cout, cin * k, &r0, em);
    if (rc)
        return rc;
    /* The mode-1 unfolding: rows are input channels, W[i, o, y, x]. */
    float *wp = malloc(n * sizeof *wp);
    if (!wp)
        return err_set(em, ERR_NOMEM, "vbmf_conv_ranks: %zu floats", n);
    for (int o = 0; o < cout; o++)
        for (int i = 0; i < cin; i++)
            for (int j = 0; j < k; j++)
                wp[((size_t)i * cout + o) * k + j] = w[((size_t)o * cin + i) * k + j];
    rc = vbmf_rank(wp, cin, cout * k, &r1, em);
    free(wp);
    if (rc)
        return rc;
    *rout = r0;
    *rin = r1;
    return 0;
}

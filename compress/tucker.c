/* tucker.c — Tucker-2 of conv weights (HOSVD start, HOOI refinement), truncated SVD of fully
 * connected weights and singular values, in double precision through OpenBLAS and LAPACKE. */
#include "compress/tucker.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- checks shared by the entry points ---- */

static int check_dim(const char *what, int v, struct err_msg *em)
{
    if (v < 1 || v > TUCKER_MAX_DIM)
        return err_set(em, ERR_RANGE, "%s = %d outside [1, %d]", what, v, TUCKER_MAX_DIM);
    return 0;
}

static int check_rank(const char *what, int r, const char *dim_name, int dim, struct err_msg *em)
{
    if (r < 1 || r > dim)
        return err_set(em, ERR_RANGE, "rank %s = %d outside [1, %s = %d]", what, r, dim_name,
                       dim);
    return 0;
}

/* *acc *= v unless the product passes TUCKER_MAX_WORK; dimensions are already <= 1<<16, so the
 * division test is all that guards the 64-bit product. */
static int mul_bounded(size_t *acc, size_t v)
{
    if (v != 0 && *acc > TUCKER_MAX_WORK / v)
        return -1;
    *acc *= v;
    return 0;
}

static int check_work(size_t doubles, struct err_msg *em)
{
    if (doubles > TUCKER_MAX_WORK)
        return err_set(em, ERR_RANGE, "needs %zu doubles of workspace, more than the %zu allowed",
                       doubles, TUCKER_MAX_WORK);
    return 0;
}

static int check_finite(const float *w, size_t n, struct err_msg *em)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(w[i]))
            return err_set(em, ERR_INVAL, "weight %zu is not finite (%g)", i, (double)w[i]);
    return 0;
}

static int lapack_fail(const char *fn, lapack_int info, struct err_msg *em)
{
    if (info == LAPACK_WORK_MEMORY_ERROR || info == LAPACK_TRANSPOSE_MEMORY_ERROR)
        return err_set(em, ERR_NOMEM, "%s: no memory for its workspace", fn);
    return err_set(em, ERR_INVAL, "SVD did not converge (%s info %d)", fn, (int)info);
}

/* ---- small dense helpers ---- */

/* dst[b, a, k] = src[a, b, k]: brings the second index of a 3-way array to the front, so a mode
 * product or a Gram matrix over it is one BLAS call. */
static void swap01(const double *src, int na, int nb, int nk, double *dst)
{
    for (int a = 0; a < na; a++)
        for (int b = 0; b < nb; b++)
            memcpy(dst + ((size_t)b * na + a) * nk, src + ((size_t)a * nb + b) * nk,
                   (size_t)nk * sizeof *dst);
}

/* Upper triangle of g[n, n] = x x^T for x[n, k]: its eigenvectors are the left singular vectors
 * of x, at a fraction of an SVD's cost when k >> n (a conv's unfoldings are n x 9n). */
static void gram_upper(const double *x, int n, int k, double *g)
{
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, n, k, 1.0, x, k, 0.0, g, n);
}

/* Each column of v[n, r] gets a positive largest-magnitude entry, so the same weight always
 * yields the same factors (the GA caches them) whatever sign LAPACK happened to choose. */
static void fix_signs(double *v, int n, int r)
{
    for (int j = 0; j < r; j++) {
        int imax = 0;
        for (int i = 1; i < n; i++)
            if (fabs(v[(size_t)i * r + j]) > fabs(v[(size_t)imax * r + j]))
                imax = i;
        if (v[(size_t)imax * r + j] < 0)
            for (int i = 0; i < n; i++)
                v[(size_t)i * r + j] = -v[(size_t)i * r + j];
    }
}

/* The r leading eigenvectors of the symmetric g[n, n] (upper triangle read, then destroyed) as the
 * columns of v[n, r], strongest first; *sum gets the sum of their eigenvalues. wv holds n doubles,
 * isuppz 2r ints. */
static int top_eigvecs(double *g, int n, int r, double *v, double *wv, lapack_int *isuppz,
                       double *sum, struct err_msg *em)
{
    lapack_int m = 0;
    lapack_int info = LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'V', 'I', 'U', n, g, n, 0.0, 0.0, n - r + 1,
                                     n, 0.0, &m, wv, v, r, isuppz);
    if (info != 0)
        return lapack_fail("dsyevr", info, em);
    if (m != r)
        return err_set(em, ERR_INVAL, "SVD did not converge (dsyevr found %d of %d vectors)",
                       (int)m, r);
    /* dsyevr sorts ascending. */
    for (int i = 0; i < n; i++)
        for (int a = 0, b = r - 1; a < b; a++, b--) {
            double t = v[(size_t)i * r + a];
            v[(size_t)i * r + a] = v[(size_t)i * r + b];
            v[(size_t)i * r + b] = t;
        }
    fix_signs(v, n, r);
    double s = 0;
    for (int j = 0; j < r; j++)
        s += wv[j];
    *sum = s;
    return 0;
}

static double sumsq(const double *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += x[i] * x[i];
    return s;
}

/* ||W - Ŵ|| / ||W||, reading 0/0 as 0 (an all-zero weight is represented exactly). */
static double rel_from_sq(double diff2, double w2)
{
    if (w2 <= 0)
        return 0;
    return sqrt((diff2 > 0 ? diff2 : 0) / w2);
}

/* ---- Tucker-2 ---- */

/* One decomposition's sizes and the pieces of its single workspace block. */
struct t2 {
    int cout, cin, k, rin, rout; /* k = kh * kw */
    double *w;                   /* W[cout, cin, k]: the mode-0 unfolding */
    double *wp;                  /* W[cin, cout, k]: the mode-1 unfolding */
    double *s1, *s2;             /* scratch of max(rin * cout, rout * cin) * k */
    double *g;                   /* a Gram matrix, max(cout, cin)^2 */
    double *ev;                  /* eigenvectors, max(cout, cin) * max(rin, rout) */
    double *wv;                  /* eigenvalues, max(cout, cin) */
    double *ui, *uo;             /* U_in[rin, cin], U_out[cout, rout] */
    double *bi, *bo;             /* the best pair seen, for HOOI */
    lapack_int *isuppz;          /* 2 * max(rin, rout) */
    double w2;                   /* ||W||^2 */
};

static size_t t2_scratch(const struct t2 *t)
{
    size_t a = (size_t)t->rin * t->cout, b = (size_t)t->rout * t->cin;
    return (a > b ? a : b) * t->k;
}

/* Doubles in the block t2_alloc carves; n (= cout * cin * k) is already known to be
 * <= TUCKER_MAX_WORK, so every term stays far inside 64 bits. */
static size_t t2_block(const struct t2 *t, size_t n)
{
    size_t cmax = (size_t)(t->cout > t->cin ? t->cout : t->cin);
    size_t rmax = (size_t)(t->rin > t->rout ? t->rin : t->rout);
    size_t fac = (size_t)t->rin * t->cin + (size_t)t->rout * t->cout;
    size_t ints = (2 * rmax * sizeof(lapack_int) + sizeof(double) - 1) / sizeof(double);
    return 2 * n + 2 * t2_scratch(t) + cmax * cmax + cmax * rmax + cmax + 2 * fac + ints;
}

/* The block plus what dsyevr allocates itself: 26n doubles and 10n ints, and LAPACKE's
 * row-major copies of the matrix and the vectors. */
static size_t t2_work(const struct t2 *t, size_t n)
{
    size_t cmax = (size_t)(t->cout > t->cin ? t->cout : t->cin);
    size_t rmax = (size_t)(t->rin > t->rout ? t->rin : t->rout);
    return t2_block(t, n) + 36 * cmax + cmax * cmax + cmax * rmax;
}

static double *t2_carve(double **p, size_t n)
{
    double *r = *p;
    *p += n;
    return r;
}

static int t2_alloc(struct t2 *t, size_t n, double **block, struct err_msg *em)
{
    size_t cmax = (size_t)(t->cout > t->cin ? t->cout : t->cin);
    size_t rmax = (size_t)(t->rin > t->rout ? t->rin : t->rout);
    size_t total = t2_block(t, n);
    double *p = malloc(total * sizeof *p);
    if (!p)
        return err_set(em, ERR_NOMEM, "tucker2: %zu doubles of workspace", total);
    *block = p;
    t->w = t2_carve(&p, n);
    t->wp = t2_carve(&p, n);
    t->s1 = t2_carve(&p, t2_scratch(t));
    t->s2 = t2_carve(&p, t2_scratch(t));
    t->g = t2_carve(&p, cmax * cmax);
    t->ev = t2_carve(&p, cmax * rmax);
    t->wv = t2_carve(&p, cmax);
    t->ui = t2_carve(&p, (size_t)t->rin * t->cin);
    t->bi = t2_carve(&p, (size_t)t->rin * t->cin);
    t->uo = t2_carve(&p, (size_t)t->rout * t->cout);
    t->bo = t2_carve(&p, (size_t)t->rout * t->cout);
    /* The tail of a malloc block has no declared type; it is only ever used as ints. */
    t->isuppz = (lapack_int *)(void *)p;
    return 0;
}

/* U_in[r, i] = V[i, r]: the eigenvectors of the mode-1 Gram are U_in's rows. */
static void store_u_in(struct t2 *t)
{
    for (int r = 0; r < t->rin; r++)
        for (int i = 0; i < t->cin; i++)
            t->ui[(size_t)r * t->cin + i] = t->ev[(size_t)i * t->rin + r];
}

/* HOSVD: U_out from the Gram of the mode-0 unfolding, U_in from that of the mode-1 one. */
static int t2_hosvd(struct t2 *t, struct err_msg *em)
{
    double ignored;
    gram_upper(t->w, t->cout, t->cin * t->k, t->g);
    int rc = top_eigvecs(t->g, t->cout, t->rout, t->uo, t->wv, t->isuppz, &ignored, em);
    if (rc)
        return rc;
    gram_upper(t->wp, t->cin, t->cout * t->k, t->g);
    rc = top_eigvecs(t->g, t->cin, t->rin, t->ev, t->wv, t->isuppz, &ignored, em);
    if (rc)
        return rc;
    store_u_in(t);
    return 0;
}

/* HOOI half-step: U_out from the mode-0 unfolding of W ×_1 U_in^T. */
static int t2_update_out(struct t2 *t, struct err_msg *em)
{
    int ok = t->cout * t->k;
    double ignored;
    /* s1[r, o, k] = Σ_i U_in[r, i] W[i, o, k] */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, t->rin, ok, t->cin, 1.0, t->ui, t->cin,
                t->wp, ok, 0.0, t->s1, ok);
    swap01(t->s1, t->rin, t->cout, t->k, t->s2);
    gram_upper(t->s2, t->cout, t->rin * t->k, t->g);
    return top_eigvecs(t->g, t->cout, t->rout, t->uo, t->wv, t->isuppz, &ignored, em);
}

/* HOOI half-step: U_in from the mode-1 unfolding of W ×_0 U_out^T. The kept eigenvalues sum to
 * ||core||^2 for the new pair, which is all the error needs (Ŵ is an orthogonal projection of W). */
static int t2_update_in(struct t2 *t, double *core2, struct err_msg *em)
{
    int ik = t->cin * t->k;
    /* s1[s, i, k] = Σ_o U_out[o, s] W[o, i, k] */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t->rout, ik, t->cout, 1.0, t->uo,
                t->rout, t->w, ik, 0.0, t->s1, ik);
    swap01(t->s1, t->rout, t->cin, t->k, t->s2);
    gram_upper(t->s2, t->cin, t->rout * t->k, t->g);
    int rc = top_eigvecs(t->g, t->cin, t->rin, t->ev, t->wv, t->isuppz, core2, em);
    if (rc)
        return rc;
    store_u_in(t);
    return 0;
}

/* core[s, r, k] = Σ_{o,i} U_out[o, s] W[o, i, k] U_in[r, i], left in s2. */
static void t2_core(struct t2 *t)
{
    int ik = t->cin * t->k, sk = t->rout * t->k;
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t->rout, ik, t->cout, 1.0, t->uo,
                t->rout, t->w, ik, 0.0, t->s1, ik);
    swap01(t->s1, t->rout, t->cin, t->k, t->s2);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, t->rin, sk, t->cin, 1.0, t->ui, t->cin,
                t->s2, sk, 0.0, t->s1, sk);
    swap01(t->s1, t->rin, t->rout, t->k, t->s2);
}

/* HOOI rounds from the HOSVD start; keeps the best pair in ui/uo. Each round can only lower the
 * error in exact arithmetic; a round that rounding makes worse is undone and ends the search. */
static int t2_hooi(struct t2 *t, int iters, struct err_msg *em)
{
    size_t ni = (size_t)t->rin * t->cin, no = (size_t)t->rout * t->cout;
    if (iters == 0)
        return 0;
    t2_core(t);
    double err = rel_from_sq(t->w2 - sumsq(t->s2, (size_t)t->rout * t->rin * t->k), t->w2);
    for (int it = 0; it < iters; it++) {
        memcpy(t->bi, t->ui, ni * sizeof *t->ui);
        memcpy(t->bo, t->uo, no * sizeof *t->uo);
        double core2 = 0;
        int rc = t2_update_out(t, em);
        if (!rc)
            rc = t2_update_in(t, &core2, em);
        if (rc)
            return rc;
        double e = rel_from_sq(t->w2 - core2, t->w2);
        if (e > err) {
            memcpy(t->ui, t->bi, ni * sizeof *t->ui);
            memcpy(t->uo, t->bo, no * sizeof *t->uo);
            break;
        }
        double gain = err - e;
        err = e;
        if (gain < TUCKER_HOOI_TOL)
            break;
    }
    return 0;
}

/* Writes the factors as floats and measures ||W - Ŵ||^2 with Ŵ rebuilt from those floats, so the
 * reported error is the one the compressed layer will have. */
static double t2_emit(struct t2 *t, float *u_in, float *core, float *u_out)
{
    size_t ni = (size_t)t->rin * t->cin, no = (size_t)t->rout * t->cout;
    size_t nc = (size_t)t->rout * t->rin * t->k, n = (size_t)t->cout * t->cin * t->k;
    for (size_t j = 0; j < ni; j++)
        t->ui[j] = u_in[j] = (float)t->ui[j];
    for (size_t j = 0; j < no; j++)
        t->uo[j] = u_out[j] = (float)t->uo[j];
    for (size_t j = 0; j < nc; j++)
        t->s2[j] = core[j] = (float)t->s2[j];
    int sk = t->rout * t->k, ik = t->cin * t->k;
    swap01(t->s2, t->rout, t->rin, t->k, t->s1); /* [r, s, k] */
    /* s2[i, s, k] = Σ_r U_in[r, i] core[s, r, k] */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, t->cin, sk, t->rin, 1.0, t->ui, t->cin,
                t->s1, sk, 0.0, t->s2, sk);
    swap01(t->s2, t->cin, t->rout, t->k, t->s1); /* [s, i, k] */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, t->cout, ik, t->rout, 1.0, t->uo,
                t->rout, t->s1, ik, 0.0, t->wp, ik);
    double d2 = 0;
    for (size_t j = 0; j < n; j++) {
        double d = t->w[j] - t->wp[j];
        d2 += d * d;
    }
    return d2;
}

static int t2_check(const float *w, int cout, int cin, int kh, int kw, int rin, int rout,
                    int hooi_iters, size_t *n, struct err_msg *em)
{
    int rc;
    if ((rc = check_dim("cout", cout, em)) || (rc = check_dim("cin", cin, em)) ||
        (rc = check_dim("kh", kh, em)) || (rc = check_dim("kw", kw, em)))
        return rc;
    if ((rc = check_rank("rin", rin, "cin", cin, em)) ||
        (rc = check_rank("rout", rout, "cout", cout, em)))
        return rc;
    if (hooi_iters < 0)
        return err_set(em, ERR_RANGE, "hooi_iters = %d is negative", hooi_iters);
    size_t m = (size_t)cout;
    if (mul_bounded(&m, (size_t)cin) || mul_bounded(&m, (size_t)kh) || mul_bounded(&m, (size_t)kw))
        return err_set(em, ERR_RANGE, "weight %dx%dx%dx%d has more than %zu elements", cout, cin,
                       kh, kw, TUCKER_MAX_WORK);
    *n = m;
    return check_finite(w, m, em);
}

int tucker2_decompose(const float *w, int cout, int cin, int kh, int kw, int rin, int rout,
                      int hooi_iters, float *u_in, float *core, float *u_out, double *rel_err,
                      struct err_msg *em)
{
    if (!w || !u_in || !core || !u_out)
        return err_set(em, ERR_INVAL, "tucker2: NULL weight or output");
    size_t n = 0;
    int rc = t2_check(w, cout, cin, kh, kw, rin, rout, hooi_iters, &n, em);
    if (rc)
        return rc;
    struct t2 t = {.cout = cout, .cin = cin, .k = kh * kw, .rin = rin, .rout = rout};
    if ((rc = check_work(t2_work(&t, n), em)))
        return rc;
    double *block = NULL;
    if ((rc = t2_alloc(&t, n, &block, em)))
        return rc;
    for (size_t j = 0; j < n; j++)
        t.w[j] = w[j];
    swap01(t.w, cout, cin, t.k, t.wp);
    t.w2 = sumsq(t.w, n);
    rc = t2_hosvd(&t, em);
    if (!rc)
        rc = t2_hooi(&t, hooi_iters, em);
    if (!rc) {
        t2_core(&t);
        double d2 = t2_emit(&t, u_in, core, u_out);
        if (rel_err)
            *rel_err = rel_from_sq(d2, t.w2);
    }
    free(block);
    return rc;
}

/* ---- matrices ---- */

/* A matrix may be long (a Gemm's input can be a flattened map of 10^5 values) but its short side
 * is bounded like a conv dimension: the SVD's workspace grows with its square. */
static int mat_check(const float *m, int rows, int cols, size_t *n, struct err_msg *em)
{
    if (rows < 1 || cols < 1)
        return err_set(em, ERR_RANGE, "matrix %dx%d has an empty side", rows, cols);
    int mn = rows < cols ? rows : cols;
    if (mn > TUCKER_MAX_DIM)
        return err_set(em, ERR_RANGE, "matrix %dx%d: short side over %d", rows, cols,
                       TUCKER_MAX_DIM);
    size_t k = (size_t)rows;
    if (mul_bounded(&k, (size_t)cols))
        return err_set(em, ERR_RANGE, "matrix %dx%d has more than %zu elements", rows, cols,
                       TUCKER_MAX_WORK);
    *n = k;
    return check_finite(m, k, em);
}

/* Doubles dgesdd needs beside its input (LAPACK's documented sizes, generously rounded, plus
 * LAPACKE's row-major copies of the input and the vectors). */
static size_t gesdd_work(size_t rows, size_t cols, int vectors)
{
    size_t mn = rows < cols ? rows : cols, mx = rows < cols ? cols : rows;
    size_t w = vectors ? 5 * mn * mn + 5 * mn + mx : 7 * mn + mx;
    return w + 8 * mn + rows * cols + (vectors ? rows * mn + mn * cols : 0);
}

int svd_values(const float *m, int rows, int cols, double *s, struct err_msg *em)
{
    if (!m || !s)
        return err_set(em, ERR_INVAL, "svd_values: NULL matrix or output");
    size_t n = 0;
    int rc = mat_check(m, rows, cols, &n, em);
    if (rc)
        return rc;
    int mn = rows < cols ? rows : cols;
    if ((rc = check_work(n + (size_t)mn + gesdd_work((size_t)rows, (size_t)cols, 0), em)))
        return rc;
    double *a = malloc((n + (size_t)mn) * sizeof *a);
    if (!a)
        return err_set(em, ERR_NOMEM, "svd_values: %zu doubles", n + (size_t)mn);
    double *sv = a + n;
    for (size_t j = 0; j < n; j++)
        a[j] = m[j];
    lapack_int info =
        LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'N', rows, cols, a, cols, sv, NULL, 1, NULL, cols);
    if (info != 0)
        rc = lapack_fail("dgesdd", info, em);
    else
        memcpy(s, sv, (size_t)mn * sizeof *s);
    free(a);
    return rc;
}

/* ||W - B A||^2 for the float factors, a block of rows at a time so the product never needs a
 * second out x in buffer. ad[r, in], bd[out, r] hold the factors as doubles; tmp holds
 * SVD_ROW_BLOCK rows. */
#define SVD_ROW_BLOCK 64
static double svd_diff2(const float *w, int out, int in, int r, const double *ad,
                        const double *bd, double *tmp)
{
    double d2 = 0;
    for (int o0 = 0; o0 < out; o0 += SVD_ROW_BLOCK) {
        int nr = out - o0 < SVD_ROW_BLOCK ? out - o0 : SVD_ROW_BLOCK;
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, in, r, 1.0,
                    bd + (size_t)o0 * r, r, ad, in, 0.0, tmp, in);
        const float *wr = w + (size_t)o0 * in;
        for (size_t j = 0; j < (size_t)nr * in; j++) {
            double d = wr[j] - tmp[j];
            d2 += d * d;
        }
    }
    return d2;
}

int svd_truncate(const float *w, int out, int in, int r, float *a, float *b, double *rel_err,
                 struct err_msg *em)
{
    if (!w || !a || !b)
        return err_set(em, ERR_INVAL, "svd_truncate: NULL weight or output");
    size_t n = 0;
    int rc = mat_check(w, out, in, &n, em);
    if (rc)
        return rc;
    int mn = out < in ? out : in;
    if ((rc = check_rank("r", r, "min(out, in)", mn, em)))
        return rc;
    size_t nu = (size_t)out * mn, nv = (size_t)mn * in, nt = (size_t)SVD_ROW_BLOCK * in;
    size_t total = n + nu + nv + (size_t)mn + nt;
    if ((rc = check_work(total + gesdd_work((size_t)out, (size_t)in, 1), em)))
        return rc;
    double *wd = malloc(total * sizeof *wd);
    if (!wd)
        return err_set(em, ERR_NOMEM, "svd_truncate: %zu doubles", total);
    double *u = wd + n, *vt = u + nu, *s = vt + nv, *tmp = s + mn;
    for (size_t j = 0; j < n; j++)
        wd[j] = w[j];
    lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', out, in, wd, in, s, u, mn, vt, in);
    if (info != 0) {
        free(wd);
        return lapack_fail("dgesdd", info, em);
    }
    /* The balanced split: both factors carry sqrt(S), so neither dwarfs the other when
     * fine-tuning updates them with one learning rate. wd (destroyed by dgesdd) takes B. */
    for (int j = 0; j < r; j++) {
        double sq = sqrt(s[j]);
        for (int c = 0; c < in; c++) {
            size_t q = (size_t)j * in + c;
            vt[q] = a[q] = (float)(sq * vt[q]);
        }
    }
    for (int o = 0; o < out; o++)
        for (int j = 0; j < r; j++) {
            size_t q = (size_t)o * r + j;
            wd[q] = b[q] = (float)(u[(size_t)o * mn + j] * sqrt(s[j]));
        }
    if (rel_err) {
        double w2 = 0;
        for (size_t j = 0; j < n; j++)
            w2 += (double)w[j] * w[j];
        *rel_err = rel_from_sq(svd_diff2(w, out, in, r, vt, wd, tmp), w2);
    }
    free(wd);
    return 0;
}

/* tucker.h — internal to compress/: Tucker-2 of conv weights (HOSVD + HOOI), truncated SVD of
 * fully connected weights, singular values, and VBMF rank selection. The math only, no graphs. */
#ifndef ACTIOND_COMPRESS_TUCKER_H
#define ACTIOND_COMPRESS_TUCKER_H

#include "common/err.h"

/* Each of Cout, Cin, kh, kw and the short side of a matrix is at most this: far above any real
 * layer, and it keeps every product in 64 bits and every LAPACK dimension in an int. */
#define TUCKER_MAX_DIM (1 << 16)
/* The doubles one call may allocate (2 GiB): the weight copies, Gram matrices and factors. A
 * request above it is ERR_RANGE before anything is allocated. */
#define TUCKER_MAX_WORK ((size_t)1 << 28)
/* HOOI stops when a round lowers the relative error by less than this. */
#define TUCKER_HOOI_TOL 1e-7

/* Tucker-2 of a conv weight: HOSVD start (leading left singular vectors of the mode-0 (Cout) and
 * mode-1 (Cin) unfoldings), then `hooi_iters` rounds of HOOI (alternating: fix U_in, take the leading
 * left singular vectors of the mode-0 unfolding of W ×_1 U_in^T; then the same for U_in); stop early
 * when the relative error stops improving (< 1e-7 change). Outputs in nn's layouts:
 * u_in[Rin, Cin], core[Rout, Rin, kh, kw], u_out[Cout, Rout]; core = W ×_0 U_out^T ×_1 U_in^T.
 * rel_err (may be NULL) = ||W - Ŵ||_F / ||W||_F, Ŵ rebuilt from the float outputs (0 when W = 0).
 * Outputs are untouched on failure. */
int tucker2_decompose(const float *w, int cout, int cin, int kh, int kw, int rin, int rout,
                      int hooi_iters, float *u_in, float *core, float *u_out, double *rel_err,
                      struct err_msg *em);

/* Truncated SVD of W[out, in]: W ≈ B A, A[r, in] = sqrt(S) V^T rows, B[out, r] = U sqrt(S)
 * (balanced split). rel_err as above. */
int svd_truncate(const float *w, int out, int in, int r, float *a, float *b, double *rel_err,
                 struct err_msg *em);

/* Singular values (descending) of a rows×cols matrix; s holds min(rows, cols). */
int svd_values(const float *m, int rows, int cols, double *s, struct err_msg *em);

/* Rank by empirical variational Bayesian matrix factorisation (EVBMF, Nakajima et al. 2013, as used
 * for Tucker ranks by Kim et al. 2016): noise variance estimated by minimising the EVBMF objective,
 * then the number of singular values above the EVBMF threshold. Returns the rank (>= 1) in *rank. */
int vbmf_rank(const float *m, int rows, int cols, int *rank, struct err_msg *em);

/* The ranks VBMF picks for a conv weight: *rout from the mode-0 (Cout x Cin*kh*kw) unfolding,
 * *rin from the mode-1 (Cin x Cout*kh*kw) unfolding. */
int vbmf_conv_ranks(const float *w, int cout, int cin, int kh, int kw, int *rin, int *rout,
                    struct err_msg *em);

#endif

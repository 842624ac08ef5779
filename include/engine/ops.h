/* ops -- forward/backward kernels of the GPT-2 student (fp32).
 *
 * Shape legend:
 *   B  rows in a micro-batch        T  tokens per row (sequence length)
 *   N  = B*T token positions        C  channels (d_model)
 *   OC output channels of a linear  V  vocabulary size
 *   NH attention heads              hs = C/NH channels per head
 *   P  maximum positions (rows of the position embedding)
 *   M  positions whose logits are needed (the loss rows)
 *
 * Conventions (after karpathy/llm.c): outputs first; no allocation inside a
 * kernel (workspaces are passed in); backward kernels ACCUMULATE (+=) into
 * every gradient they produce, so the caller zeroes gradients once per step.
 * Linear weights are [OC, C] (PyTorch layout) and never repacked: all matrix
 * products go through cblas_sgemm.  Elementwise kernels run on the util
 * thread pool; reductions over rows run per column range, in row order,
 * so results do not depend on the thread count.  Each optimised kernel has a
 * naive reference (ops_*_naive) used by tests/unit/test_ops.c.
 *
 * Attention packing: seg[i] is the index (within its row) of the first token
 * of the document that token i belongs to; query t attends to keys
 * [seg[t], t] of its row only, so packed examples never see each other.
 */
#ifndef HDISTILL_OPS_H
#define HDISTILL_OPS_H

#include <stddef.h>

/* x[N,C] = wte[tok[i]] + wpe[pos[i]] */
void ops_encoder_forward(float *out, const int *tok, const int *pos, const float *wte,
                         const float *wpe, int N, int C);
/* dwte[tok[i]] += dout[i]; dwpe[pos[i]] += dout[i] */
void ops_encoder_backward(float *dwte, float *dwpe, const float *dout, const int *tok,
                          const int *pos, int N, int C);

/* out[N,C] = (inp - mean) * rstd * w + b; stores mean[N], rstd[N] (eps 1e-5) */
void ops_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                           const float *b, int N, int C);
/* dinp += ..., dw += ..., db += ... (dinp rows in parallel; dw/db by column
 * ranges, each column summed over rows in order) */
void ops_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *w, const float *mean, const float *rstd, int N, int C);

/* out[N,OC] = inp[N,C] @ w[OC,C]^T + bias[OC] (bias may be NULL) */
void ops_matmul_forward(float *out, const float *inp, const float *w, const float *bias, int N,
                        int C, int OC);
/* Rows a matrix product with OC outputs must have so that each row's result
 * does not depend on how many rows are computed together: OpenBLAS takes a
 * different kernel (another summation order) for products with few rows
 * (seen here: rows * OC below about 1200), so decoding, whose row counts
 * change with the batch, pads its products to at least this many rows
 * (tests/unit/test_ops.c checks the property for the model's shapes). */
int ops_matmul_min_rows(int OC);
/* ops_matmul_forward with N padded to ops_matmul_min_rows(OC) rows: inp and
 * out must have room for that many rows (the extra rows are computed and
 * ignored); row results are then the same for any N. */
void ops_matmul_forward_rows(float *out, const float *inp, const float *w, const float *bias, int N, int C, int OC);

/* dinp[N,C] += dout @ w; dw[OC,C] += dout^T @ inp; dbias[OC] += colsum(dout).
 * dinp/dbias may be NULL. */
void ops_matmul_backward(float *dinp, float *dw, float *dbias, const float *dout,
                         const float *inp, const float *w, int N, int C, int OC);

/* Causal self-attention over packed rows.
 * qkv[N,3C] (q | k | v, heads contiguous inside each), seg[N];
 * out[N,C]; att[B,NH,T,T] keeps the probabilities for backward. */
void ops_attention_forward(float *out, float *att, const float *qkv, const int *seg, int B, int T,
                           int C, int NH);
/* dqkv += ...; datt: workspace [B,NH,T,T] */
void ops_attention_backward(float *dqkv, float *datt, const float *dout, const float *qkv,
                            const float *att, const int *seg, int B, int T, int C, int NH);

/* GELU, tanh approximation (Hendrycks & Gimpel 2016), as GPT-2. */
void ops_gelu_forward(float *out, const float *inp, long n);
void ops_gelu_backward(float *dinp, const float *inp, const float *dout, long n); /* dinp += */

/* out = a + b */
void ops_residual_forward(float *out, const float *a, const float *b, long n);

/* Rows of a [N,C] matrix: dst[m] = src[idx[m]] for m < M. */
void ops_gather_rows(float *dst, const float *src, const int *idx, int M, int C);
/* dst[idx[m]] += src[m] (idx distinct). */
void ops_scatter_add_rows(float *dst, const float *src, const int *idx, int M, int C);

/* Log-probability of the target under softmax(logits):
 * logp[m] = logits[m, tgt[m]] - lse[m], lse[m] = log sum_v exp(logits[m, v]). */
void ops_logprob_forward(float *logp, float *lse, const float *logits, const int *tgt, int M,
                         int V);
/* Overwrites logits[M,V] in place with dL/dlogits = g[m] * (onehot(tgt) - softmax),
 * where g[m] = dL/dlogp[m] (e.g. -weight for a cross-entropy). */
void ops_logprob_backward(float *logits, const float *lse, const int *tgt, const float *g, int M,
                          int V);

/* Sum of squares of x[0..n) in double, summed in fixed blocks (deterministic). */
double ops_sumsq(const float *x, long n);
void ops_scale(float *x, float s, long n);

/* One AdamW step (Loshchilov & Hutter 2019) on n parameters with bias
 * correction for step t >= 1: m,v moments, decoupled weight decay wd. */
void ops_adamw(float *p, const float *g, float *m, float *v, long n, float lr, float beta1,
               float beta2, float eps, float wd, int t);

/* ---- naive references (tests only; slow, single-threaded, double sums) ---- */
void ops_layernorm_forward_naive(float *out, float *mean, float *rstd, const float *inp,
                                 const float *w, const float *b, int N, int C);
void ops_layernorm_backward_naive(float *dinp, float *dw, float *db, const float *dout,
                                  const float *inp, const float *w, const float *mean,
                                  const float *rstd, int N, int C);
void ops_matmul_forward_naive(float *out, const float *inp, const float *w, const float *bias,
                              int N, int C, int OC);
void ops_matmul_backward_naive(float *dinp, float *dw, float *dbias, const float *dout,
                               const float *inp, const float *w, int N, int C, int OC);
void ops_attention_forward_naive(float *out, float *att, const float *qkv, const int *seg, int B,
                                 int T, int C, int NH);
void ops_attention_backward_naive(float *dqkv, const float *dout, const float *qkv,
                                  const float *att, const int *seg, int B, int T, int C, int NH);
void ops_gelu_forward_naive(float *out, const float *inp, long n);
void ops_gelu_backward_naive(float *dinp, const float *inp, const float *dout, long n);
void ops_logprob_forward_naive(float *logp, float *lse, const float *logits, const int *tgt,
                               int M, int V);
void ops_logprob_backward_naive(float *logits, const float *lse, const int *tgt, const float *g,
                                int M, int V);
void ops_adamw_naive(float *p, const float *g, float *m, float *v, long n, float lr, float beta1,
                     float beta2, float eps, float wd, int t);

/* Vectorisable exp for the softmax/GELU loops (max rel. error ~2e-7 on
 * [-87, 88]; inputs below -87.3 give exp(-87.3) ~ 1.2e-38, above 88 exp(88)).
 * Exposed for tests. */
float ops_expf(float x);

#endif

/* ops_llama -- forward/backward kernels of the Llama-style student (fp32):
 * RMSNorm, rotary position embeddings, SwiGLU, grouped-query attention,
 * token embedding.  GEMMs and the log-probability kernels are ops.h's.
 *
 * Shape legend (ops.h's, plus):
 *   NH  query heads             KV  key/value heads (NH % KV == 0)
 *   G   = NH/KV query heads per key/value head (grouped-query attention)
 *   hd  channels per head (need not be C/NH)
 *   QD  = NH*hd, KD = KV*hd     QKV = QD + 2*KD (one fused q|k|v row)
 *   F   SwiGLU hidden width     H   heads in a strided-rows call
 *
 * Conventions as ops.h: outputs first; no allocation inside a kernel;
 * parameter gradients ACCUMULATE (+=); rows run on the util thread pool,
 * weight-gradient reductions by column range with rows summed in order, so
 * results do not depend on the thread count.  Two kernels transform an
 * activation gradient in place (stated where declared): the rotary
 * embedding is a rotation, and the per-head q/k norm's input gradient
 * replaces its output gradient.  Each optimised kernel has a naive
 * reference (ops_*_naive) used by tests/unit/test_ops_llama.c.
 *
 * Strided rows: a [N, H, D] view at x with row stride `ld` means element
 * (i, h, j) at x[i*ld + h*D + j]; the residual stream is H = 1, D = ld = C;
 * the q (or k) heads of a fused q|k|v row are H = NH (KV), D = hd, ld = QKV.
 */
#ifndef HDISTILL_OPS_LLAMA_H
#define HDISTILL_OPS_LLAMA_H

#include <stddef.h>

/* ---- token embedding ---------------------------------------------------------- */

/* out[N,C] = wte[tok[i]] */
void ops_embedding_forward(float *out, const int *tok, const float *wte, int N, int C);
/* dwte[tok[i]] += dout[i] (by column range, rows in order) */
void ops_embedding_backward(float *dwte, const float *dout, const int *tok, int N, int C);

/* ---- RMSNorm (Zhang & Sennrich 2019) -------------------------------------------
 * out = x * rstd * w, rstd = 1/sqrt(mean_j x_j^2 + eps), per row of D
 * channels of a strided [N, H, D] view (out and inp share the layout);
 * rstd[N*H] is kept for backward.  Computed in float32 as Hugging Face's
 * LlamaRMSNorm does. */
void ops_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int H, int D,
                         int ld, float eps);
/* dw[D] += sum over rows of dout * x * rstd.
 * acc 1: dinp += dL/dinp (dinp and dout distinct);
 * acc 0: dinp = dL/dinp, and dinp may be dout (in place). */
void ops_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                          const float *rstd, int N, int H, int D, int ld, int acc);

/* ---- rotary position embeddings (Su et al. 2021), Hugging Face's layout -----------
 * Half-split pairs: channel j and j + hd/2 of a head rotate together by the
 * angle pos * inv_freq[j], j < hd/2 ("rotate_half"). */

/* inv_freq[hd/2] = theta^(-2j/hd); with llama3 (Llama 3.1 frequency scaling,
 * as transformers' _compute_llama3_parameters): wavelengths 2pi/f above
 * orig/low_ff are divided by factor, below orig/high_ff kept, and in between
 * interpolated with s = (orig/wavelen - low_ff) / (high_ff - low_ff):
 * f' = (1 - s) f / factor + s f.  In double. */
void ops_rope_inv_freq(double *inv_freq, int hd, double theta, int llama3, double factor, double low_ff,
                       double high_ff, int orig);
/* cs[N, hd] = cos(pos[i] * inv_freq[j]) for j < hd/2, then the sines;
 * angles and cos/sin in double, rounded to float. */
void ops_rope_table(float *cs, const int *pos, const double *inv_freq, int N, int hd);
/* In place over a strided [N, H, hd] view: x <- rotate(x, angle of row i). */
void ops_rope_forward(float *x, const float *cs, int N, int H, int hd, int ld);
/* In place: dx <- rotate(dx, -angle) (the transpose of the rotation), so a
 * gradient w.r.t. the rotated values becomes one w.r.t. the inputs. */
void ops_rope_backward(float *dx, const float *cs, int N, int H, int hd, int ld);

/* ---- SwiGLU (Shazeer 2020) --------------------------------------------------------
 * gu[N, 2F] is the fused gate|up projection (gate in columns [0, F), up in
 * [F, 2F)); out[N, F] = silu(gate) * up, silu(g) = g / (1 + exp(-g)). */
void ops_swiglu_forward(float *out, const float *gu, int N, int F);
/* dgu += dL/dgu from dout[N,F]; out (may be NULL) gets the forward output
 * again, so the caller need not keep it between passes. */
void ops_swiglu_backward(float *dgu, float *out, const float *dout, const float *gu, int N, int F);

/* ---- grouped-query causal self-attention over packed rows ---------------------------
 * q, k, v: rows of N = B*T positions with row stride ld (q: NH heads of hd;
 * k, v: KV heads); query head h reads key/value head h / G (Ainslie et al.
 * 2023; Hugging Face's repeat_kv).  Query t attends keys [seg[t], t] of its
 * row (ops.h), scores scaled by 1/sqrt(hd).  out[N, QD] (row stride QD);
 * att[B, NH, T, T] keeps the probabilities for backward (entries outside a
 * query's key range are not written).  Rows are done in blocks so that the
 * keys no query of a block sees are skipped. */
void ops_gqa_forward(float *out, float *att, const float *q, const float *k, const float *v, int ld,
                     const int *seg, int B, int T, int NH, int KV, int hd);
/* dq, dk, dv (+=; same strides as q, k, v); datt: workspace [B, KV, T, T].
 * Work is split by (row, key/value head), so the G query heads that share a
 * key/value head accumulate into it in order on one thread. */
void ops_gqa_backward(float *dq, float *dk, float *dv, float *datt, const float *dout, const float *q,
                      const float *k, const float *v, int ld, const float *att, const int *seg, int B, int T,
                      int NH, int KV, int hd);

/* ---- small helpers for strided linear layers ----------------------------------------- */

/* out rows i < N (stride ld) [0, OC) = bias */
void ops_bias_fill(float *out, const float *bias, int N, int OC, int ld);
/* db[OC] += sum over rows of x[i, 0..OC) (stride ld), rows in order */
void ops_bias_backward(float *db, const float *x, int N, int OC, int ld);

/* ---- naive references (tests only; single-threaded, double sums) ---- */
void ops_embedding_backward_naive(float *dwte, const float *dout, const int *tok, int N, int C);
void ops_rmsnorm_forward_naive(float *out, float *rstd, const float *inp, const float *w, int N, int H, int D,
                               int ld, float eps);
void ops_rmsnorm_backward_naive(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                                const float *rstd, int N, int H, int D, int ld);
void ops_rope_apply_naive(float *x, const int *pos, const double *inv_freq, int N, int H, int hd, int ld,
                          int inverse);
void ops_swiglu_forward_naive(float *out, const float *gu, int N, int F);
void ops_swiglu_backward_naive(float *dgu, const float *dout, const float *gu, int N, int F);
void ops_gqa_forward_naive(float *out, float *att, const float *q, const float *k, const float *v, int ld,
                           const int *seg, int B, int T, int NH, int KV, int hd);
void ops_gqa_backward_naive(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                            const float *v, int ld, const float *att, const int *seg, int B, int T, int NH,
                            int KV, int hd);

#endif

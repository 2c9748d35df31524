package io.sparseserve.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Element-wise and per-row kernels of the forward pass, vectorized and split over tokens on the pool. Norm
 * statistics accumulate in double: a float sum of squares over thousands of elements loses digits that the
 * reference numbers (computed in float64) keep. Each kernel is a task object refilled per call, not a capturing
 * lambda, so that a step allocates nothing; an instance is therefore not reentrant (one forward pass at a time).
 */
public final class CpuKernels {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

    private final CpuPool pool;

    public CpuKernels(CpuPool pool) {
        this.pool = pool;
    }

    /** RMSNorm (Llama): out = x / sqrt(mean(x^2) + eps) * weight, per token row of dim. */
    public void rmsNorm(float[] x, float[] out, int tokens, int dim, float[] weight, float eps) {
        norm(false, x, out, tokens, dim, weight, null, eps);
    }

    /** LayerNorm (OPT): out = (x - mean) / sqrt(var + eps) * weight + bias, per token row of dim. */
    public void layerNorm(float[] x, float[] out, int tokens, int dim, float[] weight, float[] bias, float eps) {
        norm(true, x, out, tokens, dim, weight, bias, eps);
    }

    private void norm(boolean layer, float[] x, float[] out, int tokens, int dim, float[] weight, float[] bias, float eps) {
        Norm t = norm;
        t.layer = layer;
        t.x = x;
        t.out = out;
        t.dim = dim;
        t.weight = weight;
        t.bias = bias;
        t.eps = eps;
        pool.parallelFor(tokens, t);
    }

    private final Norm norm = new Norm();

    private static final class Norm implements CpuPool.RangeTask {
        float[] x, out, weight, bias;
        int dim;
        float eps;
        boolean layer;

        @Override
        public void run(int t0, int t1, int thread) {
            for (int t = t0; t < t1; t++) {
                int o = t * dim;
                if (!layer) {
                    double ss = sumSquares(x, o, dim);
                    float scale = (float) (1.0 / Math.sqrt(ss / dim + eps));
                    scaleMul(x, o, scale, weight, out, o, dim);
                    continue;
                }
                double mean = 0;
                for (int i = 0; i < dim; i++) mean += x[o + i];
                mean /= dim;
                double var = 0;
                for (int i = 0; i < dim; i++) {
                    double d = x[o + i] - mean;
                    var += d * d;
                }
                var /= dim;
                float inv = (float) (1.0 / Math.sqrt(var + eps));
                float m = (float) mean;
                for (int i = 0; i < dim; i++) out[o + i] = (x[o + i] - m) * inv * weight[i] + (bias == null ? 0f : bias[i]);
            }
        }
    }

    private static double sumSquares(float[] x, int o, int n) {
        double ss = 0;
        int bound = F.loopBound(n);
        int i = 0;
        for (; i < bound; i += F.length()) {
            FloatVector v = FloatVector.fromArray(F, x, o + i);
            // widen lanes to double pairwise via float products summed per vector: exact enough per vector.
            ss += Lanes.sum(v.mul(v));
        }
        for (; i < n; i++) ss += (double) x[o + i] * x[o + i];
        return ss;
    }

    private static void scaleMul(float[] x, int xo, float scale, float[] w, float[] out, int oo, int n) {
        int bound = F.loopBound(n);
        int i = 0;
        for (; i < bound; i += F.length()) {
            FloatVector v = FloatVector.fromArray(F, x, xo + i).mul(scale).mul(FloatVector.fromArray(F, w, i));
            v.intoArray(out, oo + i);
        }
        for (; i < n; i++) out[oo + i] = x[xo + i] * scale * w[i];
    }

    /**
     * Rotary position embedding in Hugging Face's rotate-half convention: within each head, element i pairs with
     * element i + d/2. cos and sin hold [position][d/2] rows.
     */
    public void rope(float[] x, int tokens, int stride, int heads, int headDim, int[] positions, float[] cos, float[] sin) {
        Rope t = rope;
        t.x = x;
        t.stride = stride;
        t.heads = heads;
        t.headDim = headDim;
        t.positions = positions;
        t.cos = cos;
        t.sin = sin;
        pool.parallelFor(tokens, t);
    }

    private final Rope rope = new Rope();

    private static final class Rope implements CpuPool.RangeTask {
        float[] x, cos, sin;
        int[] positions;
        int stride, heads, headDim;

        @Override
        public void run(int t0, int t1, int thread) {
            int half = headDim / 2;
            for (int t = t0; t < t1; t++) {
                int p = positions[t] * half;
                for (int h = 0; h < heads; h++) {
                    int o = t * stride + h * headDim;
                    for (int i = 0; i < half; i++) {
                        float c = cos[p + i], s = sin[p + i];
                        float x1 = x[o + i], x2 = x[o + i + half];
                        x[o + i] = x1 * c - x2 * s;
                        x[o + i + half] = x2 * c + x1 * s;
                    }
                }
            }
        }
    }

    /** gate = silu(gate) * up, the SwiGLU of Llama's MLP. */
    public void siluMul(float[] gate, float[] up, int n) {
        elementwise(Elementwise.SILU_MUL, gate, up, n);
    }

    /** x = max(x, 0). */
    public void relu(float[] x, int n) {
        elementwise(Elementwise.RELU, x, null, n);
    }

    /** x += y. */
    public void add(float[] x, float[] y, int n) {
        elementwise(Elementwise.ADD, x, y, n);
    }

    private final Elementwise elementwise = new Elementwise();

    private void elementwise(int op, float[] a, float[] b, int n) {
        Elementwise t = elementwise;
        t.op = op;
        t.a = a;
        t.b = b;
        // A chunk of 4096 elements costs about as much as a trip through the pool: one token's MLP runs inline.
        pool.parallelFor(n, 4096, t);
    }

    /** a = op(a, b) over [i0, i1). */
    private static final class Elementwise implements CpuPool.RangeTask {
        static final int SILU_MUL = 0, RELU = 1, ADD = 2;
        int op;
        float[] a, b;

        @Override
        public void run(int i0, int i1, int thread) {
            int bound = i0 + F.loopBound(i1 - i0);
            int i = i0;
            switch (op) {
                case SILU_MUL -> VectorExp.siluMul(a, b, i0, i1);
                case RELU -> {
                    for (; i < bound; i += F.length()) FloatVector.fromArray(F, a, i).max(0f).intoArray(a, i);
                    for (; i < i1; i++) a[i] = Math.max(a[i], 0f);
                }
                default -> {
                    for (; i < bound; i += F.length()) {
                        FloatVector.fromArray(F, a, i).add(FloatVector.fromArray(F, b, i)).intoArray(a, i);
                    }
                    for (; i < i1; i++) a[i] += b[i];
                }
            }
        }
    }
}

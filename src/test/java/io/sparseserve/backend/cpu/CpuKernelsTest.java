package io.sparseserve.backend.cpu;

import static io.sparseserve.tensor.TestMatrices.randomVector;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** Norms, rotary embeddings and activations against scalar double-precision references on random inputs. */
class CpuKernelsTest {
    private final CpuKernels k = new CpuKernels(new CpuPool(2));

    @Test
    void rmsNorm() {
        int tokens = 5, dim = 67;
        float[] x = randomVector(tokens * dim, 1), w = randomVector(dim, 2), out = new float[tokens * dim];
        k.rmsNorm(x, out, tokens, dim, w, 1e-5f);
        for (int t = 0; t < tokens; t++) {
            double ss = 0;
            for (int i = 0; i < dim; i++) ss += (double) x[t * dim + i] * x[t * dim + i];
            double inv = 1 / Math.sqrt(ss / dim + 1e-5);
            for (int i = 0; i < dim; i++) assertEquals(x[t * dim + i] * inv * w[i], out[t * dim + i], 1e-5, "t=" + t + " i=" + i);
        }
    }

    @Test
    void layerNorm() {
        int tokens = 4, dim = 70;
        float[] x = randomVector(tokens * dim, 3), w = randomVector(dim, 4), b = randomVector(dim, 5);
        float[] out = new float[tokens * dim];
        for (int i = 0; i < x.length; i++) x[i] += 3f; // a mean far from zero
        k.layerNorm(x, out, tokens, dim, w, b, 1e-5f);
        for (int t = 0; t < tokens; t++) {
            double mean = 0, var = 0;
            for (int i = 0; i < dim; i++) mean += x[t * dim + i];
            mean /= dim;
            for (int i = 0; i < dim; i++) var += Math.pow(x[t * dim + i] - mean, 2);
            var /= dim;
            for (int i = 0; i < dim; i++) {
                double ref = (x[t * dim + i] - mean) / Math.sqrt(var + 1e-5) * w[i] + b[i];
                assertEquals(ref, out[t * dim + i], 1e-5, "t=" + t + " i=" + i);
            }
        }
    }

    @Test
    void ropeRotatesHalvesByPositionAngle() {
        int tokens = 3, heads = 2, d = 8, half = d / 2, stride = heads * d + 5, maxPos = 40;
        float[] x = randomVector(tokens * stride, 6), orig = x.clone();
        float[] cos = new float[maxPos * half], sin = new float[maxPos * half];
        for (int p = 0; p < maxPos; p++) {
            for (int i = 0; i < half; i++) {
                double a = p * Math.pow(10000, -2.0 * i / d);
                cos[p * half + i] = (float) Math.cos(a);
                sin[p * half + i] = (float) Math.sin(a);
            }
        }
        int[] pos = {0, 17, 39};
        k.rope(x, tokens, stride, heads, d, pos, cos, sin);
        for (int t = 0; t < tokens; t++) {
            for (int h = 0; h < heads; h++) {
                for (int i = 0; i < half; i++) {
                    int o = t * stride + h * d;
                    double a = pos[t] * Math.pow(10000, -2.0 * i / d);
                    double x1 = orig[o + i], x2 = orig[o + i + half];
                    assertEquals(x1 * Math.cos(a) - x2 * Math.sin(a), x[o + i], 1e-5);
                    assertEquals(x2 * Math.cos(a) + x1 * Math.sin(a), x[o + i + half], 1e-5);
                }
            }
            for (int j = heads * d; j < stride; j++) assertEquals(orig[t * stride + j], x[t * stride + j], "padding untouched");
        }
    }

    @Test
    void activationsAndAdd() {
        int n = 5000;
        float[] g = randomVector(n, 7), u = randomVector(n, 8), r = randomVector(n, 9), a = randomVector(n, 10);
        float[] r0 = r.clone(), a0 = a.clone();
        for (int i = 0; i < n; i++) g[i] *= 6; // reach the saturated parts of the sigmoid
        float[] gs = g.clone();
        k.siluMul(g, u, n);
        k.relu(r, n);
        k.add(a, u, n);
        for (int i = 0; i < n; i++) {
            double silu = gs[i] / (1 + Math.exp(-gs[i]));
            assertEquals(silu * u[i], g[i], 1e-5 * (1 + Math.abs(silu * u[i])), "silu at " + i);
            assertEquals(Math.max(r0[i], 0f), r[i]);
            assertEquals(a0[i] + u[i], a[i], 1e-6);
        }
    }
}

package io.sparseserve.model;

import io.sparseserve.model.ModelWeights.Positions;

/**
 * Rotary position tables as Hugging Face's LlamaRotaryEmbedding defines them, with the checkpoint's frequency scaling
 * ({@link RopeScaling}), computed in double.
 */
final class Rotary {
    private Rotary() {}

    static Positions.Rotary tables(ModelConfig c) {
        int half = c.headDim() / 2;
        float[] cos = new float[c.maxPositions() * half];
        float[] sin = new float[c.maxPositions() * half];
        for (int i = 0; i < half; i++) {
            double invFreq = c.ropeScaling().scale(1.0 / Math.pow(c.ropeTheta(), (2.0 * i) / c.headDim()));
            for (int p = 0; p < c.maxPositions(); p++) {
                double angle = p * invFreq;
                cos[p * half + i] = (float) Math.cos(angle);
                sin[p * half + i] = (float) Math.sin(angle);
            }
        }
        return new Positions.Rotary(cos, sin);
    }
}

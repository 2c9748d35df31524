package io.sparseserve.plan;

import java.util.List;

/**
 * How one model in one weight format spreads over GPUs of one size: what each piece weighs, the layer range each GPU
 * holds (pipeline order: GPU 0 has the embeddings, the last GPU the final norm and the head) and how many sequences
 * of the planned context fit in the memory left on every GPU.
 *
 * @param linearBytesPerLayer      one decoder layer's linear weights in {@code format}
 * @param linearDenseBytesPerLayer the same weights dense
 * @param layerBytes               one decoder layer in all: linears, norms and biases
 * @param embeddingBytes           token (and OPT's position) embeddings, on GPU 0
 * @param headBytes                final norm and output head, on the last GPU (the head counts again when it is the
 *                                 tied embedding matrix on another GPU than the first)
 * @param weightBytes              everything once: the size of the served model
 * @param kvTokensPerSequence      the context rounded up to whole KV blocks
 * @param maxSequences             sequences of the context that fit with these stages (the smallest over the GPUs)
 */
public record MemoryPlan(WeightFormat format, long linearBytesPerLayer, long linearDenseBytesPerLayer, long layerBytes,
                         long embeddingBytes, long headBytes, long weightBytes, long kvTokensPerSequence,
                         List<Stage> stages, long maxSequences) {

    public int gpus() {
        return stages.size();
    }

    public double linearRatio() {
        return (double) linearBytesPerLayer / linearDenseBytesPerLayer;
    }

    /**
     * One GPU's share: decoder layers [firstLayer, endLayer), its weights (embeddings and head included where it
     * holds them), the KV cache reserved for the planned sequences, and what is left of the usable memory.
     */
    public record Stage(int gpu, int firstLayer, int endLayer, boolean embeddings, boolean head, long weightBytes,
                        long kvBytes, long freeBytes, long sequences) {
        public int layers() {
            return endLayer - firstLayer;
        }
    }
}

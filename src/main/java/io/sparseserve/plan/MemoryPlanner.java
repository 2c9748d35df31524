package io.sparseserve.plan;

import io.sparseserve.model.InvalidInputException;
import io.sparseserve.tensor.DType;
import java.util.ArrayList;
import java.util.List;

/**
 * Splits a model over GPUs by memory, greedily in pipeline order: embeddings, layer 0, ..., layer L-1, head; each
 * piece goes on the current GPU while its weights and the KV cache of its layers (for {@code concurrency} sequences of
 * {@code context} tokens) fit in the usable memory, else on the next GPU.
 *
 * <p>Usable memory per GPU = floor(utilization · total) − overhead, the overhead being what is not weights or KV:
 * CUDA context, cuBLAS workspace, step activations and logits, CUDA graphs (an estimate, stated by the caller).
 * KV bytes per token and layer = 2 (K and V) · kv_heads · head_dim · KV dtype bytes; a sequence holds whole blocks
 * of {@code blockSize} tokens, as the server's KV cache allocates them.
 */
public record MemoryPlanner(ModelShape shape, DType dtype, DType kvDtype, long gpuBytes, double utilization,
                            long overheadBytes, int context, int concurrency, int blockSize) {

    public MemoryPlanner {
        if (!(utilization > 0 && utilization <= 1)) {
            throw new InvalidInputException("--gpu-memory-utilization must be in (0, 1], got " + utilization);
        }
        if (context < 1) throw new InvalidInputException("--context must be >= 1, got " + context);
        if (concurrency < 1) throw new InvalidInputException("--concurrency must be >= 1, got " + concurrency);
        if (overheadBytes < 0) throw new InvalidInputException("--overhead must be >= 0, got " + overheadBytes);
        if ((long) Math.floor(utilization * gpuBytes) - overheadBytes <= 0) { // the fields are not set yet here
            throw new InvalidInputException("no usable memory: " + utilization + " of " + ByteSize.gib(gpuBytes)
                    + " is less than the overhead " + ByteSize.gib(overheadBytes));
        }
    }

    public long usableBytes() {
        return (long) Math.floor(utilization * gpuBytes) - overheadBytes;
    }

    public long kvBytesPerTokenPerLayer() {
        return 2L * shape.kvHeads() * shape.headDim() * kvDtype.bytes();
    }

    public long kvBytesPerToken() {
        return kvBytesPerTokenPerLayer() * shape.layers();
    }

    public long kvTokensPerSequence() {
        return (context + blockSize - 1L) / blockSize * blockSize;
    }

    public MemoryPlan plan(WeightFormat format) {
        int b = dtype.bytes();
        long linear = 0, linearDense = 0;
        for (int[] s : shape.linearShapes()) {
            linear += format.bytes(s[0], s[1], b);
            linearDense += (long) s[0] * s[1] * b;
        }
        long layer = linear + shape.layerOtherElements() * b;
        long embeddings = shape.embeddingElements() * b;
        long headMatrix = shape.headElements() * b;
        long head = shape.headNormElements() * b + headMatrix;
        long weights = embeddings + (long) shape.layers() * layer + head - (shape.tieEmbeddings() ? headMatrix : 0);
        long kvPerLayerSequence = kvBytesPerTokenPerLayer() * kvTokensPerSequence();
        long kvPerLayer = kvPerLayerSequence * concurrency;
        long usable = usableBytes();

        List<long[]> stages = new ArrayList<>(); // {firstLayer, endLayer, embeddings, head, weightBytes}
        long[] cur = {0, 0, 0, 0, 0};
        for (int item = -1; item <= shape.layers(); item++) {
            boolean isLayer = item >= 0 && item < shape.layers();
            for (int attempt = 0; ; attempt++) {
                boolean first = stages.isEmpty();
                long w = item < 0 ? embeddings : isLayer ? layer
                        : head - (shape.tieEmbeddings() && first ? headMatrix : 0); // a tied head on GPU 0 is the embedding
                long kv = isLayer ? kvPerLayer : 0;
                long used = cur[4] + (cur[1] - cur[0]) * kvPerLayer;
                if (used + w + kv <= usable) {
                    cur[4] += w;
                    if (item < 0) cur[2] = 1;
                    else if (isLayer) cur[1] = item + 1;
                    else cur[3] = 1;
                    break;
                }
                boolean empty = cur[4] == 0 && cur[1] == cur[0];
                if (empty || attempt > 0) {
                    String what = item < 0 ? "the embeddings" : isLayer ? "one decoder layer" : "the head";
                    throw new InvalidInputException(what + " (" + ByteSize.gib(w) + " of weights + " + ByteSize.gib(kv)
                            + " of KV cache) do not fit in one GPU's usable " + ByteSize.gib(usable)
                            + ": use a larger --gpu-memory, a shorter --context or fewer --concurrency");
                }
                stages.add(cur);
                cur = new long[] {cur[1], cur[1], 0, 0, 0};
            }
        }
        stages.add(cur);

        List<MemoryPlan.Stage> out = new ArrayList<>();
        long maxSequences = Long.MAX_VALUE;
        for (int g = 0; g < stages.size(); g++) {
            long[] s = stages.get(g);
            long layers = s[1] - s[0];
            long kv = layers * kvPerLayer;
            long free = usable - s[4] - kv;
            long perSequence = layers * kvPerLayerSequence;
            long sequences = perSequence == 0 ? Long.MAX_VALUE : (usable - s[4]) / perSequence;
            maxSequences = Math.min(maxSequences, sequences);
            out.add(new MemoryPlan.Stage(g, (int) s[0], (int) s[1], s[2] == 1, s[3] == 1, s[4], kv, free, sequences));
        }
        return new MemoryPlan(format, linear, linearDense, layer, embeddings, head, weights, kvTokensPerSequence(),
                List.copyOf(out), maxSequences);
    }
}

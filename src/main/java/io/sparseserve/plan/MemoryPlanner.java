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

        List<Filling> filled = new ArrayList<>();
        Filling cur = new Filling(0);
        for (int item = -1; item <= shape.layers(); item++) { // -1: embeddings, 0..L-1: layers, L: head
            boolean isLayer = item >= 0 && item < shape.layers();
            for (int attempt = 0; ; attempt++) {
                long w = item < 0 ? embeddings : isLayer ? layer
                        : head - (shape.tieEmbeddings() && filled.isEmpty() ? headMatrix : 0); // tied head on GPU 0 = embedding
                long kv = isLayer ? kvPerLayer : 0;
                if (cur.weights + cur.layers() * kvPerLayer + w + kv <= usable) {
                    cur.weights += w;
                    if (item < 0) cur.embeddings = true;
                    else if (isLayer) cur.end = item + 1;
                    else cur.head = true;
                    break;
                }
                if (cur.isEmpty() || attempt > 0) {
                    String what = item < 0 ? "the embeddings" : isLayer ? "one decoder layer" : "the head";
                    throw new InvalidInputException(what + " (" + ByteSize.gib(w) + " of weights + " + ByteSize.gib(kv)
                            + " of KV cache) do not fit in one GPU's usable " + ByteSize.gib(usable)
                            + ": use a larger --gpu-memory, a shorter --context or fewer --concurrency");
                }
                filled.add(cur);
                cur = new Filling(cur.end);
            }
        }
        filled.add(cur);

        List<MemoryPlan.Stage> out = new ArrayList<>();
        long maxSequences = Long.MAX_VALUE;
        for (int g = 0; g < filled.size(); g++) {
            Filling f = filled.get(g);
            long kv = f.layers() * kvPerLayer;
            long perSequence = f.layers() * kvPerLayerSequence;
            long sequences = perSequence == 0 ? Long.MAX_VALUE : (usable - f.weights) / perSequence;
            maxSequences = Math.min(maxSequences, sequences);
            out.add(new MemoryPlan.Stage(g, f.first, f.end, f.embeddings, f.head, f.weights, kv, usable - f.weights - kv,
                    sequences));
        }
        return new MemoryPlan(format, linear, linearDense, layer, embeddings, head, weights, kvTokensPerSequence(),
                List.copyOf(out), maxSequences);
    }

    /** One GPU while it is being filled: decoder layers [first, end), whether it holds the ends, its weight bytes. */
    private static final class Filling {
        final int first;
        int end;
        boolean embeddings;
        boolean head;
        long weights;

        Filling(int first) {
            this.first = first;
            this.end = first;
        }

        long layers() {
            return end - first;
        }

        boolean isEmpty() {
            return weights == 0 && end == first;
        }
    }
}

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
    /** {@code plan --overhead}'s default: CUDA context, cuBLAS workspace, activations, graphs (an estimate). */
    public static final long DEFAULT_OVERHEAD_BYTES = 2L << 30;

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
        Pieces p = pieces(format);
        long layer = p.layer, embeddings = p.embeddings, head = p.head, kvPerLayer = p.kvPerLayer;
        long headMatrix = shape.headElements() * dtype.bytes();
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

        return stages(format, p.linear, p.linearDense, layer, embeddings, head, p.weights, kvPerLayer, p.kvPerLayerSequence,
                filled);
    }

    /**
     * The split over exactly {@code gpus} GPUs that a server given {@code --device cuda:N,M,...} (that many stages)
     * uses unless {@code --layer-split} says otherwise: contiguous layer ranges, at least one layer per GPU, GPU 0 with
     * the embeddings and the last with the head, chosen to make the largest per-GPU share (weights + the KV cache of
     * its layers for the planned sequences, the pieces {@link #plan} fills by) as small as possible; among equally
     * small ones, the earlier GPUs take more layers (as the greedy fill does). Exact, by dynamic programming over
     * (GPU, first layer): O(gpus · layers²). Throws when the model has fewer layers than {@code gpus}.
     */
    public MemoryPlan split(WeightFormat format, int gpus) {
        if (gpus < 1) throw new InvalidInputException("--gpus " + gpus + ": must be >= 1");
        int layers = shape.layers();
        if (gpus > layers) {
            throw new InvalidInputException("--gpus " + gpus + ": the model has " + layers + " layers, and every GPU of a "
                    + "split holds at least one");
        }
        Pieces p = pieces(format);
        long tiedHead = shape.tieEmbeddings() ? shape.headElements() * dtype.bytes() : 0;
        long perLayer = p.layer + p.kvPerLayer;
        // best[g][l]: the smallest possible largest share when GPUs g..gpus-1 hold layers l..layers-1
        long[][] best = new long[gpus + 1][layers + 1];
        int[][] cut = new int[gpus + 1][layers + 1];
        for (long[] row : best) java.util.Arrays.fill(row, Long.MAX_VALUE);
        best[gpus][layers] = 0;
        for (int g = gpus - 1; g >= 0; g--) {
            int left = gpus - g; // GPUs g..gpus-1, one layer each at least
            for (int l = layers - left; l >= g; l--) {
                for (int e = layers - left + 1; e >= l + 1; e--) { // the largest range first: earlier GPUs take more
                    if (best[g + 1][e] == Long.MAX_VALUE) continue;
                    long share = (long) (e - l) * perLayer + (g == 0 ? p.embeddings : 0)
                            + (g == gpus - 1 ? p.head - (g == 0 ? tiedHead : 0) : 0);
                    long worst = Math.max(share, best[g + 1][e]);
                    if (worst < best[g][l]) {
                        best[g][l] = worst;
                        cut[g][l] = e;
                    }
                }
            }
        }
        List<Filling> filled = new ArrayList<>();
        for (int g = 0, l = 0; g < gpus; g++) {
            Filling f = new Filling(l);
            f.end = cut[g][l];
            f.embeddings = g == 0;
            f.head = g == gpus - 1;
            f.weights = (long) (f.end - l) * p.layer + (f.embeddings ? p.embeddings : 0)
                    + (f.head ? p.head - (g == 0 ? tiedHead : 0) : 0);
            filled.add(f);
            l = f.end;
        }
        return stages(format, p.linear, p.linearDense, p.layer, p.embeddings, p.head, p.weights, p.kvPerLayer,
                p.kvPerLayerSequence, filled);
    }

    /** What one format's pieces weigh, as {@link #plan} and {@link #split} fill GPUs with them. */
    private record Pieces(long linear, long linearDense, long layer, long embeddings, long head, long weights,
                          long kvPerLayer, long kvPerLayerSequence) {}

    private Pieces pieces(WeightFormat format) {
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
        return new Pieces(linear, linearDense, layer, embeddings, head, weights, kvPerLayerSequence * concurrency,
                kvPerLayerSequence);
    }

    private MemoryPlan stages(WeightFormat format, long linear, long linearDense, long layer, long embeddings, long head,
                              long weights, long kvPerLayer, long kvPerLayerSequence, List<Filling> filled) {
        long usable = usableBytes();
        List<MemoryPlan.Stage> out = new ArrayList<>();
        long maxSequences = Long.MAX_VALUE;
        for (int g = 0; g < filled.size(); g++) {
            Filling f = filled.get(g);
            long kv = f.layers() * kvPerLayer;
            long perSequence = f.layers() * kvPerLayerSequence;
            long sequences = perSequence == 0 ? Long.MAX_VALUE : Math.max(0, usable - f.weights) / perSequence;
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

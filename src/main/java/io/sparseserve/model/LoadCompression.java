package io.sparseserve.model;

import io.sparseserve.tensor.DenseMatrix;
import io.sparseserve.tensor.MaskedMatrix;
import io.sparseserve.tensor.WeightMatrix;
import io.sparseserve.tensor.ZeroCompression;
import java.lang.foreign.Arena;
import java.util.LinkedHashMap;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code --compress auto}: every decoder linear stored dense with at least {@link #MIN_ZEROS} exact zeros is held
 * compressed ({@link ZeroCompression}) and runs on the sparse kernels. Its mapped pages are then dropped from this
 * process ({@link java.lang.foreign.MemorySegment#unload}, madvise DONTNEED on Linux), so resident memory falls to
 * the compressed size; the file stays mapped and is never read again.
 */
final class LoadCompression {
    private static final Logger log = LoggerFactory.getLogger(LoadCompression.class);

    /** The threshold: at 40% zeros a BF16 bitmask matrix takes 0.6 + 0.0625 of the dense bytes. */
    static final double MIN_ZEROS = 0.4;

    private LoadCompression() {}

    /** The weights with qualifying linears compressed into {@code arena}; {@code detected} gets, per name, the scan. */
    static ModelWeights apply(ModelWeights weights, Arena arena, Map<String, ZeroCompression.Scan> detected, boolean auto) {
        Map<WeightMatrix, WeightMatrix> replaced = new LinkedHashMap<>();
        long before = 0, after = 0;
        int compressed = 0;
        for (ModelWeights.Layer layer : weights.layers()) {
            for (ModelWeights.Linear lin : layer.linears()) {
                if (lin.weight() instanceof MaskedMatrix mm && mm.values().isMapped()) {
                    // A compressed file's matrix moves to the same kind of memory as one compressed here: the sparse
                    // kernel then sees one MemorySegment class; with both (mapped and native) in one JVM, C2 left
                    // its vectors boxed (12.9 MB allocated per decode step of the bundled model, measured).
                    WeightMatrix c = ZeroCompression.copy(mm, arena);
                    replaced.put(mm, c);
                    for (var seg : mm.segments()) if (seg.isMapped()) seg.unload();
                    continue;
                }
                if (!auto || !(lin.weight() instanceof DenseMatrix d)) continue;
                ZeroCompression.Scan scan = ZeroCompression.scan(d);
                detected.put(lin.name(), scan);
                if (scan.fraction() < MIN_ZEROS) continue;
                WeightMatrix c = ZeroCompression.compress(d, scan, arena);
                replaced.put(d, c);
                compressed++;
                before += d.bytes();
                after += c.bytes();
                if (d.data().isMapped()) d.data().unload();
            }
        }
        if (replaced.isEmpty()) return weights;
        if (compressed > 0) {
            log.info("compressed {} dense linears with >= {}% zeros at load: {} MB -> {} MB", compressed,
                    (int) (MIN_ZEROS * 100), before >> 20, after >> 20);
        }
        var layers = weights.layers().stream()
                .map(l -> l.withLinears(lin -> replaced.containsKey(lin.weight())
                        ? new ModelWeights.Linear(lin.name(), replaced.get(lin.weight()), lin.bias()) : lin))
                .toList();
        return new ModelWeights(weights.embed(), weights.positions(), layers, weights.finalNorm(), weights.lmHead());
    }
}

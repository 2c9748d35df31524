package io.sparseserve.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Holds a dense matrix that is mostly exact zeros compressed, as the sparse formats a pruned checkpoint would have
 * used: compressed-tensors and llm-compressor dropped sparse compression in 2026, so pruned models now mostly arrive
 * dense with exact zeros, and without this they would stream and multiply every zero.
 *
 * <p>A matrix whose every group of 4 columns holds at least 2 zeros becomes 2:4 ({@link NmMatrix}: exactly 2 values
 * per group, the non-zeros and, where a group has more zeros, its first zeros as stored values, as compressed-tensors
 * keeps a pruned-to-zero weight of a kept slot); any other becomes {@code sparse-bitmask} ({@link BitmaskMatrix}: the
 * non-zeros). Stored values are copied bit for bit, so a product over the result equals one over the compressed file
 * the same pruning would have written. Both -0 and +0 count as zeros (a product with either adds nothing to a sum).
 */
public final class ZeroCompression {
    private ZeroCompression() {}

    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** What a scan found: exact zeros, and whether every group of 4 columns of every row holds 2 or more. */
    public record Scan(long zeros, long elements, boolean twoFour) {
        public double fraction() {
            return (double) zeros / elements;
        }
    }

    public static Scan scan(DenseMatrix d) {
        int rows = d.rows(), cols = d.cols();
        boolean twoFour = cols % 4 == 0;
        long zeros = 0;
        for (int r = 0; r < rows; r++) {
            long row = (long) r * cols;
            for (int g = 0; g < cols; g += 4) {
                int n = Math.min(4, cols - g), z = 0;
                for (int j = 0; j < n; j++) if (isZero(d, row + g + j)) z++;
                zeros += z;
                twoFour &= z >= 2;
            }
        }
        return new Scan(zeros, (long) rows * cols, twoFour);
    }

    /**
     * d compressed into memory of {@code arena}: 2:4 when {@code scan} says every group allows it, else a bitmask
     * matrix. {@code scan} must be {@link #scan}(d).
     */
    public static MaskedMatrix compress(DenseMatrix d, Scan scan, Arena arena) {
        int rows = d.rows(), cols = d.cols(), width = d.dtype().bytes(), rb = Bitmask.rowBytes(cols);
        long kept = scan.twoFour() ? (long) rows * (cols / 2) : scan.elements() - scan.zeros();
        Bitmask.Block block = Bitmask.Block.allocate(arena, kept * width, (long) rows * rb);
        MemorySegment values = block.values(), mask = block.mask();
        MemorySegment offsets = scan.twoFour() ? null : arena.allocate(8L * rows, 64);
        long p = 0;
        for (int r = 0; r < rows; r++) {
            long row = (long) r * cols, maskRow = (long) r * rb;
            if (offsets != null) offsets.set(I64, 8L * r, p);
            for (int g = 0; g < cols; g += 4) {
                int n = Math.min(4, cols - g);
                // 2:4: the non-zeros, then the group's first zeros until two are kept.
                int spare = 0;
                if (scan.twoFour()) {
                    int nonZero = 0;
                    for (int j = 0; j < n; j++) if (!isZero(d, row + g + j)) nonZero++;
                    spare = 2 - nonZero;
                }
                for (int j = 0; j < n; j++) {
                    long i = row + g + j;
                    boolean keep = !isZero(d, i) || spare-- > 0;
                    if (!keep) continue;
                    MemorySegment.copy(d.data(), i * width, values, p * width, width);
                    p++;
                    int c = g + j;
                    long at = maskRow + (c >>> 3);
                    mask.set(ValueLayout.JAVA_BYTE, at, (byte) (mask.get(ValueLayout.JAVA_BYTE, at) | 1 << (c & 7)));
                }
            }
        }
        return scan.twoFour() ? new NmMatrix(block, d.dtype(), rows, cols, 2, 4)
                : new BitmaskMatrix(block, offsets, d.dtype(), rows, cols);
    }

    /** The same matrix with its segments copied into {@code arena} (64-byte aligned; values and mask as one block). */
    public static MaskedMatrix copy(MaskedMatrix m, Arena arena) {
        return switch (m) {
            case BitmaskMatrix b -> new BitmaskMatrix(Bitmask.Block.copy(arena, b.values(), b.bitmask()),
                    copyOf(b.rowOffsets(), arena), b.dtype(), b.rows(), b.cols());
            case NmMatrix n -> new NmMatrix(Bitmask.Block.copy(arena, n.values(), n.bitmask()), n.dtype(), n.rows(),
                    n.cols(), n.n(), n.m());
        };
    }

    private static MemorySegment copyOf(MemorySegment s, Arena arena) {
        return arena.allocate(Math.max(1, s.byteSize()), 64).asSlice(0, s.byteSize()).copyFrom(s);
    }

    private static boolean isZero(DenseMatrix d, long i) {
        return switch (d.dtype()) {
            case F32 -> (d.data().get(I32, 4 * i) & 0x7fffffff) == 0;
            default -> (d.data().get(I16, 2 * i) & 0x7fff) == 0;
        };
    }
}

package io.sparseserve.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SegmentAllocator;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;

/**
 * The bit-level work shared by the bitmask formats: a packed mask of [rows, ceil(cols / 8)] bytes, bit j of byte b
 * standing for column 8b + j (numpy's {@code packbits(..., bitorder="little")}, as compressed-tensors writes it), and
 * the kept values of each row stored back to back in row-major order.
 *
 * <p>Decoding a run of columns expands the next kept values into the positions of the set bits. The vector path loads
 * one vector of kept values and spreads it with {@link FloatVector#expand} under the mask bits of the next
 * {@code F.length()} columns (one instruction, {@code vexpandps}, on AVX-512); the scalar path walks the bits.
 */
final class Bitmask {
    private Bitmask() {}

    private static final ValueLayout.OfLong I64_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /**
     * The kept values and the bitmask of one matrix in a single segment ({@link MaskedMatrix#block}): the values from
     * byte 0, zeros up to the next multiple of 64 and 64 more, then the mask from {@code maskAt}.
     */
    record Block(MemorySegment seg, MemorySegment values, MemorySegment mask, long maskAt) {
        /** A zeroed block for valueBytes of values and maskBytes of mask, 64-byte aligned. */
        static Block allocate(SegmentAllocator alloc, long valueBytes, long maskBytes) {
            long maskAt = (valueBytes + 63 & ~63L) + 64;
            MemorySegment seg = alloc.allocate(maskAt + maskBytes, 64);
            return new Block(seg, seg.asSlice(0, valueBytes), seg.asSlice(maskAt, maskBytes), maskAt);
        }

        /** A block holding copies of values and mask. */
        static Block copy(SegmentAllocator alloc, MemorySegment values, MemorySegment mask) {
            Block b = allocate(alloc, values.byteSize(), mask.byteSize());
            b.values.copyFrom(values);
            b.mask.copyFrom(mask);
            return b;
        }

        /** A block with copies of values and mask in memory that the garbage collector frees (matrices built in Java). */
        static Block copy(MemorySegment values, MemorySegment mask) {
            return copy(Arena.ofAuto(), values, mask);
        }
    }

    /** Bytes of one packed mask row. */
    static int rowBytes(int cols) {
        return (cols + 7) >>> 3;
    }

    /**
     * The {@code n} (at most 57) mask bits of columns [c, c + n) of the row starting at byte {@code rowByte}, column c
     * in bit 0. Bits past the row's end belong to the next row: callers never ask for columns past their row.
     */
    static long bits(MemorySegment mask, long rowByte, int c, int n) {
        long at = rowByte + (c >>> 3);
        long raw;
        if (at + 8 <= mask.byteSize()) {
            raw = mask.get(I64_LE, at);
        } else {
            raw = 0;
            for (int b = 0; at + b < mask.byteSize() && b < 8; b++) raw |= (mask.get(ValueLayout.JAVA_BYTE, at + b) & 0xffL) << (8 * b);
        }
        return (raw >>> (c & 7)) & ((1L << n) - 1);
    }

    /** Number of set bits of columns [0, c) of a row: the index, within the row's kept values, of column c's value. */
    static long countBefore(MemorySegment mask, long rowByte, int c) {
        long count = 0;
        int done = 0;
        // Whole 64-bit words first (they lie inside the row: done + 64 <= c <= cols), then the rest.
        for (; done + 64 <= c; done += 64) count += Long.bitCount(mask.get(I64_LE, rowByte + (done >>> 3)));
        if (done < c) count += Long.bitCount(bits(mask, rowByte, done, c - done));
        return count;
    }

    /**
     * Writes columns [k0, k0 + len) of one row as float32 into dst[off, off + len): the kept values from element
     * {@code pos} of {@code values} (the first kept value at or after column k0) at the set bits, zero elsewhere.
     */
    static void decodeRow(DType dtype, MemorySegment values, long pos, MemorySegment mask, long rowByte, int k0, int len,
                          float[] dst, int off) {
        int j = 0;
        if (!Decode.SCALAR) {
            long nValues = values.byteSize() / dtype.bytes();
            // Whole vectors of columns whose values can be loaded as a whole vector too: a vector of columns advances
            // pos by at most a vector, so `vectors` of them from pos never load past the values (one loop bound: a
            // second exit test here kept the loop's position and counter in memory, 2.4 ns per 16 columns, measured).
            int lanes = Decode.F.length();
            int vectors = (int) Math.min(len / lanes, Math.max(0, (nValues - pos) / lanes));
            int end = vectors * lanes;
            if (dtype == DType.BF16 && lanes == 16 && (k0 & 7) == 0) {
                // The common case, kept tight: 16 mask bits are two whole bytes; BF16 widens with a shift.
                long at = rowByte + (k0 >>> 3);
                for (; j < end; j += 16) {
                    long m = mask.get(I16_LE, at + (j >>> 3)) & 0xffffL;
                    Decode.bf16Vector(values, 2 * pos).expand(VectorMask.fromLong(Decode.F, m)).intoArray(dst, off + j);
                    pos += Long.bitCount(m);
                }
            } else {
                for (; j < end; j += lanes) {
                    long m = bits(mask, rowByte, k0 + j, lanes);
                    Decode.vector(dtype, values, pos * dtype.bytes()).expand(VectorMask.fromLong(Decode.F, m))
                            .intoArray(dst, off + j);
                    pos += Long.bitCount(m);
                }
            }
        }
        for (; j < len; j++) {
            int c = k0 + j;
            boolean kept = (mask.get(ValueLayout.JAVA_BYTE, rowByte + (c >>> 3)) >>> (c & 7) & 1) != 0;
            dst[off + j] = kept ? Decode.scalar(dtype, values, dtype.bytes() * pos++) : 0f;
        }
    }

    /** Number of stored values that are exactly zero (a kept weight may be 0). */
    static long storedZeros(DType dtype, MemorySegment values) {
        long n = values.byteSize() / dtype.bytes(), zeros = 0;
        float[] chunk = new float[4096];
        for (long i = 0; i < n; i += chunk.length) {
            int len = (int) Math.min(chunk.length, n - i);
            Decode.toFloat(dtype, values, i * dtype.bytes(), chunk, 0, len);
            for (int k = 0; k < len; k++) if (chunk[k] == 0f) zeros++;
        }
        return zeros;
    }

    /** Packs a row-major keep mask of [rows, cols] into mask bytes (little bit order, rows padded to whole bytes). */
    static byte[] pack(boolean[] keep, int rows, int cols) {
        int rb = rowBytes(cols);
        byte[] out = new byte[rows * rb];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                if (keep[r * cols + c]) out[r * rb + (c >>> 3)] |= (byte) (1 << (c & 7));
            }
        }
        return out;
    }

    /** The kept values of a [rows, cols] float matrix (keep.length elements) in row-major order, rounded to dtype. */
    static MemorySegment values(float[] w, boolean[] keep, long kept, DType dtype) {
        MemorySegment out = MemorySegment.ofArray(new byte[Math.toIntExact(kept * dtype.bytes())]);
        long p = 0;
        for (int i = 0; i < keep.length; i++) if (keep[i]) DTypeConvert.setFloat(out, dtype, p++, w[i]);
        return out;
    }

    /** Checks that no bit is set past the last column of any row (padding bits must be zero). */
    static void checkPadding(MemorySegment mask, int rows, int cols) {
        int rb = rowBytes(cols);
        if ((cols & 7) == 0) return;
        int padMask = 0xff << (cols & 7) & 0xff;
        for (int r = 0; r < rows; r++) {
            if ((mask.get(ValueLayout.JAVA_BYTE, (long) r * rb + rb - 1) & padMask) != 0) {
                throw new IllegalArgumentException("bitmask row " + r + " has bits set past column " + (cols - 1));
            }
        }
    }
}

package io.sparseserve.model;

import io.sparseserve.tensor.BitmaskMatrix;
import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.NmMatrix;
import io.sparseserve.tensor.WeightMatrix;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.List;

/**
 * The tensor names and layouts of compressed-tensors' sparse formats ({@code compressed_tensors.compressors}), which
 * store a module's weight as several tensors named after the module instead of one {@code <module>.weight}:
 * <ul>
 *   <li>{@code sparse-bitmask}: {@code <module>.shape} (I64 [2]), {@code .compressed} (the kept values, row-major,
 *       1-D), {@code .bitmask} (U8 [rows, ceil(cols / 8)], little bit order), {@code .row_offsets} (I64 [rows]);</li>
 *   <li>{@code sparse-24-bitmask}: {@code .shape}, {@code .compressed} ([rows, cols / 2]) and {@code .bitmask}.</li>
 * </ul>
 * Older releases kept the {@code .weight} in the prefix ({@code <module>.weight.compressed}); both are read.
 */
public final class CompressedWeights {
    private CompressedWeights() {}

    public static final String SHAPE = "shape";
    public static final String COMPRESSED = "compressed";
    public static final String BITMASK = "bitmask";
    public static final String ROW_OFFSETS = "row_offsets";
    public static final List<String> PARTS = List.of(SHAPE, COMPRESSED, BITMASK, ROW_OFFSETS);

    public static final String FORMAT_BITMASK = "sparse-bitmask";
    public static final String FORMAT_24 = "sparse-24-bitmask";

    private static final ValueLayout.OfLong I64_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** The module of a weight tensor name: "x.q_proj.weight" -> "x.q_proj". */
    public static String module(String weightName) {
        return weightName.endsWith(".weight") ? weightName.substring(0, weightName.length() - ".weight".length()) : weightName;
    }

    /** The name of one compressed part of a module's weight, as current compressed-tensors writes it. */
    public static String part(String module, String part) {
        return module + "." + part;
    }

    /**
     * The module whose weight the tensor {@code name} is a compressed part of (either naming), or null when it is not
     * one: "x.q_proj.bitmask" and "x.q_proj.weight.bitmask" both give "x.q_proj".
     */
    public static String moduleOfPart(String name) {
        int dot = name.lastIndexOf('.');
        if (dot < 0 || !PARTS.contains(name.substring(dot + 1))) return null;
        return module(name.substring(0, dot));
    }

    /**
     * The compressed weight {@code weightName} ("<module>.weight") of [rows, cols], or null when the files hold no
     * compressed parts for it. Parts that disagree with each other or with the config throw {@link ModelFormatException}.
     */
    static WeightMatrix read(ModelFiles files, String weightName, int rows, int cols, String configNote) {
        for (String prefix : new String[] {module(weightName), weightName}) {
            if (!files.contains(part(prefix, COMPRESSED)) || !files.contains(part(prefix, BITMASK))) continue;
            TensorInfo values = files.tensor(part(prefix, COMPRESSED));
            TensorInfo mask = files.tensor(part(prefix, BITMASK));
            TensorInfo shape = files.tensor(part(prefix, SHAPE));
            checkShape(shape, rows, cols, configNote);
            if (!values.dtype().isWeightType()) {
                throw new ModelFormatException(values.file(), "tensor '" + values.name() + "' has dtype " + values.dtype()
                        + "; weights must be F32, F16 or BF16");
            }
            if (mask.dtype() != DType.U8 && mask.dtype() != DType.I8 && mask.dtype() != DType.BOOL) {
                throw new ModelFormatException(mask.file(), "tensor '" + mask.name() + "' has dtype " + mask.dtype()
                        + "; a packed bitmask is U8");
            }
            String offsetsName = part(prefix, ROW_OFFSETS);
            try {
                if (files.contains(offsetsName)) {
                    TensorInfo offsets = files.tensor(offsetsName);
                    if (offsets.dtype() != DType.I64) {
                        throw new ModelFormatException(offsets.file(), "tensor '" + offsetsName + "' has dtype "
                                + offsets.dtype() + "; row offsets are I64");
                    }
                    return new BitmaskMatrix(values.data(), mask.data(), offsets.data(), values.dtype(), rows, cols);
                }
                return new NmMatrix(values.data(), mask.data(), values.dtype(), rows, cols, 2, 4);
            } catch (IllegalArgumentException e) {
                throw new ModelFormatException(values.file(), "compressed weight '" + prefix + "' ("
                        + (files.contains(offsetsName) ? FORMAT_BITMASK : FORMAT_24) + "): " + e.getMessage());
            }
        }
        return null;
    }

    private static void checkShape(TensorInfo shape, int rows, int cols, String configNote) {
        if ((shape.dtype() != DType.I64 && shape.dtype() != DType.I32) || shape.numel() != 2) {
            throw new ModelFormatException(shape.file(), "tensor '" + shape.name() + "' must hold the 2 dimensions as I64, got "
                    + shape.dtype() + " " + shape.shapeString());
        }
        long r, c;
        if (shape.dtype() == DType.I64) {
            r = shape.data().get(I64_LE, 0);
            c = shape.data().get(I64_LE, 8);
        } else {
            ValueLayout.OfInt i32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
            r = shape.data().get(i32, 0);
            c = shape.data().get(i32, 4);
        }
        if (r != rows || c != cols) {
            throw new ModelFormatException(shape.file(), "tensor '" + shape.name() + "' says [" + r + ", " + c + "] but "
                    + configNote + " imply [" + rows + ", " + cols + "]");
        }
    }
}

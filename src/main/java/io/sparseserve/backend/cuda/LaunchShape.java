package io.sparseserve.backend.cuda;

/**
 * Grid and block dimensions and dynamic shared memory of one launch, validated against the limits every CUDA
 * device since sm_30 has (block x·y·z ≤ 1024, grid y and z ≤ 65535).
 */
public record LaunchShape(int gridX, int gridY, int gridZ, int blockX, int blockY, int blockZ, int sharedBytes) {
    public LaunchShape {
        if (gridX < 1 || gridY < 1 || gridZ < 1 || blockX < 1 || blockY < 1 || blockZ < 1 || sharedBytes < 0) {
            throw new IllegalArgumentException("launch shape " + dims(gridX, gridY, gridZ) + " x " + dims(blockX, blockY, blockZ));
        }
        if ((long) blockX * blockY * blockZ > 1024) {
            throw new IllegalArgumentException("block " + dims(blockX, blockY, blockZ) + " has more than 1024 threads");
        }
        if (gridY > 65535 || gridZ > 65535) throw new IllegalArgumentException("grid " + dims(gridX, gridY, gridZ) + " exceeds 65535 in y or z");
    }

    public static LaunchShape of(int grid, int block) {
        return new LaunchShape(grid, 1, 1, block, 1, 1, 0);
    }

    public static LaunchShape of(int gridX, int gridY, int block, int sharedBytes) {
        return new LaunchShape(gridX, gridY, 1, block, 1, 1, sharedBytes);
    }

    /** Blocks of {@code block} threads covering {@code n} items, one per thread. */
    public static int blocksFor(long n, int block) {
        if (n < 0 || block < 1) throw new IllegalArgumentException(n + " items in blocks of " + block);
        long blocks = (n + block - 1) / block;
        if (blocks > Integer.MAX_VALUE) throw new IllegalArgumentException(n + " items need more than 2^31 blocks");
        return (int) Math.max(1, blocks);
    }

    private static String dims(int x, int y, int z) {
        return "(" + x + ", " + y + ", " + z + ")";
    }
}

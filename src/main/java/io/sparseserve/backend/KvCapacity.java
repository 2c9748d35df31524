package io.sparseserve.backend;

/** How many KV blocks a runner holds. */
public sealed interface KvCapacity {
    /** Exactly this many blocks (generate, eval, bench: they know their sequences). */
    record Blocks(int blocks) implements KvCapacity {
        public Blocks {
            if (blocks < 1) throw new IllegalArgumentException("KV blocks must be >= 1, got " + blocks);
        }
    }

    /** As many blocks as fit in this many bytes ({@code --kv-cache-bytes}). */
    record Bytes(long bytes) implements KvCapacity {
        public Bytes {
            if (bytes < 1) throw new IllegalArgumentException("KV bytes must be >= 1, got " + bytes);
        }
    }

    /**
     * The device decides (the server's default): the CPU runner holds enough for {@code sequences} sequences of
     * {@code positionsEach} positions but at most half the host memory available ({@link KvSizing#cpuAutoBlocks}); a
     * GPU runner fills what {@code --gpu-memory-utilization} leaves after weights, workspace and activations
     * ({@link KvSizing#blocks}).
     */
    record Auto(int sequences, int positionsEach) implements KvCapacity {
        public Auto {
            if (sequences < 1 || positionsEach < 1) throw new IllegalArgumentException("Auto KV needs sequences and positions >= 1");
        }
    }
}

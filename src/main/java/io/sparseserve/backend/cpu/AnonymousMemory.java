package io.sparseserve.backend.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Locale;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Native memory for the KV cache, owned by an arena: an anonymous private mapping ({@code mmap(2)} with
 * {@code MAP_PRIVATE | MAP_ANONYMOUS}, unmapped when the arena closes) where the platform has one, else
 * {@link Arena#allocate}. A mapping's pages are zero-filled by the kernel on first touch, so a KV cache sized for
 * many long sequences costs resident memory only as sequences fill it, and opens at once; {@code Arena.allocate}
 * would clear every byte up front (seconds for tens of GiB, and all of it resident). Nothing reads a KV slot before a
 * step has written it, so the memory's initial content does not matter either way.
 */
final class AnonymousMemory {
    private static final Logger log = LoggerFactory.getLogger(AnonymousMemory.class);
    private static final int PROT_READ = 1, PROT_WRITE = 2, MAP_PRIVATE = 2;
    private static final long ALIGN = 64;
    private static final Mmap MMAP = Mmap.lookup();

    private AnonymousMemory() {}

    /** {@code bytes} bytes of native memory, freed when {@code arena} closes; throws OutOfMemoryError when refused. */
    static MemorySegment allocate(long bytes, Arena arena) {
        if (bytes <= 0) throw new IllegalArgumentException("bytes " + bytes);
        if (MMAP != null) {
            MemorySegment mapped = MMAP.map(bytes, arena);
            if (mapped != null) return mapped;
        }
        return arena.allocate(bytes, ALIGN);
    }

    /** mmap and munmap from the C library, with this OS's MAP_ANONYMOUS; null where either is missing. */
    private record Mmap(MethodHandle mmap, MethodHandle munmap, int anonymous) {
        static Mmap lookup() {
            String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
            // MAP_ANONYMOUS: 0x20 on Linux, 0x1000 (MAP_ANON) on macOS; other systems take Arena.allocate.
            int anonymous = os.contains("linux") ? 0x20 : os.contains("mac") ? 0x1000 : 0;
            if (anonymous == 0) return null;
            try {
                Linker linker = Linker.nativeLinker();
                SymbolLookup libc = linker.defaultLookup();
                MethodHandle mmap = linker.downcallHandle(libc.find("mmap").orElseThrow(), FunctionDescriptor.of(
                        ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT,
                        ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG));
                MethodHandle munmap = linker.downcallHandle(libc.find("munmap").orElseThrow(),
                        FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));
                return new Mmap(mmap, munmap, anonymous);
            } catch (RuntimeException e) {
                // Native access refused (no --enable-native-access) or no such symbol: the arena's own memory serves.
                log.debug("no anonymous mappings for the KV cache ({}); using Arena.allocate", e.toString());
                return null;
            }
        }

        /** A fresh mapping of {@code bytes}, unmapped when the arena closes; null when mmap fails. */
        MemorySegment map(long bytes, Arena arena) {
            MemorySegment address;
            try {
                address = (MemorySegment) mmap.invokeExact(MemorySegment.NULL, bytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | anonymous, -1, 0L);
            } catch (Throwable t) {
                throw new IllegalStateException("mmap of " + bytes + " bytes", t);
            }
            if (address.address() == -1L || address.address() == 0L) return null; // MAP_FAILED: let the arena try
            return address.reinterpret(bytes, arena, segment -> unmap(segment.address(), bytes));
        }

        private void unmap(long address, long bytes) {
            int rc;
            try {
                rc = (int) munmap.invokeExact(MemorySegment.ofAddress(address), bytes);
            } catch (Throwable t) {
                throw new IllegalStateException("munmap of " + bytes + " bytes", t);
            }
            if (rc != 0) log.warn("munmap of {} bytes at 0x{} failed", bytes, Long.toHexString(address));
        }
    }
}

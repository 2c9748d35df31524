package io.sparseserve.backend.cuda;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * Finds CUDA's shared libraries (libcublas.so.13, libcusparse.so.12...) for FFM downcalls and for preloading before
 * JCuda's JNI libraries (which name them as NEEDED and would otherwise rely on the loader's path). The directories
 * are an explicit list, in this order, logged by the caller:
 * <ol>
 *   <li>{@code SPARSE_SERVE_CUDA_LIBS} (environment; colon-separated), then the system property
 *       {@code sparseserve.cuda.libs};</li>
 *   <li>{@code LD_LIBRARY_PATH};</li>
 *   <li>{@code $CUDA_HOME/lib64}, {@code /usr/local/cuda/lib64}, {@code /usr/local/cuda/targets/x86_64-linux/lib};</li>
 *   <li>a Python environment's NVIDIA wheels, {@code site-packages/nvidia/*}{@code /lib} (PyTorch's CUDA libraries;
 *       CUDA 13 wheels put them all in {@code nvidia/cu13/lib}), under {@code $VIRTUAL_ENV}, {@code $CONDA_PREFIX},
 *       {@code /usr/local/lib/python3.*}, {@code /usr/lib/python3}, {@code /opt/conda/lib/python3.*},
 *       {@code ~/.local/lib/python3.*};</li>
 *   <li>the system's {@code /usr/lib/x86_64-linux-gnu}, {@code /usr/lib64}.</li>
 * </ol>
 */
public final class CudaLibraries {
    private final List<Path> directories;

    public CudaLibraries(List<Path> directories) {
        this.directories = List.copyOf(directories);
    }

    /** The search path of this process's environment. */
    public static CudaLibraries fromEnvironment() {
        return new CudaLibraries(searchPath(System.getenv(), System.getProperty("sparseserve.cuda.libs"), Path.of(System.getProperty("user.home", "/root"))));
    }

    /** The directories to search, in order, existing ones only, without repeats. */
    public static List<Path> searchPath(Map<String, String> env, String property, Path home) {
        Set<Path> dirs = new LinkedHashSet<>();
        split(env.get("SPARSE_SERVE_CUDA_LIBS"), dirs);
        split(property, dirs);
        split(env.get("LD_LIBRARY_PATH"), dirs);
        if (env.get("CUDA_HOME") != null) dirs.add(Path.of(env.get("CUDA_HOME"), "lib64"));
        dirs.add(Path.of("/usr/local/cuda/lib64"));
        dirs.add(Path.of("/usr/local/cuda/targets/x86_64-linux/lib"));
        List<Path> sitePackages = new ArrayList<>();
        for (String prefix : new String[] {env.get("VIRTUAL_ENV"), env.get("CONDA_PREFIX")}) {
            if (prefix != null) sitePackages.addAll(glob(Path.of(prefix, "lib"), "python3*", "site-packages"));
        }
        sitePackages.addAll(glob(Path.of("/usr/local/lib"), "python3*", "dist-packages"));
        sitePackages.addAll(glob(Path.of("/usr/local/lib"), "python3*", "site-packages"));
        sitePackages.add(Path.of("/usr/lib/python3/dist-packages"));
        sitePackages.addAll(glob(Path.of("/opt/conda/lib"), "python3*", "site-packages"));
        sitePackages.addAll(glob(home.resolve(".local/lib"), "python3*", "site-packages"));
        for (Path sp : sitePackages) dirs.addAll(glob(sp.resolve("nvidia"), "*", "lib"));
        dirs.add(Path.of("/usr/lib/x86_64-linux-gnu"));
        dirs.add(Path.of("/usr/lib64"));
        return dirs.stream().filter(Files::isDirectory).toList();
    }

    public List<Path> directories() {
        return directories;
    }

    /** The first of {@code names} (e.g. "libcublas.so.13") found in the first directory that has one. */
    public Optional<Path> find(String... names) {
        for (Path dir : directories) {
            for (String name : names) {
                Path p = dir.resolve(name);
                if (Files.isRegularFile(p)) return Optional.of(p);
            }
        }
        return Optional.empty();
    }

    /** "searched: a, b, c" for the message when nothing is found. */
    public String describe() {
        return directories.isEmpty() ? "no candidate directory exists" : "searched " + String.join(", ", directories.stream().map(Path::toString).toList());
    }

    private static void split(String list, Set<Path> into) {
        if (list == null || list.isBlank()) return;
        for (String s : list.split(":")) if (!s.isBlank()) into.add(Path.of(s));
    }

    /** dir/{pattern}/child for each entry of dir matching the glob pattern, sorted by name (newest python3.X last). */
    private static List<Path> glob(Path dir, String pattern, String child) {
        if (!Files.isDirectory(dir)) return List.of();
        List<Path> out = new ArrayList<>();
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, pattern)) {
            for (Path p : ds) out.add(p.resolve(child));
        } catch (IOException e) {
            throw new java.io.UncheckedIOException("listing " + dir, e);
        }
        out.sort(null);
        return out;
    }
}

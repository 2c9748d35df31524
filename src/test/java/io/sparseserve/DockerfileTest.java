package io.sparseserve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparseserve.cli.Main;
import java.io.IOException;
import java.nio.file.FileSystems;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.ParseResult;

/**
 * deploy/Dockerfile against the repository, since no docker daemon runs here: every file it copies from the build
 * context exists and is not excluded by .dockerignore, every stage it copies from is defined, the entrypoint is the
 * launcher with the jar where the launcher looks for it, the default command parses as {@code serve} of a bundled
 * model, and the image runs as a non-root user on a CUDA 12.x runtime.
 */
class DockerfileTest {
    private static final Path DOCKERFILE = Path.of("deploy", "Dockerfile");

    record Instruction(String keyword, String args) {}

    /** Instructions with line continuations joined and comments dropped. */
    static List<Instruction> parse(Path file) throws IOException {
        List<Instruction> out = new ArrayList<>();
        StringBuilder cur = new StringBuilder();
        for (String line : Files.readAllLines(file)) {
            String t = line.strip();
            if (cur.isEmpty() && (t.isEmpty() || t.startsWith("#"))) continue;
            if (t.startsWith("#")) continue;
            if (t.endsWith("\\")) {
                cur.append(t, 0, t.length() - 1).append(' ');
                continue;
            }
            cur.append(t);
            String s = cur.toString().strip();
            cur.setLength(0);
            int sp = s.indexOf(' ');
            out.add(new Instruction(s.substring(0, sp).toUpperCase(), s.substring(sp + 1).strip()));
        }
        return out;
    }

    @Test
    void dockerfileAgreesWithTheRepository() throws IOException {
        List<Instruction> ins = parse(DOCKERFILE);
        Map<String, String> args = new HashMap<>();
        Set<String> stages = new HashSet<>();
        Map<String, String> copiedTo = new HashMap<>(); // context source -> destination in the last stage
        String stage = null, user = null, workdir = "/", entrypoint = null, cmd = null, expose = null, runtimeFrom = null;
        boolean mavenPackage = false;
        List<String> ignored = dockerignore();
        for (Instruction i : ins) {
            switch (i.keyword()) {
                case "ARG" -> {
                    String[] kv = i.args().split("=", 2);
                    if (kv.length == 2) args.put(kv[0], kv[1]);
                }
                case "FROM" -> {
                    String[] w = i.args().split("\\s+");
                    stage = w.length == 3 && w[1].equalsIgnoreCase("AS") ? w[2] : null;
                    if (stage != null) stages.add(stage);
                    runtimeFrom = expand(w[0], args);
                    copiedTo.clear();
                    user = null;
                }
                case "COPY" -> {
                    List<String> words = new ArrayList<>(List.of(i.args().split("\\s+")));
                    String from = null;
                    while (words.getFirst().startsWith("--")) {
                        String flag = words.removeFirst();
                        if (flag.startsWith("--from=")) from = flag.substring(7);
                    }
                    String dest = words.removeLast();
                    if (from != null) {
                        assertTrue(stages.contains(from) || from.contains(":"), "COPY --from=" + from + ": no such stage");
                        continue;
                    }
                    for (String src : words) {
                        assertTrue(Files.exists(Path.of(src)), "COPY " + src + ": not in the repository");
                        for (String pattern : ignored) {
                            assertFalse(FileSystems.getDefault().getPathMatcher("glob:" + pattern).matches(Path.of(src))
                                    || src.equals(pattern) || src.startsWith(pattern + "/"),
                                    "COPY " + src + " is excluded by .dockerignore (" + pattern + ")");
                        }
                        copiedTo.put(src, dest.startsWith("/") ? dest : workdir + "/" + dest);
                    }
                }
                case "RUN" -> mavenPackage |= i.args().matches(".*\\bmvn\\b.*\\bpackage\\b.*");
                case "USER" -> user = i.args();
                case "WORKDIR" -> workdir = i.args();
                case "ENTRYPOINT" -> entrypoint = i.args();
                case "CMD" -> cmd = i.args();
                case "EXPOSE" -> expose = i.args();
                default -> { }
            }
        }
        assertTrue(mavenPackage, "the image builds the jar with mvn package");
        assertTrue(runtimeFrom.matches("nvidia/cuda:12\\.[0-9.]+-runtime-.*"), "runtime base: CUDA 12.x runtime, got " + runtimeFrom);
        assertNotNull(user, "the runtime stage sets USER");
        assertFalse(user.matches("(root|0)(:.*)?"), "non-root user, got " + user);

        ObjectMapper json = new ObjectMapper();
        JsonNode entry = json.readTree(entrypoint);
        String launcher = copiedTo.get("bin/sparse-serve");
        assertNotNull(launcher, "the launcher bin/sparse-serve is copied into the image");
        assertEquals(launcher, entry.get(0).asText(), "ENTRYPOINT is the launcher");
        assertTrue(Files.isExecutable(Path.of("bin/sparse-serve")), "bin/sparse-serve is executable");
        // bin/sparse-serve runs $here/target/sparse-serve.jar, $here being the launcher's folder's parent.
        String home = Path.of(launcher).getParent().getParent().toString();
        assertTrue(Files.readString(DOCKERFILE).contains("/src/target/sparse-serve.jar " + home + "/target/sparse-serve.jar"),
                "the jar is copied to " + home + "/target/sparse-serve.jar, where the launcher looks");

        List<String> command = new ArrayList<>();
        json.readTree(cmd).forEach(n -> command.add(n.asText()));
        ParseResult serve = new CommandLine(new Main()).parseArgs(command.toArray(String[]::new)).subcommand();
        assertEquals("serve", serve.commandSpec().name());
        Object model = serve.commandSpec().findOption("--model").getValue();
        Object port = serve.commandSpec().findOption("--port").getValue();
        Object host = serve.commandSpec().findOption("--host").getValue();
        assertEquals(workdir + "/models/kdoc-llama-5m", Path.of(workdir).resolve(String.valueOf(model)).toString(),
                "the default command serves the bundled model");
        assertEquals(workdir + "/" + model, copiedTo.get(String.valueOf(model)), "the bundled model is copied in");
        assertEquals("0.0.0.0", String.valueOf(host));
        assertEquals(expose, String.valueOf(port));
    }

    private static List<String> dockerignore() throws IOException {
        return Files.readAllLines(Path.of(".dockerignore")).stream().map(String::strip)
                .filter(l -> !l.isEmpty() && !l.startsWith("#")).toList();
    }

    private static String expand(String text, Map<String, String> args) {
        String s = text;
        for (int i = 0; i < 5 && s.contains("${"); i++) {
            for (var e : args.entrySet()) s = s.replace("${" + e.getKey() + "}", e.getValue());
        }
        return s;
    }
}

package io.sparseserve.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.sparseserve.TestData;
import io.sparseserve.cli.Main;
import io.sparseserve.engine.Engine;
import io.sparseserve.metrics.MeterNames;
import io.sparseserve.metrics.ServingMetrics;
import java.io.IOException;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.yaml.snakeyaml.Yaml;
import picocli.CommandLine;
import picocli.CommandLine.ParseResult;

/**
 * deploy/ against the server it deploys: each kustomize overlay rendered by {@code kubectl kustomize} (here, never
 * committed), its arguments parsed by the real command line, its probes asked of a real server's health service, and
 * every metric the autoscaler, the dashboard and the alert rules name found in a real scrape of the server's meters.
 */
class DeploymentManifestTest {
    private static final Path DEPLOY = Path.of("deploy");
    private static final Pattern METRIC = Pattern.compile("\\bsparseserve_[a-z0-9_]+");
    private static Set<String> scraped;

    /** Names in the exposition of the server's registry with every meter registered, device gauges included. */
    @BeforeAll
    static void scrapeEveryMeter() throws Exception {
        try (ServerFixture server = new ServerFixture(TestData.bundledModel(), Engine.Config.defaults());
             ServingMetrics metrics = new ServingMetrics()) {
            metrics.bindModel(server.model);
            metrics.bindEngine(server.engine);
            metrics.bindDevice(server.engine.runner());
            metrics.requestCompleted("ok", "length");
            scraped = new TreeSet<>();
            for (String line : metrics.scrape().split("\n")) {
                if (line.startsWith("#") || line.isBlank()) continue;
                Matcher m = Pattern.compile("^[a-zA-Z_:][a-zA-Z0-9_:]*").matcher(line);
                if (m.find()) scraped.add(m.group());
            }
        }
    }

    private static List<Map<String, Object>> render(String overlay) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder("kubectl", "kustomize", DEPLOY.resolve("k8s/overlays").resolve(overlay).toString());
        Process p;
        try {
            p = pb.redirectErrorStream(false).start();
        } catch (IOException e) {
            Assumptions.abort("kubectl not found on PATH (" + e.getMessage() + "): skipping the rendering of deploy/k8s");
            throw e;
        }
        byte[] out = p.getInputStream().readAllBytes();
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "kubectl kustomize did not finish");
        assertEquals(0, p.exitValue(), "kubectl kustomize " + overlay + ": " + err);
        List<Map<String, Object>> docs = new ArrayList<>();
        for (Object d : new Yaml().loadAll(new String(out, StandardCharsets.UTF_8))) {
            if (d != null) docs.add(map(d));
        }
        return docs;
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> map(Object o) {
        assertTrue(o instanceof Map, "expected a mapping, got " + o);
        return (Map<String, Object>) o;
    }

    @SuppressWarnings("unchecked")
    private static List<Object> list(Object o) {
        assertTrue(o instanceof List, "expected a list, got " + o);
        return (List<Object>) o;
    }

    private static Object at(Object node, String... path) {
        Object cur = node;
        for (String key : path) {
            cur = key.matches("\\d+") ? list(cur).get(Integer.parseInt(key)) : map(cur).get(key);
            assertNotNull(cur, "missing " + String.join(".", path));
        }
        return cur;
    }

    private static Map<String, Object> one(List<Map<String, Object>> docs, String kind) {
        List<Map<String, Object>> found = docs.stream().filter(d -> kind.equals(d.get("kind"))).toList();
        assertEquals(1, found.size(), "one " + kind + " expected");
        return found.getFirst();
    }

    private static Map<String, Object> named(Object items, String name) {
        return list(items).stream().map(DeploymentManifestTest::map).filter(m -> name.equals(m.get("name"))).findFirst()
                .orElseThrow(() -> new AssertionError("no item named " + name + " in " + items));
    }

    /** The serve subcommand's parse of the container's arguments, by the real command line. */
    private static ParseResult serveArgs(List<Object> args) {
        ParseResult root = new CommandLine(new Main()).parseArgs(args.stream().map(String::valueOf).toArray(String[]::new));
        ParseResult sub = root.subcommand();
        assertNotNull(sub, "args must name a subcommand: " + args);
        assertEquals("serve", sub.commandSpec().name());
        return sub;
    }

    private static String option(ParseResult serve, String name) {
        Object value = serve.commandSpec().findOption(name).getValue(); // parsing applied the defaults
        return String.valueOf(value);
    }

    @ParameterizedTest
    @ValueSource(strings = {"cpu", "gpu"})
    void overlayAgreesWithTheServer(String overlay) throws Exception {
        List<Map<String, Object>> docs = render(overlay);
        Map<String, Object> deployment = one(docs, "Deployment");
        Map<String, Object> pod = map(at(deployment, "spec", "template", "spec"));
        Map<String, Object> server = named(pod.get("containers"), "server");
        ParseResult serve = serveArgs(list(server.get("args")));

        // Port: the server's default, the one it is told, the container's, the Service's target.
        String defaultPort = serve.commandSpec().findOption("--port").defaultValue();
        int containerPort = ((Number) at(server, "ports", "0", "containerPort")).intValue();
        String portName = (String) at(server, "ports", "0", "name");
        assertEquals(Integer.parseInt(defaultPort), containerPort, "container port = the server's default port");
        assertEquals(String.valueOf(containerPort), option(serve, "--port"));
        assertEquals("0.0.0.0", option(serve, "--host"), "the server must listen beyond localhost in a pod");
        Map<String, Object> service = one(docs, "Service");
        Object target = at(service, "spec", "ports", "0", "targetPort");
        assertTrue(target.equals(portName) || target.equals(containerPort), "Service targets the container port");

        // Probes: gRPC health on that port, for services the server's health endpoint reports (checked below).
        for (String probe : List.of("readinessProbe", "livenessProbe", "startupProbe")) {
            assertEquals(containerPort, ((Number) at(server, probe, "grpc", "port")).intValue(), probe);
        }
        assertProbesAnsweredByARealServer((String) at(server, "readinessProbe", "grpc", "service"),
                (String) at(server, "livenessProbe", "grpc", "service"), (String) at(server, "startupProbe", "grpc", "service"));

        // Shutdown: preStop sleep + drain fit in the grace period.
        int drain = Integer.parseInt(option(serve, "--drain-timeout"));
        List<Object> preStop = list(at(server, "lifecycle", "preStop", "exec", "command"));
        int sleep = preStop.getFirst().equals("sleep") ? Integer.parseInt(String.valueOf(preStop.get(1))) : 0;
        int grace = ((Number) pod.get("terminationGracePeriodSeconds")).intValue();
        assertTrue(grace > drain + sleep, "terminationGracePeriodSeconds " + grace + " must exceed preStop " + sleep
                + " s + --drain-timeout " + drain + " s");

        // The model: served read-only from the claim the prune Job writes, at the path the Job writes to, once the
        // marker (config.json, last to appear) exists.
        String model = option(serve, "--model");
        Map<String, Object> mount = list(server.get("volumeMounts")).stream().map(DeploymentManifestTest::map)
                .filter(m -> model.startsWith(m.get("mountPath") + "/")).findFirst()
                .orElseThrow(() -> new AssertionError("--model " + model + " is on no mounted volume"));
        assertEquals(Boolean.TRUE, mount.get("readOnly"), "the model is mounted read-only");
        Object claim = at(named(pod.get("volumes"), (String) mount.get("name")), "persistentVolumeClaim", "claimName");
        Map<String, Object> pvc = one(docs, "PersistentVolumeClaim");
        assertEquals(at(pvc, "metadata", "name"), claim);
        assertTrue(list(at(pvc, "spec", "accessModes")).stream().anyMatch(m -> m.equals("ReadWriteMany") || m.equals("ReadOnlyMany")),
                "every replica must be able to mount the model volume");

        Map<String, Object> jobPod = map(at(one(docs, "Job"), "spec", "template", "spec"));
        Map<String, Object> prune = named(jobPod.get("containers"), "prune");
        Map<String, Object> jobMount = list(prune.get("volumeMounts")).stream().map(DeploymentManifestTest::map)
                .filter(m -> {
                    Object pv = map(named(jobPod.get("volumes"), (String) m.get("name"))).get("persistentVolumeClaim");
                    return pv != null && claim.equals(map(pv).get("claimName"));
                }).findFirst().orElseThrow(() -> new AssertionError("the prune Job does not mount " + claim));
        String script = String.join(" ", list(prune.get("args")).stream().map(String::valueOf).toList());
        Matcher out = Pattern.compile("--out[ =](\\S+)").matcher(script);
        assertTrue(out.find() && script.contains("sparse-serve prune"), "the Job runs sparse-serve prune --out: " + script);
        String written = out.group(1);
        assertEquals(model.substring(((String) mount.get("mountPath")).length()),
                written.substring(((String) jobMount.get("mountPath")).length()), "the Job writes what the Deployment serves");
        Map<String, Object> wait = named(pod.get("initContainers"), "wait-for-model");
        assertTrue(String.join(" ", list(wait.get("args")).stream().map(String::valueOf).toList())
                .contains(model + "/config.json"), "the init container waits for " + model + "/config.json");

        // The API key from a Secret.
        Map<String, Object> key = named(server.get("env"), "SPARSE_SERVE_API_KEY");
        assertNotNull(at(key, "valueFrom", "secretKeyRef", "name"));

        // GPUs: as many as --device lists, and none on the CPU overlay.
        String device = option(serve, "--device");
        Object limits = map(server.get("resources")).get("limits");
        Object gpus = limits == null ? null : map(limits).get("nvidia.com/gpu");
        if (overlay.equals("gpu")) {
            assertTrue(device.startsWith("cuda:"), device);
            assertEquals(device.substring(5).split(",").length, ((Number) gpus).intValue(), "nvidia.com/gpu = devices listed");
        } else {
            assertEquals("cpu", device);
            assertEquals(null, gpus);
        }

        // Disruptions, autoscaling, scraping.
        Map<String, Object> pdb = one(docs, "PodDisruptionBudget");
        assertEquals(1, at(pdb, "spec", "maxUnavailable"));
        Map<String, Object> podLabels = map(at(deployment, "spec", "template", "metadata", "labels"));
        assertTrue(podLabels.entrySet().containsAll(map(at(pdb, "spec", "selector", "matchLabels")).entrySet()));
        assertTrue(podLabels.entrySet().containsAll(map(at(service, "spec", "selector")).entrySet()));
        Map<String, Object> scaled = one(docs, "ScaledObject");
        assertEquals(at(deployment, "metadata", "name"), at(scaled, "spec", "scaleTargetRef", "name"));
        String query = (String) at(scaled, "spec", "triggers", "0", "metadata", "query");
        assertEquals(Set.of("sparseserve_requests_waiting"), metricsIn(query), "autoscaling on the waiting-requests gauge");
        assertKnownMetrics("ScaledObject", query);
        Map<String, Object> monitor = one(docs, "ServiceMonitor");
        assertEquals(portName, at(monitor, "spec", "endpoints", "0", "port"));
        assertEquals("/metrics", at(monitor, "spec", "endpoints", "0", "path"));
        Map<String, Object> serviceLabels = map(at(service, "metadata", "labels"));
        assertTrue(serviceLabels.entrySet().containsAll(map(at(monitor, "spec", "selector", "matchLabels")).entrySet()));
    }

    /** A real server answers SERVING for each probe; while draining, readiness turns NOT_SERVING and liveness not. */
    private static void assertProbesAnsweredByARealServer(String readiness, String liveness, String startup) throws Exception {
        try (ServerFixture server = new ServerFixture(TestData.bundledModel(), Engine.Config.defaults())) {
            var health = HealthGrpc.newBlockingStub(server.channel).withDeadlineAfter(30, TimeUnit.SECONDS);
            for (String s : List.of(readiness, liveness, startup)) {
                assertEquals(ServingStatus.SERVING, health.check(HealthCheckRequest.newBuilder().setService(s).build()).getStatus(), s);
            }
            assertTrue(server.server.drain(Duration.ofSeconds(5)));
            health = HealthGrpc.newBlockingStub(server.channel).withDeadlineAfter(30, TimeUnit.SECONDS);
            assertEquals(ServingStatus.NOT_SERVING, health.check(HealthCheckRequest.newBuilder().setService(readiness).build()).getStatus(),
                    "readiness must fail while draining, so the pod leaves the Service");
            assertEquals(ServingStatus.SERVING, health.check(HealthCheckRequest.newBuilder().setService(liveness).build()).getStatus(),
                    "liveness must hold while draining, or the kubelet kills the requests being finished");
        }
    }

    @Test
    void dashboardAndAlertRulesNameOnlyRealMetrics() throws IOException {
        JsonNode dashboard = new ObjectMapper().readTree(DEPLOY.resolve("grafana/sparse-serve-dashboard.json").toFile());
        List<String> exprs = new ArrayList<>();
        for (JsonNode panel : dashboard.get("panels")) {
            for (JsonNode t : panel.get("targets")) exprs.add(t.get("expr").asText());
        }
        exprs.add(dashboard.at("/templating/list/1/query").asText());
        Set<String> dashboardMetrics = new HashSet<>();
        for (String e : exprs) {
            assertKnownMetrics("dashboard", e);
            dashboardMetrics.addAll(metricsIn(e));
        }
        // TTFT, ITL, queue, batch size, KV use, weight and device memory, tokens/s.
        for (String needed : List.of("sparseserve_time_to_first_token_seconds_bucket", "sparseserve_inter_token_latency_seconds_bucket",
                "sparseserve_requests_waiting", "sparseserve_batch_size_sum", "sparseserve_kv_cache_usage_ratio",
                "sparseserve_model_weight_bytes", "sparseserve_device_memory_used_bytes", "sparseserve_generation_tokens_total")) {
            assertTrue(dashboardMetrics.contains(needed), "the dashboard shows " + needed);
        }

        Map<String, Object> rules = map(new Yaml().load(Files.readString(DEPLOY.resolve("prometheus/sparse-serve-rules.yaml"))));
        Set<String> alerts = new HashSet<>();
        for (Object group : list(rules.get("groups"))) {
            for (Object rule : list(map(group).get("rules"))) {
                Map<String, Object> r = map(rule);
                String expr = (String) r.get("expr");
                assertFalse(metricsIn(expr).isEmpty(), r.get("alert") + " names a metric");
                assertKnownMetrics("alert " + r.get("alert"), expr);
                alerts.addAll(metricsIn(expr));
            }
        }
        // Queue growing, KV near full, errors.
        assertTrue(alerts.containsAll(Set.of("sparseserve_requests_waiting", "sparseserve_kv_cache_usage_ratio",
                "sparseserve_requests_total")), alerts.toString());
    }

    private static Set<String> metricsIn(String promql) {
        Set<String> names = new TreeSet<>();
        Matcher m = METRIC.matcher(promql);
        while (m.find()) names.add(m.group());
        return names;
    }

    /** Each name is in the real scrape and is a MeterNames constant with one of Prometheus' suffixes. */
    private static void assertKnownMetrics(String where, String promql) {
        Set<String> constants = new TreeSet<>();
        for (Field f : MeterNames.class.getFields()) {
            if (Modifier.isStatic(f.getModifiers()) && f.getType() == String.class && !f.getName().startsWith("TAG_")) {
                try {
                    constants.add(((String) f.get(null)).replace('.', '_'));
                } catch (IllegalAccessException e) {
                    throw new AssertionError(e);
                }
            }
        }
        for (String name : metricsIn(promql)) {
            assertTrue(scraped.contains(name), where + ": " + name + " is not exposed by the server (exposed: " + scraped + ")");
            String base = name.replaceFirst("_(bucket|count|sum|max)$", "").replaceFirst("_(seconds|total|bytes)$", "");
            assertTrue(constants.contains(base), where + ": " + name + " is no MeterNames constant (" + base + ")");
        }
    }
}

package io.sparseserve.cli;

import io.sparseserve.backend.DeviceFailure;
import io.sparseserve.model.InvalidInputException;
import java.io.PrintWriter;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code sparse-serve} command: one subcommand per job. Exit 0 ok, 2 bad usage or input, 1 internal error. */
@Command(name = "sparse-serve", mixinStandardHelpOptions = true, version = "sparse-serve 0.1.0",
        description = "Serve, prune and evaluate pruned (sparse) large language models.",
        subcommands = {ServeCommand.class, LoadtestCommand.class, AbuseCommand.class, GenerateCommand.class, EvalCommand.class, PruneCommand.class, InspectCommand.class, BenchCommand.class, PlanCommand.class,
                SynthCommand.class, GpuCalibrateCommand.class, GpuCompareCommand.class, CommandLine.HelpCommand.class})
public final class Main {

    public static final int EXIT_OK = 0;
    public static final int EXIT_INTERNAL = 1;
    public static final int EXIT_BAD_INPUT = 2;

    public static void main(String[] args) {
        System.exit(run(args));
    }

    public static int run(String... args) {
        return run(new PrintWriter(System.out, true), new PrintWriter(System.err, true), args);
    }

    /** Runs with the given output streams (tests capture them). */
    public static int run(PrintWriter out, PrintWriter err, String... args) {
        CommandLine cli = new CommandLine(new Main());
        cli.setOut(out);
        cli.setErr(err);
        cli.setExecutionExceptionHandler(Main::handle);
        int code = cli.execute(args);
        out.flush();
        err.flush();
        return code;
    }

    /** Bad input: one line naming the problem, no stack trace. Anything else is a bug: say so, with the trace. */
    private static int handle(Exception e, CommandLine cmd, CommandLine.ParseResult parsed) {
        PrintWriter err = cmd.getErr();
        if (e instanceof InvalidInputException) {
            err.println("error: " + e.getMessage());
            err.flush();
            return EXIT_BAD_INPUT;
        }
        DeviceFailure failure = deviceFailure(e);
        if (failure != null) {
            // Not a bug of ours: the device is gone (a sticky CUDA error). One line, and a code that says failure.
            err.println("error: device failed: " + failure.getMessage());
            err.flush();
            return EXIT_INTERNAL;
        }
        err.println("internal error: " + e);
        e.printStackTrace(err);
        err.flush();
        return EXIT_INTERNAL;
    }

    /** The device failure behind e (thrown directly or wrapped by an executor), or null. */
    private static DeviceFailure deviceFailure(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof DeviceFailure failure) return failure;
        }
        return null;
    }
}

package org.edgematte.core;

import java.util.ArrayList;
import java.util.List;

import org.junit.runner.JUnitCore;
import org.junit.runner.Request;
import org.junit.runner.Result;
import org.junit.runner.notification.Failure;

/**
 * Runs the given JUnit 4 test classes and ends with the line {@code junit: N passed, M failed} (host-test.sh
 * and the Makefile read it); exits non-zero when a test failed or none ran.
 */
public final class HostTestMain {

    private HostTestMain() {
    }

    public static void main(String[] args) throws ClassNotFoundException {
        List<Class<?>> classes = new ArrayList<>();
        for (String name : args) {
            classes.add(Class.forName(name));
        }
        JUnitCore core = new JUnitCore();
        int run = 0;
        int failed = 0;
        for (Class<?> c : classes) {
            Result result = core.run(Request.aClass(c));
            for (Failure failure : result.getFailures()) {
                System.out.println("FAIL " + failure.getTestHeader() + ": " + failure.getMessage());
                if (!(failure.getException() instanceof AssertionError)) {
                    failure.getException().printStackTrace(System.out);
                }
            }
            System.out.println(String.format("%-40s %d run, %d failed", c.getSimpleName(), result.getRunCount(),
                    result.getFailureCount()));
            // A failing @BeforeClass reports one failure and zero runs: count it as a failure.
            run += Math.max(result.getRunCount(), result.getFailureCount());
            failed += result.getFailureCount();
        }
        System.out.println("junit: " + (run - failed) + " passed, " + failed + " failed");
        System.exit(failed == 0 && run > 0 ? 0 : 1);
    }
}

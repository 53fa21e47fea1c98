package org.edgematte.core;

import java.util.LinkedHashMap;
import java.util.Map;

/** Wall-clock milliseconds per named stage, in the order the stages ran. */
public final class StageTimer {

    private final Map<String, Double> stages = new LinkedHashMap<>();
    private long started;
    private String current;

    public void start(String stage) {
        stop();
        current = stage;
        started = System.nanoTime();
    }

    public void stop() {
        if (current != null) {
            add(current, (System.nanoTime() - started) / 1e6);
            current = null;
        }
    }

    /** Adds {@code milliseconds} to {@code stage} (stages repeated in a run are summed). */
    public void add(String stage, double milliseconds) {
        Double before = stages.get(stage);
        stages.put(stage, before == null ? milliseconds : before + milliseconds);
    }

    public Map<String, Double> stages() {
        stop();
        return new LinkedHashMap<>(stages);
    }

    public double total() {
        double sum = 0;
        for (double ms : stages().values()) {
            sum += ms;
        }
        return sum;
    }

    /** "preprocess 12.3 ms, inference 95.0 ms, ..." for the screen. */
    public String summary() {
        StringBuilder out = new StringBuilder();
        for (Map.Entry<String, Double> stage : stages().entrySet()) {
            if (out.length() > 0) {
                out.append('\n');
            }
            out.append(String.format(java.util.Locale.ROOT, "%-12s %8.1f ms", stage.getKey(), stage.getValue()));
        }
        return out.append(String.format(java.util.Locale.ROOT, "\n%-12s %8.1f ms", "total", total())).toString();
    }
}

package org.edgematte.core;

import java.util.Arrays;
import java.util.Locale;
import java.util.Map;

/**
 * The live camera mode's overlay figures over a sliding window of the last {@code window} processed frames:
 * frames per second from their completion times, and the median of each stage (pre, model, post, and their
 * sum, total) over the same frames. Medians, not means: one frame stalled by garbage collection or a
 * thermal step should not move the figures. The caller gives the times ({@code System.nanoTime()} on a
 * phone), so the arithmetic is tested on the host without a clock.
 *
 * <p>No frame: no figures (NaN, the line shows "-- fps" alone). One frame: its stage times, but no fps yet
 * (a rate needs an interval). {@link #reset()} (a new clip: camera restarted, model changed, frame size
 * changed) empties the window, so a new clip's figures never mix with the previous one's.
 *
 * <p>Not thread-safe: the analysis thread adds frames and formats the line.
 */
public final class LiveStats {

    /** About one second of frames at camera rate. */
    public static final int DEFAULT_WINDOW = 30;
    /** The stage {@link MattingPipeline} times the model in; stages before it are "pre", after it "post". */
    public static final String MODEL_STAGE = "inference";

    private final long[] completed;
    private final double[] pre;
    private final double[] model;
    private final double[] post;
    private final double[] total;
    /** Frames in the window; they sit in the ring ending just before {@link #next}. */
    private int count;
    private int next;

    public LiveStats() {
        this(DEFAULT_WINDOW);
    }

    /** {@code window}: how many recent frames the figures cover; at least 2, since a rate needs two frames. */
    public LiveStats(int window) {
        if (window < 2) {
            throw new IllegalArgumentException("the window must hold at least 2 frames, got " + window);
        }
        completed = new long[window];
        pre = new double[window];
        model = new double[window];
        post = new double[window];
        total = new double[window];
    }

    public int window() {
        return completed.length;
    }

    /** Frames in the window (0 after {@link #reset()}, at most {@link #window()}). */
    public int frames() {
        return count;
    }

    /** A new clip: the window empties. */
    public void reset() {
        count = 0;
        next = 0;
    }

    /**
     * One frame done at {@code completedNanos} (not earlier than the previous frame of this clip), its stages
     * in milliseconds; total is their sum. When the window is full the oldest frame leaves it.
     */
    public void add(long completedNanos, double preMs, double modelMs, double postMs) {
        if (count > 0 && completedNanos < completed[index(count - 1)]) {
            throw new IllegalArgumentException("frame completion times went back: " + completedNanos + " ns after "
                    + completed[index(count - 1)] + " ns");
        }
        completed[next] = completedNanos;
        pre[next] = preMs;
        model[next] = modelMs;
        post[next] = postMs;
        total[next] = preMs + modelMs + postMs;
        next = (next + 1) % completed.length;
        count = Math.min(count + 1, completed.length);
    }

    /**
     * One frame the pipeline timed: pre is every stage before {@link #MODEL_STAGE} plus {@code extraPreMs} (the
     * app's camera frame conversion), model is {@link #MODEL_STAGE}, post every stage after it plus
     * {@code extraPostMs} (the app's bitmap for the screen). Split by position rather than by name so that a
     * stage the pipeline adds later (e.g. "trimap") lands on the right side without a change here.
     */
    public void add(long completedNanos, StageTimer timer, double extraPreMs, double extraPostMs) {
        double before = extraPreMs;
        double after = extraPostMs;
        Double inference = null;
        for (Map.Entry<String, Double> stage : timer.stages().entrySet()) {
            if (stage.getKey().equals(MODEL_STAGE)) {
                inference = stage.getValue();
            } else if (inference == null) {
                before += stage.getValue();
            } else {
                after += stage.getValue();
            }
        }
        if (inference == null) {
            throw new IllegalArgumentException("the timer has no '" + MODEL_STAGE + "' stage: " + timer.stages());
        }
        add(completedNanos, before, inference, after);
    }

    /** Frames per second over the window: (frames - 1) intervals over their span; NaN below 2 frames or no span. */
    public double fps() {
        if (count < 2) {
            return Double.NaN;
        }
        long span = completed[index(count - 1)] - completed[index(0)];
        return span > 0 ? (count - 1) * 1e9 / span : Double.NaN;
    }

    public double medianPreMs() {
        return median(pre);
    }

    public double medianModelMs() {
        return median(model);
    }

    public double medianPostMs() {
        return median(post);
    }

    public double medianTotalMs() {
        return median(total);
    }

    /**
     * The overlay line, e.g. {@code "RVM 24.8 fps | pre 3.1 ms  model 30.2 ms  post 2.0 ms  total 35.3 ms"};
     * {@code "RVM -- fps | ..."} with one frame, {@code "RVM -- fps"} with none.
     */
    public String line(String label) {
        double fps = fps();
        String rate = Double.isNaN(fps) ? "--" : String.format(Locale.ROOT, "%.1f", fps);
        if (count == 0) {
            return label + " " + rate + " fps";
        }
        return String.format(Locale.ROOT, "%s %s fps | pre %.1f ms  model %.1f ms  post %.1f ms  total %.1f ms",
                label, rate, medianPreMs(), medianModelMs(), medianPostMs(), medianTotalMs());
    }

    /** Ring position of the {@code i}-th frame of the window, oldest first. */
    private int index(int i) {
        int n = completed.length;
        return ((next - count + i) % n + n) % n;
    }

    private double median(double[] ring) {
        if (count == 0) {
            return Double.NaN;
        }
        double[] values = new double[count];
        for (int i = 0; i < count; i++) {
            values[i] = ring[index(i)];
        }
        Arrays.sort(values);
        return count % 2 == 1 ? values[count / 2] : (values[count / 2 - 1] + values[count / 2]) / 2;
    }
}

package org.edgematte.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import org.junit.Test;

/**
 * {@link LiveStats}: every expected figure below is worked out by hand in the comments (frames per second from
 * completion times in nanoseconds, medians of the stages), including a window of 3 that drops its oldest frame
 * and a reset between clips.
 */
public class LiveStatsTest {

    private static final double EPS = 1e-9;
    private static final long SECOND = 1_000_000_000L;

    @Test
    public void noFrameHasNoFigures() {
        LiveStats stats = new LiveStats(3);
        assertEquals(0, stats.frames());
        assertTrue(Double.isNaN(stats.fps()));
        assertTrue(Double.isNaN(stats.medianPreMs()));
        assertTrue(Double.isNaN(stats.medianTotalMs()));
        assertEquals("RVM -- fps", stats.line("RVM"));
    }

    @Test
    public void oneFrameHasStagesButNoFps() {
        LiveStats stats = new LiveStats(3);
        stats.add(SECOND, 3.0, 30.0, 2.0);
        assertEquals(1, stats.frames());
        assertTrue(Double.isNaN(stats.fps()));
        assertEquals(3.0, stats.medianPreMs(), EPS);
        assertEquals(30.0, stats.medianModelMs(), EPS);
        assertEquals(2.0, stats.medianPostMs(), EPS);
        assertEquals(35.0, stats.medianTotalMs(), EPS);  // 3 + 30 + 2
        assertEquals("RVM -- fps | pre 3.0 ms  model 30.0 ms  post 2.0 ms  total 35.0 ms", stats.line("RVM"));
    }

    @Test
    public void windowSlidesOverTheLastFrames() {
        LiveStats stats = new LiveStats(3);
        // frame  done at    pre   model  post   total
        //   1    1.000 s    3     30     2      35
        //   2    1.040 s    5     20     1      26
        //   3    1.090 s    4     40     3      47
        //   4    1.150 s   10     25     0.5    35.5
        stats.add(SECOND, 3.0, 30.0, 2.0);
        stats.add(SECOND + 40_000_000L, 5.0, 20.0, 1.0);
        // Two frames: 1 interval of 40 ms = 25 frames/s; even count, medians are the means of the two.
        assertEquals(25.0, stats.fps(), EPS);
        assertEquals(4.0, stats.medianPreMs(), EPS);     // (3 + 5) / 2
        assertEquals(25.0, stats.medianModelMs(), EPS);  // (30 + 20) / 2
        assertEquals(1.5, stats.medianPostMs(), EPS);    // (2 + 1) / 2
        assertEquals(30.5, stats.medianTotalMs(), EPS);  // (35 + 26) / 2
        assertEquals("RVM 25.0 fps | pre 4.0 ms  model 25.0 ms  post 1.5 ms  total 30.5 ms", stats.line("RVM"));

        stats.add(SECOND + 90_000_000L, 4.0, 40.0, 3.0);
        // Three frames (window full): 2 intervals in 90 ms = 22.2222... frames/s.
        assertEquals(3, stats.frames());
        assertEquals(22.222222222222, stats.fps(), 1e-9);
        assertEquals(4.0, stats.medianPreMs(), EPS);     // {3, 4, 5}
        assertEquals(30.0, stats.medianModelMs(), EPS);  // {20, 30, 40}
        assertEquals(2.0, stats.medianPostMs(), EPS);    // {1, 2, 3}
        assertEquals(35.0, stats.medianTotalMs(), EPS);  // {26, 35, 47}
        assertEquals("RVM 22.2 fps | pre 4.0 ms  model 30.0 ms  post 2.0 ms  total 35.0 ms", stats.line("RVM"));

        stats.add(SECOND + 150_000_000L, 10.0, 25.0, 0.5);
        // Frame 1 leaves: frames 2-4, 2 intervals from 1.040 s to 1.150 s = 110 ms -> 18.1818... frames/s.
        assertEquals(3, stats.frames());
        assertEquals(18.181818181818, stats.fps(), 1e-9);
        assertEquals(5.0, stats.medianPreMs(), EPS);     // {4, 5, 10}
        assertEquals(25.0, stats.medianModelMs(), EPS);  // {20, 25, 40}
        assertEquals(1.0, stats.medianPostMs(), EPS);    // {0.5, 1, 3}
        assertEquals(35.5, stats.medianTotalMs(), EPS);  // {26, 35.5, 47}
        assertEquals("RVM 18.2 fps | pre 5.0 ms  model 25.0 ms  post 1.0 ms  total 35.5 ms", stats.line("RVM"));

        // Two more turns of the ring: only frames 4-6 count (span 1.150 s -> 1.250 s, 2 intervals in 100 ms).
        stats.add(SECOND + 200_000_000L, 1.0, 1.0, 1.0);
        stats.add(SECOND + 250_000_000L, 2.0, 2.0, 2.0);
        assertEquals(20.0, stats.fps(), EPS);
        assertEquals(2.0, stats.medianPreMs(), EPS);     // {10, 1, 2}
        assertEquals(2.0, stats.medianModelMs(), EPS);   // {25, 1, 2}
        assertEquals(1.0, stats.medianPostMs(), EPS);    // {0.5, 1, 2}
        assertEquals(6.0, stats.medianTotalMs(), EPS);   // {35.5, 3, 6}
    }

    @Test
    public void resetStartsANewClip() {
        LiveStats stats = new LiveStats(3);
        stats.add(SECOND, 3.0, 30.0, 2.0);
        stats.add(SECOND + 40_000_000L, 5.0, 20.0, 1.0);
        stats.reset();
        assertEquals(0, stats.frames());
        assertTrue(Double.isNaN(stats.fps()));
        assertEquals("RVM -- fps", stats.line("RVM"));

        // The new clip's clock may be anywhere (even before the old frames); its first frame alone gives no
        // fps: the old frames are gone, not one interval back to 1.040 s.
        stats.add(SECOND / 2, 7.0, 70.0, 7.0);
        assertEquals(1, stats.frames());
        assertTrue(Double.isNaN(stats.fps()));
        assertEquals(84.0, stats.medianTotalMs(), EPS);  // 7 + 70 + 7, not mixed with 35 and 26
        stats.add(SECOND / 2 + 50_000_000L, 9.0, 90.0, 9.0);
        assertEquals(20.0, stats.fps(), EPS);            // 1 interval of 50 ms
        assertEquals(8.0, stats.medianPreMs(), EPS);     // (7 + 9) / 2
        assertEquals(96.0, stats.medianTotalMs(), EPS);  // (84 + 108) / 2
    }

    @Test
    public void pipelineStagesSplitAroundInference() {
        // The stages MattingPipeline times, in its order (binary fractions: sums are exact).
        StageTimer timer = new StageTimer();
        timer.add("preprocess", 2.0);
        timer.add("quantize", 0.5);
        timer.add("inference", 30.0);
        timer.add("dequantize", 0.25);
        timer.add("postprocess", 1.0);
        timer.add("alpha8", 0.25);
        timer.add("composite", 1.5);
        LiveStats stats = new LiveStats(3);
        stats.add(SECOND, timer, 1.0, 0.5);
        assertEquals(3.5, stats.medianPreMs(), EPS);     // convert 1 + preprocess 2 + quantize 0.5
        assertEquals(30.0, stats.medianModelMs(), EPS);
        assertEquals(3.5, stats.medianPostMs(), EPS);    // 0.25 + 1 + 0.25 + 1.5 + bitmap 0.5
        assertEquals(37.0, stats.medianTotalMs(), EPS);  // 3.5 + 30 + 3.5
    }

    @Test
    public void framesAtTheSameInstantHaveNoRate() {
        LiveStats stats = new LiveStats(3);
        stats.add(SECOND, 1.0, 1.0, 1.0);
        stats.add(SECOND, 1.0, 1.0, 1.0);
        assertTrue(Double.isNaN(stats.fps()));
        assertEquals("RVM -- fps | pre 1.0 ms  model 1.0 ms  post 1.0 ms  total 3.0 ms", stats.line("RVM"));
    }

    @Test
    public void rejectsTimeGoingBackAndBadInput() {
        LiveStats stats = new LiveStats(3);
        stats.add(SECOND, 1.0, 1.0, 1.0);
        try {
            stats.add(SECOND - 1, 1.0, 1.0, 1.0);
            fail("a frame completed before the previous one");
        } catch (IllegalArgumentException expected) {
            assertEquals(1, stats.frames());
        }
        try {
            new LiveStats(1);
            fail("a window of one frame has no rate");
        } catch (IllegalArgumentException expected) {
            // the message names the window
        }
        StageTimer noInference = new StageTimer();
        noInference.add("preprocess", 1.0);
        try {
            stats.add(2 * SECOND, noInference, 0, 0);
            fail("a timer without the model stage");
        } catch (IllegalArgumentException expected) {
            assertEquals(1, stats.frames());
        }
    }
}

package org.edgematte.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;

import org.junit.Test;

/** Hand-computed cases of the fixed-point resizes (the golden vectors cover real photos). */
public class FixedPointResizeTest {

    private static final AndroidConstants C = AndroidConstants.DEFAULT;

    @Test
    public void letterboxKeepsAspectAndRoundsHalfUp() {
        // 512x512 into 96x128: height binds, width = 512 * 96 / 512 = 96.
        assertEquals(new Size(96, 96), FixedPointResize.letterboxSize(new Size(512, 512), new Size(96, 128)));
        // 300x451 into 96x128: width binds, height = 300 * 128 / 451 = 85.14 -> 85.
        assertEquals(new Size(85, 128), FixedPointResize.letterboxSize(new Size(300, 451), new Size(96, 128)));
        // 1x3 into 4x4: width binds, height = 1 * 4 / 3 = 1.33 -> 1; 2x4 into 3x3: height = 1.5 -> 2 (half up).
        assertEquals(new Size(1, 4), FixedPointResize.letterboxSize(new Size(1, 3), new Size(4, 4)));
        assertEquals(new Size(2, 3), FixedPointResize.letterboxSize(new Size(2, 4), new Size(3, 3)));
        // A 1000-wide, 1-high strip never becomes 0 pixels high.
        assertEquals(new Size(1, 10), FixedPointResize.letterboxSize(new Size(1, 1000), new Size(10, 10)));
    }

    @Test
    public void boxFactorNeedsTwoFoldDownscale() {
        assertEquals(1, FixedPointResize.boxFactor(new Size(100, 100), new Size(51, 51), C));
        assertEquals(2, FixedPointResize.boxFactor(new Size(100, 100), new Size(50, 50), C));
        assertEquals(3, FixedPointResize.boxFactor(new Size(300, 451), new Size(85, 128), C));
    }

    @Test
    public void twoToFourUpscaleIsLinearWithHalfPixelCentres() {
        // Positions 0.25 * (2j + 1) - 0.5 on the source grid: -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
        byte[] src = {0, 100};
        byte[] out = FixedPointResize.resizeUint8(src, new Size(1, 2), 1, new Size(1, 4), true, C);
        assertArrayEquals(new byte[] {0, 25, 75, 100}, out);
    }

    @Test
    public void twoFoldDownscaleAveragesBlocksRoundingHalfUp() {
        // 2x2 blocks of a 4x4 image; block sums 10, 14, 26, 30 -> 2.5, 3.5, 6.5, 7.5 -> 3, 4, 7, 8.
        byte[] src = {
            1, 2, 3, 4,
            3, 4, 5, 2,
            5, 6, 7, 8,
            7, 8, 7, 8,
        };
        byte[] out = FixedPointResize.resizeUint8(src, new Size(4, 4), 1, new Size(2, 2), true, C);
        assertArrayEquals(new byte[] {3, 4, 7, 8}, out);
    }

    @Test
    public void identityResizeChangesNothing() {
        byte[] src = new byte[5 * 7 * 3];
        for (int i = 0; i < src.length; i++) {
            src[i] = (byte) (i * 37);
        }
        assertArrayEquals(src, FixedPointResize.resizeUint8(src, new Size(5, 7), 3, new Size(5, 7), true, C));
        float[] plane = {0.1f, -2f, 3.5f, 7f, 1e-7f, 1f};
        assertArrayEquals(plane, FixedPointResize.resizeFloat32(plane, new Size(2, 3), new Size(2, 3), C), 0f);
    }

    @Test
    public void floatResizeInterpolatesWithExactWeights() {
        float[] out = FixedPointResize.resizeFloat32(new float[] {0f, 1f}, new Size(1, 2), new Size(1, 4), C);
        assertArrayEquals(new float[] {0f, 0.25f, 0.75f, 1f}, out, 0f);
    }

    @Test
    public void trailingPartialBlocksAreDroppedButGeometryKept() {
        // 2x5 -> 1x2 with k = 2: blocks are columns 0-1 and 2-3 (column 4 dropped), sums 6 and 22. Positions on
        // the 2-block grid are ((2j + 1) * 5 - 4) / 8 = 0.125 and 1.375 (clamped to 1):
        // (0.875 * 6 + 0.125 * 22) / 4 = 2.0 and 22 / 4 = 5.5 -> 6 (half up).
        byte[] src = {1, 2, 5, 6, (byte) 200, 1, 2, 5, 6, (byte) 200};
        byte[] out = FixedPointResize.resizeUint8(src, new Size(2, 5), 1, new Size(1, 2), true, C);
        assertArrayEquals(new byte[] {2, 6}, out);
    }
}

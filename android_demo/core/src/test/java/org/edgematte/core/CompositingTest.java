package org.edgematte.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;

import org.junit.Test;

public class CompositingTest {

    @Test
    public void alpha8RoundsHalfUpAndClamps() {
        float[] alpha = {0f, 0.5f, 1f, 1.2f, -0.1f, 0.998f, 1f / 255f, 0.5f / 255f};
        // 0.5 * 255 = 127.5 -> 128; 0.998 * 255 = 254.49 -> 254; (0.5/255) * 255 + 0.5 = 1.0 -> 1 in float32.
        byte[] expected = {0, (byte) 128, (byte) 255, (byte) 255, 0, (byte) 254, 1, 1};
        assertArrayEquals(expected, Compositing.alphaToUint8RoundHalfUp(alpha, 255f));
    }

    @Test
    public void compositeBlendsAndRoundsHalfUp() {
        byte[] photo = {(byte) 255, 0, 100};
        byte[] background = {0, (byte) 255, 101};
        // a = 0.5: 127.5 -> 128, 127.5 -> 128, 100.5 -> 101.
        assertArrayEquals(new byte[] {(byte) 128, (byte) 128, 101},
                Compositing.composite(photo, new float[] {0.5f}, background));
        assertArrayEquals(photo, Compositing.composite(photo, new float[] {1.5f}, background));
        assertArrayEquals(background, Compositing.composite(photo, new float[] {-1f}, background));
    }

    @Test
    public void blurOfAFlatImageIsFlat() {
        Size size = new Size(40, 70);
        byte[] flat = new byte[size.pixels() * 3];
        for (int i = 0; i < flat.length; i += 3) {
            flat[i] = 10;
            flat[i + 1] = (byte) 200;
            flat[i + 2] = (byte) 255;
        }
        assertArrayEquals(flat, Compositing.blurredBackground(flat, size, AndroidConstants.DEFAULT));
    }

    @Test
    public void colourBackgroundFillsEveryPixel() {
        byte[] out = Background.colour(1, 2, 3).render(new byte[6], new Size(1, 2), new AndroidProfile());
        assertArrayEquals(new byte[] {1, 2, 3, 1, 2, 3}, out);
        assertEquals("colour(1,2,3)", Background.colour(1, 2, 3).toString());
    }

    @Test(expected = IllegalArgumentException.class)
    public void colourOutOfRangeIsRefused() {
        Background.colour(0, 256, 0);
    }
}

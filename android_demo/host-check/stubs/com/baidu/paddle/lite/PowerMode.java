package com.baidu.paddle.lite;

/** Compile-only stub (see host-check/stubs/README.md). */
public enum PowerMode {
    LITE_POWER_HIGH, LITE_POWER_LOW, LITE_POWER_FULL, LITE_POWER_NO_BIND, LITE_POWER_RAND_HIGH, LITE_POWER_RAND_LOW
}

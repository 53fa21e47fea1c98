package com.baidu.paddle.lite;

/** Compile-only stub (see host-check/stubs/README.md). */
public class MobileConfig extends ConfigBase {
}

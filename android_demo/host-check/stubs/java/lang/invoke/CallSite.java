package java.lang.invoke;

/** Compile-only stub: android-23's jar has no java.lang.invoke; javac needs it to emit lambdas (see README.md). */
public abstract class CallSite {
}

package java.lang.invoke;

/** Compile-only stub: android-23's jar has no java.lang.invoke; javac needs it to emit lambdas (see README.md). */
public final class LambdaMetafactory {
    public static CallSite metafactory(MethodHandles.Lookup caller, String invokedName, MethodType invokedType,
                                       MethodType samMethodType, MethodHandle implMethod, MethodType instantiatedMethodType) {
        throw new UnsupportedOperationException("stub");
    }

    public static CallSite altMetafactory(MethodHandles.Lookup caller, String invokedName, MethodType invokedType,
                                          Object... args) {
        throw new UnsupportedOperationException("stub");
    }
}

#!/usr/bin/env bash
# Host tests of the Android demo (no device, no Gradle): the pure-Java core is compiled with javac and its
# JUnit 4 tests run on this JVM against golden vectors freshly written by the Python runtime; then, when an
# android.jar can be had, the core and the app are compile-checked against it (README.md says what that
# covers). Ends with the line "java: N passed, M failed"; exits non-zero on any failure.
#
#   android_demo/host-test.sh [--python PATH]     (default: the repository's .venv/bin/python)
#
# Environment: PYTHON (same as --python), ANDROID_JAR (an android.jar to use instead of fetching one).
# Needs: a JDK (javac, java) and JUnit 4 (Debian: junit4); installed with apt-get when missing and running
# as root, otherwise it stops with the reason.
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
while [ $# -gt 0 ]; do
    case $1 in
        --python) PYTHON=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "host-test: unknown argument $1 (usage: host-test.sh [--python PATH])" >&2; exit 2 ;;
    esac
done
BUILD=$HERE/build/host
PASSED=0
FAILED=0

finish() {
    echo "java: $PASSED passed, $FAILED failed"
    if [ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]; then exit 0; fi
    exit 1
}

# A missing prerequisite or a broken build: counted as one failure, reported, and the run ends.
die() {
    echo "host-test: error: $*" >&2
    FAILED=$((FAILED + 1))
    finish
}

check_passed() { echo "check passed: $1"; PASSED=$((PASSED + 1)); }
check_failed() { echo "check FAILED: $1" >&2; FAILED=$((FAILED + 1)); }

# ensure_present TEST PACKAGE WHAT: TEST is a shell condition; installs PACKAGE with apt-get when possible.
ensure_present() {
    local test=$1 package=$2 what=$3
    eval "$test" && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        die "$what is missing and cannot be installed here (not root or no apt-get); install the Debian package '$package' (or equivalent) and re-run"
    fi
    echo "host-test: installing $package ($what)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$package" >/dev/null 2>&1; then
        apt-get update -q >/dev/null 2>&1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$package" >/dev/null 2>&1 \
            || die "apt-get install $package failed ($what is needed)"
    fi
    eval "$test" || die "$package is installed but $what is still missing"
}

# --------------------------------------------------------------------------------------------------------
# 1. Toolchain: JDK 11+ and JUnit 4

ensure_present "command -v javac >/dev/null 2>&1 && command -v java >/dev/null 2>&1" openjdk-17-jdk-headless "a JDK (javac, java)"
JAVA_MAJOR=$(javac -version 2>&1 | sed -E 's/^javac ([0-9]+).*/\1/')
if ! [ "$JAVA_MAJOR" -ge 11 ] 2>/dev/null; then
    die "javac $(javac -version 2>&1) is too old; JDK 11 or newer is needed (Debian: openjdk-17-jdk-headless)"
fi
JUNIT_JAR=/usr/share/java/junit4.jar
HAMCREST_JAR=/usr/share/java/hamcrest-core.jar
ensure_present "[ -f $JUNIT_JAR ] && [ -f $HAMCREST_JAR ]" junit4 "JUnit 4 ($JUNIT_JAR, $HAMCREST_JAR)"
[ -x "$PYTHON" ] || die "Python not found at $PYTHON (create the venv with 'make venv' or pass --python PATH)"

# --------------------------------------------------------------------------------------------------------
# 2. Compile the core (Java 8 language and class library: what Android's D8 takes) and its tests

CORE_SRC=$HERE/core/src/main/java
TEST_SRC=$HERE/core/src/test/java
rm -rf "$BUILD/core-classes" "$BUILD/test-classes"
mkdir -p "$BUILD/core-classes" "$BUILD/test-classes"
javac --release 8 -Xlint:-options -encoding UTF-8 -d "$BUILD/core-classes" $(find "$CORE_SRC" -name '*.java') \
    || die "the core does not compile (javac --release 8)"
javac -encoding UTF-8 -d "$BUILD/test-classes" -cp "$BUILD/core-classes:$JUNIT_JAR" $(find "$TEST_SRC" -name '*.java') \
    || die "the core's tests do not compile"

# --------------------------------------------------------------------------------------------------------
# 3. Golden vectors from the Python runtime, then JUnit

VECTORS=$BUILD/vectors
(cd "$REPO" && "$PYTHON" -m edgematte.runtime.vectors "$VECTORS") \
    || die "the Python runtime could not write golden vectors ($PYTHON -m edgematte.runtime.vectors $VECTORS)"
TEST_CLASSES=$(cd "$TEST_SRC" && find . -name '*Test.java' | sed -e 's#^\./##' -e 's#\.java$##' -e 's#/#.#g' | sort)
JUNIT_LOG=$BUILD/junit.log
java -cp "$BUILD/core-classes:$BUILD/test-classes:$JUNIT_JAR:$HAMCREST_JAR" -Dedgematte.vectors="$VECTORS" \
    org.edgematte.core.HostTestMain $TEST_CLASSES 2>&1 | tee "$JUNIT_LOG"
JUNIT_LINE=$(grep -E '^junit: [0-9]+ passed, [0-9]+ failed$' "$JUNIT_LOG" | tail -n 1)
[ -n "$JUNIT_LINE" ] || die "JUnit did not finish (no summary line in $JUNIT_LOG)"
PASSED=$((PASSED + $(echo "$JUNIT_LINE" | sed -E 's/^junit: ([0-9]+) passed.*/\1/')))
FAILED=$((FAILED + $(echo "$JUNIT_LINE" | sed -E 's/.* ([0-9]+) failed$/\1/')))

# --------------------------------------------------------------------------------------------------------
# 4. Compile checks against android.jar (API 23 from Debian bullseye's libandroid-23-java; minSdk is 24)

ANDROID_DIR=$BUILD/android-sdk
fetch_android_jar() {
    # A private apt state under build/: the system's sources stay untouched.
    local apt=$ANDROID_DIR/apt user
    user=$(id -un)
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
    echo "deb http://deb.debian.org/debian bullseye main" > "$apt/sources.list"
    local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o Dir::Etc::SourceParts=/dev/null
                -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o "APT::Sandbox::User=$user")
    apt-get "${opts[@]}" update -q >"$apt/update.log" 2>&1 || return 1
    (cd "$apt" && apt-get "${opts[@]}" download libandroid-23-java >"$apt/download.log" 2>&1) || return 1
    rm -rf "$apt/x"
    dpkg-deb -x "$apt"/libandroid-23-java_*.deb "$apt/x" || return 1
    cp "$apt/x/usr/lib/android-sdk/platforms/android-23/android.jar" "$ANDROID_DIR/android.jar"
}

ANDROID_JAR=${ANDROID_JAR:-}
if [ -z "$ANDROID_JAR" ]; then
    ANDROID_JAR=$ANDROID_DIR/android.jar
    if [ ! -f "$ANDROID_JAR" ]; then
        if command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1; then
            echo "host-test: fetching android.jar (Debian bullseye libandroid-23-java, once, cached in $ANDROID_DIR)"
            fetch_android_jar || echo "host-test: could not fetch libandroid-23-java (see $ANDROID_DIR/apt/*.log)" >&2
        fi
    fi
fi

if [ ! -f "$ANDROID_JAR" ]; then
    echo "android compile checks: NOT RUN: no android.jar (set ANDROID_JAR, or allow apt-get to reach Debian bullseye)"
else
    ANDROID_OUT=$BUILD/android
    rm -rf "$ANDROID_OUT"
    mkdir -p "$ANDROID_OUT/core" "$ANDROID_OUT/stubs" "$ANDROID_OUT/app" "$ANDROID_OUT/app-nopaddle" "$ANDROID_OUT/res"
    ANDROID_JAVAC=(javac -source 8 -target 8 -Xlint:-options -encoding UTF-8 -bootclasspath "$ANDROID_JAR")

    # 4a. The core uses only what Android's class library has (e.g. no java.nio.file below API 26).
    if "${ANDROID_JAVAC[@]}" -d "$ANDROID_OUT/core" $(find "$CORE_SRC" -name '*.java'); then
        check_passed "core compiles against android.jar (API 23 class library)"
    else
        check_failed "core compiles against android.jar (API 23 class library)"
    fi

    # 4b. Resources and manifest link with aapt2 (AGP adds the package from `namespace`; here it is injected).
    if ! command -v aapt2 >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q aapt >/dev/null 2>&1 || true
    fi
    RES_OK=0
    if ! command -v aapt2 >/dev/null 2>&1; then
        echo "app compile checks: NOT RUN: aapt2 is missing (Debian package 'aapt'), R.java cannot be generated"
    else
        sed 's#<manifest #<manifest package="org.edgematte.demo" #' "$HERE/app/src/main/AndroidManifest.xml" \
            > "$ANDROID_OUT/AndroidManifest.xml"
        if aapt2 compile --dir "$HERE/app/src/main/res" -o "$ANDROID_OUT/res/compiled.zip" 2>"$ANDROID_OUT/aapt2.log" \
            && aapt2 link -I "$ANDROID_JAR" --manifest "$ANDROID_OUT/AndroidManifest.xml" \
                "$ANDROID_OUT/res/compiled.zip" --java "$ANDROID_OUT/gen" -o "$ANDROID_OUT/res/app.ap_" \
                --min-sdk-version 23 --target-sdk-version 23 2>>"$ANDROID_OUT/aapt2.log"; then
            check_passed "app manifest and resources link (aapt2 against android.jar)"
            RES_OK=1
        else
            grep -v 'resources.arsc in APK .* is compressed' "$ANDROID_OUT/aapt2.log" >&2
            check_failed "app manifest and resources link (aapt2 against android.jar)"
        fi
    fi

    # 4c. App sources against android.jar + the core + signature stubs of Paddle Lite and LiteRT. CameraActivity
    #     and LiveMattingActivity need androidx/CameraX, which are not available here: Android Studio only.
    if [ "$RES_OK" -eq 1 ]; then
        APP_CHECK="app sources compile against android.jar (all but CameraActivity and LiveMattingActivity;"
        APP_CHECK="$APP_CHECK Paddle Lite/LiteRT via stubs)"
        if "${ANDROID_JAVAC[@]}" -d "$ANDROID_OUT/stubs" $(find "$HERE/host-check/stubs" -name '*.java') \
            && "${ANDROID_JAVAC[@]}" -d "$ANDROID_OUT/app" -cp "$ANDROID_OUT/core:$ANDROID_OUT/stubs" \
                $(find "$HERE/app/src/main/java" "$HERE/app/src/paddlelite/java" "$ANDROID_OUT/gen" -name '*.java' \
                  ! -name CameraActivity.java ! -name LiveMattingActivity.java); then
            check_passed "$APP_CHECK"
        else
            check_failed "$APP_CHECK"
        fi
        if "${ANDROID_JAVAC[@]}" -d "$ANDROID_OUT/app-nopaddle" -cp "$ANDROID_OUT/core:$ANDROID_OUT/stubs:$ANDROID_OUT/app" \
            "$HERE/app/src/nopaddlelite/java/org/edgematte/demo/engine/PaddleLiteSupport.java"; then
            check_passed "app without Paddle Lite (src/nopaddlelite) compiles against android.jar"
        else
            check_failed "app without Paddle Lite (src/nopaddlelite) compiles against android.jar"
        fi
    fi
fi

finish
